//! The poll-mode runtime: pinned worker threads running [`crate::datapath::process_burst`]
//! between a port's RX and TX queues, an atomically swapped [`Snapshot`], and the exception
//! path to the kernel. [`control`] reloads configs; [`notify`] talks to systemd.

pub mod accounts;
pub mod control;
pub mod exception;
pub mod fleet;
pub mod ledger;
pub mod notify;
pub mod overrides;
pub mod plane;
mod worker;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use arc_swap::ArcSwap;
use crossbeam::queue::ArrayQueue;

use crate::datapath::{CoreCounters, Snapshot};
use crate::drivers::{DriverError, Port, PortStats, PortView};

/// What a worker does when its RX queue is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdlePolicy {
    /// Spin on the queue (lowest latency; the core shows 100% busy), as DPDK does.
    BusyPoll,
    /// After `after` empty polls, sleep `micros` between polls (for shared machines).
    Sleep { after: u32, micros: u64 },
}

/// Where packets that match no bind go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExceptionPath {
    /// Dropped (counted).
    Drop,
    /// To the kernel through a TAP interface of this name, both ways.
    Tap(String),
}

/// How the runtime runs.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Worker threads (one RX/TX queue pair each).
    pub workers: usize,
    /// Pin worker i to `cores[i]`; `None`: not pinned.
    pub cores: Option<Vec<usize>>,
    pub idle: IdlePolicy,
    pub exception: ExceptionPath,
    /// Extra TX attempts for packets the TX queue refused before they are dropped.
    pub tx_retries: u32,
    /// Start with forwarding stopped, as after [`Runtime::pause`]: the workers take nothing
    /// from RX (and the exception path sends nothing to the wire) until [`Runtime::resume`].
    /// `rondo run` starts so and resumes once everything that can fail has been set up.
    pub start_paused: bool,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            workers: 1,
            cores: None,
            idle: IdlePolicy::BusyPoll,
            exception: ExceptionPath::Drop,
            tx_retries: 8,
            start_paused: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Driver(#[from] DriverError),
    #[error("cores: core {core} does not exist on this machine (it has cores {have:?})")]
    NoSuchCore { core: usize, have: Vec<usize> },
    #[error("cores: {cores} core(s) listed for {workers} worker(s); list one core per worker")]
    CoreCount { cores: usize, workers: usize },
    #[error("workers: at least one worker is needed")]
    NoWorkers,
    #[error("exception path: {0}")]
    Exception(String),
    #[error("cannot start thread {name}: {source}")]
    Thread {
        name: String,
        #[source]
        source: std::io::Error,
    },
}

/// One worker's published counters, on their own cache lines (published every few bursts
/// under load and at the first empty poll, see `worker::PUBLISH_EVERY`).
#[repr(align(64))]
pub(crate) struct WorkerSlot {
    words: [AtomicU64; CoreCounters::WORDS],
    pub(crate) running: AtomicBool,
    /// Set by the worker once it has flushed and published after forwarding was stopped.
    pub(crate) paused: AtomicBool,
    /// Loop iterations of the worker (busy, idle or paused alike), stored by the worker
    /// once per iteration: the liveness the watchdog checks ([`Runtime::worker_progress`]).
    pub(crate) progress: AtomicU64,
}

impl WorkerSlot {
    fn new() -> Self {
        WorkerSlot {
            words: std::array::from_fn(|_| AtomicU64::new(0)),
            running: AtomicBool::new(true),
            paused: AtomicBool::new(false),
            progress: AtomicU64::new(0),
        }
    }
    /// Written only by the owning worker: plain stores, no read-modify-write.
    #[inline]
    pub(crate) fn publish(&self, c: &CoreCounters) {
        for (a, v) in self.words.iter().zip(c.to_words()) {
            a.store(v, Ordering::Relaxed);
        }
    }
    fn read(&self) -> CoreCounters {
        let w: [u64; CoreCounters::WORDS] =
            std::array::from_fn(|i| self.words[i].load(Ordering::Relaxed));
        CoreCounters::from_words(&w)
    }
}

/// State shared by the workers, the exception thread and the control side.
pub(crate) struct Shared {
    pub(crate) snapshot: ArcSwap<Snapshot>,
    pub(crate) stop: AtomicBool,
    /// Forwarding stopped by the operator (console `stop`); workers idle until cleared.
    pub(crate) paused: AtomicBool,
    /// Paused only because the runtime started so ([`RuntimeOptions::start_paused`]) and
    /// nobody has paused or resumed it since: [`Runtime::release`] resumes only then.
    held: AtomicBool,
    pub(crate) workers: Vec<WorkerSlot>,
    pub(crate) swaps: AtomicU64,
}

