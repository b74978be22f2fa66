//! GUE encapsulation (spec section 6), written in place in front of the inner IP packet.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::wire::ethernet::{self, ethertype};
use crate::wire::{
    emit_glb_v4, emit_glb_v6, ip_proto, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr, UdpPacket,
    UdpRepr,
};

use super::buf::PacketBuf;
use super::classify::Flow;
use super::counters::DropReason;
use super::snapshot::{CompiledTable, Family, Snapshot, MAX_HOPS};

/// GLB's GUE port ('LB' + 1).
pub const GUE_PORT: u16 = crate::wire::gue::PORT;
const ETH: usize = 14;
const UDP_GUE: usize = 8 + 4 + 4;

/// Backend indices of the hops for `flow`: the row of `hash`, then (with alt hash fields)
/// the row of `alt_hash`. Returns how many were written to `out`.
#[inline]
pub fn hops_for(table: &CompiledTable, flow: &Flow, alt: bool, out: &mut [u32; MAX_HOPS]) -> usize {
    let row = table.table.row(flow.hash as u16);
    let n = row.len();
    out[..n].copy_from_slice(row);
    if alt {
        let row2 = table.table.row(flow.alt_hash as u16);
        out[n..n + row2.len()].copy_from_slice(row2);
        n + row2.len()
    } else {
        n
    }
}

/// Encapsulate `buf` (holding the classified frame) for `flow` in place. On success the
/// buffer holds the outer frame, ready to transmit.
#[inline]
pub fn encapsulate<B: PacketBuf>(
    snap: &Snapshot,
    flow: &Flow,
    buf: &mut B,
) -> Result<(), DropReason> {
    let table = &snap.tables[usize::from(flow.table)];
    let mut hops = [0u32; MAX_HOPS];
    let n = hops_for(table, flow, snap.alt_hash.is_some(), &mut hops);
    let hops = &hops[..n];

    // Drop Ethernet padding after the IP packet, then make room for the outer headers.
    let l3_off = usize::from(flow.l3_off);
    let ip_len = usize::from(flow.ip_len);
    let extra = buf.data().len().saturating_sub(l3_off + ip_len);
    if extra > 0 {
        buf.trim(extra);
    }
    let (ip_hdr, addr_len) = match table.family {
        Family::V4 => (20, 4),
        Family::V6 => (40, 16),
    };
    let list = addr_len * (n - 1);
    let outer = ETH + ip_hdr + UDP_GUE + list;
    let udp_len = UDP_GUE + list + ip_len;
    if udp_len > usize::from(u16::MAX)
        || (table.family == Family::V4 && udp_len + 20 > usize::from(u16::MAX))
    {
        return Err(DropReason::TooBig);
    }
    if outer > l3_off {
        if !buf.prepend(outer - l3_off) {
            return Err(DropReason::NoHeadroom);
        }
    } else {
        buf.adj(l3_off - outer);
    }
    let sport = 0x8000 | ((flow.hash as u16 ^ flow.hint) & 0x7fff);
    let gue_proto = if flow.inner_v6 {
        ip_proto::IPV6
    } else {
        ip_proto::IPV4
    };
    let udp = UdpRepr {
        src_port: sport,
        dst_port: GUE_PORT,
        payload_len: udp_len - 8,
    };
    let data = buf.data_mut();
    let udp_off = ETH + ip_hdr;
    let gue_off = udp_off + 8;
    // The buffer was sized above, so the emitters cannot fail; map defensively anyway.
    let emitted = match table.family {
        Family::V4 => {
            let addr = |i: u32| Ipv4Addr::from(table.addrs_v4[i as usize]);
            let mut list = [Ipv4Addr::UNSPECIFIED; MAX_HOPS];
            for (l, &h) in list.iter_mut().zip(&hops[1..]) {
                *l = addr(h);
            }
            let (src, dst) = (snap.settings.src_ipv4, addr(hops[0]));
            ethernet::emit_header(
                data,
                snap.settings.gateway_mac,
                snap.src_mac,
                ethertype::IPV4,
            )
            .and_then(|()| {
                Ipv4Repr {
                    src_addr: src,
                    dst_addr: dst,
                    next_header: ip_proto::UDP,
                    payload_len: udp_len,
                    hop_limit: 64,
                    dont_frag: true,
                    ident: 0,
                    dscp_ecn: 0,
                }
                .emit(&mut Ipv4Packet::new_unchecked(&mut data[ETH..]))
            })
            .and_then(|()| emit_glb_v4(&mut data[gue_off..], gue_proto, &list[..n - 1], 0))
            .and_then(|_| {
                udp.emit_v4(
                    &mut UdpPacket::new_unchecked(&mut data[udp_off..]),
                    src,
                    dst,
                )
            })
        }
        Family::V6 => {
            let addr = |i: u32| Ipv6Addr::from(table.addrs_v6[i as usize]);
            let mut list = [Ipv6Addr::UNSPECIFIED; MAX_HOPS];
            for (l, &h) in list.iter_mut().zip(&hops[1..]) {
                *l = addr(h);
            }
            let src = snap.settings.src_ipv6.unwrap_or(Ipv6Addr::UNSPECIFIED);
            let dst = addr(hops[0]);
            ethernet::emit_header(
                data,
                snap.settings.gateway_mac,
                snap.src_mac,
                ethertype::IPV6,
            )
            .and_then(|()| {
                Ipv6Repr {
                    src_addr: src,
                    dst_addr: dst,
                    next_header: ip_proto::UDP,
                    payload_len: udp_len,
                    hop_limit: 64,
                    traffic_class: 0,
                    flow_label: 0,
                }
                .emit(&mut Ipv6Packet::new_unchecked(&mut data[ETH..]))
            })
            .and_then(|()| emit_glb_v6(&mut data[gue_off..], gue_proto, &list[..n - 1], 0))
            .and_then(|_| {
                udp.emit_v6(
                    &mut UdpPacket::new_unchecked(&mut data[udp_off..]),
                    &src,
                    &dst,
                )
            })
        }
    };
    emitted.map_err(|_| DropReason::TooBig)
}
