//! The AF_PACKET and TAP drivers against real kernel interfaces: veth pairs made for each
//! test (removed again on drop, also when a test fails) and a TAP device.
//!
//! These need root and iproute2 (`ip`); without them each test says why and is counted as
//! skipped (`common::skip`; a failure with `CI=true`). Frames are told apart from the kernel's own chatter on the links (IPv6
//! ND/MLD...) by a marker in their payload.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, UdpSocket};
use std::time::{Duration, Instant};

mod common;

use common::veth::{ip, is_root, privileged, skip, Veth};
use rondo::datapath::PacketBuf;
use rondo::drivers::af_packet::{AfPacketOptions, AfPacketPort, AfPacketRx, AfPacketTx, RxRing};
use rondo::drivers::tap::TapDevice;
use rondo::drivers::{BufPool, Burst, DriverError, PoolBuf, Port, RxQueue, TxQueue};
use rondo::sys::poll::poll_readable;

/// IEEE 802 local experimental ethertype: nothing else on the link uses it.
const EXPERIMENTAL: u16 = 0x88b5;
const MARK: &[u8; 6] = b"RONDO!";
const DST: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const SRC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

fn pool() -> BufPool {
    BufPool::new(8192, 2048).unwrap()
}

/// Both receive ring kinds: the tests that receive run once with each (fresh ports on the
/// same veth pair).
const RINGS: [RxRing; 2] = [RxRing::V2, RxRing::V3];

/// 64 KiB blocks: 64 of them with V3 (4 MiB, frames packed), 128 with V2 (8 MiB, 4096
/// slots of 2 KiB), so either holds the 4000 frames the fanout test sends unread.
fn small_rings(rx: RxRing) -> AfPacketOptions {
    AfPacketOptions {
        rx_ring: rx,
        block_size: 1 << 16,
        block_count: match rx {
            RxRing::V2 => 128,
            RxRing::V3 => 64,
        },
        ..AfPacketOptions::default()
    }
}

fn open(iface: &str, queues: usize, rx: RxRing) -> (AfPacketPort, Vec<(AfPacketRx, AfPacketTx)>) {
    open_with(iface, queues, small_rings(rx))
}

fn open_with(
    iface: &str,
    queues: usize,
    opts: AfPacketOptions,
) -> (AfPacketPort, Vec<(AfPacketRx, AfPacketTx)>) {
    let rx = opts.rx_ring;
    let mut port = AfPacketPort::open(iface, pool(), opts).unwrap_or_else(|e| panic!("{e}"));
    let q = port.take_queues(queues).unwrap_or_else(|e| panic!("{e}"));
    assert!(q.iter().all(|(r, _)| r.rx_ring() == rx));
    (port, q)
}

/// An experimental-ethertype frame of `len` bytes carrying `tag` and `seq`.
fn marked(tag: u8, seq: u32, len: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(len);
    f.extend_from_slice(&DST);
    f.extend_from_slice(&SRC);
    f.extend_from_slice(&EXPERIMENTAL.to_be_bytes());
    f.extend_from_slice(MARK);
    f.push(tag);
    f.extend_from_slice(&seq.to_be_bytes());
    while f.len() < len {
        f.push((f.len() as u8).wrapping_mul(7) ^ (seq as u8));
    }
    f
}

/// The (tag, seq) of a frame from [`marked`] or [`udp_flow`], also behind one VLAN tag.
fn mark_of(f: &[u8]) -> Option<(u8, u32)> {
    let p = match u16::from_be_bytes([*f.get(12)?, *f.get(13)?]) {
        EXPERIMENTAL => f.get(14..)?,
        0x8100 if u16::from_be_bytes([*f.get(16)?, *f.get(17)?]) == EXPERIMENTAL => f.get(18..)?,
        0x0800 => f.get(14 + 20 + 8..)?,
        _ => return None,
    };
    if p.get(..6)? != MARK {
        return None;
    }
    Some((p[6], u32::from_be_bytes(p.get(7..11)?.try_into().ok()?)))
}

