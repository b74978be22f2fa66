//! A fleet director (`[fleet]` in its config): its tables and operator overrides come from
//! the fleet's desired document in etcd, its backends' health from the elected checker's
//! health document, and it reports what it runs under `directors/<name>`. See
//! `src/fleet/README.md`, "The director side of the fleet".
//!
//! - this file: [`FleetShared`], what the fleet thread publishes for the console (`show
//!   fleet`), the metrics and the status document; table fingerprints of the live snapshot
//!   (cached per generation).
//! - `cache.rs`: the local copy of the last applied desired document (feature `etcd`).
//! - `startup.rs`: start-up, etcd's document else the cache (feature `etcd`).
//! - `director.rs`: the fleet thread (feature `etcd`).
//!
//! Nothing here touches the workers: tables go live through [`Control::apply_desired`]
//! (the same validated rebuild-and-swap as a reload), health through
//! [`Control::observe_health`].
//!
//! [`Control::apply_desired`]: super::control::Control::apply_desired
//! [`Control::observe_health`]: super::control::Control::observe_health

pub mod cache;
#[cfg(feature = "etcd")]
pub mod director;
#[cfg(feature = "etcd")]
pub mod startup;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::datapath::Snapshot;
use crate::fleet::docs::{self, DirectorStatus, Refusal};
use crate::runtime::plane::ControlPlane;

/// A fleet director that started and whose fleet thread is to start once the control
/// plane exists ([`Pending::start`]). Without the `etcd` feature there is none.
#[cfg(feature = "etcd")]
pub struct Pending {
    settings: crate::fleet::etcd::EtcdSettings,
    local: crate::config::Config,
    started: startup::Started,
}

/// Without the `etcd` feature no director follows a fleet: this type has no values.
#[cfg(not(feature = "etcd"))]
pub enum Pending {}

/// The running fleet thread (`[fleet]`).
#[cfg(feature = "etcd")]
pub type Driver = director::FleetDriver;

/// Without the `etcd` feature there is no fleet thread: this type has no values.
#[cfg(not(feature = "etcd"))]
pub enum Driver {}

/// The first snapshot of `rondo run`: from the config's tables, or for a `[fleet]`
/// director from etcd's desired document (else its cache), with the fleet thread to start.
pub fn initial(
    control: &mut crate::runtime::control::Control,
) -> Result<(Snapshot, Option<Pending>), String> {
    let src = control.source().cloned().ok_or("no configuration source")?;
    let cfg = src.load()?;
    match cfg.run.fleet.clone() {
        #[cfg(feature = "etcd")]
        Some(settings) => {
            let (snap, started) = startup::start(&settings, &cfg, control)?;
            Ok((
                snap,
                Some(Pending {
                    settings,
                    local: cfg,
                    started,
                }),
            ))
        }
        #[cfg(not(feature = "etcd"))]
        Some(never) => match never {},
        None => Ok((control.initial_loaded(cfg)?, None)),
    }
}

impl Pending {
    /// Start the fleet thread on the running control plane.
    pub fn start(self, plane: std::sync::Arc<ControlPlane>) -> Result<Driver, String> {
        #[cfg(feature = "etcd")]
        {
            director::FleetDriver::start(plane, self.settings, self.local, self.started)
                .map_err(|e| format!("cannot start the fleet thread: {e}"))
        }
        #[cfg(not(feature = "etcd"))]
        {
            let _ = plane;
            match self {}
        }
    }
}

/// Stop the fleet thread (waiting at most `wait`).
pub fn stop(d: Driver, wait: std::time::Duration) {
    #[cfg(feature = "etcd")]
    d.stop(wait);
    #[cfg(not(feature = "etcd"))]
    {
        let _ = wait;
        match d {}
    }
}

/// Every live table's name and fingerprint.
pub type Fingerprints = Vec<(String, u64)>;

