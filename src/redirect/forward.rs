//! Building the forwarded packet (spec section 7): the same GUE payload with `next_hop`
//! advanced, in a new outer header from us (the old outer destination) to the next hop.
//!
//! The UDP source port of the received datagram is kept (it carries the director's flow
//! entropy, and GLB's kernel module keeps it too), the destination port is 19523, the TTL
//! (hop limit) is one less than received, DSCP/ECN (traffic class) are kept, IPv4 has DF set
//! and id 0 as GLB's director sends; the IPv4 header checksum and the full UDP checksum are
//! computed. The result is a complete IP packet for a raw socket.

use core::net::IpAddr;

use crate::wire::{
    gue, ip_proto, GuePacket, HopFamily, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr, UdpPacket,
    UdpRepr,
};

use super::decide::Outer;

/// Why a forwarded packet could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ForwardError {
    #[error("next hop and outer destination are of different address families")]
    FamilyMismatch,
    #[error("forwarded packet would not fit ({0} bytes)")]
    TooBig(usize),
    #[error("GUE payload shorter than its fixed header")]
    ShortPayload,
}

/// What the receive path knows about a datagram beyond [`Outer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub outer: Outer,
    /// UDP source port of the received datagram.
    pub sport: u16,
    /// IPv4 DSCP/ECN byte or IPv6 traffic class.
    pub tos: u8,
}

/// Writes into `out` the IP packet that forwards `payload` (the received UDP payload) to
/// `to` with GUE `next_hop` set to `next_hop`. Returns its length.
pub fn build(
    out: &mut [u8],
    payload: &[u8],
    rx: &Received,
    to: IpAddr,
    next_hop: u8,
) -> Result<usize, ForwardError> {
    if payload.len() < gue::GLB_FIXED_LEN {
        return Err(ForwardError::ShortPayload);
    }
    let ttl = rx.outer.ttl.saturating_sub(1);
    let udp_len = 8 + payload.len();
    match (rx.outer.dst.to_canonical(), to.to_canonical()) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            let total = 20 + udp_len;
            let b = out
                .get_mut(..total)
                .filter(|_| total <= usize::from(u16::MAX))
                .ok_or(ForwardError::TooBig(total))?;
            fill_udp(&mut b[20..], payload, next_hop, HopFamily::V4);
            UdpRepr {
                src_port: rx.sport,
                dst_port: gue::PORT,
                payload_len: payload.len(),
            }
            .emit_v4(&mut UdpPacket::new_unchecked(&mut b[20..]), src, dst)
            .map_err(|_| ForwardError::TooBig(total))?;
            Ipv4Repr {
                src_addr: src,
                dst_addr: dst,
                next_header: ip_proto::UDP,
                payload_len: udp_len,
                hop_limit: ttl,
                dont_frag: true,
                ident: 0,
                dscp_ecn: rx.tos,
            }
            .emit(&mut Ipv4Packet::new_unchecked(&mut b[..]))
            .map_err(|_| ForwardError::TooBig(total))?;
            Ok(total)
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            let total = 40 + udp_len;
            let b = out
                .get_mut(..total)
                .filter(|_| udp_len <= usize::from(u16::MAX))
                .ok_or(ForwardError::TooBig(total))?;
            fill_udp(&mut b[40..], payload, next_hop, HopFamily::V6);
            UdpRepr {
                src_port: rx.sport,
                dst_port: gue::PORT,
                payload_len: payload.len(),
            }
            .emit_v6(&mut UdpPacket::new_unchecked(&mut b[40..]), &src, &dst)
            .map_err(|_| ForwardError::TooBig(total))?;
            Ipv6Repr {
                src_addr: src,
                dst_addr: dst,
                next_header: ip_proto::UDP,
                payload_len: udp_len,
                hop_limit: ttl,
                traffic_class: rx.tos,
                flow_label: 0,
            }
            .emit(&mut Ipv6Packet::new_unchecked(&mut b[..]))
            .map_err(|_| ForwardError::TooBig(total))?;
            Ok(total)
        }
        _ => Err(ForwardError::FamilyMismatch),
    }
}

/// Copies the GUE payload after the UDP header and sets its `next_hop`.
fn fill_udp(udp: &mut [u8], payload: &[u8], next_hop: u8, family: HopFamily) {
    let g = &mut udp[8..8 + payload.len()];
    g.copy_from_slice(payload);
    GuePacket::new_unchecked(g, family).set_next_hop(next_hop);
}
