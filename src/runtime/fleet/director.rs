//! A fleet director's fleet thread ([`FleetDriver`], feature `etcd`), control side only
//! (start-up is `startup.rs`):
//! - watches `desired` from the revision after the applied one and applies every newer
//!   revision through [`ControlPlane::apply_desired`] (validated rebuild-and-swap; the
//!   document's overrides replace the operator overrides). A revision that fails is
//!   refused, counted, logged and reported; the running tables stay. Revisions never go
//!   backwards. A deleted document keeps the running tables (reported as an error).
//! - watches `health` and applies each backend's `healthy` as a health observation (an
//!   override's `health` still wins); backends not in the live tables are ignored.
//! - writes its [`DirectorStatus`](crate::fleet::docs::DirectorStatus) under
//!   `directors/<name>` on a lease, whenever it changes and at least every
//!   [`STATUS_REFRESH`]; after an outage the lease is made anew.
//! - while etcd is unreachable: forwarding goes on, the console and metrics say so, and the
//!   watches catch up when it is back (they resume themselves).

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::startup::{build, desired_name, Started};
use super::{cache, status, unix_ms, FleetView};
use crate::config::Config;
use crate::fleet::docs::{self, HealthDoc, Refusal, DESIRED, HEALTH, STATUS_REFRESH};
use crate::fleet::etcd::{EtcdSettings, EtcdStore, Lease, Watch, WatchEvent};
use crate::runtime::plane::ControlPlane;

/// How often a failed etcd step (connect, lease, status write, health read) is retried.
const RETRY: Duration = Duration::from_secs(1);
/// The fleet thread's wait for a watch event.
const TICK: Duration = Duration::from_millis(100);

/// The running fleet thread; [`FleetDriver::stop`] ends it (its lease is revoked, so the
/// status key goes at once).
pub struct FleetDriver {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FleetDriver {
    /// Publish what start-up found and start the thread.
    pub fn start(
        plane: Arc<ControlPlane>,
        settings: EtcdSettings,
        local: Config,
        started: Started,
    ) -> std::io::Result<FleetDriver> {
        plane.fleet.configure(FleetView {
            endpoints: settings.endpoints.clone(),
            prefix: settings.prefix.clone(),
            name: settings.name.clone(),
            connected: false,
            endpoint: None,
            seen_revision: started.seen_revision,
            applied_revision: started.revision,
            health_revision: 0,
            source: started.source.to_string(),
            refused: started.refused.clone(),
            last_error: started.last_error.clone(),
            status_written_ms: 0,
        });
        let stop = Arc::new(AtomicBool::new(false));
        let w = Worker {
            plane,
            s: settings,
            local,
            store: started.store,
            desired: None,
            health: None,
            lease: None,
            applied: started.revision,
            health_doc: None,
            started_ms: unix_ms(),
            last_try: None,
            last_status: None,
            status_retry: None,
            watch_up: false,
            put_ok: false,
            stop: stop.clone(),
        };
        if started.source == "etcd" {
            w.save_cache(started.revision, &started.document);
        }
        let thread = std::thread::Builder::new()
            .name("rondo-fleet".into())
            .spawn(move || w.run())?;
        Ok(FleetDriver {
            stop,
            thread: Some(thread),
        })
    }

