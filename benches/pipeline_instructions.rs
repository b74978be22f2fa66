//! A fixed amount of pipeline work (no timing harness), for counting instructions per
//! packet, which unlike wall-clock time does not move with the load of a shared machine.
//! This VM has no hardware counters, so `perf/run` counts with valgrind:
//!
//! `RONDO_BURSTS=20000 valgrind --tool=callgrind target/release/deps/pipeline_instructions-*`
//!
//! The same 64-byte SYN bursts as `benches/datapath.rs`; run once with RONDO_BURSTS=0 to
//! subtract the set-up. With RONDO_EXPRESS=0 the express lane is off (every packet takes the
//! general path, as `pipeline_burst_of_32_general`), to count what the lane saves.

mod common;

use std::hint::black_box;

use rondo::datapath::{process_burst, CoreCounters, HeapBuf, PacketBuf, Verdict, BURST_MAX};

fn main() {
    let bursts: usize = std::env::var("RONDO_BURSTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let mut snap = common::snapshot(None);
    if std::env::var("RONDO_EXPRESS").is_ok_and(|v| v == "0") {
        snap.disable_express_lane();
    }
    let frames = common::frames([2, 0, 0, 0, 0, 1]);
    let mut bufs: Vec<HeapBuf> = (0..BURST_MAX).map(|_| HeapBuf::new(128, 2048)).collect();
    let mut verdicts = [Verdict::Forward; BURST_MAX];
    let mut ctr = CoreCounters::default();
    let mut base = 0;
    for _ in 0..bursts {
        base = (base + BURST_MAX) & 1023;
        for (k, buf) in bufs.iter_mut().enumerate() {
            buf.set_frame(&frames[base + k]);
        }
        process_burst(&snap, &mut bufs, &mut verdicts, &mut ctr);
        black_box(&verdicts);
    }
    assert_eq!(ctr.forwarded, (bursts * BURST_MAX) as u64);
    black_box(bufs[0].data());
    println!("pipeline_instructions: {} packets", bursts * BURST_MAX);
}
