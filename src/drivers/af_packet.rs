//! Linux interfaces through PACKET_MMAP rings (`af_packet:IFACE`).
//!
//! - Every RX queue is its own `AF_PACKET` socket bound to the interface with a
//!   `TPACKET_V3` receive ring: the kernel fills blocks of frames, the queue walks a block
//!   frame by frame (a burst may stop half-way through a block and resume there) and hands
//!   the block back when it is done. With several queues the sockets join one
//!   `PACKET_FANOUT` group that spreads flows by their hash.
//! - Every TX queue is its own socket with a `TPACKET_V2` transmit ring: a burst is copied
//!   into free ring slots and pushed with one `send()` call.
//! - Frames the port sends itself are never read back (`PACKET_IGNORE_OUTGOING`, and the
//!   `PACKET_OUTGOING` packet type is checked as well on kernels that lack it).
//!
//! Received frames are copied into [`PoolBuf`]s, so ring blocks go back to the kernel at
//! once and buffers live as long as the pipeline needs them.
//!
//! This module is one of the few places `unsafe` is allowed: socket options, `mmap` and the
//! memory shared with the kernel. Each block states why it is sound.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Weak};

use super::{BufPool, Burst, DriverError, PoolBuf, Port, PortStats, RxQueue, TxQueue};
use crate::datapath::PacketBuf;
use crate::sys::iface::{check_ifname, ifindex, IfCtl};
use crate::sys::socket::{bind_ll, getsockopt, new_socket, setsockopt};
use crate::wire::offload::complete_l4_checksum;
use crate::wire::MacAddr;

/// Linux UAPI constants and ring layouts (`linux/if_packet.h`), spelled out here so the
/// driver does not depend on which of them a given `libc` release exports. They are ABI
/// and never change.
mod uapi {
    use libc::c_int;

    pub const PACKET_ADD_MEMBERSHIP: c_int = 1;
    pub const PACKET_RX_RING: c_int = 5;
    pub const PACKET_STATISTICS: c_int = 6;
    pub const PACKET_VERSION: c_int = 10;
    pub const PACKET_TX_RING: c_int = 13;
    pub const PACKET_LOSS: c_int = 14;
    pub const PACKET_FANOUT: c_int = 18;
    pub const PACKET_IGNORE_OUTGOING: c_int = 23;

    pub const TPACKET_V2: c_int = 1;
    pub const TPACKET_V3: c_int = 2;

    pub const PACKET_MR_PROMISC: u16 = 1;

    pub const PACKET_FANOUT_HASH: u32 = 0;
    pub const PACKET_FANOUT_FLAG_UNIQUEID: u32 = 0x2000;
    pub const PACKET_FANOUT_FLAG_IGNORE_OUTGOING: u32 = 0x4000;

    /// `sll_pkttype` of a frame this host sent.
    pub const PACKET_OUTGOING: u8 = 4;

    // RX (V3 block status and frame status).
    pub const TP_STATUS_KERNEL: u32 = 0;
    pub const TP_STATUS_USER: u32 = 1;
    /// The L4 checksum was left to the NIC (`CHECKSUM_PARTIAL`: a frame sent by another
    /// namespace of this host over a veth, for one): the field holds only the pseudo-header
    /// sum.
    pub const TP_STATUS_CSUMNOTREADY: u32 = 1 << 3;
    pub const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
    pub const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;
    // TX (V2 frame status).
    pub const TP_STATUS_AVAILABLE: u32 = 0;
    pub const TP_STATUS_SEND_REQUEST: u32 = 1;
    pub const TP_STATUS_WRONG_FORMAT: u32 = 1 << 2;

    /// `struct tpacket_block_desc`: version, offset_to_priv, then `tpacket_hdr_v1`
    /// (block_status, num_pkts, offset_to_first_pkt, blk_len, seq_num, two timestamps).
    pub const BLOCK_STATUS: usize = 8;
    pub const BLOCK_NUM_PKTS: usize = 12;
    pub const BLOCK_FIRST_PKT: usize = 16;
    pub const BLOCK_DESC_LEN: usize = 48;

    /// `struct tpacket3_hdr` (48 bytes) followed, 16-byte aligned, by `struct sockaddr_ll`.
    pub const V3_NEXT_OFFSET: usize = 0;
    pub const V3_SNAPLEN: usize = 12;
    pub const V3_LEN: usize = 16;
    pub const V3_STATUS: usize = 20;
    pub const V3_MAC: usize = 24;
    pub const V3_VLAN_TCI: usize = 32;
    pub const V3_VLAN_TPID: usize = 36;
    pub const V3_SLL: usize = 48;
    /// `sll_pkttype` inside `struct sockaddr_ll`.
    pub const SLL_PKTTYPE: usize = 10;
    /// `TPACKET3_HDRLEN`: header plus `sockaddr_ll` (20 bytes).
    pub const TPACKET3_HDRLEN: usize = 48 + 20;

    /// `struct tpacket2_hdr`: tp_status at 0, tp_len at 4; the frame starts at
    /// `TPACKET2_HDRLEN - sizeof(struct sockaddr_ll)` = 32.
    pub const V2_LEN: usize = 4;
    pub const V2_DATA: usize = 32;
    /// `TPACKET2_HDRLEN`.
    pub const TPACKET2_HDRLEN: usize = 32 + 20;

    /// `struct tpacket_req3`.
    #[repr(C)]
    #[derive(Debug, Clone, Copy, Default)]
    pub struct TpacketReq3 {
        pub block_size: u32,
        pub block_nr: u32,
        pub frame_size: u32,
        pub frame_nr: u32,
        pub retire_blk_tov: u32,
        pub sizeof_priv: u32,
        pub feature_req_word: u32,
    }

    /// `struct tpacket_req`.
    #[repr(C)]
    #[derive(Debug, Clone, Copy, Default)]
    pub struct TpacketReq {
        pub block_size: u32,
        pub block_nr: u32,
        pub frame_size: u32,
        pub frame_nr: u32,
    }

    /// `struct tpacket_stats_v3`.
    #[repr(C)]
    #[derive(Debug, Clone, Copy, Default)]
    pub struct TpacketStatsV3 {
        pub packets: u32,
        pub drops: u32,
        pub freeze_q_cnt: u32,
    }

