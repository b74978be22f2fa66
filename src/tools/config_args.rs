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
