//! The bare AF_XDP forwarder `perf/run afxdp` measures the director against: one AF_XDP
//! socket on queue 0 of IFACE, every IP frame steered to it, each received frame sent
//! straight back out with its MAC addresses swapped. The same driver and UMEM frames as
//! `rondo run --port af_xdp:IFACE` (no copy), with no director work at all.
//!
//! `cargo run --release --features af_xdp --example afxdp_reflect -- IFACE [copy|zerocopy|auto]`
//! (root); runs until SIGINT or SIGTERM, then prints the frames it reflected.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rondo::datapath::PacketBuf;
use rondo::drivers::af_xdp::{AfXdpPort, XdpMode};
use rondo::drivers::{Burst, Port, RxQueue, TxQueue};

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let iface = args
        .next()
        .ok_or("usage: afxdp_reflect IFACE [auto|copy|zerocopy]")?;
    let mode = match args.next().as_deref() {
        None | Some("auto") => XdpMode::Auto,
        Some("copy") => XdpMode::Copy,
        Some("zerocopy") => XdpMode::Zerocopy,
        Some(m) => return Err(format!("mode {m:?}: auto, copy or zerocopy")),
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).map_err(|e| e.to_string())?;
    }
    let mut port = AfXdpPort::open(&iface, Some(1), mode, false).map_err(|e| e.to_string())?;
    port.steering()
        .set(&[
            (std::net::Ipv4Addr::UNSPECIFIED.into(), 0),
            (std::net::Ipv6Addr::UNSPECIFIED.into(), 0),
        ])
        .map_err(|e| e.to_string())?;
    let (mut rx, mut tx) = port
        .take_queues(1)
        .map_err(|e| e.to_string())?
        .pop()
        .ok_or("no queue")?;
    eprintln!("afxdp_reflect: {} on {iface}", port.driver());
    let mut burst = Burst::new();
    let mut reflected = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if rx.rx_burst(&mut burst) == 0 {
            tx.flush();
            std::hint::spin_loop();
            continue;
        }
        for b in burst.as_mut_slice() {
            let d = b.data_mut();
            if d.len() >= 12 {
                let (dst, src) = d.split_at_mut(6);
                dst.swap_with_slice(&mut src[..6]);
            }
        }
        reflected += tx.tx_burst(&mut burst) as u64;
        burst.drain().for_each(drop);
    }
    println!("reflected {reflected}");
    Ok(())
}
