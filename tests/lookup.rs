//! `rondo table lookup` / console `show flow` (datapath::explain) against the pipeline:
//! for random flows the backend the lookup names is the one `process_burst` sends the
//! packet to, and a flow that matches no bind gets its reason.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use proptest::prelude::*;
use rondo::config::{config_from_str, load_config};
use rondo::datapath::explain::{explain, Answer, FlowQuery};
use rondo::datapath::{process_burst, CoreCounters, HeapBuf, PacketBuf, Snapshot, Verdict};
use rondo::table::Proto;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn snapshot(file: &str) -> Snapshot {
    let cfg = load_config(&root().join(file), None).unwrap();
    Snapshot::compile(cfg, None, 1).unwrap()
}

/// The director config with alternate hash fields (four hops per packet).
fn alt_snapshot() -> Snapshot {
    let text = std::fs::read_to_string(root().join("configs/director.toml"))
        .unwrap()
        .replace(
            "hash_fields = [\"src_addr\"]",
            "hash_fields = [\"src_addr\", \"src_port\"]\nalt_hash_fields = [\"src_addr\"]",
        );
    Snapshot::compile(config_from_str(&text, "alt.toml").unwrap(), None, 1).unwrap()
}

/// Where the pipeline sends `q`'s frame: the verdict, and the outer destination address
/// of a forwarded packet.
fn pipeline(snap: &Snapshot, q: &FlowQuery) -> (Verdict, Option<IpAddr>) {
    let mut bufs = vec![HeapBuf::from_frame(&q.frame())];
    let mut verdicts = vec![Verdict::Forward; 1];
    let mut c = CoreCounters::default();
    process_burst(snap, &mut bufs, &mut verdicts, &mut c);
    let v = verdicts[0];
    if v != Verdict::Forward {
        return (v, None);
    }
    let d = bufs[0].data();
    let dst = match u16::from_be_bytes([d[12], d[13]]) {
        0x0800 => IpAddr::from(<[u8; 4]>::try_from(&d[30..34]).unwrap()),
        _ => IpAddr::from(<[u8; 16]>::try_from(&d[38..54]).unwrap()),
    };
    (v, Some(dst))
}

fn check(snap: &Snapshot, q: &FlowQuery) -> Result<(), TestCaseError> {
    let a = explain(snap, q);
    let (v, to) = pipeline(snap, q);
    match &a {
        Answer::Forwarded { hashed, alt, .. } => {
            prop_assert_eq!(v, Verdict::Forward, "{}", a);
            prop_assert_eq!(a.sent_to(), to, "{}", a);
            prop_assert!(!hashed.hops.is_empty());
            prop_assert_eq!(alt.is_some(), snap.settings.alt_hash_fields.is_some());
        }
        Answer::NotForwarded { verdict, why, .. } => {
            prop_assert_eq!(*verdict, v, "{}", a);
            prop_assert!(!why.is_empty());
        }
    }
    Ok(())
}