    /// `struct packet_mreq`.
    #[repr(C)]
    #[derive(Debug, Clone, Copy, Default)]
    pub struct PacketMreq {
        pub ifindex: i32,
        pub kind: u16,
        pub alen: u16,
        pub address: [u8; 8],
    }

    // SAFETY: each is the `#[repr(C)]` integer-only layout the kernel defines for its option
    // (PACKET_RX_RING, PACKET_TX_RING, PACKET_STATISTICS, PACKET_ADD_MEMBERSHIP); any bit
    // pattern is a valid value.
    unsafe impl crate::sys::socket::SockOpt for TpacketReq3 {}
    // SAFETY: as above.
    unsafe impl crate::sys::socket::SockOpt for TpacketReq {}
    // SAFETY: as above.
    unsafe impl crate::sys::socket::SockOpt for TpacketStatsV3 {}
    // SAFETY: as above.
    unsafe impl crate::sys::socket::SockOpt for PacketMreq {}
}

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

use super::PortCounters as Counters;

/// A Linux network interface driven through `AF_PACKET` sockets with mmap'd rings.
pub struct AfPacketPort {
    name: String,
    iface: String,
    ifindex: u32,
    mac: MacAddr,
    mtu: usize,
    opts: AfPacketOptions,
    tx_frame_size: usize,
    pool: BufPool,
    counters: Arc<Counters>,
    /// The RX sockets, to read the kernel's drop counters; weak so a dropped queue closes
    /// its socket.
    rx_socks: Vec<Weak<OwnedFd>>,
    fanout_group: Option<u16>,
    queues_taken: bool,
    exception_taken: bool,
}

impl std::fmt::Debug for AfPacketPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfPacketPort")
            .field("iface", &self.iface)
            .field("ifindex", &self.ifindex)
            .field("mac", &self.mac)
            .field("mtu", &self.mtu)
            .field("opts", &self.opts)
            .field("fanout_group", &self.fanout_group)
            .finish()
    }
}

fn port_err(port: &str, reason: impl Into<String>) -> DriverError {
    DriverError::Port {
        port: port.to_string(),
        reason: reason.into(),
    }
}

/// An OS error during start-up, with the common causes spelled out.
fn os_err(port: &str, op: &'static str, e: io::Error) -> DriverError {
    let hint = match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => "needs root or CAP_NET_RAW",
        Some(libc::ENODEV) | Some(libc::ENXIO) => "no such interface",
        Some(libc::ENETDOWN) => "interface is down",
        Some(libc::EAFNOSUPPORT) => {
            "AF_PACKET sockets are not available (kernel without CONFIG_PACKET?)"
        }
        _ => {
            return DriverError::Os {
                port: port.to_string(),
                op,
                source: e,
            }
        }
    };
    port_err(port, format!("{op}: {hint} ({e})"))
}

