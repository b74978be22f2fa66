//! ICMP for IPv4 (RFC 792, RFC 1191): echo and destination-unreachable / fragmentation-needed.
//!
//! A [`Packet`] view covers the whole ICMP message (the IP payload): the checksum is
//! computed over the entire buffer.

use super::bytes::{be16, set16};
use super::ipv4::Packet as Ipv4Packet;
use super::{checksum, Error, Result};

/// Echo Reply message type.
pub const ECHO_REPLY: u8 = 0;
/// Destination Unreachable message type.
pub const DEST_UNREACHABLE: u8 = 3;
/// Echo Request message type.
pub const ECHO_REQUEST: u8 = 8;
/// Time Exceeded message type.
pub const TIME_EXCEEDED: u8 = 11;
/// Destination Unreachable code: fragmentation needed and DF set.
pub const FRAG_NEEDED: u8 = 4;

mod field {
    use crate::wire::Field;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const ECHO_IDENT: Field = 4..6;
    pub const ECHO_SEQNO: Field = 6..8;
    pub const MTU: Field = 6..8;
    pub const DATA: usize = 8;
}

/// Length of the ICMP header (type, code, checksum and the 4-byte rest-of-header).
pub const HEADER_LEN: usize = field::DATA;

/// A zero-copy view of an ICMPv4 message.
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

    /// Next-hop MTU of a fragmentation-needed message (bytes 6..8).
    #[inline]
    pub fn next_hop_mtu(&self) -> u16 {
        be16(self.buffer.as_ref(), field::MTU.start)
    }

    /// True for type 3 code 4 (fragmentation needed).
    #[inline]
    pub fn is_frag_needed(&self) -> bool {
        self.msg_type() == DEST_UNREACHABLE && self.code() == FRAG_NEEDED
    }

    /// Everything after the 8-byte header: echo data, or for errors the quoted IP header
    /// followed by (at least) 8 bytes of its L4 header.
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA..]
    }

    /// The quoted IPv4 header of an error message, as a view that tolerates the cut-off
    /// payload (see [`Ipv4Packet::new_quoted`]).
    #[inline]
    pub fn quoted_ipv4(&self) -> Result<Ipv4Packet<&[u8]>> {
        Ipv4Packet::new_quoted(self.data())
    }

    /// True when the checksum over the whole message verifies.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::data(self.buffer.as_ref()) == 0
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

    /// Sets the next-hop MTU (bytes 4..6, unused, are zeroed).
    #[inline]
    pub fn set_next_hop_mtu(&mut self, v: u16) {
        let d = self.buffer.as_mut();
        set16(d, field::ECHO_IDENT.start, 0);
        set16(d, field::MTU.start, v);
    }

    /// Mutable data after the header.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA..]
    }

    /// Computes the checksum over the whole message.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::data(self.buffer.as_ref());
        self.set_checksum(c);
    }
}

/// High-level description of the ICMPv4 messages Rondo handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repr<'a> {
    /// Type 8 code 0.
    EchoRequest {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Echo data.
        data: &'a [u8],
    },
    /// Type 0 code 0.
    EchoReply {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Echo data.
        data: &'a [u8],
    },
    /// Type 3 code 4.
    FragNeeded {
        /// Next-hop MTU.
        mtu: u16,
        /// Quoted IP header and leading L4 bytes.
        data: &'a [u8],
    },
}

impl<'a> Repr<'a> {
    /// Reads a message (checksum not verified). Other types/codes: [`Error::Unrecognized`].
    #[inline]
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&'a T>) -> Result<Repr<'a>> {
        let buf: &'a T = packet.buffer;
        let p = Packet::new_checked(buf.as_ref())?;
        match (p.msg_type(), p.code()) {
            (ECHO_REQUEST, 0) => Ok(Repr::EchoRequest {
                ident: p.echo_ident(),
                seq_no: p.echo_seq_no(),
                data: p.into_inner().get(HEADER_LEN..).unwrap_or(&[]),
            }),
            (ECHO_REPLY, 0) => Ok(Repr::EchoReply {
                ident: p.echo_ident(),
                seq_no: p.echo_seq_no(),
                data: p.into_inner().get(HEADER_LEN..).unwrap_or(&[]),
            }),
            (DEST_UNREACHABLE, FRAG_NEEDED) => Ok(Repr::FragNeeded {
                mtu: p.next_hop_mtu(),
                data: p.into_inner().get(HEADER_LEN..).unwrap_or(&[]),
            }),
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
                | Repr::FragNeeded { data, .. } => data.len(),
            }
    }

