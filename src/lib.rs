//! Rondo: a userspace L4 load-balancer director, wire-compatible with GitHub's GLB Director.
//!
//! Folders name the layers:
//! - [`wire`]: zero-copy views and emitters for every header Rondo reads or writes.
//! - [`hash`]: SipHash-2-4 as GLB keys it.
//! - [`table`]: forwarding tables: rendezvous builder, GLB v2 binary and JSON formats, native tables.
//! - [`config`]: native TOML and GLB `director.conf` configuration.
//! - [`datapath`]: classifier, GUE encapsulation and the burst pipeline every driver calls.
//! - [`drivers`]: ports and queues: mem rings, pcap files, AF_PACKET, TAP and (with the `dpdk`
//!   feature) DPDK.
//! - [`fleet`]: how a director tells the network what it serves: BGP through BIRD 2, with a
//!   lifeline that withdraws the routes when the director dies.
//! - [`health`]: health checks (GLB's glb-healthcheck): checks, dampening, the checker.
//! - [`runtime`]: pinned workers, atomic snapshot swaps, reloads, the exception path.
//! - [`console`]: the operator console (`rondo run -i`, `rondo console`) over a unix socket.
//! - [`metrics`]: Prometheus over HTTP and the statsd push.
//! - [`pktgen`]: `rondo pktgen`: traffic generator and verifier of the director's output.
//! - [`redirect`]: the backend side (`rondo redirect`): GUE second chance, decapsulation to a TUN.
//! - [`quic_lb`]: QUIC-LB (draft-ietf-quic-load-balancers-21): routable QUIC connection IDs,
//!   their configurations, encoding, decoding and the QUIC header's DCID; a leaf library.
//! - [`tools`]: the `rondo` subcommands.
//! - [`sys`]: CPU and OS primitives: interfaces and ioctls, TUN/TAP, sockets, netlink,
//!   `recvmmsg` batches, poll; what drivers and `rondo redirect` share of the OS.
//!
//! The deterministic fleet simulation (smoltcp clients and backends around the real
//! pipeline) is the dev-only workspace crate `rondo-sim` (`sim/`), built only by tests.
//!
//! `unsafe` is denied crate-wide; it is allowed only in the driver, FFI and OS modules
//! (`drivers`, `sys`, the vector hasher `hash::simd`), each opting in with
//! `#![allow(unsafe_code)]`, every block with its `// SAFETY:` reasoning.

pub mod config;
pub mod console;
pub mod datapath;
pub mod drivers;
pub mod fleet;
pub mod hash;
pub mod health;
pub mod metrics;
pub mod pktgen;
pub mod quic_lb;
pub mod redirect;
pub mod runtime;
pub mod sys;
pub mod table;
pub mod tools;
pub mod wire;
