//! Health checks, as GLB's `glb-healthcheck` does them.
//!
//! - [`check`]: one check: HTTP GET (status 200, `http_uri`), TCP connect, or the GUE tunnel
//!   probe ([`gue`]); each bounded by its timeout.
//! - [`state`]: GLB's dampening (first result as is, then `trigger` consecutive opposite
//!   results flip) and per-backend health (healthy when all its checks pass).
//! - [`checker`]: the [`Checker`] that runs rounds on its own threads and reports flips as
//!   [`HealthEvent`]s, plus a [`HealthSnapshot`] for the console and metrics.
//! - [`config`], [`output`]: the standalone `rondo healthcheck` (GLB's config file, the
//!   checked forwarding-table JSON, the reload command).
//!
//! A flip changes a backend's `healthy` flag; [`rebuild`] applies flips to built tables so
//! that the backend's rows move to their secondary (and back).

pub mod check;
pub mod checker;
pub mod config;
pub mod fleet_config;
pub mod fleet_doc;
pub mod gue;
pub mod output;
pub mod state;

use std::net::IpAddr;

pub use check::{CheckError, CheckKind, Target};
pub use checker::{Checker, CheckerOptions};
pub use state::{
    BackendHealth, CheckOutcome, Dampener, DampenerState, HealthSnapshot, HealthState,
};

use crate::table::{BackendState, ForwardingTable, TableError, TableSpec};

/// A backend's health changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthEvent {
    /// Table name (as in the config; `table<i>` for unnamed GLB tables).
    pub table: String,
    pub backend: IpAddr,
    pub healthy: bool,
    /// The failing checks and their errors, or how many checks pass.
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Table(#[from] TableError),
    #[error("{file}: {message}")]
    Io { file: String, message: String },
    #[error("health checker: {0}")]
    Options(String),
}

/// Set `healthy` of the backends `events` name (every non-inactive backend of the named table
/// with that address). Returns the indices of the tables that changed.
pub fn apply_events(specs: &mut [TableSpec], events: &[HealthEvent]) -> Vec<usize> {
    let mut changed = Vec::new();
    for e in events {
        for (i, t) in specs
            .iter_mut()
            .enumerate()
            .filter(|(_, t)| t.name == e.table)
        {
            for b in t.backends.iter_mut() {
                if b.ip == e.backend && b.state != BackendState::Inactive && b.healthy != e.healthy
                {
                    b.healthy = e.healthy;
                    if !changed.contains(&i) {
                        changed.push(i);
                    }
                }
            }
        }
    }
    changed
}

/// Apply `events` to built tables and rebuild the rows of those that changed, each with its
/// own row policy. Returns how many tables were rebuilt. On error nothing is changed.
pub fn rebuild(
    tables: &mut [ForwardingTable],
    events: &[HealthEvent],
) -> Result<usize, TableError> {
    let mut specs: Vec<TableSpec> = tables.iter().map(|t| t.spec.clone()).collect();
    let changed = apply_events(&mut specs, events);
    let mut built = Vec::with_capacity(changed.len());
    for &i in &changed {
        built.push((
            i,
            ForwardingTable::build(specs[i].clone(), tables[i].policy)?,
        ));
    }
    let n = built.len();
    for (i, t) in built {
        tables[i] = t;
    }
    Ok(n)
}
