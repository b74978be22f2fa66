//! `rondo pktgen`: a traffic generator that checks the director's work.
//!
//! - [`flows`]: flows from address/port ranges and a kind mix, each with one prebuilt frame
//!   carrying a trailer (flow id, sequence number, send time); sending only copies the frame
//!   into a driver buffer and patches 16 bytes and the L4 checksum.
//! - [`Pacer`]: packets per second against a monotonic clock (or as fast as possible).
//! - [`verify`]: decapsulates what comes back, checks the outer headers and backends against
//!   the table computed independently, per-flow loss/duplicates/reordering, latency.
//! - [`replay`]: frames from a capture instead of built flows, classified for the verifier.
//! - [`report`]: the JSON report and the dashboard line.
//! - [`run`]: a transmit thread and a receive thread over any [`GenTx`] / [`GenRx`]: a
//!   driver's queues ([`PortTx`], [`PortRx`]), the peer of an in-process port
//!   ([`MemPeerTx`], [`MemPeerRx`]) or a capture file ([`PcapOut`]).

pub mod flows;
pub mod replay;
pub mod report;
pub mod verify;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::DataLink;

use crate::datapath::{PacketBuf, BURST_MAX};
use crate::drivers::mem::MemPeer;
use crate::drivers::{BufPool, Burst, DriverError, PoolBuf, Port, RxQueue, TxQueue};

pub use flows::{FlowSpec, GeneratedFlow, Kind, Mix, Range, Size, Vip};
pub use report::{Latency, Report};
pub use verify::{Verification, Verifier};

#[derive(Debug, thiserror::Error)]
pub enum PktgenError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Setup(String),
    #[error(transparent)]
    Driver(#[from] DriverError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("sending: {0}")]
    Tx(String),
}

/// The sending side of whatever pktgen drives.
pub trait GenTx: Send {
    type Buf: PacketBuf + Send;
    /// A buffer holding a copy of `frame`; `None` when buffers are exhausted for now.
    fn alloc(&mut self, frame: &[u8]) -> Option<Self::Buf>;
    /// Send from the front of `burst`; refused buffers stay. Errors end the run.
    fn send(&mut self, burst: &mut Burst<Self::Buf>) -> Result<usize, PktgenError>;
    /// Called once when sending is over.
    fn finish(&mut self) -> Result<(), PktgenError> {
        Ok(())
    }
    /// Frames the port took but dropped since it opened (its `tx_dropped`: too big for
    /// the MTU, refused by the kernel); 0 when it cannot tell.
    fn port_dropped(&self) -> u64 {
        0
    }
}

/// The receiving side.
pub trait GenRx: Send {
    type Buf: PacketBuf + Send;
    fn recv(&mut self, burst: &mut Burst<Self::Buf>) -> usize;
    /// Called on the receiving thread before the first [`GenRx::recv`].
    fn attach(&mut self) -> Result<(), String> {
        Ok(())
    }
    /// Called on the receiving thread after the last [`GenRx::recv`].
    fn detach(&mut self) {}
    /// Nothing came: wait for the next frame, at most about `timeout`
    /// ([`crate::drivers::RxQueue::wait`]).
    fn wait(&mut self, timeout: Duration) {
        std::thread::sleep(timeout.min(Duration::from_micros(50)));
    }
}

/// A driver port's TX queue.
pub struct PortTx<'a, P: Port> {
    pub port: &'a P,
    pub tx: P::Tx,
}

impl<P: Port> GenTx for PortTx<'_, P> {
    type Buf = P::Buf;
    fn alloc(&mut self, frame: &[u8]) -> Option<P::Buf> {
        self.port.alloc(frame)
    }
    fn send(&mut self, burst: &mut Burst<P::Buf>) -> Result<usize, PktgenError> {
        let n = self.tx.tx_burst(burst);
        self.tx.flush();
        Ok(n)
    }
    fn port_dropped(&self) -> u64 {
        self.port.stats().tx_dropped
    }
}

