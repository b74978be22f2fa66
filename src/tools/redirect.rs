//! `rondo redirect`: the backend-side second chance (see [`crate::redirect`]).

use std::path::PathBuf;

use crate::redirect::config::{self, parse_addr_set, parse_listen, RedirectConfig};
use crate::redirect::Redirect;
use crate::runtime::control::SignalFlags;
use crate::runtime::notify::{sd_notify, PidFile};

#[derive(clap::Args, Debug)]
pub struct RedirectArgs {
    /// Backend config (TOML with a [redirect] section); the flags below override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to receive GUE on, IP[:PORT] (repeatable; replaces the config's list).
    #[arg(long)]
    listen: Vec<String>,
    /// Our own address (repeatable; replaces the config's list).
    #[arg(long)]
    address: Vec<String>,
    /// Director or health checker allowed to send GUE, IP or CIDR (repeatable; replaces).
    #[arg(long)]
    director: Vec<String>,
    /// Backend peer we accept from and forward to, IP or CIDR (repeatable; replaces).
    #[arg(long)]
    backend: Vec<String>,
    /// TUN interface for local delivery.
    #[arg(long)]
    tun: Option<String>,
    /// Most hops a GUE header may list.
    #[arg(long)]
    hop_limit: Option<u8>,
    /// Seconds between stats lines in the log (0: none).
    #[arg(long)]
    stats_interval: Option<u64>,
    /// Second chance off: deliver every packet locally, forward nothing (for experiments
    /// and tests showing what breaks without it; never in production).
    #[arg(long)]
    no_second_chance: bool,
    /// Write our pid here while running.
    #[arg(long)]
    pid_file: Option<PathBuf>,
}

fn resolve(a: &RedirectArgs) -> Result<RedirectConfig, String> {
    let flag_set =
        |v: &[String], flag: &str| parse_addr_set(v).map_err(|m| format!("--{flag}: {m}"));
    let mut c = match &a.config {
        Some(p) => config::load(p).map_err(|e| e.to_string())?,
        None => {
            if a.director.is_empty() || a.backend.is_empty() {
                return Err(
                    "give --config backend.toml, or at least --director and --backend".into(),
                );
            }
            RedirectConfig::new(
                flag_set(&a.director, "director")?,
                flag_set(&a.backend, "backend")?,
            )
        }
    };
    if !a.listen.is_empty() {
        c.listen = a
            .listen
            .iter()
            .map(|s| parse_listen(s))
            .collect::<Result<_, _>>()
            .map_err(|m| format!("--listen: {m}"))?;
        c.listen_is_default = false;
    }
    if !a.address.is_empty() {
        c.addresses = a
            .address
            .iter()
            .map(|s| {
                s.parse()
                    .map_err(|_| format!("--address: expected an IP address, got {s:?}"))
            })
            .collect::<Result<_, _>>()?;
    }
    if !a.director.is_empty() {
        c.directors = flag_set(&a.director, "director")?;
    }
    if !a.backend.is_empty() {
        c.backends = flag_set(&a.backend, "backend")?;
    }
    if let Some(t) = &a.tun {
        crate::sys::iface::check_ifname(t).map_err(|m| format!("--tun: {m}"))?;
        c.tun = t.clone();
    }
    if let Some(h) = a.hop_limit {
        if usize::from(h) > crate::wire::gue::MAX_HOPS_V4 {
            return Err(format!(
                "--hop-limit: expected 0..={}, got {h}",
                crate::wire::gue::MAX_HOPS_V4
            ));
        }
        c.hop_limit = h;
    }
    if let Some(s) = a.stats_interval {
        c.stats_interval = std::time::Duration::from_secs(s);
    }
    if a.no_second_chance {
        c.second_chance = false;
    }
    Ok(c)
}

/// `rondo redirect --config backend.toml`.
pub fn run(a: &RedirectArgs) -> Result<(), String> {
    let cfg = resolve(a)?;
    let signals = SignalFlags::install().map_err(|e| format!("installing signal handlers: {e}"))?;
    let mut r = Redirect::start(cfg.clone()).map_err(|e| e.to_string())?;
    let _pid = a
        .pid_file
        .as_deref()
        .map(PidFile::create)
        .transpose()
        .map_err(|e| format!("--pid-file: {e}"))?;
    tracing::info!(
        tun = r.tun_name(),
        listen = ?r.listening(),
        directors = ?cfg.directors.nets(),
        backends = ?cfg.backends.nets(),
        hop_limit = cfg.hop_limit,
        second_chance = cfg.second_chance,
        "redirect ready"
    );
    if let Err(e) = sd_notify("READY=1") {
        tracing::warn!("systemd notify failed: {e}");
    }
    let result = r.run(&signals);
    let _ = sd_notify("STOPPING=1");
    print!("{}", r.report());
    result.map_err(|e| e.to_string())
}
