//! GLB's `forwarding_table.json` (the input of
//! `glb-director-cli build-config`): parse into [`TableSpec`]s, and emit
//! them back ([`to_json`], used by the health checker to write the checked JSON).
//!
//! ```json
//! { "tables": [ { "name": "web", "hash_key": "<32 hex>", "seed": "<32 hex>",
//!     "binds":    [ {"ip": "10.0.0.0/24", "proto": "udp", "port_start": 53, "port_end": 54} ],
//!     "backends": [ {"ip": "192.168.50.10", "state": "active", "healthy": true,
//!                    "healthchecks": {"http": 80, "gue": 19523}} ] } ] }
//! ```
//!
//! Parsing walks a [`serde_json::Value`] so that every error names the file, the table
//! (index, and name when it has one), the field and what was expected, e.g.
//! `table.json: tables[1].backends[2].ip: expected an IPv4 or IPv6 address, got "1.2.3"`.
//!
//! Accepted as GLB accepts it: `name` optional (default `table<i>`); `hash_key` and `seed`
//! exactly 32 hex digits; a bind `ip` is an address or `address/prefix` (host bits kept);
//! `port`, or `port_start` and `port_end` (inclusive); `proto` `tcp` | `udp`; `state`
//! `active` | `draining` | `filling` | `inactive`; `healthy` missing or not a boolean
//! means down; `healthchecks` `{http, http_uri, tcp, gue}`; unknown keys are ignored.
//! Stricter than GLB (which silently misreads these): non-hex key digits, a bind with
//! both `port` and `port_start`/`port_end`, `port_start > port_end`, non-integer ports.
//! Rondo extension: an optional backend `weight` (integer >= 1, default 1) for native
//! tables; GLB tables refuse weights other than 1 when built.

use super::{Backend, BackendState, Bind, HealthChecks, Proto, TableError, TableSpec};
use crate::hash::{key_to_hex, parse_hex_key};
use serde_json::{Map, Value};
use std::net::IpAddr;
use std::path::Path;

/// Parse the text of a GLB forwarding-table JSON file; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Vec<TableSpec>, TableError> {
    let value: Value = serde_json::from_str(text).map_err(|e| TableError::Format {
        file: file.to_string(),
        reason: format!("invalid JSON: {e}"),
    })?;
    parse_value(&value, file)
}

/// Read and [`parse`] a GLB forwarding-table JSON file.
pub fn read(path: &Path) -> Result<Vec<TableSpec>, TableError> {
    let file = path.display().to_string();
    let text = crate::sys::file::read_text_bounded(
        path,
        crate::sys::file::CONFIG_LIMIT,
        "a JSON forwarding table",
    )?;
    parse(&text, &file)
}

/// Parse an already-decoded JSON document (see [`parse`]).
pub fn parse_value(value: &Value, file: &str) -> Result<Vec<TableSpec>, TableError> {
    let fail = |path: &str, what: String| TableError::Format {
        file: file.to_string(),
        reason: format!("{path}: {what}"),
    };
    let Some(root) = value.as_object() else {
        return Err(TableError::Format {
            file: file.to_string(),
            reason: format!(
                "expected a JSON object with a \"tables\" array, got {}",
                describe(value)
            ),
        });
    };
    let tables = match root.get("tables") {
        None => {
            return Err(fail(
                "tables",
                "missing; expected an array of forwarding tables".to_string(),
            ))
        }
        Some(Value::Array(a)) => a,
        Some(other) => {
            return Err(fail(
                "tables",
                format!("expected an array of tables, got {}", describe(other)),
            ))
        }
    };
    tables
        .iter()
        .enumerate()
        .map(|(i, t)| parse_table(file, i, t))
        .collect()
}

/// Where in the document an error is.
struct Ctx<'a> {
    file: &'a str,
    table: usize,
    name: Option<&'a str>,
}