/// A driver port's RX queue.
pub struct PortRx<P: Port> {
    pub rx: P::Rx,
}

impl<P: Port> GenRx for PortRx<P> {
    type Buf = P::Buf;
    fn recv(&mut self, burst: &mut Burst<P::Buf>) -> usize {
        self.rx.rx_burst(burst)
    }
    fn attach(&mut self) -> Result<(), String> {
        self.rx.attach_thread()
    }
    fn detach(&mut self) {
        self.rx.detach_thread();
    }
    fn wait(&mut self, timeout: Duration) {
        self.rx.wait(timeout);
    }
}

/// The network side of an in-process port: frames go to the RX ring of their flow (by the
/// IP addresses, like RSS), so each flow stays in order through one worker.
pub struct MemPeerTx(pub MemPeer);

fn ring_of(frame: &[u8], rings: usize) -> usize {
    let addrs = match frame.get(12..14) {
        Some([0x86, 0xdd]) => frame.get(22..54),
        _ => frame.get(26..34),
    };
    let h = addrs
        .unwrap_or_default()
        .iter()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(*b)));
    h as usize % rings.max(1)
}

impl GenTx for MemPeerTx {
    type Buf = PoolBuf;
    fn alloc(&mut self, frame: &[u8]) -> Option<PoolBuf> {
        let mut b = self.0.alloc()?;
        b.set_frame(frame);
        Some(b)
    }
    fn send(&mut self, burst: &mut Burst<PoolBuf>) -> Result<usize, PktgenError> {
        let peer = &self.0;
        let rings = peer.queues();
        Ok(burst.send_each(|b| peer.send_buf(ring_of(b.data(), rings), b)))
    }
}

/// What the director behind a [`MemPeer`] sent.
pub struct MemPeerRx(pub MemPeer);

impl GenRx for MemPeerRx {
    type Buf = PoolBuf;
    fn recv(&mut self, burst: &mut Burst<PoolBuf>) -> usize {
        let mut n = 0;
        while burst.room() > 0 {
            let Some(b) = self.0.recv() else { break };
            let _ = burst.push(b);
            n += 1;
        }
        n
    }
}

/// Writes what would be sent to a capture file (timestamps: the pacing schedule).
pub struct PcapOut {
    path: PathBuf,
    pool: BufPool,
    writer: Option<PcapWriter<BufWriter<File>>>,
    epoch: Instant,
}

impl PcapOut {
    pub fn create(path: &Path) -> Result<PcapOut, PktgenError> {
        let io = |source| PktgenError::Io {
            path: path.to_path_buf(),
            source,
        };
        let f = File::create(path).map_err(io)?;
        let header = PcapHeader {
            datalink: DataLink::ETHERNET,
            ..PcapHeader::default()
        };
        let writer = PcapWriter::with_header(BufWriter::new(f), header)
            .map_err(|e| PktgenError::Tx(format!("{}: {e}", path.display())))?;
        Ok(PcapOut {
            path: path.to_path_buf(),
            pool: BufPool::new(4 * BURST_MAX, flows::MAX_FRAME).map_err(PktgenError::Setup)?,
            writer: Some(writer),
            epoch: Instant::now(),
        })
    }
}

impl GenTx for PcapOut {
    type Buf = PoolBuf;
    fn alloc(&mut self, frame: &[u8]) -> Option<PoolBuf> {
        self.pool.get_with(frame)
    }
    fn send(&mut self, burst: &mut Burst<PoolBuf>) -> Result<usize, PktgenError> {
        let Some(w) = self.writer.as_mut() else {
            return Err(PktgenError::Tx("capture already closed".into()));
        };
        let ts = self.epoch.elapsed();
        let mut n = 0;
        for b in burst.drain() {
            let d = b.data();
            w.write_packet(&PcapPacket::new(ts, d.len() as u32, d))
                .map_err(|e| PktgenError::Tx(format!("{}: {e}", self.path.display())))?;
            n += 1;
        }
        Ok(n)
    }
    fn finish(&mut self) -> Result<(), PktgenError> {
        if let Some(w) = self.writer.take() {
            w.into_writer().flush().map_err(|source| PktgenError::Io {
                path: self.path.clone(),
                source,
            })?;
        }
        Ok(())
    }
}

