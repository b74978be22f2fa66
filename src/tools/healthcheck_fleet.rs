//! `rondo healthcheck --fleet CONFIG`: health checking once for a fleet, highly available.
//!
//! Several instances run; each stands for etcd's election `election/healthcheck` on a lease
//! of `[fleet] lease_ttl_ms`. The one elected leads:
//! - it reads the health document an earlier leader wrote and seeds every target's
//!   dampener (and every backend's health) from it, so a failover flips nothing;
//! - it reads the desired document and watches it (a new revision: new targets);
//! - it runs check rounds and writes a `HealthDoc` to `health` with `put_if_leader` after
//!   each round whose results changed, and at least every `write_every_rounds` rounds;
//! - before each write it checks that its lease is surely valid; a refused write
//!   (`NotLeader`) or a lost lease ends the leadership at once: no more writes, back to
//!   standing with a new lease.
//!
//! SIGTERM/SIGINT: a leader resigns (the next candidate takes over at once), a standby
//! withdraws (its lease is revoked). Without the `etcd` feature the command says it needs
//! a build with it.

use std::path::Path;

#[cfg(not(feature = "etcd"))]
pub fn run(path: &Path) -> Result<(), String> {
    crate::health::fleet_config::load(path).map_err(|e| e.to_string())?;
    Err(format!(
        "{}: rondo healthcheck --fleet needs etcd, and this rondo was built without it: build with `cargo build --features etcd`",
        path.display()
    ))
}

#[cfg(feature = "etcd")]
pub fn run(path: &Path) -> Result<(), String> {
    imp::run(path)
}

#[cfg(feature = "etcd")]
mod imp {
    use std::path::Path;
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

    use crate::config::desired::parse_desired;
    use crate::fleet::docs::{self, HealthDoc};
    use crate::fleet::etcd::{EtcdError, EtcdStore, Leadership, Lease, Watch, WatchEvent};
    use crate::health::checker::run_round;
    use crate::health::fleet_config::{self, FleetCheckConfig};
    use crate::health::fleet_doc::{checked_specs, health_doc, same_results, seed_from};
    use crate::health::HealthState;
    use crate::tools::healthcheck::Signals;

    /// A standby's campaign is renewed this often (how fast it answers SIGTERM).
    const CAMPAIGN_STEP: Duration = Duration::from_millis(1000);
    /// Pause after an etcd error before trying again.
    const RETRY: Duration = Duration::from_millis(300);

