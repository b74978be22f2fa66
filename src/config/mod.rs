//! Configuration: director settings plus forwarding tables, from native TOML ([`native`]) or
//! GLB's files ([`glb`]: `director.conf` JSON with `forwarding_table.json` / `.bin`).
//! [`load`] detects what a file is; every error names the file, the line where known, the
//! field path and what was expected. [`desired`] parses a fleet's desired document (tables
//! and operator overrides, as kept in etcd).

pub mod desired;
pub mod fleet;
pub mod glb;
pub mod load;
pub mod native;
mod settings;
#[cfg(test)]
pub(crate) mod testing;

pub use load::{
    config_from_str, load_config, load_file, load_glb, load_tables, parse_director_conf_file,
    Loaded,
};
pub use settings::{
    ConsoleSettings, DirectorSettings, DpdkSettings, Endpoint, HashFields, MetricsSettings,
    RunSettings, DEFAULT_CONSOLE_SOCKET, DEFAULT_METRICS_LISTEN, DEFAULT_SRC_MAC,
};

use crate::table::ForwardingTable;

/// A complete, validated configuration: what the datapath needs to forward.
#[derive(Debug, Clone)]
pub struct Config {
    pub settings: DirectorSettings,
    pub tables: Vec<ForwardingTable>,
    /// How `rondo run` runs (ports, workers, cores); defaults for GLB files.
    pub run: RunSettings,
}

/// A configuration error with enough context to fix the file at 3 a.m.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `file:line: field: message`.
    #[error("{file}{}: {field}{}{message}", line.map(|l| format!(":{l}")).unwrap_or_default(), if field.is_empty() { "" } else { ": " })]
    Field {
        file: String,
        line: Option<usize>,
        field: String,
        message: String,
    },
    #[error("{file}: {message}")]
    File { file: String, message: String },
    #[error(transparent)]
    Table(#[from] crate::table::TableError),
    #[error(transparent)]
    Read(#[from] crate::sys::file::ReadError),
}

impl ConfigError {
    pub(crate) fn field(
        file: &str,
        line: Option<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ConfigError::Field {
            file: file.to_string(),
            line,
            field: field.into(),
            message: message.into(),
        }
    }
}

/// QUIC-LB configurations as a table or an array of tables (a director table's `quic_lb`,
/// a backend's `[redirect.quic_lb] configs`), validated and built. The error is the field
/// suffix (`""` or `"[k]"`) and what was wrong.
pub fn quic_lb_configs(
    v: &toml::Value,
) -> Result<
    (
        Vec<crate::quic_lb::QuicLbSpec>,
        crate::quic_lb::QuicLbConfigs,
    ),
    (String, String),
> {
    let values = match v {
        toml::Value::Array(a) => a.clone(),
        v @ toml::Value::Table(_) => vec![v.clone()],
        _ => {
            return Err((
                String::new(),
                "expected a configuration table { config_id, server_id_len, nonce_len, key } or an array of one or two".into(),
            ))
        }
    };
    let specs = values
        .into_iter()
        .enumerate()
        .map(|(k, v)| {
            v.try_into::<crate::quic_lb::QuicLbSpec>()
                .map_err(|e| (format!("[{k}]"), e.message().trim_end().to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let configs = crate::quic_lb::QuicLbConfigs::from_specs(specs.iter())
        .map_err(|e| (String::new(), e.to_string()))?;
    if configs.is_empty() {
        return Err((
            String::new(),
            "expected one or two configurations, got none".into(),
        ));
    }
    Ok((specs, configs))
}

/// Parse an address or CIDR (`1.2.3.0/24`, `fdb4::/64`): `(address as written, prefix length)`.
pub fn parse_ip_or_cidr(s: &str) -> Result<(std::net::IpAddr, u8), String> {
    let (ip, bits) = match s.split_once('/') {
        Some((ip, bits)) => (ip, Some(bits)),
        None => (s, None),
    };
    let ip: std::net::IpAddr = ip
        .trim()
        .parse()
        .map_err(|_| format!("expected an IPv4/IPv6 address or CIDR, got {s:?}"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let bits = match bits {
        None => max,
        Some(b) => match b.trim().parse::<u8>() {
            Ok(b) if b <= max => b,
            _ => return Err(format!("prefix length in {s:?} must be 0..={max}")),
        },
    };
    Ok((ip, bits))
}
