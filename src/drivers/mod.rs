//! Drivers: where packets come from and go to. Every driver implements the same boundary
//! ([`Port`], [`RxQueue`], [`TxQueue`] over a [`PacketBuf`]) and the runtime is generic over
//! it, so the driver is chosen once at start-up and the hot path is statically dispatched.
//!
//! - [`pool`]: pre-allocated packet buffers ([`PoolBuf`]), recycled, never allocated per packet.
//! - [`mem`]: lock-free in-process rings (demo, tests, benchmarks).
//! - [`pcap`]: capture files in and out.
//! - [`af_packet`]: Linux interfaces through PACKET_MMAP rings.
//! - [`tap`]: the kernel exception path (a TAP interface).
//! - [`spec`]: parsing `--port` specs.
//! - [`fault`]: fault injection around any port (a testing aid).
//! - `af_xdp` (cargo feature `af_xdp`): Linux interfaces through AF_XDP sockets, with an
//!   XDP program steering only VIP traffic to them.
//! - `dpdk` (cargo feature `dpdk`): DPDK ethdev ports, mbufs and mempools.

pub mod af_packet;
#[cfg(feature = "af_xdp")]
pub mod af_xdp;
#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod fault;
pub mod mem;
pub mod pcap;
pub mod pool;
pub mod spec;
pub mod tap;

pub use pool::{BufPool, PoolBuf};
pub use spec::PortSpec;

use std::sync::atomic::{AtomicU64, Ordering};

use crate::datapath::{PacketBuf, BURST_MAX};
use crate::wire::MacAddr;

/// A burst of packet buffers: at most [`BURST_MAX`], storage reserved once and reused.
pub struct Burst<B> {
    bufs: Vec<B>,
    /// Second buffer of the same capacity, for reordering without allocating.
    spare: Vec<B>,
}

impl<B> Default for Burst<B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B> Burst<B> {
    pub fn new() -> Self {
        Burst {
            bufs: Vec::with_capacity(BURST_MAX),
            spare: Vec::with_capacity(BURST_MAX),
        }
    }
    #[inline]
    pub fn len(&self) -> usize {
        self.bufs.len()
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.bufs.is_empty()
    }
    /// Free slots left in this burst.
    #[inline]
    pub fn room(&self) -> usize {
        BURST_MAX - self.bufs.len()
    }
    /// Add a buffer; gives it back when the burst is full (never grows the storage).
    #[inline]
    pub fn push(&mut self, b: B) -> Result<(), B> {
        if self.bufs.len() >= BURST_MAX {
            return Err(b);
        }
        self.bufs.push(b);
        Ok(())
    }
    #[inline]
    pub fn as_slice(&self) -> &[B] {
        &self.bufs
    }
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [B] {
        &mut self.bufs
    }
    /// Let a driver receive straight into the burst's free slots (at most [`BURST_MAX`] in
    /// all): `fill` gets them uninitialised and returns how many leading slots it wrote.
    /// Returns that count.
    ///
    /// # Safety
    /// `fill` must return at most the length of the slice it was given, and must have
    /// initialised that many leading slots, each with a buffer that nothing else owns.
    #[allow(unsafe_code)]
    #[inline]
    pub unsafe fn fill_raw(
        &mut self,
        fill: impl FnOnce(&mut [std::mem::MaybeUninit<B>]) -> usize,
    ) -> usize {
        let room = self.room();
        let len = self.bufs.len();
        let k = fill(&mut self.bufs.spare_capacity_mut()[..room]);
        debug_assert!(k <= room);
        let k = k.min(room);
        // SAFETY: k <= room, and the `room` slots after `len` exist (the slice above would
        // have panicked otherwise); by the caller's contract the first k of them are now
        // initialised and owned by this burst.
        unsafe { self.bufs.set_len(len + k) };
        k
    }
    /// Remove and yield the first `n` buffers (those a TX queue took).
    #[inline]
    pub fn drain_front(&mut self, n: usize) -> std::vec::Drain<'_, B> {
        let n = n.min(self.bufs.len());
        self.bufs.drain(..n)
    }
    /// Remove and yield every buffer.
    #[inline]
    pub fn drain(&mut self) -> std::vec::Drain<'_, B> {
        self.bufs.drain(..)
    }
    #[inline]
    pub fn pop(&mut self) -> Option<B> {
        self.bufs.pop()
    }
    /// Offer buffers front to back to `send` until it refuses one; the refused buffer and
    /// those after it stay in the burst, in order. Returns how many were sent.
    #[inline]
    pub fn send_each(&mut self, mut send: impl FnMut(B) -> Result<(), B>) -> usize {
        std::mem::swap(&mut self.bufs, &mut self.spare);
        let mut sent = 0;
        let mut refused = false;
        for b in self.spare.drain(..) {
            if refused {
                self.bufs.push(b);
                continue;
            }
            match send(b) {
                Ok(()) => sent += 1,
                Err(b) => {
                    refused = true;
                    self.bufs.push(b);
                }
            }
        }
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(unsafe_code)]
    fn fill_raw_keeps_what_the_driver_wrote() {
        let mut b: Burst<String> = Burst::new();
        b.push("kept".to_string()).unwrap();
        // SAFETY: the closure initialises exactly the 3 leading slots it reports.
        let n = unsafe {
            b.fill_raw(|slots| {
                assert_eq!(slots.len(), BURST_MAX - 1, "only the free slots");
                for (i, s) in slots.iter_mut().take(3).enumerate() {
                    s.write(format!("rx{i}"));
                }
                3
            })
        };
        assert_eq!(n, 3);
        assert_eq!(b.as_slice(), ["kept", "rx0", "rx1", "rx2"]);
        assert_eq!(b.room(), BURST_MAX - 4);
    }

    #[test]
    fn send_each_keeps_refused_buffers_in_order() {
        let mut b = Burst::new();
        for i in 0..BURST_MAX {
            b.push(i).unwrap();
        }
        assert_eq!(b.push(99), Err(99));
        let mut out = Vec::new();
        let n = b.send_each(|x| {
            if x < 5 {
                out.push(x);
                Ok(())
            } else {
                Err(x)
            }
        });
        assert_eq!(n, 5);
        assert_eq!(out, [0, 1, 2, 3, 4]);
        assert_eq!(b.as_slice(), &(5..BURST_MAX).collect::<Vec<_>>()[..]);
        assert_eq!(b.send_each(|_| Ok(())), BURST_MAX - 5);
        assert!(b.is_empty());
        for i in 0..BURST_MAX {
            b.push(i).unwrap();
        }
        assert_eq!(b.len(), BURST_MAX);
    }
}

