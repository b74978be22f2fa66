//! Any frame through the whole pipeline (classify, hash, encap): never a panic, every packet
//! gets exactly one verdict, and a forwarded packet is well-formed GUE. The common-case
//! shortcuts (classifier and two-hop IPv4 encapsulation) must give exactly what the general
//! code gives, and so must a burst through the express lane (no alternate hash fields).
//! With QUIC-LB on the UDP binds (plaintext CIDs, so that mutated server IDs still decode),
//! the same holds, and a forwarded packet goes only to backends the table names.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rondo::datapath::classify::{classify, classify_without_shortcut};
use rondo::datapath::encap::{encapsulate, encapsulate_without_shortcut};
use rondo::datapath::{process_burst, CoreCounters, HeapBuf, PacketBuf, Snapshot, Verdict};

const CONFIG: &str = r#"
[director]
outbound_gateway_mac = "02:00:00:00:00:fe"
outbound_src_ip = "192.0.2.10"
alt_hash_fields = ["dst_port"]
[[tables]]
name = "v4"
hash_key = "12345678901234561234567890123456"
seed = "34567890123456783456789012345678"
binds = [{ ip = "1.1.1.1", proto = "tcp", port = 80 }, { ip = "1.1.1.0/24", proto = "udp", port_start = 1, port_end = 65535 }, { ip = "fdb4:98ce:52d4::42", proto = "tcp", port = 80 }]
[[tables.backends]]
ip = "10.0.0.1"
[[tables.backends]]
ip = "10.0.0.2"
"#;

fn snapshot() -> &'static Snapshot {
    static S: OnceLock<Snapshot> = OnceLock::new();
    S.get_or_init(|| {
        let cfg = rondo::config::config_from_str(CONFIG, "fuzz.toml").unwrap();
        Snapshot::compile(cfg, None, 1).unwrap()
    })
}

/// The same without alternate hash fields: two IPv4 hops, the encapsulation's shortcut.
fn plain_snapshot() -> &'static Snapshot {
    static S: OnceLock<Snapshot> = OnceLock::new();
    S.get_or_init(|| {
        let text = CONFIG.replace("alt_hash_fields = [\"dst_port\"]\n", "");
        let cfg = rondo::config::config_from_str(&text, "fuzz.toml").unwrap();
        Snapshot::compile(cfg, None, 1).unwrap()
    })
}

/// The table with QUIC-LB on its UDP binds: plaintext 2-byte server IDs, 4-byte nonces.
fn quic_snapshot() -> &'static Snapshot {
    static S: OnceLock<Snapshot> = OnceLock::new();
    S.get_or_init(|| {
        let text = CONFIG
            .replace(
                "[[tables.backends]]\nip = \"10.0.0.1\"\n",
                "quic_lb = { config_id = 0, server_id_len = 2, nonce_len = 4 }\n[[tables.backends]]\nip = \"10.0.0.1\"\nserver_id = \"0001\"\n",
            )
            .replace(
                "ip = \"10.0.0.2\"\n",
                "ip = \"10.0.0.2\"\nserver_id = \"0002\"\n",
            );
        let cfg = rondo::config::config_from_str(&text, "fuzz.toml").unwrap();
        assert!(cfg.tables[0].spec.quic_lb.is_some());
        Snapshot::compile(cfg, None, 1).unwrap()
    })
}

/// The outer IPv4 destination and GUE hops of a forwarded frame: all backends of the table.
fn only_table_backends(out: &[u8]) {
    let backends = [[10, 0, 0, 1], [10, 0, 0, 2]];
    assert!(backends.contains(&[out[30], out[31], out[32], out[33]]), "outer destination");
    let hops = usize::from(out[49]);
    for i in 0..hops {
        let h = &out[50 + 4 * i..54 + 4 * i];
        assert!(backends.iter().any(|b| b == h), "hop {i}: {h:?}");
    }
}

/// The shortcuts against the general code, on one frame.
fn same_as_general(snap: &Snapshot, frame: &[u8]) {
    let flow = classify(snap, frame);
    assert_eq!(flow, classify_without_shortcut(snap, frame), "classifier shortcut");
    if let Ok(flow) = flow {
        let (mut a, mut b) = (HeapBuf::from_frame(frame), HeapBuf::from_frame(frame));
        assert_eq!(
            encapsulate(snap, &flow, &mut a),
            encapsulate_without_shortcut(snap, &flow, &mut b),
            "encapsulation shortcut"
        );
        assert_eq!(a.data(), b.data(), "encapsulation shortcut bytes");
    }
}

