//! The control side: loads configurations, builds snapshots off the data path and swaps
//! them in; reacts to SIGHUP/SIGUSR1 (reload), SIGTERM/SIGINT (stop) and config file
//! changes. A failed reload is logged and counted and the running snapshot stays.
//!
//! The file watcher reloads a changed file only once it has settled: its modification and
//! change times, size and inode the same for [`SETTLE`], so a file caught half-written by
//! an editor or `cp` (which may still parse, with fewer tables) never goes live. SIGHUP,
//! SIGUSR1 and the console's `reload` load at once. A reload that removes a table or a VIP
//! is logged as a warning naming them, and the console's reply names them too.
//!
//! Backend changes (console `set backend`, health observations) go through the same path:
//! [`Overrides`] are applied on top of the loaded config, the tables rebuilt, the snapshot
//! compiled and swapped in, or the change is refused and the running snapshot stays.

use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::ledger::SentLedger;
use super::overrides::{find_table, Change, Overrides};
use super::Runtime;
use crate::config::{load_config, Config, RunSettings};
use crate::datapath::Snapshot;
use crate::table::diff::{diff, TableDiff};
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

    /// Where it comes from, for people: the file(s).
    pub fn describe(&self) -> String {
        match self {
            ConfigSource::Native(p) => p.display().to_string(),
            ConfigSource::Glb { director, table } => {
                format!("{} + {}", director.display(), table.display())
            }
        }
    }
}

/// The file watcher reloads a changed config file once it stayed the same this long (two
/// more 1 s polls after the change was seen): a writer still at work is not loaded.
pub const SETTLE: Duration = Duration::from_secs(2);

/// What the file watcher compares: a file's times, size and identity (a file replaced by
/// rename has another inode even with the same times and size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    modified: Option<SystemTime>,
    ctime: (i64, i64),
    len: u64,
    dev: u64,
    ino: u64,
}

/// One [`FileStamp`] per config file (`None`: it could not be read now).
pub type FileStamps = Vec<Option<FileStamp>>;

/// How long snapshots took to build (load, rows, compile), readable without the control lock.
#[derive(Debug, Default)]
pub struct BuildStats {
    /// Snapshots built and swapped in.
    pub count: AtomicU64,
    /// Microseconds, all builds together.
    pub total_us: AtomicU64,
    /// Microseconds, the last build.
    pub last_us: AtomicU64,
}

impl BuildStats {
    fn record(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.total_us.fetch_add(us, Ordering::Relaxed);
        self.last_us.store(us, Ordering::Relaxed);
    }
}

/// What a backend change did (or, as a dry run, would do).
#[derive(Debug, Clone)]
pub struct ChangeReport {
    pub table: String,
    pub ip: IpAddr,
    pub change: Change,
    /// The generation now live; `None` for a dry run.
    pub generation: Option<u64>,
    /// Rows moved in the changed table.
    pub diff: TableDiff,
    /// For a dry run: why it would be refused without `force`.
    pub refusal: Option<String>,
}

/// What [`Control::observe_health_many`] did: the new generation (`None`: nothing
/// changed) and the results skipped (table, backend not in the live tables).
pub type HealthApplied = (Option<u64>, Vec<(String, IpAddr)>);

/// Reload and swap bookkeeping.
pub struct Control {
    source: Option<ConfigSource>,
    mac: Option<MacAddr>,
    generation: u64,
    /// The config files as they were when last loaded.
    stamps: FileStamps,
    /// A change the watcher saw and waits to settle: the files then, and since when.
    pending: Option<(FileStamps, Instant)>,
    /// What the last applied reload removed (tables, VIPs), for the console's reply.
    removed: Vec<String>,
    /// Run settings (ports, workers, cores) of the first load: a reload cannot change them.
    run: Option<RunSettings>,
    /// The config as last loaded, before overrides.
    base: Option<Config>,
    overrides: Overrides,
    pub reloads_ok: Arc<AtomicU64>,
    pub reloads_failed: Arc<AtomicU64>,
    pub builds: Arc<BuildStats>,
    /// Packets sent per backend across swaps.
    pub ledger: Arc<SentLedger>,
    /// `[fleet]`: the etcd prefix this director follows. Its tables and operator overrides
    /// come from the desired document ([`Control::apply_desired`]): console backend
    /// changes and reloads are refused.
    follows: Option<String>,
}

