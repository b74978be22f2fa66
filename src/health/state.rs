//! Health state: per-target dampening exactly as GLB's `DampenedResultStream`, and per-backend
//! health derived from it.
//!
//! - A target's first result is taken as is.
//! - After that, the reported value flips only once `trigger` consecutive results disagree
//!   with it (a run of opposite results is reset by any result that agrees).
//! - A backend is healthy when every one of its checks reports healthy. Inactive backends
//!   and backends without checks are not tracked (their `healthy` flag stays as configured).
//! - Backends start with their configured `healthy` flag; an event is emitted whenever a
//!   round changes a backend's health from what was last known.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use super::check::{CheckError, Target};
use super::HealthEvent;
use crate::table::{BackendState, TableSpec};

/// GLB's dampener for one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dampener {
    before_healthy: u32,
    before_failed: u32,
    reported: Option<bool>,
    current: bool,
    streak: u32,
}

impl Dampener {
    /// `trigger` consecutive results flip the state either way (0 is taken as 1).
    pub fn new(trigger: u32) -> Dampener {
        Dampener::with_counts(trigger, trigger)
    }

    /// Separate counts to become healthy and to become failed, as GLB's dampener takes them
    /// (GLB's configuration sets both from `trigger`).
    pub fn with_counts(before_healthy: u32, before_failed: u32) -> Dampener {
        Dampener {
            before_healthy: before_healthy.max(1),
            before_failed: before_failed.max(1),
            reported: None,
            current: false,
            streak: 0,
        }
    }

    /// Feed one raw result; returns the dampened value.
    pub fn push(&mut self, healthy: bool) -> bool {
        let Some(reported) = self.reported else {
            // The first result is taken as accurate.
            self.reported = Some(healthy);
            self.current = healthy;
            self.streak = 1;
            return healthy;
        };
        if healthy == self.current {
            self.streak = self.streak.saturating_add(1);
        } else {
            self.current = healthy;
            self.streak = 1;
        }
        let needed = if self.current {
            self.before_healthy
        } else {
            self.before_failed
        };
        let reported = if self.current != reported && self.streak >= needed {
            self.current
        } else {
            reported
        };
        self.reported = Some(reported);
        reported
    }

    /// The dampened value, `None` before the first result.
    pub fn reported(&self) -> Option<bool> {
        self.reported
    }

    /// The dampener's state (what a fleet checker leader writes to etcd).
    pub fn export(&self) -> DampenerState {
        DampenerState {
            reported: self.reported,
            current: self.current,
            streak: self.streak,
        }
    }

    /// Carry on from `state` (exported by another checker): the counts stay this
    /// dampener's own.
    pub fn import(&mut self, state: DampenerState) {
        self.reported = state.reported;
        self.current = state.current;
        self.streak = if state.reported.is_some() {
            state.streak
        } else {
            0
        };
    }
}

/// A [`Dampener`]'s state without its counts: the value it reports, the raw value of the
/// current run and the run's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DampenerState {
    pub reported: Option<bool>,
    pub current: bool,
    pub streak: u32,
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOutcome {
    pub result: Result<(), CheckError>,
    pub elapsed: Duration,
}

#[derive(Debug, Clone)]
struct TargetState {
    dampener: Dampener,
    last: Option<CheckOutcome>,
    checks: u64,
    failures: u64,
}

#[derive(Debug, Clone)]
struct Entry {
    table: String,
    table_index: usize,
    backend_index: usize,
    ip: IpAddr,
    targets: Vec<Target>,
    healthy: bool,
    flips: u64,
}

/// What is known about every checked target and backend.
#[derive(Debug, Clone)]
pub struct HealthState {
    trigger: u32,
    targets: BTreeMap<Target, TargetState>,
    entries: Vec<Entry>,
    rounds: u64,
}

impl HealthState {
    pub fn new(trigger: u32, tables: &[TableSpec]) -> HealthState {
        let mut s = HealthState {
            trigger: trigger.max(1),
            targets: BTreeMap::new(),
            entries: Vec::new(),
            rounds: 0,
        };
        s.set_tables(tables);
        s
    }