/// Sending schedule: packet `n` is due at `n / pps` seconds after the start.
pub struct Pacer {
    pps: Option<u64>,
    start: Instant,
}

impl Pacer {
    pub fn new(pps: Option<u64>) -> Pacer {
        Pacer {
            pps: pps.filter(|p| *p > 0),
            start: Instant::now(),
        }
    }
    /// How many packets may go now, `sent` having gone already (at most a burst).
    #[inline]
    pub fn allowed(&self, sent: u64) -> usize {
        match self.pps {
            None => BURST_MAX,
            Some(r) => {
                let due =
                    (self.start.elapsed().as_nanos() * u128::from(r) / 1_000_000_000) as u64 + 1;
                due.saturating_sub(sent).min(BURST_MAX as u64) as usize
            }
        }
    }
    /// Wait until the next packet is (nearly) due: sleep when it is far, yield when close.
    pub fn wait(&self, sent: u64) {
        let Some(r) = self.pps else {
            std::thread::yield_now();
            return;
        };
        let at = Duration::from_nanos((u128::from(sent) * 1_000_000_000 / u128::from(r)) as u64);
        let now = self.start.elapsed();
        match at.checked_sub(now) {
            Some(d) if d > Duration::from_micros(200) => {
                std::thread::sleep(d - Duration::from_micros(100))
            }
            Some(_) => std::thread::yield_now(),
            None => {}
        }
    }
}

/// How long and how fast to send.
#[derive(Debug, Clone)]
pub struct Options {
    /// Packets per second; `None`: as fast as the port takes them.
    pub rate: Option<u64>,
    pub duration: Option<Duration>,
    pub count: Option<u64>,
    /// After sending, wait this long without progress for the last packets.
    pub drain: Duration,
    /// Set to stop early (Ctrl-C).
    pub stop: Arc<AtomicBool>,
    /// Dashboard interval (`None`: no dashboard).
    pub dashboard: Option<Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            rate: Some(1000),
            duration: Some(Duration::from_secs(1)),
            count: None,
            drain: Duration::from_millis(500),
            stop: Arc::new(AtomicBool::new(false)),
            dashboard: None,
        }
    }
}

/// Counters both threads publish for the dashboard.
#[derive(Default)]
struct Live {
    tx_packets: AtomicU64,
    tx_bytes: AtomicU64,
    rx_packets: AtomicU64,
    rx_bytes: AtomicU64,
    verified: AtomicU64,
    bad: AtomicU64,
    foreign: AtomicU64,
    /// Latency p50, p99, max in ns.
    lat: [AtomicU64; 3],
    /// The receive side has emptied its queue: sending may start.
    rx_ready: AtomicBool,
}

struct TxResult {
    sent: Vec<u64>,
    packets: u64,
    bytes: u64,
    refused: u64,
    /// Frames made but never taken by the port (it refused them until the end).
    unsent: u64,
    /// Frames the port took and dropped during the run.
    port_dropped: u64,
    seconds: f64,
}

/// After the run's end (deadline, count or stop), how long the frames still held are
/// offered to a port that refuses them before they are given up as unsent.
const END_GRACE: Duration = Duration::from_millis(50);

