//! QUIC-LB in the director (issue 22, item 2): a UDP packet to a table with `quic_lb` goes
//! to the backend its destination connection ID names (with the row's other hop after
//! it), whatever its addresses and ports; every packet whose CID names no usable backend
//! takes the row, as without QUIC-LB, and is counted by why. Config errors name the field.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use proptest::prelude::*;
use rondo::config::config_from_str;
use rondo::datapath::counters::QuicOutcome;
use rondo::datapath::explain::{explain, FlowQuery};
use rondo::datapath::{process_burst, CoreCounters, HeapBuf, PacketBuf, Snapshot, Verdict};
use rondo::quic_lb::{QuicLbSpec, ServerId, MAX_CID_LEN};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn text() -> String {
    std::fs::read_to_string(root().join("configs/quic.toml")).unwrap()
}

fn snap_of(text: &str) -> Snapshot {
    Snapshot::compile(config_from_str(text, "quic.toml").unwrap(), None, 1).unwrap()
}

/// `configs/quic.toml` without its `quic_lb` array (and, with `sids`, its server IDs).
fn without_quic_lb(sids: bool) -> String {
    let t = text();
    let start = t.find("quic_lb = [").unwrap();
    let end = start + t[start..].find("\n]\n").unwrap() + 3;
    let t = format!("{}{}", &t[..start], &t[end..]);
    if sids {
        t.lines()
            .filter(|l| !l.starts_with("server_id ="))
            .collect::<Vec<_>>()
            .join("\n")
    } else {
        t
    }
}

/// The same table without QUIC-LB: its rows are the fallback's.
fn plain_snap() -> Snapshot {
    snap_of(&without_quic_lb(true))
}

/// The configurations of `configs/quic.toml`, built (as the servers hold them).
fn configs() -> Vec<rondo::quic_lb::QuicLbConfig> {
    let doc: toml::Table = toml::from_str(&text()).unwrap();
    doc["tables"][0]["quic_lb"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.clone().try_into::<QuicLbSpec>().unwrap().build().unwrap())
        .collect()
}

/// A CID of configuration `c` for server ID `sid` with nonce byte `n`.
fn cid(c: &rondo::quic_lb::QuicLbConfig, sid: &str, n: u8) -> Vec<u8> {
    let mut out = [0u8; MAX_CID_LEN];
    let nonce = vec![n; c.nonce_len()];
    let len = c
        .encode_with_nonce(&ServerId::from_hex(sid).unwrap(), &nonce, n, &mut out)
        .unwrap();
    out[..len].to_vec()
}

/// An Ethernet/IPv4/UDP frame to the VIP 1.1.3.1:443 carrying `payload`.
fn udp_frame(src: Ipv4Addr, sport: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 14];
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let total = 20 + 8 + payload.len();
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&[1, 1, 3, 1]);
    let sum = rondo::wire::checksum::sum(&ip) as u16;
    ip[10..12].copy_from_slice(&(!sum).to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&443u16.to_be_bytes());
    f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

/// A short header packet with `dcid`.
fn short(dcid: &[u8]) -> Vec<u8> {
    let mut p = vec![0x40 | (dcid.first().copied().unwrap_or(0) & 0x3f)];
    p.extend_from_slice(dcid);
    p.extend_from_slice(&[0xab; 24]);
    p
}

/// A version 1 long header (Initial) with `dcid` (any length byte given).
fn initial(dcid: &[u8]) -> Vec<u8> {
    let mut p = vec![0xc0, 0, 0, 0, 1, dcid.len() as u8];
    p.extend_from_slice(dcid);
    p.push(8);
    p.extend_from_slice(&[7; 8]);
    p.extend_from_slice(&[0; 30]);
    p
}

