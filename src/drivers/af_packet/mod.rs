//! Linux interfaces through PACKET_MMAP rings (`af_packet:IFACE`).
//!
//! - Every RX queue is its own `AF_PACKET` socket bound to the interface with a
//!   `TPACKET_V3` receive ring: the kernel fills blocks of frames, the queue walks a block
//!   frame by frame (a burst may stop half-way through a block and resume there) and hands
//!   the block back when it is done (`rx.rs`). With several queues the sockets join one
//!   `PACKET_FANOUT` group that spreads flows by their hash (`port.rs`).
//! - Every TX queue is its own socket with a `TPACKET_V2` transmit ring: a burst is copied
//!   into free ring slots and pushed with one `send()` call (`tx.rs`).
//! - Frames the port sends itself are never read back (`PACKET_IGNORE_OUTGOING`, and the
//!   `PACKET_OUTGOING` packet type is checked as well on kernels that lack it).
//!
//! Received frames are copied into [`PoolBuf`](super::PoolBuf)s, so ring blocks go back to
//! the kernel at once and buffers live as long as the pipeline needs them.
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

/// Milliseconds after which the kernel hands over a partly filled RX block, which bounds
/// the latency at low packet rates (rounded up to a scheduler tick by the kernel).
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

/// Ring sizes and behaviour of an [`AfPacketPort`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AfPacketOptions {
    /// Bytes per RX ring block; a multiple of the page size (a power of two is best).
    pub block_size: usize,
    /// RX ring blocks per queue (memory per RX queue: `block_size * block_count`).
    pub block_count: usize,
    /// Frame slot size, a multiple of 16. With `TPACKET_V3` RX frames are packed tightly,
    /// so this only sizes the TX ring slots; it is raised to fit the interface MTU.
    pub frame_size: usize,
    /// `PACKET_FANOUT` group id for the RX sockets when there is more than one queue;
    /// `None` lets the kernel pick an unused id.
    pub fanout_group: Option<u16>,
    /// Put the interface into promiscuous mode while the port's sockets are open.
    pub promiscuous: bool,
}

impl Default for AfPacketOptions {
    /// 64 blocks of 1 MiB per RX queue, 2 KiB TX slots, promiscuous.
    fn default() -> Self {
        AfPacketOptions {
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