fn transmit<T: GenTx>(
    mut tx: T,
    flows: &[GeneratedFlow],
    opts: &Options,
    epoch: Instant,
    live: &Live,
) -> Result<TxResult, PktgenError> {
    let n = flows.len();
    let mut sent = vec![0u64; n];
    let mut burst: Burst<T::Buf> = Burst::new();
    while !live.rx_ready.load(Ordering::Acquire) && !opts.stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_micros(100));
    }
    let pacer = Pacer::new(opts.rate);
    let limit = opts.count.unwrap_or(u64::MAX);
    let deadline = opts.duration.map(|d| pacer.start + d);
    let dropped_before = tx.port_dropped();
    let (mut k, mut queued, mut packets, mut bytes, mut refused) = (0usize, 0u64, 0u64, 0u64, 0u64);
    let mut unsent = 0u64;
    // When the run ended with frames still held (the port refusing them).
    let mut ended: Option<Instant> = None;
    loop {
        let stopping = opts.stop.load(Ordering::Relaxed)
            || queued >= limit
            || deadline.is_some_and(|d| Instant::now() >= d);
        if stopping && burst.is_empty() {
            break;
        }
        if stopping {
            let since = *ended.get_or_insert_with(Instant::now);
            if opts.stop.load(Ordering::Relaxed) || since.elapsed() >= END_GRACE {
                // The run is over: what the port would not take was never sent.
                let left = burst.len();
                for j in 0..left {
                    let f = (k - left + j) % n;
                    sent[f] -= 1;
                }
                unsent += left as u64;
                drop(burst.drain());
                break;
            }
        }
        if !stopping {
            let room = pacer
                .allowed(queued)
                .min(burst.room())
                .min((limit - queued).min(BURST_MAX as u64) as usize);
            if room > 0 {
                let now = epoch.elapsed().as_nanos() as u64;
                for _ in 0..room {
                    let fl = &flows[k % n];
                    let Some(mut b) = tx.alloc(&fl.frame) else {
                        break;
                    };
                    fl.stamp(b.data_mut(), sent[k % n], now);
                    sent[k % n] += 1;
                    let _ = burst.push(b);
                    k += 1;
                    queued += 1;
                }
            }
        }
        if burst.is_empty() {
            pacer.wait(queued);
            continue;
        }
        let before: usize = burst.as_slice().iter().map(|b| b.data().len()).sum();
        let took = tx.send(&mut burst)?;
        let after: usize = burst.as_slice().iter().map(|b| b.data().len()).sum();
        packets += took as u64;
        bytes += (before - after) as u64;
        live.tx_packets.store(packets, Ordering::Relaxed);
        live.tx_bytes.store(bytes, Ordering::Relaxed);
        if !burst.is_empty() {
            refused += 1;
            std::thread::yield_now();
        }
    }
    let seconds = pacer.start.elapsed().as_secs_f64();
    tx.finish()?;
    if unsent > 0 {
        tracing::warn!(
            frames = unsent,
            "pktgen: the port refused frames until the end of the run; they were not sent"
        );
    }
    Ok(TxResult {
        sent,
        packets,
        bytes,
        refused,
        unsent,
        port_dropped: tx.port_dropped().saturating_sub(dropped_before),
        seconds,
    })
}

/// Discard what the receive queue holds before the first packet is sent (late replies
/// to an earlier run, say): they would otherwise be judged as this run's packets. Stops
/// at the first empty poll, or after `STALE_DRAIN_MAX` on a link that never goes quiet.
fn discard_stale<R: GenRx>(rx: &mut R, burst: &mut Burst<R::Buf>) -> u64 {
    let start = Instant::now();
    let mut stale = 0u64;
    while start.elapsed() < STALE_DRAIN_MAX {
        let got = rx.recv(burst);
        if got == 0 {
            break;
        }
        stale += got as u64;
        drop(burst.drain());
    }
    stale
}

/// Sets its flag when dropped (on return or unwind).
struct ReadyOnDrop<'a>(&'a AtomicBool);

impl Drop for ReadyOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// The longest the receive side spends discarding stale frames before sending starts.
const STALE_DRAIN_MAX: Duration = Duration::from_millis(100);

/// Longest the receiver blocks with nothing received (how late it sees `stop`).
const RX_WAIT: Duration = Duration::from_millis(2);

