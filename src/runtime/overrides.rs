//! Operator overrides of backends (console `set backend ...`) and health observations (from
//! the health checker), applied on top of the loaded configuration every time a snapshot
//! is built. A reload of the config file keeps them; a backend that leaves the file takes
//! its overrides with it.
//!
//! A backend's health is, first match wins: the operator's `health up|down`, else the last
//! health-check observation, else `healthy` as the config file says.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::config::Config;
use crate::table::{BackendState, ForwardingTable};

/// Most weight a backend can have (as in the config file).
pub const MAX_WEIGHT: u32 = 1000;

/// Operator health setting of a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Up,
    Down,
    /// Whatever the health checks say (the default).
    Auto,
}

/// One change to a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    State(BackendState),
    Weight(u32),
    Health(Health),
    /// Drop every override of the backend: back to the config file's values.
    Clear,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::State(s) => write!(f, "state {}", s.as_str()),
            Change::Weight(w) => write!(f, "weight {w}"),
            Change::Health(Health::Up) => write!(f, "health up"),
            Change::Health(Health::Down) => write!(f, "health down"),
            Change::Health(Health::Auto) => write!(f, "health auto"),
            Change::Clear => write!(f, "overrides cleared"),
        }
    }
}

/// What the operator set on one backend; `None` fields follow the config file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackendOverride {
    pub state: Option<BackendState>,
    pub weight: Option<u32>,
    /// `Some(up)` pins the health; `None` is "auto".
    pub health: Option<bool>,
}

impl BackendOverride {
    pub fn is_empty(&self) -> bool {
        *self == BackendOverride::default()
    }

    /// Short description, e.g. `state draining, weight 2`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(s) = self.state {
            parts.push(format!("state {}", s.as_str()));
        }
        if let Some(w) = self.weight {
            parts.push(format!("weight {w}"));
        }
        if let Some(h) = self.health {
            parts.push(format!("health {}", if h { "up" } else { "down" }));
        }
        parts.join(", ")
    }
}

/// Where a backend's health comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthSource {
    /// `set backend ... health up|down`.
    Operator,
    /// The health checker's last observation.
    Check,
    /// The config file's `healthy`.
    Config,
}

impl HealthSource {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthSource::Operator => "operator",
            HealthSource::Check => "check",
            HealthSource::Config => "config",
        }
    }
}

type Key = (String, IpAddr);

/// Operator overrides as a fleet's desired document gives them: (table, backend) and what
/// is set ([`Overrides::with_operator`]).
pub type OperatorRules = Vec<((String, IpAddr), BackendOverride)>;

/// Every override and observation, keyed by (table name, backend address).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    set: BTreeMap<Key, BackendOverride>,
    observed: BTreeMap<Key, bool>,
}

/// The console's rule for backend changes (also `rondo fleet set`'s): second chance covers
/// one changed hop, so a change that leaves this backend not active (a state change, or
/// clearing an override back to a table that says so) while another backend of the table
/// is not active either is refused unless forced. `after` is the table as the changes
/// would make it; `finish` says how to finish the other change. The refusal, or `None`.
pub fn second_change_refusal(
    after: &ForwardingTable,
    ip: IpAddr,
    changes: &[Change],
    finish: &str,
) -> Option<String> {
    let not_active: Vec<String> = after
        .spec
        .backends
        .iter()
        .filter(|b| b.state != BackendState::Active)
        .map(|b| format!("{} {}", b.ip, b.state.as_str()))
        .collect();
    let leaves_not_active = changes.iter().any(|c| match c {
        Change::State(s) => *s != BackendState::Active,
        Change::Clear => after
            .spec
            .backends
            .iter()
            .any(|b| b.ip == ip && b.state != BackendState::Active),
        _ => false,
    });
    (leaves_not_active && not_active.len() > 1).then(|| {
        format!(
            "this would leave {} backends of table {:?} not active ({}). Second chance covers one changed hop only: while two backends change at once, a connection whose primary and secondary both move is reset. Finish the other change first ({finish}), or add `force` to do it anyway",
            not_active.len(),
            after.spec.name,
            not_active.join(", ")
        )
    })
}

/// The table called `name`, or an error listing the tables there are.
pub fn find_table<'a>(cfg: &'a Config, name: &str) -> Result<&'a ForwardingTable, String> {
    cfg.tables
        .iter()
        .find(|t| t.spec.name == name)
        .ok_or_else(|| {
            let names: Vec<&str> = cfg.tables.iter().map(|t| t.spec.name.as_str()).collect();
            format!("no table {name:?}; tables are: {}", names.join(", "))
        })
}

