//! Building the forwarded packet of second chance (the last row of the table in
//! [`decide`](mod@super::decide)): the same GUE payload with `next_hop` advanced, in a new
//! outer header from us (the old outer destination) to the next hop.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{checksum, emit_glb_v4};
    use core::net::{Ipv4Addr, Ipv6Addr};

    fn rx(dst: IpAddr) -> Received {
        Received {
            outer: Outer {
                src: IpAddr::V4(Ipv4Addr::new(10, 0, 1, 1)),
                dst,
                ttl: 64,
            },
            sport: 0x8abc,
            tos: 0xb8,
        }
    }

    #[test]
    fn ipv4_outer_header_bytes() {
        let mut g = [0u8; 12];
        emit_glb_v4(&mut g, 4, &[Ipv4Addr::new(10, 0, 0, 3)], 0).unwrap();
        let me = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        let to = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3));
        let mut out = [0u8; 64];
        let n = build(&mut out, &g, &rx(me), to, 1).unwrap();
        assert_eq!(n, 20 + 8 + 12);
        let ip = &out[..20];
        assert_eq!(
            &ip[..12],
            &[0x45, 0xb8, 0, 40, 0, 0, 0x40, 0, 63, 17, ip[10], ip[11]]
        );
        assert_eq!(
            &ip[12..20],
            &[10, 0, 0, 2, 10, 0, 0, 3],
            "from us (the old destination) to the hop"
        );
        assert_eq!(checksum::data(ip), 0);
        let udp = &out[20..n];
        assert_eq!(
            &udp[..6],
            &[0x8a, 0xbc, 0x4c, 0x43, 0, 20],
            "source port kept, 19523"
        );
        let ph = checksum::pseudo_header_v4(
            Ipv4Addr::new(10, 0, 0, 2),
            Ipv4Addr::new(10, 0, 0, 3),
            17,
            20,
        );
        assert_eq!(
            checksum::fold(checksum::add(ph, checksum::sum(udp))),
            0xffff
        );
        assert_eq!(&udp[8..], &[2, 4, 0, 0, 0, 0, 1, 1, 10, 0, 0, 3]);
    }

    #[test]
    fn ipv6_outer_keeps_the_traffic_class() {
        let g = [0x01u8, 41, 0, 0, 0, 0, 0, 0];
        let me: Ipv6Addr = "fd00::2".parse().unwrap();
        let to: Ipv6Addr = "fd00::3".parse().unwrap();
        let mut out = [0u8; 64];
        let n = build(&mut out, &g, &rx(IpAddr::V6(me)), IpAddr::V6(to), 0).unwrap();
        let ip = Ipv6Packet::new_checked(&out[..n]).unwrap();
        assert_eq!(
            (ip.traffic_class(), ip.hop_limit(), ip.next_header()),
            (0xb8, 63, 17)
        );
        assert_eq!((ip.src_addr(), ip.dst_addr()), (me, to));
        let u = UdpPacket::new_checked(ip.payload()).unwrap();
        assert!(u.verify_checksum_v6(&me, &to));
    }

    #[test]
    fn refusals() {
        let g = [0x01u8, 4, 0, 0, 0, 0, 0, 0];
        let v4 = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        let v6 = IpAddr::V6("fd00::3".parse().unwrap());
        let mut out = [0u8; 64];
        assert_eq!(
            build(&mut out, &g, &rx(v4), v6, 0),
            Err(ForwardError::FamilyMismatch)
        );
        assert_eq!(
            build(&mut out, &g[..7], &rx(v4), v4, 0),
            Err(ForwardError::ShortPayload)
        );
        assert_eq!(
            build(&mut out[..35], &g, &rx(v4), v4, 0),
            Err(ForwardError::TooBig(36))
        );
        let big = vec![0u8; 65_600];
        let mut out = vec![0u8; 70_000];
        assert!(matches!(
            build(&mut out, &big, &rx(v4), v4, 0),
            Err(ForwardError::TooBig(_))
        ));
    }
}