fn receive<R: GenRx>(
    mut rx: R,
    mut v: Verifier,
    epoch: Instant,
    live: &Live,
    stop: &AtomicBool,
) -> (Verifier, u64) {
    if let Err(e) = rx.attach() {
        tracing::warn!("pktgen: receive queue: {e}");
    }
    let mut burst: Burst<R::Buf> = Burst::new();
    let stale = {
        // Sending starts when this is dropped, even if discarding panics.
        let _ready = ReadyOnDrop(&live.rx_ready);
        discard_stale(&mut rx, &mut burst)
    };
    if stale > 0 {
        tracing::info!(
            frames = stale,
            "pktgen: discarded frames queued before sending"
        );
    }
    let mut rx_packets = 0u64;
    let mut last_lat = Instant::now();
    loop {
        if rx.recv(&mut burst) == 0 {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            // Woken by the next frame (poll(2) on drivers with a descriptor): a fixed
            // sleep here was most of the latency pktgen measured (50 us asked, ~100 us
            // slept with the default timer slack).
            rx.wait(RX_WAIT);
            continue;
        }
        let now = epoch.elapsed().as_nanos() as u64;
        for b in burst.drain() {
            v.check(b.data(), now);
            rx_packets += 1;
        }
        live.rx_packets.store(rx_packets, Ordering::Relaxed);
        live.rx_bytes.store(v.rx_bytes, Ordering::Relaxed);
        live.verified.store(v.verified, Ordering::Relaxed);
        live.bad
            .store(v.wrong_backend + v.bad_header, Ordering::Relaxed);
        live.foreign.store(v.foreign, Ordering::Relaxed);
        if last_lat.elapsed() >= Duration::from_millis(200) {
            let l = v.latency();
            for (a, x) in live.lat.iter().zip([l.p50_us, l.p99_us, l.max_us]) {
                a.store((x * 1000.0) as u64, Ordering::Relaxed);
            }
            last_lat = Instant::now();
        }
    }
    drop(burst);
    rx.detach();
    (v, stale)
}

