//! Fixtures shared by the benchmarks: one table of 64 backends behind 1.1.1.1:80 (and
//! 1.1.1.2:1-1024), and 64-byte TCP SYNs from 1024 clients.
#![allow(dead_code)]

use rondo::config::config_from_str;
use rondo::datapath::Snapshot;
use rondo::wire::MacAddr;

const CONFIG: &str = r#"
[director]
outbound_gateway_mac = "02:00:00:00:00:fe"
outbound_src_ip = "192.0.2.10"
[[tables]]
name = "bench"
hash_key = "12345678901234561234567890123456"
seed = "34567890123456783456789012345678"
binds = [{ ip = "1.1.1.1", proto = "tcp", port = 80 }, { ip = "1.1.1.2", proto = "tcp", port_start = 1, port_end = 1024 }]
"#;

/// The bench table compiled, with `mac` as the source of encapsulated frames.
pub fn snapshot(mac: Option<MacAddr>) -> Snapshot {
    let mut text = CONFIG.to_string();
    for i in 0..64 {
        text.push_str(&format!("[[tables.backends]]\nip = \"10.0.0.{}\"\n", i + 1));
    }
    Snapshot::compile(config_from_str(&text, "bench.toml").unwrap(), mac, 1).unwrap()
}

/// A 60-byte frame from client `i` (one of 1024 spread source addresses) to `dst`:
/// Ethernet to `dst_mac`, an IPv4 header of protocol `proto` and total length `total`, the
/// rest zero for the caller's L4 header.
fn client_frame(i: u32, dst_mac: [u8; 6], proto: u8, total: u8, dst: [u8; 4]) -> Vec<u8> {
    let src = (0x0a00_0000u32 + i.wrapping_mul(2_654_435_761) % 0x00ff_ffff).to_be_bytes();
    let mut f = vec![0u8; 60];
    f[0..6].copy_from_slice(&dst_mac);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[14..34];
    ip.copy_from_slice(&[
        0x45, 0, 0, total, 0, 1, 0x40, 0, 64, proto, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ]);
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    f
}

/// 1024 different clients sending a SYN to 1.1.1.1:80 at `dst_mac`, each frame 60 bytes.
pub fn frames(dst_mac: [u8; 6]) -> Vec<Vec<u8>> {
    (0..1024u32)
        .map(|i| {
            let mut f = client_frame(i, dst_mac, 6, 40, [1, 1, 1, 1]);
            let tcp = &mut f[34..54];
            tcp[0..2].copy_from_slice(&(1024 + (i as u16)).to_be_bytes());
            tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
            tcp[12] = 0x50;
            tcp[13] = 0x02;
            f
        })
        .collect()
}

/// QUIC-LB bench tables: 64 backends with server IDs behind 1.1.3.1:443/udp, under
/// `quic_lb` (TOML, one configuration), and the same table without QUIC-LB.
pub fn quic_snapshot(quic_lb: Option<&str>) -> Snapshot {
    let mut text = String::from(
        r#"
[director]
outbound_gateway_mac = "02:00:00:00:00:fe"
outbound_src_ip = "192.0.2.10"
[[tables]]
name = "h3"
hash_key = "12345678901234561234567890123456"
seed = "34567890123456783456789012345678"
binds = [{ ip = "1.1.3.1", proto = "udp", port = 443 }]
"#,
    );
    if let Some(q) = quic_lb {
        text.push_str(&format!("quic_lb = {q}\n"));
    }
    let sid_len = quic_lb.map(sid_len_of).unwrap_or(0);
    for i in 0..64usize {
        text.push_str(&format!("[[tables.backends]]\nip = \"10.0.0.{}\"\n", i + 1));
        if sid_len > 0 {
            text.push_str(&format!(
                "server_id = \"{:0w$x}\"\n",
                i + 1,
                w = 2 * sid_len
            ));
        }
    }
    Snapshot::compile(config_from_str(&text, "quic-bench.toml").unwrap(), None, 1).unwrap()
}

fn sid_len_of(q: &str) -> usize {
    let t: toml::Table = toml::from_str(&format!("q = {q}")).unwrap();
    t["q"]["server_id_len"].as_integer().unwrap() as usize
}

/// 1024 QUIC short-header packets (64-byte frames with FCS) from 1024 clients to
/// 1.1.3.1:443, each with a CID of `quic_lb` for one of the 64 backends.
pub fn quic_frames(quic_lb: &str) -> Vec<Vec<u8>> {
    use rondo::quic_lb::{QuicLbSpec, ServerId, MAX_CID_LEN};
    let t: toml::Table = toml::from_str(&format!("q = {quic_lb}")).unwrap();
    let cfg = t["q"]
        .clone()
        .try_into::<QuicLbSpec>()
        .unwrap()
        .build()
        .unwrap();
    (0..1024u32)
        .map(|i| {
            let mut f = client_frame(i, [2, 0, 0, 0, 0, 1], 17, 46, [1, 1, 3, 1]);
            let udp = &mut f[34..42];
            udp[0..2].copy_from_slice(&(1024 + (i as u16)).to_be_bytes());
            udp[2..4].copy_from_slice(&443u16.to_be_bytes());
            udp[4..6].copy_from_slice(&26u16.to_be_bytes());
            let sid = (i % 64 + 1).to_be_bytes();
            let sid = ServerId::new(&sid[4 - cfg.server_id_len().min(4)..]).unwrap();
            let mut cid = [0u8; MAX_CID_LEN];
            let nonce = vec![i as u8; cfg.nonce_len()];
            let n = cfg.encode_with_nonce(&sid, &nonce, 0, &mut cid).unwrap();
            f[42] = 0x40;
            f[43..43 + n].copy_from_slice(&cid[..n]);
            f
        })
        .collect()
}
