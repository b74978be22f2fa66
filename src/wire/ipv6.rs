//! IPv6 (RFC 8200) and a bounded, total walk over its extension headers.

use core::net::Ipv6Addr;

use super::bytes::{arr, be16, be32, set16, set32};
use super::{ip_proto, Error, Result};

mod field {
    use crate::wire::Field;
    pub const VER_TC_FLOW: Field = 0..4;
    pub const LENGTH: Field = 4..6;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Field = 8..24;
    pub const DST_ADDR: Field = 24..40;
}

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = field::DST_ADDR.end;

/// Most extension headers [`upper_layer`] walks before giving up.
pub const MAX_EXT_HEADERS: usize = 8;

/// A zero-copy view of an IPv6 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checks.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer holding a whole IPv6 packet, validating it.
    ///
    /// Checks: buffer >= 40 ([`Error::Truncated`]), version 6 ([`Error::BadVersion`]),
    /// 40 + payload length <= buffer ([`Error::Truncated`]). Trailing bytes are ignored.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_quoted(buffer)?;
        if HEADER_LEN + p.payload_len() as usize > p.buffer.as_ref().len() {
            return Err(Error::Truncated);
        }
        Ok(p)
    }

    /// Wraps the IPv6 header quoted inside an ICMPv6 error, which is usually cut short.
    ///
    /// Like [`Packet::new_checked`] but the payload length may exceed the buffer;
    /// [`Packet::payload`] then returns the bytes present.
    #[inline]
    pub fn new_quoted(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        if p.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if p.version() != 6 {
            return Err(Error::BadVersion);
        }
        Ok(p)
    }

    /// Consumes the view, returning the buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version (6 for a checked packet).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    /// Traffic class.
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (be16(self.buffer.as_ref(), 0) >> 4) as u8
    }

    /// Flow label (20 bits).
    #[inline]
    pub fn flow_label(&self) -> u32 {
        be32(self.buffer.as_ref(), field::VER_TC_FLOW.start) & 0x000f_ffff
    }

    /// Payload length field (bytes after the 40-byte header, extension headers included).
    #[inline]
    pub fn payload_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH.start)
    }

    /// Next header right after the fixed header.
    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NXT_HDR]
    }

    /// Hop limit.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(arr::<16>(self.buffer.as_ref(), field::SRC_ADDR.start))
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(arr::<16>(self.buffer.as_ref(), field::DST_ADDR.start))
    }

    /// Payload: 40..40+payload_len, clamped to the buffer (for quoted headers).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let d = self.buffer.as_ref();
        let end = (HEADER_LEN + self.payload_len() as usize).min(d.len());
        d.get(HEADER_LEN..end).unwrap_or(&[])
    }

    /// The whole packet: 0..40+payload_len, clamped to the buffer.
    #[inline]
    pub fn packet(&self) -> &[u8] {
        let d = self.buffer.as_ref();
        let end = (HEADER_LEN + self.payload_len() as usize).min(d.len());
        d.get(..end).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the version nibble.
    #[inline]
    pub fn set_version(&mut self, v: u8) {
        let b = &mut self.buffer.as_mut()[0];
        *b = (*b & 0x0f) | (v << 4);
    }

    /// Sets the traffic class.
    #[inline]
    pub fn set_traffic_class(&mut self, tc: u8) {
        let d = self.buffer.as_mut();
        let w = be32(d, 0);
        set32(d, 0, (w & 0xf00f_ffff) | ((tc as u32) << 20));
    }

    /// Sets the flow label (low 20 bits of `fl`).
    #[inline]
    pub fn set_flow_label(&mut self, fl: u32) {
        let d = self.buffer.as_mut();
        let w = be32(d, 0);
        set32(d, 0, (w & 0xfff0_0000) | (fl & 0x000f_ffff));
    }

    /// Sets the payload length.
    #[inline]
    pub fn set_payload_len(&mut self, v: u16) {
        set16(self.buffer.as_mut(), field::LENGTH.start, v);
    }

    /// Sets the next header.
    #[inline]
    pub fn set_next_header(&mut self, v: u8) {
        self.buffer.as_mut()[field::NXT_HDR] = v;
    }

    /// Sets the hop limit.
    #[inline]
    pub fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = v;
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, a: &Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&a.octets());
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, a: &Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&a.octets());
    }

    /// Mutable payload (same range as [`Packet::payload`]).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let pl = self.payload_len() as usize;
        let d = self.buffer.as_mut();
        let end = (HEADER_LEN + pl).min(d.len());
        d.get_mut(HEADER_LEN..end).unwrap_or(&mut [])
    }
}

