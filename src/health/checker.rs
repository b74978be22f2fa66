//! The [`Checker`]: runs every check of every tracked backend once per interval, concurrently,
//! on its own threads (never on a worker core when told which cores those are), and reports
//! backends whose health flips as [`HealthEvent`]s.
//!
//! A round checks each distinct target once, on a pool of at most `threads` scoped threads
//! (the calling thread is one of them, so a round makes progress even when no thread can be
//! spawned). Every check ends within its timeout, so a round takes about
//! `timeout x ceil(slow targets / threads)` at worst and the pool never hangs. Rounds start
//! every `interval`; a round that overruns is followed by the next one at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::check::{self, Target};
use super::state::{CheckOutcome, HealthSnapshot, HealthState};
use super::{HealthError, HealthEvent};
use crate::table::TableSpec;

/// GLB's default interval between rounds.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(2000);
/// GLB's default timeout of one check.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(1000);
/// GLB's default number of consecutive results that flip a target.
pub const DEFAULT_TRIGGER: u32 = 3;
/// Default size of the check thread pool.
pub const DEFAULT_THREADS: usize = 64;

/// How the checker runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckerOptions {
    pub interval: Duration,
    pub timeout: Duration,
    pub trigger: u32,
    /// Most checks in flight at once.
    pub threads: usize,
    /// Cores the checker must not run on (the data plane's worker cores). Empty: no pinning.
    pub avoid_cores: Vec<usize>,
}

impl Default for CheckerOptions {
    fn default() -> Self {
        CheckerOptions {
            interval: DEFAULT_INTERVAL,
            timeout: DEFAULT_TIMEOUT,
            trigger: DEFAULT_TRIGGER,
            threads: DEFAULT_THREADS,
            avoid_cores: Vec::new(),
        }
    }
}

impl CheckerOptions {
    /// The cores checker threads may be pinned to: every core but `avoid_cores`. `None` when
    /// nothing is to be avoided (no pinning) or when every core is to be avoided (then the
    /// checker cannot keep off the workers, and says so).
    pub fn allowed_cores(&self) -> Option<Vec<usize>> {
        if self.avoid_cores.is_empty() {
            return None;
        }
        let all: Vec<usize> = core_affinity::get_core_ids()
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.id)
            .collect();
        let allowed: Vec<usize> = all
            .into_iter()
            .filter(|c| !self.avoid_cores.contains(c))
            .collect();
        if allowed.is_empty() {
            tracing::warn!(
                avoid = ?self.avoid_cores,
                "every core runs a worker: health checks run unpinned and share them"
            );
            return None;
        }
        Some(allowed)
    }
}

fn pin(cores: Option<&[usize]>, i: usize) {
    if let Some(cores) = cores.filter(|c| !c.is_empty()) {
        let core = cores[i % cores.len()];
        if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
            tracing::warn!(core, "could not pin a health check thread");
        }
    }
}

/// Run every target once, concurrently on up to `threads` threads (the caller included),
/// each check bounded by `timeout`. Results come back in `targets` order.
pub fn run_round(
    targets: &[Target],
    timeout: Duration,
    threads: usize,
    cores: Option<&[usize]>,
) -> Vec<(Target, CheckOutcome)> {
    let slots: Vec<Mutex<Option<CheckOutcome>>> =
        targets.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let work = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(t) = targets.get(i) else { break };
        let started = Instant::now();
        let result = check::run(t, timeout);
        let outcome = CheckOutcome {
            result,
            elapsed: started.elapsed(),
        };
        tracing::debug!(check = %t, ok = outcome.result.is_ok(), ms = outcome.elapsed.as_millis() as u64, "check done");
        *lock(&slots[i]) = Some(outcome);
    };
    let helpers = threads.max(1).min(targets.len()).saturating_sub(1);
    std::thread::scope(|s| {
        for h in 0..helpers {
            let spawned = std::thread::Builder::new()
                .name(format!("rondo-hc-{h}"))
                .spawn_scoped(s, move || {
                    pin(cores, h + 1);
                    work()
                });
            if let Err(e) = spawned {
                tracing::warn!(
                    "cannot start a health check thread ({e}); fewer checks run at once"
                );
                break;
            }
        }
        work();
    });
    targets
        .iter()
        .zip(slots)
        .map(|(t, slot)| {
            let outcome = slot
                .into_inner()
                .unwrap_or_else(PoisonError::into_inner)
                .unwrap_or(CheckOutcome {
                    // Only reachable if a check thread panicked: count it as a failure.
                    result: Err(check::CheckError::Io {
                        stage: "check",
                        message: "the check did not complete".into(),
                    }),
                    elapsed: Duration::ZERO,
                });
            (t.clone(), outcome)
        })
        .collect()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Shared {
    state: Mutex<HealthState>,
    stop: Mutex<bool>,
    wake: Condvar,
}

