//! The outer headers of a table's packets: a template of the Ethernet, IP, UDP and GUE
//! headers built once when the snapshot is compiled, its byte offsets, and the IPv4
//! backends as the encapsulation uses them.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::wire::checksum;
use crate::wire::ethernet::{self, ethertype};
use crate::wire::{
    emit_glb_v4, emit_glb_v6, ip_proto, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr, UdpPacket,
    UdpRepr,
};

/// Most hops one packet can carry: 8 per row, twice with `alt_hash_fields`.
pub const MAX_HOPS: usize = 16;

/// Hop address family of a compiled table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

/// GLB's GUE port ('LB' + 1).
pub const GUE_PORT: u16 = crate::wire::gue::PORT;
pub(super) const ETH: usize = 14;
pub(super) const UDP_GUE: usize = 8 + 4 + 4;

/// Outer headers of one table, built once with the wire emitters when the snapshot is
/// compiled: Ethernet, IPv4 or IPv6, UDP and the fixed 8 bytes of GUE with the per-packet
/// fields zeroed, plus their checksum partial sums. Per packet only the addresses, lengths,
/// source port, GUE protocol and hop list are patched in, and the checksums are finished
/// incrementally (RFC 1071 sums are order-independent over 16-bit words).
#[derive(Debug, Clone)]
pub struct OuterTemplate {
    pub(super) bytes: [u8; ETH + 40 + UDP_GUE],
    pub(super) family: Family,
    /// IPv4: sum of the header with total length, destination and checksum zero.
    pub(super) ip_sum: u32,
    /// Pseudo-header source + protocol, UDP destination port, fixed GUE words.
    pub(super) udp_sum: u32,
    /// `udp_sum` folded and byte-swapped: the same sum in the little-endian domain of
    /// [`checksum::sum_le`].
    pub(super) udp_sum_le: u64,
}

pub(super) const V4_LEN: usize = ETH + 20 + UDP_GUE;
pub(super) const V6_LEN: usize = ETH + 40 + UDP_GUE;
pub(super) const IP4_TOTAL: usize = ETH + 2;
pub(super) const IP4_CSUM: usize = ETH + 10;
pub(super) const IP4_DST: usize = ETH + 16;
pub(super) const IP6_PAYLOAD: usize = ETH + 4;
pub(super) const IP6_DST: usize = ETH + 24;

impl OuterTemplate {
    /// Bytes of the template in use: 50 (IPv4 outer) or 70 (IPv6 outer).
    #[inline]
    pub(super) fn len(&self) -> usize {
        match self.family {
            Family::V4 => V4_LEN,
            Family::V6 => V6_LEN,
        }
    }

    /// Build the template for a table with `family` hops, `hops` of them per packet.
    pub fn new(
        settings: &crate::config::DirectorSettings,
        src_mac: crate::wire::MacAddr,
        family: Family,
        hops: usize,
    ) -> OuterTemplate {
        let mut bytes = [0u8; ETH + 40 + UDP_GUE];
        let zero4 = [Ipv4Addr::UNSPECIFIED; MAX_HOPS];
        let zero6 = [Ipv6Addr::UNSPECIFIED; MAX_HOPS];
        let list = hops.saturating_sub(1);
        let (len, ip_sum, pseudo) = match family {
            Family::V4 => {
                let src = settings.src_ipv4;
                let _ = ethernet::emit_header(
                    &mut bytes,
                    settings.gateway_mac,
                    src_mac,
                    ethertype::IPV4,
                );
                let _ = Ipv4Repr {
                    src_addr: src,
                    dst_addr: Ipv4Addr::UNSPECIFIED,
                    next_header: ip_proto::UDP,
                    payload_len: 0,
                    hop_limit: 64,
                    dont_frag: true,
                    ident: 0,
                    dscp_ecn: 0,
                }
                .emit(&mut Ipv4Packet::new_unchecked(&mut bytes[ETH..]));
                bytes[IP4_TOTAL..IP4_TOTAL + 2].fill(0);
                bytes[IP4_CSUM..IP4_CSUM + 2].fill(0);
                let udp_off = ETH + 20;
                let mut gue = [0u8; 8 + 4 * MAX_HOPS];
                let _ = emit_glb_v4(&mut gue, 0, &zero4[..list.min(MAX_HOPS - 1)], 0);
                bytes[udp_off + 8..udp_off + 16].copy_from_slice(&gue[..8]);
                let ip_sum = checksum::sum(&bytes[ETH..udp_off]);
                (
                    udp_off + UDP_GUE,
                    ip_sum,
                    checksum::pseudo_header_v4(src, Ipv4Addr::UNSPECIFIED, ip_proto::UDP, 0),
                )
            }
            Family::V6 => {
                let src = settings.src_ipv6.unwrap_or(Ipv6Addr::UNSPECIFIED);
                let _ = ethernet::emit_header(
                    &mut bytes,
                    settings.gateway_mac,
                    src_mac,
                    ethertype::IPV6,
                );
                let _ = Ipv6Repr {
                    src_addr: src,
                    dst_addr: Ipv6Addr::UNSPECIFIED,
                    next_header: ip_proto::UDP,
                    payload_len: 0,
                    hop_limit: 64,
                    traffic_class: 0,
                    flow_label: 0,
                }
                .emit(&mut Ipv6Packet::new_unchecked(&mut bytes[ETH..]));
                let udp_off = ETH + 40;
                let mut gue = [0u8; 8 + 16 * 8];
                let _ = emit_glb_v6(&mut gue, 0, &zero6[..list.min(7)], 0);
                bytes[udp_off + 8..udp_off + 16].copy_from_slice(&gue[..8]);
                (
                    udp_off + UDP_GUE,
                    0,
                    checksum::pseudo_header_v6(&src, &Ipv6Addr::UNSPECIFIED, ip_proto::UDP, 0),
                )
            }
        };
        let udp_off = len - UDP_GUE;
        let _ = UdpRepr {
            src_port: 0,
            dst_port: GUE_PORT,
            payload_len: 0,
        }
        .emit(&mut UdpPacket::new_unchecked(&mut bytes[udp_off..]));
        bytes[udp_off + 4..udp_off + 6].fill(0); // length: per packet
        let udp_sum = checksum::add(pseudo, checksum::sum(&bytes[udp_off..len]));
        OuterTemplate {
            bytes,
            family,
            ip_sum,
            udp_sum,
            udp_sum_le: u64::from(checksum::fold(udp_sum).swap_bytes()),
        }
    }
}

/// An IPv4 backend as the encapsulation uses it: its address, and the ones-complement sum
/// of the table's outer IPv4 header with that address as destination, so that a packet's
/// header checksum only adds its length.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(8))]
pub(crate) struct BackendV4 {
    /// Network order.
    pub(crate) addr: [u8; 4],
    /// The header's sum in the little-endian domain of [`checksum::sum_le`], folded (at
    /// most 0xffff), without the total length.
    pub(super) ip_le: u16,
}

impl OuterTemplate {
    /// The backend at `addr` for packets of this template (IPv4 outer headers).
    pub(crate) fn backend_v4(&self, addr: [u8; 4]) -> BackendV4 {
        BackendV4 {
            addr,
            // `ip_sum` byte-swapped into that domain, plus the address.
            ip_le: checksum::fold(
                u64::from(checksum::fold(self.ip_sum).swap_bytes())
                    + u64::from(u32::from_le_bytes(addr)),
            ),
        }
    }
}

/// Outer bytes in front of the inner packet for an IPv4 outer header and two hops.
pub(crate) const PAIR_LEN: usize = V4_LEN + 4;
