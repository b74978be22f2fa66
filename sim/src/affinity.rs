//! Client affinity (issue 22, item 4): many clients open connection after connection while
//! a backend drains and another joins. With `hash_fields = ["src_addr"]` every connection
//! of a client lands on one backend while nothing changes, and a table change moves a
//! client at most once, never back to a backend it left. The same run hashed on the client
//! address and port (the sim's whole 5-tuple: destination and protocol are fixed) spreads
//! each client over every backend.
//!
//! Where a connection landed is the backend whose own stack took its opening SYN
//! ([`Backend::accepted`](super::backend::Backend::accepted)), after second chance.

use std::collections::BTreeMap;
use std::fmt;

use super::net::client_index;
use super::scenario::{Edit, Event, Params, Report, Sim};
use super::SimError;
use rondo::table::BackendState;

/// How the fleet changes under the clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Two changes a second and a half apart: backend 0 drains, then a new backend joins
    /// (`filling`, and `active` a second later). Three hops per row: with two, a row whose
    /// rendezvous order is (0, new, X) holds (X, 0) while 0 drains and (new, 0) once the new
    /// backend joins, so X's connections lose their only hop (that is why the console
    /// refuses a second non-active backend without `force`); a third hop keeps X.
    Separate,
    /// One change: backend 0 drains and the new backend joins in the same table (a host
    /// replaced), `active` a second later.
    Replace,
}

/// What one affinity run is.
#[derive(Debug, Clone, Copy)]
pub struct AffinityParams {
    /// Fleet sizes, timings and seed; `clients`, `new_conn_every_ms` and `change_at_ms` matter
    /// here (long-lived connections are not opened).
    pub base: Params,
    /// Hash on the client address alone (sticky); otherwise on address and port.
    pub sticky: bool,
    pub plan: Plan,
}

impl Default for AffinityParams {
    fn default() -> AffinityParams {
        AffinityParams {
            base: Params {
                clients: 60,
                long_conns: 0,
                new_conn_every_ms: 1,
                change_at_ms: 1500,
                settle_ms: 3500,
                new_conn_timeout_ms: 1500,
                ..Params::default()
            },
            sticky: true,
            plan: Plan::Separate,
        }
    }
}

/// What an affinity run counted, per client.
#[derive(Debug, Clone, Default)]
pub struct AffinityReport {
    pub hash_fields: &'static str,
    pub plan: &'static str,
    pub clients: usize,
    /// Connections that landed on a backend, and those whose opening reached the stacks of
    /// two backends (a retransmitted SYN after a change: counted, judged by the first).
    pub connections: usize,
    pub landed_twice: usize,
    /// Clients whose every connection landed on one backend.
    pub kept_one: usize,
    /// Clients on more than one backend before the first change (sticky: must be 0).
    pub split_before_change: usize,
    /// Clients that moved once, and more than once, over the whole run.
    pub moved_once: usize,
    pub moved_more: usize,
    /// Clients that moved more than once for one change (a move is the change's when the
    /// connection that moved opened after that change began and before the next one).
    pub moved_more_per_change: usize,
    /// Clients that came back to a backend they had left.
    pub returned: usize,
    /// Clients whose connections went back and forth while a change was rolling out (some
    /// directors had the new table, some the old: ECMP sends each connection to any of
    /// them). Every other count leaves out connections opened in those windows.
    pub flapped_in_rollout: usize,
    /// How long each rollout took (from the first director to the last), in ms.
    pub rollout_ms: i64,
    /// Per change (time, what): clients it moved.
    pub moved_by_change: Vec<(i64, String, usize)>,
    /// The connection counts of the run (every connection is new and short here).
    pub run: Report,
}

impl AffinityReport {
    /// Share of clients that kept one backend, in percent.
    pub fn kept_one_pct(&self) -> f64 {
        100.0 * self.kept_one as f64 / self.clients.max(1) as f64
    }
}

