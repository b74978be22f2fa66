//! TCP (RFC 9293) headers.
//!
//! A [`Packet`] view covers one whole segment (the IP payload): checksums are computed
//! over the entire buffer.

use core::net::{Ipv4Addr, Ipv6Addr};

use super::bytes::{be16, be32, set16, set32};
use super::{checksum, ip_proto, Error, Result};

mod field {
    use crate::wire::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const SEQ_NUM: Field = 4..8;
    pub const ACK_NUM: Field = 8..12;
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WIN_SIZE: Field = 14..16;
    pub const CHECKSUM: Field = 16..18;
    pub const URGENT: Field = 18..20;
}

/// Length of a TCP header without options.
pub const HEADER_LEN: usize = field::URGENT.end;

/// TCP flag bits, as in [`Packet::flags`].
pub mod flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
    /// URG.
    pub const URG: u8 = 0x20;
    /// ECE.
    pub const ECE: u8 = 0x40;
    /// CWR.
    pub const CWR: u8 = 0x80;
}

/// A zero-copy view of a TCP segment.
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
    /// Checks: buffer >= 20 ([`Error::Truncated`]), data offset >= 5
    /// ([`Error::BadDataOffset`]), header length <= buffer ([`Error::Truncated`]).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        let len = p.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let hl = p.header_len();
        if hl < HEADER_LEN {
            return Err(Error::BadDataOffset);
        }
        if hl > len {
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

    /// Sequence number.
    #[inline]
    pub fn seq_number(&self) -> u32 {
        be32(self.buffer.as_ref(), field::SEQ_NUM.start)
    }

    /// Acknowledgment number.
    #[inline]
    pub fn ack_number(&self) -> u32 {
        be32(self.buffer.as_ref(), field::ACK_NUM.start)
    }

    /// Header length in bytes (data offset * 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        (self.buffer.as_ref()[field::DATA_OFF] >> 4) as usize * 4
    }

    /// The 8 flag bits (CWR ECE URG ACK PSH RST SYN FIN); see [`flags`].
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// FIN flag.
    #[inline]
    pub fn fin(&self) -> bool {
        self.flags() & flags::FIN != 0
    }

    /// SYN flag.
    #[inline]
    pub fn syn(&self) -> bool {
        self.flags() & flags::SYN != 0
    }

    /// RST flag.
    #[inline]
    pub fn rst(&self) -> bool {
        self.flags() & flags::RST != 0
    }

    /// PSH flag.
    #[inline]
    pub fn psh(&self) -> bool {
        self.flags() & flags::PSH != 0
    }

    /// ACK flag.
    #[inline]
    pub fn ack(&self) -> bool {
        self.flags() & flags::ACK != 0
    }

    /// URG flag.
    #[inline]
    pub fn urg(&self) -> bool {
        self.flags() & flags::URG != 0
    }

    /// ECE flag.
    #[inline]
    pub fn ece(&self) -> bool {
        self.flags() & flags::ECE != 0
    }

    /// CWR flag.
    #[inline]
    pub fn cwr(&self) -> bool {
        self.flags() & flags::CWR != 0
    }

    /// Window size.
    #[inline]
    pub fn window(&self) -> u16 {
        be16(self.buffer.as_ref(), field::WIN_SIZE.start)
    }

    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// Urgent pointer.
    #[inline]
    pub fn urgent(&self) -> u16 {
        be16(self.buffer.as_ref(), field::URGENT.start)
    }

    /// Options bytes (20..header_len).
    #[inline]
    pub fn options(&self) -> &[u8] {
        self.buffer
            .as_ref()
            .get(HEADER_LEN..self.header_len())
            .unwrap_or(&[])
    }

    /// Payload (header_len..).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(self.header_len()..).unwrap_or(&[])
    }

    /// True when the checksum verifies against the IPv4 pseudo-header.
    #[inline]
    pub fn verify_checksum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        let d = self.buffer.as_ref();
        let ph = checksum::pseudo_header_v4(src, dst, ip_proto::TCP, d.len() as u32);
        checksum::combine(&[ph, checksum::sum(d)]) == 0
    }

    /// True when the checksum verifies against the IPv6 pseudo-header.
    #[inline]
    pub fn verify_checksum_v6(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        let d = self.buffer.as_ref();
        let ph = checksum::pseudo_header_v6(src, dst, ip_proto::TCP, d.len() as u32);
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

    /// Sets the sequence number.
    #[inline]
    pub fn set_seq_number(&mut self, v: u32) {
        set32(self.buffer.as_mut(), field::SEQ_NUM.start, v);
    }

    /// Sets the acknowledgment number.
    #[inline]
    pub fn set_ack_number(&mut self, v: u32) {
        set32(self.buffer.as_mut(), field::ACK_NUM.start, v);
    }

    /// Sets the header length in bytes (multiple of 4, at most 60); keeps the reserved bits.
    #[inline]
    pub fn set_header_len(&mut self, len: usize) {
        let b = &mut self.buffer.as_mut()[field::DATA_OFF];
        *b = (*b & 0x0f) | (((len / 4) as u8) << 4);
    }

    /// Sets all 8 flag bits.
    #[inline]
    pub fn set_flags(&mut self, f: u8) {
        self.buffer.as_mut()[field::FLAGS] = f;
    }

    /// Sets the window size.
    #[inline]
    pub fn set_window(&mut self, v: u16) {
        set16(self.buffer.as_mut(), field::WIN_SIZE.start, v);
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        set16(self.buffer.as_mut(), field::CHECKSUM.start, v);
    }

    /// Sets the urgent pointer.
    #[inline]
    pub fn set_urgent(&mut self, v: u16) {
        set16(self.buffer.as_mut(), field::URGENT.start, v);
    }

    /// Mutable payload.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        self.buffer.as_mut().get_mut(hl..).unwrap_or(&mut [])
    }

    /// Computes the checksum over the whole buffer with a pseudo-header partial sum.
    #[inline]
    pub fn fill_checksum(&mut self, pseudo: u32) {
        self.set_checksum(0);
        let c = checksum::combine(&[pseudo, checksum::sum(self.buffer.as_ref())]);
        self.set_checksum(c);
    }

    /// Computes the checksum with the IPv4 pseudo-header.
    #[inline]
    pub fn fill_checksum_v4(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        let len = self.buffer.as_ref().len() as u32;
        self.fill_checksum(checksum::pseudo_header_v4(src, dst, ip_proto::TCP, len));
    }

    /// Computes the checksum with the IPv6 pseudo-header.
    #[inline]
    pub fn fill_checksum_v6(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        let len = self.buffer.as_ref().len() as u32;
        self.fill_checksum(checksum::pseudo_header_v6(src, dst, ip_proto::TCP, len));
    }
}