    /// Stop the thread, waiting at most `wait` (an etcd call under way is left to time out).
    pub fn stop(mut self, wait: Duration) {
        self.stop.store(true, Ordering::Release);
        let Some(h) = self.thread.take() else { return };
        let end = Instant::now() + wait;
        while !h.is_finished() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
        if h.is_finished() {
            let _ = h.join();
        } else {
            tracing::warn!(
                "the fleet thread is still in an etcd call at shutdown; not waiting for it"
            );
        }
    }
}

enum Ev {
    Desired(WatchEvent),
    Health(WatchEvent),
    DesiredEnded,
    HealthEnded,
}

struct Worker {
    plane: Arc<ControlPlane>,
    s: EtcdSettings,
    local: Config,
    store: Option<EtcdStore>,
    desired: Option<Watch>,
    health: Option<Watch>,
    lease: Option<Lease>,
    applied: i64,
    /// The last health document, re-applied after each desired revision (its backends may
    /// be new).
    health_doc: Option<HealthDoc>,
    started_ms: u64,
    /// When a failed connect / health read was last tried.
    last_try: Option<Instant>,
    /// The status last written (with `updated_ms` zeroed) and when.
    last_status: Option<(docs::DirectorStatus, Instant)>,
    /// After a failed status write or lease grant: not before this.
    status_retry: Option<Instant>,
    watch_up: bool,
    put_ok: bool,
    stop: Arc<AtomicBool>,
}

impl Worker {
    fn run(mut self) {
        while !self.stop.load(Ordering::Acquire) {
            self.ensure_connected();
            let ev = {
                let never = crossbeam::channel::never();
                let d = self.desired.as_ref().map_or(&never, |w| w.receiver());
                let h = self.health.as_ref().map_or(&never, |w| w.receiver());
                crossbeam::select! {
                    recv(d) -> e => Some(e.map_or(Ev::DesiredEnded, Ev::Desired)),
                    recv(h) -> e => Some(e.map_or(Ev::HealthEnded, Ev::Health)),
                    default(TICK) => None,
                }
            };
            match ev {
                Some(Ev::Desired(e)) => {
                    // Catching up (after an outage, a start on the cache): apply only the
                    // newest of the revisions already delivered.
                    let mut evs = vec![e];
                    if let Some(w) = &self.desired {
                        evs.extend(w.receiver().try_iter());
                    }
                    let last_put = evs
                        .iter()
                        .rposition(|e| matches!(e, WatchEvent::Put { .. }));
                    for (i, e) in evs.into_iter().enumerate() {
                        match e {
                            WatchEvent::Put { revision, .. } if Some(i) != last_put => {
                                tracing::info!(revision, "fleet: revision superseded by a newer one already delivered; skipped");
                                self.plane
                                    .fleet
                                    .update(|v| v.seen_revision = v.seen_revision.max(revision));
                            }
                            e => self.on_desired(e),
                        }
                    }
                }
                Some(Ev::Health(e)) => self.on_health(e),
                Some(Ev::DesiredEnded) => self.desired = None,
                Some(Ev::HealthEnded) => self.health = None,
                None => {}
            }
            self.write_status();
        }
        // Revoke the lease: the status key goes now, not after the TTL.
        drop(self.lease.take());
    }

    fn error(&self, e: String) {
        self.plane.fleet.update(|v| v.last_error = Some(e));
    }

    fn set_connected(&self) {
        let c = self.watch_up && self.put_ok;
        self.plane.fleet.update(|v| v.connected = c);
    }

    fn retry_due(&self) -> bool {
        self.last_try.is_none_or(|t| t.elapsed() >= RETRY)
    }

    /// Connect (start-up on the cache), start the watches, read the health document.
    fn ensure_connected(&mut self) {
        if self.store.is_none() {
            if !self.retry_due() {
                return;
            }
            self.last_try = Some(Instant::now());
            match EtcdStore::connect(self.s.clone()) {
                Ok(s) => self.store = Some(s),
                Err(e) => {
                    self.error(e.to_string());
                    return;
                }
            }
        }
        let Some(store) = self.store.as_mut() else {
            return;
        };
        if self.desired.is_none() {
            match store.watch(DESIRED, self.applied + 1) {
                Ok(w) => self.desired = Some(w),
                Err(e) => {
                    let m = format!("cannot watch {}/{DESIRED}: {e}", self.s.prefix);
                    self.plane.fleet.update(|v| v.last_error = Some(m));
                }
            }
        }
        let retry_due = self.last_try.is_none_or(|t| t.elapsed() >= RETRY);
        if self.health.is_none() && retry_due {
            self.last_try = Some(Instant::now());
            let got = store.get_document(HEALTH);
            let from = match &got {
                Ok(Some(d)) => d.mod_revision + 1,
                _ => 0,
            };
            match got.and_then(|d| store.watch(HEALTH, from).map(|w| (d, w))) {
                Ok((d, w)) => {
                    self.health = Some(w);
                    if let Some(d) = d {
                        self.on_health(WatchEvent::Put {
                            revision: d.mod_revision,
                            bytes: d.bytes,
                        });
                    }
                }
                Err(e) => self.error(format!("cannot read {}/{HEALTH}: {e}", self.s.prefix)),
            }
        }
    }

