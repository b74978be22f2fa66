//! The data path: what happens to each packet, identical for every driver. Which path a
//! packet takes and why, and which test proves each shortcut equal to the general code:
//! `src/datapath/README.md`.
//!
//! Imports run one way (checked by `tests/layout.rs`):
//! `pipeline -> express -> {encap, classify} -> snapshot -> leaves`.
//!
//! - [`pipeline`]: [`process_burst`], the one function every driver calls.
//! - `express`: the common case of a burst (IPv4 TCP/UDP, two IPv4 hops) in loops of its own.
//! - [`classify`]: bind lookup and the input of each packet's flow hash.
//! - [`encap`]: GUE encapsulation: outer Ethernet/IPv4|IPv6/UDP/GUE and the hop list.
//! - [`snapshot`]: the immutable, compiled form of a config that workers load once per burst.
//!
//! Leaves, which import nothing of the data path but each other:
//! - [`buf`]: the packet-buffer trait drivers implement (headroom, prepend, trim).
//! - [`counters`]: verdicts, drop reasons and per-core counters.
//! - [`burst`]: the burst size and its per-packet masks.
//! - [`flow`]: a classified packet's [`flow::Flow`] and the hash field sets.
//! - `outer`: a table's outer-header template and IPv4 backends.
//! - `rows`: resolved rows, and the express table that holds them.

pub mod buf;
pub mod burst;
pub mod classify;
pub mod counters;
pub mod encap;
pub mod explain;
mod express;
pub mod flow;
mod outer;
pub mod pipeline;
pub mod quic;
mod rows;
pub mod snapshot;

pub use buf::{HeapBuf, PacketBuf};
pub use burst::BURST_MAX;
pub use counters::{CoreCounters, DropReason, Verdict};
pub use pipeline::{process_burst, process_burst_counted, NoSink, SentSink, WorkerSink};
pub use snapshot::{SentCounters, Snapshot, SnapshotError};
