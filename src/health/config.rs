//! The standalone checker's configuration: GLB's `healthcheck.conf` (JSON) or its TOML
//! equivalent, and the check settings GLB reads from the forwarding table itself.
//!
//! GLB's file, accepted as is:
//! ```json
//! { "forwarding_table": { "src": "/etc/glb/forwarding_table.src.json",
//!                         "dst": "/etc/glb/forwarding_table.checked.json" },
//!   "reload_command": "glb-director-cli build-config ... && systemctl reload glb-director" }
//! ```
//! GLB takes `interval_ms`, `timeout_ms` and `trigger` from a top-level `"healthchecks"`
//! object of the source forwarding table (0 or missing = default: 2000 ms, 1000 ms, 3);
//! [`TableHealthSettings`] reads them. Rondo extensions, in the config file's own
//! `healthchecks` object (JSON) or `[healthchecks]` table (TOML), which override the table's:
//! `interval_ms`, `timeout_ms`, `trigger`, `hold_ms` (least time between two writes of the
//! checked table; GLB's fixed 10 s), `reload_timeout_ms` (the reload command is killed after
//! it; default 60 s) and `threads` (checks in flight at once; default 64).
//!
//! Relative `src`/`dst` paths are resolved against the config file's folder. Unknown keys
//! are refused (a typo must not silently fall back to a default).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};
use toml::Spanned;

use super::checker::{DEFAULT_INTERVAL, DEFAULT_THREADS, DEFAULT_TIMEOUT, DEFAULT_TRIGGER};
use super::CheckerOptions;
use crate::config::ConfigError;

/// GLB's hold between two writes of the checked table.
pub const DEFAULT_HOLD: Duration = Duration::from_secs(10);
/// How long the reload command may run before it is killed.
pub const DEFAULT_RELOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// A loaded `rondo healthcheck` configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthcheckConfig {
    /// The source forwarding table (GLB JSON).
    pub src: PathBuf,
    /// Where the checked table is written.
    pub dst: PathBuf,
    /// Run with `/bin/sh -c` after each write; none: writes only.
    pub reload_command: Option<String>,
    /// Overrides of the table's settings.
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub trigger: Option<u32>,
    pub hold: Duration,
    pub reload_timeout: Duration,
    pub threads: usize,
}

impl HealthcheckConfig {
    /// The checker options: this file's settings, else the table's, else GLB's defaults.
    pub fn options(&self, table: &TableHealthSettings) -> CheckerOptions {
        CheckerOptions {
            interval: self.interval.or(table.interval).unwrap_or(DEFAULT_INTERVAL),
            timeout: self.timeout.or(table.timeout).unwrap_or(DEFAULT_TIMEOUT),
            trigger: self.trigger.or(table.trigger).unwrap_or(DEFAULT_TRIGGER),
            threads: self.threads,
            avoid_cores: Vec::new(),
        }
    }
}

/// Check settings from the forwarding table's top-level `healthchecks` (GLB).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableHealthSettings {
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub trigger: Option<u32>,
}

impl TableHealthSettings {
    /// Read `healthchecks` from a forwarding-table document; 0 or missing means the default,
    /// as in GLB. `file` names the table in errors.
    pub fn from_table(doc: &Value, file: &str) -> Result<TableHealthSettings, ConfigError> {
        let Some(h) = doc.get("healthchecks") else {
            return Ok(TableHealthSettings::default());
        };
        let obj = match h {
            Value::Null => return Ok(TableHealthSettings::default()),
            Value::Object(o) => o,
            other => {
                return Err(ConfigError::field(
                    file,
                    None,
                    "healthchecks",
                    format!(
                        "expected an object with interval_ms, timeout_ms, trigger; got {other}"
                    ),
                ))
            }
        };
        let num = |k: &str, max: u64| -> Result<Option<u64>, ConfigError> {
            match obj.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => match v.as_u64() {
                    Some(0) => Ok(None),
                    Some(n) if n <= max => Ok(Some(n)),
                    _ => Err(ConfigError::field(
                        file,
                        None,
                        format!("healthchecks.{k}"),
                        format!("expected an integer 0..={max} (0: default), got {v}"),
                    )),
                },
            }
        };
        Ok(TableHealthSettings {
            interval: num("interval_ms", MAX_MS)?.map(Duration::from_millis),
            timeout: num("timeout_ms", MAX_MS)?.map(Duration::from_millis),
            trigger: num("trigger", MAX_TRIGGER)?.map(|n| n as u32),
        })
    }
}

const MAX_MS: u64 = 3_600_000;
const MAX_TRIGGER: u64 = 1000;
const MAX_THREADS: u64 = 1024;

