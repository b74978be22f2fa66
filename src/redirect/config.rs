//! `backend.toml`: the configuration of `rondo redirect`.
//!
//! ```toml
//! [redirect]
//! listen = ["0.0.0.0:19523", "[::]:19523"]   # default; "IP" alone means port 19523
//! addresses = ["10.0.0.2"]                  # our own addresses (the outer destination of each packet is always ours)
//! directors = ["10.0.1.0/24"]               # who may send us GUE (directors, health checkers); required
//! backends = ["10.0.0.0/24"]                # peers that may forward to us and that we may forward to; required
//! tun = "rondo-gue0"                        # the local delivery interface
//! hop_limit = 8                             # most hops a GUE header may list
//! diag_cache_ttl_ms = 500                   # how long a socket lookup is reused (0: never)
//! diag_cache_entries = 4096                 # fixed size of the lookup cache
//! syncookie_window_secs = 120               # see `redirect::diag`
//! stats_interval_secs = 10                  # a stats line in the log (0: none)
//! second_chance = true                      # false: every packet local, nothing forwarded (experiments only)
//!
//! [redirect.quic_lb]                        # optional: QUIC's second chance by connection ID
//! server_id = "0001"                        # this backend's QUIC-LB server ID (hex), as in the directors' table
//! ports = [443]                             # inner UDP destination ports that carry QUIC (default [443])
//! configs = [                               # one or two, exactly the directors' table `quic_lb`
//!   { config_id = 1, server_id_len = 2, nonce_len = 6, key = "950983482b0692f78f6057baee94118c" },
//! ]
//! ```
//! Errors name the file, the line, the field and what was expected.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::decide::AddrSet;
use super::quic::{QuicPolicy, DEFAULT_PORT};
use crate::config::{parse_ip_or_cidr, quic_lb_configs, ConfigError};
use crate::quic_lb::ServerId;
use crate::wire::gue;

/// Default TUN interface name.
pub const DEFAULT_TUN: &str = "rondo-gue0";
/// Default hop limit.
pub const DEFAULT_HOP_LIMIT: u8 = 8;

/// A validated `[redirect]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct RedirectConfig {
    /// UDP addresses to receive GUE on.
    pub listen: Vec<SocketAddr>,
    /// `listen` was not given: a failing IPv6 bind (no IPv6 here) is only a warning.
    pub listen_is_default: bool,
    /// Our own addresses besides each packet's outer destination.
    pub addresses: Vec<IpAddr>,
    pub directors: AddrSet,
    pub backends: AddrSet,
    pub tun: String,
    pub hop_limit: u8,
    pub diag_cache_ttl: Duration,
    pub diag_cache_entries: usize,
    pub syncookie_window: Duration,
    pub stats_interval: Duration,
    /// GLB's second chance (default). Off, every well-formed packet is delivered locally and
    /// nothing is forwarded ([`super::decide::AlwaysLocal`]): only for showing what breaks
    /// without it.
    pub second_chance: bool,
    /// QUIC-LB (`[redirect.quic_lb]`): QUIC datagrams whose CID names another server get
    /// their second chance ([`super::quic`]).
    pub quic_lb: Option<QuicPolicy>,
}