/// What the general code alone does with `frame`: verdict and, when forwarded, the bytes.
fn general_path(snap: &Snapshot, frame: &[u8]) -> (Verdict, Vec<u8>) {
    match classify_without_shortcut(snap, frame) {
        Err(v) => (v, frame.to_vec()),
        Ok(flow) => {
            let mut b = HeapBuf::from_frame(frame);
            match encapsulate_without_shortcut(snap, &flow, &mut b) {
                Ok(_) => (Verdict::Forward, b.data().to_vec()),
                Err(r) => (Verdict::Drop(r), frame.to_vec()),
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let snap = snapshot();
    // The first byte says how many frames (1 to 32) the rest is cut into, so that bursts
    // (and the eight-lane hasher) are exercised; each frame is also run alone, and a burst
    // must give every frame exactly what it gets on its own.
    let (n, rest) = match data.split_first() {
        Some((&k, rest)) => (1 + usize::from(k) % 32, rest),
        None => (1, data),
    };
    let size = (rest.len() / n).max(1);
    let mut frames: Vec<&[u8]> = rest.chunks(size).take(n).collect();
    if frames.is_empty() {
        frames.push(rest);
    }
    let mut bufs: Vec<HeapBuf> = frames.iter().map(|f| HeapBuf::from_frame(f)).collect();
    let mut v = vec![Verdict::Forward; bufs.len()];
    let mut c = CoreCounters::default();
    process_burst(snap, &mut bufs, &mut v, &mut c);
    assert_eq!(
        c.forwarded + c.total_drops() + c.total_exceptions(),
        bufs.len() as u64
    );
    // The same burst where the express lane takes the common case: each frame as the
    // general code alone has it (a frame for the kernel untouched).
    let plain = plain_snapshot();
    let mut express: Vec<HeapBuf> = frames.iter().map(|f| HeapBuf::from_frame(f)).collect();
    let mut ve = vec![Verdict::Forward; express.len()];
    process_burst(plain, &mut express, &mut ve, &mut CoreCounters::default());
    for (i, f) in frames.iter().enumerate() {
        let (gv, gb) = general_path(plain, f);
        assert_eq!(ve[i], gv, "frame {i}: express lane verdict");
        if matches!(gv, Verdict::Forward | Verdict::Exception(_)) {
            assert_eq!(express[i].data(), &gb[..], "frame {i}: express lane bytes");
        }
    }
    // QUIC-LB: the burst adds up, each frame gets what it gets alone, and goes nowhere but
    // to the table's backends.
    let quic = quic_snapshot();
    let mut qb: Vec<HeapBuf> = frames.iter().map(|f| HeapBuf::from_frame(f)).collect();
    let mut qv = vec![Verdict::Forward; qb.len()];
    let mut qc = CoreCounters::default();
    process_burst(quic, &mut qb, &mut qv, &mut qc);
    assert_eq!(
        qc.forwarded + qc.total_drops() + qc.total_exceptions(),
        qb.len() as u64
    );
    for (i, f) in frames.iter().enumerate() {
        same_as_general(quic, f);
        let mut one = [HeapBuf::from_frame(f)];
        let mut v1 = [Verdict::Forward];
        process_burst(quic, &mut one, &mut v1, &mut CoreCounters::default());
        assert_eq!(v1[0], qv[i], "frame {i}: QUIC verdict alone differs from in the burst");
        if qv[i] == Verdict::Forward {
            assert_eq!(one[0].data(), qb[i].data(), "frame {i}: QUIC bytes differ");
            only_table_backends(qb[i].data());
        }
    }
    for (i, f) in frames.iter().enumerate() {
        if v[i] == Verdict::Forward {
            let out = bufs[i].data();
            assert!(out.len() >= 14 + 20 + 8 + 8);
            assert_eq!(&out[36..38], &19523u16.to_be_bytes());
        }
        same_as_general(snap, f);
        same_as_general(plain_snapshot(), f);
        let mut one = [HeapBuf::from_frame(f)];
        let mut v1 = [Verdict::Forward];
        process_burst(snap, &mut one, &mut v1, &mut CoreCounters::default());
        assert_eq!(v1[0], v[i], "frame {i}: verdict alone differs from in the burst");
        if v1[0] == Verdict::Forward {
            assert_eq!(one[0].data(), bufs[i].data(), "frame {i}: bytes differ");
        }
    }
});
