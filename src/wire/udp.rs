//! UDP (RFC 768) datagrams.

use core::net::{Ipv4Addr, Ipv6Addr};

use super::bytes::{be16, set16};
use super::{checksum, ip_proto, Error, Result};

mod field {
    use crate::wire::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const LENGTH: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
}

/// Length of the UDP header.
pub const HEADER_LEN: usize = field::CHECKSUM.end;

/// A zero-copy view of a UDP datagram.
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

    /// Wraps a buffer, validating it.
    ///
    /// Checks: buffer >= 8 ([`Error::Truncated`]), length field >= 8 ([`Error::BadLength`]),
    /// length field <= buffer ([`Error::Truncated`]). Bytes after `len` are ignored.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        let n = p.buffer.as_ref().len();
        if n < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let l = p.len() as usize;
        if l < HEADER_LEN {
            return Err(Error::BadLength);
        }
        if l > n {
            return Err(Error::Truncated);
        }
        Ok(p)
    }

    /// Consumes the view, returning the buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT.start)
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT.start)
    }

    /// Length field (header + payload).
    #[inline]
    pub fn len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH.start)
    }

    /// True when the length field is 0 (never for a checked packet).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checksum field (0 = none, IPv4 only).
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// The datagram: 0..len, clamped to the buffer.
    #[inline]
    fn datagram(&self) -> &[u8] {
        let d = self.buffer.as_ref();
        let end = (self.len() as usize).min(d.len());
        d.get(..end).unwrap_or(&[])
    }

    /// Payload: 8..len.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        self.datagram().get(HEADER_LEN..).unwrap_or(&[])
    }

    /// True when the checksum is 0 (none) or verifies against the IPv4 pseudo-header.
    #[inline]
    pub fn verify_checksum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let d = self.datagram();
        let ph = checksum::pseudo_header_v4(src, dst, ip_proto::UDP, self.len() as u32);
        checksum::combine(&[ph, checksum::sum(d)]) == 0
    }

    /// True when the checksum verifies against the IPv6 pseudo-header (0 is invalid in IPv6).
    #[inline]
    pub fn verify_checksum_v6(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        if self.checksum() == 0 {
            return false;
        }
        let d = self.datagram();
        let ph = checksum::pseudo_header_v6(src, dst, ip_proto::UDP, self.len() as u32);
        checksum::combine(&[ph, checksum::sum(d)]) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the source port.
    #[inline]
    pub fn set_src_port(&mut self, v: u16) {
        set16(self.buffer.as_mut(), field::SRC_PORT.start, v);
    }

    /// Sets the destination port.
    #[inline]
    pub fn set_dst_port(&mut self, v: u16) {
        set16(self.buffer.as_mut(), field::DST_PORT.start, v);
    }

    /// Sets the length field.
    #[inline]
    pub fn set_len(&mut self, v: u16) {
        set16(self.buffer.as_mut(), field::LENGTH.start, v);
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        set16(self.buffer.as_mut(), field::CHECKSUM.start, v);
    }

    /// Mutable payload (8..len).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let l = self.len() as usize;
        let d = self.buffer.as_mut();
        let end = l.min(d.len());
        d.get_mut(HEADER_LEN..end).unwrap_or(&mut [])
    }

    /// Computes the checksum over 0..len with a pseudo-header partial sum; 0 is sent as 0xffff.
    #[inline]
    pub fn fill_checksum(&mut self, pseudo: u32) {
        self.set_checksum(0);
        let c = checksum::combine(&[pseudo, checksum::sum(self.datagram())]);
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }

    /// Computes the checksum with the IPv4 pseudo-header.
    #[inline]
    pub fn fill_checksum_v4(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        let ph = checksum::pseudo_header_v4(src, dst, ip_proto::UDP, self.len() as u32);
        self.fill_checksum(ph);
    }

    /// Computes the checksum with the IPv6 pseudo-header.
    #[inline]
    pub fn fill_checksum_v6(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        let ph = checksum::pseudo_header_v6(src, dst, ip_proto::UDP, self.len() as u32);
        self.fill_checksum(ph);
    }
}

/// High-level description of a UDP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Payload length in bytes.
    pub payload_len: usize,
}

