//! ICMP for IPv6 (RFC 4443): echo and Packet Too Big.
//!
//! A [`Packet`] view covers the whole ICMPv6 message (the upper-layer payload): the
//! checksum is computed over the entire buffer plus the IPv6 pseudo-header.

use core::net::Ipv6Addr;

use super::bytes::{be16, be32, set16, set32};
use super::ipv6::Packet as Ipv6Packet;
use super::{checksum, ip_proto, Error, Result};

/// Destination Unreachable message type.
pub const DEST_UNREACHABLE: u8 = 1;
/// Packet Too Big message type.
pub const PACKET_TOO_BIG: u8 = 2;
/// Time Exceeded message type.
pub const TIME_EXCEEDED: u8 = 3;
/// Echo Request message type.
pub const ECHO_REQUEST: u8 = 128;
/// Echo Reply message type.
pub const ECHO_REPLY: u8 = 129;

mod field {
    use crate::wire::Field;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const ECHO_IDENT: Field = 4..6;
    pub const ECHO_SEQNO: Field = 6..8;
    pub const MTU: Field = 4..8;
    pub const DATA: usize = 8;
}

/// Length of the ICMPv6 header (type, code, checksum and the 4-byte message body start).
pub const HEADER_LEN: usize = field::DATA;

/// A zero-copy view of an ICMPv6 message.
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

    /// Wraps a buffer, checking it holds the 8-byte header ([`Error::Truncated`]).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        if p.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(p)
    }

    /// Consumes the view, returning the buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Message type.
    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    /// Message code.
    #[inline]
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// Echo identifier (bytes 4..6).
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ECHO_IDENT.start)
    }

    /// Echo sequence number (bytes 6..8).
    #[inline]
    pub fn echo_seq_no(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ECHO_SEQNO.start)
    }

    /// MTU of a Packet Too Big message (bytes 4..8).
    #[inline]
    pub fn mtu(&self) -> u32 {
        be32(self.buffer.as_ref(), field::MTU.start)
    }

    /// True for type 2 (Packet Too Big).
    #[inline]
    pub fn is_packet_too_big(&self) -> bool {
        self.msg_type() == PACKET_TOO_BIG
    }

    /// Everything after the 8-byte header: echo data, or for errors the quoted packet.
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA..]
    }

    /// The quoted IPv6 header of an error message, as a view that tolerates the cut-off
    /// payload (see [`Ipv6Packet::new_quoted`]).
    #[inline]
    pub fn quoted_ipv6(&self) -> Result<Ipv6Packet<&[u8]>> {
        Ipv6Packet::new_quoted(self.data())
    }

    /// True when the checksum verifies with the pseudo-header for `src` -> `dst`.
    #[inline]
    pub fn verify_checksum(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        let d = self.buffer.as_ref();
        let ph = checksum::pseudo_header_v6(src, dst, ip_proto::ICMPV6, d.len() as u32);
        checksum::combine(&[ph, checksum::sum(d)]) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the message type.
    #[inline]
    pub fn set_msg_type(&mut self, v: u8) {
        self.buffer.as_mut()[field::TYPE] = v;
    }

    /// Sets the message code.
    #[inline]
    pub fn set_code(&mut self, v: u8) {
        self.buffer.as_mut()[field::CODE] = v;
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        set16(self.buffer.as_mut(), field::CHECKSUM.start, v);
    }

    /// Sets the echo identifier.
    #[inline]
    pub fn set_echo_ident(&mut self, v: u16) {
        set16(self.buffer.as_mut(), field::ECHO_IDENT.start, v);
    }

    /// Sets the echo sequence number.
    #[inline]
    pub fn set_echo_seq_no(&mut self, v: u16) {
        set16(self.buffer.as_mut(), field::ECHO_SEQNO.start, v);
    }

    /// Sets the Packet Too Big MTU.
    #[inline]
    pub fn set_mtu(&mut self, v: u32) {
        set32(self.buffer.as_mut(), field::MTU.start, v);
    }

    /// Mutable data after the header.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA..]
    }

    /// Computes the checksum with the pseudo-header for `src` -> `dst`.
    #[inline]
    pub fn fill_checksum(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        self.set_checksum(0);
        let d = self.buffer.as_ref();
        let ph = checksum::pseudo_header_v6(src, dst, ip_proto::ICMPV6, d.len() as u32);
        let c = checksum::combine(&[ph, checksum::sum(d)]);
        self.set_checksum(c);
    }
}