    /// Track a new set of tables (after a reload). Targets that stay keep their dampening
    /// history; backends that stay (same table name and address) keep their health.
    pub fn set_tables(&mut self, tables: &[TableSpec]) {
        let old = std::mem::take(&mut self.entries);
        let mut targets = BTreeMap::new();
        for (ti, t) in tables.iter().enumerate() {
            for (bi, b) in t.backends.iter().enumerate() {
                if b.state == BackendState::Inactive {
                    continue;
                }
                let list = Target::of_backend(b);
                if list.is_empty() {
                    continue;
                }
                for target in &list {
                    if !targets.contains_key(target) {
                        let st = self.targets.remove(target).unwrap_or(TargetState {
                            dampener: Dampener::new(self.trigger),
                            last: None,
                            checks: 0,
                            failures: 0,
                        });
                        targets.insert(target.clone(), st);
                    }
                }
                let before = old.iter().find(|e| e.table == t.name && e.ip == b.ip);
                self.entries.push(Entry {
                    table: t.name.clone(),
                    table_index: ti,
                    backend_index: bi,
                    ip: b.ip,
                    targets: list,
                    healthy: before.map_or(b.healthy, |e| e.healthy),
                    flips: before.map_or(0, |e| e.flips),
                });
            }
        }
        self.targets = targets;
    }

    /// Every tracked target's dampener state, in target order.
    pub fn dampeners(&self) -> Vec<(Target, DampenerState)> {
        self.targets
            .iter()
            .map(|(t, s)| (t.clone(), s.dampener.export()))
            .collect()
    }

    /// Carry the dampening on from another checker: every tracked target that `state`
    /// knows (by the target's name, e.g. `tcp 10.0.0.1:22`) takes that state, and every
    /// tracked backend that `healthy` knows (table, address) takes that health. Returns how
    /// many targets were seeded.
    pub fn seed(
        &mut self,
        state: impl Fn(&str) -> Option<DampenerState>,
        healthy: impl Fn(&str, IpAddr) -> Option<bool>,
    ) -> usize {
        let mut n = 0;
        for (t, s) in self.targets.iter_mut() {
            if let Some(d) = state(&t.to_string()) {
                s.dampener.import(d);
                n += 1;
            }
        }
        for e in &mut self.entries {
            if let Some(h) = healthy(&e.table, e.ip) {
                e.healthy = h;
            }
        }
        n
    }

    /// Every distinct target to check this round.
    pub fn targets(&self) -> Vec<Target> {
        self.targets.keys().cloned().collect()
    }

    /// Take one round's results; returns the backends whose health changed. Results for
    /// targets no longer tracked (a reload during the round) are ignored.
    pub fn record(&mut self, results: Vec<(Target, CheckOutcome)>) -> Vec<HealthEvent> {
        self.rounds += 1;
        for (target, outcome) in results {
            if let Some(st) = self.targets.get_mut(&target) {
                st.dampener.push(outcome.result.is_ok());
                st.checks += 1;
                if outcome.result.is_err() {
                    st.failures += 1;
                }
                st.last = Some(outcome);
            }
        }
        let mut events = Vec::new();
        for e in &mut self.entries {
            let states: Vec<(&Target, &TargetState)> = e
                .targets
                .iter()
                .filter_map(|t| self.targets.get_key_value(t))
                .collect();
            // Not judged until every check has a result.
            if states.len() != e.targets.len()
                || states.iter().any(|(_, s)| s.dampener.reported().is_none())
            {
                continue;
            }
            let healthy = states
                .iter()
                .all(|(_, s)| s.dampener.reported() == Some(true));
            if healthy != e.healthy {
                e.healthy = healthy;
                e.flips += 1;
                events.push(HealthEvent {
                    table: e.table.clone(),
                    backend: e.ip,
                    healthy,
                    reason: reason(&states),
                });
            }
        }
        events
    }

