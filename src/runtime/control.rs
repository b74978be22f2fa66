//! The control side: loads configurations, builds snapshots off the data path and swaps
//! them in; reacts to SIGHUP/SIGUSR1 (reload), SIGTERM/SIGINT (stop) and config file
//! changes. A failed reload is logged and counted and the running snapshot stays.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use super::Runtime;
use crate::config::{load_config, Config, RunSettings};
use crate::datapath::Snapshot;
use crate::wire::MacAddr;

/// Where the configuration comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// A native TOML file.
    Native(PathBuf),
    /// GLB's `director.conf` plus a forwarding table (.json or .bin).
    Glb { director: PathBuf, table: PathBuf },
}

impl ConfigSource {
    pub fn load(&self) -> Result<Config, String> {
        match self {
            ConfigSource::Native(p) => load_config(p, None),
            ConfigSource::Glb { director, table } => load_config(director, Some(table)),
        }
        .map_err(|e| e.to_string())
    }
    fn paths(&self) -> Vec<&Path> {
        match self {
            ConfigSource::Native(p) => vec![p],
            ConfigSource::Glb { director, table } => vec![director, table],
        }
    }
}

/// Reload and swap bookkeeping.
pub struct Control {
    source: Option<ConfigSource>,
    mac: Option<MacAddr>,
    generation: u64,
    mtimes: Vec<Option<SystemTime>>,
    /// Run settings (ports, workers, cores) of the first load: a reload cannot change them.
    run: Option<RunSettings>,
    pub reloads_ok: AtomicU64,
    pub reloads_failed: AtomicU64,
}

fn mtimes(source: &Option<ConfigSource>) -> Vec<Option<SystemTime>> {
    source
        .as_ref()
        .map(|s| {
            s.paths()
                .iter()
                .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
                .collect()
        })
        .unwrap_or_default()
}

impl Control {
    /// `source` is `None` for embedded configs (the demo): only [`Control::apply`] then.
    /// `mac` is the port's MAC, used as the source of encapsulated frames.
    pub fn new(source: Option<ConfigSource>, mac: Option<MacAddr>) -> Control {
        Control {
            mtimes: mtimes(&source),
            source,
            mac,
            run: None,
            generation: 0,
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
        }
    }

    /// Compile a config into the next snapshot.
    pub fn compile(&mut self, cfg: Config) -> Result<Snapshot, String> {
        let snap =
            Snapshot::compile(cfg, self.mac, self.generation + 1).map_err(|e| e.to_string())?;
        self.generation += 1;
        Ok(snap)
    }

    /// Load the configured source and compile it (the first snapshot).
    pub fn initial(&mut self) -> Result<Snapshot, String> {
        let src = self.source.clone().ok_or("no configuration source")?;
        let cfg = src.load()?;
        self.run = Some(cfg.run.clone());
        self.compile(cfg)
    }

    /// Build `cfg` and swap it in, or keep the running snapshot and say why.
    pub fn apply(&mut self, rt: &Runtime, cfg: Config, why: &str) -> Result<u64, String> {
        let started = std::time::Instant::now();
        match self.compile(cfg) {
            Ok(snap) => {
                let g = snap.generation;
                rt.swap(snap);
                self.reloads_ok.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    generation = g,
                    reason = why,
                    build_ms = started.elapsed().as_millis() as u64,
                    "new forwarding snapshot live"
                );
                Ok(g)
            }
            Err(e) => Err(self.reject(why, e)),
        }
    }

    /// Count and log a refused reload; the running snapshot stays.
    fn reject(&self, why: &str, e: String) -> String {
        self.reloads_failed.fetch_add(1, Ordering::Relaxed);
        tracing::error!(
            reason = why,
            "reload rejected, previous tables stay in force: {e}"
        );
        e
    }

    /// Reload from the configured source.
    pub fn reload(&mut self, rt: &Runtime, why: &str) -> Result<u64, String> {
        self.mtimes = mtimes(&self.source);
        let loaded = match &self.source {
            Some(s) => s.load(),
            None => Err("no configuration file to reload".into()),
        };
        match loaded {
            Ok(cfg) => {
                if self.run.as_ref().is_some_and(|r| *r != cfg.run) {
                    tracing::warn!(
                        reason = why,
                        "[runtime] or [[ports]] changed: tables and director settings are reloaded now, \
                         ports, workers, cores and the exception path only on restart"
                    );
                }
                self.apply(rt, cfg, why)
            }
            Err(e) => Err(self.reject(why, e)),
        }
    }

    /// Whether a config file changed on disk since the last load.
    pub fn files_changed(&self) -> bool {
        self.source.is_some() && mtimes(&self.source) != self.mtimes
    }
}

/// Flags set by signal handlers (async-signal-safe: they only store to atomics).
pub struct SignalFlags {
    pub reload: Arc<AtomicBool>,
    pub stop: Arc<AtomicBool>,
}

impl SignalFlags {
    /// SIGHUP and SIGUSR1 ask for a reload; SIGTERM and SIGINT for a clean stop.
    pub fn install() -> std::io::Result<SignalFlags> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
        let reload = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        for s in [SIGHUP, SIGUSR1] {
            signal_hook::flag::register(s, reload.clone())?;
        }
        for s in [SIGTERM, SIGINT] {
            signal_hook::flag::register(s, stop.clone())?;
        }
        Ok(SignalFlags { reload, stop })
    }

    /// Take a pending reload request.
    pub fn take_reload(&self) -> bool {
        self.reload.swap(false, Ordering::AcqRel)
    }

    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }
}
