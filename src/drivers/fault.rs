//! Fault injection, a testing aid (in the spirit of smoltcp's `FaultInjector`): a
//! [`FaultPort`] wraps any [`Port`], and its queues ([`FaultRx`], [`FaultTx`]) wrap the
//! inner port's, statically dispatched. A [`FaultPlan`] says which faults happen when:
//!
//! | fault | what the wrapper does |
//! | --- | --- |
//! | `tx-refuse` | leaves the burst untouched, as a full ring does (the worker retries, then counts `tx_refused`) |
//! | `tx-fail` | takes the packets and loses them (counted: `tx_failed`, and in the port's `tx_dropped`) |
//! | `rx-drop` | drops received packets (counted: `rx_dropped`, and in the port's `rx_dropped`) |
//! | `rx-truncate=N` | cuts received frames to N bytes (counted: `rx_truncated`) |
//! | `rx-delay=K` | holds received packets for K polls of the queue, then hands them over (counted: `rx_delayed`) |
//! | `rx-reorder` | reverses the order of the packets of a received burst (counted: `rx_reordered`) |
//! | `rx-stall` | blocks the RX call, and so the worker thread, for the whole `@ms=A..B` window, as a driver call that hangs does (counted: `rx_stalls`, `rx_stalled_ms`); only with `@ms=` |
//!
//! Each fault has a schedule (after `@`): `every=N` (every Nth burst that carries packets),
//! `bursts=A..B` (those bursts, counted from 0, B excluded), `rate=P` (each packet, or each
//! burst for the burst-wide faults `tx-refuse`, `rx-delay` and `rx-reorder`, with probability
//! P percent, from a seeded xorshift, so a plan replays the same way), `ms=A..B` (milliseconds
//! since the port was made), or none (always). Tests can also switch each fault on and off
//! through a [`FaultHandle`], and read what the wrapper did ([`FaultStats`]) so that every
//! packet stays accounted for.
//!
//! As a port spec (`rondo run`): `fault:PLAN/SPEC`, PLAN being comma-separated faults plus
//! `seed=N` and `no-exception-tx` (the port offers no exception TX queue, so kernel frames
//! go through worker 0), e.g. `fault:tx-refuse@ms=1000..3000,rx-drop@rate=5/af_packet:eth0`, or
//! `fault:rx-stall@ms=5000..7000/af_packet:eth0` for a worker that hangs two seconds (the
//! runtime's progress stops: the watchdog ping is withheld, `[bgp]` withdraws the VIPs).
//! A stall ends early when its rule is switched off through the [`FaultHandle`].
//!
//! Nothing is allocated per packet: the hold queue of `rx-delay` is reserved when the
//! queues are taken; it passes packets through undelayed (and counts them so) when full.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::{Burst, DriverError, LinkInfo, Port, PortStats, QueuePair, RxQueue, TxQueue};
use crate::datapath::{PacketBuf, BURST_MAX};
use crate::wire::MacAddr;

/// Longest `rx-delay`, in polls (its hold queue is sized for it).
pub const DELAY_MAX: u16 = 64;

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAction {
    /// Leave the TX burst in place (a full ring).
    RefuseTx,
    /// Take TX packets and lose them.
    FailTx,
    /// Drop received packets.
    DropRx,
    /// Cut received frames to this many bytes.
    TruncateRx(u16),
    /// Hold received packets for this many polls of the queue.
    DelayRx(u16),
    /// Reverse the order of a received burst.
    ReorderRx,
    /// Block the RX call until the `ms=A..B` window ends (a hung driver call).
    StallRx,
}

impl FaultAction {
    fn is_tx(self) -> bool {
        matches!(self, FaultAction::RefuseTx | FaultAction::FailTx)
    }
    /// Decided once per burst rather than per packet (for `rate=`).
    fn burst_wide(self) -> bool {
        matches!(
            self,
            FaultAction::RefuseTx | FaultAction::DelayRx(_) | FaultAction::ReorderRx
        )
    }
}

/// When a fault happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultWhen {
    Always,
    /// Every Nth burst carrying packets (N >= 1): bursts N-1, 2N-1, ...
    Every(u64),
    /// Bursts `from..to` (counted from 0 per queue, `to` excluded).
    Bursts(u64, u64),
    /// With this probability, in parts per million.
    Rate(u32),
    /// Milliseconds `from..to` since the port was made.
    Millis(u64, u64),
}

/// One fault and its schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultRule {
    pub action: FaultAction,
    pub when: FaultWhen,
}

/// What faults a [`FaultPort`] injects. Parse one with `str::parse` (see the module
/// documentation for the syntax), or build it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FaultPlan {
    pub seed: u64,
    pub rules: Vec<FaultRule>,
    /// Offer no exception TX queue (kernel frames then leave through worker 0's queue).
    pub no_exception_tx: bool,
}

