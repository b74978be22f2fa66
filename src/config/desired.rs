//! A fleet's desired document: what every director of a fleet forwards with, kept in etcd
//! under `<prefix>/desired` (see `src/fleet/README.md`, "The fleet's documents").
//!
//! It is the tables part of a configuration, in either format Rondo reads today, plus the
//! operator's overrides, so one revision says everything a director forwards by:
//! - native TOML: `[[tables]]` exactly as in a config file, and `[[overrides]]`
//!   (`table`, `ip`, optional `state`, `weight`, `health = "up"|"down"`); no other key;
//! - GLB JSON: a `forwarding_table.json` (`{"tables": [...]}`), with an optional top-level
//!   `"overrides"` array of the same objects (GLB's own tools ignore a key they do not use).
//!
//! Director-wide settings (`[director]`: addresses, hash fields, row policy), ports and
//! daemons stay in each director's own config: the tables' fingerprints (see
//! `crate::table::fingerprint`) show whether two directors built the same rows.
//!
//! Parsing is total: any byte string is a [`Desired`] or a [`ConfigError`] naming the
//! document, the line (TOML) or path (JSON) and what was expected.

use std::net::IpAddr;

use serde::Deserialize;

use super::ConfigError;
use crate::table::{glb_json, BackendState, TableSpec};

/// Most weight an override may set (as in a config file).
pub const MAX_WEIGHT: u32 = 1000;

/// How the document is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    NativeToml,
    GlbJson,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::NativeToml => "native TOML",
            Format::GlbJson => "GLB JSON",
        }
    }
}

/// One operator override: what `rondo fleet set backend` wrote for a backend. `None`
/// fields follow the table; `health: Some(up)` pins the health over the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverrideRule {
    pub table: String,
    pub ip: IpAddr,
    pub state: Option<BackendState>,
    pub weight: Option<u32>,
    pub health: Option<bool>,
}

/// A parsed desired document: table specs (rows not built yet: each director builds them
/// with its own `[director] row_policy`) and the overrides.
#[derive(Debug, Clone)]
pub struct Desired {
    pub format: Format,
    pub specs: Vec<TableSpec>,
    pub overrides: Vec<OverrideRule>,
}

