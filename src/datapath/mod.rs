//! The data path: what happens to each packet, identical for every driver.
//!
//! - [`buf`]: the packet-buffer trait drivers implement (headroom, prepend, trim).
//! - [`snapshot`]: the immutable, compiled form of a config that workers load once per burst.
//! - [`classify`]: bind lookup and flow hashing (spec section 5).
//! - [`encap`]: outer Ethernet/IPv4|IPv6/UDP/GUE + hop list (spec section 6).
//! - `express`: the common case of a burst (IPv4 TCP/UDP, two IPv4 hops) in loops of its own.
//! - [`pipeline`]: [`process_burst`], the one function every driver calls.
//! - [`counters`]: verdicts, drop reasons and per-core counters.

pub mod buf;
pub mod classify;
pub mod counters;
pub mod encap;
mod express;
pub mod pipeline;
pub mod snapshot;

pub use buf::{HeapBuf, PacketBuf};
pub use counters::{CoreCounters, DropReason, Verdict};
pub use pipeline::{process_burst, process_burst_counted, NoSink, SentSink, WorkerSink, BURST_MAX};
pub use snapshot::{SentCounters, Snapshot, SnapshotError};