impl FaultPlan {
    /// A plan of one rule (seed 1).
    pub fn one(action: FaultAction, when: FaultWhen) -> FaultPlan {
        FaultPlan {
            seed: 1,
            rules: vec![FaultRule { action, when }],
            no_exception_tx: false,
        }
    }
    /// Add a rule.
    pub fn with(mut self, action: FaultAction, when: FaultWhen) -> FaultPlan {
        self.rules.push(FaultRule { action, when });
        self
    }
    fn longest_delay(&self) -> u16 {
        self.rules
            .iter()
            .filter_map(|r| match r.action {
                FaultAction::DelayRx(k) => Some(k),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }
}

fn num<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, String> {
    s.parse()
        .map_err(|_| format!("{what}: {s:?} is not a number"))
}

fn range(s: &str, what: &str) -> Result<(u64, u64), String> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| format!("{what}: expected A..B, got {s:?}"))?;
    let (a, b) = (num::<u64>(a, what)?, num::<u64>(b, what)?);
    if a >= b {
        return Err(format!("{what}: {a}..{b} is empty (B is excluded)"));
    }
    Ok((a, b))
}

impl std::str::FromStr for FaultPlan {
    type Err = String;
    fn from_str(s: &str) -> Result<FaultPlan, String> {
        let mut plan = FaultPlan {
            seed: 1,
            ..FaultPlan::default()
        };
        for item in s.split(',') {
            if let Some(n) = item.strip_prefix("seed=") {
                plan.seed = num(n, "seed")?;
                continue;
            }
            if item == "no-exception-tx" {
                plan.no_exception_tx = true;
                continue;
            }
            let (what, when) = match item.split_once('@') {
                Some((w, s)) => (w, Some(s)),
                None => (item, None),
            };
            let (name, arg) = match what.split_once('=') {
                Some((n, a)) => (n, Some(a)),
                None => (what, None),
            };
            let action = match (name, arg) {
                ("tx-refuse", None) => FaultAction::RefuseTx,
                ("tx-fail", None) => FaultAction::FailTx,
                ("rx-drop", None) => FaultAction::DropRx,
                ("rx-reorder", None) => FaultAction::ReorderRx,
                ("rx-stall", None) => FaultAction::StallRx,
                ("rx-truncate", Some(n)) => FaultAction::TruncateRx(num(n, "rx-truncate")?),
                ("rx-delay", Some(k)) => match num::<u16>(k, "rx-delay")? {
                    k @ 1..=DELAY_MAX => FaultAction::DelayRx(k),
                    k => return Err(format!("rx-delay={k}: 1..={DELAY_MAX} polls")),
                },
                _ => {
                    return Err(format!(
                    "{item:?}: expected tx-refuse, tx-fail, rx-drop, rx-truncate=N, rx-delay=K, \
                         rx-reorder, rx-stall@ms=A..B (each optionally @every=N, @bursts=A..B, @rate=P, @ms=A..B), \
                         seed=N or no-exception-tx"
                ))
                }
            };
            let when = match when {
                None => FaultWhen::Always,
                Some(w) => match w.split_once('=') {
                    Some(("every", n)) => match num::<u64>(n, "every")? {
                        0 => return Err("every=0: N is at least 1".into()),
                        n => FaultWhen::Every(n),
                    },
                    Some(("bursts", r)) => {
                        let (a, b) = range(r, "bursts")?;
                        FaultWhen::Bursts(a, b)
                    }
                    Some(("ms", r)) => {
                        let (a, b) = range(r, "ms")?;
                        FaultWhen::Millis(a, b)
                    }
                    Some(("rate", p)) => {
                        let p: f64 = num(p.trim_end_matches('%'), "rate")?;
                        if !(0.0..=100.0).contains(&p) {
                            return Err(format!("rate={p}: a percentage, 0..=100"));
                        }
                        FaultWhen::Rate((p * 10_000.0).round() as u32)
                    }
                    _ => {
                        return Err(format!(
                            "{item:?}: schedule {w:?}: expected every=N, bursts=A..B, rate=P or ms=A..B"
                        ))
                    }
                },
            };
            if action == FaultAction::StallRx && !matches!(when, FaultWhen::Millis(..)) {
                return Err(format!(
                    "{item:?}: rx-stall needs @ms=A..B, the window the RX call blocks for"
                ));
            }
            plan.rules.push(FaultRule { action, when });
        }
        Ok(plan)
    }
}