/// Check that `table` has a backend `ip`.
pub fn check_backend(cfg: &Config, table: &str, ip: IpAddr) -> Result<(), String> {
    let t = find_table(cfg, table)?;
    if t.spec.backends.iter().any(|b| b.ip == ip) {
        Ok(())
    } else {
        let ips: Vec<String> = t.spec.backends.iter().map(|b| b.ip.to_string()).collect();
        Err(format!(
            "table {table:?} has no backend {ip}; its backends are: {}",
            ips.join(", ")
        ))
    }
}

impl Overrides {
    /// The operator's override of a backend, if any.
    pub fn get(&self, table: &str, ip: IpAddr) -> Option<&BackendOverride> {
        self.set.get(&(table.to_string(), ip))
    }

    /// The health checker's last word on a backend, if any.
    pub fn observation(&self, table: &str, ip: IpAddr) -> Option<bool> {
        self.observed.get(&(table.to_string(), ip)).copied()
    }

    /// Every override, in (table, address) order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, IpAddr, &BackendOverride)> {
        self.set.iter().map(|((t, ip), o)| (t.as_str(), *ip, o))
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// These overrides with `change` made to backend `ip` of `table`. `cfg` (the loaded
    /// config) must have that backend; a weight must be 1..=1000.
    pub fn with(
        &self,
        cfg: &Config,
        table: &str,
        ip: IpAddr,
        change: Change,
    ) -> Result<Overrides, String> {
        check_backend(cfg, table, ip)?;
        let mut next = self.clone();
        let key = (table.to_string(), ip);
        let o = next.set.entry(key.clone()).or_default();
        match change {
            Change::State(s) => o.state = Some(s),
            Change::Weight(w) if (1..=MAX_WEIGHT).contains(&w) => o.weight = Some(w),
            Change::Weight(w) => {
                return Err(format!(
                    "weight {w}: expected 1..={MAX_WEIGHT} (set the state to inactive to take a backend out)"
                ))
            }
            Change::Health(Health::Up) => o.health = Some(true),
            Change::Health(Health::Down) => o.health = Some(false),
            Change::Health(Health::Auto) => o.health = None,
            Change::Clear => *o = BackendOverride::default(),
        }
        if o.is_empty() {
            next.set.remove(&key);
        }
        Ok(next)
    }

    /// These overrides with the operator's part replaced by `rules` (a fleet's desired
    /// document: its overrides replace the ones in force wholesale); observations stay.
    pub fn with_operator(
        &self,
        rules: impl IntoIterator<Item = ((String, IpAddr), BackendOverride)>,
    ) -> Overrides {
        Overrides {
            set: rules.into_iter().filter(|(_, o)| !o.is_empty()).collect(),
            observed: self.observed.clone(),
        }
    }

    /// Record a health-check result. Returns whether it differs from the previous one.
    pub fn observe(&mut self, table: &str, ip: IpAddr, healthy: bool) -> bool {
        self.observed.insert((table.to_string(), ip), healthy) != Some(healthy)
    }

    /// Where the health of a backend comes from.
    pub fn health_source(&self, table: &str, ip: IpAddr) -> HealthSource {
        let key = (table.to_string(), ip);
        if self.set.get(&key).and_then(|o| o.health).is_some() {
            HealthSource::Operator
        } else if self.observed.contains_key(&key) {
            HealthSource::Check
        } else {
            HealthSource::Config
        }
    }

    /// Forget overrides and observations of backends that `cfg` no longer has; returns what
    /// was dropped (for the log).
    pub fn prune(&mut self, cfg: &Config) -> Vec<(String, IpAddr)> {
        let present = |(t, ip): &Key| check_backend(cfg, t, *ip).is_ok();
        let dropped: Vec<Key> = self.set.keys().filter(|k| !present(k)).cloned().collect();
        for k in &dropped {
            self.set.remove(k);
        }
        self.observed.retain(|k, _| present(k));
        dropped
    }