impl Repr {
    /// Reads a checked datagram (checksum not verified).
    #[inline]
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr> {
        let p = Packet::new_checked(packet.buffer)?;
        Ok(Repr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            payload_len: p.len() as usize - HEADER_LEN,
        })
    }

    /// Header length (8).
    #[inline]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Header plus payload length.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes the 8-byte header with checksum 0; follow with `fill_checksum_*` once the
    /// payload is in place. Errors: [`Error::BufferTooSmall`] (buffer under 8 bytes or
    /// length over 65535).
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(
        &self,
        packet: &mut Packet<&mut T>,
    ) -> Result<()> {
        let len = self.buffer_len();
        if len > u16::MAX as usize {
            return Err(Error::BufferTooSmall);
        }
        let d = packet
            .buffer
            .as_mut()
            .get_mut(..HEADER_LEN)
            .ok_or(Error::BufferTooSmall)?;
        set16(d, field::SRC_PORT.start, self.src_port);
        set16(d, field::DST_PORT.start, self.dst_port);
        set16(d, field::LENGTH.start, len as u16);
        set16(d, field::CHECKSUM.start, 0);
        Ok(())
    }

    /// [`Repr::emit`] then the IPv4 checksum over the payload already in the buffer.
    #[inline]
    pub fn emit_v4<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(
        &self,
        packet: &mut Packet<&mut T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
    ) -> Result<()> {
        if packet.buffer.as_ref().len() < self.buffer_len() {
            return Err(Error::BufferTooSmall);
        }
        self.emit(packet)?;
        packet.fill_checksum_v4(src, dst);
        Ok(())
    }

    /// [`Repr::emit`] then the IPv6 checksum over the payload already in the buffer.
    #[inline]
    pub fn emit_v6<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(
        &self,
        packet: &mut Packet<&mut T>,
        src: &Ipv6Addr,
        dst: &Ipv6Addr,
    ) -> Result<()> {
        if packet.buffer.as_ref().len() < self.buffer_len() {
            return Err(Error::BufferTooSmall);
        }
        self.emit(packet)?;
        packet.fill_checksum_v6(src, dst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // DNS query for example.com A, 192.168.0.10:53000 -> 8.8.8.8:53; checksum 0x7e02 computed
    // independently.
    static DNS: [u8; 37] = [
        0xcf, 0x08, 0x00, 0x35, 0x00, 0x25, 0x7e, 0x02, 0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x07, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 0x03, b'c',
        b'o', b'm', 0x00, 0x00, 0x01, 0x00, 0x01,
    ];
    const SRC: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 10);
    const DST: Ipv4Addr = Ipv4Addr::new(8, 8, 8, 8);

    #[test]
    fn dns_query_fields() {
        let p = Packet::new_checked(&DNS[..]).unwrap();
        assert_eq!(p.src_port(), 53000);
        assert_eq!(p.dst_port(), 53);
        assert_eq!(p.len(), 37);
        assert!(!p.is_empty());
        assert_eq!(p.checksum(), 0x7e02);
        assert_eq!(p.payload(), &DNS[8..]);
        assert!(p.verify_checksum_v4(SRC, DST));
        assert!(!p.verify_checksum_v4(SRC, Ipv4Addr::new(8, 8, 8, 9)));
        let r = Repr::parse(&p).unwrap();
        assert_eq!(
            r,
            Repr {
                src_port: 53000,
                dst_port: 53,
                payload_len: 29
            }
        );
        let mut out = DNS;
        out[..8].fill(0);
        r.emit_v4(&mut Packet::new_unchecked(&mut out[..]), SRC, DST)
            .unwrap();
        assert_eq!(out, DNS);
    }

    #[test]
    fn zero_checksum_rules() {
        let mut b = DNS;
        b[6] = 0;
        b[7] = 0;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum_v4(SRC, DST));
        let a: Ipv6Addr = "::1".parse().unwrap();
        assert!(!p.verify_checksum_v6(&a, &a));
        // A datagram whose checksum computes to 0 is sent as 0xffff and still verifies.
        // Sum of pseudo-header (proto 17, len 8 twice) and header words must be 0xffff.
        let mut z = [0u8; 8];
        z[4..6].copy_from_slice(&8u16.to_be_bytes());
        // pseudo: 0 + 0 + 17 + 8 = 25; header: ports + 8; choose ports so total = 0xffff.
        let ports = 0xffff - 25 - 8;
        z[0..2].copy_from_slice(&(ports as u16).to_be_bytes());
        let mut q = Packet::new_checked(&mut z[..]).unwrap();
        q.fill_checksum_v4(Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED);
        assert_eq!(q.checksum(), 0xffff);
        assert!(q.verify_checksum_v4(Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED));
    }

    #[test]
    fn v6_round_trip() {
        let s: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let d: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let mut b = [0u8; 12];
        b[8..].copy_from_slice(b"ping");
        let r = Repr {
            src_port: 1,
            dst_port: 19523,
            payload_len: 4,
        };
        r.emit_v6(&mut Packet::new_unchecked(&mut b[..]), &s, &d)
            .unwrap();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum_v6(&s, &d));
        assert!(!p.verify_checksum_v6(&s, &s));
        assert_eq!(Repr::parse(&p), Ok(r));
        assert_eq!(
            r.emit_v6(&mut Packet::new_unchecked(&mut [0u8; 11][..]), &s, &d),
            Err(Error::BufferTooSmall)
        );
    }

    #[test]
    fn setters_and_padding() {
        let mut b = [0u8; 20];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_src_port(7);
        p.set_dst_port(9);
        p.set_len(10);
        p.payload_mut().copy_from_slice(&[1, 2]);
        p.fill_checksum(0);
        p.set_checksum(0x1234);
        assert_eq!(&b[..10], &[0, 7, 0, 9, 0, 10, 0x12, 0x34, 1, 2]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.payload(), &[1, 2]);
    }

    #[test]
    fn bad_lengths_and_prefixes() {
        let mut b = DNS;
        b[5] = 7;
        assert_eq!(Packet::new_checked(&b[..]).err(), Some(Error::BadLength));
        b[5] = 38;
        assert_eq!(Packet::new_checked(&b[..]).err(), Some(Error::Truncated));
        for n in 0..DNS.len() {
            assert_eq!(Packet::new_checked(&DNS[..n]).err(), Some(Error::Truncated));
        }
        let mut u = Packet::new_unchecked(&mut b[..]);
        u.set_len(60000);
        assert_eq!(u.payload().len(), 29);
        assert_eq!(
            Repr {
                src_port: 0,
                dst_port: 0,
                payload_len: 65528
            }
            .emit(&mut Packet::new_unchecked(&mut [0u8; 8][..])),
            Err(Error::BufferTooSmall)
        );
    }
}