/// Parse a desired document. `what` names it in errors (e.g. `etcd /rondo/desired@42` or
/// a file path).
pub fn parse_desired(bytes: &[u8], what: &str) -> Result<Desired, ConfigError> {
    let text = std::str::from_utf8(bytes).map_err(|e| ConfigError::File {
        file: what.to_string(),
        message: format!(
            "not UTF-8 text (byte {}); expected a desired document in native TOML or GLB JSON",
            e.valid_up_to()
        ),
    })?;
    if text.trim_start().starts_with('{') {
        return parse_json(text, what);
    }
    let (specs, overrides) = super::native::parse_desired(text, what)?;
    Ok(Desired {
        format: Format::NativeToml,
        specs,
        overrides,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonOverride {
    table: String,
    ip: String,
    state: Option<String>,
    weight: Option<i64>,
    health: Option<String>,
}

fn parse_json(text: &str, what: &str) -> Result<Desired, ConfigError> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| ConfigError::field(what, Some(e.line()), "", format!("invalid JSON: {e}")))?;
    let specs = glb_json::parse_value(&value, what)?;
    let mut overrides = Vec::new();
    if let Some(list) = value.get("overrides") {
        let Some(list) = list.as_array() else {
            return Err(ConfigError::field(
                what,
                None,
                "overrides",
                "expected an array of {\"table\", \"ip\", \"state\"?, \"weight\"?, \"health\"?} objects",
            ));
        };
        for (i, o) in list.iter().enumerate() {
            let field = format!("overrides[{i}]");
            let o: JsonOverride = serde_json::from_value(o.clone())
                .map_err(|e| ConfigError::field(what, None, &field, e.to_string()))?;
            let rule = json_rule(&o).map_err(|m| ConfigError::field(what, None, &field, m))?;
            check_rule(&specs, &overrides, &rule)
                .map_err(|m| ConfigError::field(what, None, &field, m))?;
            overrides.push(rule);
        }
    }
    Ok(Desired {
        format: Format::GlbJson,
        specs,
        overrides,
    })
}

fn json_rule(o: &JsonOverride) -> Result<OverrideRule, String> {
    let ip =
        o.ip.parse()
            .map_err(|_| format!("ip: expected an IP address, got {:?}", o.ip))?;
    let state = match &o.state {
        None => None,
        Some(s) => Some(
            s.parse::<BackendState>()
                .map_err(|m| format!("state: {m}"))?,
        ),
    };
    let weight = match o.weight {
        None => None,
        Some(w) => match u32::try_from(w) {
            Ok(w) if w <= MAX_WEIGHT => Some(w),
            _ => return Err(format!("weight: expected 0..={MAX_WEIGHT}, got {w}")),
        },
    };
    let health = match o.health.as_deref() {
        None => None,
        Some("up") => Some(true),
        Some("down") => Some(false),
        Some(other) => {
            return Err(format!(
                "health: expected \"up\" or \"down\" (leave it out for the health checks' word), got {other:?}"
            ))
        }
    };
    Ok(OverrideRule {
        table: o.table.clone(),
        ip,
        state,
        weight,
        health,
    })
}

/// Check one override against the document's tables and the overrides before it: the
/// table exists, the address is one of its backends, nothing set twice, something set.
pub fn check_rule(
    specs: &[TableSpec],
    before: &[OverrideRule],
    rule: &OverrideRule,
) -> Result<(), String> {
    let Some(t) = specs.iter().find(|t| t.name == rule.table) else {
        let names: Vec<&str> = specs.iter().map(|t| t.name.as_str()).collect();
        return Err(format!(
            "no table {:?}; tables are: {}",
            rule.table,
            names.join(", ")
        ));
    };
    if !t.backends.iter().any(|b| b.ip == rule.ip) {
        return Err(format!("table {:?} has no backend {}", rule.table, rule.ip));
    }
    if before
        .iter()
        .any(|o| o.table == rule.table && o.ip == rule.ip)
    {
        return Err(format!(
            "a second override for {} in table {:?}: give one per backend",
            rule.ip, rule.table
        ));
    }
    if rule.state.is_none() && rule.weight.is_none() && rule.health.is_none() {
        return Err(format!(
            "the override for {} in table {:?} sets nothing (state, weight or health)",
            rule.ip, rule.table
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOML: &str = r#"
[[tables]]
name = "web"
hash_key = "12345678901234561234567890123456"
seed = "34567890123456783456789012345678"
binds = [{ ip = "1.1.1.1", proto = "tcp", port = 80 }]
backends = [{ ip = "10.1.0.1" }, { ip = "10.1.0.2" }]

[[overrides]]
table = "web"
ip = "10.1.0.2"
state = "draining"
health = "down"
"#;

    #[test]
    fn a_native_document_gives_tables_and_overrides() {
        let d = parse_desired(TOML.as_bytes(), "doc").unwrap();
        assert_eq!(d.format, Format::NativeToml);
        assert_eq!(d.specs.len(), 1);
        assert_eq!(
            d.overrides,
            vec![OverrideRule {
                table: "web".into(),
                ip: "10.1.0.2".parse().unwrap(),
                state: Some(BackendState::Draining),
                weight: None,
                health: Some(false),
            }]
        );
    }

    #[test]
    fn director_settings_in_a_document_are_refused_naming_the_rule() {
        let text = format!("[director]\nhops = 2\n{TOML}");
        let e = parse_desired(text.as_bytes(), "doc")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown field") && e.contains("[[tables]] and [[overrides]] only"),
            "{e}"
        );
        let e = parse_desired(b"forwarding_table = \"x.json\"\n", "doc")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field"), "{e}");
    }

    #[test]
    fn overrides_must_name_a_backend_once_and_set_something() {
        let bad = [
            (
                "table = \"nope\"\nip = \"10.1.0.1\"\nstate = \"draining\"",
                "no table \"nope\"",
            ),
            (
                "table = \"web\"\nip = \"10.9.9.9\"\nstate = \"draining\"",
                "has no backend 10.9.9.9",
            ),
            ("table = \"web\"\nip = \"10.1.0.1\"", "sets nothing"),
            (
                "table = \"web\"\nip = \"10.1.0.1\"\nweight = 1001",
                "overrides[1].weight",
            ),
            (
                "table = \"web\"\nip = \"10.1.0.1\"\nhealth = \"auto\"",
                "expected \"up\" or \"down\"",
            ),
            (
                "table = \"web\"\nip = \"10.1.0.2\"\nweight = 2",
                "a second override",
            ),
        ];
        for (o, want) in bad {
            let text = format!("{TOML}\n[[overrides]]\n{o}\n");
            let e = parse_desired(text.as_bytes(), "doc")
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{o}: {e}");
            assert!(e.starts_with("doc:"), "{e}");
        }
    }

    #[test]
    fn a_glb_json_document_takes_overrides_too() {
        let json = r#"{"tables": [{"name": "t", "hash_key": "12345678901234561234567890123456",
            "seed": "34567890123456783456789012345678",
            "binds": [{"ip": "1.1.1.1", "proto": "tcp", "port": 80}],
            "backends": [{"ip": "10.1.0.1", "state": "active", "healthy": true}]}],
            "overrides": [{"table": "t", "ip": "10.1.0.1", "weight": 3}]}"#;
        let d = parse_desired(json.as_bytes(), "doc").unwrap();
        assert_eq!(d.format, Format::GlbJson);
        assert_eq!(d.overrides[0].weight, Some(3));
        let e = parse_desired(br#"{"tables": [], "overrides": 3}"#, "doc");
        assert!(e.is_err());
    }

    #[test]
    fn any_bytes_are_parsed_or_refused() {
        for b in [
            &b""[..],
            b"\xff\xfe",
            b"{",
            b"[[tables]]",
            b"{\"tables\": 1}",
            b"x = 1",
        ] {
            assert!(parse_desired(b, "doc").is_err(), "{b:?}");
        }
    }
}