    /// `cfg` with every override and observation applied, the changed tables rebuilt with
    /// their own row policy. Fails, naming the table, when a table cannot be rebuilt (a
    /// table read from a GLB .bin has no seed; GLB tables take no weights; no backend left).
    pub fn apply(&self, mut cfg: Config) -> Result<Config, String> {
        for t in &mut cfg.tables {
            let mut spec = t.spec.clone();
            for b in &mut spec.backends {
                let key = (spec.name.clone(), b.ip);
                if let Some(h) = self.observed.get(&key) {
                    b.healthy = *h;
                }
                if let Some(o) = self.set.get(&key) {
                    if let Some(s) = o.state {
                        b.state = s;
                    }
                    if let Some(w) = o.weight {
                        b.weight = w;
                    }
                    if let Some(h) = o.health {
                        b.healthy = h;
                    }
                }
            }
            if spec != t.spec {
                let name = spec.name.clone();
                *t = ForwardingTable::build(spec, t.policy)
                    .map_err(|e| format!("cannot apply backend changes to table {name:?}: {e}"))?;
            }
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::config_from_str;

    fn cfg() -> Config {
        let toml = crate::config::testing::web_table(
            r#"[{ ip = "10.1.0.1" }, { ip = "10.1.0.2" }, { ip = "10.1.0.3", healthy = false }]"#,
        );
        config_from_str(&toml, "test.toml").unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn changes_apply_on_top_of_the_config_and_rebuild_rows() {
        let c = cfg();
        let o = Overrides::default()
            .with(
                &c,
                "web",
                ip("10.1.0.1"),
                Change::State(BackendState::Draining),
            )
            .unwrap()
            .with(&c, "web", ip("10.1.0.2"), Change::Weight(3))
            .unwrap();
        let out = o.apply(c.clone()).unwrap();
        let b = &out.tables[0].spec.backends;
        assert_eq!(b[0].state, BackendState::Draining);
        assert_eq!(b[1].weight, 3);
        assert_ne!(out.tables[0].rows(), c.tables[0].rows(), "rows rebuilt");
        assert!(out.tables[0].rows().chunks(2).all(|r| r[0] != 0));
        assert_eq!(
            o.get("web", ip("10.1.0.1")).unwrap().describe(),
            "state draining"
        );
        // Clearing gives the config back, rows included.
        let back = o
            .with(&c, "web", ip("10.1.0.1"), Change::Clear)
            .unwrap()
            .with(&c, "web", ip("10.1.0.2"), Change::Clear)
            .unwrap();
        assert!(back.is_empty());
        assert_eq!(back.apply(c.clone()).unwrap().tables[0], c.tables[0]);
    }

    #[test]
    fn health_operator_beats_check_beats_config() {
        let c = cfg();
        let down = ip("10.1.0.3");
        let mut o = Overrides::default();
        assert_eq!(o.health_source("web", down), HealthSource::Config);
        assert!(o.observe("web", down, true));
        assert!(!o.observe("web", down, true), "same result is no change");
        assert_eq!(o.health_source("web", down), HealthSource::Check);
        assert!(o.apply(c.clone()).unwrap().tables[0].spec.backends[2].healthy);
        let o = o
            .with(&c, "web", down, Change::Health(Health::Down))
            .unwrap();
        assert_eq!(o.health_source("web", down), HealthSource::Operator);
        assert!(!o.apply(c.clone()).unwrap().tables[0].spec.backends[2].healthy);
        let o = o
            .with(&c, "web", down, Change::Health(Health::Auto))
            .unwrap();
        assert_eq!(o.health_source("web", down), HealthSource::Check);
        assert!(o.is_empty());
    }

    #[test]
    fn bad_changes_name_what_is_wrong() {
        let c = cfg();
        let o = Overrides::default();
        let e = o
            .with(&c, "nope", ip("10.1.0.1"), Change::Weight(2))
            .unwrap_err();
        assert!(e.contains("no table \"nope\"") && e.contains("web"), "{e}");
        let e = o
            .with(&c, "web", ip("10.9.9.9"), Change::Weight(2))
            .unwrap_err();
        assert!(
            e.contains("no backend 10.9.9.9") && e.contains("10.1.0.2"),
            "{e}"
        );
        for w in [0, MAX_WEIGHT + 1] {
            let e = o
                .with(&c, "web", ip("10.1.0.1"), Change::Weight(w))
                .unwrap_err();
            assert!(e.contains("1..=1000"), "{e}");
        }
        // Every backend inactive: the rebuild fails, naming the table.
        let mut all = o.clone();
        for b in ["10.1.0.1", "10.1.0.2", "10.1.0.3"] {
            all = all
                .with(&c, "web", ip(b), Change::State(BackendState::Inactive))
                .unwrap();
        }
        let e = all.apply(c).unwrap_err();
        assert!(e.contains("\"web\"") && e.contains("no backend"), "{e}");
    }

    #[test]
    fn prune_drops_backends_that_left_the_file() {
        let c = cfg();
        let mut o = Overrides::default()
            .with(&c, "web", ip("10.1.0.1"), Change::Weight(2))
            .unwrap();
        o.observe("web", ip("10.1.0.1"), false);
        let mut smaller = c.clone();
        smaller.tables[0].spec.backends.remove(0);
        assert_eq!(o.prune(&c), vec![]);
        assert_eq!(o.prune(&smaller), vec![("web".to_string(), ip("10.1.0.1"))]);
        assert!(o.is_empty());
        assert_eq!(o.observation("web", ip("10.1.0.1")), None);
    }
}
