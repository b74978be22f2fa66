//! `rondo run`'s BGP thread: evaluates the decision ([`crate::fleet::bgp::decide`]) every
//! [`TICK`] from the running director's state, applies the whole desired set to BIRD when
//! it changed (retrying a failed apply every [`RETRY`] while forwarding goes on), caches
//! the daemon's session and BFD status for the console and metrics, and logs one line per
//! VIP whose verdict changed. Every daemon call has a deadline and runs here, never on the
//! main loop that handles SIGTERM.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::fleet::bgp::decide::{self, Decision, Inputs, TableInput, Verdict};
use crate::fleet::bgp::shared::SessionView;
use crate::fleet::bgp::{BgpError, BgpRunSettings, Bird, CtlError, Desired};
use crate::runtime::plane::ControlPlane;

/// How often the decision is evaluated.
pub const TICK: Duration = Duration::from_millis(100);
/// How soon a failed apply is tried again.
pub const RETRY: Duration = Duration::from_secs(1);
/// How often the daemon's session status is read.
pub const STATUS_EVERY: Duration = Duration::from_secs(1);

/// The running BGP thread.
pub struct BgpDriver {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// The decision's inputs from the running director.
pub fn inputs(plane: &ControlPlane, stall: Duration) -> Inputs {
    let rt = plane.runtime();
    let snap = rt.snapshot();
    let tables = snap
        .tables
        .iter()
        .map(|t| {
            let s = &t.table.spec;
            TableInput::new(&s.name, &s.binds, &s.backends)
        })
        .collect();
    Inputs {
        ready: plane.bgp.ready(),
        link_up: rt.port().link().map(|l| l.up),
        port_gone: rt.port().gone().is_some(),
        stopped: rt.is_paused(),
        stalled_worker: rt
            .worker_progress_ages()
            .iter()
            .position(|a| a.is_some_and(|a| a >= stall)),
        lifecycle: plane.bgp.lifecycle(),
        tables,
        overrides: plane.bgp.overrides(),
    }
}

fn log_changes(old: &[Decision], new: &[Decision]) {
    for d in decide::changes(old, new) {
        match &d.verdict {
            Verdict::Announced { graceful } => tracing::info!(
                vip = %d.prefix,
                tables = %d.tables.join(","),
                graceful_shutdown = graceful,
                "BGP: {} announced{}",
                d.prefix,
                if *graceful { " with GRACEFUL_SHUTDOWN" } else { "" }
            ),
            Verdict::Withdrawn(r) => tracing::warn!(
                vip = %d.prefix,
                tables = %d.tables.join(","),
                reason = r.label(),
                "BGP: {} withdrawn: {r}",
                d.prefix
            ),
        }
    }
    for o in old {
        if !new.iter().any(|n| n.prefix == o.prefix) && o.verdict.is_announced() {
            tracing::info!(vip = %o.prefix, reason = "unbound", "BGP: {} withdrawn: no table binds it any more", o.prefix);
        }
    }
}

impl BgpDriver {
    /// Start the thread driving `bird` (already answering: [`Bird::new`] succeeded).
    pub fn start(
        mut bird: Bird,
        settings: BgpRunSettings,
        plane: Arc<ControlPlane>,
    ) -> std::io::Result<BgpDriver> {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicBool::new(false));
        plane.bgp.set_configured();
        plane.bgp.update_view(|v| {
            v.socket = settings.bird.socket.display().to_string();
            v.include = settings.bird.include.display().to_string();
        });
        let (st, dn) = (stop.clone(), done.clone());
        let thread = std::thread::Builder::new()
            .name("rondo-bgp".into())
            .spawn(move || {
                run(&mut bird, &settings, &plane, &st);
                dn.store(true, Ordering::Release);
                // `bird` drops here: the lifeline closes and BIRD withdraws what is left.
            })?;
        Ok(BgpDriver {
            stop,
            done,
            thread: Some(thread),
        })
    }

    /// Stop the thread; wait at most `wait` for a daemon call under way.
    pub fn stop(mut self, wait: Duration) {
        self.stop.store(true, Ordering::Release);
        let end = Instant::now() + wait;
        while !self.done.load(Ordering::Acquire) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
        }
        if self.done.load(Ordering::Acquire) {
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        } else {
            tracing::warn!("the BGP thread is still waiting for BIRD at exit; not waiting for it (the lifeline withdraws the routes when rondo exits)");
        }
    }
}

