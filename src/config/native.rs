//! Native TOML configuration.
//!
//! ```toml
//! [director]
//! outbound_gateway_mac = "02:00:00:00:00:fe"
//! outbound_src_ip = "10.0.0.10"
//! hash_fields = ["src_addr"]
//!
//! [[tables]]
//! name = "web"
//! hash_key = "12345678901234561234567890123456"
//! seed = "34567890123456783456789012345678"
//! binds = [{ ip = "1.1.1.1", proto = "tcp", port = 80 }]
//!
//! [[tables.backends]]
//! ip = "10.1.0.1"
//! ```
//! Tables may instead come from GLB files: `forwarding_table = "table.json"` (or `.bin`).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::{
    parse_ip_or_cidr, ConfigError, ConsoleSettings, DirectorSettings, DpdkSettings, Endpoint,
    HashFields, MetricsSettings, RunSettings,
};
use crate::config::settings::DEFAULT_SRC_MAC;
use crate::hash::parse_hex_key;
use crate::quic_lb::ServerId;
use crate::table::{
    Backend, BackendState, Bind, HealthChecks, Proto, QuicLbTable, RowPolicy, TableSpec,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    director: RawDirector,
    runtime: Option<RawRuntime>,
    dpdk: Option<RawDpdk>,
    #[serde(default)]
    ports: Vec<RawPort>,
    #[serde(default)]
    tables: Vec<RawTable>,
    forwarding_table: Option<Spanned<String>>,
    console: Option<RawConsole>,
    metrics: Option<RawMetrics>,
    bgp: Option<Spanned<toml::Table>>,
    fleet: Option<Spanned<toml::Table>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConsole {
    /// Path of the unix socket, or "off".
    socket: Option<Spanned<String>>,
    max_clients: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    /// "IP:PORT" of the Prometheus endpoint, or "off".
    listen: Option<Spanned<String>>,
    /// "IP:PORT" to push statsd to.
    statsd: Option<Spanned<String>>,
    statsd_interval_ms: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDirector {
    outbound_gateway_mac: Spanned<String>,
    outbound_src_ip: Spanned<String>,
    outbound_src_ip6: Option<Spanned<String>>,
    src_mac: Option<Spanned<String>>,
    forward_icmp_ping_responses: Option<bool>,
    hash_fields: Option<Spanned<Vec<String>>>,
    alt_hash_fields: Option<Spanned<Vec<String>>>,
    row_policy: Option<Spanned<String>>,
    hops: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRuntime {
    workers: Option<Spanned<i64>>,
    cores: Option<Spanned<Vec<i64>>>,
    /// "poll" (default) or "sleep"
    idle: Option<Spanned<String>>,
    idle_sleep_us: Option<Spanned<i64>>,
    /// "drop" or "tap:NAME"
    exception: Option<Spanned<String>>,
    pool_size: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDpdk {
    eal_args: Option<Spanned<Vec<String>>>,
    rx_desc: Option<Spanned<i64>>,
    tx_desc: Option<Spanned<i64>>,
    mbuf_cache: Option<Spanned<i64>>,
    mbuf_data_room: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPort {
    spec: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    name: Spanned<String>,
    hash_key: Spanned<String>,
    seed: Spanned<String>,
    #[serde(default)]
    binds: Vec<RawBind>,
    #[serde(default)]
    backends: Vec<RawBackend>,
    /// QUIC-LB configurations for the table's UDP binds: one table, or an array of one or
    /// two while keys rotate.
    quic_lb: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBind {
    ip: Spanned<String>,
    proto: Spanned<String>,
    port: Option<Spanned<i64>>,
    port_start: Option<Spanned<i64>>,
    port_end: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackend {
    ip: Spanned<String>,
    state: Option<Spanned<String>>,
    healthy: Option<bool>,
    weight: Option<Spanned<i64>>,
    #[serde(default)]
    healthchecks: RawHealthChecks,
    /// QUIC-LB server ID, hex (tables with `quic_lb` only).
    server_id: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHealthChecks {
    http: Option<Spanned<i64>>,
    http_uri: Option<String>,
    tcp: Option<Spanned<i64>>,
    gue: Option<Spanned<i64>>,
}

/// A fleet's desired document in native TOML (`rondo fleet push`): `[[tables]]` as in a
/// config file and the operator's `[[overrides]]`, nothing else (director settings, ports
/// and daemons stay in each director's own config).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDesired {
    #[serde(default)]
    tables: Vec<RawTable>,
    #[serde(default)]
    overrides: Vec<RawOverride>,
}

/// One operator override in a desired document.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOverride {
    table: Spanned<String>,
    ip: Spanned<String>,
    state: Option<Spanned<String>>,
    weight: Option<Spanned<i64>>,
    health: Option<Spanned<String>>,
}

/// What a native file describes: settings plus either inline tables or a GLB table file.
pub struct NativeConfig {
    pub settings: DirectorSettings,
    pub tables: NativeTables,
    pub run: RunSettings,
}

pub enum NativeTables {
    Inline(Vec<TableSpec>),
    /// `[fleet]`: the tables come from etcd `<prefix>/desired` (see `config::fleet`).
    Fleet,
    /// Path (resolved against the config's folder) of a GLB `.json` or `.bin` table file.
    GlbFile(std::path::PathBuf),
}

struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
}

impl Ctx<'_> {
    fn line(&self, span: std::ops::Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }
    fn err(
        &self,
        span: std::ops::Range<usize>,
        field: impl Into<String>,
        msg: impl Into<String>,
    ) -> ConfigError {
        ConfigError::field(self.file, Some(self.line(span)), field, msg)
    }
}

/// Parse a native TOML document. `file` names it in errors; relative `forwarding_table`
/// paths are resolved against `file`'s folder.
pub fn parse(text: &str, file: &str) -> Result<NativeConfig, ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| {
            text.as_bytes()[..s.start.min(text.len())]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1
        });
        ConfigError::field(file, line, "", e.message().to_string())
    })?;
    let cx = Ctx { file, text };
    let settings = settings(&cx, &raw.director)?;
    let fleet = match &raw.fleet {
        Some(f) => Some(super::fleet::parse(file, text, f)?),
        None => None,
    };
    let tables = if fleet.is_some() {
        if let Some(p) = &raw.forwarding_table {
            let line = super::fleet::line(text, p.span().start);
            return Err(super::fleet::tables_refused(
                file,
                Some(line),
                "forwarding_table",
            ));
        }
        if let Some(t) = raw.tables.first() {
            let line = super::fleet::line(text, t.name.span().start);
            return Err(super::fleet::tables_refused(file, Some(line), "tables"));
        }
        NativeTables::Fleet
    } else {
        match (&raw.forwarding_table, raw.tables.is_empty()) {
            (Some(path), true) => {
                let base = Path::new(file).parent().unwrap_or(Path::new(""));
                NativeTables::GlbFile(base.join(path.get_ref()))
            }
            (Some(path), false) => {
                return Err(cx.err(
                    path.span(),
                    "forwarding_table",
                    "give either `forwarding_table` or inline [[tables]], not both",
                ))
            }
            (None, true) => return Err(ConfigError::field(
                file,
                None,
                "tables",
                "no tables: add at least one [[tables]] section or `forwarding_table = \"FILE\"`",
            )),
            (None, false) => NativeTables::Inline(
                raw.tables
                    .iter()
                    .enumerate()
                    .map(|(i, t)| table(&cx, i, t))
                    .collect::<Result<_, _>>()?,
            ),
        }
    };
    if let NativeTables::Inline(specs) = &tables {
        check_unique_names(&cx, specs, &raw.tables)?;
    }
    let mut run = run_settings(&cx, raw.runtime.as_ref(), &raw.ports)?;
    if let Some(d) = &raw.dpdk {
        run.dpdk = dpdk_settings(&cx, d)?;
    }
    if let Some(c) = &raw.console {
        run.console = console_settings(&cx, c)?;
    }
    if let Some(m) = &raw.metrics {
        run.metrics = metrics_settings(&cx, m)?;
    }
    if let Some(b) = &raw.bgp {
        let s = crate::fleet::bgp::BgpRunSettings::from_toml_table(b.get_ref()).map_err(|e| {
            cx.err(
                b.span(),
                if e.field.starts_with('(') {
                    "bgp".to_string()
                } else {
                    format!("bgp.{}", e.field)
                },
                if e.message.contains("unknown field") {
                    format!(
                        "{} (the [bgp] keys: daemon, socket, include, lifeline, protocol_v4, protocol_v6, export_filter, communities, large_communities, med, sessions, timeout_ms, drain_ms, graceful_ms, stall_ms)",
                        e.message
                    )
                } else {
                    e.message
                },
            )
        })?;
        run.bgp = Some(s);
    }
    run.fleet = fleet;
    Ok(NativeConfig {
        settings,
        tables,
        run,
    })
}