fn page_size() -> usize {
    // SAFETY: sysconf only reads a configuration value; no pointers are involved.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

/// The kernel's drop count of an RX ring socket since the last call (the kernel resets
/// the counters when they are read).
fn kernel_drops(fd: &OwnedFd) -> u64 {
    getsockopt::<uapi::TpacketStatsV3>(fd, libc::SOL_PACKET, uapi::PACKET_STATISTICS)
        .map(|s| u64::from(s.drops))
        .unwrap_or(0)
}

/// A shared mapping of a socket's packet ring; unmapped on drop.
struct Ring {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: `Ring` owns its mapping exclusively (it is created once per socket and never
// cloned); the memory is plain bytes shared only with the kernel, so moving the owner to
// another thread is sound. `Ring` is not `Sync` and hands out references only through
// `&self`/`&mut self` methods of the single queue that owns it.
unsafe impl Send for Ring {}

impl Ring {
    fn map(fd: &OwnedFd, len: usize) -> io::Result<Ring> {
        // SAFETY: asks for a new shared mapping of the socket's ring at an address the kernel
        // picks; no existing memory is touched. The result is checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr =
            NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned NULL"))?;
        Ok(Ring { ptr, len })
    }

    /// The ring's status word at `off`, shared with the kernel; `None` if out of bounds or
    /// misaligned.
    #[inline]
    fn status(&self, off: usize) -> Option<&AtomicU32> {
        if !off.is_multiple_of(4) || off.checked_add(4)? > self.len {
            return None;
        }
        // SAFETY: `off..off + 4` is inside the live mapping (checked above) and 4-byte
        // aligned (the mapping is page aligned and `off % 4 == 0`); the word is shared with
        // the kernel, which accesses it with its own atomic/barrier protocol, so it is only
        // ever accessed through this atomic on our side. The reference cannot outlive `self`,
        // which keeps the mapping alive.
        Some(unsafe { AtomicU32::from_ptr(self.ptr.as_ptr().add(off).cast::<u32>()) })
    }

    /// Bytes `off..off + len` of a ring area this side owns (an RX block handed to user
    /// space, a free TX slot); `None` if out of bounds.
    #[inline]
    fn bytes(&self, off: usize, len: usize) -> Option<&[u8]> {
        if off.checked_add(len)? > self.len {
            return None;
        }
        // SAFETY: the range is inside the live mapping (checked above). Callers only ask for
        // areas whose status word says user space owns them (read with Acquire), and the
        // kernel does not write those until the status is handed back with a Release store,
        // which the borrow rules place after the last use of this slice.
        Some(unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(off), len) })
    }

    /// Mutable view of bytes `off..off + len` of a ring area this side owns; `None` if out
    /// of bounds.
    #[inline]
    fn bytes_mut(&mut self, off: usize, len: usize) -> Option<&mut [u8]> {
        if off.checked_add(len)? > self.len {
            return None;
        }
        // SAFETY: in bounds (checked above), and only used for the part of a TX slot after
        // its status word while that status is TP_STATUS_AVAILABLE: the kernel neither
        // reads nor writes those bytes until we store TP_STATUS_SEND_REQUEST (Release) after
        // the last use of this slice. `&mut self` guarantees no other slice of the ring is
        // alive.
        Some(unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(off), len) })
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe exactly the mapping made in `Ring::map`, unmapped only
        // here, once; every reference into it borrows `self` and so is gone by now.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

fn read_u32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn read_u16(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

/// What one `tpacket3_hdr` in an RX block describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RxFrame {
    /// A frame to deliver: `block[start..start + len]`, plus the VLAN tag the kernel took
    /// out of the data (offloaded), to be put back.
    Frame {
        start: usize,
        len: usize,
        vlan: Option<[u8; 4]>,
        /// `TP_STATUS_CSUMNOTREADY`: the TCP/UDP checksum must be completed
        /// ([`complete_l4_checksum`](crate::wire::offload::complete_l4_checksum)) before the frame is forwarded.
        csum_not_ready: bool,
    },
    /// Sent by this host (seen on kernels without `PACKET_IGNORE_OUTGOING`).
    Outgoing,
    /// Cut short by the ring (snaplen < len).
    Truncated,
    /// The header points outside the block: give up on the rest of the block.
    Corrupt,
}

/// Parse the frame header at `off` in `block`; also returns `tp_next_offset`.
fn parse_v3(block: &[u8], off: usize) -> (RxFrame, u32) {
    let Some(h) = off
        .checked_add(uapi::TPACKET3_HDRLEN)
        .and_then(|end| block.get(off..end))
    else {
        return (RxFrame::Corrupt, 0);
    };
    let field = |o| read_u32(h, o).unwrap_or(0);
    let next = field(uapi::V3_NEXT_OFFSET);
    let snaplen = field(uapi::V3_SNAPLEN) as usize;
    let len = field(uapi::V3_LEN) as usize;
    let status = field(uapi::V3_STATUS);
    let mac = read_u16(h, uapi::V3_MAC).unwrap_or(0) as usize;
    let pkttype = h[uapi::V3_SLL + uapi::SLL_PKTTYPE];
    let start = off + mac;
    if mac < uapi::TPACKET3_HDRLEN || start.checked_add(snaplen).is_none_or(|e| e > block.len()) {
        return (RxFrame::Corrupt, next);
    }
    if pkttype == uapi::PACKET_OUTGOING {
        return (RxFrame::Outgoing, next);
    }
    if snaplen < len || snaplen < ETH_HLEN {
        return (RxFrame::Truncated, next);
    }
    let vlan = (status & uapi::TP_STATUS_VLAN_VALID != 0).then(|| {
        let tpid = if status & uapi::TP_STATUS_VLAN_TPID_VALID != 0 {
            read_u16(h, uapi::V3_VLAN_TPID).unwrap_or(0x8100)
        } else {
            0x8100
        };
        let tci = field(uapi::V3_VLAN_TCI) as u16;
        let [a, b] = tpid.to_be_bytes();
        let [c, d] = tci.to_be_bytes();
        [a, b, c, d]
    });
    (
        RxFrame::Frame {
            start,
            len: snaplen,
            vlan,
            csum_not_ready: status & uapi::TP_STATUS_CSUMNOTREADY != 0,
        },
        next,
    )
}

/// Copy `data` into `dst`, re-inserting an offloaded VLAN tag after the MAC addresses;
/// returns the frame length, or `None` if it does not fit.
fn copy_frame(dst: &mut [u8], data: &[u8], vlan: Option<[u8; 4]>) -> Option<usize> {
    match vlan {
        None => {
            dst.get_mut(..data.len())?.copy_from_slice(data);
            Some(data.len())
        }
        Some(tag) => {
            let total = data.len().checked_add(4)?;
            if data.len() < 12 || total > dst.len() {
                return None;
            }
            dst[..12].copy_from_slice(&data[..12]);
            dst[12..16].copy_from_slice(&tag);
            dst[16..total].copy_from_slice(&data[12..]);
            Some(total)
        }
    }
}

/// RX ring geometry checked against the kernel's rules; returns the `tpacket_req3`.
fn rx_ring_req(
    opts: &AfPacketOptions,
    mtu: usize,
    page: usize,
) -> Result<uapi::TpacketReq3, String> {
    let AfPacketOptions {
        block_size,
        block_count,
        frame_size,
        ..
    } = *opts;
    if block_size == 0 || block_size % page != 0 {
        return Err(format!(
            "block_size {block_size} must be a non-zero multiple of the page size ({page})"
        ));
    }
    if block_count == 0 {
        return Err("block_count must be at least 1".into());
    }
    if frame_size < uapi::TPACKET3_HDRLEN || frame_size % 16 != 0 || frame_size > block_size {
        return Err(format!(
            "frame_size {frame_size} must be a multiple of 16 between {} and block_size ({block_size})",
            uapi::TPACKET3_HDRLEN.div_ceil(16) * 16
        ));
    }
    let need = uapi::BLOCK_DESC_LEN + uapi::TPACKET3_HDRLEN + 16 + mtu + L2_OVERHEAD;
    if block_size < need {
        return Err(format!(
            "block_size {block_size} cannot hold one frame of the interface MTU {mtu} (needs {need})"
        ));
    }
    let total = block_size
        .checked_mul(block_count)
        .filter(|&t| t <= u32::MAX as usize);
    if total.is_none() {
        return Err(format!(
            "ring of {block_count} blocks of {block_size} bytes exceeds the kernel's 4 GiB limit"
        ));
    }
    let per_block = block_size / frame_size;
    Ok(uapi::TpacketReq3 {
        block_size: block_size as u32,
        block_nr: block_count as u32,
        frame_size: frame_size as u32,
        frame_nr: (per_block * block_count) as u32,
        retire_blk_tov: RX_BLOCK_TIMEOUT_MS,
        sizeof_priv: 0,
        feature_req_word: 0,
    })
}

/// TX slot size: at least `frame_size`, enough for an MTU-sized frame with a VLAN tag.
fn tx_frame_size(frame_size: usize, mtu: usize) -> usize {
    let need = (uapi::V2_DATA + mtu + L2_OVERHEAD).div_ceil(16) * 16;
    frame_size
        .max(need)
        .max(uapi::TPACKET2_HDRLEN.div_ceil(16) * 16)
}

/// TX ring geometry: blocks of a power of two holding at least four slots (at least a
/// page), enough blocks for [`TX_RING_FRAMES`].
fn tx_ring_req(frame_size: usize, page: usize) -> uapi::TpacketReq {
    let block_size = (frame_size * 4).max(page).next_power_of_two();
    let per_block = block_size / frame_size;
    let block_nr = TX_RING_FRAMES.div_ceil(per_block);
    uapi::TpacketReq {
        block_size: block_size as u32,
        block_nr: block_nr as u32,
        frame_size: frame_size as u32,
        frame_nr: (per_block * block_nr) as u32,
    }
}

impl AfPacketPort {
    /// Open interface `iface`: checks the name, that it exists, is up and is Ethernet, and
    /// that this process may open packet sockets. The rings are made by
    /// [`Port::take_queues`] and [`Port::take_exception_tx`]. Frames are copied into
    /// buffers from `pool`.
    pub fn open(
        iface: &str,
        pool: BufPool,
        opts: AfPacketOptions,
    ) -> Result<AfPacketPort, DriverError> {
        let name = format!("af_packet:{iface}");
        check_ifname(iface).map_err(|r| port_err(&name, r))?;
        let ifindex =
            ifindex(iface).map_err(|e| port_err(&name, format!("no such interface ({e})")))?;
        let probe = new_socket(libc::AF_PACKET, libc::SOCK_RAW, 0)
            .map_err(|e| os_err(&name, "opening an AF_PACKET socket", e))?;
        // Interface ioctls go through the packet socket.
        let ctl = IfCtl::with_socket(probe);

        let flags = i32::from(
            ctl.flags(iface)
                .map_err(|e| os_err(&name, "reading the interface flags", e))?,
        );
        if flags & libc::IFF_UP == 0 {
            return Err(port_err(
                &name,
                format!("interface is down (bring it up first: ip link set {iface} up)"),
            ));
        }
        if flags & libc::IFF_RUNNING == 0 {
            tracing::warn!(port = %name, "interface has no carrier (link down); frames may not flow");
        }
        let (hwtype, mac) = ctl
            .hwaddr(iface)
            .map_err(|e| os_err(&name, "reading the MAC address", e))?;
        let mac = MacAddr(mac);
        if hwtype != libc::ARPHRD_ETHER {
            return Err(port_err(
                &name,
                format!("not an Ethernet interface (link type {hwtype}, ARPHRD_ETHER is 1)"),
            ));
        }
        let mtu = ctl
            .mtu(iface)
            .map_err(|e| os_err(&name, "reading the MTU", e))?;
        let mtu = usize::try_from(mtu).unwrap_or(1500);

        rx_ring_req(&opts, mtu, page_size()).map_err(|r| port_err(&name, r))?;
        if !opts.frame_size.is_multiple_of(16) {
            return Err(port_err(
                &name,
                format!("frame_size {} must be a multiple of 16", opts.frame_size),
            ));
        }
        if pool.data_room() < mtu + L2_OVERHEAD {
            tracing::warn!(
                port = %name,
                mtu,
                data_room = pool.data_room(),
                "buffer data room is smaller than the MTU plus headers; larger frames are dropped"
            );
        }
        Ok(AfPacketPort {
            tx_frame_size: tx_frame_size(opts.frame_size, mtu),
            name,
            iface: iface.to_string(),
            ifindex,
            mac,
            mtu,
            opts,
            pool,
            counters: Arc::default(),
            rx_socks: Vec::new(),
            fanout_group: None,
            queues_taken: false,
            exception_taken: false,
        })
    }

    /// The interface name.
    pub fn iface(&self) -> &str {
        &self.iface
    }
    /// The interface index.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }
    /// The interface MTU when the port was opened.
    pub fn mtu(&self) -> usize {
        self.mtu
    }
    /// The options the port was opened with.
    pub fn options(&self) -> &AfPacketOptions {
        &self.opts
    }
    /// The `PACKET_FANOUT` group of the RX sockets, once queues are taken (only with more
    /// than one queue).
    pub fn fanout_group(&self) -> Option<u16> {
        self.fanout_group
    }

    fn err(&self, op: &'static str, e: io::Error) -> DriverError {
        os_err(&self.name, op, e)
    }

    /// One RX socket with its ring. `fanout`: `None` for a lone queue, else the group to
    /// join (`None` inside: ask the kernel for a new id); returns the group joined.
    fn open_rx(
        &self,
        fanout: Option<Option<u16>>,
    ) -> Result<(AfPacketRx, Option<u16>), DriverError> {
        let req =
            rx_ring_req(&self.opts, self.mtu, page_size()).map_err(|r| port_err(&self.name, r))?;
        let fd = new_socket(libc::AF_PACKET, libc::SOCK_RAW, 0)
            .map_err(|e| self.err("opening an AF_PACKET socket", e))?;
        if fanout.is_some() {
            // Drop everything until the socket is in the fanout group, so that no frame is
            // read by two queues while the group is being formed.
            let drop_all = [libc::sock_filter {
                code: (libc::BPF_RET | libc::BPF_K) as u16,
                jt: 0,
                jf: 0,
                k: 0,
            }];
            let prog = libc::sock_fprog {
                len: 1,
                filter: drop_all.as_ptr().cast_mut(),
            };
            setsockopt(&fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog)
                .map_err(|e| self.err("attaching the start-up filter", e))?;
        }
        setsockopt(
            &fd,
            libc::SOL_PACKET,
            uapi::PACKET_VERSION,
            &uapi::TPACKET_V3,
        )
        .map_err(|e| self.err("selecting TPACKET_V3", e))?;
        // Linux >= 4.20; older kernels are covered by the sll_pkttype check.
        let _ = setsockopt(&fd, libc::SOL_PACKET, uapi::PACKET_IGNORE_OUTGOING, &1i32);
        if let Err(e) = setsockopt(&fd, libc::SOL_PACKET, uapi::PACKET_RX_RING, &req) {
            if e.raw_os_error() == Some(libc::ENOMEM) {
                return Err(port_err(
                    &self.name,
                    format!(
                        "setting up the RX ring: not enough memory for {} blocks of {} bytes \
                         (lower block_count or block_size) ({e})",
                        req.block_nr, req.block_size
                    ),
                ));
            }
            return Err(self.err("setting up the RX ring (PACKET_RX_RING)", e));
        }
        let ring_len = req.block_size as usize * req.block_nr as usize;
        let ring = Ring::map(&fd, ring_len).map_err(|e| self.err("mapping the RX ring", e))?;
        bind_ll(&fd, self.ifindex, libc::ETH_P_ALL as u16)
            .map_err(|e| self.err("binding to the interface", e))?;
        let mut joined = None;
        if let Some(group) = fanout {
            let id = self.join_fanout(&fd, group)?;
            joined = Some(id);
            setsockopt(&fd, libc::SOL_SOCKET, libc::SO_DETACH_FILTER, &0i32)
                .map_err(|e| self.err("removing the start-up filter", e))?;
        }
        if self.opts.promiscuous {
            let mreq = uapi::PacketMreq {
                ifindex: self.ifindex as i32,
                kind: uapi::PACKET_MR_PROMISC,
                ..Default::default()
            };
            setsockopt(&fd, libc::SOL_PACKET, uapi::PACKET_ADD_MEMBERSHIP, &mreq)
                .map_err(|e| self.err("enabling promiscuous mode", e))?;
        }
        let fd = Arc::new(fd);
        let rx = AfPacketRx {
            ring,
            fd,
            block_size: req.block_size as usize,
            block_count: req.block_nr as usize,
            block: 0,
            in_block: false,
            pkts_left: 0,
            offset: 0,
            pool: self.pool.clone(),
            counters: self.counters.clone(),
        };
        Ok((rx, joined))
    }

    /// Join fanout group `group` (or a new one the kernel picks); returns the group id.
    fn join_fanout(&self, fd: &OwnedFd, group: Option<u16>) -> Result<u16, DriverError> {
        let join = |id: u16, flags: u32| -> io::Result<()> {
            let with = u32::from(id) | ((uapi::PACKET_FANOUT_HASH | flags) << 16);
            match setsockopt(fd, libc::SOL_PACKET, uapi::PACKET_FANOUT, &with) {
                // Kernels before 6.4 may not know IGNORE_OUTGOING for groups; the frame
                // type check covers them.
                Err(e)
                    if e.raw_os_error() == Some(libc::EINVAL)
                        && flags & uapi::PACKET_FANOUT_FLAG_IGNORE_OUTGOING != 0 =>
                {
                    let without = u32::from(id)
                        | ((uapi::PACKET_FANOUT_HASH
                            | (flags & !uapi::PACKET_FANOUT_FLAG_IGNORE_OUTGOING))
                            << 16);
                    setsockopt(fd, libc::SOL_PACKET, uapi::PACKET_FANOUT, &without)
                }
                r => r,
            }
        };
        let flags = uapi::PACKET_FANOUT_FLAG_IGNORE_OUTGOING;
        match group {
            Some(id) => {
                join(id, flags).map_err(|e| {
                    port_err(
                        &self.name,
                        format!(
                            "joining PACKET_FANOUT group {id}: {e} (is the id used by another \
                             program with other settings? pick another fanout_group)"
                        ),
                    )
                })?;
                Ok(id)
            }
            None => {
                match join(0, flags | uapi::PACKET_FANOUT_FLAG_UNIQUEID) {
                    Ok(()) => {
                        let v: u32 = getsockopt(fd, libc::SOL_PACKET, uapi::PACKET_FANOUT)
                            .map_err(|e| self.err("reading the fanout group id", e))?;
                        Ok(v as u16)
                    }
                    // Kernels before 4.3 cannot pick an id: derive one from pid and ifindex.
                    Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                        let id = (std::process::id() ^ (self.ifindex << 10)) as u16;
                        self.join_fanout(fd, Some(id))
                    }
                    Err(e) => Err(self.err("joining a new PACKET_FANOUT group", e)),
                }
            }
        }
    }

    /// One TX socket with its ring.
    fn open_tx(&self) -> Result<AfPacketTx, DriverError> {
        let req = tx_ring_req(self.tx_frame_size, page_size());
        let fd = new_socket(libc::AF_PACKET, libc::SOCK_RAW, 0)
            .map_err(|e| self.err("opening an AF_PACKET socket", e))?;
        setsockopt(
            &fd,
            libc::SOL_PACKET,
            uapi::PACKET_VERSION,
            &uapi::TPACKET_V2,
        )
        .map_err(|e| self.err("selecting TPACKET_V2", e))?;
        // Malformed frames are skipped by the kernel instead of stalling the ring.
        setsockopt(&fd, libc::SOL_PACKET, uapi::PACKET_LOSS, &1i32)
            .map_err(|e| self.err("setting PACKET_LOSS", e))?;
        // Room for a whole ring in flight; best effort (SNDBUFFORCE needs CAP_NET_ADMIN).
        let sndbuf =
            (req.block_size as usize * req.block_nr as usize).min(i32::MAX as usize) as i32;
        if setsockopt(&fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, &sndbuf).is_err() {
            let _ = setsockopt(&fd, libc::SOL_SOCKET, libc::SO_SNDBUF, &sndbuf);
        }
        setsockopt(&fd, libc::SOL_PACKET, uapi::PACKET_TX_RING, &req)
            .map_err(|e| self.err("setting up the TX ring (PACKET_TX_RING)", e))?;
        let ring_len = req.block_size as usize * req.block_nr as usize;
        let ring = Ring::map(&fd, ring_len).map_err(|e| self.err("mapping the TX ring", e))?;
        // Protocol 0: the socket only sends, it receives nothing.
        bind_ll(&fd, self.ifindex, 0).map_err(|e| self.err("binding to the interface", e))?;
        let frame_size = req.frame_size as usize;
        Ok(AfPacketTx {
            ring,
            fd,
            block_size: req.block_size as usize,
            frame_size,
            per_block: req.block_size as usize / frame_size,
            frames: req.frame_nr as usize,
            next: 0,
            max_len: (frame_size - uapi::V2_DATA).min(self.mtu + L2_OVERHEAD),
            last_queued: None,
            counters: self.counters.clone(),
        })
    }
}