/// A status error that means the daemon is not there to answer (not running, its socket
/// gone, hung), as opposed to a reply Rondo did not understand.
fn unreachable(e: &BgpError) -> bool {
    e.ctl().is_some_and(|c| {
        matches!(
            c,
            CtlError::SocketMissing { .. }
                | CtlError::NotRunning { .. }
                | CtlError::Permission { .. }
                | CtlError::Io { .. }
                | CtlError::Timeout { .. }
                | CtlError::Closed { .. }
        )
    })
}

fn run(bird: &mut Bird, s: &BgpRunSettings, plane: &ControlPlane, stop: &AtomicBool) {
    let mut last: Vec<Decision> = Vec::new();
    // The set in force in the daemon: empty after Bird::new.
    let mut in_force: Option<Desired> = Some(Desired::new());
    let mut retry_at = Instant::now();
    let mut status_at: Option<Instant> = None;
    // The daemon's start time as last seen (`show status`), and whether it stopped
    // answering since: either way the set is applied again once it answers, since a
    // restarted bird runs whatever include is on disk (an operator's or a unit's seed, say).
    let mut booted: Option<String> = None;
    let mut lost = false;
    let mut failures_in_a_row = 0u64;
    while !stop.load(Ordering::Acquire) {
        let lifecycle = plane.bgp.lifecycle();
        let decisions = decide::decide(&inputs(plane, s.stall));
        log_changes(&last, &decisions);
        let want = decide::desired(&decisions, &s.bird);
        let now = Instant::now();
        if in_force.as_ref() != Some(&want) && now >= retry_at {
            match bird.apply(&want) {
                Ok(a) => {
                    failures_in_a_row = 0;
                    plane.bgp.applies.fetch_add(1, Ordering::Relaxed);
                    if plane.bgp.view().apply_error.is_some() {
                        tracing::info!(
                            v4_routes = a.v4_routes,
                            v6_routes = a.v6_routes,
                            "BGP: BIRD took the announcements again"
                        );
                    }
                    in_force = Some(want.clone());
                    plane.bgp.update_view(|v| v.apply_error = None);
                }
                Err(e) => {
                    let n = plane.bgp.apply_failures.fetch_add(1, Ordering::Relaxed) + 1;
                    failures_in_a_row += 1;
                    // Once a minute while the daemon stays away (every failure is counted).
                    if failures_in_a_row == 1 || failures_in_a_row.is_multiple_of(60) {
                        tracing::warn!(
                            failures = n,
                            in_a_row = failures_in_a_row,
                            retry_in_ms = RETRY.as_millis() as u64,
                            "BGP: announcing through BIRD failed: {e}; forwarding continues, retrying"
                        );
                    }
                    // What BIRD has is unknown now (a restarted daemon reads the include
                    // the last apply left): apply again even if the set goes back.
                    in_force = None;
                    retry_at = now + RETRY;
                    plane
                        .bgp
                        .update_view(|v| v.apply_error = Some(e.to_string()));
                }
            }
        }
        let synced = in_force.as_ref() == Some(&want);
        if synced {
            plane.bgp.mark_applied(lifecycle);
        }
        if status_at.is_none_or(|t| t.elapsed() >= STATUS_EVERY) {
            status_at = Some(Instant::now());
            match bird.status() {
                Ok(st) => {
                    let restarted = booted.as_ref().is_some_and(|b| *b != st.booted);
                    if restarted || lost {
                        tracing::warn!(
                            started = %st.booted,
                            restarted,
                            "BGP: BIRD answers again{}; applying the announcements again",
                            if restarted { " (restarted)" } else { "" }
                        );
                        bird.invalidate();
                        in_force = None;
                        retry_at = Instant::now();
                    }
                    booted = Some(st.booted);
                    lost = false;
                    let sessions = st
                        .sessions
                        .into_iter()
                        .map(|(name, r)| SessionView {
                            name,
                            status: r.map_err(|e| e.to_string()),
                        })
                        .collect();
                    plane.bgp.update_view(|v| {
                        v.sessions = sessions;
                        v.bfd = st.bfd;
                        v.status_at = Some(Instant::now());
                        v.status_error = None;
                        v.daemon_unreachable = false;
                    });
                }
                Err(e) => {
                    let gone = unreachable(&e);
                    if gone {
                        if !lost {
                            tracing::warn!(
                                "BGP: BIRD does not answer: {e}; forwarding continues, the announcements are applied again when it is back"
                            );
                        }
                        lost = true;
                        bird.invalidate();
                        in_force = None;
                    }
                    plane.bgp.update_view(|v| {
                        v.status_error = Some(e.to_string());
                        v.daemon_unreachable = gone;
                    });
                }
            }
        }
        plane.bgp.update_view(|v| {
            v.decisions = decisions.clone();
            v.in_sync = synced;
        });
        last = decisions;
        std::thread::sleep(TICK);
    }
}