fn run_settings(
    cx: &Ctx,
    r: Option<&RawRuntime>,
    ports: &[RawPort],
) -> Result<RunSettings, ConfigError> {
    let mut run = RunSettings {
        ports: ports.iter().map(|p| p.spec.get_ref().clone()).collect(),
        ..RunSettings::default()
    };
    if let Some(p) = ports.get(1) {
        return Err(cx.err(
            p.spec.span(),
            "ports[1]",
            "one port per director for now (it receives and sends)",
        ));
    }
    let Some(r) = r else { return Ok(run) };
    if let Some(w) = &r.workers {
        match usize::try_from(*w.get_ref()) {
            Ok(n @ 1..=1024) => run.workers = Some(n),
            _ => {
                return Err(cx.err(
                    w.span(),
                    "runtime.workers",
                    format!("expected 1..=1024 workers, got {}", w.get_ref()),
                ))
            }
        }
    }
    if let Some(c) = &r.cores {
        let cores: Result<Vec<usize>, _> =
            c.get_ref().iter().map(|&x| usize::try_from(x)).collect();
        let cores = cores
            .map_err(|_| cx.err(c.span(), "runtime.cores", "expected core ids (0, 1, ...)"))?;
        if cores.is_empty() {
            return Err(cx.err(
                c.span(),
                "runtime.cores",
                "list at least one core, or leave `cores` out",
            ));
        }
        if let Some(w) = run.workers {
            if w != cores.len() {
                return Err(cx.err(
                    c.span(),
                    "runtime.cores",
                    format!(
                        "{} cores for {w} workers: list one core per worker",
                        cores.len()
                    ),
                ));
            }
        }
        run.cores = Some(cores);
    }
    match r.idle.as_ref().map(|v| (v.get_ref().as_str(), v)) {
        None | Some(("poll", _)) => {}
        Some(("sleep", _)) => {
            run.idle_sleep_us = Some(match &r.idle_sleep_us {
                None => 50,
                Some(v) => match u64::try_from(*v.get_ref()) {
                    Ok(us @ 1..=100_000) => us,
                    _ => {
                        return Err(cx.err(
                            v.span(),
                            "runtime.idle_sleep_us",
                            "expected 1..=100000 microseconds",
                        ))
                    }
                },
            })
        }
        Some((other, v)) => {
            return Err(cx.err(
                v.span(),
                "runtime.idle",
                format!("expected \"poll\" or \"sleep\", got {other:?}"),
            ))
        }
    }
    if let Some(e) = &r.exception {
        let v = e.get_ref();
        run.exception_tap = match v.as_str() {
            "drop" => None,
            t => match t.strip_prefix("tap:") {
                Some(name) if !name.is_empty() && name.len() <= 15 => Some(name.to_string()),
                _ => {
                    return Err(cx.err(
                        e.span(),
                        "runtime.exception",
                        format!(
                        "expected \"drop\" or \"tap:NAME\" (NAME at most 15 characters), got {v:?}"
                    ),
                    ))
                }
            },
        };
    }
    if let Some(p) = &r.pool_size {
        match usize::try_from(*p.get_ref()) {
            Ok(n @ 64..=4_194_304) => run.pool_size = n,
            _ => {
                return Err(cx.err(
                    p.span(),
                    "runtime.pool_size",
                    format!("expected 64..=4194304 buffers, got {}", p.get_ref()),
                ))
            }
        }
    }
    Ok(run)
}

