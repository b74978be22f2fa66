//! Data-path micro-benchmarks on 64-byte TCP SYNs (60 bytes + FCS on the wire).
//! `cargo bench --bench datapath`; numbers go to perf/RESULTS.md.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rondo::datapath::classify::classify;
use rondo::datapath::encap::encapsulate;
use rondo::datapath::{
    process_burst, process_burst_counted, CoreCounters, HeapBuf, PacketBuf, Verdict, WorkerSink,
    BURST_MAX,
};
use rondo::hash::batch::hash_many;
use rondo::hash::lanes::HashInput;
use rondo::hash::{siphash24, SipKey};
use rondo::wire::{ethernet, Ipv4Packet, TcpPacket};

mod common;

use common::{frames, quic_frames, quic_snapshot, snapshot};

fn benches(c: &mut Criterion) {
    let snap = snapshot(None);
    let frames = frames([2, 0, 0, 0, 0, 1]);
    let mut g = c.benchmark_group("datapath");
    g.throughput(Throughput::Elements(1));

    g.bench_function("parse_eth_ipv4_tcp", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) & 1023;
            let f = &frames[i];
            let l2 = ethernet::parse_l2(black_box(f)).unwrap();
            let ip = Ipv4Packet::new_checked(&f[l2.header_len..]).unwrap();
            let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
            black_box((ip.src_addr(), tcp.src_port(), tcp.dst_port()))
        })
    });
    let key = SipKey::from_bytes(b"0123456789abcdef");
    // Rondo's own SipHash (the table builder's midstate hashing) and, as the reference in
    // the same run, the siphasher crate that the packet path uses.
    g.bench_function("siphash_4_bytes", |b| {
        let mut x = 0u32;
        b.iter(|| {
            x = x.wrapping_add(1);
            black_box(siphash24(&key, black_box(&x.to_be_bytes())))
        })
    });
    // Reference in the same run: the siphasher crate on the same input.
    let reference = siphasher::sip::SipHasher24::new_with_key(b"0123456789abcdef");
    g.bench_function("siphasher_crate_4_bytes_reference", |b| {
        let mut x = 0u32;
        b.iter(|| {
            x = x.wrapping_add(1);
            black_box(reference.hash(black_box(&x.to_be_bytes())))
        })
    });
    g.bench_function("bind_lookup", |b| {
        let mut x = 0u16;
        b.iter(|| {
            x = x.wrapping_add(1);
            black_box(snap.binds.lookup_v4(black_box(0x0101_0102), 6, x & 1023))
        })
    });
    g.bench_function("classify_and_hash", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) & 1023;
            black_box(classify(&snap, black_box(&frames[i])).unwrap())
        })
    });
    g.bench_function("row_lookup", |b| {
        let t = &snap.tables[0].table;
        let mut x = 0u64;
        b.iter(|| {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            black_box(t.row(black_box(x as u16))[0])
        })
    });
    let flows: Vec<_> = frames.iter().map(|f| classify(&snap, f).unwrap()).collect();
    let mut buf = HeapBuf::new(HeapBuf::HEADROOM, 2048);
    g.bench_function("refill_only", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) & 1023;
            buf.set_frame(&frames[i]);
            black_box(buf.data().len())
        })
    });
    g.bench_function("refill_and_encap", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) & 1023;
            buf.set_frame(&frames[i]);
            encapsulate(&snap, &flows[i], &mut buf).unwrap();
            black_box(buf.data().len())
        })
    });

    g.throughput(Throughput::Elements(BURST_MAX as u64));
    let mut bufs: Vec<HeapBuf> = (0..BURST_MAX)
        .map(|_| HeapBuf::new(HeapBuf::HEADROOM, 2048))
        .collect();
    let mut verdicts = [Verdict::Forward; BURST_MAX];
    let mut ctr = CoreCounters::default();
    g.bench_function("refill_burst_only", |b| {
        let mut base = 0;
        b.iter(|| {
            base = (base + BURST_MAX) & 1023;
            for (k, buf) in bufs.iter_mut().enumerate() {
                buf.set_frame(&frames[base + k]);
            }
            black_box(&bufs);
        })
    });
    // The burst hasher alone: 32 four-byte inputs (GLB's default field, the source address).
    let key = snap.tables[0].table.spec.hash_key;
    let inputs: Vec<HashInput> = (0..BURST_MAX as u32)
        .map(|i| {
            let mut h = HashInput::default();
            let mut w = h.writer(SipKey::from_bytes(&key).lanes_key());
            w.push(u64::from(0x0a00_0001u32.wrapping_add(i).swap_bytes()), 4);
            w.finish();
            h
        })
        .collect();
    let want = [true; BURST_MAX];
    let mut hashes = [0u64; BURST_MAX];
    g.bench_function("hash_burst_of_32", |b| {
        b.iter(|| {
            hash_many(black_box(&inputs), &want, &mut hashes);
            black_box(&hashes);
        })
    });
    g.bench_function("pipeline_burst_of_32", |b| {
        let mut base = 0;
        b.iter(|| {
            base = (base + BURST_MAX) & 1023;
            for (k, buf) in bufs.iter_mut().enumerate() {
                buf.set_frame(&frames[base + k]);
            }
            process_burst(&snap, &mut bufs, &mut verdicts, &mut ctr);
            black_box(&verdicts);
        })
    });
    // The same traffic with the express lane off: every packet takes the general path,
    // so that the lane's gain is measured (`Snapshot::disable_express_lane`).
    let mut general = snapshot(None);
    general.disable_express_lane();
    g.bench_function("pipeline_burst_of_32_general", |b| {
        let mut base = 0;
        b.iter(|| {
            base = (base + BURST_MAX) & 1023;
            for (k, buf) in bufs.iter_mut().enumerate() {
                buf.set_frame(&frames[base + k]);
            }
            process_burst(&general, &mut bufs, &mut verdicts, &mut ctr);
            black_box(&verdicts);
        })
    });
    // The same, counting packets per backend as the runtime's workers do.
    let mut counted = snapshot(None);
    counted.attach_sent_counters(1);
    let mut sink = WorkerSink { worker: 0 };
    g.bench_function("pipeline_burst_of_32_counted", |b| {
        let mut base = 0;
        b.iter(|| {
            base = (base + BURST_MAX) & 1023;
            for (k, buf) in bufs.iter_mut().enumerate() {
                buf.set_frame(&frames[base + k]);
            }
            process_burst_counted(&counted, &mut bufs, &mut verdicts, &mut ctr, &mut sink);
            black_box(&verdicts);
        })
    });
    g.finish();
    // (A filter that runs none of these leaves nothing to check.)
    assert!(
        ctr.bursts == 0 || counted.sent_per_backend(0).iter().sum::<u64>() > 0,
        "the counted pipeline counted"
    );
    assert_eq!(
        ctr.total_drops() + ctr.total_exceptions(),
        0,
        "bench traffic must all forward"
    );
}

