//! The configuration of `rondo healthcheck --fleet CONFIG`: the `[fleet]` table (the etcd
//! settings, `crate::fleet::etcd::EtcdSettings`: endpoints, prefix, this checker's `name`,
//! its candidacy lease `lease_ttl_ms`, ...) and the check settings the standalone checker
//! takes (`[healthchecks]`: `interval_ms`, `timeout_ms`, `trigger`, `threads`), plus
//! `write_every_rounds` (the leader rewrites the health document at least every so many
//! rounds, even when nothing changed; default 5). The backends come from the fleet's
//! desired document in etcd, not from a file.
//!
//! ```toml
//! [fleet]
//! endpoints = ["http://10.0.0.1:2379"]
//! prefix = "/rondo/prod"
//! name = "checker-1"
//! lease_ttl_ms = 3000
//! [healthchecks]
//! interval_ms = 2000
//! trigger = 3
//! ```
//!
//! Parsing needs no etcd code (so the example configs are tested in every build); the
//! `[fleet]` table itself is checked by [`FleetCheckConfig::etcd_settings`] (feature
//! `etcd`). Unknown keys are refused.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::checker::{DEFAULT_INTERVAL, DEFAULT_THREADS, DEFAULT_TIMEOUT, DEFAULT_TRIGGER};
use super::CheckerOptions;
use crate::config::ConfigError;

/// The leader rewrites the health document at least every this many rounds.
pub const DEFAULT_WRITE_EVERY_ROUNDS: u32 = 5;

/// A loaded `rondo healthcheck --fleet` configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetCheckConfig {
    /// The file, for errors.
    pub file: String,
    /// `[fleet]` as written (see [`FleetCheckConfig::etcd_settings`]).
    pub fleet: toml::Table,
    /// Line of `[fleet]`.
    pub fleet_line: usize,
    pub options: CheckerOptions,
    pub write_every_rounds: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    fleet: Option<Spanned<toml::Table>>,
    healthchecks: Option<RawChecks>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChecks {
    interval_ms: Option<Spanned<i64>>,
    timeout_ms: Option<Spanned<i64>>,
    trigger: Option<Spanned<i64>>,
    threads: Option<Spanned<i64>>,
    write_every_rounds: Option<Spanned<i64>>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Read and parse a config file.
pub fn load(path: &Path) -> Result<FleetCheckConfig, ConfigError> {
    let file = path.display().to_string();
    let text =
        crate::sys::file::read_text_bounded(path, crate::sys::file::CONFIG_LIMIT, "a config file")?;
    parse(&text, &file)
}

/// Parse a config's text; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<FleetCheckConfig, ConfigError> {
    let raw: Raw = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start));
        let mut msg = e.message().to_string();
        if msg.contains("unknown field") {
            msg.push_str(
                " (a fleet checker config holds [fleet] and [healthchecks]; the backends come from the desired document in etcd)",
            );
        }
        ConfigError::field(file, line, "", msg)
    })?;
    let Some(fleet) = raw.fleet else {
        return Err(ConfigError::field(
            file,
            None,
            "fleet",
            "missing; expected a [fleet] table with endpoints, prefix and name (this checker's name)",
        ));
    };
    let fleet_line = line_of(text, fleet.span().start);
    let mut options = CheckerOptions::default();
    let mut write_every_rounds = DEFAULT_WRITE_EVERY_ROUNDS;
    if let Some(h) = &raw.healthchecks {
        let num = |v: &Option<Spanned<i64>>, key: &str, lo: u64, hi: u64| match v {
            None => Ok(None),
            Some(v) => match u64::try_from(*v.get_ref()) {
                Ok(n) if (lo..=hi).contains(&n) => Ok(Some(n)),
                _ => Err(ConfigError::field(
                    file,
                    Some(line_of(text, v.span().start)),
                    format!("healthchecks.{key}"),
                    format!("expected an integer {lo}..={hi}, got {}", v.get_ref()),
                )),
            },
        };
        let ms = |v, key| num(v, key, 1, 3_600_000).map(|n| n.map(Duration::from_millis));
        options.interval = ms(&h.interval_ms, "interval_ms")?.unwrap_or(DEFAULT_INTERVAL);
        options.timeout = ms(&h.timeout_ms, "timeout_ms")?.unwrap_or(DEFAULT_TIMEOUT);
        options.trigger =
            num(&h.trigger, "trigger", 1, 1000)?.map_or(DEFAULT_TRIGGER, |n| n as u32);
        options.threads =
            num(&h.threads, "threads", 1, 1024)?.map_or(DEFAULT_THREADS, |n| n as usize);
        write_every_rounds = num(&h.write_every_rounds, "write_every_rounds", 1, 1000)?
            .map_or(DEFAULT_WRITE_EVERY_ROUNDS, |n| n as u32);
    }
    Ok(FleetCheckConfig {
        file: file.to_string(),
        fleet: fleet.into_inner(),
        fleet_line,
        options,
        write_every_rounds,
    })
}