    fn save_cache(&self, revision: i64, document: &[u8]) {
        if let Some(p) = &self.s.cache {
            if let Err(e) = cache::write(p, &self.s.prefix, revision, document) {
                tracing::error!("fleet: {e}");
                self.error(format!("writing the cache: {e}"));
            }
        }
    }

    fn refuse(&self, revision: i64, error: String) {
        tracing::error!(revision, prefix = %self.s.prefix, "fleet: desired revision refused, the running tables stay: {error}");
        self.plane
            .fleet
            .refused_total
            .fetch_add(1, Ordering::Relaxed);
        self.plane.fleet.update(|v| {
            v.refused = Some(Refusal {
                revision,
                error: error.clone(),
            });
            v.last_error = Some(format!("revision {revision} refused: {error}"));
        });
    }

    fn on_desired(&mut self, e: WatchEvent) {
        match e {
            WatchEvent::Put { revision, bytes } => {
                if revision <= self.applied {
                    tracing::debug!(
                        revision,
                        applied = self.applied,
                        "fleet: older revision ignored"
                    );
                    return;
                }
                self.plane
                    .fleet
                    .update(|v| v.seen_revision = v.seen_revision.max(revision));
                let t0 = Instant::now();
                let what = desired_name(&self.s, revision);
                let why = format!("fleet: {what}");
                let mut built_ms = 0;
                let r = build(&bytes, &what, &self.local).and_then(|(cfg, rules)| {
                    built_ms = t0.elapsed().as_millis() as u64;
                    self.plane.apply_desired(cfg, rules, &why)
                });
                match r {
                    Ok(g) => {
                        self.applied = revision;
                        self.save_cache(revision, &bytes);
                        if let Some(h) = self.health_doc.clone() {
                            self.apply_health(&h);
                        }
                        let f = &self.plane.fleet;
                        f.applied_total.fetch_add(1, Ordering::Relaxed);
                        f.apply_us_total
                            .fetch_add(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
                        f.update(|v| {
                            v.applied_revision = revision;
                            v.source = "etcd".into();
                            v.refused = None;
                        });
                        tracing::info!(
                            revision,
                            generation = g,
                            parse_build_ms = built_ms,
                            apply_ms = t0.elapsed().as_millis() as u64,
                            "fleet: desired revision applied"
                        );
                    }
                    Err(e) => self.refuse(revision, e),
                }
            }
            WatchEvent::TooLarge { revision, size } => {
                self.plane
                    .fleet
                    .update(|v| v.seen_revision = v.seen_revision.max(revision));
                self.refuse(
                    revision,
                    format!(
                        "the document is {size} bytes, over max_document_bytes ({})",
                        self.s.max_document_bytes
                    ),
                )
            }
            WatchEvent::Deleted { revision } => {
                let m = format!(
                    "etcd {}/{DESIRED} was deleted at revision {revision}: still forwarding on revision {}",
                    self.s.prefix, self.applied
                );
                tracing::error!("fleet: {m}");
                self.error(m);
            }
            WatchEvent::Compacted {
                wanted,
                compact_revision,
            } => tracing::warn!(
                wanted,
                compact_revision,
                "fleet: revisions compacted away in etcd; catching up on the current document"
            ),
            WatchEvent::Disconnected { error } => {
                tracing::warn!(
                    "fleet: lost etcd ({error}); forwarding on revision {}",
                    self.applied
                );
                self.watch_up = false;
                self.error(format!("etcd: {error}"));
                self.set_connected();
            }
            WatchEvent::Connected { endpoint, .. } => {
                tracing::info!(endpoint = %endpoint, "fleet: watching {}/{DESIRED}", self.s.prefix);
                self.watch_up = true;
                self.plane.fleet.update(|v| v.endpoint = Some(endpoint));
                self.set_connected();
                self.confirm_cache();
            }
        }
    }

    /// Started on the cache and etcd is back: if etcd's document is still the cached
    /// revision, the live tables are etcd's (a newer one comes through the watch).
    fn confirm_cache(&mut self) {
        if self.plane.fleet.view().source != "cache" {
            return;
        }
        let Some(store) = self.store.as_mut() else {
            return;
        };
        if let Ok(Some(d)) = store.get_document(DESIRED) {
            if d.mod_revision == self.applied {
                tracing::info!(revision = self.applied, "fleet: etcd's desired document is the cached revision: the live tables are etcd's");
                self.plane.fleet.update(|v| v.source = "etcd".into());
            }
        }
    }

    fn on_health(&mut self, e: WatchEvent) {
        match e {
            WatchEvent::Put { revision, bytes } => {
                match serde_json::from_slice::<HealthDoc>(&bytes) {
                    Ok(h) => {
                        self.apply_health(&h);
                        self.health_doc = Some(h);
                        self.plane.fleet.update(|v| v.health_revision = revision);
                    }
                    Err(e) => self.error(format!(
                        "etcd {}/{HEALTH}@{revision}: not a health document: {e}",
                        self.s.prefix
                    )),
                }
            }
            WatchEvent::TooLarge { revision, size } => self.error(format!(
                "etcd {}/{HEALTH}@{revision}: {size} bytes, over max_document_bytes",
                self.s.prefix
            )),
            WatchEvent::Deleted { revision } => tracing::warn!(
                revision,
                "fleet: the health document was deleted; the last health results stay"
            ),
            _ => {}
        }
    }

    /// Each backend's health as an observation, all in one rebuild; backends not in the
    /// live tables ignored.
    fn apply_health(&self, h: &HealthDoc) {
        let results: Vec<(String, IpAddr, bool)> = h
            .backends
            .iter()
            .filter_map(|b| match b.ip.parse::<IpAddr>() {
                Ok(ip) => Some((b.table.clone(), ip, b.healthy)),
                Err(_) => {
                    tracing::debug!(ip = %b.ip, "fleet: health document names a bad address; ignored");
                    None
                }
            })
            .collect();
        match self.plane.set_health_observations(&results) {
            Ok((g, skipped)) => {
                if let Some(g) = g {
                    tracing::info!(generation = g, leader = %h.leader, "fleet: health changed; tables rebuilt");
                }
                for (t, ip) in skipped {
                    tracing::debug!(table = %t, backend = %ip, "fleet: health result for a backend not in the live tables; ignored");
                }
            }
            Err(e) => self.error(format!("applying the health document: {e}")),
        }
    }

    fn write_status(&mut self) {
        if self.status_retry.is_some_and(|t| Instant::now() < t) {
            return;
        }
        let Some(store) = self.store.as_mut() else {
            return;
        };
        if !self.lease.as_ref().is_some_and(|l| l.is_alive()) {
            self.lease = None;
            match store.lease_keepalive(self.s.lease_ttl()) {
                Ok(l) => self.lease = Some(l),
                Err(e) => {
                    self.put_ok = false;
                    self.status_retry = Some(Instant::now() + RETRY);
                    self.plane
                        .fleet
                        .status_failures
                        .fetch_add(1, Ordering::Relaxed);
                    let m = format!("etcd: cannot make the status lease: {e}");
                    self.plane.fleet.update(|v| v.last_error = Some(m));
                    self.set_connected();
                    return;
                }
            }
        }
        let mut st = status(&self.plane, self.started_ms);
        st.updated_ms = 0;
        let due = self
            .last_status
            .as_ref()
            .is_none_or(|(prev, at)| *prev != st || at.elapsed() >= STATUS_REFRESH);
        if !due {
            return;
        }
        let mut out = st.clone();
        out.updated_ms = unix_ms();
        let bytes = match serde_json::to_vec(&out) {
            Ok(b) => b,
            Err(e) => return self.error(format!("status: {e}")),
        };
        let Some(lease) = self.lease.as_ref() else {
            return;
        };
        let key = docs::status_key(&self.s.name);
        match store.put_with_lease(lease, &key, &bytes) {
            Ok(_) => {
                self.put_ok = true;
                self.last_status = Some((st, Instant::now()));
                self.plane
                    .fleet
                    .status_writes
                    .fetch_add(1, Ordering::Relaxed);
                self.plane
                    .fleet
                    .update(|v| v.status_written_ms = out.updated_ms);
            }
            Err(e) => {
                self.put_ok = false;
                self.status_retry = Some(Instant::now() + RETRY);
                self.plane
                    .fleet
                    .status_failures
                    .fetch_add(1, Ordering::Relaxed);
                if !lease.is_alive() {
                    self.lease = None;
                }
                self.error(format!("etcd: writing {}/{key}: {e}", self.s.prefix));
            }
        }
        self.set_connected();
    }
}