impl std::fmt::Display for FaultPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "seed={}", self.seed)?;
        if self.no_exception_tx {
            write!(f, ",no-exception-tx")?;
        }
        for r in &self.rules {
            match r.action {
                FaultAction::RefuseTx => write!(f, ",tx-refuse")?,
                FaultAction::FailTx => write!(f, ",tx-fail")?,
                FaultAction::DropRx => write!(f, ",rx-drop")?,
                FaultAction::ReorderRx => write!(f, ",rx-reorder")?,
                FaultAction::TruncateRx(n) => write!(f, ",rx-truncate={n}")?,
                FaultAction::DelayRx(k) => write!(f, ",rx-delay={k}")?,
                FaultAction::StallRx => write!(f, ",rx-stall")?,
            }
            match r.when {
                FaultWhen::Always => {}
                FaultWhen::Every(n) => write!(f, "@every={n}")?,
                FaultWhen::Bursts(a, b) => write!(f, "@bursts={a}..{b}")?,
                FaultWhen::Millis(a, b) => write!(f, "@ms={a}..{b}")?,
                FaultWhen::Rate(ppm) => write!(f, "@rate={}", f64::from(ppm) / 10_000.0)?,
            }
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
struct Counts {
    rx_dropped: AtomicU64,
    rx_truncated: AtomicU64,
    rx_delayed: AtomicU64,
    rx_released: AtomicU64,
    rx_held_lost: AtomicU64,
    rx_delay_full: AtomicU64,
    rx_reordered: AtomicU64,
    rx_stalls: AtomicU64,
    rx_stalled_ms: AtomicU64,
    tx_refused: AtomicU64,
    tx_failed: AtomicU64,
}

/// What a [`FaultPort`] did, in packets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Received packets dropped (`rx-drop`).
    pub rx_dropped: u64,
    /// Received frames cut short (`rx-truncate`).
    pub rx_truncated: u64,
    /// Received packets put on hold (`rx-delay`).
    pub rx_delayed: u64,
    /// Of those, handed over later.
    pub rx_released: u64,
    /// Of those, still held when the queue stopped: dropped.
    pub rx_held_lost: u64,
    /// Packets that should have been held but passed undelayed (hold queue full).
    pub rx_delay_full: u64,
    /// Packets in reversed bursts (`rx-reorder`).
    pub rx_reordered: u64,
    /// RX calls blocked (`rx-stall`), and for how long in all.
    pub rx_stalls: u64,
    pub rx_stalled_ms: u64,
    /// Packets left in a TX burst, each time a burst was refused (`tx-refuse`; a packet
    /// refused and retried counts again).
    pub tx_refused: u64,
    /// TX packets taken and lost (`tx-fail`).
    pub tx_failed: u64,
}

impl FaultStats {
    /// Packets held right now.
    pub fn rx_held(&self) -> u64 {
        self.rx_delayed - self.rx_released - self.rx_held_lost
    }
    /// Received packets the workers never got (dropped, lost on hold, held now).
    pub fn rx_withheld(&self) -> u64 {
        self.rx_dropped + self.rx_delayed - self.rx_released
    }
}

struct Shared {
    plan: FaultPlan,
    armed: Vec<AtomicBool>,
    counts: Counts,
    start: Instant,
    /// Queues made so far (each gets its own random stream).
    queues: AtomicU64,
}