/// Background health checker. Dropping it (or [`Checker::stop`]) stops it within about one
/// check timeout.
pub struct Checker {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Checker {
    /// Start checking the backends of `tables`. Flips arrive on the returned receiver; the
    /// first round runs at once and reports every backend whose checked health differs from
    /// its configured `healthy` flag.
    pub fn start(
        options: CheckerOptions,
        tables: &[TableSpec],
    ) -> Result<(Checker, Receiver<HealthEvent>), HealthError> {
        if options.interval.is_zero() || options.timeout.is_zero() {
            return Err(HealthError::Options(
                "interval and timeout must be above zero".into(),
            ));
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(HealthState::new(options.trigger, tables)),
            stop: Mutex::new(false),
            wake: Condvar::new(),
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let sh = shared.clone();
        let thread = std::thread::Builder::new()
            .name("rondo-health".into())
            .spawn(move || run(&sh, &options, &tx))
            .map_err(|e| HealthError::Options(format!("cannot start the checker thread: {e}")))?;
        Ok((
            Checker {
                shared,
                thread: Some(thread),
            },
            rx,
        ))
    }

    /// Track a new set of tables (after a reload); takes effect from the next round.
    pub fn set_tables(&self, tables: &[TableSpec]) {
        lock(&self.shared.state).set_tables(tables);
    }

    /// The current health of every checked backend.
    pub fn snapshot(&self) -> HealthSnapshot {
        lock(&self.shared.state).snapshot()
    }

    /// Stop and wait for the checker thread (at most about one check timeout).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        *lock(&self.shared.stop) = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Checker {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn run(shared: &Shared, options: &CheckerOptions, tx: &Sender<HealthEvent>) {
    let cores = options.allowed_cores();
    pin(cores.as_deref(), 0);
    tracing::info!(
        interval_ms = options.interval.as_millis() as u64,
        timeout_ms = options.timeout.as_millis() as u64,
        trigger = options.trigger,
        cores = ?cores,
        "health checker started"
    );
    let mut next = Instant::now();
    loop {
        // Wait for the round's start, or stop.
        {
            let mut stop = lock(&shared.stop);
            loop {
                if *stop {
                    return;
                }
                let now = Instant::now();
                let Some(wait) = next.checked_duration_since(now).filter(|d| !d.is_zero()) else {
                    break;
                };
                stop = shared
                    .wake
                    .wait_timeout(stop, wait)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        }
        next += options.interval;
        let targets = lock(&shared.state).targets();
        let results = run_round(&targets, options.timeout, options.threads, cores.as_deref());
        let events = lock(&shared.state).record(results);
        for e in events {
            tracing::info!(
                table = %e.table,
                backend = %e.backend,
                healthy = e.healthy,
                reason = %e.reason,
                "health state changed for backend"
            );
            // Nobody listening is fine: the snapshot still tells.
            let _ = tx.send(e);
        }
        let now = Instant::now();
        if next < now {
            next = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_cores_are_avoided() {
        let all: Vec<usize> = core_affinity::get_core_ids()
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.id)
            .collect();
        let none = CheckerOptions::default();
        assert_eq!(none.allowed_cores(), None, "nothing to avoid: no pinning");
        let every = CheckerOptions {
            avoid_cores: all.clone(),
            ..CheckerOptions::default()
        };
        assert_eq!(
            every.allowed_cores(),
            None,
            "no core left: unpinned, with a warning"
        );
        if all.len() > 1 {
            let first = CheckerOptions {
                avoid_cores: vec![all[0]],
                ..CheckerOptions::default()
            };
            let allowed = first.allowed_cores().unwrap();
            assert_eq!(allowed, all[1..].to_vec());
        }
    }

    #[test]
    fn a_round_of_nothing_and_bad_options() {
        assert!(run_round(&[], Duration::from_millis(10), 4, None).is_empty());
        let zero = CheckerOptions {
            interval: Duration::ZERO,
            ..CheckerOptions::default()
        };
        assert!(matches!(
            Checker::start(zero, &[]),
            Err(HealthError::Options(_))
        ));
    }
}
