//! The config arguments `rondo run` and `rondo pcap` share, with the same meaning in both:
//! `--config FILE.toml`, or `--glb-config director.conf --forwarding-table TABLE`.

use std::path::PathBuf;

use crate::runtime::control::ConfigSource;

/// `--config` or `--glb-config` + `--forwarding-table`; clap refuses both at once and
/// `--glb-config` without `--forwarding-table`, [`ConfigArgs::source`] the rest.
#[derive(clap::Args, Debug)]
pub struct ConfigArgs {
    /// Native TOML config.
    #[arg(long, conflicts_with = "glb_config")]
    pub config: Option<PathBuf>,
    /// GLB director.conf (with --forwarding-table).
    #[arg(long, requires = "forwarding_table")]
    pub glb_config: Option<PathBuf>,
    /// GLB forwarding table (.bin or .json).
    #[arg(long)]
    pub forwarding_table: Option<PathBuf>,
}

impl ConfigArgs {
    /// Where the config comes from, or why the arguments name no config.
    pub fn source(&self) -> Result<ConfigSource, String> {
        match (&self.config, &self.glb_config, &self.forwarding_table) {
            (Some(c), None, None) => Ok(ConfigSource::Native(c.clone())),
            (None, Some(d), Some(t)) => Ok(ConfigSource::Glb {
                director: d.clone(),
                table: t.clone(),
            }),
            (Some(_), _, Some(_)) => Err(
                "--forwarding-table goes with --glb-config; a TOML config names its tables itself"
                    .into(),
            ),
            _ => Err(
                "give --config FILE.toml, or --glb-config director.conf --forwarding-table TABLE"
                    .into(),
            ),
        }
    }
}

/// `[bgp]` by flags, for directors configured by `--glb-config` (whose files have no
/// `[bgp]`); with `--config` they replace the file's `[bgp]`. The same keys and checks as
/// the TOML table.
#[derive(clap::Args, Debug, Default)]
pub struct BgpArgs {
    /// BIRD 2's control socket (bird -s); turns BGP announcements on (with --bgp-include).
    #[arg(long, value_name = "PATH", requires = "bgp_include")]
    pub bgp_socket: Option<PathBuf>,
    /// The BIRD config include rondo writes (bird.conf: include "PATH";).
    #[arg(long, value_name = "PATH", requires = "bgp_socket")]
    pub bgp_include: Option<PathBuf>,
    /// Standard communities on every announcement, comma-separated (65000:100,...).
    #[arg(
        long,
        value_name = "ASN:V,...",
        value_delimiter = ',',
        requires = "bgp_socket"
    )]
    pub bgp_communities: Vec<String>,
    /// Large communities, comma-separated (65000:1:2,...).
    #[arg(
        long,
        value_name = "G:L1:L2,...",
        value_delimiter = ',',
        requires = "bgp_socket"
    )]
    pub bgp_large_communities: Vec<String>,
    /// MULTI_EXIT_DISC of every announcement.
    #[arg(long, value_name = "MED", requires = "bgp_socket")]
    pub bgp_med: Option<u32>,
    /// BGP protocols of bird.conf whose state `show bgp` reports, comma-separated.
    #[arg(
        long,
        value_name = "NAME,...",
        value_delimiter = ',',
        requires = "bgp_socket"
    )]
    pub bgp_sessions: Vec<String>,
    /// The lifeline interface's name (default rondo-life).
    #[arg(long, value_name = "IFNAME", requires = "bgp_socket")]
    pub bgp_lifeline: Option<String>,
    /// Deadline of each control-socket step, milliseconds (default 5000).
    #[arg(long, value_name = "MS", requires = "bgp_socket")]
    pub bgp_timeout_ms: Option<u64>,
    /// On SIGTERM, forward up to this long after the withdrawal while packets arrive (default 2000).
    #[arg(long, value_name = "MS", requires = "bgp_socket")]
    pub bgp_drain_ms: Option<u64>,
    /// On SIGTERM, announce GRACEFUL_SHUTDOWN this long before withdrawing (default 1000).
    #[arg(long, value_name = "MS", requires = "bgp_socket")]
    pub bgp_graceful_ms: Option<u64>,
    /// A worker without progress this long withdraws every VIP (default 1000).
    #[arg(long, value_name = "MS", requires = "bgp_socket")]
    pub bgp_stall_ms: Option<u64>,
}

impl BgpArgs {
    /// The `[bgp]` table these flags stand for, if `--bgp-socket` was given.
    pub fn table(&self) -> Option<toml::Table> {
        let (socket, include) = (self.bgp_socket.as_ref()?, self.bgp_include.as_ref()?);
        let mut t = toml::Table::new();
        let s = |p: &PathBuf| toml::Value::String(p.display().to_string());
        let list =
            |v: &[String]| toml::Value::Array(v.iter().cloned().map(toml::Value::String).collect());
        t.insert("socket".into(), s(socket));
        t.insert("include".into(), s(include));
        t.insert("communities".into(), list(&self.bgp_communities));
        t.insert(
            "large_communities".into(),
            list(&self.bgp_large_communities),
        );
        t.insert("sessions".into(), list(&self.bgp_sessions));
        if let Some(m) = self.bgp_med {
            t.insert("med".into(), toml::Value::Integer(m.into()));
        }
        if let Some(l) = &self.bgp_lifeline {
            t.insert("lifeline".into(), toml::Value::String(l.clone()));
        }
        for (k, v) in [
            ("timeout_ms", self.bgp_timeout_ms),
            ("drain_ms", self.bgp_drain_ms),
            ("graceful_ms", self.bgp_graceful_ms),
            ("stall_ms", self.bgp_stall_ms),
        ] {
            if let Some(v) = v {
                t.insert(
                    k.into(),
                    toml::Value::Integer(i64::try_from(v).unwrap_or(i64::MAX)),
                );
            }
        }
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct T {
        #[command(flatten)]
        bgp: BgpArgs,
    }

    #[test]
    fn bgp_flags_make_the_same_table_as_the_toml() {
        let t = T::try_parse_from(["t"]).unwrap();
        assert!(t.bgp.table().is_none());
        let t = T::try_parse_from([
            "t",
            "--bgp-socket",
            "/run/bird.ctl",
            "--bgp-include",
            "/etc/bird/rondo.conf",
            "--bgp-communities",
            "65000:1,65000:2",
            "--bgp-med",
            "9",
            "--bgp-sessions",
            "r1",
            "--bgp-drain-ms",
            "700",
        ])
        .unwrap();
        let s =
            crate::fleet::bgp::BgpRunSettings::from_toml_table(&t.bgp.table().unwrap()).unwrap();
        assert_eq!(s.bird.communities.len(), 2);
        assert_eq!(s.bird.med, Some(9));
        assert_eq!(s.bird.sessions[0].as_str(), "r1");
        assert_eq!(s.drain.as_millis(), 700);
        // Bad values are refused by the same checks.
        let t = T::try_parse_from([
            "t",
            "--bgp-socket",
            "/s",
            "--bgp-include",
            "/i",
            "--bgp-stall-ms",
            "1",
        ])
        .unwrap();
        let e = crate::fleet::bgp::BgpRunSettings::from_toml_table(&t.bgp.table().unwrap())
            .unwrap_err();
        assert_eq!(e.field, "stall_ms");
        // The socket without the include is refused by clap.
        assert!(T::try_parse_from(["t", "--bgp-socket", "/s"]).is_err());
        assert!(T::try_parse_from(["t", "--bgp-med", "1"]).is_err());
    }
}