/// High-level description of a TCP header (options not modelled; urgent pointer written as 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq_number: u32,
    /// Acknowledgment number.
    pub ack_number: u32,
    /// Flag bits (see [`flags`]).
    pub flags: u8,
    /// Window size.
    pub window: u16,
    /// Payload length in bytes.
    pub payload_len: usize,
}

impl Repr {
    /// Reads a checked segment (checksum not verified; options skipped).
    #[inline]
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr> {
        let p = Packet::new_checked(packet.buffer)?;
        Ok(Repr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            seq_number: p.seq_number(),
            ack_number: p.ack_number(),
            flags: p.flags(),
            window: p.window(),
            payload_len: p.payload().len(),
        })
    }

    /// Header length emitted (20).
    #[inline]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Header plus payload length.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes a 20-byte header and the checksum over header + payload.
    ///
    /// The payload (`payload_len` bytes) must already be in place after the header; `pseudo`
    /// is the pseudo-header partial sum for length [`Repr::buffer_len`]. Errors:
    /// [`Error::BufferTooSmall`] when the buffer is shorter than [`Repr::buffer_len`].
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(
        &self,
        packet: &mut Packet<&mut T>,
        pseudo: u32,
    ) -> Result<()> {
        let d = packet
            .buffer
            .as_mut()
            .get_mut(..self.buffer_len())
            .ok_or(Error::BufferTooSmall)?;
        set16(d, field::SRC_PORT.start, self.src_port);
        set16(d, field::DST_PORT.start, self.dst_port);
        set32(d, field::SEQ_NUM.start, self.seq_number);
        set32(d, field::ACK_NUM.start, self.ack_number);
        d[field::DATA_OFF] = ((HEADER_LEN / 4) as u8) << 4;
        d[field::FLAGS] = self.flags;
        set16(d, field::WIN_SIZE.start, self.window);
        set16(d, field::CHECKSUM.start, 0);
        set16(d, field::URGENT.start, 0);
        let c = checksum::combine(&[pseudo, checksum::sum(d)]);
        set16(d, field::CHECKSUM.start, c);
        Ok(())
    }

    /// [`Repr::emit`] with the IPv4 pseudo-header.
    #[inline]
    pub fn emit_v4<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(
        &self,
        packet: &mut Packet<&mut T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
    ) -> Result<()> {
        let ph = checksum::pseudo_header_v4(src, dst, ip_proto::TCP, self.buffer_len() as u32);
        self.emit(packet, ph)
    }

    /// [`Repr::emit`] with the IPv6 pseudo-header.
    #[inline]
    pub fn emit_v6<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(
        &self,
        packet: &mut Packet<&mut T>,
        src: &Ipv6Addr,
        dst: &Ipv6Addr,
    ) -> Result<()> {
        let ph = checksum::pseudo_header_v6(src, dst, ip_proto::TCP, self.buffer_len() as u32);
        self.emit(packet, ph)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // TCP SYN from GLB's 1k_pkts.pcap: 10.11.12.13:45678 -> 1.1.1.1:80, checksum 0xc50a.
    static SYN: [u8; 20] = [
        0xb2, 0x6e, 0x00, 0x50, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x50, 0x02, 0x20,
        0x00, 0xc5, 0x0a, 0x00, 0x00,
    ];
    const SRC: Ipv4Addr = Ipv4Addr::new(10, 11, 12, 13);
    const DST: Ipv4Addr = Ipv4Addr::new(1, 1, 1, 1);

    // A Linux SYN with options (MSS 1460, SACK-permitted, timestamps, NOP, wscale 7):
    // 192.168.1.10:54321 -> 93.184.216.34:443, checksum computed independently (0x14e5).
    static SYN_OPTS: [u8; 40] = [
        0xd4, 0x31, 0x01, 0xbb, 0x12, 0x34, 0x56, 0x78, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02, 0xfa,
        0xf0, 0x14, 0xe5, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x00, 0x01,
        0x02, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x07,
    ];

    #[test]
    fn captured_syn() {
        let p = Packet::new_checked(&SYN[..]).unwrap();
        assert_eq!(p.src_port(), 45678);
        assert_eq!(p.dst_port(), 80);
        assert_eq!(p.seq_number(), 0);
        assert_eq!(p.ack_number(), 0);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.flags(), flags::SYN);
        assert!(p.syn());
        assert!(!(p.fin() || p.rst() || p.psh() || p.ack() || p.urg() || p.ece() || p.cwr()));
        assert_eq!(p.window(), 8192);
        assert_eq!(p.checksum(), 0xc50a);
        assert_eq!(p.urgent(), 0);
        assert!(p.options().is_empty());
        assert!(p.payload().is_empty());
        assert!(p.verify_checksum_v4(SRC, DST));
        assert!(!p.verify_checksum_v4(SRC, Ipv4Addr::new(1, 1, 1, 2)));

        let r = Repr::parse(&p).unwrap();
        assert_eq!(
            r,
            Repr {
                src_port: 45678,
                dst_port: 80,
                seq_number: 0,
                ack_number: 0,
                flags: flags::SYN,
                window: 8192,
                payload_len: 0
            }
        );
        let mut out = [0xffu8; 20];
        r.emit_v4(&mut Packet::new_unchecked(&mut out[..]), SRC, DST)
            .unwrap();
        assert_eq!(out, SYN);
    }

    #[test]
    fn syn_with_options() {
        let p = Packet::new_checked(&SYN_OPTS[..]).unwrap();
        assert_eq!(p.header_len(), 40);
        assert_eq!(p.options().len(), 20);
        assert_eq!(&p.options()[..4], &[0x02, 0x04, 0x05, 0xb4]);
        assert_eq!(p.seq_number(), 0x12345678);
        assert_eq!(p.window(), 64240);
        assert!(p.verify_checksum_v4(
            Ipv4Addr::new(192, 168, 1, 10),
            Ipv4Addr::new(93, 184, 216, 34)
        ));
        let mut b = SYN_OPTS;
        let mut q = Packet::new_checked(&mut b[..]).unwrap();
        q.set_checksum(0);
        q.fill_checksum_v4(
            Ipv4Addr::new(192, 168, 1, 10),
            Ipv4Addr::new(93, 184, 216, 34),
        );
        assert_eq!(b, SYN_OPTS);
    }

    #[test]
    fn v6_checksum_and_payload() {
        let src: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let dst: Ipv6Addr = "fdb4:98ce:52d4::42".parse().unwrap();
        let r = Repr {
            src_port: 1234,
            dst_port: 80,
            seq_number: 0xdeadbeef,
            ack_number: 0x01020304,
            flags: flags::ACK | flags::PSH,
            window: 512,
            payload_len: 5,
        };
        let mut b = [0u8; 25];
        b[20..].copy_from_slice(b"hello");
        r.emit_v6(&mut Packet::new_unchecked(&mut b[..]), &src, &dst)
            .unwrap();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum_v6(&src, &dst));
        assert!(!p.verify_checksum_v6(&dst, &dst));
        assert_eq!(p.payload(), b"hello");
        assert!(p.ack() && p.psh());
        assert_eq!(Repr::parse(&p), Ok(r));
        assert_eq!(
            r.emit_v6(&mut Packet::new_unchecked(&mut [0u8; 24][..]), &src, &dst),
            Err(Error::BufferTooSmall)
        );
    }

    #[test]
    fn setters() {
        let mut b = [0u8; 24];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_src_port(1);
        p.set_dst_port(2);
        p.set_seq_number(3);
        p.set_ack_number(4);
        p.set_header_len(24);
        p.set_flags(flags::FIN | flags::URG | flags::ECE | flags::CWR | flags::RST);
        p.set_window(5);
        p.set_urgent(6);
        p.payload_mut(); // empty, must not panic
        p.fill_checksum(0);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port()), (1, 2));
        assert_eq!((p.seq_number(), p.ack_number()), (3, 4));
        assert_eq!(p.header_len(), 24);
        assert!(p.fin() && p.urg() && p.ece() && p.cwr() && p.rst());
        assert!(!p.syn());
        assert_eq!((p.window(), p.urgent()), (5, 6));
        assert_eq!(checksum::data(&b), 0);
    }

    #[test]
    fn bad_offsets_and_prefixes() {
        let mut b = SYN;
        b[12] = 0x40;
        assert_eq!(
            Packet::new_checked(&b[..]).err(),
            Some(Error::BadDataOffset)
        );
        b[12] = 0x00;
        assert_eq!(
            Packet::new_checked(&b[..]).err(),
            Some(Error::BadDataOffset)
        );
        b[12] = 0x60;
        assert_eq!(Packet::new_checked(&b[..]).err(), Some(Error::Truncated));
        for n in 0..SYN_OPTS.len() {
            assert_eq!(
                Packet::new_checked(&SYN_OPTS[..n]).err(),
                Some(Error::Truncated)
            );
        }
    }
}