/// Counters of a data plane: each worker's, the port's and the exception path's.
#[derive(Debug, Clone, Default)]
pub struct FinalCounts {
    pub workers: Vec<CoreCounters>,
    pub port: PortStats,
    /// The port's extended counters (a fault-injecting port's among them).
    pub xstats: Vec<(String, u64)>,
    pub exception: Option<exception::ExceptionCounts>,
}

impl FinalCounts {
    /// The workers' counters summed.
    pub fn totals(&self) -> CoreCounters {
        let mut t = CoreCounters::default();
        for c in &self.workers {
            t.accumulate(c);
        }
        t
    }
    /// The accounting invariant over these counters.
    pub fn accounts(&self) -> accounts::Accounts<'_> {
        accounts::Accounts {
            workers: &self.workers,
            port: self.port,
            exception: self.exception,
        }
    }
}

/// A running data plane. Dropping it stops and joins every thread.
pub struct Runtime {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    port: Arc<dyn PortView>,
    exception: Option<exception::ExceptionStats>,
    opts: RuntimeOptions,
    /// Each worker's progress counter as last sampled, and when it was last seen to move.
    progress_seen: std::sync::Mutex<Vec<(u64, std::time::Instant)>>,
    /// Called with every snapshot before and after it goes live (the af_xdp driver's
    /// steering maps follow the VIPs with it); set once with [`Runtime::set_on_swap`].
    on_swap: std::sync::OnceLock<SwapHook>,
}

/// A hook the runtime calls with each snapshot just before it goes live and just after.
pub type SwapHook = Box<dyn Fn(SwapPhase, &Snapshot) + Send + Sync>;

/// When a [`SwapHook`] is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwapPhase {
    /// The snapshot is about to go live; the workers still run the old one. (Steering
    /// stops sending what the new snapshot drops here.)
    Before,
    /// The workers take the snapshot from their next burst on. (Steering starts sending
    /// what it adds here.)
    After,
}

/// Keep the calling thread (and the threads it starts from now on: console, metrics,
/// table builds) off the cores the workers are pinned to, when other cores exist. Returns
/// the cores it may use, or `None` when nothing was changed.
pub fn avoid_worker_cores(opts: &RuntimeOptions) -> Option<Vec<usize>> {
    let pinned = opts.cores.as_ref()?;
    let free: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .filter(|c| !pinned.contains(c))
        .collect();
    if free.is_empty() {
        return None;
    }
    let mut set = nix::sched::CpuSet::new();
    for &c in &free {
        set.set(c).ok()?;
    }
    match nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set) {
        Ok(()) => Some(free),
        Err(e) => {
            tracing::warn!("could not keep control threads off the worker cores: {e}");
            None
        }
    }
}

fn check_cores(opts: &RuntimeOptions) -> Result<(), RuntimeError> {
    if opts.workers == 0 {
        return Err(RuntimeError::NoWorkers);
    }
    if let Some(cores) = &opts.cores {
        if cores.len() != opts.workers {
            return Err(RuntimeError::CoreCount {
                cores: cores.len(),
                workers: opts.workers,
            });
        }
        let have: Vec<usize> = core_affinity::get_core_ids()
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.id)
            .collect();
        if let Some(&core) = cores.iter().find(|c| !have.contains(c)) {
            return Err(RuntimeError::NoSuchCore { core, have });
        }
    }
    Ok(())
}