/// Read and parse a config file (JSON when it starts with `{`, else TOML).
pub fn load(path: &Path) -> Result<HealthcheckConfig, ConfigError> {
    let file = path.display().to_string();
    let text =
        crate::sys::file::read_text_bounded(path, crate::sys::file::CONFIG_LIMIT, "a config file")?;
    let base = path.parent().unwrap_or(Path::new(""));
    parse(&text, &file, base)
}

/// Parse a config's text; `file` names it in errors, `base` resolves relative paths.
pub fn parse(text: &str, file: &str, base: &Path) -> Result<HealthcheckConfig, ConfigError> {
    let raw = if text.trim_start().starts_with('{') {
        from_json(text, file)?
    } else {
        from_toml(text, file)?
    };
    let path = |p: String, field: &str| -> Result<PathBuf, ConfigError> {
        if p.trim().is_empty() {
            return Err(ConfigError::field(
                file,
                raw.line,
                field,
                "expected a file path, got an empty string",
            ));
        }
        Ok(base.join(p))
    };
    let src = path(raw.src, "forwarding_table.src")?;
    let dst = path(raw.dst, "forwarding_table.dst")?;
    if src == dst {
        return Err(ConfigError::field(
            file,
            raw.line,
            "forwarding_table.dst",
            "must differ from forwarding_table.src (the source would be overwritten)",
        ));
    }
    if raw
        .reload_command
        .as_deref()
        .is_some_and(|c| c.trim().is_empty())
    {
        return Err(ConfigError::field(
            file,
            raw.reload_line,
            "reload_command",
            "empty; leave reload_command out to only write the checked table",
        ));
    }
    let ms = |v: Option<u64>| v.map(Duration::from_millis);
    Ok(HealthcheckConfig {
        src,
        dst,
        reload_command: raw.reload_command,
        interval: ms(raw.settings.interval_ms),
        timeout: ms(raw.settings.timeout_ms),
        trigger: raw.settings.trigger.map(|n| n as u32),
        hold: ms(raw.settings.hold_ms).unwrap_or(DEFAULT_HOLD),
        reload_timeout: ms(raw.settings.reload_timeout_ms).unwrap_or(DEFAULT_RELOAD_TIMEOUT),
        threads: raw.settings.threads.map_or(DEFAULT_THREADS, |n| n as usize),
    })
}

/// What both syntaxes parse into before paths are resolved.
struct Raw {
    src: String,
    dst: String,
    /// Line of `[forwarding_table]` (TOML), for errors about the paths.
    line: Option<usize>,
    reload_command: Option<String>,
    reload_line: Option<usize>,
    settings: Settings,
}

#[derive(Default)]
struct Settings {
    interval_ms: Option<u64>,
    timeout_ms: Option<u64>,
    trigger: Option<u64>,
    hold_ms: Option<u64>,
    reload_timeout_ms: Option<u64>,
    threads: Option<u64>,
}

/// (key, least, most) of every `healthchecks` setting.
const SETTINGS: [(&str, u64, u64); 6] = [
    ("interval_ms", 1, MAX_MS),
    ("timeout_ms", 1, MAX_MS),
    ("trigger", 1, MAX_TRIGGER),
    ("hold_ms", 0, MAX_MS),
    ("reload_timeout_ms", 1, MAX_MS),
    ("threads", 1, MAX_THREADS),
];

impl Settings {
    fn set(&mut self, key: &str, v: u64) {
        let slot = match key {
            "interval_ms" => &mut self.interval_ms,
            "timeout_ms" => &mut self.timeout_ms,
            "trigger" => &mut self.trigger,
            "hold_ms" => &mut self.hold_ms,
            "reload_timeout_ms" => &mut self.reload_timeout_ms,
            _ => &mut self.threads,
        };
        *slot = Some(v);
    }
}

fn range_msg(lo: u64, hi: u64, got: impl std::fmt::Display) -> String {
    format!("expected an integer {lo}..={hi}, got {got}")
}