impl Port for AfPacketPort {
    type Buf = PoolBuf;
    type Rx = AfPacketRx;
    type Tx = AfPacketTx;

    fn name(&self) -> &str {
        &self.name
    }

    fn mac(&self) -> Option<MacAddr> {
        Some(self.mac)
    }

    /// `n` RX/TX pairs; with `n > 1` the RX sockets share one fanout group (flow hash).
    fn take_queues(&mut self, n: usize) -> Result<Vec<(AfPacketRx, AfPacketTx)>, DriverError> {
        if self.queues_taken {
            return Err(port_err(&self.name, "queues already taken"));
        }
        if n == 0 || n > MAX_QUEUES {
            return Err(port_err(
                &self.name,
                format!("{n} queues asked, between 1 and {MAX_QUEUES} possible"),
            ));
        }
        let mut group = (n > 1).then_some(self.opts.fanout_group);
        let mut queues = Vec::with_capacity(n);
        for _ in 0..n {
            let (rx, joined) = self.open_rx(group)?;
            if let Some(id) = joined {
                group = Some(Some(id));
                self.fanout_group = Some(id);
            }
            let tx = self.open_tx()?;
            queues.push((rx, tx));
        }
        self.rx_socks = queues
            .iter()
            .map(|(rx, _)| Arc::downgrade(&rx.fd))
            .collect();
        self.queues_taken = true;
        Ok(queues)
    }