    /// Writes the message (header, data, checksum) into the first [`Repr::buffer_len`] bytes;
    /// the buffer should be exactly that long. Errors: [`Error::BufferTooSmall`].
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(
        &self,
        packet: &mut Packet<&mut T>,
    ) -> Result<()> {
        let d = packet
            .buffer
            .as_mut()
            .get_mut(..self.buffer_len())
            .ok_or(Error::BufferTooSmall)?;
        let (t, c, w1, w2, data) = match *self {
            Repr::EchoRequest {
                ident,
                seq_no,
                data,
            } => (ECHO_REQUEST, 0, ident, seq_no, data),
            Repr::EchoReply {
                ident,
                seq_no,
                data,
            } => (ECHO_REPLY, 0, ident, seq_no, data),
            Repr::FragNeeded { mtu, data } => (DEST_UNREACHABLE, FRAG_NEEDED, 0, mtu, data),
        };
        d[field::TYPE] = t;
        d[field::CODE] = c;
        set16(d, field::CHECKSUM.start, 0);
        set16(d, field::ECHO_IDENT.start, w1);
        set16(d, field::ECHO_SEQNO.start, w2);
        d[field::DATA..].copy_from_slice(data);
        let sum = checksum::data(d);
        set16(d, field::CHECKSUM.start, sum);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::l4_ports;
    use core::net::Ipv4Addr;

    // Frag-needed (MTU 1400) quoting 1.1.1.1:80 -> 10.11.12.13:45678 (a 1500-byte TCP
    // segment, DF) and its first 8 TCP bytes. Checksums computed independently.
    static FRAG_NEEDED_MSG: [u8; 36] = [
        0x03, 0x04, 0x00, 0x5f, 0x00, 0x00, 0x05, 0x78, 0x45, 0x00, 0x05, 0xdc, 0x1c, 0x46, 0x40,
        0x00, 0x40, 0x06, 0x00, 0xbd, 0x01, 0x01, 0x01, 0x01, 0x0a, 0x0b, 0x0c, 0x0d, 0x00, 0x50,
        0xb2, 0x6e, 0x11, 0x22, 0x33, 0x44,
    ];

    // Echo request id 0x1234 seq 1, data "abcdefgh".
    static ECHO: [u8; 16] = [
        0x08, 0x00, 0x54, 0x35, 0x12, 0x34, 0x00, 0x01, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67,
        0x68,
    ];

    #[test]
    fn frag_needed_quoting_tcp() {
        let p = Packet::new_checked(&FRAG_NEEDED_MSG[..]).unwrap();
        assert_eq!(p.msg_type(), DEST_UNREACHABLE);
        assert_eq!(p.code(), FRAG_NEEDED);
        assert!(p.is_frag_needed());
        assert_eq!(p.checksum(), 0x005f);
        assert!(p.verify_checksum());
        assert_eq!(p.next_hop_mtu(), 1400);
        assert_eq!(p.data().len(), 28);
        let q = p.quoted_ipv4().unwrap();
        assert_eq!(q.src_addr(), Ipv4Addr::new(1, 1, 1, 1));
        assert_eq!(q.dst_addr(), Ipv4Addr::new(10, 11, 12, 13));
        assert_eq!(q.total_len(), 1500);
        assert_eq!(q.next_header(), 6);
        assert!(q.verify_checksum());
        assert!(Ipv4Packet::new_checked(p.data()).is_err());
        assert_eq!(l4_ports(q.payload()), Ok((80, 45678)));
        let r = Repr::parse(&p).unwrap();
        assert_eq!(
            r,
            Repr::FragNeeded {
                mtu: 1400,
                data: &FRAG_NEEDED_MSG[8..]
            }
        );
        let mut out = [0u8; 36];
        r.emit(&mut Packet::new_unchecked(&mut out[..])).unwrap();
        assert_eq!(out, FRAG_NEEDED_MSG);
    }

    #[test]
    fn echo_request() {
        let p = Packet::new_checked(&ECHO[..]).unwrap();
        assert_eq!(p.msg_type(), ECHO_REQUEST);
        assert_eq!(p.code(), 0);
        assert_eq!(p.echo_ident(), 0x1234);
        assert_eq!(p.echo_seq_no(), 1);
        assert!(p.verify_checksum());
        assert!(!p.is_frag_needed());
        let r = Repr::parse(&p).unwrap();
        assert_eq!(
            r,
            Repr::EchoRequest {
                ident: 0x1234,
                seq_no: 1,
                data: b"abcdefgh"
            }
        );
        assert_eq!(r.buffer_len(), 16);
        let mut out = [0u8; 16];
        r.emit(&mut Packet::new_unchecked(&mut out[..])).unwrap();
        assert_eq!(out, ECHO);
        assert_eq!(
            r.emit(&mut Packet::new_unchecked(&mut [0u8; 15][..])),
            Err(Error::BufferTooSmall)
        );
        // Reply: only the type changes; the checksum moves by 0x0800.
        let reply = Repr::EchoReply {
            ident: 0x1234,
            seq_no: 1,
            data: b"abcdefgh",
        };
        reply
            .emit(&mut Packet::new_unchecked(&mut out[..]))
            .unwrap();
        assert_eq!(&out[..4], &[0, 0, 0x5c, 0x35]);
        assert_eq!(
            Repr::parse(&Packet::new_checked(&out[..]).unwrap()),
            Ok(reply)
        );
    }

    #[test]
    fn setters_and_unrecognized() {
        let mut b = [0u8; 8];
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_msg_type(DEST_UNREACHABLE);
        p.set_code(FRAG_NEEDED);
        p.set_echo_ident(7);
        p.set_next_hop_mtu(1280);
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert!(p.data_mut().is_empty());
        assert_eq!(p.echo_ident(), 0);
        assert_eq!(p.quoted_ipv4().err(), Some(Error::Truncated));
        p.set_echo_seq_no(3);
        p.set_checksum(1);
        assert!(!p.verify_checksum());
        p.set_code(1);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Repr::parse(&p), Err(Error::Unrecognized));
        let mut e = ECHO;
        e[1] = 1;
        assert_eq!(
            Repr::parse(&Packet::new_checked(&e[..]).unwrap()),
            Err(Error::Unrecognized)
        );
    }

    #[test]
    fn every_prefix_is_total() {
        for n in 0..FRAG_NEEDED_MSG.len() {
            let b = &FRAG_NEEDED_MSG[..n];
            match Packet::new_checked(b) {
                Ok(p) => {
                    assert!(n >= 8);
                    let _ = Repr::parse(&p).unwrap();
                    let q = p.quoted_ipv4();
                    assert_eq!(q.is_ok(), n >= 28, "len {n}");
                    if let Ok(q) = q {
                        assert_eq!(q.payload().len(), n - 28);
                    }
                }
                Err(e) => {
                    assert!(n < 8);
                    assert_eq!(e, Error::Truncated);
                }
            }
        }
    }
}