impl Shared {
    fn stats(&self) -> FaultStats {
        let c = &self.counts;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        FaultStats {
            rx_dropped: l(&c.rx_dropped),
            rx_truncated: l(&c.rx_truncated),
            rx_delayed: l(&c.rx_delayed),
            rx_released: l(&c.rx_released),
            rx_held_lost: l(&c.rx_held_lost),
            rx_delay_full: l(&c.rx_delay_full),
            rx_reordered: l(&c.rx_reordered),
            rx_stalls: l(&c.rx_stalls),
            rx_stalled_ms: l(&c.rx_stalled_ms),
            tx_refused: l(&c.tx_refused),
            tx_failed: l(&c.tx_failed),
        }
    }
    fn rng_seed(&self) -> u64 {
        let q = self.queues.fetch_add(1, Ordering::Relaxed);
        // Any non-zero state will do for xorshift; mix the queue number in.
        (self.plan.seed ^ q.wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1
    }
}

#[inline]
fn add(a: &AtomicU64, n: u64) {
    if n > 0 {
        a.fetch_add(n, Ordering::Relaxed);
    }
}

/// Control over a running [`FaultPort`]: switch faults on and off, read what it did.
#[derive(Clone)]
pub struct FaultHandle(Arc<Shared>);

impl FaultHandle {
    /// Switch rule `i` (in plan order) on or off; every rule starts on.
    pub fn set(&self, i: usize, on: bool) {
        if let Some(a) = self.0.armed.get(i) {
            a.store(on, Ordering::Relaxed);
        }
    }
    /// Switch every rule on or off.
    pub fn set_all(&self, on: bool) {
        for a in &self.0.armed {
            a.store(on, Ordering::Relaxed);
        }
    }
    pub fn stats(&self) -> FaultStats {
        self.0.stats()
    }
}

/// Per-queue schedule state.
struct Sched {
    shared: Arc<Shared>,
    rng: u64,
    /// Bursts carrying packets so far.
    bursts: u64,
}

impl Sched {
    fn new(shared: Arc<Shared>) -> Sched {
        let rng = shared.rng_seed();
        Sched {
            shared,
            rng,
            bursts: 0,
        }
    }
    #[inline]
    fn next(&mut self) -> u64 {
        // xorshift64
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
    #[inline]
    fn chance(&mut self, ppm: u32) -> bool {
        self.next() % 1_000_000 < u64::from(ppm)
    }
    /// Whether rule `i` is in force for the current burst (`burst`: its number). A `rate`
    /// rule of a per-packet fault is in force for the burst; [`Sched::hits`] decides each
    /// packet.
    #[inline]
    fn active(&mut self, i: usize, rule: FaultRule, burst: u64) -> bool {
        if !self.shared.armed[i].load(Ordering::Relaxed) {
            return false;
        }
        match rule.when {
            FaultWhen::Always => true,
            FaultWhen::Every(n) => (burst + 1).is_multiple_of(n),
            FaultWhen::Bursts(a, b) => (a..b).contains(&burst),
            FaultWhen::Millis(a, b) => {
                (a..b).contains(&(self.shared.start.elapsed().as_millis() as u64))
            }
            FaultWhen::Rate(ppm) => !rule.action.burst_wide() || self.chance(ppm),
        }
    }
    /// For a per-packet fault in force: whether it hits this packet.
    #[inline]
    fn hits(&mut self, rule: FaultRule) -> bool {
        match rule.when {
            FaultWhen::Rate(ppm) if !rule.action.burst_wide() => self.chance(ppm),
            _ => true,
        }
    }
}

/// Which faults are in force for one burst.
#[derive(Default, Clone, Copy)]
struct RxFaults {
    drop: Option<FaultRule>,
    truncate: Option<(FaultRule, u16)>,
    delay: Option<u16>,
    reorder: bool,
}

/// A port with faults injected; see the module documentation.
pub struct FaultPort<P: Port> {
    inner: P,
    shared: Arc<Shared>,
    name: String,
}

impl<P: Port> FaultPort<P> {
    pub fn new(inner: P, plan: FaultPlan) -> FaultPort<P> {
        let name = format!("fault:{plan}/{}", inner.name());
        let armed = plan.rules.iter().map(|_| AtomicBool::new(true)).collect();
        FaultPort {
            inner,
            shared: Arc::new(Shared {
                plan,
                armed,
                counts: Counts::default(),
                start: Instant::now(),
                queues: AtomicU64::new(0),
            }),
            name,
        }
    }
    /// Control and counters, to keep after the port is handed to the runtime.
    pub fn handle(&self) -> FaultHandle {
        FaultHandle(self.shared.clone())
    }
    pub fn inner(&self) -> &P {
        &self.inner
    }
    pub fn fault_stats(&self) -> FaultStats {
        self.shared.stats()
    }
    fn rx(&self, inner: P::Rx) -> FaultRx<P::Rx> {
        let k = usize::from(self.shared.plan.longest_delay());
        FaultRx {
            inner,
            sched: Sched::new(self.shared.clone()),
            polls: 0,
            hold: VecDeque::with_capacity(k * BURST_MAX),
            hold_max: k * BURST_MAX,
            stalls: self
                .shared
                .plan
                .rules
                .iter()
                .enumerate()
                .filter_map(|(i, r)| match (r.action, r.when) {
                    (FaultAction::StallRx, FaultWhen::Millis(a, b)) => Some((i, a, b)),
                    _ => None,
                })
                .collect(),
        }
    }
    fn tx(&self, inner: P::Tx) -> FaultTx<P::Tx> {
        FaultTx {
            inner,
            sched: Sched::new(self.shared.clone()),
        }
    }
}

/// RX queue of a [`FaultPort`].
pub struct FaultRx<R: RxQueue> {
    inner: R,
    sched: Sched,
    /// Calls of `rx_burst` so far (the clock of `rx-delay`).
    polls: u64,
    /// Held packets and the poll at which each is due.
    hold: VecDeque<(u64, R::Buf)>,
    hold_max: usize,
    /// The `rx-stall` rules: index in the plan, window in ms.
    stalls: Vec<(usize, u64, u64)>,
}

impl<R: RxQueue> FaultRx<R> {
    fn faults(&mut self, burst: u64) -> RxFaults {
        let mut f = RxFaults::default();
        for i in 0..self.sched.shared.plan.rules.len() {
            let r = self.sched.shared.plan.rules[i];
            if r.action.is_tx() || !self.sched.active(i, r, burst) {
                continue;
            }
            match r.action {
                FaultAction::DropRx => f.drop = Some(r),
                FaultAction::TruncateRx(n) => f.truncate = Some((r, n)),
                FaultAction::DelayRx(k) => f.delay = Some(k),
                FaultAction::ReorderRx => f.reorder = true,
                FaultAction::RefuseTx | FaultAction::FailTx | FaultAction::StallRx => {}
            }
        }
        f
    }