/// Receive side of one queue, owned by one worker.
pub trait RxQueue: Send {
    type Buf: PacketBuf;
    /// Append up to `out.room()` received packets to `out`; returns how many. Never blocks.
    fn rx_burst(&mut self, out: &mut Burst<Self::Buf>) -> usize;
    /// Whether this queue will never receive again (a capture read to its end).
    fn is_exhausted(&self) -> bool {
        false
    }
    /// Called once on the worker thread before its first burst (DPDK registers the thread
    /// as an lcore here, so its mempool cache is used). Errors are logged by the caller.
    fn attach_thread(&mut self) -> Result<(), String> {
        Ok(())
    }
    /// Called once on the worker thread after its last burst.
    fn detach_thread(&mut self) {}
    /// Wait until a packet may be ready or about `timeout` passes, for a thread with
    /// nothing to do that must answer fast when something comes (pktgen's receiver). A
    /// queue with a descriptor blocks in poll(2) and wakes when a frame arrives; the
    /// default sleeps (at most 50 µs: a queue without a descriptor cannot be woken).
    fn wait(&mut self, timeout: std::time::Duration) {
        std::thread::sleep(timeout.min(std::time::Duration::from_micros(50)));
    }
}

/// Transmit side of one queue, owned by one worker (or the exception thread).
pub trait TxQueue: Send {
    type Buf: PacketBuf;
    /// Send packets from the front of `pkts`, removing those the queue took; returns how
    /// many. Packets left in `pkts` were refused (ring full): the caller retries or drops.
    /// Never blocks.
    fn tx_burst(&mut self, pkts: &mut Burst<Self::Buf>) -> usize;
    /// Push out anything batched inside the queue (called when the worker goes idle).
    fn flush(&mut self) {}
}

/// Counters a port keeps itself (what the driver or NIC saw).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Packets the driver or kernel dropped before we saw them (ring full, no buffer).
    pub rx_dropped: u64,
    /// Packets the port took but could not send, whatever the reason (the reasons the
    /// driver knows are counted again below).
    pub tx_dropped: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    /// Of `tx_dropped`: frames longer than the interface MTU allows, dropped before the
    /// TX ring.
    pub tx_too_big: u64,
    /// Of `tx_dropped`: frames the kernel refused to send again and again (the device or
    /// its veth peer drops them, say a peer MTU below the frame), taken out of the TX ring
    /// so the frames behind them go.
    pub tx_kernel_refused: u64,
}

/// Counters shared by a port and its queues: relaxed atomics, since they are statistics.
#[derive(Debug, Default)]
pub struct PortCounters {
    pub rx_packets: AtomicU64,
    pub rx_bytes: AtomicU64,
    pub rx_dropped: AtomicU64,
    pub rx_errors: AtomicU64,
    pub tx_packets: AtomicU64,
    pub tx_bytes: AtomicU64,
    pub tx_dropped: AtomicU64,
    pub tx_errors: AtomicU64,
    pub tx_too_big: AtomicU64,
    pub tx_kernel_refused: AtomicU64,
}