impl RedirectConfig {
    /// The default listen addresses: every IPv4 and IPv6 address, port 19523.
    pub fn default_listen() -> Vec<SocketAddr> {
        vec![
            SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), gue::PORT),
            SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), gue::PORT),
        ]
    }

    /// A config with defaults for everything but the two allowlists.
    pub fn new(directors: AddrSet, backends: AddrSet) -> RedirectConfig {
        RedirectConfig {
            listen: Self::default_listen(),
            listen_is_default: true,
            addresses: Vec::new(),
            directors,
            backends,
            tun: DEFAULT_TUN.to_string(),
            hop_limit: DEFAULT_HOP_LIMIT,
            diag_cache_ttl: Duration::from_millis(500),
            diag_cache_entries: 4096,
            syncookie_window: Duration::from_secs(120),
            stats_interval: Duration::from_secs(10),
            second_chance: true,
            quic_lb: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    redirect: RawRedirect,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRedirect {
    listen: Option<Spanned<Vec<String>>>,
    addresses: Option<Spanned<Vec<String>>>,
    directors: Option<Spanned<Vec<String>>>,
    backends: Option<Spanned<Vec<String>>>,
    tun: Option<Spanned<String>>,
    hop_limit: Option<Spanned<i64>>,
    diag_cache_ttl_ms: Option<Spanned<i64>>,
    diag_cache_entries: Option<Spanned<i64>>,
    syncookie_window_secs: Option<Spanned<i64>>,
    stats_interval_secs: Option<Spanned<i64>>,
    second_chance: Option<bool>,
    quic_lb: Option<RawQuicLb>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuicLb {
    server_id: Option<Spanned<String>>,
    ports: Option<Spanned<Vec<i64>>>,
    configs: Option<Spanned<toml::Value>>,
}

fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// True when `text` is TOML with a top-level `[redirect]` table (a backend config).
pub fn is_redirect_config(text: &str) -> bool {
    toml::from_str::<toml::Table>(text).is_ok_and(|t| t.contains_key("redirect"))
}

/// Parse a listen address: `IP:PORT`, `[IPv6]:PORT`, or an address alone (port 19523).
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    match s.parse::<IpAddr>() {
        Ok(ip) => Ok(SocketAddr::new(ip, gue::PORT)),
        Err(_) => Err(format!(
            "expected an address like \"0.0.0.0:19523\", \"[::]:19523\" or \"10.0.0.2\", got {s:?}"
        )),
    }
}

/// Parse a list of IPs/CIDRs.
pub fn parse_addr_set(items: &[String]) -> Result<AddrSet, String> {
    items
        .iter()
        .map(|s| parse_ip_or_cidr(s))
        .collect::<Result<Vec<_>, _>>()
        .map(AddrSet::new)
}

/// Parse the text of a backend config; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<RedirectConfig, ConfigError> {
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start));
        ConfigError::field(file, line, "", e.message().to_string())
    })?;
    let r = raw.redirect;
    let err = |span: std::ops::Range<usize>, field: &str, msg: String| {
        ConfigError::field(file, Some(line_of(text, span.start)), field, msg)
    };
    let set = |v: &Option<Spanned<Vec<String>>>, field: &str| -> Result<AddrSet, ConfigError> {
        let Some(v) = v else {
            return Err(ConfigError::field(
                file,
                None,
                format!("redirect.{field}"),
                format!("missing: list the {field} as addresses or CIDRs, e.g. {field} = [\"10.0.0.0/24\"]"),
            ));
        };
        if v.get_ref().is_empty() {
            return Err(err(
                v.span(),
                &format!("redirect.{field}"),
                "expected at least one address or CIDR".into(),
            ));
        }
        parse_addr_set(v.get_ref()).map_err(|m| err(v.span(), &format!("redirect.{field}"), m))
    };
    let directors = set(&r.directors, "directors")?;
    let backends = set(&r.backends, "backends")?;
    let mut c = RedirectConfig::new(directors, backends);
    if let Some(v) = &r.listen {
        if v.get_ref().is_empty() {
            return Err(err(
                v.span(),
                "redirect.listen",
                "expected at least one address, or leave `listen` out".into(),
            ));
        }
        c.listen = v
            .get_ref()
            .iter()
            .map(|s| parse_listen(s))
            .collect::<Result<_, _>>()
            .map_err(|m| err(v.span(), "redirect.listen", m))?;
        c.listen_is_default = false;
    }
    if let Some(v) = &r.addresses {
        c.addresses = v
            .get_ref()
            .iter()
            .map(|s| {
                s.parse::<IpAddr>()
                    .map_err(|_| format!("expected an IPv4 or IPv6 address, got {s:?}"))
            })
            .collect::<Result<_, _>>()
            .map_err(|m| err(v.span(), "redirect.addresses", m))?;
    }
    if let Some(v) = &r.tun {
        crate::sys::iface::check_ifname(v.get_ref()).map_err(|m| {
            err(
                v.span(),
                "redirect.tun",
                format!("{m} (got {:?})", v.get_ref()),
            )
        })?;
        c.tun = v.get_ref().clone();
    }
    let int = |v: &Option<Spanned<i64>>,
               field: &str,
               range: std::ops::RangeInclusive<i64>,
               unit: &str|
     -> Result<Option<i64>, ConfigError> {
        match v {
            None => Ok(None),
            Some(v) if range.contains(v.get_ref()) => Ok(Some(*v.get_ref())),
            Some(v) => Err(err(
                v.span(),
                &format!("redirect.{field}"),
                format!(
                    "expected {}..={} {unit}, got {}",
                    range.start(),
                    range.end(),
                    v.get_ref()
                ),
            )),
        }
    };
    let max_hops = gue::MAX_HOPS_V4 as i64;
    if let Some(n) = int(&r.hop_limit, "hop_limit", 0..=max_hops, "hops")? {
        c.hop_limit = n as u8;
    }
    if let Some(n) = int(
        &r.diag_cache_ttl_ms,
        "diag_cache_ttl_ms",
        0..=60_000,
        "milliseconds",
    )? {
        c.diag_cache_ttl = Duration::from_millis(n as u64);
    }
    if let Some(n) = int(
        &r.diag_cache_entries,
        "diag_cache_entries",
        1..=1 << 20,
        "entries",
    )? {
        c.diag_cache_entries = n as usize;
    }
    if let Some(n) = int(
        &r.syncookie_window_secs,
        "syncookie_window_secs",
        0..=3600,
        "seconds",
    )? {
        c.syncookie_window = Duration::from_secs(n as u64);
    }
    if let Some(n) = int(
        &r.stats_interval_secs,
        "stats_interval_secs",
        0..=86_400,
        "seconds",
    )? {
        c.stats_interval = Duration::from_secs(n as u64);
    }
    if let Some(b) = r.second_chance {
        c.second_chance = b;
    }
    if let Some(q) = &r.quic_lb {
        c.quic_lb = Some(quic_lb(q, &err, file)?);
    }
    Ok(c)
}

