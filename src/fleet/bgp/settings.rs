//! `[bgp]` settings: which daemon, where its control socket and the generated include are,
//! the lifeline's name, the attributes every announcement carries, and the BGP protocols to
//! report. Parsed from a TOML table ([`BgpSettings::from_toml_table`]); the main config
//! loader is not wired to it yet.
//!
//! ```toml
//! [bgp]
//! daemon = "bird"                      # the only one today
//! socket = "/run/bird/bird.ctl"        # bird -s
//! include = "/etc/bird/rondo.conf"     # bird.conf: include "/etc/bird/rondo.conf";
//! lifeline = "rondo-life"              # default
//! protocol_v4 = "rondo_v4"             # default; the generated static protocols
//! protocol_v6 = "rondo_v6"             # default
//! export_filter = "rondo_export"       # default; the generated export filter
//! communities = ["65000:100"]
//! large_communities = ["65000:1:2"]
//! med = 50
//! sessions = ["router1", "router2"]    # BGP protocols of bird.conf to report
//! timeout_ms = 5000                    # per control-socket step
//! ```

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::announce::{Announcement, Community, LargeCommunity, Prefix};
use super::bird_conf::{BirdName, IncludeNames, LifelineName};

/// The BGP daemon Rondo drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Daemon {
    /// BIRD 2, over its control socket and a generated config include.
    Bird,
}

/// A refused setting of this section.
pub type SettingsError = crate::fleet::FieldError;

fn err(field: impl Into<String>, message: impl Into<String>) -> SettingsError {
    SettingsError {
        section: "[bgp]",
        field: field.into(),
        message: message.into(),
    }
}

/// `[bgp]` as written (serde), before validation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BgpToml {
    #[serde(default)]
    pub daemon: Option<String>,
    pub socket: PathBuf,
    pub include: PathBuf,
    #[serde(default)]
    pub lifeline: Option<String>,
    #[serde(default)]
    pub protocol_v4: Option<String>,
    #[serde(default)]
    pub protocol_v6: Option<String>,
    #[serde(default)]
    pub export_filter: Option<String>,
    #[serde(default)]
    pub communities: Vec<String>,
    #[serde(default)]
    pub large_communities: Vec<String>,
    #[serde(default)]
    pub med: Option<u32>,
    #[serde(default)]
    pub sessions: Vec<String>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// Validated `[bgp]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpSettings {
    pub daemon: Daemon,
    /// The daemon's control socket (`bird -s`).
    pub socket: PathBuf,
    /// The generated include (the operator's bird.conf `include`s it).
    pub include: PathBuf,
    pub names: IncludeNames,
    pub communities: Vec<Community>,
    pub large_communities: Vec<LargeCommunity>,
    pub med: Option<u32>,
    /// The operator's BGP protocols whose session state is reported.
    pub sessions: Vec<BirdName>,
    /// Deadline of each control-socket step.
    pub timeout: Duration,
}

/// `[bgp]` as `rondo run` uses it: the daemon's settings plus the lifecycle.
///
/// ```toml
/// drain_ms = 2000     # after the withdrawal on SIGTERM, forward up to this long while packets arrive
/// graceful_ms = 1000  # announce GRACEFUL_SHUTDOWN this long before withdrawing
/// stall_ms = 1000     # a worker without progress this long withdraws every VIP
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpRunSettings {
    pub bird: BgpSettings,
    pub drain: Duration,
    pub graceful: Duration,
    pub stall: Duration,
}

pub const DEFAULT_DRAIN_MS: u64 = 2000;
pub const DEFAULT_GRACEFUL_MS: u64 = 1000;
pub const DEFAULT_STALL_MS: u64 = 1000;

