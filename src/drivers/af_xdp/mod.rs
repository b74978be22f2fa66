//! Linux interfaces through AF_XDP (`af_xdp:IFACE[,queues=N][,mode=auto|zerocopy|copy][,busy_poll]`,
//! cargo feature `af_xdp`).
//!
//! - [`prog`]: the project's XDP program (`bpf/steer.bpf.c`, built by build.rs with clang)
//!   is loaded and attached with aya (pure Rust; why, in its doc). It redirects frames to a
//!   VIP prefix (IPv4 or IPv6, ICMP included) to the AF_XDP socket of their RX queue and
//!   passes everything else to the kernel: ARP, BGP, SSH to the host work as without us,
//!   with no TAP. A stale program of ours is replaced (logged), a foreign one is an error.
//! - [`xsk`]: one AF_XDP socket per worker queue, its UMEM and its four rings, over libc
//!   (`XDP_UMEM_REG`, ring `mmap`s, `bind` with `XDP_USE_NEED_WAKEUP`); with [`frame`],
//!   the only `unsafe`.
//! - [`queue`]: the RX and TX queues the generic worker loop drives in bursts.
//! - [`AfXdpPort::steering`]: the VIP set of the steering maps; the director sets it from
//!   every snapshot it makes live.
//!
//! - [`frame`]: UMEM frames as the pipeline's packet buffers ([`XskBuf`]): a received
//!   frame is forwarded in place (the GUE headers go into the 256 bytes of headroom the
//!   kernel leaves in front of it) and sent back out by its address, so user space copies
//!   nothing on the forwarding path; in zero-copy mode neither does the kernel. No
//!   allocation, lock or syscall per packet; one `sendto` per TX burst when the kernel
//!   asks for it (`need_wakeup`), or always with `busy_poll`.

mod frame;
mod netlink;
mod port;
pub mod prog;
mod queue;
mod xsk;

pub use crate::drivers::spec::XdpMode;
pub use frame::XskBuf;
pub use port::{AfXdpPort, SteeringHandle};
pub use queue::{AfXdpRx, AfXdpTx};

/// UMEM frames per socket: half start on the fill ring, the rest are free for the TX ring
/// and frames in user space.
pub const FRAMES: u32 = 4096;
/// Bytes per UMEM frame (a page: aligned chunks).
pub const FRAME_SIZE: u32 = 4096;
/// Entries of each of the four rings (a power of two, as the kernel requires).
pub const RING_SIZE: u32 = FRAMES / 2;
/// Most queues (XSKMAP entries, see bpf/steer.bpf.c).
pub const MAX_QUEUES: usize = 256;

/// Errors of the AF_XDP driver, naming the interface and what to do.
#[derive(Debug, thiserror::Error)]
pub enum AfXdpError {
    #[error("port af_xdp:{iface}: {op}: {source}")]
    Os {
        iface: String,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("port af_xdp:{iface}: another XDP program is attached (id {id}, name {name:?}); it is not rondo's, so it is left alone: detach it first (`ip link set dev {iface} xdp off`) or use af_packet:{iface}")]
    Foreign {
        iface: String,
        id: u32,
        name: String,
    },
    #[error("port af_xdp:{iface}: loading the XDP program: {reason} (needs root or CAP_BPF+CAP_NET_ADMIN)")]
    Load { iface: String, reason: String },
    #[error("port af_xdp:{iface}: attaching the XDP program: {reason} (does the interface support XDP? try af_packet:{iface})")]
    Attach { iface: String, reason: String },
    #[error("port af_xdp:{iface}: queue {queue}: {op}: {source}{hint}")]
    Socket {
        iface: String,
        queue: u32,
        op: &'static str,
        #[source]
        source: std::io::Error,
        hint: &'static str,
    },
    #[error("port af_xdp:{iface}: {reason}")]
    Setting { iface: String, reason: String },
    #[error("port af_xdp:{iface}: steering map: {reason}")]
    Steering { iface: String, reason: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>() {}

    #[test]
    fn types_cross_threads() {
        assert_send_sync::<AfXdpPort>();
        assert_send::<AfXdpRx>();
        assert_send::<AfXdpTx>();
    }
}