    fn take_exception_tx(&mut self) -> Result<Option<AfPacketTx>, DriverError> {
        if self.exception_taken {
            return Err(port_err(&self.name, "exception TX queue already taken"));
        }
        let tx = self.open_tx()?;
        self.exception_taken = true;
        Ok(Some(tx))
    }

    fn alloc(&self, frame: &[u8]) -> Option<PoolBuf> {
        self.pool.get_with(frame)
    }

    /// Counters of every queue; RX drops include the kernel's ring-full drops.
    fn stats(&self) -> PortStats {
        let c = &self.counters;
        for fd in self.rx_socks.iter().filter_map(Weak::upgrade) {
            Counters::add(&c.rx_dropped, kernel_drops(&fd));
        }
        c.read()
    }
}

/// RX queue of an [`AfPacketPort`]: one socket with a `TPACKET_V3` ring.
pub struct AfPacketRx {
    // Declared before `fd`: unmapped before the socket closes.
    ring: Ring,
    fd: Arc<OwnedFd>,
    block_size: usize,
    block_count: usize,
    /// Block being read, or the next one to wait for.
    block: usize,
    /// `block` is ours (handed over by the kernel, not yet given back).
    in_block: bool,
    /// Frames of `block` not read yet, and the offset of the next.
    pkts_left: u32,
    offset: usize,
    pool: BufPool,
    counters: Arc<Counters>,
}

