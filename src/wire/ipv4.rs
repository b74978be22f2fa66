//! IPv4 (RFC 791).

use core::net::Ipv4Addr;

use super::bytes::{arr, be16, set16};
use super::{checksum, Error, Result};

mod field {
    use crate::wire::Field;
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const FLG_OFF: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
}

/// Length of an IPv4 header without options.
pub const HEADER_LEN: usize = field::DST_ADDR.end;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// A zero-copy view of an IPv4 packet.
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

    /// Wraps a buffer holding a whole IPv4 packet, validating it.
    ///
    /// Checks: buffer >= 20 bytes ([`Error::Truncated`]), version 4 ([`Error::BadVersion`]),
    /// total length >= 20 ([`Error::BadTotalLen`]), 20 <= IHL*4 <= total length
    /// ([`Error::BadHeaderLen`]), total length <= buffer ([`Error::Truncated`]). Bytes after
    /// the total length (Ethernet padding) are allowed and ignored by [`Packet::payload`].
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_header()?;
        if p.total_len() as usize > p.buffer.as_ref().len() {
            return Err(Error::Truncated);
        }
        Ok(p)
    }

    /// Wraps the IPv4 header quoted inside an ICMP error, which is usually cut short.
    ///
    /// Same checks as [`Packet::new_checked`] except that the total length may exceed the
    /// buffer (the header itself must fit). [`Packet::payload`] then returns the bytes present.
    #[inline]
    pub fn new_quoted(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_header()?;
        if p.header_len() > p.buffer.as_ref().len() {
            return Err(Error::Truncated);
        }
        Ok(p)
    }

    fn check_header(&self) -> Result<()> {
        let d = self.buffer.as_ref();
        if d.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 4 {
            return Err(Error::BadVersion);
        }
        let hl = self.header_len();
        let tl = self.total_len() as usize;
        if tl < HEADER_LEN {
            return Err(Error::BadTotalLen);
        }
        if hl < HEADER_LEN || hl > tl {
            return Err(Error::BadHeaderLen);
        }
        Ok(())
    }

    /// Consumes the view, returning the buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version field (4 for a checked packet).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL * 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        (self.buffer.as_ref()[field::VER_IHL] & 0x0f) as usize * 4
    }

    /// The DSCP/ECN byte (former TOS).
    #[inline]
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    /// Total length field (header + payload).
    #[inline]
    pub fn total_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH.start)
    }

    /// Identification.
    #[inline]
    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::IDENT.start)
    }

    /// Don't Fragment flag.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF.start) & FLAG_DF != 0
    }

    /// More Fragments flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF.start) & FLAG_MF != 0
    }

    /// Fragment offset in bytes (the 13-bit field times 8).
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (be16(self.buffer.as_ref(), field::FLG_OFF.start) & OFFSET_MASK) << 3
    }

    /// True for any fragment: MF set or a non-zero offset.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF.start) & (FLAG_MF | OFFSET_MASK) != 0
    }

    /// Time to live.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Time to live (alias of [`Packet::hop_limit`]).
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.hop_limit()
    }

    /// Protocol of the payload.
    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    /// Protocol of the payload (alias of [`Packet::next_header`]).
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.next_header()
    }

    /// Header checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(arr::<4>(self.buffer.as_ref(), field::SRC_ADDR.start))
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(arr::<4>(self.buffer.as_ref(), field::DST_ADDR.start))
    }

    /// True when the header checksum verifies.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        match self.buffer.as_ref().get(..self.header_len()) {
            Some(h) => checksum::data(h) == 0,
            None => false,
        }
    }

    /// Options bytes (20..header_len); empty if the header fields are inconsistent.
    #[inline]
    pub fn options(&self) -> &[u8] {
        self.buffer
            .as_ref()
            .get(HEADER_LEN..self.header_len())
            .unwrap_or(&[])
    }

    /// Payload: header_len..total_len, clamped to the buffer (for quoted headers).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let d = self.buffer.as_ref();
        let end = (self.total_len() as usize).min(d.len());
        d.get(self.header_len()..end).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the version nibble.
    #[inline]
    pub fn set_version(&mut self, v: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0f) | (v << 4);
    }

    /// Sets the header length in bytes (must be a multiple of 4, at most 60).
    #[inline]
    pub fn set_header_len(&mut self, len: usize) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xf0) | ((len / 4) as u8 & 0x0f);
    }

    /// Sets the DSCP/ECN byte.
    #[inline]
    pub fn set_dscp_ecn(&mut self, v: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = v;
    }

    /// Sets the total length.
    #[inline]
    pub fn set_total_len(&mut self, v: u16) {
        set16(self.buffer.as_mut(), field::LENGTH.start, v);
    }

    /// Sets the identification.
    #[inline]
    pub fn set_ident(&mut self, v: u16) {
        set16(self.buffer.as_mut(), field::IDENT.start, v);
    }

    #[inline]
    fn set_flg_off(&mut self, mask: u16, v: u16) {
        let d = self.buffer.as_mut();
        let old = be16(d, field::FLG_OFF.start);
        set16(d, field::FLG_OFF.start, (old & !mask) | (v & mask));
    }

    /// Clears DF, MF and the fragment offset.
    #[inline]
    pub fn clear_flags(&mut self) {
        self.set_flg_off(0xffff, 0);
    }

    /// Sets or clears Don't Fragment.
    #[inline]
    pub fn set_dont_frag(&mut self, v: bool) {
        self.set_flg_off(FLAG_DF, if v { FLAG_DF } else { 0 });
    }

    /// Sets or clears More Fragments.
    #[inline]
    pub fn set_more_frags(&mut self, v: bool) {
        self.set_flg_off(FLAG_MF, if v { FLAG_MF } else { 0 });
    }

    /// Sets the fragment offset in bytes (rounded down to a multiple of 8).
    #[inline]
    pub fn set_frag_offset(&mut self, bytes: u16) {
        self.set_flg_off(OFFSET_MASK, bytes >> 3);
    }

    /// Sets the time to live.
    #[inline]
    pub fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[field::TTL] = v;
    }

    /// Sets the payload protocol.
    #[inline]
    pub fn set_next_header(&mut self, v: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = v;
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        set16(self.buffer.as_mut(), field::CHECKSUM.start, v);
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&a.octets());
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&a.octets());
    }

    /// Computes and writes the header checksum.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hl = self.header_len();
        let c = match self.buffer.as_ref().get(..hl) {
            Some(h) => checksum::data(h),
            None => return,
        };
        self.set_checksum(c);
    }

    /// Mutable payload (same range as [`Packet::payload`]).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        let d = self.buffer.as_mut();
        let end = (be16(d, field::LENGTH.start) as usize).min(d.len());
        d.get_mut(hl..end).unwrap_or(&mut [])
    }
}

