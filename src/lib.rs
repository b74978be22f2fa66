//! Rondo: a userspace L4 load-balancer director, wire-compatible with GitHub's GLB Director.
//!
//! Folders name the layers:
//! - [`wire`]: zero-copy views and emitters for every header Rondo reads or writes.
//! - [`hash`]: SipHash-2-4 as GLB keys it.
//! - [`table`]: forwarding tables: rendezvous builder, GLB v2 binary and JSON formats, native tables.
//! - [`config`]: native TOML and GLB `director.conf` configuration.
//! - [`datapath`]: classifier, GUE encapsulation and the burst pipeline every driver calls.
//! - [`drivers`]: ports and queues: mem rings, pcap files, AF_PACKET, TAP (and DPDK later).
//! - [`health`]: health checks (GLB's glb-healthcheck): checks, dampening, the checker.
//! - [`runtime`]: pinned workers, atomic snapshot swaps, reloads, the exception path.
//! - [`pktgen`]: `rondo pktgen`: traffic generator and verifier of the director's output.
//! - [`redirect`]: the backend side (`rondo redirect`): GUE second chance, decapsulation to a TUN.
//! (The fleet simulation is the dev-only workspace crate `rondo-sim`, `sim/`.)
//! - [`tools`]: the `rondo` subcommands.
//! - [`sys`]: CPU/OS primitives (with the drivers, the only place `unsafe` is allowed).

pub mod config;
pub mod console;
pub mod datapath;
pub mod drivers;
pub mod hash;
pub mod health;
pub mod metrics;
pub mod pktgen;
pub mod redirect;
pub mod runtime;
pub mod sys;
pub mod table;
pub mod tools;
pub mod wire;