/// The hops of a forwarded frame: outer destination, then the GUE hop list.
fn hops(frame: &[u8]) -> Vec<IpAddr> {
    let mut v = vec![IpAddr::from(<[u8; 4]>::try_from(&frame[30..34]).unwrap())];
    // GUE after IPv4 (20) and UDP (8): the 4-byte header, GLB's private data (type 2
    // bytes, next_hop, hop_count), then the remaining hops.
    let gue = 14 + 20 + 8;
    let n = usize::from(frame[gue + 7]);
    for k in 0..n {
        let at = gue + 8 + 4 * k;
        v.push(IpAddr::from(
            <[u8; 4]>::try_from(&frame[at..at + 4]).unwrap(),
        ));
    }
    v
}

/// Run one frame through the pipeline: verdict, hops, counters.
fn forward(snap: &Snapshot, frame: &[u8]) -> (Verdict, Vec<IpAddr>, CoreCounters) {
    let mut bufs = vec![HeapBuf::from_frame(frame)];
    let mut v = vec![Verdict::Forward];
    let mut c = CoreCounters::default();
    process_burst(snap, &mut bufs, &mut v, &mut c);
    let h = if v[0] == Verdict::Forward {
        hops(bufs[0].data())
    } else {
        Vec::new()
    };
    (v[0], h, c)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn a_cid_takes_its_packets_to_its_server_whatever_the_client_address() {
    let snap = snap_of(&text());
    let plain = plain_snap();
    let cfgs = configs();
    let servers = [
        ("0001", "10.3.0.1"),
        ("0002", "10.3.0.2"),
        ("0003", "10.3.0.3"),
    ];
    let mut moved_by_hash = 0;
    for (k, c) in cfgs.iter().enumerate() {
        for (sid, backend) in servers {
            for n in 0..40u8 {
                let cid = cid(c, sid, n);
                // The client "migrates": a new address and port for every packet.
                let src = Ipv4Addr::new(192, 0, 2, n);
                let sport = 1000 + u16::from(n) * 7;
                let frame = udp_frame(src, sport, &short(&cid));
                let (v, h, ctr) = forward(&snap, &frame);
                assert_eq!(v, Verdict::Forward);
                assert_eq!(h[0], ip(backend), "config {k} sid {sid} nonce {n}: {h:?}");
                assert_eq!(h.len(), 2);
                assert_ne!(h[1], h[0], "the second hop is the row's other backend");
                assert_eq!(ctr.quic_count(QuicOutcome::Routed), 1);
                // Without QUIC-LB the same packets would follow the hash.
                let (_, hh, _) = forward(&plain, &frame);
                moved_by_hash += usize::from(hh[0] != h[0]);
                assert!(hh.contains(&h[1]), "second hop from the row: {hh:?} {h:?}");
                // explain agrees.
                let q = FlowQuery::parse(&format!("{src}:{sport}"), "1.1.3.1:443", "udp")
                    .unwrap()
                    .with_cid(&rondo::quic_lb::to_hex(&cid))
                    .unwrap();
                let a = explain(&snap, &q);
                assert_eq!(a.sent_to(), Some(h[0]), "{a}");
                assert!(a.to_string().contains("quic-lb  routed"), "{a}");
            }
        }
    }
    assert!(
        moved_by_hash > 100,
        "the hash alone sends most elsewhere: {moved_by_hash}"
    );
}

#[test]
fn every_other_packet_takes_the_hash_and_is_counted_by_why() {
    let snap = snap_of(&text());
    let plain = plain_snap();
    let c = &configs()[0];
    let sick = |t: String| {
        let u = t.replace("ip = \"10.3.0.3\"", "ip = \"10.3.0.3\"\nhealthy = false");
        assert_ne!(u, t);
        snap_of(&u)
    };
    let unhealthy = sick(text());
    let plain_unhealthy = sick(without_quic_lb(true));
    let mut vn = vec![0xc0, 0, 0, 0, 0, 4, 1, 2, 3, 4, 4, 5, 6, 7, 8];
    vn.extend_from_slice(&[0, 0, 0, 1]);
    let mut unroutable = cid(c, "0001", 3);
    unroutable[0] |= 0xe0;
    let cases: Vec<(&str, Vec<u8>, QuicOutcome, &Snapshot)> = vec![
        ("empty payload", vec![], QuicOutcome::NotQuic, &snap),
        (
            "truncated short header",
            vec![0x40],
            QuicOutcome::NotQuic,
            &snap,
        ),
        (
            "DCID over 20 bytes",
            initial(&[9; 21]),
            QuicOutcome::NotQuic,
            &snap,
        ),
        (
            "truncated long header",
            vec![0xc0, 0, 0, 0, 1, 8, 1, 2],
            QuicOutcome::NotQuic,
            &snap,
        ),
        (
            "version negotiation",
            vn,
            QuicOutcome::VersionNegotiation,
            &snap,
        ),
        (
            "client-chosen Initial DCID (codepoint 0)",
            initial(&[0x05; 8]),
            QuicOutcome::UnknownConfig,
            &snap,
        ),
        (
            "short header, unknown codepoint",
            short(&[0x85; 9]),
            QuicOutcome::UnknownConfig,
            &snap,
        ),
        (
            "codepoint 7",
            short(&unroutable),
            QuicOutcome::Unroutable,
            &snap,
        ),
        (
            "Initial with a short CID of config 1",
            initial(&cid(c, "0001", 1)[..4]),
            QuicOutcome::TooShort,
            &snap,
        ),
        (
            "server ID of no backend",
            short(&cid(c, "00ff", 2)),
            QuicOutcome::UnknownServer,
            &snap,
        ),
        (
            "server ID of an unhealthy backend",
            short(&cid(c, "0003", 2)),
            QuicOutcome::UnusableServer,
            &unhealthy,
        ),
    ];
    for (what, payload, outcome, s) in cases {
        for n in 0..20u8 {
            let frame = udp_frame(
                Ipv4Addr::new(198, 51, 100, n),
                4000 + u16::from(n),
                &payload,
            );
            let (v, h, ctr) = forward(s, &frame);
            assert_eq!(v, Verdict::Forward, "{what}");
            let reference = if std::ptr::eq(s, &unhealthy) {
                &plain_unhealthy
            } else {
                &plain
            };
            let (_, hh, _) = forward(reference, &frame);
            assert_eq!(h, hh, "{what}: the row's hops, as without QUIC-LB");
            assert_eq!(ctr.quic_count(outcome), 1, "{what}: {:?}", ctr.quic);
            assert_eq!(ctr.quic.iter().sum::<u64>(), 1, "{what}");
        }
    }
    // TCP to the same VIP: no QUIC-LB at all.
    let q = FlowQuery::parse("198.51.100.1:4000", "1.1.3.1:443", "tcp").unwrap();
    let (v, _, ctr) = forward(&snap, &q.frame());
    assert_eq!((v, ctr.quic.iter().sum::<u64>()), (Verdict::Forward, 0));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any UDP payload to a QUIC-LB bind: forwarded, to a backend of the table, counted once.
    #[test]
    fn any_payload_goes_to_a_backend_of_the_table(
        payload in prop::collection::vec(any::<u8>(), 0..64),
        src in any::<[u8; 4]>(),
        sport in any::<u16>(),
    ) {
        let snap = snapshot_once();
        let (v, h, ctr) = forward(snap, &udp_frame(Ipv4Addr::from(src), sport, &payload));
        prop_assert_eq!(v, Verdict::Forward);
        let table: Vec<IpAddr> = ["10.3.0.1", "10.3.0.2", "10.3.0.3"].iter().map(|s| ip(s)).collect();
        for hop in &h {
            prop_assert!(table.contains(hop), "{:?}", h);
        }
        prop_assert_eq!(ctr.quic.iter().sum::<u64>(), 1);
    }
}

fn snapshot_once() -> &'static Snapshot {
    static S: std::sync::OnceLock<Snapshot> = std::sync::OnceLock::new();
    S.get_or_init(|| snap_of(&text()))
}