fn dpdk_settings(cx: &Ctx, d: &RawDpdk) -> Result<DpdkSettings, ConfigError> {
    let mut s = DpdkSettings::default();
    if let Some(a) = &d.eal_args {
        if let Some(bad) = a
            .get_ref()
            .iter()
            .find(|x| x.is_empty() || x.contains('\0'))
        {
            return Err(cx.err(
                a.span(),
                "dpdk.eal_args",
                format!("expected non-empty arguments without NUL bytes, got {bad:?}"),
            ));
        }
        s.eal_args = Some(a.get_ref().clone());
    }
    let ranged = |v: &Option<Spanned<i64>>, field: &str, lo: i64, hi: i64| {
        v.as_ref()
            .map(|v| {
                let x = *v.get_ref();
                if (lo..=hi).contains(&x) {
                    Ok(x)
                } else {
                    Err(cx.err(v.span(), field, format!("expected {lo}..={hi}, got {x}")))
                }
            })
            .transpose()
    };
    if let Some(x) = ranged(&d.rx_desc, "dpdk.rx_desc", 32, 32768)? {
        s.rx_desc = x as u16;
    }
    if let Some(x) = ranged(&d.tx_desc, "dpdk.tx_desc", 32, 32768)? {
        s.tx_desc = x as u16;
    }
    if let Some(x) = ranged(&d.mbuf_cache, "dpdk.mbuf_cache", 0, 512)? {
        s.mbuf_cache = x as u32;
    }
    if let Some(x) = ranged(&d.mbuf_data_room, "dpdk.mbuf_data_room", 128, 65000)? {
        s.mbuf_data_room = x as u16;
    }
    Ok(s)
}

