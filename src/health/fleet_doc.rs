//! The fleet checker's side of the health document (`crate::fleet::docs::HealthDoc`): what
//! the leader writes after a round, how a new leader carries the dampening on from the
//! document it finds, and which backends of a desired document are checked. Plain data, no
//! etcd code (the loop that talks to etcd is `rondo healthcheck --fleet`).

use crate::config::desired::Desired;
use crate::fleet::docs::{BackendHealth, HealthDoc, TargetDampening};
use crate::table::TableSpec;

use super::{DampenerState, HealthState};

/// The tables to check for a desired document: its specs with the overrides' `state`
/// applied (a backend an operator set inactive is not checked; `weight` and `health`
/// overrides do not change what is checked).
pub fn checked_specs(desired: &Desired) -> Vec<TableSpec> {
    let mut specs = desired.specs.clone();
    for o in &desired.overrides {
        let Some(state) = o.state else { continue };
        for t in specs.iter_mut().filter(|t| t.name == o.table) {
            for b in t.backends.iter_mut().filter(|b| b.ip == o.ip) {
                b.state = state;
            }
        }
    }
    specs
}

/// What the leader writes: every checked backend's health and every target's dampener.
pub fn health_doc(
    state: &HealthState,
    leader: &str,
    term: i64,
    desired_revision: i64,
    round_ms: u64,
) -> HealthDoc {
    let snap = state.snapshot();
    HealthDoc {
        leader: leader.to_string(),
        term,
        desired_revision,
        round_ms,
        backends: snap
            .backends
            .iter()
            .map(|b| BackendHealth {
                table: b.table.clone(),
                ip: b.ip.to_string(),
                healthy: b.healthy,
            })
            .collect(),
        targets: state
            .dampeners()
            .into_iter()
            .map(|(t, d)| TargetDampening {
                target: t.to_string(),
                reported: d.reported,
                current: d.current,
                streak: d.streak,
            })
            .collect(),
    }
}

/// True when two documents say the same about every backend and target (the run lengths
/// aside: a streak growing in a steady state is no news).
pub fn same_results(a: &HealthDoc, b: &HealthDoc) -> bool {
    a.desired_revision == b.desired_revision
        && a.backends == b.backends
        && a.targets.len() == b.targets.len()
        && a.targets.iter().zip(&b.targets).all(|(x, y)| {
            x.target == y.target && x.reported == y.reported && x.current == y.current
        })
}

/// Seed `state` from the document an earlier leader wrote; returns how many targets took
/// their dampener from it.
pub fn seed_from(state: &mut HealthState, doc: &HealthDoc) -> usize {
    state.seed(
        |name| {
            doc.targets
                .iter()
                .find(|t| t.target == name)
                .map(|t| DampenerState {
                    reported: t.reported,
                    current: t.current,
                    streak: t.streak,
                })
        },
        |table, ip| {
            doc.backends
                .iter()
                .find(|b| b.table == table && b.ip.parse().ok() == Some(ip))
                .map(|b| b.healthy)
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::desired::parse_desired;
    use crate::health::checker::run_round;
    use std::time::Duration;

    const DOC: &str = r#"
[[tables]]
name = "web"
hash_key = "12345678901234561234567890123456"
seed = "34567890123456783456789012345678"
binds = [{ ip = "1.1.1.1", proto = "tcp", port = 80 }]

[[tables.backends]]
ip = "127.0.0.2"
healthchecks = { tcp = 1 }

[[tables.backends]]
ip = "127.0.0.3"
healthchecks = { tcp = 1 }

[[overrides]]
table = "web"
ip = "127.0.0.3"
state = "inactive"
"#;

    #[test]
    fn overrides_state_decides_what_is_checked_and_docs_carry_over() {
        let d = parse_desired(DOC.as_bytes(), "doc").unwrap();
        let specs = checked_specs(&d);
        let mut st = HealthState::new(3, &specs);
        assert_eq!(
            st.targets().len(),
            1,
            "the inactive override is not checked"
        );
        // Port 1 on loopback: refused, so the first result makes it down.
        let r = run_round(&st.targets(), Duration::from_millis(500), 1, None);
        let ev = st.record(r);
        assert_eq!(ev.len(), 1);
        let doc = health_doc(&st, "c1", 7, 3, 1);
        assert_eq!(doc.backends.len(), 1);
        assert!(!doc.backends[0].healthy);
        assert_eq!(doc.targets[0].target, "tcp 127.0.0.2:1");
        assert_eq!(doc.targets[0].reported, Some(false));
        let mut next = HealthState::new(3, &specs);
        assert_eq!(seed_from(&mut next, &doc), 1);
        let again = health_doc(&next, "c2", 9, 3, 2);
        assert!(same_results(&doc, &again));
        assert_eq!(again.targets, doc.targets);
        // A new leader's first round after seeding is no flip.
        let r = run_round(&next.targets(), Duration::from_millis(500), 1, None);
        assert!(next.record(r).is_empty());
    }
}
