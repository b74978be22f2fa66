//! The DPDK driver (cargo feature `dpdk`): ethdev ports by PCI address or vdev devargs,
//! one RX/TX queue pair per worker with RSS over IP + L4, one pktmbuf pool per NUMA socket,
//! and [`Mbuf`], which owns its `rte_mbuf` and is the [`crate::datapath::PacketBuf`] the
//! generic pipeline runs on.
//!
//! - [`eal`]: EAL start-up from `[dpdk] eal_args` (once per process), with pre-flight
//!   checks (hugepages) and errors that name the setting.
//! - [`mbuf`]: the buffer type.
//! - [`mempool`]: pools per socket.
//! - [`port`]: device probe, configure, queues, start, stats, xstats, link, MAC.
//! - [`queue`]: RX/TX burst; worker threads register themselves as DPDK lcores.
//! - [`ring`]: a port over rings this process owns and its [`ring::RingPeer`] (the DPDK
//!   twin of the mem driver), for tests, the demo and pktgen.
//!
//! Workers are Rust threads registered with `rte_thread_register`, running the same
//! worker loop as every other driver.

pub mod eal;
pub mod mbuf;
pub mod mempool;
pub mod port;
pub mod queue;
pub mod ring;

pub use mbuf::Mbuf;
pub use port::{DpdkPort, DpdkPortOptions};
pub use ring::{ring_pair, RingPeer};

/// Start-up errors of the DPDK driver, each naming the setting or port at fault.
#[derive(Debug, thiserror::Error)]
pub enum DpdkError {
    #[error("dpdk.eal_args {args:?}: EAL initialisation failed: {msg} (rte_errno {errno}){hint}")]
    EalInit {
        args: Vec<String>,
        errno: i32,
        msg: String,
        hint: String,
    },
    #[error("dpdk.eal_args: DPDK needs hugepages and {detail}; reserve some (`echo 512 > /proc/sys/vm/nr_hugepages`) or run without them: eal_args = [\"--no-huge\", \"-m\", \"512\", \"--no-shconf\"]")]
    NoHugepages { detail: String },
    #[error("dpdk.eal_args: EAL was already initialised in this process with {first:?}; it cannot be initialised again with {now:?}")]
    EalAgain {
        first: Vec<String>,
        now: Vec<String>,
    },
    #[error("port dpdk:{devargs}: cannot create the device: {msg} (error {code})")]
    Probe {
        devargs: String,
        code: i32,
        msg: String,
    },
    #[error("port dpdk:{devargs}: no DPDK port named {name:?}{hint}")]
    NoSuchPort {
        devargs: String,
        name: String,
        hint: String,
    },
    #[error("runtime.workers = {want}: port dpdk:{devargs} (driver {driver}) has at most {max} {dir} queue(s){hint}")]
    TooManyQueues {
        want: usize,
        devargs: String,
        driver: String,
        max: u16,
        dir: &'static str,
        hint: &'static str,
    },
    #[error("runtime.pool_size = {size}: cannot create a mempool of {size} mbufs of {buf} bytes on socket {socket}: {msg}")]
    Mempool {
        size: usize,
        buf: u32,
        socket: i32,
        msg: String,
    },
    #[error("port dpdk:{devargs}: {op} failed: {msg} ({code})")]
    Op {
        devargs: String,
        op: &'static str,
        code: i32,
        msg: String,
    },
}

/// A DPDK error number (negative return or `rte_errno`) as text.
pub(crate) fn err_text(code: i32) -> String {
    dpdk_sys::strerror(code.abs())
}