/// Longest path a unix socket address holds (`sun_path` is 108 bytes with the NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// Check a console socket path: `Err(message)` naming what is wrong.
pub fn check_socket_path(p: &str) -> Result<(), String> {
    if p.is_empty() {
        return Err("expected a path for the console socket, or \"off\"".into());
    }
    if p.len() > MAX_SOCKET_PATH {
        return Err(format!(
            "the path is {} bytes; a unix socket path holds at most {MAX_SOCKET_PATH}",
            p.len()
        ));
    }
    if p.contains('\0') {
        return Err("the path contains a NUL byte".into());
    }
    Ok(())
}

fn console_settings(cx: &Ctx, c: &RawConsole) -> Result<ConsoleSettings, ConfigError> {
    let mut out = ConsoleSettings::default();
    if let Some(s) = &c.socket {
        out.socket = match s.get_ref().as_str() {
            "off" => Endpoint::Off,
            p => {
                check_socket_path(p).map_err(|m| cx.err(s.span(), "console.socket", m))?;
                Endpoint::At(PathBuf::from(p))
            }
        };
    }
    if let Some(m) = &c.max_clients {
        match usize::try_from(*m.get_ref()) {
            Ok(n @ 1..=1024) => out.max_clients = n,
            _ => {
                return Err(cx.err(
                    m.span(),
                    "console.max_clients",
                    format!("expected 1..=1024 sessions, got {}", m.get_ref()),
                ))
            }
        }
    }
    Ok(out)
}

fn socket_addr(cx: &Ctx, v: &Spanned<String>, field: &str) -> Result<SocketAddr, ConfigError> {
    v.get_ref().parse().map_err(|_| {
        cx.err(
            v.span(),
            field,
            format!(
                "expected IP:PORT like 127.0.0.1:9525 or [::1]:9525, got {:?}",
                v.get_ref()
            ),
        )
    })
}

fn metrics_settings(cx: &Ctx, m: &RawMetrics) -> Result<MetricsSettings, ConfigError> {
    let mut out = MetricsSettings::default();
    if let Some(l) = &m.listen {
        out.listen = match l.get_ref().as_str() {
            "off" => Endpoint::Off,
            _ => Endpoint::At(socket_addr(cx, l, "metrics.listen")?),
        };
    }
    if let Some(s) = &m.statsd {
        out.statsd = Some(socket_addr(cx, s, "metrics.statsd")?);
    }
    if let Some(i) = &m.statsd_interval_ms {
        match u64::try_from(*i.get_ref()) {
            Ok(ms @ 100..=3_600_000) => out.statsd_interval_ms = ms,
            _ => {
                return Err(cx.err(
                    i.span(),
                    "metrics.statsd_interval_ms",
                    format!("expected 100..=3600000 milliseconds, got {}", i.get_ref()),
                ))
            }
        }
    }
    Ok(out)
}

fn check_unique_names(cx: &Ctx, specs: &[TableSpec], raw: &[RawTable]) -> Result<(), ConfigError> {
    for (i, s) in specs.iter().enumerate() {
        if let Some(j) = specs[..i].iter().position(|o| o.name == s.name) {
            return Err(cx.err(
                raw[i].name.span(),
                format!("tables[{i}].name"),
                format!("table name {:?} is already used by tables[{j}]", s.name),
            ));
        }
    }
    Ok(())
}

fn hash_fields(cx: &Ctx, field: &str, v: &Spanned<Vec<String>>) -> Result<HashFields, ConfigError> {
    let mut h = HashFields::none();
    for name in v.get_ref() {
        h.set(name, true).map_err(|m| cx.err(v.span(), field, m))?;
    }
    Ok(h)
}