/// Send `flows` through `tx` as `opts` says and, with `rx` and a verifier, check every
/// frame that comes back. `dashboard` gets one line per `opts.dashboard` interval.
pub fn run<T: GenTx, R: GenRx>(
    port: &str,
    tx: T,
    rx: Option<(R, Verifier)>,
    flows: &[GeneratedFlow],
    opts: &Options,
    mut dashboard: impl FnMut(&str),
) -> Result<Report, PktgenError> {
    if flows.is_empty() {
        return Err(PktgenError::Usage("no flows".into()));
    }
    if opts.duration.is_none() && opts.count.is_none() {
        return Err(PktgenError::Usage("give a duration or a count".into()));
    }
    let live = Live::default();
    let epoch = Instant::now();
    let rx_stop = AtomicBool::new(false);
    let verifying = rx.is_some();
    if !verifying {
        live.rx_ready.store(true, Ordering::Release);
    }
    let (txr, verifier) = std::thread::scope(|s| {
        let txh = std::thread::Builder::new()
            .name("pktgen-tx".into())
            .spawn_scoped(s, || transmit(tx, flows, opts, epoch, &live))
            .map_err(|e| PktgenError::Setup(format!("spawning the TX thread: {e}")))?;
        let rxh = match rx {
            Some((rx, v)) => Some(
                std::thread::Builder::new()
                    .name("pktgen-rx".into())
                    .spawn_scoped(s, || receive(rx, v, epoch, &live, &rx_stop))
                    .map_err(|e| {
                        // Stop the TX thread, which would otherwise wait for this one.
                        opts.stop.store(true, Ordering::Relaxed);
                        live.rx_ready.store(true, Ordering::Release);
                        PktgenError::Setup(format!("spawning the RX thread: {e}"))
                    })?,
            ),
            None => None,
        };
        let mut last = (Instant::now(), 0u64, 0u64, 0u64, 0u64);
        let mut show = |last: &mut (Instant, u64, u64, u64, u64)| {
            let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
            let now = (
                l(&live.tx_packets),
                l(&live.tx_bytes),
                l(&live.rx_packets),
                l(&live.rx_bytes),
            );
            let line = report::dashboard_line(
                epoch.elapsed().as_secs_f64(),
                last.0.elapsed().as_secs_f64(),
                (now.0 - last.1, now.1 - last.2),
                (now.2.saturating_sub(last.3), now.3.saturating_sub(last.4)),
                now.0,
                l(&live.verified),
                l(&live.bad),
                l(&live.foreign),
                (
                    l(&live.lat[0]) as f64 / 1000.0,
                    l(&live.lat[1]) as f64 / 1000.0,
                    l(&live.lat[2]) as f64 / 1000.0,
                ),
                verifying,
            );
            dashboard(&line);
            *last = (Instant::now(), now.0, now.1, now.2, now.3);
        };
        while !txh.is_finished() {
            std::thread::sleep(Duration::from_millis(20));
            if opts.dashboard.is_some_and(|d| last.0.elapsed() >= d) {
                show(&mut last);
            }
        }
        let txr = txh
            .join()
            .map_err(|_| PktgenError::Tx("the TX thread panicked".into()))??;
        // Wait for the last packets: until all are back or nothing moves for `drain`.
        let mut seen = (Instant::now(), u64::MAX);
        while verifying && !opts.stop.load(Ordering::Relaxed) {
            let done = live.verified.load(Ordering::Relaxed) + live.bad.load(Ordering::Relaxed);
            if done >= txr.packets || seen.0.elapsed() >= opts.drain {
                break;
            }
            if done != seen.1 {
                seen = (Instant::now(), done);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        rx_stop.store(true, Ordering::Relaxed);
        let v = match rxh {
            Some(h) => Some(
                h.join()
                    .map_err(|_| PktgenError::Tx("the RX thread panicked".into()))?,
            ),
            None => None,
        };
        if opts.dashboard.is_some() {
            show(&mut last);
        }
        Ok::<_, PktgenError>((txr, v))
    })?;
    let achieved = txr.packets as f64 / txr.seconds.max(1e-9);
    let mut r = Report {
        port: port.to_string(),
        flows: flows.len() as u32,
        requested_pps: opts.rate,
        achieved_tx_pps: achieved,
        rate_not_reached: opts.rate.is_some_and(|r| achieved < r as f64 * 0.98),
        tx_seconds: txr.seconds,
        tx_packets: txr.packets,
        tx_bytes: txr.bytes,
        tx_gbps: txr.bytes as f64 * 8.0 / txr.seconds.max(1e-9) / 1e9,
        tx_refused: txr.refused,
        tx_unsent: txr.unsent,
        tx_port_dropped: txr.port_dropped,
        verifying,
        rx_packets: 0,
        rx_bytes: 0,
        rx_pps: 0.0,
        verified: 0,
        verified_alt: 0,
        wrong_backend: 0,
        bad_header: 0,
        foreign: 0,
        stale: 0,
        seq: report::FlowTotals::default(),
        not_expected_back: 0,
        latency: Latency::default(),
        examples: Vec::new(),
        ok: false,
    };
    if let Some((v, stale)) = verifier {
        r.stale = stale;
        r.rx_packets = v.verified + v.wrong_backend + v.bad_header + v.foreign;
        r.rx_bytes = v.rx_bytes;
        r.rx_pps = r.rx_packets as f64 / txr.seconds.max(1e-9);
        r.verified = v.verified;
        r.verified_alt = v.verified_alt;
        r.wrong_backend = v.wrong_backend;
        r.bad_header = v.bad_header;
        r.foreign = v.foreign;
        r.seq = v.flow_totals(&txr.sent);
        r.not_expected_back = txr
            .sent
            .iter()
            .zip(&v.unforwardable)
            .filter(|(_, u)| **u)
            .map(|(n, _)| n)
            .sum();
        r.latency = v.latency();
        r.examples = v.examples.clone();
    }
    r.judge();
    Ok(r)
}