fn from_json(text: &str, file: &str) -> Result<Raw, ConfigError> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| ConfigError::field(file, Some(e.line()), "", format!("invalid JSON: {e}")))?;
    let err = |field: &str, msg: String| ConfigError::field(file, None, field, msg);
    let root = v
        .as_object()
        .ok_or_else(|| err("", "expected a JSON object at the top level".into()))?;
    known(
        root,
        &["forwarding_table", "reload_command", "healthchecks"],
        "",
        &err,
    )?;
    let ft = match root.get("forwarding_table") {
        Some(Value::Object(o)) => o,
        Some(other) => {
            return Err(err(
                "forwarding_table",
                format!("expected an object with \"src\" and \"dst\", got {other}"),
            ))
        }
        None => {
            return Err(err(
                "forwarding_table",
                "missing; expected {\"src\": SOURCE.json, \"dst\": CHECKED.json}".into(),
            ))
        }
    };
    known(ft, &["src", "dst"], "forwarding_table.", &err)?;
    let string = |o: &Map<String, Value>, k: &str, field: &str| match o.get(k) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(err(
            field,
            format!("expected a file path string, got {other}"),
        )),
        None => Err(err(field, "missing; expected a file path".into())),
    };
    let src = string(ft, "src", "forwarding_table.src")?;
    let dst = string(ft, "dst", "forwarding_table.dst")?;
    let reload_command = match root.get("reload_command") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            return Err(err(
                "reload_command",
                format!("expected a shell command string, got {other}"),
            ))
        }
    };
    let mut settings = Settings::default();
    match root.get("healthchecks") {
        None | Some(Value::Null) => {}
        Some(Value::Object(h)) => {
            let keys: Vec<&str> = SETTINGS.iter().map(|s| s.0).collect();
            known(h, &keys, "healthchecks.", &err)?;
            for (k, lo, hi) in SETTINGS {
                if let Some(v) = h.get(k) {
                    let field = format!("healthchecks.{k}");
                    match v.as_u64() {
                        Some(n) if (lo..=hi).contains(&n) => settings.set(k, n),
                        _ => return Err(err(&field, range_msg(lo, hi, v))),
                    }
                }
            }
        }
        Some(other) => {
            return Err(err(
                "healthchecks",
                format!("expected an object, got {other}"),
            ))
        }
    }
    Ok(Raw {
        src,
        dst,
        line: None,
        reload_command,
        reload_line: None,
        settings,
    })
}