impl BgpRunSettings {
    /// From the `[bgp]` table: the lifecycle keys here, the rest as [`BgpSettings`].
    pub fn from_toml_table(t: &toml::Table) -> Result<BgpRunSettings, SettingsError> {
        let mut t = t.clone();
        let mut ms = |key: &str, default: u64, range: std::ops::RangeInclusive<u64>| {
            let v = match t.remove(key) {
                None => return Ok(default),
                Some(toml::Value::Integer(i)) => u64::try_from(i).unwrap_or(u64::MAX),
                Some(o) => {
                    return Err(err(
                        key,
                        format!("expected milliseconds (an integer), got {o}"),
                    ))
                }
            };
            if range.contains(&v) {
                Ok(v)
            } else {
                Err(err(
                    key,
                    format!("expected {} to {} milliseconds", range.start(), range.end()),
                ))
            }
        };
        let drain = ms("drain_ms", DEFAULT_DRAIN_MS, 0..=600_000)?;
        let graceful = ms("graceful_ms", DEFAULT_GRACEFUL_MS, 0..=600_000)?;
        let stall = ms("stall_ms", DEFAULT_STALL_MS, 100..=600_000)?;
        Ok(BgpRunSettings {
            bird: BgpSettings::from_toml_table(&t)?,
            drain: Duration::from_millis(drain),
            graceful: Duration::from_millis(graceful),
            stall: Duration::from_millis(stall),
        })
    }
}

/// Defaults of the optional names.
pub const DEFAULT_LIFELINE: &str = "rondo-life";
pub const DEFAULT_PROTOCOL_V4: &str = "rondo_v4";
pub const DEFAULT_PROTOCOL_V6: &str = "rondo_v6";
pub const DEFAULT_EXPORT_FILTER: &str = "rondo_export";
pub const DEFAULT_TIMEOUT_MS: u64 = 5000;

impl BgpSettings {
    /// From the `[bgp]` table's contents.
    pub fn from_toml_table(t: &toml::Table) -> Result<BgpSettings, SettingsError> {
        let raw: BgpToml = toml::Value::Table(t.clone())
            .try_into()
            .map_err(|e: toml::de::Error| err("(table)", e.message().to_string()))?;
        BgpSettings::from_raw(raw)
    }

    /// From a TOML document holding a `[bgp]` table.
    pub fn from_toml_str(s: &str) -> Result<BgpSettings, SettingsError> {
        let doc: toml::Table = s
            .parse()
            .map_err(|e: toml::de::Error| err("(document)", e.message().to_string()))?;
        match doc.get("bgp") {
            Some(toml::Value::Table(t)) => BgpSettings::from_toml_table(t),
            Some(_) => Err(err("(table)", "expected a table [bgp]")),
            None => Err(err("(table)", "no [bgp] table")),
        }
    }

