//! `rondo healthcheck`: GLB's `glb-healthcheck`, standalone. Reads GLB's config (or its TOML
//! equivalent) and the source forwarding table, checks every backend each interval, and when
//! the health set changes writes the checked table (atomically) and runs the reload command.
//! As GLB: the first round always writes; later writes are at least `hold` apart (10 s);
//! SIGHUP (or SIGUSR1) re-reads the source table and writes after the next round.
//! SIGTERM/SIGINT stop.
//!
//! `--fleet CONFIG`: the fleet's highly available checker instead (see
//! `healthcheck_fleet.rs`; needs a build with `--features etcd`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::health::checker::run_round;
use crate::health::config::{self, HealthcheckConfig};
use crate::health::output::{run_reload, write_json, Source};
use crate::health::{CheckerOptions, HealthSnapshot, HealthState};

/// SIGHUP/SIGUSR1 (re-read the source table) and SIGTERM/SIGINT (stop), as flags.
pub(super) struct Signals {
    pub(super) reload: Arc<AtomicBool>,
    pub(super) stop: Arc<AtomicBool>,
}

impl Signals {
    pub(super) fn install() -> std::io::Result<Signals> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
        let s = Signals {
            reload: Arc::new(AtomicBool::new(false)),
            stop: Arc::new(AtomicBool::new(false)),
        };
        for sig in [SIGHUP, SIGUSR1] {
            signal_hook::flag::register(sig, s.reload.clone())?;
        }
        for sig in [SIGTERM, SIGINT] {
            signal_hook::flag::register(sig, s.stop.clone())?;
        }
        Ok(s)
    }
}

#[derive(clap::Args, Debug)]
pub struct HealthcheckArgs {
    /// GLB's healthcheck config (JSON) or its TOML equivalent (see configs/healthcheck.toml).
    #[arg(long, required_unless_present = "fleet", conflicts_with = "fleet")]
    config: Option<PathBuf>,
    /// Run one round, write the checked table, run the reload command, and exit.
    #[arg(long, conflicts_with = "fleet")]
    once: bool,
    /// Check for a fleet: one of several instances, the one elected through etcd checks the
    /// desired document's backends and writes the health document (see
    /// configs/healthcheck-fleet.toml). Needs a build with `--features etcd`.
    #[arg(long, value_name = "CONFIG")]
    fleet: Option<PathBuf>,
}

pub fn run(args: &HealthcheckArgs) -> Result<(), String> {
    if let Some(path) = &args.fleet {
        return super::healthcheck_fleet::run(path);
    }
    let Some(path) = &args.config else {
        return Err("rondo healthcheck needs --config FILE or --fleet CONFIG".into());
    };
    let cfg = config::load(path).map_err(|e| e.to_string())?;
    let mut source = Source::load(&cfg.src).map_err(|e| e.to_string())?;
    let opts = cfg.options(&source.settings);
    if opts.timeout >= opts.interval {
        tracing::warn!(
            timeout_ms = opts.timeout.as_millis() as u64,
            interval_ms = opts.interval.as_millis() as u64,
            "the check timeout should be shorter than the interval; rounds will run back to back"
        );
    }
    let mut state = HealthState::new(opts.trigger, &source.specs);
    tracing::info!(
        src = %cfg.src.display(),
        dst = %cfg.dst.display(),
        targets = state.targets().len(),
        interval_ms = opts.interval.as_millis() as u64,
        timeout_ms = opts.timeout.as_millis() as u64,
        trigger = opts.trigger,
        "health checker started"
    );
    if args.once {
        round(&mut state, &opts);
        let snap = state.snapshot();
        let written = store(&cfg, &source, &snap);
        print_summary(&source, &snap);
        return written;
    }
    let signals = Signals::install().map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let mut dirty = true;
    let mut next_write = Instant::now();
    let mut next_round = Instant::now();
    loop {
        if round(&mut state, &opts) {
            dirty = true;
        }
        if dirty {
            if Instant::now() >= next_write {
                // A failed write stays dirty and is tried again after the next round.
                if store(&cfg, &source, &state.snapshot()).is_ok() {
                    dirty = false;
                    next_write = Instant::now() + cfg.hold;
                }
            } else {
                tracing::warn!(
                    hold_ms = cfg.hold.as_millis() as u64,
                    "holding a table change: the previous write was too recent"
                );
            }
        }
        next_round += opts.interval;
        let now = Instant::now();
        if next_round < now {
            next_round = now;
        }
        // Sleep until the next round, answering signals within 50 ms.
        loop {
            if signals.stop.load(Ordering::Acquire) {
                tracing::info!("stopping");
                return Ok(());
            }
            if signals.reload.swap(false, Ordering::AcqRel) {
                match Source::load(&cfg.src) {
                    Ok(s) => {
                        tracing::info!(file = %cfg.src.display(), "reloaded the source forwarding table");
                        state.set_tables(&s.specs);
                        source = s;
                        dirty = true;
                        next_write = Instant::now();
                    }
                    Err(e) => tracing::error!("reload refused, checking the previous table: {e}"),
                }
            }
            let left = next_round.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }
}

/// One round of checks; true when some backend's health changed.
fn round(state: &mut HealthState, opts: &CheckerOptions) -> bool {
    let results = run_round(&state.targets(), opts.timeout, opts.threads, None);
    let events = state.record(results);
    for e in &events {
        tracing::info!(
            table = %e.table,
            backend = %e.backend,
            healthy = e.healthy,
            reason = %e.reason,
            "health state changed for backend"
        );
    }
    !events.is_empty()
}

/// Write the checked table, then run the reload command (whose failure is only logged).
fn store(cfg: &HealthcheckConfig, source: &Source, snap: &HealthSnapshot) -> Result<(), String> {
    let health = source.health(snap);
    for (t, h) in source.specs.iter().zip(&health) {
        let up = h.iter().filter(|&&x| x).count();
        tracing::info!(table = %t.name, healthy = up, unhealthy = h.len() - up, "table backend summary");
    }
    if let Err(e) = write_json(&cfg.dst, &source.checked(&health)) {
        tracing::error!("cannot store the checked forwarding table: {e}");
        return Err(e.to_string());
    }
    tracing::info!(file = %cfg.dst.display(), "stored the checked forwarding table");
    match &cfg.reload_command {
        None => tracing::info!("would have reloaded, but no reload_command is configured"),
        Some(cmd) => {
            tracing::info!(command = %cmd, "running the reload command");
            if let Err(e) = run_reload(cmd, cfg.reload_timeout) {
                tracing::error!(command = %cmd, "reload command failed: {e}");
            }
        }
    }
    Ok(())
}

fn print_summary(source: &Source, snap: &HealthSnapshot) {
    let health = source.health(snap);
    for (ti, (t, h)) in source.specs.iter().zip(&health).enumerate() {
        for (bi, (b, &up)) in t.backends.iter().zip(h).enumerate() {
            let why = match snap.get(ti, bi) {
                None if b.state == crate::table::BackendState::Inactive => {
                    " (inactive: not checked)".to_string()
                }
                None => " (no checks)".to_string(),
                Some(bh) => {
                    let failing: Vec<String> = bh
                        .checks
                        .iter()
                        .filter_map(|c| match c.last.as_ref().map(|o| &o.result) {
                            Some(Err(e)) => Some(format!("{}: {e}", c.target)),
                            _ => None,
                        })
                        .collect();
                    if failing.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", failing.join("; "))
                    }
                }
            };
            println!(
                "{} {} {}{why}",
                t.name,
                b.ip,
                if up { "healthy" } else { "unhealthy" }
            );
        }
    }
}