impl PortCounters {
    /// Add `n` to one counter (no write when `n` is 0).
    #[inline]
    pub fn add(c: &AtomicU64, n: u64) {
        if n > 0 {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// The counters as plain numbers.
    pub fn read(&self) -> PortStats {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        PortStats {
            rx_packets: l(&self.rx_packets),
            rx_bytes: l(&self.rx_bytes),
            rx_dropped: l(&self.rx_dropped),
            rx_errors: l(&self.rx_errors),
            tx_packets: l(&self.tx_packets),
            tx_bytes: l(&self.tx_bytes),
            tx_dropped: l(&self.tx_dropped),
            tx_errors: l(&self.tx_errors),
            tx_too_big: l(&self.tx_too_big),
            tx_kernel_refused: l(&self.tx_kernel_refused),
        }
    }
}

/// A network port: its queues (one RX/TX pair per worker) plus an extra TX queue for the
/// exception path (frames the kernel sends out through the port).
pub trait Port: Send + Sync {
    type Buf: PacketBuf + Send + 'static;
    type Rx: RxQueue<Buf = Self::Buf> + 'static;
    type Tx: TxQueue<Buf = Self::Buf> + 'static;

    /// Name for logs and stats (the spec as given).
    fn name(&self) -> &str;
    /// The port's own MAC (source of encapsulated frames), when it has one.
    fn mac(&self) -> Option<MacAddr>;
    /// Take the worker queues; called once. `n` is the number of workers.
    fn take_queues(&mut self, n: usize) -> Result<Vec<QueuePair<Self>>, DriverError>;
    /// A TX queue of its own for the exception path (kernel -> wire); called at most once,
    /// after [`Port::take_queues`]. `None`: the device has no spare TX queue, and the
    /// runtime sends kernel frames through worker 0's queue instead.
    fn take_exception_tx(&mut self) -> Result<Option<Self::Tx>, DriverError>;
    /// Make a buffer holding `frame` (for the exception path); `None` when the pool is empty.
    fn alloc(&self, frame: &[u8]) -> Option<Self::Buf>;
    /// Driver-level counters.
    fn stats(&self) -> PortStats;
    /// Extended counters by name (DPDK xstats); empty when the driver has none.
    fn xstats(&self) -> Vec<(String, u64)> {
        Vec::new()
    }
    /// Link state, when the driver knows it.
    fn link(&self) -> Option<LinkInfo> {
        None
    }
    /// Control-side upkeep, called about once a second by the director's main loop (never
    /// from a worker): e.g. re-reading the interface MTU, reading link notifications.
    /// Nothing by default.
    fn poll(&self) {}
    /// Why this port can never forward again, once that is so: its interface was deleted,
    /// or replaced by another of the same name (known from [`Port::poll`]). The director
    /// then stops and exits with a distinct status for its supervisor to restart it.
    /// `None` by default.
    fn gone(&self) -> Option<String> {
        None
    }
    /// Driver name for `show port info` (e.g. `af_packet`, `dpdk/net_ixgbe`).
    fn driver(&self) -> String {
        self.name().split(':').next().unwrap_or("").to_string()
    }
}

/// Link state of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkInfo {
    pub up: bool,
    /// 0: unknown.
    pub speed_mbps: u32,
    pub full_duplex: bool,
    /// Up/down transitions since the port opened, when the driver watches for them (and
    /// logs each one); `None`: the driver only reports the state when asked.
    pub changes: Option<u64>,
}

/// The read-only face of a running port (object safe), for stats and the console.
pub trait PortView: Send + Sync {
    fn name(&self) -> &str;
    fn mac(&self) -> Option<MacAddr>;
    fn stats(&self) -> PortStats;
    fn xstats(&self) -> Vec<(String, u64)>;
    fn link(&self) -> Option<LinkInfo>;
    fn poll(&self);
    fn gone(&self) -> Option<String>;
    fn driver(&self) -> String;
}

impl<P: Port> PortView for P {
    fn name(&self) -> &str {
        Port::name(self)
    }
    fn mac(&self) -> Option<MacAddr> {
        Port::mac(self)
    }
    fn stats(&self) -> PortStats {
        Port::stats(self)
    }
    fn xstats(&self) -> Vec<(String, u64)> {
        Port::xstats(self)
    }
    fn link(&self) -> Option<LinkInfo> {
        Port::link(self)
    }
    fn poll(&self) {
        Port::poll(self)
    }
    fn gone(&self) -> Option<String> {
        Port::gone(self)
    }
    fn driver(&self) -> String {
        Port::driver(self)
    }
}

/// One worker's RX and TX queue of port `P`.
pub type QueuePair<P> = (<P as Port>::Rx, <P as Port>::Tx);

/// Start-up errors of a driver, naming the setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("port {port:?}: {reason}")]
    Port { port: String, reason: String },
    #[error("port {port:?}: {op}: {source}")]
    Os {
        port: String,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("port spec {spec:?}: {reason}")]
    Spec { spec: String, reason: String },
    #[cfg(feature = "dpdk")]
    #[error(transparent)]
    Dpdk(#[from] dpdk::DpdkError),
    #[cfg(feature = "af_xdp")]
    #[error(transparent)]
    AfXdp(#[from] af_xdp::AfXdpError),
}