fn settings(cx: &Ctx, d: &RawDirector) -> Result<DirectorSettings, ConfigError> {
    let mac = |v: &Spanned<String>, field: &str| {
        v.get_ref().parse().map_err(|_| {
            cx.err(
                v.span(),
                field,
                format!(
                    "expected a MAC address like 02:00:00:00:00:01, got {:?}",
                    v.get_ref()
                ),
            )
        })
    };
    let gateway_mac = mac(&d.outbound_gateway_mac, "director.outbound_gateway_mac")?;
    let src_mac = match &d.src_mac {
        Some(v) => mac(v, "director.src_mac")?,
        None => DEFAULT_SRC_MAC,
    };
    let src_ipv4 = d.outbound_src_ip.get_ref().parse().map_err(|_| {
        cx.err(
            d.outbound_src_ip.span(),
            "director.outbound_src_ip",
            format!(
                "expected an IPv4 address, got {:?}",
                d.outbound_src_ip.get_ref()
            ),
        )
    })?;
    let src_ipv6 = match &d.outbound_src_ip6 {
        Some(v) => Some(v.get_ref().parse().map_err(|_| {
            cx.err(
                v.span(),
                "director.outbound_src_ip6",
                format!("expected an IPv6 address, got {:?}", v.get_ref()),
            )
        })?),
        None => None,
    };
    let hash = match &d.hash_fields {
        Some(v) => hash_fields(cx, "director.hash_fields", v)?,
        None => HashFields::default(),
    };
    if hash.is_empty() {
        let span = d.hash_fields.as_ref().map(|v| v.span()).unwrap_or(0..0);
        return Err(cx.err(
            span,
            "director.hash_fields",
            "at least one hash field is needed (src_addr, dst_addr, src_port, dst_port)",
        ));
    }
    let alt = match &d.alt_hash_fields {
        Some(v) => {
            let h = hash_fields(cx, "director.alt_hash_fields", v)?;
            (!h.is_empty()).then_some(h)
        }
        None => None,
    };
    let hops = match &d.hops {
        None => 2,
        Some(v) => match *v.get_ref() {
            n @ 1..=8 => n as usize,
            n => {
                return Err(cx.err(
                    v.span(),
                    "director.hops",
                    format!("hops per row must be 1..=8, got {n}"),
                ))
            }
        },
    };
    let row_policy = match d.row_policy.as_ref().map(|v| (v.get_ref().as_str(), v)) {
        None | Some(("native", _)) => RowPolicy::Native { hops },
        Some(("glb", v)) => {
            if hops != 2 {
                return Err(cx.err(
                    v.span(),
                    "director.row_policy",
                    "row_policy \"glb\" always has 2 hops; remove `hops`",
                ));
            }
            RowPolicy::Glb
        }
        Some((other, v)) => {
            return Err(cx.err(
                v.span(),
                "director.row_policy",
                format!("expected \"native\" or \"glb\", got {other:?}"),
            ))
        }
    };
    Ok(DirectorSettings {
        gateway_mac,
        src_mac,
        src_ipv4,
        src_ipv6,
        forward_icmp_ping_responses: d.forward_icmp_ping_responses.unwrap_or(true),
        hash_fields: hash,
        alt_hash_fields: alt,
        row_policy,
    })
}

fn port(cx: &Ctx, field: &str, v: &Spanned<i64>) -> Result<u16, ConfigError> {
    u16::try_from(*v.get_ref()).map_err(|_| {
        cx.err(
            v.span(),
            field,
            format!("expected a port 0..=65535, got {}", v.get_ref()),
        )
    })
}