    /// Validate `raw`.
    pub fn from_raw(raw: BgpToml) -> Result<BgpSettings, SettingsError> {
        let daemon = match raw.daemon.as_deref().unwrap_or("bird") {
            "bird" => Daemon::Bird,
            o => {
                return Err(err(
                    "daemon",
                    format!("{o:?}: unknown daemon (supported: \"bird\", BIRD 2)"),
                ))
            }
        };
        for (field, p) in [("socket", &raw.socket), ("include", &raw.include)] {
            if p.as_os_str().is_empty() || !p.is_absolute() {
                return Err(err(
                    field,
                    format!("{}: expected an absolute path", p.display()),
                ));
            }
        }
        if raw.include.file_name().is_none() {
            return Err(err("include", "expected a file path"));
        }
        let name = |field: &str, v: &Option<String>, d: &str| {
            BirdName::new(field, v.as_deref().unwrap_or(d)).map_err(|m| err(field, m))
        };
        let names = IncludeNames {
            v4: name("protocol_v4", &raw.protocol_v4, DEFAULT_PROTOCOL_V4)?,
            v6: name("protocol_v6", &raw.protocol_v6, DEFAULT_PROTOCOL_V6)?,
            lifeline: LifelineName::new(raw.lifeline.as_deref().unwrap_or(DEFAULT_LIFELINE))
                .map_err(|m| err("lifeline", m))?,
            filter: name("export_filter", &raw.export_filter, DEFAULT_EXPORT_FILTER)?,
        };
        let distinct = [&names.v4, &names.v6, &names.filter];
        if distinct[0] == distinct[1] || distinct[0] == distinct[2] || distinct[1] == distinct[2] {
            return Err(err(
                "protocol_v4",
                "protocol_v4, protocol_v6 and export_filter must be three different names",
            ));
        }
        let communities = raw
            .communities
            .iter()
            .enumerate()
            .map(|(i, c)| {
                c.parse()
                    .map_err(|e| err(format!("communities[{i}]"), format!("{e}")))
            })
            .collect::<Result<Vec<Community>, _>>()?;
        let large_communities = raw
            .large_communities
            .iter()
            .enumerate()
            .map(|(i, c)| {
                c.parse()
                    .map_err(|e| err(format!("large_communities[{i}]"), format!("{e}")))
            })
            .collect::<Result<Vec<LargeCommunity>, _>>()?;
        let mut sessions = Vec::with_capacity(raw.sessions.len());
        for (i, s) in raw.sessions.iter().enumerate() {
            let field = format!("sessions[{i}]");
            let n = BirdName::new(&field, s).map_err(|m| err(&field, m))?;
            if n == names.v4 || n == names.v6 {
                return Err(err(
                    field,
                    format!("{s:?} is a generated static protocol, not a BGP session"),
                ));
            }
            sessions.push(n);
        }
        let timeout_ms = raw.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
        if !(100..=600_000).contains(&timeout_ms) {
            return Err(err(
                "timeout_ms",
                format!("{timeout_ms}: expected 100 to 600000 (milliseconds)"),
            ));
        }
        Ok(BgpSettings {
            daemon,
            socket: raw.socket,
            include: raw.include,
            names,
            communities,
            large_communities,
            med: raw.med,
            sessions,
            timeout: Duration::from_millis(timeout_ms),
        })
    }

    /// Settings with the defaults, for `socket` and `include` (tests and tools).
    pub fn new(socket: PathBuf, include: PathBuf) -> Result<BgpSettings, SettingsError> {
        BgpSettings::from_raw(BgpToml {
            daemon: None,
            socket,
            include,
            lifeline: None,
            protocol_v4: None,
            protocol_v6: None,
            export_filter: None,
            communities: Vec::new(),
            large_communities: Vec::new(),
            med: None,
            sessions: Vec::new(),
            timeout_ms: None,
        })
    }