/// An IPv4/UDP frame of flow `flow` (source address and port vary) to a MAC no host has,
/// so the kernel ignores it.
fn udp_flow(tag: u8, flow: u16, seq: u32) -> Vec<u8> {
    let payload_len = 6 + 1 + 4 + 21;
    let mut f = Vec::new();
    f.extend_from_slice(&DST);
    f.extend_from_slice(&SRC);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let total = (20 + 8 + payload_len) as u16;
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&[10, 1, (flow >> 8) as u8, flow as u8]);
    f.extend_from_slice(&[10, 2, 0, 1]);
    f.extend_from_slice(&(1024 + flow).to_be_bytes());
    f.extend_from_slice(&80u16.to_be_bytes());
    f.extend_from_slice(&((8 + payload_len) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(MARK);
    f.push(tag);
    f.extend_from_slice(&seq.to_be_bytes());
    f.resize(14 + total as usize, 0xab);
    f
}

/// Send every frame through `tx`, retrying refused ones; returns how many went.
fn send_all(port: &AfPacketPort, tx: &mut AfPacketTx, frames: &[Vec<u8>]) -> usize {
    let mut burst: Burst<PoolBuf> = Burst::new();
    let mut sent = 0;
    for chunk in frames.chunks(32) {
        for f in chunk {
            burst
                .push(port.alloc(f).expect("pool buffer"))
                .ok()
                .expect("burst room");
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while !burst.is_empty() && Instant::now() < deadline {
            sent += tx.tx_burst(&mut burst);
            if !burst.is_empty() {
                tx.flush();
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        burst.drain().for_each(drop);
    }
    tx.flush();
    sent
}

/// Read every queue until `want` marked frames with `tag` arrived or `wait` passed;
/// returns them per queue, in arrival order.
fn collect(rxs: &mut [&mut AfPacketRx], tag: u8, want: usize, wait: Duration) -> Vec<Vec<Vec<u8>>> {
    collect_if(
        rxs,
        |f| mark_of(f).is_some_and(|(t, _)| t == tag),
        want,
        wait,
    )
}

/// Read every queue until `want` frames matching `keep` arrived or `wait` passed; returns
/// them per queue, in arrival order.
fn collect_if(
    rxs: &mut [&mut AfPacketRx],
    keep: impl Fn(&[u8]) -> bool,
    want: usize,
    wait: Duration,
) -> Vec<Vec<Vec<u8>>> {
    let mut got: Vec<Vec<Vec<u8>>> = vec![Vec::new(); rxs.len()];
    let deadline = Instant::now() + wait;
    let mut burst = Burst::new();
    while got.iter().map(Vec::len).sum::<usize>() < want && Instant::now() < deadline {
        let mut any = false;
        for (i, rx) in rxs.iter_mut().enumerate() {
            if rx.rx_burst(&mut burst) > 0 {
                any = true;
            }
            for b in burst.drain() {
                if keep(b.data()) {
                    got[i].push(b.data().to_vec());
                }
            }
        }
        if !any {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    got
}

#[test]
fn frames_cross_a_veth_pair_both_ways() {
    let Some(v) = Veth::new('x') else { return };
    for rx in RINGS {
        frames_cross(&v, rx);
    }
}

fn frames_cross(v: &Veth, rx: RxRing) {
    println!("frames_cross: rx={rx}");
    let (port_a, mut qa) = open(&v.a, 1, rx);
    let (port_b, mut qb) = open(&v.b, 1, rx);
    let (rx_a, tx_a) = &mut qa[0];
    let (rx_b, tx_b) = &mut qb[0];

    // B -> A: various sizes up to the MTU, one behind a VLAN tag (veth offloads the tag,
    // the driver must put it back).
    let mut frames: Vec<Vec<u8>> = (0..200u32)
        .map(|i| marked(1, i, 60 + (i as usize * 37) % 1455))
        .collect();
    frames.push(marked(1, 200, 1514));
    let mut tagged = marked(1, 201, 100);
    tagged.splice(12..12, [0x81, 0x00, 0x20, 0x07]);
    frames.push(tagged);
    assert_eq!(send_all(&port_b, tx_b, &frames), frames.len());
    let got = collect(&mut [rx_a], 1, frames.len(), Duration::from_secs(5));
    assert_eq!(got[0].len(), frames.len(), "frames B -> A");
    for (g, f) in got[0].iter().zip(&frames) {
        assert_eq!(g, f, "frame {:?} arrived changed", mark_of(f));
    }

    // A -> B, and A does not read back what it sent.
    let frames: Vec<Vec<u8>> = (0..100u32).map(|i| marked(2, i, 64 + i as usize)).collect();
    assert_eq!(send_all(&port_a, tx_a, &frames), frames.len());
    let got = collect(&mut [rx_b], 2, frames.len(), Duration::from_secs(5));
    assert_eq!(got[0], frames, "frames A -> B");
    let echo = collect(&mut [rx_a], 2, 1, Duration::from_millis(100));
    assert!(
        echo[0].is_empty(),
        "A read back {} frames it sent",
        echo[0].len()
    );

    // Frames the link cannot carry are taken, counted and never stall the queue.
    let mut burst = Burst::new();
    burst.push(port_a.alloc(&[0u8; 10]).unwrap()).ok().unwrap();
    burst
        .push(port_a.alloc(&marked(3, 0, 1600)).unwrap())
        .ok()
        .unwrap();
    burst
        .push(port_a.alloc(&marked(3, 1, 60)).unwrap())
        .ok()
        .unwrap();
    assert_eq!(tx_a.tx_burst(&mut burst), 3);
    let got = collect(&mut [rx_b], 3, 1, Duration::from_secs(2));
    assert_eq!(got[0], vec![marked(3, 1, 60)]);

    let sa = port_a.stats();
    assert!(sa.rx_packets >= 202, "{sa:?}");
    assert_eq!(sa.tx_packets, 101, "{sa:?}");
    assert_eq!(sa.tx_errors, 1, "{sa:?}");
    // Both were taken and not sent: both are drops (the runt was once only an error, so
    // the port's taken = tx_packets + tx_dropped fell one short).
    assert_eq!((sa.tx_too_big, sa.tx_dropped), (1, 2), "{sa:?}");
    assert_eq!(sa.rx_dropped, 0, "{sa:?}");
    assert_eq!(port_a.mac(), Some(read_mac(&v.a)));
}

fn read_mac(iface: &str) -> rondo::wire::MacAddr {
    let s = std::fs::read_to_string(format!("/sys/class/net/{iface}/address")).unwrap();
    let b: Vec<u8> = s
        .trim()
        .split(':')
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect();
    rondo::wire::MacAddr::from_slice(&b).unwrap()
}

#[test]
fn fanout_spreads_flows_over_queues_without_loss() {
    let Some(v) = Veth::new('f') else { return };
    for rx in RINGS {
        fanout_spreads(&v, rx);
    }
}

fn fanout_spreads(v: &Veth, rx: RxRing) {
    println!("fanout_spreads: rx={rx}");
    let (port_a, mut qa) = open(&v.a, 2, rx);
    assert!(port_a.fanout_group().is_some());
    let (port_b, mut qb) = open(&v.b, 1, rx);
    let frames: Vec<Vec<u8>> = (0..4000u32)
        .map(|i| udp_flow(4, (i % 256) as u16, i))
        .collect();
    assert_eq!(send_all(&port_b, &mut qb[0].1, &frames), frames.len());
    let (q0, q1) = qa.split_at_mut(1);
    let got = collect(
        &mut [&mut q0[0].0, &mut q1[0].0],
        4,
        frames.len(),
        Duration::from_secs(5),
    );
    let per_queue: Vec<usize> = got.iter().map(Vec::len).collect();
    assert_eq!(
        per_queue.iter().sum::<usize>(),
        frames.len(),
        "per queue {per_queue:?}"
    );
    assert!(
        per_queue.iter().all(|&n| n > 0),
        "all on one queue: {per_queue:?}"
    );
    let mut seen = HashSet::new();
    let mut flow_queue = HashMap::new();
    for (q, frames) in got.iter().enumerate() {
        for f in frames {
            let (_, seq) = mark_of(f).unwrap();
            assert!(seen.insert(seq), "frame {seq} read twice");
            let flow = seq % 256;
            assert_eq!(
                *flow_queue.entry(flow).or_insert(q),
                q,
                "flow {flow} split over queues"
            );
        }
    }
    println!("fanout: {per_queue:?} over 2 queues");

    // IPv4 fragments are delivered as they are (not reassembled, which would make frames
    // larger than the MTU), and the fragments of one datagram stay on one queue.
    let frags: Vec<Vec<u8>> = (0..64u8).flat_map(|d| fragments(d, 2000)).collect();
    assert!(frags.iter().all(|f| f.len() <= 1514));
    assert_eq!(send_all(&port_b, &mut qb[0].1, &frags), frags.len());
    let is_frag = |f: &[u8]| f.len() > 34 && f[12..14] == [8, 0] && f[26..28] == [10, 3];
    let (q0, q1) = qa.split_at_mut(1);
    let got = collect_if(
        &mut [&mut q0[0].0, &mut q1[0].0],
        is_frag,
        frags.len(),
        Duration::from_secs(5),
    );
    let per_queue: Vec<usize> = got.iter().map(Vec::len).collect();
    assert_eq!(
        per_queue.iter().sum::<usize>(),
        frags.len(),
        "fragments per queue {per_queue:?}"
    );
    let mut datagram_queue = HashMap::new();
    for (q, frames) in got.iter().enumerate() {
        for f in frames {
            assert!(
                frags.contains(f),
                "a fragment arrived changed ({} bytes)",
                f.len()
            );
            assert_eq!(
                *datagram_queue.entry(f[28]).or_insert(q),
                q,
                "datagram {} split over queues",
                f[28]
            );
        }
    }
}

/// Datagram `d` (`len` bytes of UDP) as two IPv4 fragments from 10.3.d.1.
fn fragments(d: u8, len: usize) -> Vec<Vec<u8>> {
    let mut udp = Vec::with_capacity(len);
    udp.extend_from_slice(&(4000 + u16::from(d)).to_be_bytes());
    udp.extend_from_slice(&80u16.to_be_bytes());
    udp.extend_from_slice(&(len as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.resize(len, d);
    let (first, rest) = udp.split_at(1480);
    [(0u16, first, true), (1480, rest, false)]
        .into_iter()
        .map(|(off, chunk, more)| {
            let mut f = Vec::new();
            f.extend_from_slice(&DST);
            f.extend_from_slice(&SRC);
            f.extend_from_slice(&[8, 0, 0x45, 0]);
            f.extend_from_slice(&((20 + chunk.len()) as u16).to_be_bytes());
            f.extend_from_slice(&[0, d]);
            f.extend_from_slice(&((u16::from(more) << 13) | (off / 8)).to_be_bytes());
            f.extend_from_slice(&[64, 17, 0, 0, 10, 3, d, 1, 10, 2, 0, 1]);
            f.extend_from_slice(chunk);
            f
        })
        .collect()
}

#[test]
fn drops_are_counted_and_the_ring_recovers() {
    let Some(v) = Veth::new('r') else { return };
    for rx in RINGS {
        drops_counted(&v, rx);
    }
}

fn drops_counted(v: &Veth, rx: RxRing) {
    println!("drops_counted: rx={rx}");
    // A tiny ring (2 blocks) and a pool of 16 buffers.
    let opts = AfPacketOptions {
        rx_ring: rx,
        block_size: 1 << 16,
        block_count: 2,
        ..AfPacketOptions::default()
    };
    let small = BufPool::new(16, 2048).unwrap();
    let mut port_a = AfPacketPort::open(&v.a, small.clone(), opts).unwrap();
    let mut qa = port_a.take_queues(1).unwrap();
    let (port_b, mut qb) = open(&v.b, 1, rx);

    // Nobody reads A while B sends far more than its ring holds: the kernel drops.
    let frames: Vec<Vec<u8>> = (0..3000u32).map(|i| marked(8, i, 200)).collect();
    assert_eq!(send_all(&port_b, &mut qb[0].1, &frames), frames.len());
    let s = port_a.stats();
    assert!(s.rx_dropped > 0, "kernel drops not counted: {s:?}");

    // Reading while holding every buffer: the pool runs dry, the frames left in the ring
    // are dropped and counted.
    let mut held = Vec::new();
    let mut burst = Burst::new();
    let deadline = Instant::now() + Duration::from_millis(500);
    while Instant::now() < deadline {
        qa[0].0.rx_burst(&mut burst);
        held.extend(burst.drain());
    }
    assert_eq!(held.len(), 16);
    let after = port_a.stats();
    assert!(
        after.rx_dropped > s.rx_dropped,
        "pool-empty drops not counted: {after:?}"
    );
    assert_eq!(after.rx_packets, 16);
    drop(held);

    // The ring was handed back block by block: new frames flow again.
    let frames: Vec<Vec<u8>> = (0..10u32).map(|i| marked(9, i, 100)).collect();
    assert_eq!(send_all(&port_b, &mut qb[0].1, &frames), frames.len());
    let got = collect(&mut [&mut qa[0].0], 9, frames.len(), Duration::from_secs(3));
    assert_eq!(got[0], frames);
    assert_eq!(small.available(), 16);
}

/// Frames of `tag` seen on `rx` within `wait` (all of them: waits the whole time).
fn tags_seen(rx: &mut AfPacketRx, tag: u8, wait: Duration) -> Vec<u32> {
    let got = collect(&mut [rx], tag, usize::MAX, wait);
    got[0]
        .iter()
        .filter_map(|f| mark_of(f))
        .map(|(_, s)| s)
        .collect()
}

#[test]
fn frames_the_peer_refuses_are_dropped_counted_and_the_ring_moves() {
    let Some(v) = Veth::new('m') else { return };
    for rx in RINGS {
        peer_refuses(&v, rx);
    }
}

fn peer_refuses(v: &Veth, rx: RxRing) {
    println!("peer_refuses: rx={rx}");
    let (port_a, mut qa) = open(&v.a, 1, rx);
    let (_port_b, mut qb) = open(&v.b, 1, rx);
    // The peer's MTU is below the big frames: the veth drops them and the kernel gives
    // each back to the ring with ENOBUFS, again on every kick.
    ip(&["link", "set", &v.b, "mtu", "500"]).unwrap();
    let big: Vec<Vec<u8>> = (0..5u32).map(|i| marked(21, i, 1000)).collect();
    let small: Vec<Vec<u8>> = (0..20u32).map(|i| marked(22, i, 100)).collect();
    let tx = &mut qa[0].1;
    assert_eq!(send_all(&port_a, tx, &big), big.len());
    assert_eq!(send_all(&port_a, tx, &small), small.len());
    // The small frames behind the refused ones arrive: the ring is not wedged.
    let got = collect(&mut [&mut qb[0].0], 22, small.len(), Duration::from_secs(3));
    let seqs: Vec<u32> = got[0]
        .iter()
        .filter_map(|f| mark_of(f))
        .map(|(_, s)| s)
        .collect();
    assert_eq!(
        seqs,
        (0..20).collect::<Vec<u32>>(),
        "frames behind a refused one never went"
    );
    assert_eq!(got[0], small);
    let s = port_a.stats();
    assert_eq!(s.tx_kernel_refused, big.len() as u64, "{s:?}");
    assert_eq!(s.tx_dropped, big.len() as u64, "{s:?}");

    // MTU fixed: big frames flow again, and none of the refused ones goes out late.
    ip(&["link", "set", &v.b, "mtu", "1500"]).unwrap();
    let again: Vec<Vec<u8>> = (0..10u32).map(|i| marked(23, i, 1000)).collect();
    assert_eq!(send_all(&port_a, tx, &again), again.len());
    let got = collect(&mut [&mut qb[0].0], 23, again.len(), Duration::from_secs(3));
    assert_eq!(got[0], again);
    for _ in 0..3 {
        tx.flush();
    }
    let late = tags_seen(&mut qb[0].0, 21, Duration::from_millis(300));
    assert!(late.is_empty(), "refused frames went out late: {late:?}");
    let s = port_a.stats();
    assert_eq!(s.tx_kernel_refused, big.len() as u64, "{s:?}");
    assert_eq!(
        s.tx_packets,
        (big.len() + small.len() + again.len()) as u64,
        "{s:?}"
    );
}

/// A marked frame of `len` bytes behind one 802.1Q tag (VLAN 7).
fn tagged(tag: u8, seq: u32, len: usize) -> Vec<u8> {
    let mut f = marked(tag, seq, len - 4);
    f.splice(12..12, [0x81, 0x00, 0x00, 0x07]);
    f
}

#[test]
fn mtu_changes_after_start_are_tracked_and_oversize_frames_counted() {
    let Some(v) = Veth::new('u') else { return };
    for rx in RINGS {
        mtu_changes(&v, rx);
    }
}

fn mtu_changes(v: &Veth, rx: RxRing) {
    println!("mtu_changes: rx={rx}");
    for end in [&v.a, &v.b] {
        ip(&["link", "set", end, "mtu", "1500"]).unwrap();
    }
    let (port_a, mut qa) = open(&v.a, 1, rx);
    let (_port_b, mut qb) = open(&v.b, 1, rx);
    assert_eq!(port_a.mtu(), 1500);
    // Lowered after start: the port notices when its control side polls (stats does).
    ip(&["link", "set", &v.a, "mtu", "600"]).unwrap();
    let _ = port_a.stats();
    let big: Vec<Vec<u8>> = (0..5u32).map(|i| marked(31, i, 1000)).collect();
    let tx = &mut qa[0].1;
    // Refused frames are taken (and dropped), not left in the burst.
    assert_eq!(send_all(&port_a, tx, &big), big.len());
    let s = port_a.stats();
    assert_eq!(s.tx_too_big, big.len() as u64, "{s:?}");
    assert_eq!(s.tx_dropped, big.len() as u64, "{s:?}");
    assert_eq!(s.tx_packets, 0, "refused frames counted as sent: {s:?}");
    let late = tags_seen(&mut qb[0].0, 31, Duration::from_millis(300));
    assert!(late.is_empty(), "oversize frames arrived: {late:?}");

    // The limit is the MTU plus the Ethernet header, plus a VLAN tag when there is one.
    let edge = vec![
        marked(32, 0, 614),
        tagged(32, 1, 618),
        marked(32, 2, 615),
        tagged(32, 3, 619),
    ];
    assert_eq!(send_all(&port_a, tx, &edge), edge.len());
    let got = collect(&mut [&mut qb[0].0], 32, 2, Duration::from_secs(3));
    assert!(
        got[0] == edge[..2].to_vec(),
        "{} frames arrived, not the ones sent",
        got[0].len()
    );
    let s = port_a.stats();
    assert_eq!(s.tx_too_big, big.len() as u64 + 2, "{s:?}");
    assert_eq!(s.tx_packets, 2, "{s:?}");

    // Raised again: the same frames go and arrive.
    ip(&["link", "set", &v.a, "mtu", "1500"]).unwrap();
    let _ = port_a.stats();
    let again: Vec<Vec<u8>> = (0..10u32).map(|i| marked(33, i, 1000)).collect();
    assert_eq!(send_all(&port_a, tx, &again), again.len());
    let got = collect(&mut [&mut qb[0].0], 33, again.len(), Duration::from_secs(3));
    assert!(
        got[0] == again,
        "{} frames arrived, not the ones sent",
        got[0].len()
    );
    let s = port_a.stats();
    assert_eq!(s.tx_packets, 2 + again.len() as u64, "{s:?}");
    assert_eq!(s.tx_too_big, big.len() as u64 + 2, "{s:?}");
    assert_eq!(s.tx_kernel_refused, 0, "{s:?}");
    assert_eq!(port_a.mtu(), 1500);
}

#[test]
fn a_raised_mtu_lets_bigger_frames_go_up_to_what_the_ring_holds() {
    let Some(v) = Veth::new('w') else { return };
    for rx in RINGS {
        raised_mtu(&v, rx);
    }
}

fn raised_mtu(v: &Veth, rx: RxRing) {
    println!("raised_mtu: rx={rx}");
    ip(&["link", "set", &v.b, "mtu", "1500"]).unwrap();
    ip(&["link", "set", &v.a, "mtu", "600"]).unwrap();
    let (port_a, mut qa) = open(&v.a, 1, rx);
    // B's V2 slots are sized at open for MTU 1500; 4 KiB slots hold the 2016-byte frames
    // sent below (with V3 frame_size only sizes B's TX slots).
    let (_port_b, mut qb) = open_with(
        &v.b,
        1,
        AfPacketOptions {
            frame_size: 4096,
            ..small_rings(rx)
        },
    );
    assert_eq!(port_a.mtu(), 600);
    // Raised after start: frames that now fit go.
    ip(&["link", "set", &v.a, "mtu", "1500"]).unwrap();
    let _ = port_a.stats();
    let frames: Vec<Vec<u8>> = (0..10u32).map(|i| marked(41, i, 1000)).collect();
    let tx = &mut qa[0].1;
    assert_eq!(send_all(&port_a, tx, &frames), frames.len());
    let got = collect(
        &mut [&mut qb[0].0],
        41,
        frames.len(),
        Duration::from_secs(3),
    );
    assert!(
        got[0] == frames,
        "{} frames arrived, not the ones sent",
        got[0].len()
    );
    let s = port_a.stats();
    assert_eq!((s.tx_packets, s.tx_too_big), (10, 0), "{s:?}");

    // Raised past what a ring slot holds (2048-byte slots: 2016 bytes of frame): still
    // refused, and counted.
    ip(&["link", "set", &v.b, "mtu", "4000"]).unwrap();
    ip(&["link", "set", &v.a, "mtu", "4000"]).unwrap();
    let _ = port_a.stats();
    let over: Vec<Vec<u8>> = (0..3u32).map(|i| marked(42, i, 2030)).collect();
    assert_eq!(send_all(&port_a, tx, &over), over.len());
    let s = port_a.stats();
    assert_eq!((s.tx_packets, s.tx_too_big), (10, 3), "{s:?}");
    let fits: Vec<Vec<u8>> = (0..3u32).map(|i| marked(43, i, 2016)).collect();
    assert_eq!(send_all(&port_a, tx, &fits), fits.len());
    let got = collect(&mut [&mut qb[0].0], 43, fits.len(), Duration::from_secs(3));
    assert!(
        got[0] == fits,
        "{} frames arrived, not the ones sent",
        got[0].len()
    );
    assert_eq!(port_a.mtu(), 4000);
}

/// With V2 the RX slots are sized at open for the MTU then: a frame longer than a slot
/// holds (the MTU raised later) is cut short by the kernel, counted as an RX error and
/// never delivered, and the frames behind it are.
#[test]
fn v2_frames_longer_than_a_slot_are_counted_errors_and_the_ring_moves() {
    let Some(v) = Veth::new('l') else { return };
    let (port_a, mut qa) = open_with(
        &v.a,
        1,
        AfPacketOptions {
            frame_size: 2048,
            ..small_rings(RxRing::V2)
        },
    );
    let (port_b, mut qb) = open_with(
        &v.b,
        1,
        AfPacketOptions {
            frame_size: 4096,
            ..small_rings(RxRing::V3)
        },
    );
    for end in [&v.a, &v.b] {
        ip(&["link", "set", end, "mtu", "4000"]).unwrap();
    }
    let _ = port_b.stats();
    // 2048-byte slots hold 2048 - 66 bytes of frame.
    let mut frames: Vec<Vec<u8>> = (0..3u32).map(|i| marked(51, i, 2016)).collect();
    frames.extend((3..6u32).map(|i| marked(51, i, 1982)));
    frames.extend((6..9u32).map(|i| marked(51, i, 100)));
    assert_eq!(send_all(&port_b, &mut qb[0].1, &frames), frames.len());
    let got = collect(&mut [&mut qa[0].0], 51, 6, Duration::from_secs(3));
    assert_eq!(got[0], frames[3..].to_vec());
    assert_eq!(port_a.rx_slot_max(), Some(1982));
    let s = port_a.stats();
    assert_eq!(s.rx_errors, 3, "{s:?}");
    assert_eq!(s.rx_dropped, 0, "{s:?}");
}

#[test]
fn throughput_over_veth() {
    let Some(v) = Veth::new('t') else { return };
    for rx in RINGS {
        throughput(&v, rx);
    }
}

fn throughput(v: &Veth, kind: RxRing) {
    let (_port_a, mut qa) = open(&v.a, 1, kind);
    let (port_b, mut qb) = open(&v.b, 1, kind);
    let rx = &mut qa[0].0;
    let tx = &mut qb[0].1;
    let n = 200_000u32;
    let frame = marked(5, 0, 64);
    let mut burst = Burst::new();
    let mut inb = Burst::new();
    let (mut sent, mut recvd) = (0u32, 0u32);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(20);
    while recvd < n && Instant::now() < deadline {
        while sent < n && burst.room() > 0 {
            burst.push(port_b.alloc(&frame).unwrap()).ok().unwrap();
            sent += 1;
        }
        tx.tx_burst(&mut burst);
        sent -= burst.len() as u32;
        burst.drain().for_each(drop);
        while rx.rx_burst(&mut inb) > 0 {
            recvd += inb
                .drain()
                .filter(|b| mark_of(b.data()).is_some_and(|(t, _)| t == 5))
                .count() as u32;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "throughput: {recvd} of {sent} 64-byte frames in {secs:.3} s = {:.0} frames/s (rx={kind}; send and receive on one thread)",
        f64::from(recvd) / secs
    );
    assert_eq!(recvd, n, "lost frames (stats {:?})", _port_a.stats());
}

#[test]
fn missing_interface_is_an_error_naming_it() {
    let e = AfPacketPort::open("rdo-nosuch0", pool(), AfPacketOptions::default()).unwrap_err();
    assert!(matches!(e, DriverError::Port { .. }));
    let s = e.to_string();
    assert!(
        s.contains("rdo-nosuch0") && s.contains("no such interface"),
        "{s}"
    );
    // The loopback exists everywhere: without privileges the error says what is missing,
    // with them that it is not Ethernet.
    let s = AfPacketPort::open("lo", pool(), AfPacketOptions::default())
        .unwrap_err()
        .to_string();
    let why = if is_root() {
        "not an Ethernet interface"
    } else {
        "needs root or CAP_NET_RAW"
    };
    assert!(s.contains("\"af_packet:lo\"") && s.contains(why), "{s}");
    println!("error reads: {s}");
}

#[test]
fn interface_down_is_an_error() {
    let Some(v) = Veth::new('d') else { return };
    ip(&["link", "set", &v.a, "down"]).unwrap();
    let e = AfPacketPort::open(&v.a, pool(), AfPacketOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains(&v.a) && e.contains("down"), "{e}");
    println!("error reads: {e}");
}

#[test]
fn bad_ring_options_are_errors() {
    let Some(v) = Veth::new('o') else { return };
    let opts = AfPacketOptions {
        block_size: 5000,
        ..AfPacketOptions::default()
    };
    let e = AfPacketPort::open(&v.a, pool(), opts)
        .unwrap_err()
        .to_string();
    assert!(e.contains(&v.a) && e.contains("block_size"), "{e}");
    let mut port = AfPacketPort::open(&v.a, pool(), small_rings(RxRing::default())).unwrap();
    let e = port.take_queues(0).unwrap_err().to_string();
    assert!(
        e.contains("0 queues asked, between 1 and 256 possible"),
        "{e}"
    );
    let q = port.take_queues(1).unwrap();
    assert!(port
        .take_queues(1)
        .unwrap_err()
        .to_string()
        .contains("already"));
    let _exc = port.take_exception_tx().unwrap();
    let e = port.take_exception_tx().unwrap_err().to_string();
    assert!(e.contains("exception TX queue already taken"), "{e}");
    drop(q);
}

fn read_counter(iface: &str, name: &str) -> u64 {
    std::fs::read_to_string(format!("/sys/class/net/{iface}/statistics/{name}"))
        .map(|s| s.trim().parse().unwrap_or(0))
        .unwrap_or(0)
}

#[test]
fn tap_carries_frames_both_ways() {
    if let Err(why) = privileged() {
        return skip(&why);
    }
    let pid = std::process::id() % 100_000;
    let name = format!("rdotap{pid}");
    let tap = TapDevice::open(&name).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(tap.name(), name);
    let flags = std::fs::read_to_string(format!("/sys/class/net/{name}/flags")).unwrap();
    let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).unwrap();
    assert_eq!(flags & 1, 1, "TAP is up");
    let mac = tap.mac();
    assert_eq!(mac, read_mac(&name));
    let mut buf = vec![0u8; 2048];
    // No IPv6 chatter (router solicitations, DAD) on the TAP: what the kernel sends out of
    // it below is only what this test provokes.
    if std::path::Path::new("/proc/sys/net/ipv6").exists() {
        std::fs::write(format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6"), "1").unwrap();
    }

    // Into the kernel: the TAP's receive counter moves.
    let before = read_counter(&name, "rx_packets");
    assert!(tap.send(&marked(6, 0, 60)).unwrap());
    assert_eq!(read_counter(&name, "rx_packets"), before + 1);

    // Out of the kernel: a datagram to a neighbour on the TAP's subnet makes the kernel ask
    // for its MAC (ARP)...
    let x = (pid % 250) as u8;
    let (ours, peer) = (Ipv4Addr::new(198, 19, x, 1), Ipv4Addr::new(198, 19, x, 2));
    ip(&["addr", "add", &format!("{ours}/24"), "dev", &name]).unwrap();
    let sock = UdpSocket::bind((ours, 0)).unwrap();
    sock.send_to(b"RONDO-TAP", (peer, 9)).unwrap();
    let arp = read_until(&tap, &mut buf, |f| {
        f.len() >= 42
            && f[12..14] == [0x08, 0x06]
            && f[20..22] == [0, 1]
            && f[38..42] == peer.octets()
    })
    .expect("the kernel's ARP request for the neighbour");
    assert_eq!(&arp[6..12], &mac.0, "ARP sent from the TAP's MAC");

    // ...and once we answer (a frame written to the TAP), sends the datagram to us.
    let ours_mac = [0x02, 0x52, 0x44, 0x4f, 0x00, 0x02];
    let mut reply = Vec::new();
    reply.extend_from_slice(&mac.0);
    reply.extend_from_slice(&ours_mac);
    reply.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2]);
    reply.extend_from_slice(&ours_mac);
    reply.extend_from_slice(&peer.octets());
    reply.extend_from_slice(&mac.0);
    reply.extend_from_slice(&ours.octets());
    reply.resize(60, 0);
    assert!(tap.send(&reply).unwrap());
    let udp = read_until(&tap, &mut buf, |f| {
        f.len() > 42 && f[12..14] == [0x08, 0x00] && f.ends_with(b"RONDO-TAP")
    })
    .expect("the datagram, once the neighbour is known");
    assert_eq!(&udp[..6], &ours_mac);
    assert_eq!(&udp[30..34], &peer.octets());

    // Nothing left (no IPv6, the neighbour is known): recv says so instead of blocking, and
    // poll agrees.
    while tap.recv(&mut buf).unwrap().is_some() {}
    assert_eq!(tap.recv(&mut buf).unwrap(), None);
    assert!(
        !poll_readable(tap.fd(), 0).unwrap(),
        "poll says readable with nothing queued"
    );

    drop(tap);
    assert!(
        !std::path::Path::new(&format!("/sys/class/net/{name}")).exists(),
        "TAP removed on drop"
    );
}

/// Read frames from the TAP (waiting with poll) until one matches, for up to 3 s.
fn read_until(tap: &TapDevice, buf: &mut [u8], want: impl Fn(&[u8]) -> bool) -> Option<Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if !poll_readable(tap.fd(), 100).unwrap() {
            continue;
        }
        while let Some(n) = tap.recv(buf).unwrap() {
            if want(&buf[..n]) {
                return Some(buf[..n].to_vec());
            }
        }
    }
    None
}

#[test]
fn tap_name_errors_name_the_tap() {
    let e = TapDevice::open("rdo-this-is-too-long")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("rdo-this-is-too-long") && e.contains("15"),
        "{e}"
    );
    if !is_root() {
        let e = TapDevice::open("rdotapperm").unwrap_err().to_string();
        assert!(
            e.contains("rdotapperm") && (e.contains("CAP_NET_ADMIN") || e.contains("/dev/net/tun")),
            "{e}"
        );
        println!("error reads: {e}");
        return skip("needs root for the name-clash case");
    }
    // An existing non-TAP interface of that name.
    let Some(v) = Veth::new('n') else { return };
    let e = TapDevice::open(&v.a).unwrap_err().to_string();
    assert!(e.contains(&v.a) && e.contains("not a TAP"), "{e}");
    println!("error reads: {e}");
}

/// `RxQueue::wait` blocks in poll(2) on the ring and wakes when a frame comes: a frame sent
/// while the queue waits (with a 20 s limit) is read right after the wait returns. A wait
/// that never woke would take the full 20 s per call; one that did not block at all would
/// still pass here, which the pktgen latency figures in perf/ show instead.
#[test]
fn wait_wakes_when_a_frame_arrives() {
    let Some(v) = Veth::new('z') else { return };
    for rx in RINGS {
        println!("wait_wakes: rx={rx}");
        let (_port_a, mut qa) = open(&v.a, 1, rx);
        let (port_b, mut qb) = open(&v.b, 1, rx);
        let (rx_a, _) = &mut qa[0];
        let (_, tx_b) = &mut qb.remove(0);
        let limit = Duration::from_secs(20);
        let start = Instant::now();
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(200));
                assert_eq!(send_all(&port_b, tx_b, &[marked(9, 1, 100)]), 1);
            });
            let mut burst = Burst::new();
            'outer: loop {
                rx_a.wait(limit);
                assert!(
                    start.elapsed() < limit,
                    "the wait did not wake for the frame"
                );
                rx_a.rx_burst(&mut burst);
                for b in burst.drain() {
                    if mark_of(b.data()) == Some((9, 1)) {
                        break 'outer;
                    }
                }
            }
        });
    }
}
