//! Data-path micro-benchmarks on 64-byte TCP SYNs (60 bytes + FCS on the wire).
//! `cargo bench --bench datapath`; numbers go to perf/RESULTS.md.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rondo::config::native;
use rondo::datapath::classify::classify;
use rondo::datapath::encap::encapsulate;
use rondo::datapath::{
    process_burst, CoreCounters, HeapBuf, PacketBuf, Snapshot, Verdict, BURST_MAX,
};
use rondo::hash::{siphash24, SipKey};
use rondo::wire::{ethernet, Ipv4Packet, TcpPacket};

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

fn snapshot() -> Snapshot {
    let mut text = CONFIG.to_string();
    for i in 0..64 {
        text.push_str(&format!(
            "[[tables.backends]]\nip = \"10.0.{}.{}\"\n",
            i / 200,
            i % 200 + 1
        ));
    }
    let cfg = native::parse(&text, "bench.toml").unwrap();
    let native::NativeTables::Inline(specs) = cfg.tables else {
        unreachable!()
    };
    let tables = specs
        .into_iter()
        .map(|s| rondo::table::ForwardingTable::build(s, cfg.settings.row_policy).unwrap())
        .collect();
    Snapshot::compile(
        rondo::config::Config {
            settings: cfg.settings,
            tables,
            run: cfg.run,
        },
        None,
        1,
    )
    .unwrap()
}

/// 1024 different clients sending a SYN to 1.1.1.1:80, each frame 60 bytes.
fn frames() -> Vec<Vec<u8>> {
    (0..1024u32)
        .map(|i| {
            let src = (0x0a00_0000u32 + i.wrapping_mul(2_654_435_761) % 0x00ff_ffff).to_be_bytes();
            let mut f = vec![0u8; 60];
            f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
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

fn benches(c: &mut Criterion) {
    let snap = snapshot();
    let frames = frames();
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
    g.finish();
    assert_eq!(
        ctr.total_drops() + ctr.total_exceptions(),
        0,
        "bench traffic must all forward"
    );
}

criterion_group! {
    name = datapath;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(2)).warm_up_time(std::time::Duration::from_millis(500));
    targets = benches
}
criterion_main!(datapath);