impl Ctx<'_> {
    /// An error at `tables[i]<sub>`; `sub` starts with `.` or is empty.
    fn err(&self, sub: &str, what: impl std::fmt::Display) -> TableError {
        let named = match self.name {
            Some(n) => format!(" (table {n:?})"),
            None => String::new(),
        };
        TableError::Format {
            file: self.file.to_string(),
            reason: format!("tables[{}]{sub}{named}: {what}", self.table),
        }
    }

    fn object<'v>(&self, sub: &str, v: &'v Value) -> Result<&'v Map<String, Value>, TableError> {
        v.as_object()
            .ok_or_else(|| self.err(sub, format!("expected an object, got {}", describe(v))))
    }

    fn required<'v>(
        &self,
        sub: &str,
        obj: &'v Map<String, Value>,
        key: &str,
        expected: &str,
    ) -> Result<&'v Value, TableError> {
        obj.get(key).ok_or_else(|| {
            self.err(
                &format!("{sub}.{key}"),
                format!("missing; expected {expected}"),
            )
        })
    }

    fn string<'v>(
        &self,
        sub: &str,
        obj: &'v Map<String, Value>,
        key: &str,
        expected: &str,
    ) -> Result<&'v str, TableError> {
        let v = self.required(sub, obj, key, expected)?;
        v.as_str().ok_or_else(|| {
            self.err(
                &format!("{sub}.{key}"),
                format!("expected {expected}, got {}", describe(v)),
            )
        })
    }

    fn array<'v>(
        &self,
        obj: &'v Map<String, Value>,
        key: &str,
    ) -> Result<&'v Vec<Value>, TableError> {
        let expected = format!("an array of {key}");
        let v = self.required("", obj, key, &expected)?;
        v.as_array().ok_or_else(|| {
            self.err(
                &format!(".{key}"),
                format!("expected {expected}, got {}", describe(v)),
            )
        })
    }

    fn key(&self, obj: &Map<String, Value>, key: &str) -> Result<[u8; 16], TableError> {
        let s = self.string("", obj, key, "32 hex digits")?;
        parse_hex_key(s).map_err(|m| self.err(&format!(".{key}"), m))
    }

    fn port(&self, path: &str, v: &Value) -> Result<u16, TableError> {
        v.as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| {
                self.err(
                    path,
                    format!(
                        "expected a port number from 0 to 65535, got {}",
                        describe(v)
                    ),
                )
            })
    }

    /// An optional port (`null` counts as absent).
    fn opt_port(
        &self,
        sub: &str,
        obj: &Map<String, Value>,
        key: &str,
    ) -> Result<Option<u16>, TableError> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => self.port(&format!("{sub}.{key}"), v).map(Some),
        }
    }
}

/// A short description of a JSON value for "got ..." in messages.
fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            if s.chars().count() > 64 {
                let head: String = s.chars().take(61).collect();
                format!("{:?}", head + "...")
            } else {
                format!("{s:?}")
            }
        }
        Value::Array(_) => "an array".to_string(),
        Value::Object(_) => "an object".to_string(),
    }
}

fn parse_table(file: &str, i: usize, v: &Value) -> Result<TableSpec, TableError> {
    let mut cx = Ctx {
        file,
        table: i,
        name: None,
    };
    let obj = cx.object("", v)?;
    let name = match obj.get("name") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.is_empty() => Some(s.as_str()),
        Some(other) => {
            return Err(cx.err(
                ".name",
                format!("expected a non-empty string, got {}", describe(other)),
            ))
        }
    };
    cx.name = name;
    let hash_key = cx.key(obj, "hash_key")?;
    let seed = cx.key(obj, "seed")?;
    let binds = cx
        .array(obj, "binds")?
        .iter()
        .enumerate()
        .map(|(j, b)| parse_bind(&cx, j, b))
        .collect::<Result<Vec<_>, _>>()?;
    let backends = cx
        .array(obj, "backends")?
        .iter()
        .enumerate()
        .map(|(j, b)| parse_backend(&cx, j, b))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(TableSpec {
        name: name.map_or_else(|| format!("table{i}"), str::to_string),
        hash_key,
        seed: Some(seed),
        binds,
        backends,
        quic_lb: None,
    })
}

/// `addr` or `addr/prefix` (decimal prefix no longer than the address).
fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let ip: IpAddr = addr.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let prefix_len = match prefix {
        None => max,
        Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
            p.parse::<u8>().ok().filter(|&n| n <= max)?
        }
        Some(_) => return None,
    };
    Some((ip, prefix_len))
}