impl AfPacketRx {
    /// Hand the current block back to the kernel and move to the next.
    #[inline]
    fn release_block(&mut self) {
        if let Some(s) = self
            .ring
            .status(self.block * self.block_size + uapi::BLOCK_STATUS)
        {
            s.store(uapi::TP_STATUS_KERNEL, Ordering::Release);
        }
        self.in_block = false;
        self.pkts_left = 0;
        self.block = (self.block + 1) % self.block_count;
    }
}

impl std::fmt::Debug for AfPacketRx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfPacketRx")
            .field("fd", &self.fd.as_raw_fd())
            .field("block_size", &self.block_size)
            .field("block_count", &self.block_count)
            .field("block", &self.block)
            .finish()
    }
}

impl AsRawFd for AfPacketRx {
    /// The socket, readable (poll) when a block is ready.
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl RxQueue for AfPacketRx {
    type Buf = PoolBuf;

    fn rx_burst(&mut self, out: &mut Burst<PoolBuf>) -> usize {
        let (mut n, mut bytes, mut dropped, mut errors) = (0usize, 0u64, 0u64, 0u64);
        let mut scanned = 0;
        while out.room() > 0 && scanned < RX_SCAN_MAX {
            let base = self.block * self.block_size;
            if !self.in_block {
                let Some(status) = self.ring.status(base + uapi::BLOCK_STATUS) else {
                    break;
                };
                if status.load(Ordering::Acquire) & uapi::TP_STATUS_USER == 0 {
                    break;
                }
                let Some(block) = self.ring.bytes(base, self.block_size) else {
                    break;
                };
                self.pkts_left = read_u32(block, uapi::BLOCK_NUM_PKTS).unwrap_or(0);
                self.offset = read_u32(block, uapi::BLOCK_FIRST_PKT).unwrap_or(0) as usize;
                self.in_block = true;
                if self.pkts_left == 0 {
                    self.release_block();
                    continue;
                }
            }
            let Some(block) = self.ring.bytes(base, self.block_size) else {
                break;
            };
            let (frame, next) = parse_v3(block, self.offset);
            scanned += 1;
            match frame {
                RxFrame::Frame {
                    start,
                    len,
                    vlan,
                    csum_not_ready,
                } => match self.pool.get() {
                    Some(mut buf) => {
                        match copy_frame(buf.room_mut(), &block[start..start + len], vlan) {
                            Some(l) => {
                                buf.set_len(l);
                                if csum_not_ready {
                                    complete_l4_checksum(buf.data_mut());
                                }
                                bytes += l as u64;
                                n += 1;
                                let _ = out.push(buf);
                            }
                            // Larger than the buffers: counted, the buffer goes back.
                            None => dropped += 1,
                        }
                    }
                    // Pool empty: the frame is dropped (counted) and the ring moves on.
                    None => dropped += 1,
                },
                RxFrame::Outgoing => {}
                RxFrame::Truncated => errors += 1,
                RxFrame::Corrupt => {
                    errors += u64::from(self.pkts_left);
                    self.release_block();
                    continue;
                }
            }
            self.pkts_left -= 1;
            if self.pkts_left == 0 {
                self.release_block();
            } else if next == 0 {
                errors += u64::from(self.pkts_left);
                self.release_block();
            } else {
                self.offset += next as usize;
            }
        }
        let c = &self.counters;
        Counters::add(&c.rx_packets, n as u64);
        Counters::add(&c.rx_bytes, bytes);
        Counters::add(&c.rx_dropped, dropped);
        Counters::add(&c.rx_errors, errors);
        n
    }
}

impl Drop for AfPacketRx {
    fn drop(&mut self) {
        // Keep the kernel's last drops (the port may still be asked for stats).
        Counters::add(&self.counters.rx_dropped, kernel_drops(&self.fd));
    }
}

/// TX queue of an [`AfPacketPort`]: one socket with a `TPACKET_V2` ring, pushed with one
/// `send()` per burst.
pub struct AfPacketTx {
    // Declared before `fd`: unmapped before the socket closes.
    ring: Ring,
    fd: OwnedFd,
    block_size: usize,
    frame_size: usize,
    per_block: usize,
    frames: usize,
    /// Next slot to fill.
    next: usize,
    /// Largest frame the kernel takes (slot size and MTU).
    max_len: usize,
    /// Slot of the last frame queued, to see whether the kernel has taken it.
    last_queued: Option<usize>,
    counters: Arc<Counters>,
}

impl AfPacketTx {
    #[inline]
    fn slot_offset(&self, i: usize) -> usize {
        (i / self.per_block) * self.block_size + (i % self.per_block) * self.frame_size
    }

