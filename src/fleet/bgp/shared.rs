//! What the BGP thread of `rondo run` publishes and what the console and the main loop
//! tell it: the last decisions, the daemon's cached status, failure counts, the operator's
//! overrides, readiness and the lifecycle. Every access is a short lock or an atomic: the
//! console and metrics never wait for the daemon.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use super::announce::Prefix;
use super::bird_ctl::{BfdSession, ProtocolStatus};
use super::decide::{Decision, Lifecycle, Overrides};

/// One configured BGP session as last reported.
#[derive(Debug, Clone)]
pub struct SessionView {
    pub name: String,
    /// `Err`: BIRD could not report it (unknown protocol, say).
    pub status: Result<ProtocolStatus, String>,
}

/// The BGP thread's view, published after every evaluation.
#[derive(Debug, Clone, Default)]
pub struct View {
    pub decisions: Vec<Decision>,
    pub sessions: Vec<SessionView>,
    pub bfd: Vec<BfdSession>,
    /// When `sessions`/`bfd` were read; `None` before the first status.
    pub status_at: Option<Instant>,
    /// The last status query's error, if it failed.
    pub status_error: Option<String>,
    /// That error says the daemon is not there (not running, socket gone, hung).
    pub daemon_unreachable: bool,
    /// The last apply's error while it is not yet retried successfully.
    pub apply_error: Option<String>,
    /// The desired set is in force in the daemon.
    pub in_sync: bool,
    /// The daemon's socket and include, for `show bgp`.
    pub socket: String,
    pub include: String,
}

/// Shared between the BGP thread, the main loop, the console and metrics.
#[derive(Debug, Default)]
pub struct BgpShared {
    /// `[bgp]` is configured and the thread runs.
    configured: AtomicBool,
    ready: AtomicBool,
    lifecycle: AtomicU8,
    /// Incremented by the BGP thread each time the desired set of the current lifecycle is
    /// in force in the daemon (so the main loop can wait for it).
    applied_lifecycle: AtomicU8,
    applied_ok: AtomicBool,
    pub apply_failures: AtomicU64,
    pub applies: AtomicU64,
    overrides: Mutex<Overrides>,
    view: Mutex<View>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn lc_to(l: Lifecycle) -> u8 {
    match l {
        Lifecycle::Running => 0,
        Lifecycle::Graceful => 1,
        Lifecycle::Draining => 2,
    }
}

fn lc_from(v: u8) -> Lifecycle {
    match v {
        1 => Lifecycle::Graceful,
        2 => Lifecycle::Draining,
        _ => Lifecycle::Running,
    }
}

impl BgpShared {
    pub fn set_configured(&self) {
        self.configured.store(true, Ordering::Release);
    }

    pub fn configured(&self) -> bool {
        self.configured.load(Ordering::Acquire)
    }

    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn set_lifecycle(&self, l: Lifecycle) {
        self.applied_ok.store(false, Ordering::Release);
        self.lifecycle.store(lc_to(l), Ordering::Release);
    }

    pub fn lifecycle(&self) -> Lifecycle {
        lc_from(self.lifecycle.load(Ordering::Acquire))
    }

    /// The BGP thread: the set decided under `l` is in force in the daemon.
    pub fn mark_applied(&self, l: Lifecycle) {
        self.applied_lifecycle.store(lc_to(l), Ordering::Release);
        self.applied_ok.store(true, Ordering::Release);
    }

    /// The set of the current lifecycle is in force.
    pub fn lifecycle_applied(&self) -> bool {
        self.applied_ok.load(Ordering::Acquire)
            && self.applied_lifecycle.load(Ordering::Acquire)
                == self.lifecycle.load(Ordering::Acquire)
    }

    pub fn overrides(&self) -> Overrides {
        lock(&self.overrides).clone()
    }

    /// `bgp withdraw [VIP]`.
    pub fn withdraw(&self, p: Option<Prefix>) {
        lock(&self.overrides).withdraw(p);
    }

    /// `bgp announce [VIP]`: clears the override (the decision still applies). Returns
    /// whether there was one (see [`Overrides::announce`]).
    pub fn clear_withdraw(&self, p: Option<Prefix>) -> bool {
        lock(&self.overrides).announce(p)
    }

    pub fn view(&self) -> View {
        lock(&self.view).clone()
    }

    pub fn update_view(&self, f: impl FnOnce(&mut View)) {
        f(&mut lock(&self.view));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_and_lifecycle_acknowledgement() {
        let s = BgpShared::default();
        let p: Prefix = "10.0.0.1".parse().unwrap();
        s.withdraw(Some(p));
        assert!(s.overrides().withdrawn(&p));
        assert!(!s.overrides().withdrawn(&"10.0.0.2".parse().unwrap()));
        s.withdraw(None);
        assert!(s.overrides().all);
        assert!(s.clear_withdraw(None));
        assert_eq!(s.overrides(), Overrides::default());
        assert!(!s.clear_withdraw(Some(p)));
        assert!(!s.lifecycle_applied());
        s.mark_applied(Lifecycle::Running);
        assert!(s.lifecycle_applied());
        s.set_lifecycle(Lifecycle::Graceful);
        assert!(!s.lifecycle_applied());
        s.mark_applied(Lifecycle::Running);
        assert!(
            !s.lifecycle_applied(),
            "an apply of the old lifecycle does not count"
        );
        s.mark_applied(Lifecycle::Graceful);
        assert!(s.lifecycle_applied());
    }
}
