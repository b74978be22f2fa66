//! The control plane of `rondo run`: the running data plane plus its [`Control`], shared by
//! the main loop (signals, file changes), the console sessions, the metrics server and the
//! health checker. None of them touch the workers except through the published counters
//! and the snapshot swap.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::control::{BuildStats, ChangeReport, ConfigSource, Control};
use super::ledger::{SentLedger, SentTotals};
use super::overrides::Change;
use super::Runtime;
use crate::config::Config;
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
    /// Held by a reload from start to swap, so reloads apply in the order they load.
    reloading: Mutex<()>,
    /// BGP announcements (`[bgp]`): what the BGP thread decided and the daemon reports,
    /// and the operator's overrides. Unconfigured unless `rondo run` has `[bgp]`.
    pub bgp: crate::fleet::bgp::shared::BgpShared,
    /// `[fleet]`: what the fleet thread publishes; unconfigured otherwise.
    pub fleet: super::fleet::FleetShared,
}

/// How long a reload waits for its files to be read and its tables built.
pub const LOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// Load `source` on a thread of its own and wait at most `timeout` for it. On a timeout the
/// thread is left to finish (its result is dropped): nothing it holds is shared.
fn load_with_timeout(source: ConfigSource, timeout: Duration) -> Result<Config, String> {
    let (tx, rx) = mpsc::channel();
    let what = source.describe();
    std::thread::Builder::new()
        .name("rondo-load".into())
        .spawn(move || {
            let _ = tx.send(source.load());
        })
        .map_err(|e| format!("{what}: cannot start the loader thread: {e}"))?;
    match rx.recv_timeout(timeout) {
        Ok(r) => r,
        Err(mpsc::RecvTimeoutError::Timeout) => Err(format!(
            "{what}: reading and building took more than {} s; gave up waiting",
            timeout.as_secs()
        )),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            Err(format!("{what}: the loader thread ended without a result"))
        }
    }
}

