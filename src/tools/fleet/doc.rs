//! The desired document as `rondo fleet` handles it: parsed, checked by building every
//! table (with the default director settings, so a document that cannot build is refused
//! before it reaches etcd), and its overrides kept as the console keeps them
//! (`src/runtime/overrides.rs`: the same changes, the same checks, the same refusal rule).

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::config::desired::{parse_desired, Desired, OverrideRule};
use crate::runtime::overrides::{
    second_change_refusal, BackendOverride, Change, Health, MAX_WEIGHT,
};
use crate::table::{BackendState, ForwardingTable, RowPolicy, TableSpec};

/// The row policy a document is checked with: a native config's default (`hops = 2`).
pub const CHECK_POLICY: RowPolicy = RowPolicy::Native { hops: 2 };

/// A parsed, checked desired document.
#[derive(Debug, Clone)]
pub struct Doc {
    pub bytes: Vec<u8>,
    pub desired: Desired,
    /// The tables as written, built (no overrides).
    pub base: Vec<ForwardingTable>,
    /// With the overrides applied: what a director with default settings forwards with.
    pub effective: Vec<ForwardingTable>,
}

fn build(specs: &[TableSpec], what: &str) -> Result<Vec<ForwardingTable>, String> {
    specs
        .iter()
        .map(|s| {
            ForwardingTable::build(s.clone(), CHECK_POLICY)
                .map_err(|e| format!("{what}: table {:?} cannot be built: {e}", s.name))
        })
        .collect()
}

impl Doc {
    /// Parse `bytes` (`what` names the document in errors) and build every table, with
    /// and without its overrides.
    pub fn parse(bytes: Vec<u8>, what: &str) -> Result<Doc, String> {
        let desired = parse_desired(&bytes, what).map_err(|e| e.to_string())?;
        let base = build(&desired.specs, what)?;
        let effective = Overrides::from_rules(&desired.overrides)
            .apply(&base)
            .map_err(|e| format!("{what}: {e}"))?;
        Ok(Doc {
            bytes,
            desired,
            base,
            effective,
        })
    }

    pub fn overrides(&self) -> Overrides {
        Overrides::from_rules(&self.desired.overrides)
    }
}

/// The document's overrides, keyed by (table, backend address), as the console keeps them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub set: BTreeMap<(String, IpAddr), BackendOverride>,
}

/// The table called `name` among `tables`, or an error listing the tables there are.
pub fn find_table<'a>(
    tables: &'a [ForwardingTable],
    name: &str,
) -> Result<&'a ForwardingTable, String> {
    tables.iter().find(|t| t.spec.name == name).ok_or_else(|| {
        let names: Vec<&str> = tables.iter().map(|t| t.spec.name.as_str()).collect();
        format!("no table {name:?}; tables are: {}", names.join(", "))
    })
}

fn check_backend(tables: &[ForwardingTable], table: &str, ip: IpAddr) -> Result<(), String> {
    let t = find_table(tables, table)?;
    if t.spec.backends.iter().any(|b| b.ip == ip) {
        return Ok(());
    }
    let ips: Vec<String> = t.spec.backends.iter().map(|b| b.ip.to_string()).collect();
    Err(format!(
        "table {table:?} has no backend {ip}; its backends are: {}",
        ips.join(", ")
    ))
}

impl Overrides {
    pub fn from_rules(rules: &[OverrideRule]) -> Overrides {
        let set = rules
            .iter()
            .map(|r| {
                (
                    (r.table.clone(), r.ip),
                    BackendOverride {
                        state: r.state,
                        weight: r.weight,
                        health: r.health,
                    },
                )
            })
            .collect();
        Overrides { set }
    }

    /// In (table, address) order.
    pub fn to_rules(&self) -> Vec<OverrideRule> {
        self.set
            .iter()
            .map(|((table, ip), o)| OverrideRule {
                table: table.clone(),
                ip: *ip,
                state: o.state,
                weight: o.weight,
                health: o.health,
            })
            .collect()
    }