    /// A copy of the current state, for the console, metrics and the checked JSON.
    pub fn snapshot(&self) -> HealthSnapshot {
        HealthSnapshot {
            rounds: self.rounds,
            backends: self
                .entries
                .iter()
                .map(|e| BackendHealth {
                    table: e.table.clone(),
                    table_index: e.table_index,
                    backend_index: e.backend_index,
                    ip: e.ip,
                    healthy: e.healthy,
                    flips: e.flips,
                    checks: e
                        .targets
                        .iter()
                        .filter_map(|t| {
                            self.targets.get(t).map(|s| TargetHealth {
                                target: t.clone(),
                                healthy: s.dampener.reported(),
                                last: s.last.clone(),
                                checks: s.checks,
                                failures: s.failures,
                            })
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

/// Why a backend is where it is: its failing checks with their last error, or "all pass".
fn reason(states: &[(&Target, &TargetState)]) -> String {
    let failing: Vec<String> = states
        .iter()
        .filter(|(_, s)| s.dampener.reported() != Some(true))
        .map(|(t, s)| match s.last.as_ref().map(|o| &o.result) {
            Some(Err(e)) => format!("{t}: {e}"),
            _ => format!("{t}: failing"),
        })
        .collect();
    if failing.is_empty() {
        format!("{} of {} checks pass", states.len(), states.len())
    } else {
        failing.join("; ")
    }
}

/// One checked target in a [`HealthSnapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetHealth {
    pub target: Target,
    /// Dampened result; `None` before the first round.
    pub healthy: Option<bool>,
    /// The last raw result.
    pub last: Option<CheckOutcome>,
    pub checks: u64,
    pub failures: u64,
}

/// One checked backend in a [`HealthSnapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendHealth {
    pub table: String,
    /// Position of the table and of the backend in the source they came from.
    pub table_index: usize,
    pub backend_index: usize,
    pub ip: IpAddr,
    pub healthy: bool,
    /// Health changes seen since the checker started.
    pub flips: u64,
    pub checks: Vec<TargetHealth>,
}

/// The checker's state at one moment: what the console shows and metrics export.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthSnapshot {
    /// Rounds completed.
    pub rounds: u64,
    /// Checked backends (active, draining or filling, with at least one check).
    pub backends: Vec<BackendHealth>,
}

impl HealthSnapshot {
    /// Set `healthy` on every checked backend of `tables` (matched by table name and address)
    /// to its checked value; returns how many backends changed. Call it on freshly loaded
    /// tables before building them, so that a reload does not undo health results.
    pub fn apply_to(&self, tables: &mut [TableSpec]) -> usize {
        let mut changed = 0;
        for b in &self.backends {
            for t in tables.iter_mut().filter(|t| t.name == b.table) {
                for be in t.backends.iter_mut().filter(|x| x.ip == b.ip) {
                    if be.state != BackendState::Inactive && be.healthy != b.healthy {
                        be.healthy = b.healthy;
                        changed += 1;
                    }
                }
            }
        }
        changed
    }

    /// Health of backend `backend_index` of table `table_index`, when it is checked.
    pub fn get(&self, table_index: usize, backend_index: usize) -> Option<&BackendHealth> {
        self.backends
            .iter()
            .find(|b| b.table_index == table_index && b.backend_index == backend_index)
    }

    /// (healthy, unhealthy) backend counts.
    pub fn counts(&self) -> (usize, usize) {
        let up = self.backends.iter().filter(|b| b.healthy).count();
        (up, self.backends.len() - up)
    }
}

impl fmt::Display for HealthSnapshot {
    /// The console's `show health`: one line per backend, then one per check.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (up, down) = self.counts();
        writeln!(
            f,
            "health checks: {} rounds, {up} backend(s) healthy, {down} unhealthy",
            self.rounds
        )?;
        for b in &self.backends {
            writeln!(
                f,
                "  {:<16} {:<40} {:<9} flips {}",
                b.table,
                b.ip.to_string(),
                if b.healthy { "healthy" } else { "UNHEALTHY" },
                b.flips
            )?;
            for c in &b.checks {
                let state = match c.healthy {
                    None => "pending",
                    Some(true) => "pass",
                    Some(false) => "FAIL",
                };
                let last = match &c.last {
                    None => String::new(),
                    Some(o) => match &o.result {
                        Ok(()) => format!("ok in {} ms", o.elapsed.as_millis()),
                        Err(e) => format!("{e}"),
                    },
                };
                writeln!(
                    f,
                    "    {:<44} {state:<7} {}/{} failed  last: {last}",
                    c.target.to_string(),
                    c.failures,
                    c.checks
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::check::CheckKind;
    use crate::table::{Backend, HealthChecks};

    fn feed(d: &mut Dampener, seq: &str) -> String {
        seq.chars()
            .map(|c| if d.push(c == 'H') { 'H' } else { 'F' })
            .collect()
    }

    #[test]
    fn first_result_is_taken_as_is() {
        assert_eq!(feed(&mut Dampener::new(3), "F"), "F");
        assert_eq!(feed(&mut Dampener::new(3), "H"), "H");
        assert_eq!(Dampener::new(3).reported(), None);
    }

    #[test]
    fn trigger_consecutive_results_flip() {
        let mut d = Dampener::new(3);
        assert_eq!(feed(&mut d, "HFFFHHH"), "HHHFFFH");
        let mut d = Dampener::new(1);
        assert_eq!(feed(&mut d, "HFHF"), "HFHF");
        let mut d = Dampener::new(2);
        assert_eq!(feed(&mut d, "FHHFFH"), "FFHHFF");
    }

    #[test]
    fn flapping_never_flips() {
        let mut d = Dampener::new(3);
        assert_eq!(feed(&mut d, "HFFHFFHFHFFH"), "HHHHHHHHHHHH");
        let mut d = Dampener::new(3);
        assert_eq!(feed(&mut d, "FHHFHHFH"), "FFFFFFFF");
    }

    #[test]
    fn agreeing_results_reset_a_pending_flip() {
        // Two failures, one success, then three failures: the flip needs the full run.
        let mut d = Dampener::new(3);
        assert_eq!(feed(&mut d, "HFFHFFF"), "HHHHHHF");
    }

    #[test]
    fn matches_glbs_dampener_vectors() {
        // The input/output streams of GLB's HealthResultDampener_test.go
        // (counts before healthy, before failed, input, expected output).
        let cases = [
            (1, 1, "HFHFHF", "HFHFHF"),
            (1, 3, "FFHFHFFFFFHF", "FFHHHHHFFFHH"),
            (3, 1, "HHFHFHHHHHFH", "HHFFFFFHHHFF"),
            (3, 3, "FFHFHFFFFFHFHHHHH", "FFFFFFFFFFFFFFHHH"),
            (3, 3, "HHFHFHHHHHFHFFFFF", "HHHHHHHHHHHHHHFFF"),
        ];
        for (up, down, input, want) in cases {
            let mut d = Dampener::with_counts(up, down);
            assert_eq!(feed(&mut d, input), want, "{up}/{down} {input}");
        }
    }

    fn backend(ip: &str, http: Option<u16>, tcp: Option<u16>, state: BackendState) -> Backend {
        Backend {
            ip: ip.parse().unwrap(),
            state,
            healthy: true,
            weight: 1,
            healthchecks: HealthChecks {
                http,
                http_uri: None,
                tcp,
                gue: None,
            },
        }
    }

    fn spec(name: &str, backends: Vec<Backend>) -> TableSpec {
        TableSpec {
            name: name.into(),
            hash_key: [0; 16],
            seed: Some([1; 16]),
            binds: vec![],
            backends,
            quic_lb: None,
        }
    }

    fn ok() -> CheckOutcome {
        CheckOutcome {
            result: Ok(()),
            elapsed: Duration::from_millis(1),
        }
    }

    fn fail() -> CheckOutcome {
        CheckOutcome {
            result: Err(CheckError::Connect("refused".into())),
            elapsed: Duration::from_millis(1),
        }
    }

    #[test]
    fn backend_needs_all_checks_and_targets_are_shared() {
        let tables = [
            spec(
                "a",
                vec![
                    backend("10.0.0.1", Some(80), Some(22), BackendState::Active),
                    backend("10.0.0.2", None, None, BackendState::Active),
                    backend("10.0.0.3", Some(80), None, BackendState::Inactive),
                ],
            ),
            spec(
                "b",
                vec![backend("10.0.0.1", Some(80), None, BackendState::Draining)],
            ),
        ];
        let mut st = HealthState::new(2, &tables);
        let targets = st.targets();
        assert_eq!(
            targets.len(),
            2,
            "http shared by both tables, tcp; inactive and unchecked skipped: {targets:?}"
        );
        let http = targets
            .iter()
            .find(|t| matches!(t.kind, CheckKind::Http { .. }))
            .unwrap()
            .clone();
        let tcp = targets
            .iter()
            .find(|t| t.kind == CheckKind::Tcp)
            .unwrap()
            .clone();
        // Round 1: tcp fails -> table a's backend is down at once (first result), b's is up.
        let ev = st.record(vec![(http.clone(), ok()), (tcp.clone(), fail())]);
        assert_eq!(ev.len(), 1);
        assert_eq!((ev[0].table.as_str(), ev[0].healthy), ("a", false));
        assert!(
            ev[0].reason.contains("tcp 10.0.0.1:22: connect: refused"),
            "{}",
            ev[0].reason
        );
        // tcp recovers: needs 2 rounds.
        assert!(st
            .record(vec![(http.clone(), ok()), (tcp.clone(), ok())])
            .is_empty());
        let ev = st.record(vec![(http.clone(), ok()), (tcp.clone(), ok())]);
        assert_eq!(ev.len(), 1);
        assert!(ev[0].healthy);
        // http fails twice: both tables' backends go down together.
        assert!(st
            .record(vec![(http.clone(), fail()), (tcp.clone(), ok())])
            .is_empty());
        let ev = st.record(vec![(http.clone(), fail()), (tcp.clone(), ok())]);
        assert_eq!(ev.len(), 2);
        assert!(ev.iter().all(|e| !e.healthy));
        let snap = st.snapshot();
        assert_eq!(snap.rounds, 5);
        assert_eq!(snap.counts(), (0, 2));
        assert_eq!(snap.backends[0].flips, 3);
        let text = snap.to_string();
        assert!(
            text.contains("UNHEALTHY") && text.contains("http://10.0.0.1:80/"),
            "{text}"
        );

        // Applying the snapshot to freshly loaded tables.
        let mut fresh = tables.to_vec();
        assert_eq!(snap.apply_to(&mut fresh), 2);
        assert!(!fresh[0].backends[0].healthy && !fresh[1].backends[0].healthy);
        assert!(
            fresh[0].backends[1].healthy,
            "unchecked backends keep their flag"
        );

        // A reload keeps what is known about backends and targets that stay.
        st.set_tables(&tables[..1]);
        assert_eq!(st.targets().len(), 2);
        assert!(!st.snapshot().backends[0].healthy);
        let ev = st.record(vec![(http.clone(), ok()), (tcp, ok())]);
        assert!(ev.is_empty(), "http is still dampened after the reload");
    }

    #[test]
    fn a_dampener_carries_on_from_an_exported_state() {
        let mut a = Dampener::new(3);
        feed(&mut a, "HHFF");
        let mut b = Dampener::new(3);
        b.import(a.export());
        assert_eq!(b.export(), a.export());
        // One more failure flips both, exactly as the original would.
        assert_eq!(feed(&mut b, "F"), "F");
        assert_eq!(feed(&mut a, "F"), "F");
        let mut fresh = Dampener::new(3);
        fresh.import(Dampener::new(3).export());
        assert_eq!(fresh.reported(), None);
        assert_eq!(
            feed(&mut fresh, "F"),
            "F",
            "an empty state: first result as is"
        );
    }

    #[test]
    fn seeding_a_state_keeps_health_and_pending_flips() {
        let b = backend("10.0.0.1", None, Some(22), BackendState::Active);
        let tables = [spec("a", vec![b])];
        let mut old = HealthState::new(3, &tables);
        let tcp = old.targets()[0].clone();
        old.record(vec![(tcp.clone(), fail())]);
        old.record(vec![(tcp.clone(), ok())]);
        old.record(vec![(tcp.clone(), ok())]);
        let exported = old.dampeners();
        let snap = old.snapshot();
        let mut new = HealthState::new(3, &tables);
        let n = new.seed(
            |name| {
                exported
                    .iter()
                    .find(|(t, _)| t.to_string() == name)
                    .map(|(_, d)| *d)
            },
            |table, ip| {
                snap.backends
                    .iter()
                    .find(|b| b.table == table && b.ip == ip)
                    .map(|b| b.healthy)
            },
        );
        assert_eq!(n, 1);
        assert!(
            !new.snapshot().backends[0].healthy,
            "down, as the old one said"
        );
        // The third success flips it up: the pending run carried over.
        let ev = new.record(vec![(tcp, ok())]);
        assert_eq!(ev.len(), 1);
        assert!(ev[0].healthy);
    }

    #[test]
    fn configured_health_is_the_starting_point() {
        let mut b = backend("10.0.0.1", None, Some(22), BackendState::Active);
        b.healthy = false;
        let mut st = HealthState::new(3, &[spec("a", vec![b])]);
        let tcp = st.targets()[0].clone();
        let ev = st.record(vec![(tcp.clone(), ok())]);
        assert_eq!(
            ev.len(),
            1,
            "first result taken as is, differs from the file"
        );
        assert!(ev[0].healthy);
        assert_eq!(ev[0].reason, "1 of 1 checks pass");
        // Results for unknown targets (removed by a reload mid-round) are ignored.
        let mut stranger = tcp;
        stranger.port = 1;
        assert!(st.record(vec![(stranger, fail())]).is_empty());
    }
}