fn parse_bind(cx: &Ctx, j: usize, v: &Value) -> Result<Bind, TableError> {
    let sub = format!(".binds[{j}]");
    let obj = cx.object(&sub, v)?;
    let ip = cx.string(&sub, obj, "ip", "an IPv4 or IPv6 address or CIDR")?;
    let (addr, prefix_len) = parse_cidr(ip).ok_or_else(|| {
        cx.err(
            &format!("{sub}.ip"),
            format!(
                "expected an IPv4 or IPv6 address, or a CIDR with a prefix length of at most \
                 32 (IPv4) or 128 (IPv6), got {ip:?}"
            ),
        )
    })?;
    let proto = match cx.string(&sub, obj, "proto", "\"tcp\" or \"udp\"")? {
        "tcp" => Proto::Tcp,
        "udp" => Proto::Udp,
        other => {
            return Err(cx.err(
                &format!("{sub}.proto"),
                format!("expected \"tcp\" or \"udp\", got {other:?}"),
            ))
        }
    };
    let has_range = obj.contains_key("port_start") || obj.contains_key("port_end");
    let (port_start, port_end) = match obj.get("port") {
        Some(p) => {
            if has_range {
                return Err(cx.err(
                    &sub,
                    "has both \"port\" and \"port_start\"/\"port_end\"; use one or the other",
                ));
            }
            let p = cx.port(&format!("{sub}.port"), p)?;
            (p, p)
        }
        None => {
            let what = "a port number (give \"port\", or both \"port_start\" and \"port_end\")";
            let start = cx.required(&sub, obj, "port_start", what)?;
            let end = cx.required(&sub, obj, "port_end", what)?;
            let start = cx.port(&format!("{sub}.port_start"), start)?;
            let end = cx.port(&format!("{sub}.port_end"), end)?;
            if start > end {
                return Err(cx.err(
                    &sub,
                    format!("port_start {start} is greater than port_end {end}"),
                ));
            }
            (start, end)
        }
    };
    Ok(Bind {
        addr,
        prefix_len,
        proto,
        port_start,
        port_end,
    })
}

fn parse_backend(cx: &Ctx, j: usize, v: &Value) -> Result<Backend, TableError> {
    let sub = format!(".backends[{j}]");
    let obj = cx.object(&sub, v)?;
    let ip_str = cx.string(&sub, obj, "ip", "an IPv4 or IPv6 address")?;
    let ip: IpAddr = ip_str.parse().map_err(|_| {
        cx.err(
            &format!("{sub}.ip"),
            format!("expected an IPv4 or IPv6 address, got {ip_str:?}"),
        )
    })?;
    let states = "one of \"active\", \"draining\", \"filling\", \"inactive\"";
    let state_v = cx.required(&sub, obj, "state", states)?;
    let state = state_v
        .as_str()
        .and_then(|s| s.parse::<BackendState>().ok())
        .ok_or_else(|| {
            cx.err(
                &format!("{sub}.state"),
                format!("expected {states}, got {}", describe(state_v)),
            )
        })?;
    // GLB: a missing or non-boolean `healthy` means down.
    let healthy = matches!(obj.get("healthy"), Some(Value::Bool(true)));
    let weight = match obj.get("weight") {
        None | Some(Value::Null) => 1,
        Some(w) => w
            .as_u64()
            .and_then(|w| u32::try_from(w).ok())
            .filter(|&w| w >= 1)
            .ok_or_else(|| {
                cx.err(
                    &format!("{sub}.weight"),
                    format!(
                        "expected an integer from 1 to {}, got {}",
                        u32::MAX,
                        describe(w)
                    ),
                )
            })?,
    };
    let healthchecks = match obj.get("healthchecks") {
        None | Some(Value::Null) => HealthChecks::default(),
        Some(hc) => {
            let hsub = format!("{sub}.healthchecks");
            let h = cx.object(&hsub, hc)?;
            let http_uri = match h.get("http_uri") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(other) => {
                    return Err(cx.err(
                        &format!("{hsub}.http_uri"),
                        format!("expected a string, got {}", describe(other)),
                    ))
                }
            };
            HealthChecks {
                http: cx.opt_port(&hsub, h, "http")?,
                http_uri,
                tcp: cx.opt_port(&hsub, h, "tcp")?,
                gue: cx.opt_port(&hsub, h, "gue")?,
            }
        }
    };
    Ok(Backend {
        ip,
        state,
        healthy,
        weight,
        healthchecks,
    })
}

/// Emit `specs` as a GLB forwarding-table JSON document that [`parse`] reads back to the
/// same specs (provided each has a seed: a table without one, i.e. decoded from a .bin,
/// is written without `seed`, which GLB and [`parse`] then refuse).
///
/// Binds are written as `ip` (with `/prefix` only when shorter than the address) and
/// `port` when the range is a single port; `weight` only when not 1; `healthchecks` only
/// when some check is set.
pub fn to_json(specs: &[TableSpec]) -> Value {
    let tables = specs.iter().map(table_json).collect();
    let mut root = Map::new();
    root.insert("tables".into(), Value::Array(tables));
    Value::Object(root)
}