/// A destination: one of `vips` (most of the time) or any address of the family.
fn query(vips: Vec<IpAddr>) -> impl Strategy<Value = FlowQuery> {
    (
        any::<[u8; 16]>(),
        any::<u16>(),
        prop::sample::select(vips),
        prop::bool::weighted(0.2),
        any::<[u8; 16]>(),
        prop::sample::select(vec![53u16, 54, 80, 443, 8080]),
        any::<bool>(),
    )
        .prop_map(|(s, sport, vip, random_dst, rnd, dport, tcp)| {
            let (src, dst) = match vip {
                IpAddr::V4(_) => {
                    let d = if random_dst {
                        IpAddr::from([rnd[0], rnd[1], rnd[2], rnd[3]])
                    } else {
                        vip
                    };
                    (IpAddr::from([s[0], s[1], s[2], s[3]]), d)
                }
                IpAddr::V6(_) => (
                    IpAddr::from(s),
                    if random_dst { IpAddr::from(rnd) } else { vip },
                ),
            };
            FlowQuery {
                src,
                sport,
                dst,
                dport,
                proto: if tcp { Proto::Tcp } else { Proto::Udp },
                cid: None,
            }
        })
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Snapshots are built once: compiling one builds every table's 65536 rows.
fn snapshots() -> &'static [Snapshot; 3] {
    static SNAPS: OnceLock<[Snapshot; 3]> = OnceLock::new();
    SNAPS.get_or_init(|| {
        [
            snapshot("configs/director.toml"),
            alt_snapshot(),
            snapshot("configs/ipv6-backends.toml"),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn lookup_names_the_backend_the_pipeline_sends_to(
        q in query(vec![ip("1.1.1.1"), ip("1.1.2.7"), ip("1.1.2.200"), ip("fdb4:98ce:52d4::42")])
    ) {
        check(&snapshots()[0], &q)?;
        check(&snapshots()[1], &q)?;
    }

    #[test]
    fn lookup_on_ipv6_backends_and_three_hops(
        q in query(vec![ip("2001:db8:100::1")])
    ) {
        check(&snapshots()[2], &q)?;
    }
}

#[test]
fn a_flow_that_matches_no_bind_says_why() {
    let snap = snapshot("configs/director.toml");
    let q = FlowQuery::parse("10.0.0.1:5000", "9.9.9.9:80", "tcp").unwrap();
    let a = explain(&snap, &q).to_string();
    assert!(
        a.contains("no bind holds 9.9.9.9") && a.contains("kernel"),
        "{a}"
    );
    let q = FlowQuery::parse("10.0.0.1:5000", "1.1.1.1:22", "tcp").unwrap();
    let a = explain(&snap, &q).to_string();
    assert!(
        a.contains("1.1.1.1 is a VIP, but no bind of it takes tcp port 22"),
        "{a}"
    );
    let q = FlowQuery::parse("10.0.0.1:5000", "1.1.1.1:80", "udp").unwrap();
    assert!(explain(&snap, &q)
        .to_string()
        .contains("no bind of it takes udp port 80"));
}

#[test]
fn lookup_shows_hops_with_state_and_health_and_where_new_connections_land() {
    // Three hops: every dns row holds the two healthy backends first and the unhealthy
    // 10.2.0.3 last (it only fills the hop), so it shows, marked, but never takes a flow.
    let text = std::fs::read_to_string(root().join("configs/director.toml"))
        .unwrap()
        .replace("hops = 2", "hops = 3");
    let snap = Snapshot::compile(config_from_str(&text, "hops3.toml").unwrap(), None, 1).unwrap();
    let mut primaries = std::collections::BTreeSet::new();
    for i in 0..2000u32 {
        let src = format!("10.{}.{}.{}:{}", i >> 16, (i >> 8) & 255, i & 255, 1024 + i);
        let q = FlowQuery::parse(&src, "1.1.2.9:53", "udp").unwrap();
        let a = explain(&snap, &q);
        let text = a.to_string();
        assert!(
            text.contains("table dns") && text.contains("ports 53-54"),
            "{text}"
        );
        assert!(
            text.contains("hop 3    10.2.0.3 (backend 2, active, unhealthy)"),
            "{text}"
        );
        assert_ne!(a.sent_to(), Some(ip("10.2.0.3")), "{text}");
        assert_eq!(a.first_usable().map(|h| h.ip), a.sent_to(), "{text}");
        primaries.extend(a.sent_to());
    }
    assert_eq!(primaries.len(), 2, "both healthy backends take flows");
    // The web table's draining 10.1.0.3 shows as draining and is never where new
    // connections land.
    for i in 0..500u32 {
        let src = format!("10.9.{}.{}:4000", i >> 8, i & 255);
        let q = FlowQuery::parse(&src, "1.1.1.1:443", "tcp").unwrap();
        let a = explain(&snap, &q);
        let text = a.to_string();
        assert!(
            text.contains("10.1.0.3 (backend 2, draining, healthy)"),
            "{text}"
        );
        assert!(!text.contains("lands on 10.1.0.3"), "{text}");
    }
}

#[test]
fn rondo_table_lookup_prints_the_answer_and_refuses_bad_words() {
    let rondo = env!("CARGO_BIN_EXE_rondo");
    let o = Command::new(rondo)
        .args(["table", "lookup"])
        .arg(root().join("configs/director.toml"))
        .args(["10.9.8.7:4000", "1.1.1.1:443", "tcp"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");
    let snap = snapshot("configs/director.toml");
    let want = explain(
        &snap,
        &FlowQuery::parse("10.9.8.7:4000", "1.1.1.1:443", "tcp").unwrap(),
    );
    assert_eq!(out, want.to_string());
    for line in [
        "bind     1.1.1.1/32 tcp ports 443-443 (table web)",
        "fields   src_addr",
        "row ",
        "hop 1",
        "hop 2",
        "sent to",
        "lands on",
    ] {
        assert!(out.contains(line), "{line}: {out}");
    }
    // A table file alone: GLB's default hash fields, said so.
    let o = Command::new(rondo)
        .args(["table", "lookup"])
        .arg(root().join("tests/vectors/glb/table.json"))
        .args(["10.9.8.7", "1.1.1.1:80", "tcp"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && out.contains("GLB's default hash_fields"),
        "{out}"
    );
    for bad in [
        ["nope", "1.1.1.1:80", "tcp"],
        ["10.0.0.1", "1.1.1.1:80", "sctp"],
        ["10.0.0.1", "::1", "tcp"],
    ] {
        let o = Command::new(rondo)
            .args(["table", "lookup"])
            .arg(root().join("configs/director.toml"))
            .args(bad)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{bad:?}: {err}");
        assert!(err.contains("rondo: error:"), "{err}");
    }
}