impl fmt::Display for AffinityReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "affinity hash_fields={} plan={} rollout={}ms clients={} connections={} (landed twice {}) | kept one backend {} ({:.1} %) | split before any change {} | moved once {} | moved more than once {} (more than once for one change {}) | came back to a backend left {} | flapped while a change rolled out {} | new connections failed {} of {}",
            self.hash_fields,
            self.plan,
            self.rollout_ms,
            self.clients,
            self.connections,
            self.landed_twice,
            self.kept_one,
            self.kept_one_pct(),
            self.split_before_change,
            self.moved_once,
            self.moved_more,
            self.moved_more_per_change,
            self.returned,
            self.flapped_in_rollout,
            self.run.new_failed,
            self.run.new_judged,
        )?;
        for (t, what, n) in &self.moved_by_change {
            write!(f, "\n    t={t}ms {what}: moved {n} clients")?;
        }
        Ok(())
    }
}

/// Run the affinity scenario.
pub fn affinity(a: AffinityParams) -> Result<AffinityReport, SimError> {
    let p = a.base;
    let mut sim = Sim::new(p, None)?;
    let fields: &'static [&'static str] = if a.sticky {
        &["src_addr"]
    } else {
        &["src_addr", "src_port"]
    };
    sim.control.hash_fields = fields.to_vec();
    if a.plan == Plan::Separate {
        sim.control.hops = 3;
    }
    for d in 0..sim.directors.len() {
        sim.directors[d].snap = Some(sim.control.compile(d)?);
    }
    let t = p.change_at_ms;
    let new = p.backends;
    match a.plan {
        Plan::Separate => {
            sim.at(t, Event::Edit(Edit::State(0, BackendState::Draining)));
            sim.at(t + 1500, Event::Edit(Edit::Add(new)));
            sim.at(
                t + 2500,
                Event::Edit(Edit::State(new, BackendState::Active)),
            );
        }
        Plan::Replace => {
            sim.at(t, Event::Edit(Edit::Replace(0, new)));
            sim.at(
                t + 1000,
                Event::Edit(Edit::State(new, BackendState::Active)),
            );
        }
    }
    // (client, port) -> backend; the first landing counts.
    let mut landed: BTreeMap<(usize, u16), usize> = BTreeMap::new();
    let mut landed_twice = 0usize;
    let hard_end = t + 20_000;
    loop {
        let end = sim.last_change.max(t) + p.settle_ms;
        if sim.now >= hard_end || (sim.events.is_empty() && sim.now >= end) {
            break;
        }
        if sim.now > 0
            && p.new_conn_every_ms > 0
            && sim.now % p.new_conn_every_ms == 0
            && sim.now <= end - p.new_conn_timeout_ms
        {
            let n = sim.clients.len();
            let c = (sim.now / p.new_conn_every_ms) as usize % n;
            let now = sim.now;
            sim.clients[c].open(super::client::Kind::Short, now, None);
        }
        sim.tick()?;
        for (b, be) in sim.backends.iter_mut().enumerate() {
            for (ip, port) in be.accepted.drain(..) {
                let Some(c) = client_index(ip) else { continue };
                match landed.get(&(c, port)) {
                    Some(&first) if first != b => landed_twice += 1,
                    Some(_) => {}
                    None => {
                        landed.insert((c, port), b);
                    }
                }
            }
        }
    }
    let run = sim.report("affinity");
    // Changes that moved rows (the `active` step of a joining backend moves none).
    let changes: Vec<(i64, String)> = sim
        .changes
        .iter()
        .filter(|(_, c)| c.starts_with("tables:"))
        .cloned()
        .collect();
    let mut r = AffinityReport {
        hash_fields: if a.sticky {
            "src_addr"
        } else {
            "src_addr,src_port"
        },
        plan: match a.plan {
            Plan::Separate => "separate",
            Plan::Replace => "replace",
        },
        clients: sim.clients.len(),
        rollout_ms: p.stagger_ms * (p.directors as i64 - 1),
        connections: landed.len(),
        landed_twice,
        moved_by_change: changes.iter().map(|(t, c)| (*t, c.clone(), 0)).collect(),
        run,
        ..AffinityReport::default()
    };
    let first_change = changes.first().map_or(i64::MAX, |(t, _)| *t);
    for c in 0..sim.clients.len() {
        // This client's connections in the order it opened them, with the time it did.
        let seq: Vec<(usize, i64)> = sim.clients[c]
            .conns
            .iter()
            .filter_map(|k| Some((*landed.get(&(c, k.port))?, k.opened_at)))
            .collect();
        judge(&seq, first_change, &changes, &mut r);
    }
    Ok(r)
}