fn table_json(t: &TableSpec) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), t.name.clone().into());
    m.insert("hash_key".into(), key_to_hex(&t.hash_key).into());
    if let Some(seed) = &t.seed {
        m.insert("seed".into(), key_to_hex(seed).into());
    }
    let binds = t
        .binds
        .iter()
        .map(|b| {
            let mut o = Map::new();
            let full = if b.addr.is_ipv4() { 32 } else { 128 };
            let ip = if b.prefix_len == full {
                b.addr.to_string()
            } else {
                format!("{}/{}", b.addr, b.prefix_len)
            };
            o.insert("ip".into(), ip.into());
            o.insert("proto".into(), b.proto.as_str().into());
            if b.port_start == b.port_end {
                o.insert("port".into(), b.port_start.into());
            } else {
                o.insert("port_start".into(), b.port_start.into());
                o.insert("port_end".into(), b.port_end.into());
            }
            Value::Object(o)
        })
        .collect();
    m.insert("binds".into(), Value::Array(binds));
    let backends = t
        .backends
        .iter()
        .map(|b| {
            let mut o = Map::new();
            o.insert("ip".into(), b.ip.to_string().into());
            o.insert("state".into(), b.state.as_str().into());
            o.insert("healthy".into(), b.healthy.into());
            if b.weight != 1 {
                o.insert("weight".into(), b.weight.into());
            }
            let hc = &b.healthchecks;
            if *hc != HealthChecks::default() {
                let mut h = Map::new();
                for (k, v) in [("http", hc.http), ("tcp", hc.tcp), ("gue", hc.gue)] {
                    if let Some(p) = v {
                        h.insert(k.into(), p.into());
                    }
                }
                if let Some(uri) = &hc.http_uri {
                    h.insert("http_uri".into(), uri.clone().into());
                }
                o.insert("healthchecks".into(), Value::Object(h));
            }
            Value::Object(o)
        })
        .collect();
    m.insert("backends".into(), Value::Array(backends));
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "12345678901234561234567890123456";

    fn doc(backends: &str, binds: &str) -> String {
        format!(
            r#"{{"tables": [{{"hash_key": "{KEY}", "seed": "{KEY}", "binds": [{binds}],
                "backends": [{backends}]}}, {{"name": "web", "hash_key": "{KEY}", "seed": "{KEY}",
                "binds": [{binds}], "backends": [{backends}]}}]}}"#
        )
    }

    fn err(text: &str) -> String {
        parse(text, "table.json").unwrap_err().to_string()
    }

    #[test]
    fn full_example() {
        let text = format!(
            r#"{{ "tables": [ {{ "name": "example", "hash_key": "{KEY}", "seed": "{KEY}",
            "binds": [ {{"ip": "1.1.1.1", "proto": "tcp", "port": 80}},
                       {{"ip": "10.0.0.5/24", "proto": "udp", "port_start": 53, "port_end": 54}},
                       {{"ip": "fdb4:98ce:52d4::42", "proto": "tcp", "port": 80}} ],
            "backends": [ {{"ip": "192.168.50.10", "state": "active", "healthy": true,
                            "healthchecks": {{"http": 80, "gue": 19523, "http_uri": "/_ping"}}}},
                          {{"ip": "192.168.50.11", "state": "draining"}},
                          {{"ip": "fd00::1", "state": "filling", "healthy": "yes"}},
                          {{"ip": "192.168.50.12", "state": "inactive", "healthy": true, "extra": 1}} ]
            }}, {{ "hash_key": "{KEY}", "seed": "{KEY}", "binds": [], "backends": [] }} ] }}"#
        );
        let specs = parse(&text, "t.json").unwrap();
        assert_eq!(specs.len(), 2);
        let t = &specs[0];
        assert_eq!(t.name, "example");
        assert_eq!(specs[1].name, "table1");
        assert_eq!(t.binds[1].addr.to_string(), "10.0.0.5");
        assert_eq!(t.binds[1].prefix_len, 24);
        assert_eq!((t.binds[1].port_start, t.binds[1].port_end), (53, 54));
        assert_eq!(t.binds[2].prefix_len, 128);
        assert_eq!(t.backends[0].healthchecks.gue, Some(19523));
        assert_eq!(
            t.backends[0].healthchecks.http_uri.as_deref(),
            Some("/_ping")
        );
        assert!(!t.backends[1].healthy, "missing healthy = down");
        assert!(!t.backends[2].healthy, "non-bool healthy = down");
        assert_eq!(t.backends[3].state, BackendState::Inactive);
        // Emit and parse back.
        let again = parse_value(&to_json(&specs), "t.json").unwrap();
        assert_eq!(again, specs);
    }

    #[test]
    fn precise_errors() {
        let ok_bind = r#"{"ip": "1.1.1.1", "proto": "tcp", "port": 80}"#;
        let ok_be = r#"{"ip": "1.2.3.4", "state": "active", "healthy": true}"#;
        let bad_ip = format!(r#"{ok_be}, {ok_be}, {{"ip": "1.2.3", "state": "active"}}"#);
        let e = err(&doc(&bad_ip, ok_bind));
        assert_eq!(
            e,
            "table.json: tables[0].backends[2].ip: expected an IPv4 or IPv6 address, got \"1.2.3\""
        );
        let bad_state = r#"{"ip": "1.2.3.4", "state": "up"}"#;
        let text = doc(ok_be, ok_bind).replacen(ok_be, bad_state, 2);
        let text = text.replacen(bad_state, ok_be, 1);
        assert_eq!(
            err(&text),
            "table.json: tables[1].backends[0].state (table \"web\"): expected one of \
             \"active\", \"draining\", \"filling\", \"inactive\", got \"up\""
        );
        let cases: &[(&str, &str, &str)] = &[
            (
                ok_be,
                r#"{"ip": "1.1.1.1/33", "proto": "tcp", "port": 80}"#,
                "tables[0].binds[0].ip: expected an IPv4 or IPv6 address, or a CIDR",
            ),
            (
                ok_be,
                r#"{"ip": "1.1.1.1", "proto": "sctp", "port": 80}"#,
                "tables[0].binds[0].proto: expected \"tcp\" or \"udp\", got \"sctp\"",
            ),
            (
                ok_be,
                r#"{"ip": "1.1.1.1", "proto": "tcp", "port": 65536}"#,
                "tables[0].binds[0].port: expected a port number from 0 to 65535, got 65536",
            ),
            (
                ok_be,
                r#"{"ip": "1.1.1.1", "proto": "tcp", "port": "80"}"#,
                "got \"80\"",
            ),
            (
                ok_be,
                r#"{"ip": "1.1.1.1", "proto": "tcp", "port_start": 80}"#,
                "tables[0].binds[0].port_end: missing",
            ),
            (
                ok_be,
                r#"{"ip": "1.1.1.1", "proto": "tcp", "port_start": 81, "port_end": 80}"#,
                "port_start 81 is greater than port_end 80",
            ),
            (
                ok_be,
                r#"{"ip": "1.1.1.1", "proto": "tcp", "port": 80, "port_end": 80}"#,
                "use one or the other",
            ),
            (
                ok_be,
                r#"{"proto": "tcp", "port": 80}"#,
                "tables[0].binds[0].ip: missing",
            ),
            (
                ok_be,
                "[]",
                "tables[0].binds[0]: expected an object, got an array",
            ),
            (
                r#"{"ip": "1.2.3.4", "state": "active", "weight": 0}"#,
                ok_bind,
                "tables[0].backends[0].weight: expected an integer from 1",
            ),
            (
                r#"{"ip": "1.2.3.4", "state": "active", "healthchecks": {"http": -1}}"#,
                ok_bind,
                "tables[0].backends[0].healthchecks.http: expected a port number",
            ),
            (
                r#"{"ip": 7, "state": "active"}"#,
                ok_bind,
                "tables[0].backends[0].ip: expected an IPv4 or IPv6 address, got 7",
            ),
        ];
        for (be, bind, want) in cases {
            let e = err(&doc(be, bind));
            assert!(e.contains(want), "{e:?} should contain {want:?}");
            assert!(e.starts_with("table.json: "), "{e}");
        }
        assert!(err("{").contains("table.json: invalid JSON"));
        assert_eq!(
            err("[]"),
            "table.json: expected a JSON object with a \"tables\" array, got an array"
        );
        assert_eq!(
            err("{}"),
            "table.json: tables: missing; expected an array of forwarding tables"
        );
        let short = doc(ok_be, ok_bind).replacen(KEY, "1234", 1);
        assert_eq!(
            err(&short),
            "table.json: tables[0].hash_key: expected exactly 32 hex digits (16 bytes), got 4 characters"
        );
        let no_seed = r#"{"tables": [{"name": "x", "hash_key": "12345678901234561234567890123456", "binds": [], "backends": []}]}"#;
        assert_eq!(
            err(no_seed),
            "table.json: tables[0].seed (table \"x\"): missing; expected 32 hex digits"
        );
        let no_backends = r#"{"tables": [{"hash_key": "12345678901234561234567890123456", "seed": "12345678901234561234567890123456", "binds": []}]}"#;
        assert_eq!(
            err(no_backends),
            "table.json: tables[0].backends: missing; expected an array of backends"
        );
    }
}