    /// `rx-stall`: block while a stall window is open (and its rule armed), as a hung
    /// driver call does. A sleep loop, so switching the rule off ends it.
    fn stall(&mut self) {
        for k in 0..self.stalls.len() {
            let (i, a, b) = self.stalls[k];
            let shared = &self.sched.shared;
            let now = shared.start.elapsed().as_millis() as u64;
            if !(a..b).contains(&now) || !shared.armed[i].load(Ordering::Relaxed) {
                continue;
            }
            let began = Instant::now();
            add(&shared.counts.rx_stalls, 1);
            while shared.armed[i].load(Ordering::Relaxed)
                && (shared.start.elapsed().as_millis() as u64) < b
            {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            add(
                &shared.counts.rx_stalled_ms,
                began.elapsed().as_millis() as u64,
            );
        }
    }

    fn drop_held(&mut self) {
        let n = self.hold.len() as u64;
        self.hold.clear();
        add(&self.sched.shared.counts.rx_held_lost, n);
    }
}

impl<R: RxQueue> RxQueue for FaultRx<R>
where
    R::Buf: Send,
{
    type Buf = R::Buf;

    fn rx_burst(&mut self, out: &mut Burst<R::Buf>) -> usize {
        self.polls += 1;
        if !self.stalls.is_empty() {
            self.stall();
        }
        let start = out.len();
        // Held packets that are due go first.
        let mut released = 0;
        while out.room() > 0 && self.hold.front().is_some_and(|(due, _)| *due <= self.polls) {
            if let Some((_, b)) = self.hold.pop_front() {
                let _ = out.push(b);
                released += 1;
            }
        }
        add(&self.sched.shared.counts.rx_released, released);
        let fresh = out.len();
        let n = self.inner.rx_burst(out);
        if n == 0 {
            return out.len() - start;
        }
        let burst = self.sched.bursts;
        self.sched.bursts += 1;
        let f = self.faults(burst);
        if f.drop.is_none() && f.truncate.is_none() && f.delay.is_none() && !f.reorder {
            return out.len() - start;
        }
        let (mut dropped, mut truncated, mut delayed, mut full) = (0u64, 0u64, 0u64, 0u64);
        let Burst { bufs, spare } = out;
        debug_assert!(spare.is_empty());
        spare.extend(bufs.drain(fresh..));
        for mut b in spare.drain(..) {
            if let Some(r) = f.drop {
                if self.sched.hits(r) {
                    dropped += 1;
                    drop(b);
                    continue;
                }
            }
            if let Some((r, to)) = f.truncate {
                let to = usize::from(to);
                if b.len() > to && self.sched.hits(r) && b.trim(b.len() - to) {
                    truncated += 1;
                }
            }
            if let Some(k) = f.delay {
                if self.hold.len() < self.hold_max {
                    self.hold.push_back((self.polls + u64::from(k), b));
                    delayed += 1;
                    continue;
                }
                full += 1;
            }
            bufs.push(b);
        }
        let c = &self.sched.shared.counts;
        if f.reorder && bufs.len() > fresh + 1 {
            bufs[fresh..].reverse();
            add(&c.rx_reordered, (bufs.len() - fresh) as u64);
        }
        add(&c.rx_dropped, dropped);
        add(&c.rx_truncated, truncated);
        add(&c.rx_delayed, delayed);
        add(&c.rx_delay_full, full);
        out.len() - start
    }

    fn is_exhausted(&self) -> bool {
        self.hold.is_empty() && self.inner.is_exhausted()
    }

    fn attach_thread(&mut self) -> Result<(), String> {
        self.inner.attach_thread()
    }

    fn detach_thread(&mut self) {
        // The worker polls no more: what is still held is lost, and counted.
        self.drop_held();
        self.inner.detach_thread();
    }
}

impl<R: RxQueue> Drop for FaultRx<R> {
    fn drop(&mut self) {
        self.drop_held();
    }
}

/// TX queue of a [`FaultPort`].
pub struct FaultTx<T: TxQueue> {
    inner: T,
    sched: Sched,
}

impl<T: TxQueue> TxQueue for FaultTx<T> {
    type Buf = T::Buf;

    fn tx_burst(&mut self, pkts: &mut Burst<T::Buf>) -> usize {
        if pkts.is_empty() {
            return self.inner.tx_burst(pkts);
        }
        let burst = self.sched.bursts;
        self.sched.bursts += 1;
        let mut fail = None;
        for i in 0..self.sched.shared.plan.rules.len() {
            let r = self.sched.shared.plan.rules[i];
            if !r.action.is_tx() || !self.sched.active(i, r, burst) {
                continue;
            }
            match r.action {
                FaultAction::RefuseTx => {
                    add(&self.sched.shared.counts.tx_refused, pkts.len() as u64);
                    return 0;
                }
                FaultAction::FailTx => fail = Some(r),
                _ => {}
            }
        }
        let Some(rule) = fail else {
            return self.inner.tx_burst(pkts);
        };
        // Take and lose the packets the fault hits; offer the rest to the port.
        let mut failed = 0usize;
        {
            let Burst { bufs, spare } = &mut *pkts;
            debug_assert!(spare.is_empty());
            spare.append(bufs);
            for b in spare.drain(..) {
                if self.sched.hits(rule) {
                    failed += 1;
                    drop(b);
                } else {
                    bufs.push(b);
                }
            }
        }
        add(&self.sched.shared.counts.tx_failed, failed as u64);
        failed + self.inner.tx_burst(pkts)
    }