    /// Ask the kernel to send every queued slot (one syscall, never blocks).
    fn kick(&mut self) {
        loop {
            // SAFETY: a zero-length send with a NULL buffer is the documented way to flush a
            // PACKET_TX_RING; the kernel reads nothing through the pointer.
            let r =
                unsafe { libc::send(self.fd.as_raw_fd(), std::ptr::null(), 0, libc::MSG_DONTWAIT) };
            if r >= 0 {
                break;
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                // Socket buffer full: the slots stay queued and go with the next kick.
                Some(libc::EAGAIN) | Some(libc::ENOBUFS) => break,
                _ => {
                    // Interface down or gone: the slots stay queued until it is back or
                    // the ring fills and bursts are refused.
                    Counters::add(&self.counters.tx_errors, 1);
                    break;
                }
            }
        }
    }

    /// Whether the slot at `off` may be filled (free, or refused by the kernel earlier).
    #[inline]
    fn slot_free(&self, off: usize) -> bool {
        self.ring.status(off).is_some_and(|s| {
            let st = s.load(Ordering::Acquire);
            st == uapi::TP_STATUS_AVAILABLE || st & uapi::TP_STATUS_WRONG_FORMAT != 0
        })
    }

    /// Whether the last queued frame still waits for the kernel.
    fn pending(&self) -> bool {
        self.last_queued
            .and_then(|i| self.ring.status(self.slot_offset(i)))
            .is_some_and(|s| s.load(Ordering::Acquire) == uapi::TP_STATUS_SEND_REQUEST)
    }
}

impl std::fmt::Debug for AfPacketTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfPacketTx")
            .field("fd", &self.fd.as_raw_fd())
            .field("frames", &self.frames)
            .field("frame_size", &self.frame_size)
            .field("max_len", &self.max_len)
            .finish()
    }
}

impl AsRawFd for AfPacketTx {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl TxQueue for AfPacketTx {
    type Buf = PoolBuf;

    /// Copies frames into free ring slots and sends them with one syscall. Frames that do
    /// not fit the ring stay in `pkts`; frames the interface can never send (shorter than an
    /// Ethernet header, longer than the MTU) are taken and counted as `tx_errors`.
    fn tx_burst(&mut self, pkts: &mut Burst<PoolBuf>) -> usize {
        let (mut taken, mut queued, mut bytes, mut errors) = (0usize, 0u64, 0u64, 0u64);
        let mut kicked = false;
        for b in pkts.as_slice() {
            let data = b.data();
            if data.len() < ETH_HLEN || data.len() > self.max_len {
                errors += 1;
                taken += 1;
                continue;
            }
            let off = self.slot_offset(self.next);
            let mut free = self.slot_free(off);
            if !free && !kicked && queued == 0 && self.pending() {
                // Ring full of frames that wait for a kick (the socket buffer was full last
                // time): kick once and look again.
                kicked = true;
                self.kick();
                free = self.slot_free(off);
            }
            if !free {
                break;
            }
            // The slot after its status word: tp_len, the rest of the header, the frame.
            let Some(slot) = self
                .ring
                .bytes_mut(off + uapi::V2_LEN, self.frame_size - uapi::V2_LEN)
            else {
                break;
            };
            slot[..4].copy_from_slice(&(data.len() as u32).to_ne_bytes());
            let at = uapi::V2_DATA - uapi::V2_LEN;
            slot[at..at + data.len()].copy_from_slice(data);
            if let Some(s) = self.ring.status(off) {
                s.store(uapi::TP_STATUS_SEND_REQUEST, Ordering::Release);
            }
            self.last_queued = Some(self.next);
            self.next = (self.next + 1) % self.frames;
            queued += 1;
            bytes += data.len() as u64;
            taken += 1;
        }
        if queued > 0 {
            self.kick();
        }
        // Buffers go back to the pool.
        pkts.drain_front(taken).for_each(drop);
        let c = &self.counters;
        Counters::add(&c.tx_packets, queued);
        Counters::add(&c.tx_bytes, bytes);
        Counters::add(&c.tx_errors, errors);
        taken
    }