/// High-level description of the ICMPv6 messages Rondo handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repr<'a> {
    /// Type 128 code 0.
    EchoRequest {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Echo data.
        data: &'a [u8],
    },
    /// Type 129 code 0.
    EchoReply {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Echo data.
        data: &'a [u8],
    },
    /// Type 2 code 0.
    PacketTooBig {
        /// MTU of the next-hop link.
        mtu: u32,
        /// As much of the offending packet as fits.
        data: &'a [u8],
    },
}

impl<'a> Repr<'a> {
    /// Reads a message (checksum not verified). Other types/codes: [`Error::Unrecognized`].
    #[inline]
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&'a T>) -> Result<Repr<'a>> {
        let buf: &'a T = packet.buffer;
        let p = Packet::new_checked(buf.as_ref())?;
        let data = p.into_inner().get(HEADER_LEN..).unwrap_or(&[]);
        match (p.msg_type(), p.code()) {
            (ECHO_REQUEST, 0) => Ok(Repr::EchoRequest {
                ident: p.echo_ident(),
                seq_no: p.echo_seq_no(),
                data,
            }),
            (ECHO_REPLY, 0) => Ok(Repr::EchoReply {
                ident: p.echo_ident(),
                seq_no: p.echo_seq_no(),
                data,
            }),
            (PACKET_TOO_BIG, 0) => Ok(Repr::PacketTooBig { mtu: p.mtu(), data }),
            _ => Err(Error::Unrecognized),
        }
    }

