//! Work a NIC would do on a frame (checksum offload), done in software: completing the
//! TCP/UDP checksum of a frame handed over with only the pseudo-header sum in the field.
//!
//! Like every wire parser this is total: any byte string is completed or left alone,
//! never a panic.

use core::ops::Range;

use super::{checksum, ethernet, ip_proto, Ipv4Packet, Ipv6Packet};

/// The L4 segment of an Ethernet frame read through the wire views: its pseudo-header
/// sum, protocol and byte range in the frame. `None` for anything but one IPv4 (not
/// fragmented) or IPv6 packet behind at most one 802.1Q tag.
pub fn l4_segment(frame: &[u8]) -> Option<(u32, u8, Range<usize>)> {
    let l2 = ethernet::parse_l2(frame).ok()?;
    let ip = frame.get(l2.header_len..)?;
    let (pseudo, proto, start, end) = match l2.ethertype {
        ethernet::ethertype::IPV4 => {
            let p = Ipv4Packet::new_checked(ip).ok()?;
            if p.is_fragment() {
                return None;
            }
            let (start, end) = (p.header_len(), usize::from(p.total_len()));
            let len = (end - start) as u32;
            let pseudo =
                checksum::pseudo_header_v4(p.src_addr(), p.dst_addr(), p.next_header(), len);
            (pseudo, p.next_header(), start, end)
        }
        ethernet::ethertype::IPV6 => {
            let p = Ipv6Packet::new_checked(ip).ok()?;
            let len = p.payload_len();
            let (src, dst) = (p.src_addr(), p.dst_addr());
            let pseudo = checksum::pseudo_header_v6(&src, &dst, p.next_header(), len.into());
            (pseudo, p.next_header(), 40, 40 + usize::from(len))
        }
        _ => return None,
    };
    Some((pseudo, proto, l2.header_len + start..l2.header_len + end))
}

/// Compute the TCP or UDP checksum of an Ethernet frame from scratch (at most one VLAN tag;
/// IPv4 not fragmented, IPv6 without extension headers). For frames whose checksum was
/// left to the NIC (the AF_PACKET driver sees them as `TP_STATUS_CSUMNOTREADY`): their
/// checksum field holds only the pseudo-header sum, and a director that encapsulates them
/// as they are delivers packets the backend drops.
/// Returns whether a checksum was written; other frames are left as they are.
pub fn complete_l4_checksum(frame: &mut [u8]) -> bool {
    let Some((pseudo, proto, range)) = l4_segment(frame) else {
        return false;
    };
    let Some(l4) = frame.get_mut(range) else {
        return false;
    };
    let field = match proto {
        ip_proto::TCP if l4.len() >= 20 => 16,
        ip_proto::UDP if l4.len() >= 8 => 6,
        _ => return false,
    };
    l4[field..field + 2].fill(0);
    let mut c = checksum::combine(&[pseudo, checksum::sum(l4)]);
    if c == 0 && proto == ip_proto::UDP {
        c = 0xffff;
    }
    l4[field..field + 2].copy_from_slice(&c.to_be_bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame with a valid L4 checksum, built by the wire emitters.
    fn frame_with_checksum(v6: bool, udp: bool, vlan: bool) -> Vec<u8> {
        let payload = b"rondo checksum";
        let (proto, l4len) = if udp {
            (ip_proto::UDP, 8)
        } else {
            (ip_proto::TCP, 20)
        };
        let mut l4 = vec![0u8; l4len];
        l4[0..2].copy_from_slice(&40000u16.to_be_bytes());
        l4[2..4].copy_from_slice(&80u16.to_be_bytes());
        if udp {
            l4[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        } else {
            l4[12] = 0x50;
            l4[13] = 0x18;
        }
        l4.extend_from_slice(payload);
        let mut f = vec![0x02; 12];
        if vlan {
            f.extend_from_slice(&[0x81, 0x00, 0x00, 0x07]);
        }
        let ph = if v6 {
            f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
            f.extend_from_slice(&(l4.len() as u16).to_be_bytes());
            f.extend_from_slice(&[proto, 64]);
            let (s, d) = ("fd00::1".parse().unwrap(), "fd00::2".parse().unwrap());
            f.extend_from_slice(&std::net::Ipv6Addr::octets(&s));
            f.extend_from_slice(&std::net::Ipv6Addr::octets(&d));
            checksum::pseudo_header_v6(&s, &d, proto, l4.len() as u32)
        } else {
            let mut h = vec![0x45, 0];
            h.extend_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
            h.extend_from_slice(&[0, 1, 0x40, 0, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
            let c = checksum::data(&h);
            h[10..12].copy_from_slice(&c.to_be_bytes());
            f.extend_from_slice(&[0x08, 0x00]);
            f.extend_from_slice(&h);
            checksum::pseudo_header_v4(
                [10, 0, 0, 1].into(),
                [10, 0, 0, 2].into(),
                proto,
                l4.len() as u32,
            )
        };
        let field = if udp { 6 } else { 16 };
        let c = checksum::combine(&[ph, checksum::sum(&l4)]);
        l4[field..field + 2].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&l4);
        // Ethernet padding after the IP packet must not count.
        f.resize(f.len().max(60), 0xee);
        f
    }

    #[test]
    fn partial_checksums_are_completed() {
        for v6 in [false, true] {
            for udp in [false, true] {
                for vlan in [false, true] {
                    let good = frame_with_checksum(v6, udp, vlan);
                    let l4 = 14 + if vlan { 4 } else { 0 } + if v6 { 40 } else { 20 };
                    let field = l4 + if udp { 6 } else { 16 };
                    // As the kernel leaves it: only a pseudo-header sum in the field.
                    let mut partial = good.clone();
                    partial[field..field + 2].copy_from_slice(&[0x12, 0x34]);
                    assert!(complete_l4_checksum(&mut partial), "{v6} {udp} {vlan}");
                    assert_eq!(partial, good, "v6 {v6} udp {udp} vlan {vlan}");
                }
            }
        }
        // Not TCP/UDP over IP, a fragment, truncated: left alone.
        let mut arp = vec![0u8; 60];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert!(!complete_l4_checksum(&mut arp.clone()));
        let mut frag = frame_with_checksum(false, false, false);
        frag[20] |= 0x20;
        let before = frag.clone();
        assert!(!complete_l4_checksum(&mut frag));
        assert_eq!(frag, before);
        let mut short = frame_with_checksum(true, false, false);
        short.truncate(50);
        assert!(!complete_l4_checksum(&mut short));
        assert!(!complete_l4_checksum(&mut []));
        arp.truncate(5);
        assert!(!complete_l4_checksum(&mut arp));
    }
}