    /// These overrides with `change` made to backend `ip` of `table` (which `base` must
    /// have); a weight must be 1..=1000, as on the console.
    pub fn with(
        &self,
        base: &[ForwardingTable],
        table: &str,
        ip: IpAddr,
        change: Change,
    ) -> Result<Overrides, String> {
        check_backend(base, table, ip)?;
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

    /// `base` with the overrides applied, changed tables rebuilt with their own policy.
    pub fn apply(&self, base: &[ForwardingTable]) -> Result<Vec<ForwardingTable>, String> {
        let mut out = Vec::with_capacity(base.len());
        for t in base {
            let mut spec = t.spec.clone();
            for b in &mut spec.backends {
                if let Some(o) = self.set.get(&(spec.name.clone(), b.ip)) {
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
            if spec == t.spec {
                out.push(t.clone());
            } else {
                let name = spec.name.clone();
                out.push(
                    ForwardingTable::build(spec, t.policy).map_err(|e| {
                        format!("cannot apply the overrides to table {name:?}: {e}")
                    })?,
                );
            }
        }
        Ok(out)
    }
}

/// The console's refusal rule ([`second_change_refusal`]), for `rondo fleet set`.
pub fn refusal(after: &ForwardingTable, ip: IpAddr, changes: &[Change]) -> Option<String> {
    second_change_refusal(after, ip, changes, "set it active with `rondo fleet set`")
}

/// One change word of `set backend`: `state=S`, `weight=W`, `health=up|down|auto`.
pub fn parse_change(word: &str) -> Result<Change, String> {
    let Some((k, v)) = word.split_once('=') else {
        return Err(format!(
            "expected state=S, weight=W or health=up|down|auto (and `force`, `dry-run`), got {word:?}"
        ));
    };
    match k {
        "state" => v.parse::<BackendState>().map(Change::State),
        "weight" => v
            .parse::<u32>()
            .map(Change::Weight)
            .map_err(|_| format!("weight: expected 1..={MAX_WEIGHT}, got {v:?}")),
        "health" => match v {
            "up" => Ok(Change::Health(Health::Up)),
            "down" => Ok(Change::Health(Health::Down)),
            "auto" => Ok(Change::Health(Health::Auto)),
            _ => Err(format!("health: expected up, down or auto, got {v:?}")),
        },
        _ => Err(format!(
            "unknown setting {k:?}: expected state, weight or health"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const DOC: &str = r#"
[[tables]]
name = "web"
hash_key = "12345678901234561234567890123456"
seed = "34567890123456783456789012345678"
binds = [{ ip = "1.1.1.1", proto = "tcp", port = 80 }]
backends = [{ ip = "10.1.0.1" }, { ip = "10.1.0.2" }, { ip = "10.1.0.3" }]
"#;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn changes_follow_the_console_rules() {
        let d = Doc::parse(DOC.as_bytes().to_vec(), "doc").unwrap();
        let o = d.overrides();
        let drain = Change::State(BackendState::Draining);
        let one = o.with(&d.base, "web", ip("10.1.0.1"), drain).unwrap();
        let after = one.apply(&d.base).unwrap();
        assert_eq!(refusal(&after[0], ip("10.1.0.1"), &[drain]), None);
        let two = one.with(&d.base, "web", ip("10.1.0.2"), drain).unwrap();
        let after = two.apply(&d.base).unwrap();
        let why = refusal(&after[0], ip("10.1.0.2"), &[drain]).unwrap();
        assert!(why.contains("2 backends") && why.contains("force"), "{why}");
        let e = o.with(&d.base, "web", ip("10.9.9.9"), drain).unwrap_err();
        assert!(e.contains("no backend 10.9.9.9"), "{e}");
        let e = o.with(&d.base, "nope", ip("10.1.0.1"), drain).unwrap_err();
        assert!(e.contains("tables are: web"), "{e}");
        assert!(o
            .with(&d.base, "web", ip("10.1.0.1"), Change::Weight(0))
            .is_err());
        let cleared = two
            .with(&d.base, "web", ip("10.1.0.2"), Change::Clear)
            .unwrap();
        assert_eq!(cleared, one);
        assert_eq!(Overrides::from_rules(&two.to_rules()), two);
    }

    #[test]
    fn change_words_parse() {
        assert_eq!(
            parse_change("state=draining").unwrap(),
            Change::State(BackendState::Draining)
        );
        assert_eq!(parse_change("weight=3").unwrap(), Change::Weight(3));
        assert_eq!(
            parse_change("health=down").unwrap(),
            Change::Health(Health::Down)
        );
        for bad in [
            "state",
            "state=x",
            "weight=-1",
            "health=maybe",
            "colour=red",
        ] {
            assert!(parse_change(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_document_that_cannot_build_is_refused() {
        let bad = DOC.replace(
            "backends = [{ ip = \"10.1.0.1\" }, { ip = \"10.1.0.2\" }, { ip = \"10.1.0.3\" }]",
            "backends = [{ ip = \"10.1.0.1\", state = \"inactive\" }]",
        );
        let r = Doc::parse(bad.into_bytes(), "doc");
        // Either the parser or the builder refuses it, naming the document.
        if let Err(e) = r {
            assert!(e.starts_with("doc"), "{e}");
        }
    }
}
