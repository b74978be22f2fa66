//! The control plane of `rondo run`: the running data plane plus its [`Control`], shared by
//! the main loop (signals, file changes), the console sessions, the metrics server and the
//! health checker. None of them touch the workers except through the published counters
//! and the snapshot swap.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::control::{BuildStats, ChangeReport, Control};
use super::ledger::{SentLedger, SentTotals};
use super::overrides::Change;
use super::Runtime;
use crate::datapath::CoreCounters;

/// Where the control plane can be reached, filled in as the servers start.
#[derive(Debug, Clone, Default)]
pub struct Endpoints {
    pub console: Option<PathBuf>,
    pub metrics: Option<SocketAddr>,
    pub statsd: Option<SocketAddr>,
}

/// See the module documentation.
pub struct ControlPlane {
    rt: Runtime,
    control: Mutex<Control>,
    pub reloads_ok: Arc<AtomicU64>,
    pub reloads_failed: Arc<AtomicU64>,
    pub builds: Arc<BuildStats>,
    ledger: Arc<SentLedger>,
    started: Instant,
    /// Set by the console's `quit` on `rondo run -i`: the main loop stops the director.
    quit: AtomicBool,
    endpoints: Mutex<Endpoints>,
}

impl ControlPlane {
    pub fn new(rt: Runtime, control: Control) -> ControlPlane {
        ControlPlane {
            reloads_ok: control.reloads_ok.clone(),
            reloads_failed: control.reloads_failed.clone(),
            builds: control.builds.clone(),
            ledger: control.ledger.clone(),
            rt,
            control: Mutex::new(control),
            started: Instant::now(),
            quit: AtomicBool::new(false),
            endpoints: Mutex::new(Endpoints::default()),
        }
    }

    pub fn runtime(&self) -> &Runtime {
        &self.rt
    }

    /// The control state, locked. Held during table builds: keep uses short.
    pub fn control(&self) -> MutexGuard<'_, Control> {
        self.control.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Reload the config file(s); overrides stay in force.
    pub fn reload(&self, why: &str) -> Result<u64, String> {
        let mut c = self.control();
        c.reload(&self.rt, why)
    }

    /// Reload if a config file changed on disk.
    pub fn reload_if_changed(&self) {
        let mut c = self.control();
        if c.files_changed() {
            let _ = c.reload(&self.rt, "config file changed");
        }
    }

    /// See [`Control::change_backend`].
    pub fn change_backend(
        &self,
        table: &str,
        ip: IpAddr,
        change: Change,
        force: bool,
        dry_run: bool,
    ) -> Result<ChangeReport, String> {
        let mut c = self.control();
        c.change_backend(&self.rt, table, ip, change, force, dry_run)
    }

    /// The health checker's entry point: the latest result for backend `ip` of `table`
    /// (`true`: every check passes). Backends whose health is `auto` (the default) follow
    /// it: when it changes their effective health, the table is rebuilt and swapped in
    /// through the same validated path as a reload, and the new generation is returned.
    /// The same result again, or a backend pinned with `health up|down`, returns `Ok(None)`
    /// and costs only a lock and a map lookup, so it may be called after every check.
    /// Unknown table or backend: `Err`, nothing recorded.
    pub fn set_health_observation(
        &self,
        table: &str,
        ip: IpAddr,
        healthy: bool,
    ) -> Result<Option<u64>, String> {
        let mut c = self.control();
        c.observe_health(&self.rt, table, ip, healthy)
    }

    /// Packets sent per backend since start.
    pub fn sent_totals(&self) -> SentTotals {
        self.ledger.totals(&self.rt.snapshot())
    }

    /// Ask the main loop to stop the director (`quit` on the `-i` console).
    pub fn request_quit(&self) {
        self.quit.store(true, Ordering::Release);
    }

    pub fn quit_requested(&self) -> bool {
        self.quit.load(Ordering::Acquire)
    }

    pub fn endpoints(&self) -> Endpoints {
        self.endpoints
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn set_endpoints(&self, f: impl FnOnce(&mut Endpoints)) {
        f(&mut self.endpoints.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Stop the data plane and return the final totals. Joins the workers when this is
    /// the last reference; otherwise waits (at most `wait`) for them to finish.
    pub fn shutdown(self: Arc<Self>, wait: Duration) -> CoreCounters {
        match Arc::try_unwrap(self) {
            Ok(plane) => plane.rt.shutdown(),
            Err(shared) => {
                shared.rt.stop();
                let end = Instant::now() + wait;
                while !shared.rt.finished() && Instant::now() < end {
                    std::thread::sleep(Duration::from_millis(5));
                }
                shared.rt.totals()
            }
        }
    }
}