/// Runs the reloads that signals ask for, and the config file watcher, on a thread of its
/// own: the loop that handles SIGTERM only asks ([`Reloader::request`]) and never waits for
/// a reload.
pub struct Reloader {
    tx: Option<mpsc::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl Reloader {
    /// Start the thread; it checks the config files for changes every `watch` and reloads
    /// when they changed.
    pub fn start(plane: Arc<ControlPlane>, watch: Duration) -> std::io::Result<Reloader> {
        let (tx, rx) = mpsc::channel::<()>();
        let handle = std::thread::Builder::new()
            .name("rondo-reload".into())
            .spawn(move || loop {
                match rx.recv_timeout(watch) {
                    Ok(()) => {
                        // Requests that came in meanwhile are served by this reload.
                        while rx.try_recv().is_ok() {}
                        let _ = plane.reload("signal");
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => plane.reload_if_changed(),
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
            })?;
        Ok(Reloader {
            tx: Some(tx),
            handle: Some(handle),
        })
    }

    /// Ask for a reload (SIGHUP, SIGUSR1); returns at once.
    pub fn request(&self) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(());
        }
    }

    /// Stop the thread: wait at most `wait` for a reload under way to finish, then leave it.
    pub fn stop(mut self, wait: Duration) {
        drop(self.tx.take());
        let Some(h) = self.handle.take() else { return };
        let end = Instant::now() + wait;
        while !h.is_finished() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
        if h.is_finished() {
            let _ = h.join();
        } else {
            tracing::warn!("a reload is still under way at shutdown; not waiting for it");
        }
    }
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
            reloading: Mutex::new(()),
            bgp: Default::default(),
            fleet: Default::default(),
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

    /// Reload the config file(s); overrides stay in force. The files are read and the
    /// tables built on a loader thread, off the control lock, and waited for at most
    /// [`LOAD_TIMEOUT`]: a reload answers (with an error, the running tables staying) even
    /// when a read hangs. Reloads run one at a time.
    pub fn reload(&self, why: &str) -> Result<u64, String> {
        self.reload_reporting(why).map(|(g, _)| g)
    }

    /// [`ControlPlane::reload`], with what the reload removed (tables, VIPs; empty when
    /// nothing), for the console's reply.
    pub fn reload_reporting(&self, why: &str) -> Result<(u64, Vec<String>), String> {
        let _one = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let started = Instant::now();
        let (source, seen) = {
            let c = self.control();
            (c.source().cloned(), c.file_times())
        };
        let loaded = match source {
            Some(s) => load_with_timeout(s, LOAD_TIMEOUT),
            None => Err("no configuration file to reload".into()),
        };
        let mut c = self.control();
        let g = c.reload_loaded(&self.rt, why, seen, loaded, started)?;
        Ok((g, c.removed_by_last_reload().to_vec()))
    }

    /// Reload if a config file changed on disk and then stayed unchanged for
    /// [`SETTLE`](super::control::SETTLE) (the file watcher; see
    /// [`Control::settled_change`]).
    pub fn reload_if_changed(&self) {
        let changed = self.control().settled_change(Instant::now());
        if changed {
            let _ = self.reload("config file changed");
        }
    }

    /// A fleet director's new desired revision (see [`Control::apply_desired`]); runs one
    /// at a time with reloads.
    pub fn apply_desired(
        &self,
        cfg: Config,
        rules: super::overrides::OperatorRules,
        why: &str,
    ) -> Result<u64, String> {
        let _one = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let mut c = self.control();
        c.apply_desired(&self.rt, cfg, rules, why)
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

    /// See [`Control::observe_health_many`].
    pub fn set_health_observations(
        &self,
        results: &[(String, IpAddr, bool)],
    ) -> Result<super::control::HealthApplied, String> {
        let mut c = self.control();
        c.observe_health_many(&self.rt, results)
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
        self.shutdown_counts(wait).totals()
    }

    /// [`ControlPlane::shutdown`], returning every worker's, the port's and the exception
    /// path's final counters.
    pub fn shutdown_counts(self: Arc<Self>, wait: Duration) -> crate::runtime::FinalCounts {
        match Arc::try_unwrap(self) {
            Ok(plane) => plane.rt.shutdown_counts(),
            Err(shared) => {
                shared.rt.stop();
                let end = Instant::now() + wait;
                while !shared.rt.finished() && Instant::now() < end {
                    std::thread::sleep(Duration::from_millis(5));
                }
                shared.rt.counts()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drivers::{mem, BufPool, Port};
    use crate::runtime::control::ConfigSource;
    use crate::runtime::overrides::Health;
    use crate::runtime::{IdlePolicy, RuntimeOptions};

    fn cfg() -> String {
        crate::config::testing::web_table(
            r#"[{ ip = "10.1.0.1" }, { ip = "10.1.0.2" }, { ip = "10.1.0.3" }]"#,
        )
    }

    fn start(dir: &std::path::Path) -> (Arc<ControlPlane>, mem::MemPeer) {
        start_with(dir, &cfg())
    }

    fn start_with(dir: &std::path::Path, cfg: &str) -> (Arc<ControlPlane>, mem::MemPeer) {
        let path = dir.join("d.toml");
        std::fs::write(&path, cfg).unwrap();
        let pool = BufPool::new(1024, 2048).unwrap();
        let (port, peer) = mem::pair("plane", 1, 512, pool).unwrap();
        let mut control = Control::new(Some(ConfigSource::Native(path)), port.mac());
        let snap = control.initial().unwrap();
        let opts = RuntimeOptions {
            idle: IdlePolicy::Sleep {
                after: 16,
                micros: 50,
            },
            ..RuntimeOptions::default()
        };
        let rt = Runtime::start(port, snap, opts).unwrap();
        (Arc::new(ControlPlane::new(rt, control)), peer)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn is_primary_somewhere(p: &ControlPlane, backend: u32) -> bool {
        let snap = p.runtime().snapshot();
        let t = &snap.tables[0].table;
        t.rows().chunks_exact(t.hops()).any(|r| r[0] == backend)
    }

    #[test]
    fn health_observations_rebuild_only_when_the_effective_health_changes() {
        let dir = tempfile::tempdir().unwrap();
        let (p, _peer) = start(dir.path());
        let one = ip("10.1.0.1");
        // Agrees with the config: nothing to rebuild.
        assert_eq!(p.set_health_observation("web", one, true), Ok(None));
        let g = p.set_health_observation("web", one, false).unwrap();
        assert_eq!(g, Some(2));
        assert!(!p.runtime().snapshot().tables[0].table.spec.backends[0].healthy);
        assert!(!is_primary_somewhere(&p, 0));
        assert_eq!(
            p.set_health_observation("web", one, false),
            Ok(None),
            "same result"
        );
        assert_eq!(p.set_health_observation("web", one, true), Ok(Some(3)));
        assert!(is_primary_somewhere(&p, 0));
        // Pinned by the operator: observations are recorded but change nothing.
        p.change_backend("web", one, Change::Health(Health::Down), false, false)
            .unwrap();
        assert_eq!(p.set_health_observation("web", one, true), Ok(None));
        assert!(!is_primary_somewhere(&p, 0));
        // A reload keeps the pin; `auto` hands it back to the (last) observation: up.
        p.reload("test").unwrap();
        assert!(!is_primary_somewhere(&p, 0));
        p.change_backend("web", one, Change::Health(Health::Auto), false, false)
            .unwrap();
        assert!(is_primary_somewhere(&p, 0));
        let g = p.runtime().snapshot().generation;
        for (t, b) in [("web", "10.9.9.9"), ("nope", "10.1.0.1")] {
            let e = p.set_health_observation(t, ip(b), false).unwrap_err();
            assert!(e.contains("no backend") || e.contains("no table"), "{e}");
        }
        assert_eq!(p.runtime().snapshot().generation, g, "nothing rebuilt");
        assert_eq!(p.reloads_failed.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn more_than_one_non_active_backend_is_refused_unless_forced() {
        use crate::table::BackendState::{Active, Draining};
        let dir = tempfile::tempdir().unwrap();
        let cfg = cfg().replace(
            "{ ip = \"10.1.0.3\" }",
            "{ ip = \"10.1.0.3\", state = \"draining\" }",
        );
        let (p, _peer) = start_with(dir.path(), &cfg);
        let (one, three) = (ip("10.1.0.1"), ip("10.1.0.3"));
        let e = p
            .change_backend("web", one, Change::State(Draining), false, false)
            .unwrap_err();
        assert!(
            e.contains("refused") && e.contains("10.1.0.3 draining"),
            "{e}"
        );
        p.change_backend("web", three, Change::State(Active), false, false)
            .unwrap();
        p.change_backend("web", one, Change::State(Draining), false, false)
            .unwrap();
        // Clearing .3 would bring back the file's `draining`: a second one.
        let g = p.runtime().snapshot().generation;
        let e = p
            .change_backend("web", three, Change::Clear, false, false)
            .unwrap_err();
        assert!(e.contains("2 backends"), "{e}");
        assert_eq!(
            p.runtime().snapshot().generation,
            g,
            "refused: nothing swapped"
        );
        let dry = p
            .change_backend("web", three, Change::Clear, false, true)
            .unwrap();
        assert!(dry.refusal.is_some() && dry.generation.is_none());
        let r = p
            .change_backend("web", three, Change::Clear, true, false)
            .unwrap();
        assert_eq!(r.generation, Some(g + 1));
        // Back to active is never refused.
        p.change_backend("web", one, Change::State(Active), false, false)
            .unwrap();
    }

    #[test]
    fn stopped_workers_take_nothing_and_sent_counts_follow_the_first_hop() {
        let dir = tempfile::tempdir().unwrap();
        let (p, peer) = start(dir.path());
        let rt = p.runtime();
        assert!(rt.pause(Duration::from_secs(5)));
        assert!(rt.is_paused());
        let syn = |i: u32| {
            let mut f = vec![0u8; 60];
            f[12..14].copy_from_slice(&[8, 0]);
            f[14..34].copy_from_slice(&[
                0x45,
                0,
                0,
                40,
                0,
                1,
                0x40,
                0,
                64,
                6,
                0,
                0,
                10,
                0,
                (i >> 8) as u8,
                i as u8,
                1,
                1,
                1,
                1,
            ]);
            f[34..38].copy_from_slice(&[4, 0, 0, 80]);
            f[46] = 0x50;
            f[47] = 2;
            f
        };
        for i in 0..200 {
            assert!(peer.send(0, &syn(i)));
        }
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(rt.totals().rx_packets, 0, "stopped: nothing taken from RX");
        rt.resume();
        let end = Instant::now() + Duration::from_secs(20);
        let mut got = std::collections::BTreeMap::<[u8; 4], u64>::new();
        while got.values().sum::<u64>() < 200 {
            assert!(Instant::now() < end, "{:?}", rt.totals());
            while let Some(b) = peer.recv() {
                let d = crate::datapath::PacketBuf::data(&b);
                let dst: [u8; 4] = d[30..34].try_into().unwrap();
                *got.entry(dst).or_default() += 1;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        // The per-backend counts are exactly what went to each backend.
        let end = Instant::now() + Duration::from_secs(20);
        while rt.totals().forwarded < 200 {
            assert!(Instant::now() < end);
            std::thread::sleep(Duration::from_millis(1));
        }
        let sent = p.sent_totals();
        for (dst, n) in &got {
            let key = ("web".to_string(), IpAddr::from(*dst));
            assert_eq!(sent.get(&key), Some(n), "{key:?}");
        }
        assert_eq!(sent.values().sum::<u64>(), 200);
        let totals = p.shutdown(Duration::from_secs(5));
        assert_eq!(totals.forwarded, 200);
    }
}