#[cfg(feature = "etcd")]
impl FleetCheckConfig {
    /// `[fleet]` as etcd settings, validated; errors name `fleet.<field>`.
    pub fn etcd_settings(&self) -> Result<crate::fleet::etcd::EtcdSettings, ConfigError> {
        let s: crate::fleet::etcd::EtcdSettings = toml::Value::Table(self.fleet.clone())
            .try_into()
            .map_err(|e: toml::de::Error| {
                ConfigError::field(
                    &self.file,
                    Some(self.fleet_line),
                    "fleet",
                    e.message().to_string(),
                )
            })?;
        s.validate().map_err(|e| {
            ConfigError::field(
                &self.file,
                Some(self.fleet_line),
                format!("fleet.{}", e.field),
                e.message,
            )
        })?;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[fleet]
endpoints = ["http://127.0.0.1:2379"]
prefix = "/rondo/t"
name = "c1"
lease_ttl_ms = 2000

[healthchecks]
interval_ms = 500
timeout_ms = 200
trigger = 2
write_every_rounds = 3
"#;

    #[test]
    fn good_config_parses() {
        let c = parse(GOOD, "f.toml").unwrap();
        assert_eq!(c.options.interval, Duration::from_millis(500));
        assert_eq!(c.options.timeout, Duration::from_millis(200));
        assert_eq!(c.options.trigger, 2);
        assert_eq!(c.options.threads, DEFAULT_THREADS);
        assert_eq!(c.write_every_rounds, 3);
        assert_eq!(c.fleet_line, 2);
        #[cfg(feature = "etcd")]
        {
            let s = c.etcd_settings().unwrap();
            assert_eq!((s.name.as_str(), s.lease_ttl_ms), ("c1", 2000));
        }
    }

    #[test]
    fn defaults_without_healthchecks() {
        let c = parse(
            "[fleet]\nendpoints=[\"http://a:1\"]\nprefix=\"/r\"\nname=\"c\"\n",
            "f",
        )
        .unwrap();
        assert_eq!(c.options, CheckerOptions::default());
        assert_eq!(c.write_every_rounds, DEFAULT_WRITE_EVERY_ROUNDS);
    }

    #[test]
    fn bad_configs_name_the_field() {
        let e = parse("[healthchecks]\ntrigger = 2\n", "f.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("fleet") && e.contains("missing"), "{e}");
        let e = parse(&GOOD.replace("trigger = 2", "trigger = 0"), "f.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("healthchecks.trigger") && e.contains("1..=1000"),
            "{e}"
        );
        assert!(e.contains("f.toml:11:"), "line of the value: {e}");
        let e = parse(
            &format!("{GOOD}\n[forwarding_table]\nsrc = \"x\"\n"),
            "f.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("forwarding_table") && e.contains("desired document"),
            "{e}"
        );
        let e = parse(&GOOD.replace("interval_ms", "intervall_ms"), "f.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("intervall_ms"), "{e}");
    }

    #[cfg(feature = "etcd")]
    #[test]
    fn bad_fleet_table_names_its_field() {
        let c = parse(
            &GOOD.replace("prefix = \"/rondo/t\"", "prefix = \"rel\""),
            "f.toml",
        )
        .unwrap();
        let e = c.etcd_settings().unwrap_err().to_string();
        assert!(e.contains("fleet.prefix"), "{e}");
        let c = parse(&GOOD.replace("name = \"c1\"", "nam = \"c1\""), "f.toml").unwrap();
        let e = c.etcd_settings().unwrap_err().to_string();
        assert!(e.contains("fleet") && e.contains("nam"), "{e}");
    }
}