/// `[redirect.quic_lb]`: one or two configurations at distinct codepoints, all of the
/// server ID's length, and at least one port.
fn quic_lb(
    q: &RawQuicLb,
    err: &dyn Fn(std::ops::Range<usize>, &str, String) -> ConfigError,
    file: &str,
) -> Result<QuicPolicy, ConfigError> {
    let missing = |field: &str, what: &str| {
        ConfigError::field(
            file,
            None,
            format!("redirect.quic_lb.{field}"),
            format!("missing: {what}"),
        )
    };
    let Some(sid) = &q.server_id else {
        return Err(missing(
            "server_id",
            "this backend's QUIC-LB server ID in hex, as the directors' table gives it, e.g. server_id = \"0001\"",
        ));
    };
    let server_id = ServerId::from_hex(sid.get_ref())
        .map_err(|e| err(sid.span(), "redirect.quic_lb.server_id", e.to_string()))?;
    let Some(specs) = &q.configs else {
        return Err(missing(
            "configs",
            "the QUIC-LB configurations the servers issue CIDs with (the directors' table `quic_lb`), e.g. configs = [{ config_id = 1, server_id_len = 2, nonce_len = 6, key = \"...\" }]",
        ));
    };
    let field = "redirect.quic_lb.configs";
    let (_, configs) = quic_lb_configs(specs.get_ref())
        .map_err(|(k, m)| err(specs.span(), &format!("{field}{k}"), m))?;
    if let Some(c) = configs
        .iter()
        .find(|c| c.server_id_len() != server_id.len())
    {
        return Err(err(
            specs.span(),
            field,
            format!(
                "config_id {} has server_id_len {}: the server ID {server_id} has {} bytes",
                c.config_id(),
                c.server_id_len(),
                server_id.len()
            ),
        ));
    }
    let ports = match &q.ports {
        None => vec![DEFAULT_PORT],
        Some(p) if p.get_ref().is_empty() => {
            return Err(err(
                p.span(),
                "redirect.quic_lb.ports",
                "expected at least one UDP port, or leave `ports` out (443)".into(),
            ))
        }
        Some(p) => p
            .get_ref()
            .iter()
            .map(|&n| {
                u16::try_from(n)
                    .ok()
                    .filter(|&n| n != 0)
                    .ok_or_else(|| format!("expected UDP ports 1..=65535, got {n}"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|m| err(p.span(), "redirect.quic_lb.ports", m))?,
    };
    Ok(QuicPolicy {
        configs,
        server_id,
        ports,
    })
}

/// Read and parse a backend config file.
pub fn load(path: &Path) -> Result<RedirectConfig, ConfigError> {
    let file = path.display().to_string();
    let text =
        crate::sys::file::read_text_bounded(path, crate::sys::file::CONFIG_LIMIT, "a config file")?;
    parse(&text, &file)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[redirect]
listen = ["0.0.0.0:19523", "10.0.0.2"]
addresses = ["10.0.0.2", "fd00::2"]
directors = ["10.0.1.0/24"]
backends = ["10.0.0.0/24", "fd00::/64"]
tun = "gue1"
hop_limit = 3
diag_cache_ttl_ms = 0
diag_cache_entries = 100
syncookie_window_secs = 60
stats_interval_secs = 0
second_chance = false
"#;

    #[test]
    fn a_full_config_parses() {
        let c = parse(GOOD, "b.toml").unwrap();
        assert_eq!(
            c.listen,
            vec![
                "0.0.0.0:19523".parse().unwrap(),
                "10.0.0.2:19523".parse().unwrap()
            ]
        );
        assert!(!c.listen_is_default);
        assert_eq!(c.addresses.len(), 2);
        assert!(c.directors.contains("10.0.1.77".parse().unwrap()));
        assert!(!c.directors.contains("10.0.0.77".parse().unwrap()));
        assert!(c.backends.contains("fd00::9".parse().unwrap()));
        assert_eq!(c.tun, "gue1");
        assert_eq!(c.hop_limit, 3);
        assert_eq!(c.diag_cache_ttl, Duration::ZERO);
        assert_eq!(c.diag_cache_entries, 100);
        assert_eq!(c.syncookie_window, Duration::from_secs(60));
        assert_eq!(c.stats_interval, Duration::ZERO);
        assert!(!c.second_chance);
        assert!(is_redirect_config(GOOD));
        assert!(!is_redirect_config("[director]\nx = 1\n"));
        assert!(!is_redirect_config("not toml ["));
    }

    #[test]
    fn defaults() {
        let c = parse(
            "[redirect]\ndirectors = [\"10.0.1.1\"]\nbackends = [\"10.0.0.0/24\"]\n",
            "b.toml",
        )
        .unwrap();
        assert_eq!(c.listen, RedirectConfig::default_listen());
        assert!(c.listen_is_default);
        assert_eq!(
            (c.tun.as_str(), c.hop_limit),
            (DEFAULT_TUN, DEFAULT_HOP_LIMIT)
        );
        assert!(c.second_chance);
    }

    const BASE: &str = "[redirect]\ndirectors = [\"10.0.1.1\"]\nbackends = [\"10.0.0.0/24\"]\n";

    #[test]
    fn a_quic_lb_section_parses() {
        let text = format!(
            "{BASE}[redirect.quic_lb]\nserver_id = \"0a0b\"\nports = [443, 8443]\nconfigs = [\n  {{ config_id = 1, server_id_len = 2, nonce_len = 6, key = \"950983482b0692f78f6057baee94118c\" }},\n  {{ config_id = 2, server_id_len = 2, nonce_len = 14 }},\n]\n"
        );
        let q = parse(&text, "b.toml").unwrap().quic_lb.unwrap();
        assert_eq!(q.server_id.as_bytes(), &[0x0a, 0x0b]);
        assert_eq!(q.ports, vec![443, 8443]);
        assert_eq!(q.configs.len(), 2);
        assert!(q.configs.get(1).unwrap().key().is_some());
        assert!(q.configs.get(2).unwrap().key().is_none());
        // One configuration as a table, ports defaulting to 443.
        let text = format!(
            "{BASE}[redirect.quic_lb]\nserver_id = \"0a0b\"\nconfigs = {{ config_id = 0, server_id_len = 2, nonce_len = 4 }}\n"
        );
        let q = parse(&text, "b.toml").unwrap().quic_lb.unwrap();
        assert_eq!((q.ports.as_slice(), q.configs.len()), (&[443u16][..], 1));
        assert!(parse(BASE, "b.toml").unwrap().quic_lb.is_none());
    }

    #[test]
    fn quic_lb_errors_name_the_field() {
        let cfg = "{ config_id = 1, server_id_len = 2, nonce_len = 6 }";
        let cases: &[(&str, &str, &str)] = &[
            (&format!("configs = [{cfg}]"), "redirect.quic_lb.server_id", "missing"),
            ("server_id = \"0a0b\"", "redirect.quic_lb.configs", "missing"),
            (&format!("server_id = \"zz\"\nconfigs = [{cfg}]"), "redirect.quic_lb.server_id", "hex"),
            (&format!("server_id = \"0a0b0c\"\nconfigs = [{cfg}]"), "redirect.quic_lb.configs", "server ID 0a0b0c has 3 bytes"),
            ("server_id = \"0a0b\"\nconfigs = []", "redirect.quic_lb.configs", "got none"),
            ("server_id = \"0a0b\"\nconfigs = 5", "redirect.quic_lb.configs", "expected a configuration table"),
            (&format!("server_id = \"0a0b\"\nconfigs = [{cfg}, {cfg}]"), "redirect.quic_lb.configs", "config_id 1"),
            ("server_id = \"0a0b\"\nconfigs = [{ config_id = 7, server_id_len = 2, nonce_len = 6 }]", "redirect.quic_lb.configs", "config_id"),
            ("server_id = \"0a0b\"\nconfigs = [{ config_id = 1, server_id_len = 2, nonce_len = 6, key = \"00ff\" }]", "redirect.quic_lb.configs", "16"),
            ("server_id = \"0a0b\"\nconfigs = [{ config_id = 1, server_id_len = 2, nonce_len = 6, kee = 1 }]", "redirect.quic_lb.configs[0]", "unknown field"),
            (&format!("server_id = \"0a0b\"\nports = [0]\nconfigs = [{cfg}]"), "redirect.quic_lb.ports", "1..=65535"),
            (&format!("server_id = \"0a0b\"\nports = [70000]\nconfigs = [{cfg}]"), "redirect.quic_lb.ports", "1..=65535"),
            (&format!("server_id = \"0a0b\"\nports = []\nconfigs = [{cfg}]"), "redirect.quic_lb.ports", "at least one"),
        ];
        for (lines, field, want) in cases {
            let text = format!("{BASE}[redirect.quic_lb]\n{lines}\n");
            let e = parse(&text, "b.toml").unwrap_err().to_string();
            assert!(e.starts_with("b.toml"), "{lines}: {e}");
            assert!(e.contains(field) && e.contains(want), "{lines}: {e}");
        }
        let e = parse(
            &format!("{BASE}[redirect.quic_lb]\nserverid = 1\n"),
            "b.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown field"), "{e}");
    }

    #[test]
    fn errors_name_file_line_field_and_expectation() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "hop_limit = 99",
                "redirect.hop_limit",
                "expected 0..=30 hops, got 99",
            ),
            ("tun = \"a/b\"", "redirect.tun", "cannot contain"),
            (
                "tun = \"averyveryverylongname\"",
                "redirect.tun",
                "at most 15",
            ),
            (
                "listen = [\"nope\"]",
                "redirect.listen",
                "expected an address like",
            ),
            ("listen = []", "redirect.listen", "at least one"),
            (
                "addresses = [\"10.0.0.0/8\"]",
                "redirect.addresses",
                "expected an IPv4 or IPv6 address",
            ),
            (
                "diag_cache_entries = 0",
                "redirect.diag_cache_entries",
                "expected 1..=",
            ),
            (
                "diag_cache_ttl_ms = -1",
                "redirect.diag_cache_ttl_ms",
                "milliseconds",
            ),
            (
                "syncookie_window_secs = 9999",
                "redirect.syncookie_window_secs",
                "seconds",
            ),
            (
                "stats_interval_secs = -5",
                "redirect.stats_interval_secs",
                "seconds",
            ),
        ];
        for (line, field, want) in cases {
            let text = format!(
                "[redirect]\ndirectors = [\"10.0.1.1\"]\nbackends = [\"10.0.0.0/24\"]\n{line}\n"
            );
            let e = parse(&text, "b.toml").unwrap_err().to_string();
            assert!(e.starts_with("b.toml:4: "), "{line}: {e}");
            assert!(e.contains(field) && e.contains(want), "{line}: {e}");
        }
        let e = parse("[redirect]\nbackends = [\"10.0.0.0/24\"]\n", "b.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("redirect.directors") && e.contains("missing"),
            "{e}"
        );
        let e = parse(
            "[redirect]\ndirectors = []\nbackends = [\"10.0.0.0/24\"]\n",
            "b.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("b.toml:2: redirect.directors"), "{e}");
        let e = parse(
            "[redirect]\ndirectors = [\"10.0.1.1\"]\nbackends = [\"10.0.0.0/33\"]\n",
            "b.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("b.toml:3: redirect.backends") && e.contains("0..=32"),
            "{e}"
        );
        let e = parse(
            "[redirect]\ndirectors = [\"10.0.1.1\"]\nbackend = []\n",
            "b.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("b.toml:3") && e.contains("unknown field"),
            "{e}"
        );
    }
}
