//! A deterministic in-process simulation of a GLB fleet (issue 7, item 3).
//!
//! Clients and backends are [smoltcp] TCP stacks, directors are the real [`Snapshot`] and
//! [`process_burst`], and backends run the real second-chance [`decide`] and
//! [`forward::build`]. Everything runs on one thread on a virtual clock, in fixed ticks,
//! with packets moving one link per tick through plain queues: the same seed gives the same
//! run, bit for bit.
//!
//! - [`net`]: the virtual device behind each smoltcp interface, addresses and ECMP.
//! - [`control`]: the fleet's table config as text, edited by scenarios and compiled by every
//!   director with the same builder `rondo run` uses.
//! - [`director`]: a director: a compiled snapshot and the burst pipeline.
//! - [`backend`]: a backend: second chance over its smoltcp sockets, an echo server.
//! - [`client`]: a client host: long-lived streaming connections and short new ones.
//! - [`scenario`]: the scenarios and the runner that counts broken connections.
//! - [`affinity`]: client affinity: where each client's connections land while the fleet
//!   changes.
//!
//! [`Snapshot`]: rondo::datapath::Snapshot
//! [`process_burst`]: rondo::datapath::process_burst
//! [`decide`]: rondo::redirect::decide::decide
//! [`forward::build`]: rondo::redirect::forward::build

pub mod affinity;
pub mod backend;
pub mod client;
pub mod control;
pub mod director;
pub mod net;
pub mod scenario;

pub use affinity::{affinity, AffinityParams, AffinityReport, Plan};
pub use scenario::{run, Params, Report, Scenario};

/// Why a simulation could not be set up or run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("director {director}: config rejected: {source}")]
    Config {
        director: usize,
        #[source]
        source: rondo::config::ConfigError,
    },
    #[error("director {director}: snapshot rejected: {source}")]
    Snapshot {
        director: usize,
        #[source]
        source: rondo::datapath::SnapshotError,
    },
    #[error("invalid simulation parameters: {0}")]
    Params(String),
    #[error("smoltcp interface has no room for address {0}")]
    Address(std::net::Ipv4Addr),
}