    /// Header length (8).
    #[inline]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Header plus data length.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
            + match self {
                Repr::EchoRequest { data, .. }
                | Repr::EchoReply { data, .. }
                | Repr::PacketTooBig { data, .. } => data.len(),
            }
    }

    /// Writes the message (header, data, checksum for `src` -> `dst`) into the first
    /// [`Repr::buffer_len`] bytes; the buffer should be exactly that long.
    /// Errors: [`Error::BufferTooSmall`].
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(
        &self,
        src: &Ipv6Addr,
        dst: &Ipv6Addr,
        packet: &mut Packet<&mut T>,
    ) -> Result<()> {
        let d = packet
            .buffer
            .as_mut()
            .get_mut(..self.buffer_len())
            .ok_or(Error::BufferTooSmall)?;
        let (t, body, data) = match *self {
            Repr::EchoRequest {
                ident,
                seq_no,
                data,
            } => (ECHO_REQUEST, (ident as u32) << 16 | seq_no as u32, data),
            Repr::EchoReply {
                ident,
                seq_no,
                data,
            } => (ECHO_REPLY, (ident as u32) << 16 | seq_no as u32, data),
            Repr::PacketTooBig { mtu, data } => (PACKET_TOO_BIG, mtu, data),
        };
        d[field::TYPE] = t;
        d[field::CODE] = 0;
        set16(d, field::CHECKSUM.start, 0);
        set32(d, field::MTU.start, body);
        d[field::DATA..].copy_from_slice(data);
        let ph = checksum::pseudo_header_v6(src, dst, ip_proto::ICMPV6, d.len() as u32);
        let c = checksum::combine(&[ph, checksum::sum(d)]);
        set16(d, field::CHECKSUM.start, c);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{ipv6, l4_ports};

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    // Echo request 2001:db8::1 -> 2001:db8::2, id 0x1234 seq 1, "abcd"; checksum computed
    // independently.
    static ECHO: [u8; 12] = [
        0x80, 0x00, 0x4d, 0x48, 0x12, 0x34, 0x00, 0x01, 0x61, 0x62, 0x63, 0x64,
    ];

    // Packet Too Big (MTU 1280) 2001:db8::2 -> 2001:db8::1 quoting a 1440-byte TCP packet
    // 2001:db8::2 -> 2001:db8::99 port 80 -> 49153 (header + first 8 TCP bytes).
    static PTB: [u8; 56] = [
        0x02, 0x00, 0x14, 0xd8, 0x00, 0x00, 0x05, 0x00, 0x60, 0x00, 0x00, 0x00, 0x05, 0xa0, 0x06,
        0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x02, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x99, 0x00, 0x50, 0xc0, 0x01, 0x00, 0x00, 0x00, 0x01,
    ];

    #[test]
    fn echo_request() {
        let p = Packet::new_checked(&ECHO[..]).unwrap();
        assert_eq!(p.msg_type(), ECHO_REQUEST);
        assert_eq!(p.code(), 0);
        assert_eq!(p.checksum(), 0x4d48);
        assert_eq!(p.echo_ident(), 0x1234);
        assert_eq!(p.echo_seq_no(), 1);
        assert_eq!(p.data(), b"abcd");
        assert!(p.verify_checksum(&a("2001:db8::1"), &a("2001:db8::2")));
        assert!(!p.verify_checksum(&a("2001:db8::1"), &a("2001:db8::3")));
        let r = Repr::parse(&p).unwrap();
        assert_eq!(
            r,
            Repr::EchoRequest {
                ident: 0x1234,
                seq_no: 1,
                data: b"abcd"
            }
        );
        let mut out = [0u8; 12];
        r.emit(
            &a("2001:db8::1"),
            &a("2001:db8::2"),
            &mut Packet::new_unchecked(&mut out[..]),
        )
        .unwrap();
        assert_eq!(out, ECHO);
    }

    #[test]
    fn packet_too_big_quoting_tcp() {
        let (s, d) = (a("2001:db8::2"), a("2001:db8::1"));
        let p = Packet::new_checked(&PTB[..]).unwrap();
        assert!(p.is_packet_too_big());
        assert_eq!(p.mtu(), 1280);
        assert!(p.verify_checksum(&s, &d));
        let q = p.quoted_ipv6().unwrap();
        assert_eq!(q.payload_len(), 1440);
        assert_eq!(q.src_addr(), a("2001:db8::2"));
        assert_eq!(q.dst_addr(), a("2001:db8::99"));
        let u = ipv6::upper_layer(&q).unwrap();
        assert_eq!((u.next_header, u.offset), (6, 40));
        assert_eq!(l4_ports(&p.data()[u.offset..]), Ok((80, 49153)));
        let r = Repr::parse(&p).unwrap();
        assert_eq!(
            r,
            Repr::PacketTooBig {
                mtu: 1280,
                data: &PTB[8..]
            }
        );
        let mut out = [0u8; 56];
        r.emit(&s, &d, &mut Packet::new_unchecked(&mut out[..]))
            .unwrap();
        assert_eq!(out, PTB);
        assert_eq!(
            r.emit(&s, &d, &mut Packet::new_unchecked(&mut [0u8; 55][..])),
            Err(Error::BufferTooSmall)
        );
    }

    #[test]
    fn setters_and_unrecognized() {
        let (s, d) = (a("::1"), a("::2"));
        let mut b = [0u8; 10];
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_msg_type(ECHO_REPLY);
        p.set_code(0);
        p.set_echo_ident(9);
        p.set_echo_seq_no(10);
        p.data_mut().copy_from_slice(&[1, 2]);
        p.fill_checksum(&s, &d);
        assert!(p.verify_checksum(&s, &d));
        assert_eq!(p.mtu(), 0x0009_000a);
        p.set_mtu(1500);
        assert_eq!((p.echo_ident(), p.echo_seq_no()), (0, 1500));
        p.set_checksum(0);
        assert!(!p.verify_checksum(&s, &d));
        assert!(matches!(
            Repr::parse(&Packet::new_checked(&b[..]).unwrap()),
            Ok(Repr::EchoReply { ident: 0, .. })
        ));
        b[1] = 1;
        assert_eq!(
            Repr::parse(&Packet::new_checked(&b[..]).unwrap()),
            Err(Error::Unrecognized)
        );
        b[0] = 135;
        b[1] = 0;
        assert_eq!(
            Repr::parse(&Packet::new_checked(&b[..]).unwrap()),
            Err(Error::Unrecognized)
        );
    }

    #[test]
    fn every_prefix_is_total() {
        for n in 0..PTB.len() {
            match Packet::new_checked(&PTB[..n]) {
                Ok(p) => {
                    assert!(n >= 8);
                    assert!(Repr::parse(&p).is_ok());
                    assert_eq!(p.quoted_ipv6().is_ok(), n >= 48);
                }
                Err(e) => {
                    assert!(n < 8);
                    assert_eq!(e, Error::Truncated);
                }
            }
        }
    }
}
