//! Forwarding throughput of the whole runtime (workers + snapshot + driver), in Mpps.
//! `cargo bench --bench forwarding` prints one line per scenario:
//! - mem, 1 and 2 workers: a generator thread feeds prebuilt 64-byte SYNs into the RX rings,
//!   a sink thread drains the TX ring (both compete with the workers for this machine's cores);
//! - af_packet on a veth pair, 1 worker (root only): the generator sends on one end, the
//!   director forwards on the other end and sends back out of it, the sink counts GUE frames.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rondo::datapath::PacketBuf;
use rondo::drivers::af_packet::{AfPacketOptions, AfPacketPort};
use rondo::drivers::{mem, BufPool, Burst, Port, RxQueue, TxQueue};
use rondo::runtime::{Runtime, RuntimeOptions};

mod common;

use common::{frames, snapshot};

fn mem_scenario(workers: usize, secs: f64) -> f64 {
    let pool = BufPool::new(16384, 256).unwrap();
    let (port, peer) = mem::pair("bench", workers, 2048, pool).unwrap();
    let rt = Runtime::start(
        port,
        snapshot(None),
        RuntimeOptions {
            workers,
            ..Default::default()
        },
    )
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let frames = frames([2, 0, 0, 0, 0, 1]);
    let gen = {
        let (peer, stop) = (peer.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                if peer.send(i % workers, &frames[i & 1023]) {
                    i += 1;
                } else {
                    std::thread::yield_now();
                }
            }
        })
    };
    let received = Arc::new(AtomicU64::new(0));
    let sink = {
        let (peer, stop, received) = (peer.clone(), stop.clone(), received.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                match peer.recv() {
                    Some(_) => n += 1,
                    None => std::thread::yield_now(),
                }
            }
            received.store(n, Ordering::Relaxed);
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let (t0, f0) = (Instant::now(), rt.totals().forwarded);
    std::thread::sleep(Duration::from_secs_f64(secs));
    let (t1, f1) = (Instant::now(), rt.totals().forwarded);
    stop.store(true, Ordering::Relaxed);
    gen.join().unwrap();
    sink.join().unwrap();
    drop(rt);
    (f1 - f0) as f64 / (t1 - t0).as_secs_f64() / 1e6
}

fn af_packet_scenario(secs: f64) -> Option<(f64, f64)> {
    let ok = std::process::Command::new("ip")
        .args([
            "link",
            "add",
            "rdobencha",
            "type",
            "veth",
            "peer",
            "name",
            "rdobenchb",
        ])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        println!("af_packet veth: skipped (needs root and iproute2)");
        return None;
    }
    struct Cleanup;
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::process::Command::new("ip")
                .args(["link", "del", "rdobencha"])
                .status();
        }
    }
    let _c = Cleanup;
    for n in ["rdobencha", "rdobenchb"] {
        let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{n}/disable_ipv6"), "1");
        std::process::Command::new("ip")
            .args(["link", "set", n, "up"])
            .status()
            .unwrap();
    }
    let director = AfPacketPort::open(
        "rdobencha",
        BufPool::new(16384, 2048).unwrap(),
        AfPacketOptions::default(),
    )
    .unwrap();
    let dmac = director.mac().unwrap();
    let rt = Runtime::start(director, snapshot(Some(dmac)), RuntimeOptions::default()).unwrap();
    let mut peer = AfPacketPort::open(
        "rdobenchb",
        BufPool::new(16384, 2048).unwrap(),
        AfPacketOptions::default(),
    )
    .unwrap();
    let (mut rx, mut tx) = peer.take_queues(1).unwrap().pop().unwrap();
    let peer = Arc::new(peer);
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let gen = {
        let (peer, stop, sent) = (peer.clone(), stop.clone(), sent.clone());
        let frames = frames(dmac.0);
        std::thread::spawn(move || {
            let mut i = 0;
            let mut b = Burst::new();
            while !stop.load(Ordering::Relaxed) {
                while b.room() > 0 {
                    let Some(buf) = peer.alloc(&frames[i & 1023]) else {
                        break;
                    };
                    let _ = b.push(buf);
                    i += 1;
                }
                let n = tx.tx_burst(&mut b);
                sent.fetch_add(n as u64, Ordering::Relaxed);
                tx.flush();
            }
        })
    };
    let got = Arc::new(AtomicU64::new(0));
    let sink = {
        let (stop, got) = (stop.clone(), got.clone());
        std::thread::spawn(move || {
            let mut b = Burst::new();
            while !stop.load(Ordering::Relaxed) {
                if rx.rx_burst(&mut b) == 0 {
                    std::thread::yield_now();
                }
                let gue = b
                    .drain()
                    .filter(|p| p.data().get(36..38) == Some(&[0x4c, 0x43]))
                    .count();
                got.fetch_add(gue as u64, Ordering::Relaxed);
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let (t0, f0, g0) = (
        Instant::now(),
        rt.totals().forwarded,
        got.load(Ordering::Relaxed),
    );
    std::thread::sleep(Duration::from_secs_f64(secs));
    let (t1, f1, g1) = (
        Instant::now(),
        rt.totals().forwarded,
        got.load(Ordering::Relaxed),
    );
    stop.store(true, Ordering::Relaxed);
    gen.join().unwrap();
    sink.join().unwrap();
    drop(rt);
    let dt = (t1 - t0).as_secs_f64();
    Some(((f1 - f0) as f64 / dt / 1e6, (g1 - g0) as f64 / dt / 1e6))
}

fn main() {
    // `cargo test --benches` runs this with --bench absent: keep it short then.
    let secs = if std::env::args().any(|a| a == "--bench") {
        3.0
    } else {
        0.2
    };
    println!(
        "forwarding/mem 1 worker:  {:.2} Mpps",
        mem_scenario(1, secs)
    );
    println!(
        "forwarding/mem 2 workers: {:.2} Mpps",
        mem_scenario(2, secs)
    );
    if let Some((fwd, back)) = af_packet_scenario(secs) {
        println!("forwarding/af_packet veth 1 worker: {fwd:.2} Mpps forwarded by the director, {back:.2} Mpps of GUE received by the peer");
    }
}