    /// The announcement of `prefix` with the configured communities and MED.
    pub fn announcement(&self, prefix: Prefix) -> Announcement {
        Announcement {
            prefix,
            communities: self.communities.clone(),
            large_communities: self.large_communities.clone(),
            med: self.med,
            graceful_shutdown: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
[bgp]
daemon = "bird"
socket = "/run/bird/bird.ctl"
include = "/etc/bird/rondo.conf"
lifeline = "rlife0"
communities = ["65000:100", "65535:0"]
large_communities = ["65000:1:2"]
med = 50
sessions = ["router1"]
timeout_ms = 2000
"#;

    #[test]
    fn parses_a_full_table_and_defaults() {
        let s = BgpSettings::from_toml_str(FULL).unwrap();
        assert_eq!(s.daemon, Daemon::Bird);
        assert_eq!(s.names.lifeline.as_str(), "rlife0");
        assert_eq!(s.names.v4.as_str(), "rondo_v4");
        assert_eq!(s.names.filter.as_str(), "rondo_export");
        assert_eq!(
            s.communities,
            vec![Community(65000, 100), Community(65535, 0)]
        );
        assert_eq!(s.large_communities, vec![LargeCommunity(65000, 1, 2)]);
        assert_eq!(s.med, Some(50));
        assert_eq!(s.sessions[0].as_str(), "router1");
        assert_eq!(s.timeout, Duration::from_secs(2));
        let a = s.announcement("192.0.2.1".parse().unwrap());
        assert_eq!((a.med, a.communities.len()), (Some(50), 2));
        let d = BgpSettings::new("/s".into(), "/i.conf".into()).unwrap();
        assert_eq!(d.timeout, Duration::from_millis(DEFAULT_TIMEOUT_MS));
        assert_eq!(d.names.lifeline.as_str(), DEFAULT_LIFELINE);
    }

    #[test]
    fn run_settings_take_the_lifecycle_keys() {
        let doc: toml::Table =
            "socket = \"/s\"\ninclude = \"/i.conf\"\ndrain_ms = 500\nstall_ms = 300\n"
                .parse()
                .unwrap();
        let r = BgpRunSettings::from_toml_table(&doc).unwrap();
        assert_eq!(r.drain, Duration::from_millis(500));
        assert_eq!(r.graceful, Duration::from_millis(DEFAULT_GRACEFUL_MS));
        assert_eq!(r.stall, Duration::from_millis(300));
        assert_eq!(r.bird.socket, PathBuf::from("/s"));
        for (extra, want) in [
            ("drain_ms = -1", "[bgp] drain_ms: expected 0 to 600000"),
            (
                "graceful_ms = \"1s\"",
                "[bgp] graceful_ms: expected milliseconds",
            ),
            ("stall_ms = 5", "[bgp] stall_ms: expected 100 to"),
            ("drain = 1", "unknown field `drain`"),
        ] {
            let doc: toml::Table = format!("socket = \"/s\"\ninclude = \"/i.conf\"\n{extra}\n")
                .parse()
                .unwrap();
            let e = BgpRunSettings::from_toml_table(&doc)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{extra}: {e}");
        }
    }

    #[test]
    fn refusals_name_the_field() {
        let cases = [
            (
                "daemon = \"exabgp\"",
                "[bgp] daemon: \"exabgp\": unknown daemon",
            ),
            (
                "communities = [\"65536:1\"]",
                "[bgp] communities[0]: community \"65536:1\"",
            ),
            (
                "large_communities = [\"1:2\"]",
                "[bgp] large_communities[0]",
            ),
            (
                "lifeline = \"a\\\"b\"",
                "[bgp] lifeline: lifeline interface",
            ),
            (
                "protocol_v4 = \"rondo-v4\"",
                "[bgp] protocol_v4: protocol_v4 \"rondo-v4\"",
            ),
            ("protocol_v6 = \"rondo_v4\"", "three different names"),
            (
                "sessions = [\"rondo_v4\"]",
                "[bgp] sessions[0]: \"rondo_v4\" is a generated",
            ),
            ("sessions = [\"a b\"]", "[bgp] sessions[0]"),
            ("timeout_ms = 5", "[bgp] timeout_ms: 5: expected"),
            ("med = -1", "[bgp] (table)"),
            ("colour = 1", "unknown field `colour`"),
        ];
        for (extra, want) in cases {
            let doc = format!("[bgp]\nsocket = \"/s\"\ninclude = \"/i.conf\"\n{extra}\n");
            let e = BgpSettings::from_toml_str(&doc).unwrap_err().to_string();
            assert!(e.contains(want), "{extra}: {e}");
        }
        let e =
            BgpSettings::from_toml_str("[bgp]\nsocket = \"rel\"\ninclude = \"/i\"\n").unwrap_err();
        assert_eq!(e.field, "socket");
        let e = BgpSettings::from_toml_str("[bgp]\nsocket = \"/s\"\n").unwrap_err();
        assert!(e.message.contains("include"), "{e}");
        assert!(BgpSettings::from_toml_str("bgp = 1").is_err());
        assert!(BgpSettings::from_toml_str("")
            .unwrap_err()
            .message
            .contains("no [bgp]"));
    }
}