    fn flush(&mut self) {
        if self.pending() {
            self.kick();
        }
    }
}

impl Drop for AfPacketTx {
    fn drop(&mut self) {
        self.flush();
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

    #[test]
    fn option_defaults_are_valid() {
        let o = AfPacketOptions::default();
        assert_eq!(
            (o.block_size, o.block_count, o.frame_size),
            (1 << 20, 64, 2048)
        );
        assert!(o.promiscuous);
        assert_eq!(o.fanout_group, None);
        let req = rx_ring_req(&o, 1500, 4096).unwrap();
        assert_eq!(req.frame_nr, 512 * 64);
        assert_eq!(req.retire_blk_tov, RX_BLOCK_TIMEOUT_MS);
        // Jumbo MTU fits the default blocks too.
        assert!(rx_ring_req(&o, 9000, 4096).is_ok());
    }

    #[test]
    fn bad_ring_geometry_is_explained() {
        let bad = |block_size, block_count, frame_size, mtu| {
            let o = AfPacketOptions {
                block_size,
                block_count,
                frame_size,
                ..AfPacketOptions::default()
            };
            rx_ring_req(&o, mtu, 4096).unwrap_err()
        };
        assert!(bad(1000, 64, 2048, 1500).contains("page size"));
        assert!(bad(0, 64, 2048, 1500).contains("page size"));
        assert!(bad(1 << 20, 0, 2048, 1500).contains("block_count"));
        assert!(bad(1 << 20, 64, 100, 1500).contains("multiple of 16"));
        assert!(bad(1 << 20, 64, 32, 1500).contains("frame_size"));
        assert!(bad(4096, 64, 2048, 9000).contains("MTU 9000"));
        assert!(bad(1 << 20, 1 << 20, 2048, 1500).contains("4 GiB"));
    }

    #[test]
    fn tx_ring_fits_the_mtu() {
        assert_eq!(tx_frame_size(2048, 1500), 2048);
        let f = tx_frame_size(2048, 9000);
        assert!(f >= uapi::V2_DATA + 9018 && f.is_multiple_of(16));
        let req = tx_ring_req(2048, 4096);
        assert_eq!(req.block_size, 8192);
        assert_eq!(req.frame_nr as usize, TX_RING_FRAMES);
        assert_eq!(
            req.frame_nr,
            req.block_nr * (req.block_size / req.frame_size)
        );
        let req = tx_ring_req(f, 4096);
        assert!(req.frame_nr as usize >= TX_RING_FRAMES);
        assert_eq!(req.block_size % 4096, 0);
    }

    #[test]
    fn missing_interface_is_named() {
        let pool = BufPool::new(4, 2048).unwrap();
        let e =
            AfPacketPort::open("rdo-none0", pool.clone(), AfPacketOptions::default()).unwrap_err();
        let s = e.to_string();
        assert!(
            s.contains("rdo-none0") && s.contains("no such interface"),
            "{s}"
        );
        let e = AfPacketPort::open("averyveryverylongname", pool, AfPacketOptions::default())
            .unwrap_err();
        assert!(e.to_string().contains("at most 15"), "{e}");
    }

    #[test]
    fn os_errors_say_what_to_do() {
        let e = os_err(
            "af_packet:x",
            "opening",
            io::Error::from_raw_os_error(libc::EPERM),
        );
        assert!(e.to_string().contains("needs root or CAP_NET_RAW"), "{e}");
        let e = os_err(
            "af_packet:x",
            "binding",
            io::Error::from_raw_os_error(libc::ENETDOWN),
        );
        assert!(e.to_string().contains("interface is down"), "{e}");
        let e = os_err(
            "af_packet:x",
            "mapping",
            io::Error::from_raw_os_error(libc::EINVAL),
        );
        assert!(matches!(e, DriverError::Os { op: "mapping", .. }), "{e}");
    }

    #[test]
    fn csum_not_ready_status_is_reported() {
        let mut block = vec![0u8; 4096];
        let data: Vec<u8> = (0..60).collect();
        put_frame(
            &mut block,
            48,
            &data,
            0,
            1 | uapi::TP_STATUS_CSUMNOTREADY,
            0,
        );
        let (f, _) = parse_v3(&block, 48);
        assert!(
            matches!(
                f,
                RxFrame::Frame {
                    csum_not_ready: true,
                    ..
                }
            ),
            "{f:?}"
        );
        put_frame(&mut block, 48, &data, 0, 1, 0);
        assert!(matches!(
            parse_v3(&block, 48).0,
            RxFrame::Frame {
                csum_not_ready: false,
                ..
            }
        ));
    }

    /// A V3 frame header at `off` in `block` describing `data`.
    fn put_frame(block: &mut [u8], off: usize, data: &[u8], next: u32, status: u32, pkttype: u8) {
        let mac = 80usize;
        block[off..off + 4].copy_from_slice(&next.to_ne_bytes());
        block[off + 12..off + 16].copy_from_slice(&(data.len() as u32).to_ne_bytes());
        block[off + 16..off + 20].copy_from_slice(&(data.len() as u32).to_ne_bytes());
        block[off + 20..off + 24].copy_from_slice(&status.to_ne_bytes());
        block[off + 24..off + 26].copy_from_slice(&(mac as u16).to_ne_bytes());
        block[off + 32..off + 36].copy_from_slice(&0x0123u32.to_ne_bytes());
        block[off + 36..off + 38].copy_from_slice(&0x88a8u16.to_ne_bytes());
        block[off + uapi::V3_SLL + uapi::SLL_PKTTYPE] = pkttype;
        block[off + mac..off + mac + data.len()].copy_from_slice(data);
    }

    #[test]
    fn v3_frames_parse_and_bad_headers_never_panic() {
        let mut block = vec![0u8; 4096];
        let data: Vec<u8> = (0..60).collect();
        put_frame(&mut block, 48, &data, 160, 1, 0);
        let (f, next) = parse_v3(&block, 48);
        assert_eq!(next, 160);
        let RxFrame::Frame {
            start, len, vlan, ..
        } = f
        else {
            panic!("{f:?}")
        };
        assert_eq!(&block[start..start + len], &data[..]);
        assert_eq!(vlan, None);

        put_frame(
            &mut block,
            208,
            &data,
            0,
            1 | uapi::TP_STATUS_VLAN_VALID | uapi::TP_STATUS_VLAN_TPID_VALID,
            0,
        );
        let (f, _) = parse_v3(&block, 208);
        let RxFrame::Frame {
            start, len, vlan, ..
        } = f
        else {
            panic!("{f:?}")
        };
        assert_eq!(vlan, Some([0x88, 0xa8, 0x01, 0x23]));
        let mut dst = [0u8; 128];
        let n = copy_frame(&mut dst, &block[start..start + len], vlan).unwrap();
        assert_eq!(n, 64);
        assert_eq!(&dst[..12], &data[..12]);
        assert_eq!(&dst[12..16], &[0x88, 0xa8, 0x01, 0x23]);
        assert_eq!(&dst[16..64], &data[12..]);
        assert_eq!(copy_frame(&mut dst[..63], &data, vlan), None);
        assert_eq!(copy_frame(&mut dst[..59], &data, None), None);

        put_frame(&mut block, 400, &data, 0, 1, uapi::PACKET_OUTGOING);
        assert_eq!(parse_v3(&block, 400).0, RxFrame::Outgoing);
        // snaplen < len
        put_frame(&mut block, 600, &data, 0, 1, 0);
        block[600 + 16..600 + 20].copy_from_slice(&1000u32.to_ne_bytes());
        assert_eq!(parse_v3(&block, 600).0, RxFrame::Truncated);
        // Data past the block end, header past the end, absurd offsets.
        put_frame(&mut block, 800, &data, 0, 1, 0);
        block[800 + 12..800 + 16].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert_eq!(parse_v3(&block, 800).0, RxFrame::Corrupt);
        assert_eq!(parse_v3(&block, 4090).0, RxFrame::Corrupt);
        assert_eq!(parse_v3(&block, usize::MAX - 3).0, RxFrame::Corrupt);
        block[1000 + 24..1000 + 26].copy_from_slice(&0xffffu16.to_ne_bytes());
        assert_eq!(parse_v3(&block, 1000).0, RxFrame::Corrupt);
    }
}