    fn unix_ms() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }

    /// Sleep `d`, waking early on a stop signal; true when asked to stop.
    fn nap(signals: &Signals, d: Duration) -> bool {
        let end = Instant::now() + d;
        loop {
            if signals.stop.load(Ordering::Acquire) {
                return true;
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            std::thread::sleep(left.min(Duration::from_millis(20)));
        }
    }

    pub fn run(path: &Path) -> Result<(), String> {
        let cfg = fleet_config::load(path).map_err(|e| e.to_string())?;
        let settings = cfg.etcd_settings().map_err(|e| e.to_string())?;
        let signals =
            Signals::install().map_err(|e| format!("cannot install signal handlers: {e}"))?;
        let name = settings.name.clone();
        let ttl = settings.lease_ttl();
        tracing::info!(
            name = %name,
            prefix = %settings.prefix,
            lease_ttl_ms = ttl.as_millis() as u64,
            interval_ms = cfg.options.interval.as_millis() as u64,
            timeout_ms = cfg.options.timeout.as_millis() as u64,
            trigger = cfg.options.trigger,
            "fleet health checker started"
        );
        let mut store = loop {
            match EtcdStore::connect(settings.clone()) {
                Ok(s) => break s,
                Err(e @ EtcdError::Settings(_)) => return Err(e.to_string()),
                Err(e) => tracing::warn!("cannot reach etcd, trying again: {e}"),
            }
            if nap(&signals, RETRY) {
                return Ok(());
            }
        };
        loop {
            if signals.stop.load(Ordering::Acquire) {
                tracing::info!("stopping");
                return Ok(());
            }
            let lease = match store.lease_keepalive(ttl) {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!("cannot get a lease for the candidacy, trying again: {e}");
                    if nap(&signals, RETRY) {
                        return Ok(());
                    }
                    continue;
                }
            };
            tracing::info!(
                lease = format!("{:x}", lease.id()),
                "standing for election as the fleet's health checker leader"
            );
            let leadership = match stand(&mut store, &name, &lease, &signals) {
                Stand::Elected(l) => l,
                Stand::Stop => {
                    tracing::info!("stopping: withdrawing the candidacy");
                    drop(lease);
                    return Ok(());
                }
                Stand::LeaseLost => {
                    tracing::warn!("the candidacy's lease was lost; standing again on a new one");
                    continue;
                }
            };
            let term = leadership.revision();
            match Leader::new(&cfg, &name, term).lead(&mut store, &leadership, &signals) {
                Ended::Stop => {
                    match store.resign(leadership) {
                        Ok(()) => tracing::info!(term, "resigned the leadership: stopping"),
                        Err(e) => tracing::warn!(
                            term,
                            "cannot resign (the lease is revoked instead): {e}"
                        ),
                    }
                    drop(lease);
                    return Ok(());
                }
                Ended::Lost(why) => {
                    tracing::warn!(term, why = %why, "leadership lost: no more writes; standing again");
                }
            }
        }
    }

    enum Stand {
        Elected(Leadership),
        Stop,
        LeaseLost,
    }

    /// Stand for election until elected, asked to stop, or the lease is lost.
    fn stand(store: &mut EtcdStore, name: &str, lease: &Lease, signals: &Signals) -> Stand {
        loop {
            if signals.stop.load(Ordering::Acquire) {
                return Stand::Stop;
            }
            if !lease.is_alive() {
                return Stand::LeaseLost;
            }
            match store.campaign(docs::HEALTH_ELECTION, name.as_bytes(), lease, CAMPAIGN_STEP) {
                Ok(l) if l.is_leader() => return Stand::Elected(l),
                Ok(_) | Err(EtcdError::LeaseLost { .. }) => return Stand::LeaseLost,
                Err(EtcdError::CampaignTimeout { .. }) => {
                    // Still waiting. A cheap request finds out whether the member answers
                    // at all (a failing one drops the connection: the next campaign goes to
                    // another member).
                    if let Err(e) = store.current_revision() {
                        tracing::warn!("etcd trouble while standing by: {e}");
                    }
                }
                Err(e) => {
                    tracing::warn!("campaign failed, trying again: {e}");
                    if nap(signals, RETRY) {
                        return Stand::Stop;
                    }
                }
            }
        }
    }

    enum Ended {
        Stop,
        Lost(String),
    }

    /// One term of leadership.
    struct Leader<'a> {
        cfg: &'a FleetCheckConfig,
        name: &'a str,
        term: i64,
        state: HealthState,
        desired_revision: i64,
        last_written: Option<HealthDoc>,
        rounds_since_write: u32,
    }

    impl<'a> Leader<'a> {
        fn new(cfg: &'a FleetCheckConfig, name: &'a str, term: i64) -> Leader<'a> {
            Leader {
                cfg,
                name,
                term,
                state: HealthState::new(cfg.options.trigger, &[]),
                desired_revision: 0,
                last_written: None,
                rounds_since_write: 0,
            }
        }

        /// Retry `f` until it succeeds, the leadership is lost or a stop is asked.
        fn retry<T>(
            &self,
            what: &str,
            l: &Leadership,
            signals: &Signals,
            mut f: impl FnMut() -> Result<T, EtcdError>,
        ) -> Result<T, Ended> {
            loop {
                if signals.stop.load(Ordering::Acquire) {
                    return Err(Ended::Stop);
                }
                if !l.is_leader() {
                    return Err(Ended::Lost(format!("lease lost while {what}")));
                }
                match f() {
                    Ok(v) => return Ok(v),
                    Err(e) => tracing::warn!(term = self.term, "{what}: {e}; trying again"),
                }
                if nap(signals, RETRY) {
                    return Err(Ended::Stop);
                }
            }
        }

        fn lead(mut self, store: &mut EtcdStore, l: &Leadership, signals: &Signals) -> Ended {
            tracing::info!(
                term = self.term,
                name = self.name,
                "leadership gained: checking for the fleet"
            );
            match self.start(store, l, signals) {
                Ok(watch) => self.rounds(store, l, signals, &watch),
                Err(end) => end,
            }
        }

        /// Read the previous health document and the desired document, seed, watch.
        fn start(
            &mut self,
            store: &mut EtcdStore,
            l: &Leadership,
            signals: &Signals,
        ) -> Result<Watch, Ended> {
            let prev = self.retry("reading the health document", l, signals, || {
                store.get_document(docs::HEALTH)
            })?;
            let prev: Option<HealthDoc> = prev.and_then(|d| {
                serde_json::from_slice(&d.bytes)
                    .map_err(|e| {
                        tracing::error!(
                            revision = d.mod_revision,
                            "the health document in etcd is not a health document ({e}); starting without its dampening"
                        )
                    })
                    .ok()
            });
            let from = self.retry("reading etcd's revision", l, signals, || {
                store.current_revision()
            })?;
            let desired = self.retry("reading the desired document", l, signals, || {
                store.get_document(docs::DESIRED)
            })?;
            match desired {
                None => {
                    tracing::warn!("no desired document yet: nothing to check until one is pushed")
                }
                Some(d) => self.apply_desired(store, d.mod_revision, &d.bytes),
            }
            if let Some(doc) = &prev {
                let n = seed_from(&mut self.state, doc);
                tracing::info!(
                    term = self.term,
                    from_leader = %doc.leader,
                    from_term = doc.term,
                    seeded = n,
                    targets = self.state.targets().len(),
                    "carried the dampening on from the previous leader's health document"
                );
            }
            self.retry("watching the desired document", l, signals, || {
                store.watch(docs::DESIRED, from + 1)
            })
        }

        fn apply_desired(&mut self, store: &EtcdStore, revision: i64, bytes: &[u8]) {
            if revision <= self.desired_revision {
                return;
            }
            let what = format!(
                "etcd {}/{}@{revision}",
                store.settings().prefix,
                docs::DESIRED
            );
            match parse_desired(bytes, &what) {
                Ok(d) => {
                    self.state.set_tables(&checked_specs(&d));
                    self.desired_revision = revision;
                    tracing::info!(
                        revision,
                        targets = self.state.targets().len(),
                        "checking the backends of a new desired revision"
                    );
                }
                Err(e) => tracing::error!(
                    revision,
                    "desired revision refused, checking the previous one's backends: {e}"
                ),
            }
        }

        fn watch_events(&mut self, store: &EtcdStore, watch: &Watch) {
            while let Ok(ev) = watch.receiver().try_recv() {
                match ev {
                    WatchEvent::Put { revision, bytes } => {
                        self.apply_desired(store, revision, &bytes)
                    }
                    WatchEvent::Deleted { revision } => tracing::warn!(
                        revision,
                        "the desired document was deleted: checking the last one's backends"
                    ),
                    WatchEvent::TooLarge { revision, size } => tracing::error!(
                        revision,
                        size,
                        "desired revision over max_document_bytes: ignored"
                    ),
                    WatchEvent::Compacted {
                        wanted,
                        compact_revision,
                    } => tracing::warn!(
                        wanted,
                        compact_revision,
                        "desired revisions compacted away; the current one follows"
                    ),
                    WatchEvent::Disconnected { error } => {
                        tracing::warn!("lost the desired document's watch: {error}")
                    }
                    WatchEvent::Connected {
                        endpoint,
                        from_revision,
                    } => {
                        tracing::debug!(%endpoint, from_revision, "watching the desired document")
                    }
                }
            }
        }

        fn rounds(
            mut self,
            store: &mut EtcdStore,
            l: &Leadership,
            signals: &Signals,
            watch: &Watch,
        ) -> Ended {
            let opts = self.cfg.options.clone();
            let mut next_round = Instant::now();
            loop {
                loop {
                    if signals.stop.load(Ordering::Acquire) {
                        return Ended::Stop;
                    }
                    if !l.is_leader() {
                        return Ended::Lost("the lease is no longer surely valid".into());
                    }
                    self.watch_events(store, watch);
                    let left = next_round.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    std::thread::sleep(left.min(Duration::from_millis(20)));
                }
                next_round += opts.interval;
                next_round = next_round.max(Instant::now());
                if self.desired_revision == 0 {
                    continue;
                }
                let results = run_round(&self.state.targets(), opts.timeout, opts.threads, None);
                for e in self.state.record(results) {
                    tracing::info!(
                        term = self.term,
                        table = %e.table,
                        backend = %e.backend,
                        healthy = e.healthy,
                        reason = %e.reason,
                        "health state changed for backend"
                    );
                }
                let doc = health_doc(
                    &self.state,
                    self.name,
                    self.term,
                    self.desired_revision,
                    unix_ms(),
                );
                let changed = self
                    .last_written
                    .as_ref()
                    .is_none_or(|w| !same_results(w, &doc));
                self.rounds_since_write += 1;
                if !changed && self.rounds_since_write < self.cfg.write_every_rounds {
                    continue;
                }
                if !l.is_leader() {
                    return Ended::Lost("the lease ran out during the round".into());
                }
                let bytes = match serde_json::to_vec(&doc) {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::error!("cannot encode the health document: {e}");
                        continue;
                    }
                };
                match store.put_if_leader(l, docs::HEALTH, &bytes) {
                    Ok(revision) => {
                        tracing::debug!(term = self.term, revision, "health document written");
                        self.last_written = Some(doc);
                        self.rounds_since_write = 0;
                    }
                    Err(e @ (EtcdError::NotLeader { .. } | EtcdError::LeaseLost { .. })) => {
                        return Ended::Lost(format!("write refused: {e}"));
                    }
                    // Tried again after the next round (the document stays dirty).
                    Err(e) => {
                        tracing::error!(term = self.term, "cannot write the health document: {e}")
                    }
                }
            }
        }
    }
}