fn known(
    o: &Map<String, Value>,
    keys: &[&str],
    prefix: &str,
    err: &dyn Fn(&str, String) -> ConfigError,
) -> Result<(), ConfigError> {
    match o.keys().find(|k| !keys.contains(&k.as_str())) {
        Some(k) => Err(err(
            &format!("{prefix}{k}"),
            format!("unknown key; expected one of {}", keys.join(", ")),
        )),
        None => Ok(()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlConfig {
    forwarding_table: Spanned<TomlTable>,
    reload_command: Option<Spanned<String>>,
    healthchecks: Option<TomlSettings>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlTable {
    src: String,
    dst: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlSettings {
    interval_ms: Option<Spanned<i64>>,
    timeout_ms: Option<Spanned<i64>>,
    trigger: Option<Spanned<i64>>,
    hold_ms: Option<Spanned<i64>>,
    reload_timeout_ms: Option<Spanned<i64>>,
    threads: Option<Spanned<i64>>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn from_toml(text: &str, file: &str) -> Result<Raw, ConfigError> {
    let cfg: TomlConfig = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start));
        ConfigError::field(file, line, "", e.message().to_string())
    })?;
    let mut settings = Settings::default();
    if let Some(h) = &cfg.healthchecks {
        let all = [
            &h.interval_ms,
            &h.timeout_ms,
            &h.trigger,
            &h.hold_ms,
            &h.reload_timeout_ms,
            &h.threads,
        ];
        for ((k, lo, hi), v) in SETTINGS.into_iter().zip(all) {
            if let Some(v) = v {
                match u64::try_from(*v.get_ref()) {
                    Ok(n) if (lo..=hi).contains(&n) => settings.set(k, n),
                    _ => {
                        return Err(ConfigError::field(
                            file,
                            Some(line_of(text, v.span().start)),
                            format!("healthchecks.{k}"),
                            range_msg(lo, hi, v.get_ref()),
                        ))
                    }
                }
            }
        }
    }
    let line = Some(line_of(text, cfg.forwarding_table.span().start));
    let reload_line = cfg
        .reload_command
        .as_ref()
        .map(|r| line_of(text, r.span().start));
    let table = cfg.forwarding_table.into_inner();
    Ok(Raw {
        src: table.src,
        dst: table.dst,
        line,
        reload_command: cfg.reload_command.map(Spanned::into_inner),
        reload_line,
        settings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> HealthcheckConfig {
        parse(text, "hc.conf", Path::new("/etc/glb")).unwrap_or_else(|e| panic!("{e}"))
    }

    fn parse_err(text: &str) -> String {
        parse(text, "hc.conf", Path::new("/etc/glb"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn glbs_own_file_loads_with_glb_defaults() {
        let c = parse_ok(
            r#"{
  "forwarding_table": {
    "src": "/etc/glb/forwarding_table.src.json",
    "dst": "/etc/glb/forwarding_table.checked.json"
  },
  "reload_command": "glb-director-cli build-config /etc/glb/forwarding_table.checked.json /etc/glb/forwarding_table.checked.bin && systemctl reload glb-director"
}"#,
        );
        assert_eq!(c.src, Path::new("/etc/glb/forwarding_table.src.json"));
        assert!(c
            .reload_command
            .as_deref()
            .unwrap()
            .starts_with("glb-director-cli"));
        let o = c.options(&TableHealthSettings::default());
        assert_eq!(
            (o.interval, o.timeout, o.trigger),
            (Duration::from_secs(2), Duration::from_secs(1), 3)
        );
        assert_eq!(c.hold, Duration::from_secs(10));
    }

    #[test]
    fn settings_precedence_file_then_table_then_default() {
        let c = parse_ok(
            "reload_command = \"true\"\n[forwarding_table]\nsrc = \"a.json\"\ndst = \"b.json\"\n[healthchecks]\ntrigger = 5\nhold_ms = 0\n",
        );
        assert_eq!(
            c.src,
            Path::new("/etc/glb/a.json"),
            "relative to the config"
        );
        let table: Value = serde_json::from_str(
            r#"{"healthchecks": {"interval_ms": 100, "timeout_ms": 0, "trigger": 2}, "tables": []}"#,
        )
        .unwrap();
        let t = TableHealthSettings::from_table(&table, "t.json").unwrap();
        let o = c.options(&t);
        assert_eq!(o.interval, Duration::from_millis(100), "from the table");
        assert_eq!(o.timeout, Duration::from_secs(1), "0 in the table: default");
        assert_eq!(o.trigger, 5, "the config file wins");
        assert_eq!(c.hold, Duration::ZERO);
    }

    #[test]
    fn errors_name_file_line_field_and_expectation() {
        let cases: &[(&str, &[&str])] = &[
            ("{", &["hc.conf:1:", "invalid JSON"]),
            ("[]", &["hc.conf:1: invalid key"]),
            (r#"{"reload_command": "x"}"#, &["forwarding_table: missing"]),
            (
                r#"{"forwarding_table": {"src": "a"}}"#,
                &["forwarding_table.dst: missing"],
            ),
            (
                r#"{"forwarding_table": {"src": 1, "dst": "b"}}"#,
                &["forwarding_table.src: expected a file path string, got 1"],
            ),
            (
                r#"{"forwarding_table": {"src": "a", "dst": "b", "dts": "c"}}"#,
                &["forwarding_table.dts: unknown key"],
            ),
            (
                r#"{"forwarding_table": {"src": "a", "dst": "a"}}"#,
                &["forwarding_table.dst: must differ"],
            ),
            (
                r#"{"forwarding_table": {"src": "a", "dst": "b"}, "reload_comand": "x"}"#,
                &["reload_comand: unknown key"],
            ),
            (
                r#"{"forwarding_table": {"src": "a", "dst": "b"}, "reload_command": ""}"#,
                &["reload_command: empty"],
            ),
            (
                r#"{"forwarding_table": {"src": "a", "dst": "b"}, "healthchecks": {"trigger": 0}}"#,
                &["healthchecks.trigger: expected an integer 1..=1000, got 0"],
            ),
            (
                r#"{"forwarding_table": {"src": "a", "dst": "b"}, "healthchecks": {"interval_ms": "2s"}}"#,
                &["healthchecks.interval_ms: expected an integer 1..=3600000, got \"2s\""],
            ),
            (
                "[forwarding_table]\nsrc = \"a\"\ndst = \"b\"\n[healthchecks]\ntimeout_ms = -5\n",
                &[
                    "hc.conf:5:",
                    "healthchecks.timeout_ms",
                    "1..=3600000, got -5",
                ],
            ),
            (
                "[forwarding_table]\nsrc = \"a\"\ndst = \"b\"\ncolour = 1\n",
                &["hc.conf:4:", "unknown field `colour`"],
            ),
            (
                "[forwarding_table]\nsrc = \"\"\ndst = \"b\"\n",
                &["hc.conf:1:", "forwarding_table.src: expected a file path"],
            ),
            (
                "reload_command = \"x\"\n",
                &["missing field `forwarding_table`"],
            ),
        ];
        for (text, wants) in cases {
            let e = parse_err(text);
            for w in *wants {
                assert!(e.contains(w), "{text:?}: expected {w:?} in {e:?}");
            }
        }
    }

    #[test]
    fn table_settings_errors() {
        let bad: Value = serde_json::from_str(r#"{"healthchecks": {"trigger": -1}}"#).unwrap();
        let e = TableHealthSettings::from_table(&bad, "t.json")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "t.json: healthchecks.trigger: expected an integer 0..=1000 (0: default), got -1"
        );
        let bad: Value = serde_json::from_str(r#"{"healthchecks": 5}"#).unwrap();
        assert!(TableHealthSettings::from_table(&bad, "t.json").is_err());
    }
}
