//! Linux interfaces through PACKET_MMAP rings (`af_packet:IFACE[,rx=v2|v3]`).
//!
//! - Every RX queue is its own `AF_PACKET` socket bound to the interface with a receive
//!   ring of the kind [`AfPacketOptions::rx_ring`] says ([`RxRing`]; the port spec's
//!   `rx=`), walked by the queue frame by frame into pool buffers (`rx.rs`; one enum
//!   matched once per burst, so the pipeline stays statically dispatched):
//!   - `TPACKET_V2` (the default): a ring of fixed slots, each with its own status word.
//!     A frame is readable as soon as the kernel has written it, and each slot goes back
//!     to the kernel as soon as it is copied. Latency is that of the path itself at any
//!     load (a p50 under 100 µs through a veth pair and pktgen on a quiet machine). Slots
//!     are `frame_size` bytes (raised to fit the MTU at open), so a frame longer than that
//!     (an MTU raised later) is cut short by the kernel and counted as an RX error.
//!   - `TPACKET_V3`: the kernel packs frames into blocks and hands a block over when it is
//!     full or after [`RX_BLOCK_TIMEOUT_MS`] (rounded up to a scheduler tick): at moderate
//!     rates most frames wait for that timer (a median of about 1.4 ms through a veth pair
//!     at 50 % load, against well under 200 µs with V2; `perf/run latency`). Small frames
//!     take less ring memory, so the same ring holds more of them. The queue walks a
//!     block frame by frame (a burst may stop half-way through a block and resume there)
//!     and hands it back when it is done. Less work per frame (one status word per block,
//!     frames packed in few cache lines): its maximum rate was 10-25 % above V2's in the
//!     same runs, so throughput-bound ports may prefer it.
//!
//!   With several queues the sockets join one `PACKET_FANOUT` group that spreads flows by
//!   their hash (`port.rs`). A frame header the kernel wrote that does not add up (lengths
//!   or offsets outside its slot or block) is counted as an RX error, never trusted.
//! - Every TX queue is its own socket with a `TPACKET_V2` transmit ring: a burst is copied
//!   into free ring slots and pushed with one `send()` call (`tx.rs`).
//! - Frames the port sends itself are never read back (`PACKET_IGNORE_OUTGOING`, and the
//!   `PACKET_OUTGOING` packet type is checked as well on kernels that lack it).
//!
//! Received frames are copied into [`PoolBuf`](super::PoolBuf)s, so ring slots and blocks
//! go back to the kernel at once and buffers live as long as the pipeline needs them.
//!
//! Sockets, options and interface ioctls come from [`crate::sys`]; `unsafe` here is limited
//! to the memory shared with the kernel (`ring.rs`: `mmap` and the status words), the TX
//! kick (`tx.rs`) and the option layouts (`uapi.rs`), each module opting in and each block
//! stating why it is sound.

mod port;
mod ring;
mod rx;
mod tx;
mod uapi;

pub use port::AfPacketPort;
pub use rx::AfPacketRx;
pub use tx::AfPacketTx;

/// Milliseconds after which the kernel hands over a partly filled `TPACKET_V3` RX block,
/// which bounds the latency of [`RxRing::V3`] at low packet rates (rounded up to a
/// scheduler tick by the kernel; 1 is the least it takes).
pub const RX_BLOCK_TIMEOUT_MS: u32 = 1;
/// Frame slots in each TX ring (rounded up to whole ring blocks).
pub const TX_RING_FRAMES: usize = 1024;
/// Most frames one `rx_burst` looks at (delivered or not), bounding the time a call takes
/// when frames are skipped (pool empty, outgoing).
pub const RX_SCAN_MAX: usize = 64;
/// Most queues one port hands out (the kernel's fanout group limit is 256 by default).
pub const MAX_QUEUES: usize = 256;
/// Ethernet header plus one VLAN tag: what a frame may carry on top of the MTU.
const L2_OVERHEAD: usize = 14 + 4;
const ETH_HLEN: usize = 14;
/// One 802.1Q / 802.1ad tag.
const VLAN_HLEN: usize = 4;

/// Which kind of receive ring the RX queues use (`af_packet:IFACE,rx=v2|v3`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RxRing {
    /// `TPACKET_V2`: one slot per frame with its own status word, readable as soon as the
    /// kernel has written it (tens of microseconds at any load). The default.
    #[default]
    V2,
    /// `TPACKET_V3`: frames packed into blocks, handed over when a block is full or after
    /// [`RX_BLOCK_TIMEOUT_MS`] (a scheduler tick or more at low rates); uses less memory
    /// bandwidth per frame, at the price of that latency.
    V3,
}

impl RxRing {
    /// The spelling in port specs.
    pub fn as_str(self) -> &'static str {
        match self {
            RxRing::V2 => "v2",
            RxRing::V3 => "v3",
        }
    }
}

impl std::fmt::Display for RxRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RxRing {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "v2" => Ok(RxRing::V2),
            "v3" => Ok(RxRing::V3),
            _ => Err(format!("rx={s}: expected v2 or v3")),
        }
    }
}

/// Ring sizes and behaviour of an [`AfPacketPort`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AfPacketOptions {
    /// The receive ring kind ([`RxRing::V2`] unless told otherwise).
    pub rx_ring: RxRing,
    /// Bytes per RX ring block; a multiple of the page size (a power of two is best).
    pub block_size: usize,
    /// RX ring blocks per queue (memory per RX queue: `block_size * block_count`, for
    /// either ring kind).
    pub block_count: usize,
    /// Frame slot size, a multiple of 16, raised to fit the interface MTU. It sizes the TX
    /// ring slots and, with [`RxRing::V2`], the RX slots (`block_size / frame_size` per
    /// block); with [`RxRing::V3`] RX frames are packed tightly instead.
    pub frame_size: usize,
    /// `PACKET_FANOUT` group id for the RX sockets when there is more than one queue;
    /// `None` lets the kernel pick an unused id.
    pub fanout_group: Option<u16>,
    /// Put the interface into promiscuous mode while the port's sockets are open.
    pub promiscuous: bool,
}

impl Default for AfPacketOptions {
    /// A `TPACKET_V2` RX ring of 64 blocks of 1 MiB per queue (32768 slots of 2 KiB),
    /// 2 KiB TX slots, promiscuous.
    fn default() -> Self {
        AfPacketOptions {
            rx_ring: RxRing::default(),
            block_size: 1 << 20,
            block_count: 64,
            frame_size: 2048,
            fanout_group: None,
            promiscuous: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>() {}

    #[test]
    fn types_cross_threads() {
        assert_send_sync::<AfPacketPort>();
        assert_send::<AfPacketRx>();
        assert_send::<AfPacketTx>();
    }
}
