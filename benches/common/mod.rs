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

/// 1024 different clients sending a SYN to 1.1.1.1:80 at `dst_mac`, each frame 60 bytes.
pub fn frames(dst_mac: [u8; 6]) -> Vec<Vec<u8>> {
    (0..1024u32)
        .map(|i| {
            let src = (0x0a00_0000u32 + i.wrapping_mul(2_654_435_761) % 0x00ff_ffff).to_be_bytes();
            let mut f = vec![0u8; 60];
            f[0..6].copy_from_slice(&dst_mac);
            f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
            f[12..14].copy_from_slice(&[0x08, 0x00]);
            let ip = &mut f[14..34];
            ip.copy_from_slice(&[
                0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1,
            ]);
            ip[12..16].copy_from_slice(&src);
            let tcp = &mut f[34..54];
            tcp[0..2].copy_from_slice(&(1024 + (i as u16)).to_be_bytes());
            tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
            tcp[12] = 0x50;
            tcp[13] = 0x02;
            f
        })
        .collect()
}