#[test]
fn bad_quic_lb_settings_are_errors_naming_the_field() {
    let base = text();
    let cases: Vec<(String, &str)> = vec![
        (
            base.replace("server_id = \"0002\"", "server_id = \"0001\""),
            "server ID 0001 is already backend 10.3.0.1's",
        ),
        (
            base.replace("server_id = \"0002\"", "server_id = \"000002\""),
            "the table's quic_lb server_id_len is 2",
        ),
        (
            base.replace(
                "key = \"950983482b0692f78f6057baee94118c\"",
                "key = \"9509\"",
            ),
            "quic_lb",
        ),
        (base.replace("config_id = 2,", "config_id = 7,"), "quic_lb"),
        (base.replace("config_id = 2,", "config_id = 1,"), "quic_lb"),
        (
            base.replace(
                "config_id = 2, server_id_len = 2, nonce_len = 14",
                "config_id = 2, server_id_len = 3, nonce_len = 13",
            ),
            "same server_id_len",
        ),
        (
            base.replace("nonce_len = 6,", "nonce_len = 2,"),
            "nonce_len",
        ),
        (
            base.replace("{ ip = \"1.1.3.1\", proto = \"udp\", port = 443 },\n", ""),
            "no udp bind",
        ),
        (
            base.replace("server_id = \"0003\"", "server_id = \"zz03\""),
            "backends[2].server_id",
        ),
        (
            base.replace(
                "quic_lb = [",
                "quic_lb = [\n  { config_id = 3, server_id_len = 2, nonce_len = 6 },",
            ),
            "quic_lb",
        ),
        (
            base.replace(
                "quic_lb = [",
                "quic_lb = [\n  { config_id = 3, server_id_len = 2, nonce_len = 6, colour = 1 },",
            ),
            "colour",
        ),
    ];
    for (t, want) in cases {
        let e = match config_from_str(&t, "quic.toml") {
            Ok(_) => panic!("accepted: {want}\n{t}"),
            Err(e) => e.to_string(),
        };
        assert!(
            e.contains(want) && e.contains("quic.toml:"),
            "{e} (wanted {want:?})"
        );
        assert!(e.contains("tables[0]"), "{e}");
    }
    // A server ID without quic_lb.
    let e = config_from_str(&without_quic_lb(false), "quic.toml")
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("backends[0].server_id") && e.contains("quic_lb"),
        "{e}"
    );
}