/// High-level description of the fixed IPv6 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source address.
    pub src_addr: Ipv6Addr,
    /// Destination address.
    pub dst_addr: Ipv6Addr,
    /// Next header after the fixed header.
    pub next_header: u8,
    /// Payload length (extension headers included).
    pub payload_len: usize,
    /// Hop limit.
    pub hop_limit: u8,
    /// Traffic class.
    pub traffic_class: u8,
    /// Flow label (20 bits).
    pub flow_label: u32,
}

impl Repr {
    /// Reads the fixed header of a checked packet (extension headers are not walked).
    #[inline]
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr> {
        let p = Packet::new_checked(packet.buffer)?;
        Ok(Repr {
            src_addr: p.src_addr(),
            dst_addr: p.dst_addr(),
            next_header: p.next_header(),
            payload_len: p.payload_len() as usize,
            hop_limit: p.hop_limit(),
            traffic_class: p.traffic_class(),
            flow_label: p.flow_label(),
        })
    }

    /// Header length (40).
    #[inline]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Header plus payload length.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes the 40-byte header.
    ///
    /// Errors: [`Error::BufferTooSmall`] if the buffer is under 40 bytes or the payload
    /// length exceeds 65535.
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(
        &self,
        packet: &mut Packet<&mut T>,
    ) -> Result<()> {
        if packet.buffer.as_ref().len() < HEADER_LEN || self.payload_len > u16::MAX as usize {
            return Err(Error::BufferTooSmall);
        }
        let d = packet.buffer.as_mut();
        let w = (6u32 << 28) | ((self.traffic_class as u32) << 20) | (self.flow_label & 0xf_ffff);
        set32(d, 0, w);
        set16(d, field::LENGTH.start, self.payload_len as u16);
        d[field::NXT_HDR] = self.next_header;
        d[field::HOP_LIMIT] = self.hop_limit;
        d[field::SRC_ADDR].copy_from_slice(&self.src_addr.octets());
        d[field::DST_ADDR].copy_from_slice(&self.dst_addr.octets());
        Ok(())
    }
}

/// Contents of an IPv6 Fragment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fragment {
    /// Fragment offset in 8-byte units.
    pub offset: u16,
    /// More Fragments flag.
    pub more: bool,
    /// Identification.
    pub ident: u32,
}

impl Fragment {
    /// True unless this is the first fragment (offset 0).
    #[inline]
    pub const fn is_non_first(&self) -> bool {
        self.offset != 0
    }
}

/// Where the upper-layer header starts, found by [`upper_layer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UpperLayer {
    /// Upper-layer protocol (TCP 6, UDP 17, ICMPv6 58, No Next Header 59, ESP 50, ...).
    pub next_header: u8,
    /// Offset of the upper-layer header from the start of the IPv6 header.
    pub offset: usize,
    /// The Fragment header, if one was present.
    pub fragment: Option<Fragment>,
}