fn table(cx: &Ctx, i: usize, t: &RawTable) -> Result<TableSpec, ConfigError> {
    let name = t.name.get_ref().clone();
    let at = |f: &str| format!("tables[{i}] ({name:?}).{f}");
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(cx.err(
            t.name.span(),
            at("name"),
            "expected a non-empty name without spaces",
        ));
    }
    let key = |v: &Spanned<String>, f: &str| {
        parse_hex_key(v.get_ref()).map_err(|m| cx.err(v.span(), at(f), m))
    };
    let hash_key = key(&t.hash_key, "hash_key")?;
    let seed = key(&t.seed, "seed")?;
    let mut binds = Vec::with_capacity(t.binds.len());
    for (j, b) in t.binds.iter().enumerate() {
        let f = |x: &str| at(&format!("binds[{j}].{x}"));
        let (addr, prefix_len) =
            parse_ip_or_cidr(b.ip.get_ref()).map_err(|m| cx.err(b.ip.span(), f("ip"), m))?;
        let proto = match b.proto.get_ref().as_str() {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            other => {
                return Err(cx.err(
                    b.proto.span(),
                    f("proto"),
                    format!("expected \"tcp\" or \"udp\", got {other:?}"),
                ))
            }
        };
        let (port_start, port_end) = match (&b.port, &b.port_start, &b.port_end) {
            (Some(p), None, None) => {
                let p = port(cx, &f("port"), p)?;
                (p, p)
            }
            (None, Some(s), Some(e)) => {
                let (ps, pe) = (port(cx, &f("port_start"), s)?, port(cx, &f("port_end"), e)?);
                if ps > pe {
                    return Err(cx.err(
                        s.span(),
                        f("port_start"),
                        format!("port_start {ps} is above port_end {pe}"),
                    ));
                }
                (ps, pe)
            }
            _ => {
                return Err(cx.err(
                    b.ip.span(),
                    at(&format!("binds[{j}]")),
                    "give either `port` or both `port_start` and `port_end`",
                ))
            }
        };
        binds.push(Bind {
            addr,
            prefix_len,
            proto,
            port_start,
            port_end,
        });
    }
    let mut backends: Vec<Backend> = Vec::with_capacity(t.backends.len());
    for (j, b) in t.backends.iter().enumerate() {
        let f = |x: &str| at(&format!("backends[{j}].{x}"));
        let ip: IpAddr = b.ip.get_ref().parse().map_err(|_| {
            cx.err(
                b.ip.span(),
                f("ip"),
                format!("expected an IPv4 or IPv6 address, got {:?}", b.ip.get_ref()),
            )
        })?;
        if let Some(k) = backends.iter().position(|o| o.ip == ip) {
            return Err(cx.err(
                b.ip.span(),
                f("ip"),
                format!("backend {ip} is already listed as backends[{k}]"),
            ));
        }
        let state = match &b.state {
            None => BackendState::Active,
            Some(s) => s
                .get_ref()
                .parse()
                .map_err(|m: String| cx.err(s.span(), f("state"), m))?,
        };
        let weight = match &b.weight {
            None => 1,
            Some(w) => match u32::try_from(*w.get_ref()) {
                Ok(w) if (1..=1000).contains(&w) => w,
                _ => {
                    return Err(cx.err(
                        w.span(),
                        f("weight"),
                        format!("expected a weight 1..=1000, got {}", w.get_ref()),
                    ))
                }
            },
        };
        let hc = &b.healthchecks;
        let opt_port = |v: &Option<Spanned<i64>>, x: &str| -> Result<Option<u16>, ConfigError> {
            v.as_ref()
                .map(|p| port(cx, &f(&format!("healthchecks.{x}")), p))
                .transpose()
        };
        backends.push(Backend {
            ip,
            state,
            healthy: b.healthy.unwrap_or(true),
            weight,
            healthchecks: HealthChecks {
                http: opt_port(&hc.http, "http")?,
                http_uri: hc.http_uri.clone(),
                tcp: opt_port(&hc.tcp, "tcp")?,
                gue: opt_port(&hc.gue, "gue")?,
            },
        });
    }
    let quic_lb = quic_lb_table(cx, &at, t, &binds, &backends)?;
    Ok(TableSpec {
        name,
        hash_key,
        seed: Some(seed),
        binds,
        backends,
        quic_lb,
    })
}

/// A table's `quic_lb` and its backends' `server_id`s: at most two configurations at
/// distinct codepoints, one server ID length, at least one UDP bind, every server ID of that
/// length and none twice.
fn quic_lb_table(
    cx: &Ctx,
    at: &dyn Fn(&str) -> String,
    t: &RawTable,
    binds: &[Bind],
    backends: &[Backend],
) -> Result<Option<QuicLbTable>, ConfigError> {
    let Some(specs) = &t.quic_lb else {
        if let Some((j, b)) = t
            .backends
            .iter()
            .enumerate()
            .find_map(|(j, b)| Some((j, b.server_id.as_ref()?)))
        {
            return Err(cx.err(
                b.span(),
                at(&format!("backends[{j}].server_id")),
                "a server ID needs the table's `quic_lb` configurations",
            ));
        }
        return Ok(None);
    };
    let field = at("quic_lb");
    let (list, configs) = super::quic_lb_configs(specs.get_ref())
        .map_err(|(k, m)| cx.err(specs.span(), format!("{field}{k}"), m))?;
    let Some(sid_len) = configs.iter().next().map(|c| c.server_id_len()) else {
        return Err(cx.err(
            specs.span(),
            field,
            "expected one or two configurations, got none",
        ));
    };
    if let Some(c) = configs.iter().find(|c| c.server_id_len() != sid_len) {
        return Err(cx.err(
            specs.span(),
            field,
            format!(
                "every configuration needs the same server_id_len (a backend has one server ID): {sid_len} and {} (config_id {})",
                c.server_id_len(),
                c.config_id()
            ),
        ));
    }
    if !binds.iter().any(|b| b.proto == Proto::Udp) {
        return Err(cx.err(
            specs.span(),
            field,
            "QUIC-LB routes UDP: the table has no udp bind",
        ));
    }
    let mut server_ids: Vec<(IpAddr, ServerId)> = Vec::new();
    for (j, (raw, b)) in t.backends.iter().zip(backends).enumerate() {
        let Some(hex) = &raw.server_id else { continue };
        let f = at(&format!("backends[{j}].server_id"));
        let id = ServerId::from_hex(hex.get_ref())
            .map_err(|e| cx.err(hex.span(), f.clone(), e.to_string()))?;
        if id.len() != sid_len {
            return Err(cx.err(
                hex.span(),
                f,
                format!(
                    "server ID {id} has {} bytes: the table's quic_lb server_id_len is {sid_len}",
                    id.len()
                ),
            ));
        }
        if let Some((other, _)) = server_ids.iter().find(|(_, o)| *o == id) {
            return Err(cx.err(
                hex.span(),
                f,
                format!("server ID {id} is already backend {other}'s"),
            ));
        }
        server_ids.push((b.ip, id));
    }
    Ok(Some(QuicLbTable {
        configs: list,
        server_ids,
    }))
}