/// Count one client's moves into `r`: `seq` is (backend, opened at) in opening order.
fn judge(
    seq: &[(usize, i64)],
    first_change: i64,
    changes: &[(i64, String)],
    r: &mut AffinityReport,
) {
    let rolling = |at: i64| {
        changes
            .iter()
            .any(|(t, _)| (*t..=*t + r.rollout_ms).contains(&at))
    };
    if moves(seq).2 {
        // Back and forth over the whole run: only a rollout window can explain it.
        let settled: Vec<(usize, i64)> = seq
            .iter()
            .copied()
            .filter(|(_, at)| !rolling(*at))
            .collect();
        if !moves(&settled).2 {
            r.flapped_in_rollout += 1;
        }
    }
    let seq: Vec<(usize, i64)> = seq
        .iter()
        .copied()
        .filter(|(_, at)| !rolling(*at))
        .collect();
    let before: Vec<usize> = seq
        .iter()
        .filter(|(_, t)| *t < first_change)
        .map(|(b, _)| *b)
        .collect();
    if before.windows(2).any(|w| w[0] != w[1]) {
        r.split_before_change += 1;
    }
    let mut per_change = vec![0usize; changes.len()];
    for w in seq.windows(2) {
        let ((from, _), (to, at)) = (w[0], w[1]);
        if from != to {
            if let Some(i) = changes.iter().rposition(|(t, _)| *t <= at) {
                per_change[i] += 1;
            }
        }
    }
    let (n, _, returned) = moves(&seq);
    match n {
        0 => r.kept_one += 1,
        1 => r.moved_once += 1,
        _ => r.moved_more += 1,
    }
    if per_change.iter().any(|&n| n > 1) {
        r.moved_more_per_change += 1;
    }
    for (i, n) in per_change.iter().enumerate() {
        if *n > 0 {
            r.moved_by_change[i].2 += 1;
        }
    }
    r.returned += usize::from(returned);
}

/// (moves, backends left, came back to one it had left) of a sequence.
fn moves(seq: &[(usize, i64)]) -> (usize, Vec<usize>, bool) {
    let mut left = Vec::new();
    let mut n = 0;
    let mut returned = false;
    for w in seq.windows(2) {
        let (from, to) = (w[0].0, w[1].0);
        if from != to {
            n += 1;
            returned |= left.contains(&to);
            left.push(from);
        }
    }
    (n, left, returned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> AffinityReport {
        AffinityReport {
            moved_by_change: vec![(10, "a".into(), 0), (20, "b".into(), 0)],
            ..AffinityReport::default()
        }
    }

    #[test]
    fn moves_are_counted_per_change_and_returns_are_seen() {
        let ch = vec![(10, "a".to_string()), (20, "b".to_string())];
        let mut r = report();
        judge(
            &[(0, 1), (0, 5), (1, 12), (1, 15), (2, 25)],
            10,
            &ch,
            &mut r,
        );
        assert_eq!(
            (r.moved_more, r.moved_more_per_change, r.returned),
            (1, 0, 0)
        );
        assert_eq!(r.moved_by_change[0].2 + r.moved_by_change[1].2, 2);
        let mut r = report();
        judge(&[(0, 1), (1, 12), (0, 14)], 10, &ch, &mut r);
        assert_eq!((r.moved_more_per_change, r.returned), (1, 1));
        let mut r = report();
        judge(&[(0, 1), (1, 2), (0, 3)], 10, &ch, &mut r);
        assert_eq!(r.split_before_change, 1);
        // Back and forth inside the rollout window of the change at 10 (rollout 5 ms).
        let mut r = report();
        r.rollout_ms = 5;
        judge(
            &[(0, 1), (1, 11), (0, 13), (1, 16), (1, 18)],
            10,
            &ch,
            &mut r,
        );
        assert_eq!((r.flapped_in_rollout, r.returned, r.moved_once), (1, 0, 1));
        let mut r = report();
        judge(&[(3, 1), (3, 30)], 10, &ch, &mut r);
        assert_eq!((r.kept_one, r.moved_once), (1, 0));
    }
}