/// High-level description of an IPv4 header (options and fragmentation not modelled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Payload protocol.
    pub next_header: u8,
    /// Payload length (total length minus header length).
    pub payload_len: usize,
    /// Time to live.
    pub hop_limit: u8,
    /// Don't Fragment flag.
    pub dont_frag: bool,
    /// Identification.
    pub ident: u16,
    /// DSCP/ECN byte.
    pub dscp_ecn: u8,
}

impl Repr {
    /// Reads a checked packet. Does not verify the checksum (see [`Repr::parse_verified`]).
    ///
    /// Options are skipped. Fragments are rejected with [`Error::Fragment`] (their payload is
    /// not a whole L4 segment): use [`Packet`] directly to handle them.
    #[inline]
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr> {
        packet.check_header()?;
        if packet.total_len() as usize > packet.buffer.as_ref().len() {
            return Err(Error::Truncated);
        }
        if packet.is_fragment() {
            return Err(Error::Fragment);
        }
        Ok(Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: packet.total_len() as usize - packet.header_len(),
            hop_limit: packet.hop_limit(),
            dont_frag: packet.dont_frag(),
            ident: packet.ident(),
            dscp_ecn: packet.dscp_ecn(),
        })
    }

    /// Like [`Repr::parse`], also verifying the header checksum ([`Error::BadChecksum`]).
    #[inline]
    pub fn parse_verified<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr> {
        let r = Self::parse(packet)?;
        if !packet.verify_checksum() {
            return Err(Error::BadChecksum);
        }
        Ok(r)
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

    /// Writes a 20-byte header (no options, MF clear, offset 0) with a valid checksum.
    ///
    /// Errors: [`Error::BufferTooSmall`] if the buffer is under 20 bytes or the total
    /// length would exceed 65535.
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(
        &self,
        packet: &mut Packet<&mut T>,
    ) -> Result<()> {
        let total = self.buffer_len();
        if packet.buffer.as_ref().len() < HEADER_LEN || total > u16::MAX as usize {
            return Err(Error::BufferTooSmall);
        }
        let d = packet.buffer.as_mut();
        d[field::VER_IHL] = 0x45;
        d[field::DSCP_ECN] = self.dscp_ecn;
        set16(d, field::LENGTH.start, total as u16);
        set16(d, field::IDENT.start, self.ident);
        set16(
            d,
            field::FLG_OFF.start,
            if self.dont_frag { FLAG_DF } else { 0 },
        );
        d[field::TTL] = self.hop_limit;
        d[field::PROTOCOL] = self.next_header;
        d[field::SRC_ADDR].copy_from_slice(&self.src_addr.octets());
        d[field::DST_ADDR].copy_from_slice(&self.dst_addr.octets());
        set16(d, field::CHECKSUM.start, 0);
        let c = checksum::data(&d[..HEADER_LEN]);
        set16(d, field::CHECKSUM.start, c);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // IPv4 header + TCP SYN from GLB's 1k_pkts.pcap (10.11.12.13:45678 -> 1.1.1.1:80).
    static SYN: [u8; 40] = [
        0x45, 0x00, 0x00, 0x28, 0x00, 0x01, 0x00, 0x00, 0x40, 0x06, 0x62, 0xb6, 0x0a, 0x0b, 0x0c,
        0x0d, 0x01, 0x01, 0x01, 0x01, 0xb2, 0x6e, 0x00, 0x50, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x50, 0x02, 0x20, 0x00, 0xc5, 0x0a, 0x00, 0x00,
    ];

    #[test]
    fn captured_syn_fields() {
        let p = Packet::new_checked(&SYN[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.dscp_ecn(), 0);
        assert_eq!(p.total_len(), 40);
        assert_eq!(p.ident(), 1);
        assert!(!p.dont_frag());
        assert!(!p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert!(!p.is_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), 6);
        assert_eq!(p.checksum(), 0x62b6);
        assert!(p.verify_checksum());
        assert_eq!(p.src_addr(), Ipv4Addr::new(10, 11, 12, 13));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(1, 1, 1, 1));
        assert_eq!(p.options(), &[] as &[u8]);
        assert_eq!(p.payload(), &SYN[20..]);
    }

    #[test]
    fn repr_round_trip_on_capture() {
        let p = Packet::new_checked(&SYN[..]).unwrap();
        let r = Repr::parse_verified(&p).unwrap();
        assert_eq!(
            r,
            Repr {
                src_addr: Ipv4Addr::new(10, 11, 12, 13),
                dst_addr: Ipv4Addr::new(1, 1, 1, 1),
                next_header: 6,
                payload_len: 20,
                hop_limit: 64,
                dont_frag: false,
                ident: 1,
                dscp_ecn: 0,
            }
        );
        let mut out = SYN;
        out[..20].fill(0);
        r.emit(&mut Packet::new_unchecked(&mut out[..])).unwrap();
        assert_eq!(out, SYN);
        assert_eq!(
            r.emit(&mut Packet::new_unchecked(&mut [0u8; 19][..])),
            Err(Error::BufferTooSmall)
        );
    }

    #[test]
    fn known_header_checksum() {
        // 192.168.0.1 -> 192.168.0.199 UDP, DF, checksum 0xb861 (a widely published example).
        let r = Repr {
            src_addr: Ipv4Addr::new(192, 168, 0, 1),
            dst_addr: Ipv4Addr::new(192, 168, 0, 199),
            next_header: 17,
            payload_len: 0x73 - 20,
            hop_limit: 64,
            dont_frag: true,
            ident: 0,
            dscp_ecn: 0,
        };
        let mut b = [0u8; 0x73];
        r.emit(&mut Packet::new_unchecked(&mut b[..])).unwrap();
        assert_eq!(
            &b[..20],
            &[
                0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
                0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7
            ]
        );
    }

    #[test]
    fn setters() {
        let mut b = SYN;
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_dont_frag(true);
        p.set_more_frags(true);
        p.set_frag_offset(1480);
        assert!(p.dont_frag() && p.more_frags() && p.is_fragment());
        assert_eq!(p.frag_offset(), 1480);
        assert_eq!(&p.into_inner()[6..8], &[0x60, 0xb9]);
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_more_frags(false);
        assert!(p.is_fragment());
        p.clear_flags();
        assert!(!p.is_fragment() && !p.dont_frag());
        p.set_ident(0xbeef);
        p.set_hop_limit(3);
        p.set_next_header(17);
        p.set_dscp_ecn(0xb8);
        p.set_src_addr(Ipv4Addr::new(9, 8, 7, 6));
        p.set_dst_addr(Ipv4Addr::new(5, 4, 3, 2));
        assert!(!p.verify_checksum());
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_eq!(p.ident(), 0xbeef);
        assert_eq!(p.hop_limit(), 3);
        assert_eq!(p.next_header(), 17);
        assert_eq!(p.dscp_ecn(), 0xb8);
        assert_eq!(p.src_addr(), Ipv4Addr::new(9, 8, 7, 6));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(5, 4, 3, 2));
        p.payload_mut()[0] = 0xaa;
        assert_eq!(b[20], 0xaa);
    }

    #[test]
    fn fragments_rejected_by_repr() {
        let mut b = SYN;
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_frag_offset(8);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Repr::parse(&p), Err(Error::Fragment));
    }

    #[test]
    fn options_and_padding() {
        // IHL 6 with one NOP/EOL option word, plus 6 bytes of Ethernet padding.
        let mut b = [0u8; 30];
        b[0] = 0x46;
        b[2..4].copy_from_slice(&24u16.to_be_bytes());
        b[20] = 1;
        b[22..24].copy_from_slice(&[0xde, 0xad]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.options(), &[1, 0, 0xde, 0xad]);
        assert_eq!(p.payload(), &[] as &[u8]);
        assert_eq!(Repr::parse(&p).unwrap().payload_len, 0);
        let mut b2 = b;
        b2[2..4].copy_from_slice(&28u16.to_be_bytes());
        assert_eq!(Packet::new_checked(&b2[..]).unwrap().payload(), &[0; 4]);
        let r = Repr::parse(&Packet::new_checked(&b2[..]).unwrap()).unwrap();
        assert_eq!(r.payload_len, 4);
    }

    #[test]
    fn bad_headers() {
        let with = |f: &dyn Fn(&mut [u8; 40])| {
            let mut b = SYN;
            f(&mut b);
            Packet::new_checked(b).map(|_| ())
        };
        assert_eq!(with(&|b| b[0] = 0x65), Err(Error::BadVersion));
        assert_eq!(with(&|b| b[0] = 0x44), Err(Error::BadHeaderLen));
        assert_eq!(with(&|b| b[0] = 0x40), Err(Error::BadHeaderLen));
        // IHL 15 (60 bytes) with total length 40.
        assert_eq!(with(&|b| b[0] = 0x4f), Err(Error::BadHeaderLen));
        // IHL 15, total length 60 but only 40 bytes present.
        assert_eq!(
            with(&|b| {
                b[0] = 0x4f;
                b[3] = 60
            }),
            Err(Error::Truncated)
        );
        assert_eq!(with(&|b| b[3] = 41), Err(Error::Truncated));
        assert_eq!(with(&|b| b[3] = 19), Err(Error::BadTotalLen));
        assert_eq!(with(&|b| b[3] = 0), Err(Error::BadTotalLen));
        assert_eq!(with(&|b| b[2] = 0xff), Err(Error::Truncated));
        assert_eq!(with(&|_| ()), Ok(()));
        let mut bad = SYN;
        bad[11] ^= 1;
        let p = Packet::new_checked(&bad[..]).unwrap();
        assert!(!p.verify_checksum());
        assert_eq!(Repr::parse_verified(&p), Err(Error::BadChecksum));
        assert!(Repr::parse(&p).is_ok());
    }

    #[test]
    fn every_prefix_is_total() {
        for n in 0..SYN.len() {
            let r = Packet::new_checked(&SYN[..n]);
            assert_eq!(r.err(), Some(Error::Truncated), "len {n}");
            match Packet::new_quoted(&SYN[..n]) {
                Ok(p) => {
                    assert!(n >= 20);
                    assert_eq!(p.payload(), &SYN[20..n]);
                }
                Err(e) => {
                    assert!(n < 20);
                    assert_eq!(e, Error::Truncated);
                }
            }
        }
    }

    #[test]
    fn unchecked_accessors_do_not_panic_after_bad_set() {
        let mut b = SYN;
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_header_len(60);
        p.set_total_len(9000);
        assert_eq!(p.options(), &[] as &[u8]);
        assert_eq!(p.payload(), &[] as &[u8]);
        assert_eq!(p.payload_mut().len(), 0);
        assert!(!p.verify_checksum());
        p.fill_checksum();
    }
}