/// Parse a fleet's desired document in native TOML: its tables (validated as in a config
/// file, line numbers in errors) and its overrides (each naming a table and one of its
/// backends, at most one per backend). `file` names the document in errors.
pub fn parse_desired(
    text: &str,
    file: &str,
) -> Result<(Vec<TableSpec>, Vec<super::desired::OverrideRule>), ConfigError> {
    let raw: RawDesired = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| {
            text.as_bytes()[..s.start.min(text.len())]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1
        });
        let mut msg = e.message().to_string();
        if msg.contains("unknown field") {
            msg.push_str(
                " (a desired document holds [[tables]] and [[overrides]] only: director settings, ports and daemons belong in each director's config)",
            );
        }
        ConfigError::field(file, line, "", msg)
    })?;
    let cx = Ctx { file, text };
    if raw.tables.is_empty() {
        return Err(ConfigError::field(
            file,
            None,
            "tables",
            "no tables: a desired document needs at least one [[tables]] section",
        ));
    }
    let specs: Vec<TableSpec> = raw
        .tables
        .iter()
        .enumerate()
        .map(|(i, t)| table(&cx, i, t))
        .collect::<Result<_, _>>()?;
    check_unique_names(&cx, &specs, &raw.tables)?;
    let mut rules = Vec::with_capacity(raw.overrides.len());
    for (i, o) in raw.overrides.iter().enumerate() {
        let at = |f: &str| format!("overrides[{i}].{f}");
        let ip: IpAddr = o.ip.get_ref().parse().map_err(|_| {
            cx.err(
                o.ip.span(),
                at("ip"),
                format!("expected an IP address, got {:?}", o.ip.get_ref()),
            )
        })?;
        let state = match &o.state {
            None => None,
            Some(v) => Some(
                v.get_ref()
                    .parse::<BackendState>()
                    .map_err(|m| cx.err(v.span(), at("state"), m))?,
            ),
        };
        let weight = match &o.weight {
            None => None,
            Some(v) => match u32::try_from(*v.get_ref()) {
                Ok(w) if w <= super::desired::MAX_WEIGHT => Some(w),
                _ => {
                    return Err(cx.err(
                        v.span(),
                        at("weight"),
                        format!(
                            "expected 0..={}, got {}",
                            super::desired::MAX_WEIGHT,
                            v.get_ref()
                        ),
                    ))
                }
            },
        };
        let health = match o.health.as_ref().map(|v| (v.get_ref().as_str(), v)) {
            None => None,
            Some(("up", _)) => Some(true),
            Some(("down", _)) => Some(false),
            Some((other, v)) => {
                return Err(cx.err(
                    v.span(),
                    at("health"),
                    format!("expected \"up\" or \"down\" (leave it out for the health checks' word), got {other:?}"),
                ))
            }
        };
        let rule = super::desired::OverrideRule {
            table: o.table.get_ref().clone(),
            ip,
            state,
            weight,
            health,
        };
        super::desired::check_rule(&specs, &rules, &rule)
            .map_err(|m| cx.err(o.table.span(), format!("overrides[{i}]"), m))?;
        rules.push(rule);
    }
    Ok((specs, rules))
}

#[cfg(test)]
mod console_metrics_tests {
    use super::*;

    const BASE: &str = r#"[director]
outbound_gateway_mac = "02:00:00:00:00:fe"
outbound_src_ip = "192.0.2.10"

[[tables]]
name = "web"
hash_key = "12345678901234561234567890123456"
seed = "34567890123456783456789012345678"
binds = [{ ip = "1.1.1.1", proto = "tcp", port = 80 }]
backends = [{ ip = "10.1.0.1" }]
"#;