    fn flush(&mut self) {
        self.inner.flush();
    }
}

impl<P: Port> Port for FaultPort<P>
where
    <P::Rx as RxQueue>::Buf: Send,
{
    type Buf = P::Buf;
    type Rx = FaultRx<P::Rx>;
    type Tx = FaultTx<P::Tx>;

    fn name(&self) -> &str {
        &self.name
    }
    fn mac(&self) -> Option<MacAddr> {
        self.inner.mac()
    }
    fn take_queues(&mut self, n: usize) -> Result<Vec<QueuePair<Self>>, DriverError> {
        let q = self.inner.take_queues(n)?;
        Ok(q.into_iter()
            .map(|(rx, tx)| (self.rx(rx), self.tx(tx)))
            .collect())
    }
    fn take_exception_tx(&mut self) -> Result<Option<Self::Tx>, DriverError> {
        if self.shared.plan.no_exception_tx {
            return Ok(None);
        }
        Ok(self.inner.take_exception_tx()?.map(|tx| self.tx(tx)))
    }
    fn alloc(&self, frame: &[u8]) -> Option<Self::Buf> {
        self.inner.alloc(frame)
    }
    /// The inner port's counters, with the faults in them: `rx_packets` counts what the
    /// workers got (the inner port's less what the faults withheld), `rx_dropped` and
    /// `tx_dropped` include what the faults dropped.
    fn stats(&self) -> PortStats {
        let s = self.inner.stats();
        let f = self.shared.stats();
        PortStats {
            rx_packets: s.rx_packets.saturating_sub(f.rx_withheld()),
            rx_dropped: s.rx_dropped + f.rx_dropped + f.rx_held_lost,
            tx_dropped: s.tx_dropped + f.tx_failed,
            ..s
        }
    }
    fn xstats(&self) -> Vec<(String, u64)> {
        let f = self.shared.stats();
        let mut x = self.inner.xstats();
        x.extend([
            ("fault_rx_dropped".to_string(), f.rx_dropped),
            ("fault_rx_truncated".to_string(), f.rx_truncated),
            ("fault_rx_delayed".to_string(), f.rx_delayed),
            ("fault_rx_held_lost".to_string(), f.rx_held_lost),
            ("fault_rx_reordered".to_string(), f.rx_reordered),
            ("fault_rx_stalls".to_string(), f.rx_stalls),
            ("fault_rx_stalled_ms".to_string(), f.rx_stalled_ms),
            ("fault_tx_refused".to_string(), f.tx_refused),
            ("fault_tx_failed".to_string(), f.tx_failed),
        ]);
        x
    }
    fn link(&self) -> Option<LinkInfo> {
        self.inner.link()
    }
    fn poll(&self) {
        self.inner.poll()
    }
    fn gone(&self) -> Option<String> {
        self.inner.gone()
    }
    fn driver(&self) -> String {
        format!("fault/{}", self.inner.driver())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drivers::{mem, BufPool, PoolBuf};

    fn frame(i: u8, len: usize) -> Vec<u8> {
        let mut f = vec![i; len];
        f[0] = i;
        f
    }

    fn setup(plan: FaultPlan) -> (FaultPort<mem::MemPort>, mem::MemPeer, BufPool) {
        let pool = BufPool::new(1024, 2048).unwrap();
        let (port, peer) = mem::pair("f", 1, 256, pool.clone()).unwrap();
        (FaultPort::new(port, plan), peer, pool)
    }

    fn rx_all(rx: &mut FaultRx<mem::MemRx>, polls: usize) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        for _ in 0..polls {
            let mut b = Burst::new();
            rx.rx_burst(&mut b);
            got.extend(b.drain().map(|p| p.data().to_vec()));
        }
        got
    }

    #[test]
    fn plans_parse_print_back_and_bad_ones_say_why() {
        for s in [
            "seed=1",
            "seed=7,no-exception-tx,tx-refuse@ms=1000..3000",
            "seed=1,tx-fail@every=3,rx-drop@rate=5,rx-truncate=40@bursts=2..4",
            "seed=1,rx-delay=3,rx-reorder",
            "seed=1,rx-stall@ms=500..1500",
        ] {
            let p: FaultPlan = s.parse().unwrap();
            assert_eq!(p.to_string(), s);
        }
        for (bad, says) in [
            ("tx-bogus", "expected tx-refuse"),
            ("rx-delay=0", "1..=64"),
            ("rx-delay=65", "1..=64"),
            ("tx-fail@every=0", "every=0"),
            ("tx-fail@bursts=4..2", "empty"),
            ("rx-drop@rate=101", "percentage"),
            ("rx-drop@when=3", "schedule"),
            ("rx-truncate=x", "not a number"),
            ("rx-stall", "needs @ms=A..B"),
            ("rx-stall@every=2", "needs @ms=A..B"),
        ] {
            let e = bad.parse::<FaultPlan>().unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn rx_stall_blocks_the_rx_call_for_its_window_then_passes_packets() {
        use std::time::Duration;
        let (mut port, peer, _pool) = setup(FaultPlan::one(
            FaultAction::StallRx,
            FaultWhen::Millis(100, 400),
        ));
        let h = port.handle();
        let mut q = port.take_queues(1).unwrap();
        let rx = &mut q[0].0;
        // Before the window: no blocking.
        assert!(peer.send(0, &frame(1, 60)));
        let t = Instant::now();
        assert_eq!(rx_all(rx, 1).len(), 1);
        assert!(
            t.elapsed() < Duration::from_millis(100),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(h.stats().rx_stalls, 0);
        // In the window: the call returns only once the window is over, with the packet.
        while h.0.start.elapsed() < Duration::from_millis(120) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(peer.send(0, &frame(2, 60)));
        assert_eq!(rx_all(rx, 1).len(), 1);
        assert!(
            h.0.start.elapsed() >= Duration::from_millis(400),
            "returned at {:?}, inside the window",
            h.0.start.elapsed()
        );
        let f = h.stats();
        assert_eq!(f.rx_stalls, 1);
        assert!(f.rx_stalled_ms >= 250, "{f:?}");
        // After it: no blocking again, nothing lost.
        let t = Instant::now();
        assert!(peer.send(0, &frame(3, 60)));
        assert_eq!(rx_all(rx, 1).len(), 1);
        assert!(t.elapsed() < Duration::from_millis(100));
        assert_eq!(h.stats().rx_stalls, 1);
        assert_eq!(port.stats().rx_packets, 3);
    }

    #[test]
    fn a_stall_switched_off_through_the_handle_ends_at_once() {
        use std::time::Duration;
        let (mut port, _peer, _pool) = setup(FaultPlan::one(
            FaultAction::StallRx,
            FaultWhen::Millis(0, 60_000),
        ));
        let h = port.handle();
        let mut q = port.take_queues(1).unwrap();
        let (mut rx, _tx) = q.pop().unwrap();
        let t = std::thread::spawn(move || {
            let t = Instant::now();
            rx_all(&mut rx, 1);
            t.elapsed()
        });
        std::thread::sleep(Duration::from_millis(100));
        h.set(0, false);
        let took = t.join().unwrap();
        assert!(took < Duration::from_secs(30), "{took:?}");
        assert!(took >= Duration::from_millis(90), "{took:?}");
        assert_eq!(h.stats().rx_stalls, 1);
    }

    #[test]
    fn rx_drop_every_second_burst_is_counted_and_stats_say_what_workers_got() {
        let (mut port, peer, pool) =
            setup(FaultPlan::one(FaultAction::DropRx, FaultWhen::Every(2)));
        let mut q = port.take_queues(1).unwrap();
        let mut got = 0;
        for round in 0..4u8 {
            for i in 0..5 {
                assert!(peer.send(0, &frame(round * 10 + i, 60)));
            }
            got += rx_all(&mut q[0].0, 1).len();
        }
        assert_eq!(got, 10, "bursts 1 and 3 dropped");
        let f = port.fault_stats();
        assert_eq!(f.rx_dropped, 10);
        let s = port.stats();
        assert_eq!(s.rx_packets, 10, "what the worker got");
        assert_eq!(s.rx_dropped, 10);
        drop(q);
        assert_eq!(
            pool.available(),
            1024,
            "dropped buffers went back to the pool"
        );
    }

    #[test]
    fn rx_truncate_delay_and_reorder_do_what_they_say() {
        let plan = FaultPlan::one(FaultAction::TruncateRx(20), FaultWhen::Bursts(0, 1))
            .with(FaultAction::ReorderRx, FaultWhen::Bursts(1, 2))
            .with(FaultAction::DelayRx(3), FaultWhen::Bursts(2, 3));
        let (mut port, peer, pool) = setup(plan);
        let mut q = port.take_queues(1).unwrap();
        let rx = &mut q[0].0;
        for i in 0..3 {
            assert!(peer.send(0, &frame(i, 60)));
        }
        let got = rx_all(rx, 1);
        assert_eq!(got.iter().map(Vec::len).collect::<Vec<_>>(), [20, 20, 20]);
        for i in 0..3 {
            assert!(peer.send(0, &frame(10 + i, 60)));
        }
        let got = rx_all(rx, 1);
        assert_eq!(got.iter().map(|f| f[0]).collect::<Vec<_>>(), [12, 11, 10]);
        for i in 0..2 {
            assert!(peer.send(0, &frame(20 + i, 60)));
        }
        // Poll 3 takes them onto hold (due at poll 6); polls 4 and 5 give nothing.
        assert!(rx_all(rx, 3).is_empty());
        assert_eq!(port.fault_stats().rx_held(), 2);
        assert!(!rx.is_exhausted());
        assert_eq!(
            port.stats().rx_packets,
            6,
            "held ones are not the worker's yet"
        );
        let got = rx_all(rx, 1);
        assert_eq!(got.iter().map(|f| f[0]).collect::<Vec<_>>(), [20, 21]);
        let f = port.fault_stats();
        assert_eq!(
            (f.rx_truncated, f.rx_reordered, f.rx_delayed, f.rx_released),
            (3, 3, 2, 2)
        );
        assert_eq!(port.stats().rx_packets, 8);
        drop(q);
        assert_eq!(pool.available(), 1024);
    }

    #[test]
    fn packets_still_held_when_the_queue_stops_are_counted_lost() {
        let (mut port, peer, pool) =
            setup(FaultPlan::one(FaultAction::DelayRx(50), FaultWhen::Always));
        let mut q = port.take_queues(1).unwrap();
        for i in 0..4 {
            assert!(peer.send(0, &frame(i, 60)));
        }
        assert!(rx_all(&mut q[0].0, 2).is_empty());
        q[0].0.detach_thread();
        let f = port.fault_stats();
        assert_eq!((f.rx_delayed, f.rx_held_lost, f.rx_held()), (4, 4, 0));
        let s = port.stats();
        assert_eq!((s.rx_packets, s.rx_dropped), (0, 4));
        assert_eq!(pool.available(), 1024);
    }

    #[test]
    fn tx_refuse_leaves_the_burst_and_tx_fail_takes_and_counts() {
        let plan = FaultPlan::one(FaultAction::RefuseTx, FaultWhen::Bursts(0, 2))
            .with(FaultAction::FailTx, FaultWhen::Bursts(2, 3));
        let (mut port, peer, pool) = setup(plan);
        let mut q = port.take_queues(1).unwrap();
        let tx = &mut q[0].1;
        let mut b: Burst<PoolBuf> = Burst::new();
        for i in 0..4 {
            b.push(pool.get_with(&frame(i, 60)).unwrap()).ok().unwrap();
        }
        assert_eq!(tx.tx_burst(&mut b), 0);
        assert_eq!(tx.tx_burst(&mut b), 0);
        assert_eq!(b.len(), 4, "refused: all still in the burst");
        assert_eq!(tx.tx_burst(&mut b), 4, "failed: taken");
        assert!(b.is_empty());
        assert_eq!(peer.tx_pending(), 0, "and lost");
        b.push(pool.get_with(&frame(9, 60)).unwrap()).ok().unwrap();
        assert_eq!(tx.tx_burst(&mut b), 1, "the fault is over");
        assert_eq!(peer.recv().unwrap().data()[0], 9);
        let f = port.fault_stats();
        assert_eq!((f.tx_refused, f.tx_failed), (8, 4));
        let s = port.stats();
        assert_eq!((s.tx_packets, s.tx_dropped), (1, 4));
    }

    #[test]
    fn rates_replay_the_same_way_for_the_same_seed_and_the_handle_switches_rules() {
        let run = |seed: u64| {
            let mut plan = FaultPlan::one(FaultAction::FailTx, FaultWhen::Rate(300_000));
            plan.seed = seed;
            let (mut port, peer, pool) = setup(plan);
            let mut q = port.take_queues(1).unwrap();
            let mut kept = Vec::new();
            for i in 0..200u32 {
                let mut b = Burst::new();
                b.push(pool.get_with(&i.to_be_bytes()).unwrap())
                    .ok()
                    .unwrap();
                assert_eq!(q[0].1.tx_burst(&mut b), 1);
                if let Some(p) = peer.recv() {
                    kept.push(u32::from_be_bytes(p.data()[..4].try_into().unwrap()));
                }
            }
            let failed = port.fault_stats().tx_failed;
            assert_eq!(failed + kept.len() as u64, 200);
            assert!((30..90).contains(&failed), "about 30% of 200: {failed}");
            // Switched off, nothing more fails.
            port.handle().set(0, false);
            let mut b = Burst::new();
            b.push(pool.get_with(&[1; 60]).unwrap()).ok().unwrap();
            q[0].1.tx_burst(&mut b);
            assert!(peer.recv().is_some());
            assert_eq!(port.fault_stats().tx_failed, failed);
            kept
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn no_exception_tx_hides_the_exception_queue() {
        let (mut port, _peer, _pool) = setup(FaultPlan {
            no_exception_tx: true,
            ..FaultPlan::default()
        });
        assert!(port.take_exception_tx().unwrap().is_none());
        let (mut port, _peer, _pool) = setup(FaultPlan::default());
        assert!(port.take_exception_tx().unwrap().is_some());
        assert!(
            port.name().starts_with("fault:seed=0/mem:f"),
            "{}",
            port.name()
        );
        assert_eq!(port.driver(), "fault/mem");
    }
}