fn stamps(source: &Option<ConfigSource>) -> FileStamps {
    source
        .as_ref()
        .map(|s| {
            s.paths()
                .iter()
                .map(|p| {
                    std::fs::metadata(p).ok().map(|m| FileStamp {
                        modified: m.modified().ok(),
                        ctime: (m.ctime(), m.ctime_nsec()),
                        len: m.len(),
                        dev: m.dev(),
                        ino: m.ino(),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

fn describe_bind(b: &crate::table::Bind) -> String {
    let ports = if b.port_start == b.port_end {
        b.port_start.to_string()
    } else {
        format!("{}-{}", b.port_start, b.port_end)
    };
    format!("{}/{} {} {ports}", b.addr, b.prefix_len, b.proto.as_str())
}

/// What going from `old` to `new` removes, for people: tables (by name) and VIPs (binds
/// served by no table of `new`), with the table that served them.
pub fn removals(old: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for t in &old.tables {
        if !new.tables.iter().any(|n| n.spec.name == t.spec.name) {
            out.push(format!("table {:?}", t.spec.name));
        }
    }
    let served = |b: &crate::table::Bind| new.tables.iter().any(|n| n.spec.binds.contains(b));
    for t in &old.tables {
        for b in t.spec.binds.iter().filter(|b| !served(b)) {
            out.push(format!(
                "VIP {} (table {:?})",
                describe_bind(b),
                t.spec.name
            ));
        }
    }
    out
}

impl Control {
    /// `source` is `None` for embedded configs (the demo): only [`Control::apply`] then.
    /// `mac` is the port's MAC, used as the source of encapsulated frames.
    pub fn new(source: Option<ConfigSource>, mac: Option<MacAddr>) -> Control {
        Control {
            stamps: stamps(&source),
            pending: None,
            removed: Vec::new(),
            source,
            mac,
            run: None,
            generation: 0,
            base: None,
            overrides: Overrides::default(),
            reloads_ok: Arc::default(),
            reloads_failed: Arc::default(),
            builds: Arc::default(),
            ledger: Arc::default(),
            follows: None,
        }
    }

    /// Follow a fleet's desired document under etcd `prefix` (see [`Control::apply_desired`]).
    pub fn set_follows(&mut self, prefix: &str) {
        self.follows = Some(prefix.to_string());
    }

    /// The etcd prefix this director follows, if it is a fleet director.
    pub fn follows(&self) -> Option<&str> {
        self.follows.as_deref()
    }

    fn refuse_if_following(&self) -> Result<(), String> {
        match &self.follows {
            Some(p) => Err(format!(
                "this director follows etcd {p}: use rondo fleet set (its tables and overrides come from {p}/desired)"
            )),
            None => Ok(()),
        }
    }

    /// The first snapshot from a config given by the caller (a fleet director's tables
    /// from its desired document) with the operator overrides `rules`.
    pub fn initial_from(
        &mut self,
        cfg: Config,
        rules: super::overrides::OperatorRules,
    ) -> Result<Snapshot, String> {
        let started = Instant::now();
        let overrides = Overrides::default().with_operator(rules);
        let effective = overrides.apply(cfg.clone())?;
        self.run = Some(cfg.run.clone());
        self.base = Some(cfg);
        self.overrides = overrides;
        let snap = self.compile(effective)?;
        self.builds.record(started.elapsed());
        Ok(snap)
    }

    /// A fleet director's new desired revision: `cfg` (tables built with this director's
    /// settings) with the document's operator overrides `rules`, which replace the ones in
    /// force wholesale (health observations stay). Validated, built and swapped in like a
    /// reload, or refused with the running snapshot kept.
    pub fn apply_desired(
        &mut self,
        rt: &Runtime,
        cfg: Config,
        rules: super::overrides::OperatorRules,
        why: &str,
    ) -> Result<u64, String> {
        self.removed.clear();
        let next = self.overrides.with_operator(rules);
        self.apply_with(rt, cfg, next, why, Instant::now())
    }

    /// Where the configuration comes from (`None`: embedded).
    pub fn source(&self) -> Option<&ConfigSource> {
        self.source.as_ref()
    }

    /// The configuration as last loaded (before overrides).
    pub fn base(&self) -> Option<&Config> {
        self.base.as_ref()
    }

    /// Operator overrides and health observations in force.
    pub fn overrides(&self) -> &Overrides {
        &self.overrides
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
        self.initial_loaded(src.load()?)
    }

    /// [`Control::initial`] on a config the caller loaded from the source.
    pub fn initial_loaded(&mut self, cfg: Config) -> Result<Snapshot, String> {
        let started = Instant::now();
        self.run = Some(cfg.run.clone());
        self.base = Some(cfg.clone());
        let snap = self.compile(cfg)?;
        self.builds.record(started.elapsed());
        Ok(snap)
    }

    /// Build `cfg` (with the overrides in force) and swap it in, or keep the running
    /// snapshot and say why.
    pub fn apply(&mut self, rt: &Runtime, cfg: Config, why: &str) -> Result<u64, String> {
        self.apply_since(rt, cfg, why, Instant::now())
    }

    fn apply_since(
        &mut self,
        rt: &Runtime,
        cfg: Config,
        why: &str,
        started: Instant,
    ) -> Result<u64, String> {
        let next = self.overrides.clone();
        self.apply_with(rt, cfg, next, why, started)
    }

    fn apply_with(
        &mut self,
        rt: &Runtime,
        cfg: Config,
        mut next: Overrides,
        why: &str,
        started: Instant,
    ) -> Result<u64, String> {
        for (table, ip) in next.prune(&cfg) {
            tracing::warn!(
                table = %table,
                backend = %ip,
                "backend left the configuration; its console overrides are dropped"
            );
        }
        let effective = match next.apply(cfg.clone()) {
            Ok(c) => c,
            Err(e) => return Err(self.reject(why, e)),
        };
        let removed = self
            .base
            .as_ref()
            .map(|old| removals(old, &cfg))
            .unwrap_or_default();
        let g = self.install(rt, effective, why, started)?;
        if !removed.is_empty() {
            tracing::warn!(
                generation = g,
                reason = why,
                "this reload removed {}: no longer served",
                removed.join(", ")
            );
        }
        self.removed = removed;
        self.base = Some(cfg);
        self.overrides = next;
        Ok(g)
    }

    /// Compile a complete (overrides applied) config and swap it in.
    fn install(
        &mut self,
        rt: &Runtime,
        effective: Config,
        why: &str,
        started: Instant,
    ) -> Result<u64, String> {
        match self.compile(effective) {
            Ok(snap) => {
                let g = snap.generation;
                let old = rt.swap(snap);
                self.ledger.retire(old);
                self.reloads_ok.fetch_add(1, Ordering::Relaxed);
                self.builds.record(started.elapsed());
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

    /// Change one backend (console `set backend`): validate, rebuild its table with every
    /// override applied, and swap it in. A change that would leave more than one backend of
    /// the table in a state other than active is refused unless `force` (second chance
    /// covers one changed hop only). With `dry_run`, nothing is applied: the report says
    /// what would move.
    pub fn change_backend(
        &mut self,
        rt: &Runtime,
        table: &str,
        ip: IpAddr,
        change: Change,
        force: bool,
        dry_run: bool,
    ) -> Result<ChangeReport, String> {
        let started = Instant::now();
        self.refuse_if_following()?;
        let base = self.base.as_ref().ok_or("no configuration loaded yet")?;
        let next = self.overrides.with(base, table, ip, change)?;
        let why = format!("console: set backend {table} {ip} {change}");
        let effective = match next.apply(base.clone()) {
            Ok(c) => c,
            Err(e) if dry_run => return Err(e),
            Err(e) => return Err(self.reject(&why, e)),
        };
        let after = find_table(&effective, table)?;
        let live = rt.snapshot();
        let d = match live.tables.iter().find(|t| t.table.spec.name == table) {
            Some(before) => diff(&before.table, after),
            None => diff(after, after),
        };
        let refusal = super::overrides::second_change_refusal(
            after,
            ip,
            &[change],
            "set it active, or remove it from the config file",
        );
        let mut report = ChangeReport {
            table: table.to_string(),
            ip,
            change,
            generation: None,
            diff: d,
            refusal: None,
        };
        if dry_run {
            report.refusal = refusal.filter(|_| !force);
            return Ok(report);
        }
        if let Some(r) = refusal.filter(|_| !force) {
            tracing::warn!(reason = %why, "backend change refused: {r}");
            return Err(format!("refused: {r}"));
        }
        let g = self.install(rt, effective, &why, started)?;
        self.overrides = next;
        tracing::info!(
            generation = g,
            table = %table,
            backend = %ip,
            change = %change,
            force,
            primary_moved = report.diff.primary_moved,
            later_moved = report.diff.later_moved,
            "backend changed by the console"
        );
        report.generation = Some(g);
        Ok(report)
    }

    /// A health-check result for a backend (what `health auto` follows). Rebuilds and swaps
    /// when it changes the backend's effective health; returns the new generation then,
    /// `None` when nothing changed (the same result again, or the operator pinned the
    /// health). Unknown table or backend: an error, nothing recorded. The observation is
    /// kept even when the rebuild fails, so the next successful rebuild uses it.
    pub fn observe_health(
        &mut self,
        rt: &Runtime,
        table: &str,
        ip: IpAddr,
        healthy: bool,
    ) -> Result<Option<u64>, String> {
        let started = Instant::now();
        let base = self.base.as_ref().ok_or("no configuration loaded yet")?;
        super::overrides::check_backend(base, table, ip)?;
        if !self.overrides.observe(table, ip, healthy) {
            return Ok(None);
        }
        if self
            .overrides
            .get(table, ip)
            .and_then(|o| o.health)
            .is_some()
        {
            return Ok(None);
        }
        let why = format!(
            "health check: {table} {ip} {}",
            if healthy { "up" } else { "down" }
        );
        let effective = match self.overrides.apply(base.clone()) {
            Ok(c) => c,
            Err(e) => return Err(self.reject(&why, e)),
        };
        let live = rt.snapshot();
        let same = live
            .tables
            .iter()
            .find(|t| t.table.spec.name == table)
            .zip(find_table(&effective, table).ok())
            .is_some_and(|(l, e)| l.table.spec == e.spec);
        if same {
            // The rows already say so (the config file agrees with the check).
            return Ok(None);
        }
        self.install(rt, effective, &why, started).map(Some)
    }

    /// Many health results at once (a fleet's health document): each is recorded as
    /// [`Control::observe_health`] would, unknown tables and backends skipped (returned,
    /// for the log), and the tables are rebuilt and swapped in once if any effective
    /// health changed. Returns the new generation (`None`: nothing changed) and the
    /// skipped results.
    pub fn observe_health_many(
        &mut self,
        rt: &Runtime,
        results: &[(String, IpAddr, bool)],
    ) -> Result<HealthApplied, String> {
        let started = Instant::now();
        let base = self.base.as_ref().ok_or("no configuration loaded yet")?;
        let mut skipped = Vec::new();
        let mut changed = Vec::new();
        for (table, ip, healthy) in results {
            if super::overrides::check_backend(base, table, *ip).is_err() {
                skipped.push((table.clone(), *ip));
                continue;
            }
            let pinned = self
                .overrides
                .get(table, *ip)
                .and_then(|o| o.health)
                .is_some();
            if self.overrides.observe(table, *ip, *healthy) && !pinned {
                changed.push(format!(
                    "{table} {ip} {}",
                    if *healthy { "up" } else { "down" }
                ));
            }
        }
        if changed.is_empty() {
            return Ok((None, skipped));
        }
        let why = format!("health document: {}", changed.join(", "));
        let effective = match self.overrides.apply(base.clone()) {
            Ok(c) => c,
            Err(e) => return Err(self.reject(&why, e)),
        };
        let live = rt.snapshot();
        let same = effective.tables.len() == live.tables.len()
            && effective
                .tables
                .iter()
                .zip(live.tables.iter())
                .all(|(e, l)| e.spec == l.table.spec);
        if same {
            return Ok((None, skipped));
        }
        self.install(rt, effective, &why, started)
            .map(|g| (Some(g), skipped))
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

    /// Reload from the configured source (loading it under the caller's lock; the control
    /// plane loads off the lock and with a timeout instead, see [`ControlPlane::reload`]).
    ///
    /// [`ControlPlane::reload`]: super::plane::ControlPlane::reload
    pub fn reload(&mut self, rt: &Runtime, why: &str) -> Result<u64, String> {
        let started = Instant::now();
        let seen = self.file_times();
        let loaded = match &self.source {
            Some(s) => s.load(),
            None => Err("no configuration file to reload".into()),
        };
        self.reload_loaded(rt, why, seen, loaded, started)
    }

    /// The config file(s) now (times, size, inode): taken before a load, handed to
    /// [`Control::reload_loaded`] so a change made during the load is seen again.
    pub fn file_times(&self) -> FileStamps {
        stamps(&self.source)
    }

    /// What the last applied reload removed (tables, VIPs), empty when nothing.
    pub fn removed_by_last_reload(&self) -> &[String] {
        &self.removed
    }

    /// Finish a reload whose config was loaded (or failed to load) by the caller: swap it
    /// in, or count the failure and keep the running snapshot. `seen` are the file times
    /// taken before the load (see [`Control::file_times`]).
    pub fn reload_loaded(
        &mut self,
        rt: &Runtime,
        why: &str,
        seen: FileStamps,
        loaded: Result<Config, String>,
        started: Instant,
    ) -> Result<u64, String> {
        self.stamps = seen;
        self.pending = None;
        self.removed.clear();
        self.refuse_if_following()?;
        match loaded {
            Ok(cfg) => {
                if self.run.as_ref().is_some_and(|r| *r != cfg.run) {
                    tracing::warn!(
                        reason = why,
                        "[runtime] or [[ports]] changed: tables and director settings are reloaded now, \
                         ports, workers, cores and the exception path only on restart"
                    );
                }
                self.apply_since(rt, cfg, why, started)
            }
            Err(e) => Err(self.reject(why, e)),
        }
    }

    /// Whether a config file changed on disk since the last load.
    pub fn files_changed(&self) -> bool {
        self.source.is_some() && stamps(&self.source) != self.stamps
    }

    /// The file watcher's question, asked every poll: did a config file change since the
    /// last load and then stay the same for [`SETTLE`] (as seen at `now`)? A change still
    /// under way restarts the wait, so a file is never loaded half-written.
    pub fn settled_change(&mut self, now: Instant) -> bool {
        // A fleet director's tables come from etcd; its file is read at start only.
        if self.source.is_none() || self.follows.is_some() {
            return false;
        }
        let cur = stamps(&self.source);
        if cur == self.stamps {
            self.pending = None;
            return false;
        }
        match &self.pending {
            Some((seen, since)) if *seen == cur => now.duration_since(*since) >= SETTLE,
            _ => {
                tracing::info!(
                    "config file changed; reloading once it stays unchanged for {} s",
                    SETTLE.as_secs()
                );
                self.pending = Some((cur, now));
                false
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watcher_reloads_a_change_only_once_it_settled() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "a").unwrap();
        let mut c = Control::new(Some(ConfigSource::Native(p.clone())), None);
        let t0 = Instant::now();
        assert!(!c.settled_change(t0), "nothing changed");
        std::fs::write(&p, "ab").unwrap();
        assert!(c.files_changed());
        assert!(!c.settled_change(t0), "just seen");
        assert!(
            !c.settled_change(t0 + Duration::from_secs(1)),
            "not settled yet"
        );
        // Still being written: the wait starts again.
        std::fs::write(&p, "abc").unwrap();
        assert!(!c.settled_change(t0 + Duration::from_secs(2)));
        assert!(!c.settled_change(t0 + Duration::from_secs(3)));
        assert!(c.settled_change(t0 + Duration::from_secs(4)), "settled");
        // Replaced by rename with the same size: another inode, a change.
        c.stamps = c.file_times();
        let q = dir.path().join("new");
        std::fs::write(&q, "xyz").unwrap();
        std::fs::rename(&q, &p).unwrap();
        assert!(!c.settled_change(t0));
        assert!(c.settled_change(t0 + SETTLE));
    }

    #[test]
    fn removals_name_tables_and_vips_no_table_serves() {
        let text = |tables: &str| {
            format!("[director]\noutbound_gateway_mac = \"02:00:00:00:00:fe\"\noutbound_src_ip = \"192.0.2.10\"\n{tables}")
        };
        let t = |name: &str, binds: &str| {
            format!("[[tables]]\nname = \"{name}\"\nhash_key = \"12345678901234561234567890123456\"\nseed = \"34567890123456783456789012345678\"\nbinds = [{binds}]\nbackends = [{{ ip = \"10.1.0.1\" }}]\n")
        };
        let web = r#"{ ip = "1.1.1.1", proto = "tcp", port = 80 }, { ip = "1.1.1.2", proto = "udp", port_start = 53, port_end = 54 }"#;
        let load = |s: String| {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("c.toml");
            std::fs::write(&p, s).unwrap();
            load_config(&p, None).unwrap()
        };
        let old = load(text(
            &(t("web", web) + &t("api", r#"{ ip = "2.2.2.2", proto = "tcp", port = 443 }"#)),
        ));
        // api gone, 1.1.1.2 gone from web, 1.1.1.1 moved to another table (still served).
        let new = load(text(
            &(t("web", r#"{ ip = "1.1.1.3", proto = "tcp", port = 80 }"#)
                + &t("other", r#"{ ip = "1.1.1.1", proto = "tcp", port = 80 }"#)),
        ));
        assert_eq!(
            removals(&old, &new),
            vec![
                "table \"api\"".to_string(),
                "VIP 1.1.1.2/32 udp 53-54 (table \"web\")".into(),
                "VIP 2.2.2.2/32 tcp 443 (table \"api\")".into(),
            ]
        );
        assert!(removals(&old, &old).is_empty());
    }
}