/// Walks the extension headers of `pkt` to the upper-layer header.
///
/// Walks Hop-by-Hop (0, only as the first header), Routing (43), Fragment (44), Destination
/// Options (60) and Authentication Header (51); any other next header is returned as the
/// upper layer. Every header must fit in [`Packet::payload`] ([`Error::BadExtHeader`]); at
/// most [`MAX_EXT_HEADERS`] are walked ([`Error::TooManyExtHeaders`]); a Hop-by-Hop header
/// elsewhere is [`Error::HopByHopNotFirst`]; a second Fragment header is
/// [`Error::BadExtHeader`].
///
/// For a non-first fragment (offset != 0) the walk stops right after the Fragment header:
/// the bytes after it are not headers, so `offset` points at fragment data and the caller
/// must not parse an L4 header there.
#[inline]
pub fn upper_layer<T: AsRef<[u8]>>(pkt: &Packet<T>) -> Result<UpperLayer> {
    let payload = pkt.payload();
    let mut nh = pkt.next_header();
    let mut off = 0usize;
    let mut fragment: Option<Fragment> = None;
    let mut count = 0usize;
    loop {
        let len = match nh {
            ip_proto::HOPOPT | ip_proto::IPV6_ROUTE | ip_proto::IPV6_OPTS => {
                if nh == ip_proto::HOPOPT && count != 0 {
                    return Err(Error::HopByHopNotFirst);
                }
                let l = payload.get(off + 1).ok_or(Error::BadExtHeader)?;
                (*l as usize + 1) * 8
            }
            ip_proto::AH => {
                let l = payload.get(off + 1).ok_or(Error::BadExtHeader)?;
                (*l as usize + 2) * 4
            }
            ip_proto::IPV6_FRAG => 8,
            _ => {
                return Ok(UpperLayer {
                    next_header: nh,
                    offset: HEADER_LEN + off,
                    fragment,
                })
            }
        };
        if count == MAX_EXT_HEADERS {
            return Err(Error::TooManyExtHeaders);
        }
        let hdr = payload.get(off..off + len).ok_or(Error::BadExtHeader)?;
        count += 1;
        off += len;
        let next = hdr[0];
        if nh == ip_proto::IPV6_FRAG {
            if fragment.is_some() {
                return Err(Error::BadExtHeader);
            }
            let w = be16(hdr, 2);
            let f = Fragment {
                offset: w >> 3,
                more: w & 1 != 0,
                ident: be32(hdr, 4),
            };
            fragment = Some(f);
            if f.is_non_first() {
                return Ok(UpperLayer {
                    next_header: next,
                    offset: HEADER_LEN + off,
                    fragment,
                });
            }
        }
        nh = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    /// Builds an IPv6 packet with the given first next header and payload.
    fn build(next_header: u8, payload: &[u8]) -> Vec<u8> {
        let r = Repr {
            src_addr: addr("2001:db8::1"),
            dst_addr: addr("fdb4:98ce:52d4::42"),
            next_header,
            payload_len: payload.len(),
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0x12345,
        };
        let mut b = vec![0u8; 40 + payload.len()];
        r.emit(&mut Packet::new_unchecked(&mut b[..])).unwrap();
        b[40..].copy_from_slice(payload);
        b
    }

    /// A generic extension header of `len8` 8-octet units after the first.
    fn ext(next: u8, len8: u8) -> Vec<u8> {
        let mut h = vec![0u8; (len8 as usize + 1) * 8];
        h[0] = next;
        h[1] = len8;
        h[2] = 1; // PadN option
        h[3] = h.len() as u8 - 4;
        h
    }

    const TCP_HDR: [u8; 20] = [
        0x30, 0x39, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0,
    ];

    #[test]
    fn fixed_header_known_bytes() {
        let b = build(6, &TCP_HDR);
        assert_eq!(&b[..8], &[0x60, 0x01, 0x23, 0x45, 0x00, 0x14, 0x06, 0x40]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.payload_len(), 20);
        assert_eq!(p.next_header(), 6);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr(), addr("2001:db8::1"));
        assert_eq!(p.dst_addr(), addr("fdb4:98ce:52d4::42"));
        assert_eq!(p.payload(), &TCP_HDR);
        assert_eq!(
            upper_layer(&p),
            Ok(UpperLayer {
                next_header: 6,
                offset: 40,
                fragment: None
            })
        );
    }

    #[test]
    fn setters() {
        let mut b = build(6, &TCP_HDR);
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_traffic_class(0xb8);
        p.set_flow_label(0xfffff);
        assert_eq!(p.traffic_class(), 0xb8);
        assert_eq!(p.flow_label(), 0xfffff);
        assert_eq!(p.version(), 6);
        p.set_flow_label(1);
        assert_eq!(p.traffic_class(), 0xb8);
        p.set_hop_limit(1);
        p.set_next_header(17);
        p.set_src_addr(&addr("::1"));
        p.set_dst_addr(&addr("::2"));
        p.set_payload_len(4);
        assert_eq!(p.payload().len(), 4);
        p.payload_mut()[0] = 9;
        p.set_version(4);
        assert_eq!(&b[..8], &[0x4b, 0x80, 0x00, 0x01, 0x00, 0x04, 17, 1]);
        assert_eq!(b[40], 9);
        assert_eq!(Packet::new_checked(&b[..]).err(), Some(Error::BadVersion));
    }

    #[test]
    fn hop_by_hop_then_tcp() {
        let mut pl = ext(6, 0);
        pl.extend_from_slice(&TCP_HDR);
        let b = build(0, &pl);
        let p = Packet::new_checked(&b[..]).unwrap();
        let u = upper_layer(&p).unwrap();
        assert_eq!(u.next_header, 6);
        assert_eq!(u.offset, 48);
        assert_eq!(u.fragment, None);
        assert_eq!(&b[u.offset..], &TCP_HDR);
    }

    #[test]
    fn routing_destopts_fragment_udp() {
        let mut pl = ext(60, 2); // routing, 24 bytes
        pl.extend(ext(44, 1)); // dest opts, 16 bytes
        pl.extend_from_slice(&[17, 0, 0x00, 0x00, 0xde, 0xad, 0xbe, 0xef]); // frag: off 0, M 0
        pl.extend_from_slice(&[0x30, 0x39, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00]);
        let b = build(43, &pl);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            upper_layer(&p),
            Ok(UpperLayer {
                next_header: 17,
                offset: 40 + 24 + 16 + 8,
                fragment: Some(Fragment {
                    offset: 0,
                    more: false,
                    ident: 0xdeadbeef
                })
            })
        );
    }

    #[test]
    fn first_and_non_first_fragments() {
        // First fragment (offset 0, M=1) followed by dest opts then TCP: walk continues.
        let mut pl = vec![60, 0, 0x00, 0x01, 0, 0, 0, 7];
        pl.extend(ext(6, 0));
        pl.extend_from_slice(&TCP_HDR);
        let b = build(44, &pl);
        let u = upper_layer(&Packet::new_checked(&b[..]).unwrap()).unwrap();
        assert_eq!(u.next_header, 6);
        assert_eq!(u.offset, 56);
        assert_eq!(
            u.fragment,
            Some(Fragment {
                offset: 0,
                more: true,
                ident: 7
            })
        );
        // Non-first fragment (offset 185 units = 1480 bytes): stop after the Fragment header,
        // even though its next header says Destination Options.
        let pl = [60, 0, 0x05, 0xc8, 0, 0, 0, 7, 0xff, 0xff];
        let b = build(44, &pl);
        let u = upper_layer(&Packet::new_checked(&b[..]).unwrap()).unwrap();
        assert_eq!(u.next_header, 60);
        assert_eq!(u.offset, 48);
        assert_eq!(
            u.fragment,
            Some(Fragment {
                offset: 185,
                more: false,
                ident: 7
            })
        );
        assert!(u.fragment.unwrap().is_non_first());
    }

    #[test]
    fn authentication_header_length() {
        // AH payload len 4 -> (4 + 2) * 4 = 24 bytes.
        let mut pl = vec![0u8; 24];
        pl[0] = 58;
        pl[1] = 4;
        pl.extend_from_slice(&[128, 0, 0, 0, 0, 1, 0, 1]);
        let b = build(51, &pl);
        let u = upper_layer(&Packet::new_checked(&b[..]).unwrap()).unwrap();
        assert_eq!((u.next_header, u.offset), (58, 64));
    }

    #[test]
    fn stops_at_esp_and_no_next() {
        for nh in [50u8, 59, 58, 17, 6, 253] {
            let b = build(60, &ext(nh, 0));
            let u = upper_layer(&Packet::new_checked(&b[..]).unwrap()).unwrap();
            assert_eq!((u.next_header, u.offset), (nh, 48));
        }
    }

    #[test]
    fn hop_by_hop_not_first() {
        let mut pl = ext(0, 0);
        pl.extend(ext(6, 0));
        pl.extend_from_slice(&TCP_HDR);
        let b = build(60, &pl);
        assert_eq!(
            upper_layer(&Packet::new_checked(&b[..]).unwrap()),
            Err(Error::HopByHopNotFirst)
        );
    }

    #[test]
    fn too_many_ext_headers() {
        let mut pl = Vec::new();
        for i in 0..9 {
            pl.extend(ext(if i == 8 { 6 } else { 60 }, 0));
        }
        pl.extend_from_slice(&TCP_HDR);
        let b = build(60, &pl);
        assert_eq!(
            upper_layer(&Packet::new_checked(&b[..]).unwrap()),
            Err(Error::TooManyExtHeaders)
        );
        // Exactly 8 is fine.
        let mut pl = Vec::new();
        for i in 0..8 {
            pl.extend(ext(if i == 7 { 6 } else { 60 }, 0));
        }
        pl.extend_from_slice(&TCP_HDR);
        let b = build(60, &pl);
        let u = upper_layer(&Packet::new_checked(&b[..]).unwrap()).unwrap();
        assert_eq!((u.next_header, u.offset), (6, 40 + 64));
    }

    #[test]
    fn ext_header_beyond_payload() {
        // Dest opts claims 16 bytes, only 8 present (the buffer has more, past payload_len).
        let mut b = build(60, &ext(6, 0));
        b[41] = 1;
        b.extend_from_slice(&[0u8; 16]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(upper_layer(&p), Err(Error::BadExtHeader));
        // Header with no length byte at all.
        let b = build(43, &[6]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(upper_layer(&p), Err(Error::BadExtHeader));
        // Empty payload with a fragment header announced.
        let b = build(44, &[]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(upper_layer(&p), Err(Error::BadExtHeader));
        // Two fragment headers.
        let b = build(44, &[44, 0, 0, 0, 0, 0, 0, 1, 6, 0, 0, 0, 0, 0, 0, 1]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(upper_layer(&p), Err(Error::BadExtHeader));
    }

    #[test]
    fn bad_headers_and_prefixes() {
        let mut pl = ext(6, 0);
        pl.extend_from_slice(&TCP_HDR);
        let b = build(0, &pl);
        for n in 0..b.len() {
            assert_eq!(Packet::new_checked(&b[..n]).err(), Some(Error::Truncated));
            match Packet::new_quoted(&b[..n]) {
                Ok(q) => {
                    assert!(n >= 40);
                    let r = upper_layer(&q);
                    if n >= 48 {
                        assert_eq!(r.unwrap().offset, 48);
                    } else {
                        assert_eq!(r, Err(Error::BadExtHeader));
                    }
                }
                Err(e) => {
                    assert!(n < 40);
                    assert_eq!(e, Error::Truncated);
                }
            }
        }
        let mut v4 = b.clone();
        v4[0] = 0x45;
        assert_eq!(Packet::new_checked(&v4[..]).err(), Some(Error::BadVersion));
        // Trailing bytes beyond payload_len are allowed.
        let mut padded = b.clone();
        padded.extend_from_slice(&[0; 6]);
        let p = Packet::new_checked(&padded[..]).unwrap();
        assert_eq!(p.payload().len(), pl.len());
        assert_eq!(p.packet().len(), b.len());
        let r = Repr::parse(&p).unwrap();
        assert_eq!(r.buffer_len(), b.len());
        assert_eq!(r.flow_label, 0x12345);
    }
}