/// What the fleet thread knows, for people and the status document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FleetView {
    pub endpoints: Vec<String>,
    pub prefix: String,
    pub name: String,
    /// The desired watch is up and the last status write went through.
    pub connected: bool,
    /// The member the desired watch is on.
    pub endpoint: Option<String>,
    pub seen_revision: i64,
    pub applied_revision: i64,
    pub health_revision: i64,
    /// "etcd" or "cache".
    pub source: String,
    pub refused: Option<Refusal>,
    pub last_error: Option<String>,
    /// Unix ms of the last status document written (0: none yet).
    pub status_written_ms: u64,
}

/// Shared between the fleet thread, the console and the metrics. Unconfigured (and empty)
/// on a director without `[fleet]`, except for the fingerprints, which every director has.
#[derive(Debug, Default)]
pub struct FleetShared {
    configured: std::sync::atomic::AtomicBool,
    view: Mutex<FleetView>,
    /// Revisions refused (validation failed, too large).
    pub refused_total: AtomicU64,
    /// Revisions applied, and the microseconds they took (parse, build, swap, cache).
    pub applied_total: AtomicU64,
    pub apply_us_total: AtomicU64,
    /// Status documents written, and writes that failed.
    pub status_writes: AtomicU64,
    pub status_failures: AtomicU64,
    /// The fingerprints of one generation.
    fingerprints: Mutex<Option<(u64, Fingerprints)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Unix time now, milliseconds.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl FleetShared {
    pub fn configure(&self, view: FleetView) {
        *lock(&self.view) = view;
        self.configured.store(true, Ordering::Release);
    }

    /// This director follows a fleet (`[fleet]`).
    pub fn configured(&self) -> bool {
        self.configured.load(Ordering::Acquire)
    }

    pub fn view(&self) -> FleetView {
        lock(&self.view).clone()
    }

    pub fn update(&self, f: impl FnOnce(&mut FleetView)) {
        f(&mut lock(&self.view));
    }

    /// Name and fingerprint of every table of `snap` (computed once per generation).
    pub fn fingerprints(&self, snap: &Snapshot) -> Fingerprints {
        let mut c = lock(&self.fingerprints);
        if let Some((g, f)) = c.as_ref() {
            if *g == snap.generation {
                return f.clone();
            }
        }
        let f: Fingerprints = snap
            .tables
            .iter()
            .map(|t| {
                (
                    t.table.spec.name.clone(),
                    crate::table::fingerprint(&t.table),
                )
            })
            .collect();
        *c = Some((snap.generation, f.clone()));
        f
    }
}

/// This host's name (for the status document).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The status document of this director now (`updated_ms` now).
pub fn status(plane: &ControlPlane, started_ms: u64) -> DirectorStatus {
    let v = plane.fleet.view();
    let rt = plane.runtime();
    let snap = rt.snapshot();
    let tables = plane
        .fleet
        .fingerprints(&snap)
        .into_iter()
        .map(|(name, f)| docs::TableFingerprint {
            name,
            fingerprint: crate::table::fingerprint::hex(f),
        })
        .collect();
    let bgp = if plane.bgp.configured() {
        use crate::fleet::bgp::decide::Verdict;
        plane
            .bgp
            .view()
            .decisions
            .iter()
            .map(|d| docs::BgpVipStatus {
                prefix: d.prefix.to_string(),
                announced: d.verdict.is_announced(),
                reason: match &d.verdict {
                    Verdict::Withdrawn(r) => r.label().to_string(),
                    Verdict::Announced { .. } => String::new(),
                },
            })
            .collect()
    } else {
        Vec::new()
    };
    DirectorStatus {
        name: v.name.clone(),
        pid: std::process::id(),
        host: host_name(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        started_ms,
        updated_ms: unix_ms(),
        seen_revision: v.seen_revision,
        applied_revision: v.applied_revision,
        refused: v.refused.clone(),
        source: v.source.clone(),
        tables,
        health_revision: v.health_revision,
        ports: vec![docs::PortStatus {
            spec: rt.port_name().to_string(),
            link_up: rt.port().link().is_none_or(|l| l.up),
        }],
        forwarding: if rt.is_paused() {
            "stopped".into()
        } else {
            "forwarding".into()
        },
        bgp,
        last_error: v.last_error.clone(),
    }
}

/// Console `show fleet`.
pub fn show(plane: &ControlPlane) -> Result<String, String> {
    let f = &plane.fleet;
    if !f.configured() {
        return Err("this director does not follow a fleet: its tables come from its config file (add [fleet] to follow etcd)".into());
    }
    let v = f.view();
    let mut o = String::new();
    let _ = writeln!(
        o,
        "fleet: etcd {} prefix {} name {}",
        v.endpoints.join(","),
        v.prefix,
        v.name
    );
    let _ = writeln!(
        o,
        "  etcd: {}",
        if v.connected {
            format!("connected ({})", v.endpoint.as_deref().unwrap_or("?"))
        } else {
            "NOT connected: forwarding on the last applied tables".into()
        }
    );
    let _ = writeln!(
        o,
        "  applied revision: {}  seen revision: {}  source: {}  health revision: {}",
        v.applied_revision, v.seen_revision, v.source, v.health_revision
    );
    let _ = writeln!(
        o,
        "  applied: {}  refused: {}  status writes: {} (failed {})",
        f.applied_total.load(Ordering::Relaxed),
        f.refused_total.load(Ordering::Relaxed),
        f.status_writes.load(Ordering::Relaxed),
        f.status_failures.load(Ordering::Relaxed)
    );
    match &v.refused {
        Some(r) => {
            let _ = writeln!(o, "  refused revision {}: {}", r.revision, r.error);
        }
        None => o.push_str("  refused: none\n"),
    }
    let _ = writeln!(
        o,
        "  last error: {}",
        v.last_error.as_deref().unwrap_or("none")
    );
    o.push_str("  tables:\n");
    for (name, fp) in f.fingerprints(&plane.runtime().snapshot()) {
        let _ = writeln!(o, "    {name} {}", crate::table::fingerprint::hex(fp));
    }
    Ok(o.trim_end().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::config_from_str;
    use crate::drivers::{mem, BufPool, Port};
    use crate::runtime::control::Control;
    use crate::runtime::overrides::{BackendOverride, Change};
    use crate::runtime::{Runtime, RuntimeOptions};
    use crate::table::BackendState;
    use std::net::IpAddr;
    use std::sync::Arc;

    fn cfg(backends: &str) -> crate::config::Config {
        config_from_str(&crate::config::testing::web_table(backends), "t.toml").unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_fleet_director_takes_overrides_from_the_document_only() {
        let three = r#"[{ ip = "10.1.0.1" }, { ip = "10.1.0.2" }, { ip = "10.1.0.3" }]"#;
        let pool = BufPool::new(256, 2048).unwrap();
        let (port, _peer) = mem::pair("fleet", 1, 64, pool).unwrap();
        let mut control = Control::new(None, port.mac());
        control.set_follows("/rondo/t");
        let drain = |o: &str| {
            vec![(
                ("web".to_string(), ip(o)),
                BackendOverride {
                    state: Some(BackendState::Draining),
                    ..BackendOverride::default()
                },
            )]
        };
        let snap = control.initial_from(cfg(three), drain("10.1.0.1")).unwrap();
        let rt = Runtime::start(port, snap, RuntimeOptions::default()).unwrap();
        let plane = Arc::new(ControlPlane::new(rt, control));
        let state = |p: &ControlPlane, o: &str| {
            let s = p.runtime().snapshot();
            s.tables[0]
                .table
                .spec
                .backends
                .iter()
                .find(|b| b.ip == ip(o))
                .unwrap()
                .state
        };
        assert_eq!(state(&plane, "10.1.0.1"), BackendState::Draining);
        let fp1 = plane.fleet.fingerprints(&plane.runtime().snapshot());
        // The next revision's overrides replace the ones in force wholesale.
        plane
            .apply_desired(cfg(three), drain("10.1.0.2"), "test")
            .unwrap();
        assert_eq!(state(&plane, "10.1.0.1"), BackendState::Active);
        assert_eq!(state(&plane, "10.1.0.2"), BackendState::Draining);
        let fp2 = plane.fleet.fingerprints(&plane.runtime().snapshot());
        assert_ne!(fp1, fp2, "other rows, another fingerprint");
        // Health observations stay across revisions; an invalid revision is refused.
        plane
            .set_health_observation("web", ip("10.1.0.3"), false)
            .unwrap();
        let g = plane.runtime().snapshot().generation;
        let all_inactive: Vec<_> = ["10.1.0.1", "10.1.0.2", "10.1.0.3"]
            .iter()
            .map(|o| {
                (
                    ("web".to_string(), ip(o)),
                    BackendOverride {
                        state: Some(BackendState::Inactive),
                        ..BackendOverride::default()
                    },
                )
            })
            .collect();
        assert!(plane
            .apply_desired(cfg(three), all_inactive, "bad")
            .is_err());
        assert_eq!(
            plane.runtime().snapshot().generation,
            g,
            "running tables kept"
        );
        plane
            .apply_desired(cfg(three), drain("10.1.0.2"), "again")
            .unwrap();
        let s = plane.runtime().snapshot();
        assert!(
            !s.tables[0].table.spec.backends[2].healthy,
            "observation kept"
        );
        // A health document: one rebuild for all its results, unknown backends skipped,
        // the same results again change nothing.
        let g = plane.runtime().snapshot().generation;
        let doc = vec![
            ("web".to_string(), ip("10.1.0.1"), false),
            ("web".to_string(), ip("10.9.9.9"), false),
            ("nope".to_string(), ip("10.1.0.1"), false),
            ("web".to_string(), ip("10.1.0.3"), true),
        ];
        let (ng, skipped) = plane.set_health_observations(&doc).unwrap();
        assert_eq!(ng, Some(g + 1));
        assert_eq!(skipped.len(), 2);
        let s = plane.runtime().snapshot();
        let b = &s.tables[0].table.spec.backends;
        assert!(!b[0].healthy && b[2].healthy, "{b:?}");
        assert_eq!(plane.set_health_observations(&doc).unwrap().0, None);
        // The console does not change what etcd says.
        let e = plane
            .change_backend("web", ip("10.1.0.1"), Change::Weight(3), false, false)
            .unwrap_err();
        assert!(
            e.contains("follows etcd /rondo/t: use rondo fleet set"),
            "{e}"
        );
        assert!(plane
            .reload("console")
            .unwrap_err()
            .contains("follows etcd"));
        // Not configured: `show fleet` says so; configured: it shows the fingerprints.
        assert!(show(&plane)
            .unwrap_err()
            .contains("does not follow a fleet"));
        plane.fleet.configure(FleetView {
            prefix: "/rondo/t".into(),
            name: "d1".into(),
            applied_revision: 7,
            source: "cache".into(),
            ..FleetView::default()
        });
        let t = show(&plane).unwrap();
        let fp = crate::table::fingerprint::hex(
            plane.fleet.fingerprints(&plane.runtime().snapshot())[0].1,
        );
        assert!(
            t.contains("NOT connected")
                && t.contains("applied revision: 7")
                && t.contains("source: cache")
                && t.contains(&format!("web {fp}")),
            "{t}"
        );
        let st = status(&plane, 1);
        assert_eq!(
            (st.applied_revision, st.tables[0].fingerprint.as_str()),
            (7, fp.as_str())
        );
        plane.shutdown(std::time::Duration::from_secs(5));
    }
}