#[test]
fn one_configuration_may_be_a_table_rather_than_an_array() {
    let t = text().replace(
        "quic_lb = [\n  { config_id = 1, server_id_len = 2, nonce_len = 6, key = \"950983482b0692f78f6057baee94118c\" },\n  { config_id = 2, server_id_len = 2, nonce_len = 14, key = \"8f95f09245765f80256934e50c66207f\" },\n]",
        "quic_lb = { config_id = 1, server_id_len = 2, nonce_len = 6, key = \"950983482b0692f78f6057baee94118c\" }",
    );
    assert_ne!(t, text());
    let snap = snap_of(&t);
    let c = &configs()[0];
    let (_, h, ctr) = forward(
        &snap,
        &udp_frame(Ipv4Addr::new(192, 0, 2, 1), 9, &short(&cid(c, "0003", 5))),
    );
    assert_eq!(
        (h[0], ctr.quic_count(QuicOutcome::Routed)),
        (ip("10.3.0.3"), 1)
    );
    // The second configuration is gone: its CIDs take the hash.
    let c2 = &configs()[1];
    let (_, _, ctr) = forward(
        &snap,
        &udp_frame(Ipv4Addr::new(192, 0, 2, 1), 9, &short(&cid(c2, "0003", 5))),
    );
    assert_eq!(ctr.quic_count(QuicOutcome::UnknownConfig), 1);
}
