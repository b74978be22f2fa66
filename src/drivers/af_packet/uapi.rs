//! Linux UAPI constants and ring layouts (`linux/if_packet.h`), spelled out here so the
//! driver does not depend on which of them a given `libc` release exports. They are ABI
//! and never change.
#![allow(unsafe_code)]

use crate::sys::socket::SockOpt;
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

// RX (V3 block status, V2 and V3 frame status).
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

/// `struct tpacket2_hdr` (32 bytes): tp_status at 0, tp_len at 4; a TX frame starts at
/// `TPACKET2_HDRLEN - sizeof(struct sockaddr_ll)` = 32.
pub const V2_STATUS: usize = 0;
pub const V2_LEN: usize = 4;
pub const V2_DATA: usize = 32;
/// RX fields of `struct tpacket2_hdr`, then `struct sockaddr_ll` (16-byte aligned).
pub const V2_SNAPLEN: usize = 8;
pub const V2_MAC: usize = 12;
pub const V2_VLAN_TCI: usize = 24;
pub const V2_VLAN_TPID: usize = 26;
pub const V2_SLL: usize = 32;
/// `TPACKET2_HDRLEN`.
pub const TPACKET2_HDRLEN: usize = 32 + 20;
/// Where the kernel puts the network header of a received frame in a V2 slot:
/// `TPACKET_ALIGN(TPACKET2_HDRLEN + 16)` (for link headers up to 16 bytes; the MAC header
/// sits just before it).
pub const V2_RX_NETOFF: usize = (TPACKET2_HDRLEN + 16).div_ceil(16) * 16;

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

/// `struct tpacket_stats`: what `PACKET_STATISTICS` returns for a V2 ring, and the first
/// two fields of `struct tpacket_stats_v3` (the kernel copies no more than asked for).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct TpacketStats {
    pub packets: u32,
    pub drops: u32,
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
unsafe impl SockOpt for TpacketReq3 {}
// SAFETY: as above.
unsafe impl SockOpt for TpacketReq {}
// SAFETY: as above.
unsafe impl SockOpt for TpacketStats {}
// SAFETY: as above.
unsafe impl SockOpt for PacketMreq {}