/// QUIC short-header packets to a QUIC-LB bind, 64-byte frames, bursts of 32 (issue 22,
/// item 5): 2-byte server IDs in the clear, under the four-pass network (9-byte CIDs) and
/// under single-pass AES (3 + 13 bytes), next to the same packets to the table without
/// QUIC-LB (the hash alone, the general path) and the TCP SYN burst above.
fn quic_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("quic");
    g.throughput(Throughput::Elements(BURST_MAX as u64));
    let configs = [
        (
            "plaintext",
            "{ config_id = 1, server_id_len = 2, nonce_len = 6 }",
        ),
        (
            "four_pass",
            r#"{ config_id = 1, server_id_len = 2, nonce_len = 6, key = "950983482b0692f78f6057baee94118c" }"#,
        ),
        (
            "single_pass",
            r#"{ config_id = 1, server_id_len = 3, nonce_len = 13, key = "950983482b0692f78f6057baee94118c" }"#,
        ),
    ];
    let mut bufs: Vec<HeapBuf> = (0..BURST_MAX)
        .map(|_| HeapBuf::new(HeapBuf::HEADROOM, 2048))
        .collect();
    let mut verdicts = [Verdict::Forward; BURST_MAX];
    let mut run = |g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
                   name: &str,
                   snap: &rondo::datapath::Snapshot,
                   frames: &[Vec<u8>]| {
        let mut ctr = CoreCounters::default();
        g.bench_function(name, |b| {
            let mut base = 0;
            b.iter(|| {
                base = (base + BURST_MAX) & 1023;
                for (k, buf) in bufs.iter_mut().enumerate() {
                    buf.set_frame(&frames[base + k]);
                }
                process_burst(snap, &mut bufs, &mut verdicts, &mut ctr);
                black_box(&verdicts);
            })
        });
        assert_eq!(ctr.total_drops() + ctr.total_exceptions(), 0, "{name}");
        ctr
    };
    let plain_frames = quic_frames(configs[0].1);
    run(
        &mut g,
        "udp_burst_of_32_no_quic_lb",
        &quic_snapshot(None),
        &plain_frames,
    );
    for (name, q) in configs {
        let ctr = run(
            &mut g,
            &format!("quic_burst_of_32_{name}"),
            &quic_snapshot(Some(q)),
            &quic_frames(q),
        );
        let routed = ctr.quic_count(rondo::datapath::counters::QuicOutcome::Routed);
        assert_eq!(
            routed, ctr.forwarded,
            "{name}: every packet routed by its CID"
        );
    }
    g.finish();
}

criterion_group! {
    name = quic;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(2)).warm_up_time(std::time::Duration::from_millis(500));
    targets = quic_benches
}

criterion_group! {
    name = datapath;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(2)).warm_up_time(std::time::Duration::from_millis(500));
    targets = benches
}
criterion_main!(datapath, quic);