impl Runtime {
    /// Start workers on `port` with `snapshot` live. Fails, with nothing left running, if
    /// the port, the cores or the exception path cannot be set up.
    pub fn start<P: Port + 'static>(
        mut port: P,
        mut snapshot: Snapshot,
        opts: RuntimeOptions,
    ) -> Result<Runtime, RuntimeError> {
        check_cores(&opts)?;
        snapshot.attach_sent_counters(opts.workers);
        let queues = port.take_queues(opts.workers)?;
        let exc_ring: Option<Arc<ArrayQueue<P::Buf>>> = match opts.exception {
            ExceptionPath::Drop => None,
            ExceptionPath::Tap(_) => Some(Arc::new(ArrayQueue::new(4096))),
        };
        // The exception TX queue, or (device without a spare queue) a ring that worker 0
        // drains into its own TX queue.
        let (exc_tx, inject) = match opts.exception {
            ExceptionPath::Drop => (None, None),
            ExceptionPath::Tap(_) => match port.take_exception_tx()? {
                Some(tx) => (Some(tx), None),
                None => (None, Some(Arc::new(ArrayQueue::new(1024)))),
            },
        };
        let shared = Arc::new(Shared {
            snapshot: ArcSwap::from_pointee(snapshot),
            stop: AtomicBool::new(false),
            paused: AtomicBool::new(opts.start_paused),
            held: AtomicBool::new(opts.start_paused),
            workers: (0..opts.workers).map(|_| WorkerSlot::new()).collect(),
            swaps: AtomicU64::new(0),
        });
        let port = Arc::new(port);
        let mut rt = Runtime {
            shared: shared.clone(),
            threads: Vec::new(),
            port: port.clone(),
            opts: opts.clone(),
            exception: None,
            on_swap: std::sync::OnceLock::new(),
            progress_seen: std::sync::Mutex::new(vec![
                (0, std::time::Instant::now());
                opts.workers
            ]),
        };
        if let (ExceptionPath::Tap(name), Some(ring)) = (&opts.exception, &exc_ring) {
            let out = match (exc_tx, &inject) {
                (Some(tx), _) => exception::KernelOut::Queue(tx),
                (None, Some(q)) => exception::KernelOut::ViaWorker(q.clone()),
                (None, None) => unreachable!("a TAP exception path has a TX queue or a ring"),
            };
            let (handle, stats) =
                exception::start(name, port.clone(), ring.clone(), out, shared.clone())?;
            rt.threads.push(handle);
            rt.exception = Some(stats);
        }
        for (i, (rx, tx)) in queues.into_iter().enumerate() {
            let w = worker::Worker {
                id: i,
                core: opts.cores.as_ref().map(|c| c[i]),
                rx,
                tx,
                shared: shared.clone(),
                exceptions: exc_ring.clone(),
                inject: if i == 0 { inject.clone() } else { None },
                idle: opts.idle,
                tx_retries: opts.tx_retries,
            };
            let name = format!("rondo-w{i}");
            let spawned = std::thread::Builder::new()
                .name(name.clone())
                .spawn(move || w.run());
            match spawned {
                Ok(h) => rt.threads.push(h),
                Err(source) => {
                    // Workers that never ran must not be waited for by the exception thread.
                    for slot in &shared.workers[i..] {
                        slot.running.store(false, Ordering::Release);
                    }
                    return Err(RuntimeError::Thread { name, source });
                }
            }
        }
        tracing::info!(port = %rt.port.name(), workers = opts.workers, cores = ?opts.cores, idle = ?opts.idle, exception = ?opts.exception, "data plane started");
        Ok(rt)
    }

    /// Make `snapshot` live. Workers pick it up at their next burst; the old one, returned,
    /// is freed once no worker (and not the caller) holds it.
    pub fn swap(&self, mut snapshot: Snapshot) -> Arc<Snapshot> {
        snapshot.attach_sent_counters(self.shared.workers.len());
        let hook = self.on_swap.get();
        if let Some(hook) = hook {
            hook(SwapPhase::Before, &snapshot);
        }
        let new = Arc::new(snapshot);
        let old = self.shared.snapshot.swap(new.clone());
        self.shared.swaps.fetch_add(1, Ordering::Relaxed);
        if let Some(hook) = hook {
            hook(SwapPhase::After, &new);
        }
        old
    }

    /// Call `hook` with the live snapshot now (both phases) and with every snapshot swapped
    /// in from now on, before and after it goes live. Only the first hook set is kept
    /// (returns whether this one was).
    pub fn set_on_swap(&self, hook: SwapHook) -> bool {
        let live = self.shared.snapshot.load_full();
        hook(SwapPhase::Before, &live);
        hook(SwapPhase::After, &live);
        self.on_swap.set(hook).is_ok()
    }

    /// How the runtime was started (workers, cores, idle policy, exception path).
    pub fn options(&self) -> &RuntimeOptions {
        &self.opts
    }

    /// The port's own MAC, when the driver has one.
    pub fn port_mac(&self) -> Option<crate::wire::MacAddr> {
        self.port.mac()
    }

    /// Stop forwarding (testpmd's `stop`): workers stop taking packets from RX, flush what
    /// they hold and publish their counters. Waits up to `wait` for every running worker to
    /// say so; returns whether all did.
    pub fn pause(&self, wait: std::time::Duration) -> bool {
        // An operator's stop during start stays a stop.
        self.shared.held.store(false, Ordering::Release);
        // Acknowledgements of an earlier stop do not count for this one.
        for w in &self.shared.workers {
            w.paused.store(false, Ordering::Release);
        }
        self.shared.paused.store(true, Ordering::Release);
        let end = std::time::Instant::now() + wait;
        loop {
            let all =
                self.shared.workers.iter().all(|w| {
                    w.paused.load(Ordering::Acquire) || !w.running.load(Ordering::Acquire)
                });
            if all {
                return true;
            }
            if std::time::Instant::now() >= end {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// Start forwarding again after [`Runtime::pause`].
    pub fn resume(&self) {
        self.shared.held.store(false, Ordering::Release);
        self.shared.paused.store(false, Ordering::Release);
    }

    /// Start forwarding a runtime started paused ([`RuntimeOptions::start_paused`]),
    /// unless it was paused (console `stop`) or resumed in the meantime; returns whether
    /// this call started it.
    pub fn release(&self) -> bool {
        let held = self.shared.held.swap(false, Ordering::AcqRel);
        if held {
            self.shared.paused.store(false, Ordering::Release);
        }
        held
    }

    /// Whether forwarding is stopped by [`Runtime::pause`].
    pub fn is_paused(&self) -> bool {
        self.shared.paused.load(Ordering::Acquire)
    }

    /// Snapshot swaps since start.
    pub fn swaps(&self) -> u64 {
        self.shared.swaps.load(Ordering::Relaxed)
    }

    /// The live snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.shared.snapshot.load_full()
    }

    /// Counters per worker.
    pub fn worker_counters(&self) -> Vec<CoreCounters> {
        self.shared.workers.iter().map(|w| w.read()).collect()
    }

    /// Each worker's progress counter (loop iterations; it moves while the worker is busy,
    /// idle or paused, and stops only when the worker is stuck), or `None` for a worker
    /// that has stopped. Control side: also samples for [`Runtime::worker_progress_ages`].
    pub fn worker_progress(&self) -> Vec<Option<u64>> {
        self.sample_progress().into_iter().map(|(p, _)| p).collect()
    }

    /// How long ago each running worker was last seen to make progress (to the precision of
    /// how often the control side samples: every main-loop tick in `rondo run`, and at each
    /// call); `None` for a worker that has stopped.
    pub fn worker_progress_ages(&self) -> Vec<Option<std::time::Duration>> {
        self.sample_progress().into_iter().map(|(_, a)| a).collect()
    }

    #[allow(clippy::type_complexity)]
    fn sample_progress(&self) -> Vec<(Option<u64>, Option<std::time::Duration>)> {
        let now = std::time::Instant::now();
        let mut seen = self
            .progress_seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.shared
            .workers
            .iter()
            .zip(seen.iter_mut())
            .map(|(w, s)| {
                let p = w.progress.load(Ordering::Relaxed);
                if p != s.0 {
                    *s = (p, now);
                }
                if w.running.load(Ordering::Acquire) {
                    (Some(p), Some(now.saturating_duration_since(s.1)))
                } else {
                    (None, None)
                }
            })
            .collect()
    }

    /// Counters of all workers summed.
    pub fn totals(&self) -> CoreCounters {
        let mut t = CoreCounters::default();
        for c in self.worker_counters() {
            t.accumulate(&c);
        }
        t
    }

    pub fn port_name(&self) -> &str {
        self.port.name()
    }

    pub fn port_stats(&self) -> PortStats {
        self.port.stats()
    }

    /// The running port (stats, xstats, link, MAC) for the console and metrics.
    pub fn port(&self) -> &dyn PortView {
        &*self.port
    }

    /// Exception-path counters, when a TAP is in use.
    pub fn exception_stats(&self) -> Option<exception::ExceptionCounts> {
        self.exception.as_ref().map(|e| e.read())
    }

    /// Whether every worker has stopped by itself (e.g. its capture ended).
    pub fn finished(&self) -> bool {
        self.shared
            .workers
            .iter()
            .all(|w| !w.running.load(Ordering::Acquire))
    }

    /// Ask every thread to stop.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
    }

    /// Stop and wait for every thread; returns the final totals.
    pub fn shutdown(self) -> CoreCounters {
        self.shutdown_counts().totals()
    }

    /// Stop and wait for every thread; returns the final counters of every worker, the
    /// port and the exception path (see [`accounts`] for how they add up).
    pub fn shutdown_counts(mut self) -> FinalCounts {
        self.stop();
        for h in self.threads.drain(..) {
            let _ = h.join();
        }
        self.counts()
    }

    /// The counters of every worker, the port and the exception path, as they are now
    /// (exact once the workers have stopped).
    pub fn counts(&self) -> FinalCounts {
        FinalCounts {
            workers: self.worker_counters(),
            port: self.port.stats(),
            xstats: self.port.xstats(),
            exception: self.exception_stats(),
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop();
        for h in self.threads.drain(..) {
            let _ = h.join();
        }
    }
}