    fn run_of(extra: &str) -> Result<RunSettings, String> {
        parse(&format!("{BASE}{extra}"), "c.toml")
            .map(|c| c.run)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_off_and_explicit_values() {
        let r = run_of("").unwrap();
        assert_eq!(r.console.socket, Endpoint::Default);
        assert_eq!(r.metrics.listen, Endpoint::Default);
        assert_eq!(r.metrics.statsd, None);
        let r = run_of(
            "[console]\nsocket = \"/tmp/r.sock\"\nmax_clients = 5\n[metrics]\nlisten = \"[::1]:9000\"\nstatsd = \"127.0.0.1:28125\"\nstatsd_interval_ms = 500\n",
        )
        .unwrap();
        assert_eq!(r.console.socket, Endpoint::At(PathBuf::from("/tmp/r.sock")));
        assert_eq!(r.console.max_clients, 5);
        assert_eq!(
            r.metrics.listen,
            Endpoint::At("[::1]:9000".parse().unwrap())
        );
        assert_eq!(r.metrics.statsd, Some("127.0.0.1:28125".parse().unwrap()));
        assert_eq!(r.metrics.statsd_interval_ms, 500);
        let r = run_of("[console]\nsocket = \"off\"\n[metrics]\nlisten = \"off\"\n").unwrap();
        assert_eq!(r.console.socket, Endpoint::Off);
        assert_eq!(r.metrics.listen, Endpoint::Off);
    }

    #[test]
    fn bgp_table_is_parsed_and_checked() {
        assert_eq!(run_of("").unwrap().bgp, None);
        let r = run_of(
            "[bgp]\nsocket = \"/run/bird/bird.ctl\"\ninclude = \"/etc/bird/rondo.conf\"\ncommunities = [\"65000:100\"]\nmed = 10\nsessions = [\"router1\"]\ndrain_ms = 3000\ngraceful_ms = 500\nstall_ms = 2000\n",
        )
        .unwrap();
        let b = r.bgp.expect("[bgp]");
        assert_eq!(b.bird.socket, PathBuf::from("/run/bird/bird.ctl"));
        assert_eq!(b.bird.med, Some(10));
        assert_eq!(b.bird.sessions.len(), 1);
        assert_eq!(b.drain.as_millis(), 3000);
        assert_eq!(b.graceful.as_millis(), 500);
        assert_eq!(b.stall.as_millis(), 2000);
        for (extra, wants) in [
            (
                "[bgp]\nsocket = \"/s\"\ninclude = \"/i.conf\"\nmed = \"x\"\n",
                vec!["c.toml:11: bgp: ", "expected u32"],
            ),
            (
                "[bgp]\nsocket = \"s\"\ninclude = \"/i.conf\"\n",
                vec!["bgp.socket", "absolute path"],
            ),
            (
                "[bgp]\nsocket = \"/s\"\ninclude = \"/i.conf\"\ndrain_ms = 9999999\n",
                vec!["bgp.drain_ms", "0 to 600000"],
            ),
            (
                "[bgp]\nsocket = \"/s\"\ninclude = \"/i.conf\"\npeer = 1\n",
                vec!["unknown field `peer`", "the [bgp] keys"],
            ),
        ] {
            let e = run_of(extra).unwrap_err();
            for w in wants {
                assert!(e.contains(w), "{extra:?}: expected {w:?} in {e}");
            }
        }
    }

    #[test]
    fn errors_name_file_line_field_and_expectation() {
        let long = format!("/{}", "x".repeat(120));
        let cases = [
            (
                format!("[console]\nsocket = \"{long}\"\n"),
                vec!["c.toml:12:", "console.socket", "at most 107"],
            ),
            (
                "[console]\nsocket = \"\"\n".to_string(),
                vec!["console.socket", "expected a path"],
            ),
            (
                "[console]\nmax_clients = 0\n".to_string(),
                vec!["c.toml:12:", "console.max_clients", "1..=1024"],
            ),
            (
                "[metrics]\nlisten = \"localhost:80\"\n".to_string(),
                vec![
                    "c.toml:12:",
                    "metrics.listen",
                    "IP:PORT",
                    "\"localhost:80\"",
                ],
            ),
            (
                "[metrics]\nstatsd = \"1.2.3.4\"\n".to_string(),
                vec!["metrics.statsd", "IP:PORT"],
            ),
            (
                "[metrics]\nstatsd_interval_ms = 5\n".to_string(),
                vec!["metrics.statsd_interval_ms", "100..=3600000"],
            ),
            (
                "[console]\npath = \"/x\"\n".to_string(),
                vec!["unknown field `path`"],
            ),
        ];
        for (extra, wants) in cases {
            let e = run_of(&extra).unwrap_err();
            for w in wants {
                assert!(e.contains(w), "{extra:?}: expected {w:?} in {e}");
            }
        }
    }
}
