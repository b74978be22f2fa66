//! GUE (draft-ietf-intarea-gue) variant 0 with GLB's private hop list.
//!
//! ```text
//!  0                   1                   2                   3
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Ver|C|  hlen   |  proto (4/41) |             flags (0)         |
//! +---------------+---------------+-------------------------------+
//! |      private_type (0)         |   next_hop    |   hop_count   |
//! +-------------------------------+---------------+---------------+
//! |               hop_count addresses (IPv4: 4 B, IPv6: 16 B)     |
//! +---------------------------------------------------------------+
//! ```
//! `hlen` counts the 32-bit words after the 4-byte base header. GLB (IPv4 hops) requires
//! `hlen == hop_count + 1`; with IPv6 hops (Rondo native tables) `hlen == 4 * hop_count + 1`.
//! The hop list holds hops[1..]: the first hop is the outer IP destination.

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::bytes::{arr, be16, set16};
use super::{ip_proto, Error, Result};

/// UDP destination port of GLB's GUE tunnel.
pub const PORT: u16 = 19523;
/// Length of the base GUE header.
pub const BASE_HEADER_LEN: usize = 4;
/// Length of the base header plus GLB's fixed private data (type, next_hop, hop_count).
pub const GLB_FIXED_LEN: usize = 8;
/// Largest `hlen` (5 bits).
pub const MAX_HLEN: usize = 31;
/// Most IPv4 hops a GUE header can carry (`hlen` = hops + 1 <= 31).
pub const MAX_HOPS_V4: usize = MAX_HLEN - 1;
/// Most IPv6 hops a GUE header can carry (`hlen` = 4 * hops + 1 <= 31).
pub const MAX_HOPS_V6: usize = (MAX_HLEN - 1) / 4;

mod field {
    use crate::wire::Field;
    pub const VER_C_HLEN: usize = 0;
    pub const PROTO: usize = 1;
    pub const FLAGS: Field = 2..4;
    pub const PRIV_TYPE: Field = 4..6;
    pub const NEXT_HOP: usize = 6;
    pub const HOP_COUNT: usize = 7;
    pub const HOPS: usize = 8;
}

/// Address family of the hop list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HopFamily {
    /// 4-byte IPv4 hops (GLB).
    V4,
    /// 16-byte IPv6 hops (Rondo native tables with IPv6 backends).
    V6,
}

impl HopFamily {
    /// Bytes per hop address.
    #[inline]
    pub const fn addr_len(self) -> usize {
        match self {
            HopFamily::V4 => 4,
            HopFamily::V6 => 16,
        }
    }

    /// Most hops a GUE header can carry for this family.
    #[inline]
    pub const fn max_hops(self) -> usize {
        match self {
            HopFamily::V4 => MAX_HOPS_V4,
            HopFamily::V6 => MAX_HOPS_V6,
        }
    }

    /// `hlen` for `hop_count` hops.
    #[inline]
    pub const fn hlen(self, hop_count: usize) -> usize {
        1 + hop_count * self.addr_len() / 4
    }
}

/// GUE header length for a GLB IPv4 hop list of `list_len` addresses: 8 + 4 * list_len.
#[inline]
pub const fn glb_header_len_v4(list_len: usize) -> usize {
    GLB_FIXED_LEN + 4 * list_len
}

/// GUE header length for an IPv6 hop list of `list_len` addresses: 8 + 16 * list_len.
#[inline]
pub const fn glb_header_len_v6(list_len: usize) -> usize {
    GLB_FIXED_LEN + 16 * list_len
}

#[inline]
fn emit_fixed(b: &mut [u8], hlen: usize, proto: u8, next_hop: u8, hop_count: usize) {
    b[field::VER_C_HLEN] = hlen as u8; // version 0, C 0
    b[field::PROTO] = proto;
    set16(b, field::FLAGS.start, 0);
    set16(b, field::PRIV_TYPE.start, 0);
    b[field::NEXT_HOP] = next_hop;
    b[field::HOP_COUNT] = hop_count as u8;
}

/// Writes a GLB GUE header with IPv4 hops at the start of `buf`; returns the bytes written.
///
/// `hops` is the list carried in the header, i.e. the hops AFTER the first (which is the
/// outer destination). Errors: [`Error::TooManyHops`] (over [`MAX_HOPS_V4`]),
/// [`Error::BufferTooSmall`].
#[inline]
pub fn emit_glb_v4(buf: &mut [u8], proto: u8, hops: &[Ipv4Addr], next_hop: u8) -> Result<usize> {
    let n = hops.len();
    if n > MAX_HOPS_V4 {
        return Err(Error::TooManyHops);
    }
    let len = glb_header_len_v4(n);
    let b = buf.get_mut(..len).ok_or(Error::BufferTooSmall)?;
    emit_fixed(b, HopFamily::V4.hlen(n), proto, next_hop, n);
    for (dst, a) in b[field::HOPS..].chunks_exact_mut(4).zip(hops) {
        dst.copy_from_slice(&a.octets());
    }
    Ok(len)
}

/// Writes a GUE header with IPv6 hops at the start of `buf`; returns the bytes written.
///
/// Same conventions as [`emit_glb_v4`]; at most [`MAX_HOPS_V6`] hops.
#[inline]
pub fn emit_glb_v6(buf: &mut [u8], proto: u8, hops: &[Ipv6Addr], next_hop: u8) -> Result<usize> {
    let n = hops.len();
    if n > MAX_HOPS_V6 {
        return Err(Error::TooManyHops);
    }
    let len = glb_header_len_v6(n);
    let b = buf.get_mut(..len).ok_or(Error::BufferTooSmall)?;
    emit_fixed(b, HopFamily::V6.hlen(n), proto, next_hop, n);
    for (dst, a) in b[field::HOPS..].chunks_exact_mut(16).zip(hops) {
        dst.copy_from_slice(&a.octets());
    }
    Ok(len)
}

/// A zero-copy view of a GUE header with GLB private data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
    family: HopFamily,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer (the UDP payload) without checks; hops are read as `family`.
    #[inline]
    pub const fn new_unchecked(buffer: T, family: HopFamily) -> Packet<T> {
        Packet { buffer, family }
    }

    /// Wraps a buffer (the UDP payload), validating it for hops of `family`.
    ///
    /// Checks: buffer >= 4 ([`Error::Truncated`]), version 0 ([`Error::BadGueVersion`]),
    /// C bit clear ([`Error::GueControl`]), hlen >= 1 ([`Error::BadGueHlen`]),
    /// buffer >= 4 + 4 * hlen ([`Error::Truncated`]), private type 0
    /// ([`Error::BadGuePrivateType`]), hlen == hop_count + 1 for V4 or 4 * hop_count + 1
    /// for V6 ([`Error::BadGueHopCount`]). `proto` is not checked here.
    #[inline]
    pub fn new_checked(buffer: T, family: HopFamily) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer, family);
        let len = p.buffer.as_ref().len();
        if len < BASE_HEADER_LEN {
            return Err(Error::Truncated);
        }
        if p.version() != 0 {
            return Err(Error::BadGueVersion);
        }
        if p.is_control() {
            return Err(Error::GueControl);
        }
        let hlen = p.hlen() as usize;
        if hlen < 1 {
            return Err(Error::BadGueHlen);
        }
        if len < p.header_len() {
            return Err(Error::Truncated);
        }
        if p.private_type() != 0 {
            return Err(Error::BadGuePrivateType);
        }
        if hlen != family.hlen(p.hop_count() as usize) {
            return Err(Error::BadGueHopCount);
        }
        Ok(p)
    }

    /// Consumes the view, returning the buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Hop family this view was created with.
    #[inline]
    pub fn family(&self) -> HopFamily {
        self.family
    }

    /// GUE version (2 bits; 0 for a checked packet).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_C_HLEN] >> 6
    }

    /// C bit (control message).
    #[inline]
    pub fn is_control(&self) -> bool {
        self.buffer.as_ref()[field::VER_C_HLEN] & 0x20 != 0
    }

    /// hlen: 32-bit words after the 4-byte base header.
    #[inline]
    pub fn hlen(&self) -> u8 {
        self.buffer.as_ref()[field::VER_C_HLEN] & 0x1f
    }

    /// Inner protocol (4 = IPv4, 41 = IPv6).
    #[inline]
    pub fn proto(&self) -> u8 {
        self.buffer.as_ref()[field::PROTO]
    }

    /// GUE flags.
    #[inline]
    pub fn flags(&self) -> u16 {
        be16(self.buffer.as_ref(), field::FLAGS.start)
    }

    /// GLB private type (0).
    #[inline]
    pub fn private_type(&self) -> u16 {
        be16(self.buffer.as_ref(), field::PRIV_TYPE.start)
    }

    /// Index in the hop list of the next hop to try.
    #[inline]
    pub fn next_hop(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_HOP]
    }

    /// Number of addresses in the hop list.
    #[inline]
    pub fn hop_count(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_COUNT]
    }

    /// Header length in bytes: 4 + 4 * hlen.
    #[inline]
    pub fn header_len(&self) -> usize {
        BASE_HEADER_LEN + 4 * self.hlen() as usize
    }

    #[inline]
    fn hop_bytes(&self, i: usize, family: HopFamily) -> Option<&[u8]> {
        if self.family != family || i >= self.hop_count() as usize {
            return None;
        }
        let n = family.addr_len();
        let at = field::HOPS + i * n;
        self.buffer.as_ref().get(at..at + n)
    }

    /// Hop `i` of an IPv4 hop list; `None` if out of range or the family is V6.
    #[inline]
    pub fn hop_v4(&self, i: usize) -> Option<Ipv4Addr> {
        self.hop_bytes(i, HopFamily::V4)
            .map(|b| Ipv4Addr::from(arr::<4>(b, 0)))
    }

    /// Hop `i` of an IPv6 hop list; `None` if out of range or the family is V4.
    #[inline]
    pub fn hop_v6(&self, i: usize) -> Option<Ipv6Addr> {
        self.hop_bytes(i, HopFamily::V6)
            .map(|b| Ipv6Addr::from(arr::<16>(b, 0)))
    }

    /// Hop `i` of either family.
    #[inline]
    pub fn hop(&self, i: usize) -> Option<IpAddr> {
        match self.family {
            HopFamily::V4 => self.hop_v4(i).map(IpAddr::V4),
            HopFamily::V6 => self.hop_v6(i).map(IpAddr::V6),
        }
    }

    /// The encapsulated packet (after `header_len`).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(self.header_len()..).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the next-hop index.
    #[inline]
    pub fn set_next_hop(&mut self, v: u8) {
        self.buffer.as_mut()[field::NEXT_HOP] = v;
    }

    /// Sets the inner protocol.
    #[inline]
    pub fn set_proto(&mut self, v: u8) {
        self.buffer.as_mut()[field::PROTO] = v;
    }

    /// Sets the GUE flags.
    #[inline]
    pub fn set_flags(&mut self, v: u16) {
        set16(self.buffer.as_mut(), field::FLAGS.start, v);
    }

    /// Overwrites hop `i` of an IPv4 list ([`Error::HopFamilyMismatch`], [`Error::TooManyHops`]
    /// if `i` is out of range).
    #[inline]
    pub fn set_hop_v4(&mut self, i: usize, a: Ipv4Addr) -> Result<()> {
        self.set_hop(i, HopFamily::V4, &a.octets())
    }

    /// Overwrites hop `i` of an IPv6 list (errors as [`Packet::set_hop_v4`]).
    #[inline]
    pub fn set_hop_v6(&mut self, i: usize, a: Ipv6Addr) -> Result<()> {
        self.set_hop(i, HopFamily::V6, &a.octets())
    }

    fn set_hop(&mut self, i: usize, family: HopFamily, bytes: &[u8]) -> Result<()> {
        if self.family != family {
            return Err(Error::HopFamilyMismatch);
        }
        if i >= self.hop_count() as usize {
            return Err(Error::TooManyHops);
        }
        let at = field::HOPS + i * bytes.len();
        self.buffer
            .as_mut()
            .get_mut(at..at + bytes.len())
            .ok_or(Error::Truncated)?
            .copy_from_slice(bytes);
        Ok(())
    }

    /// Mutable encapsulated packet.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        self.buffer.as_mut().get_mut(hl..).unwrap_or(&mut [])
    }
}

#[derive(Clone, Copy)]
enum Hops {
    V4 {
        len: u8,
        addrs: [Ipv4Addr; MAX_HOPS_V4],
    },
    V6 {
        len: u8,
        addrs: [Ipv6Addr; MAX_HOPS_V6],
    },
}

/// A fixed-capacity hop list (no heap): up to [`MAX_HOPS_V4`] IPv4 or [`MAX_HOPS_V6`] IPv6
/// addresses, i.e. every list a GUE header can carry.
#[derive(Clone, Copy)]
pub struct HopList {
    hops: Hops,
}

impl HopList {
    /// An empty list of `family`.
    #[inline]
    pub const fn new(family: HopFamily) -> HopList {
        HopList {
            hops: match family {
                HopFamily::V4 => Hops::V4 {
                    len: 0,
                    addrs: [Ipv4Addr::UNSPECIFIED; MAX_HOPS_V4],
                },
                HopFamily::V6 => Hops::V6 {
                    len: 0,
                    addrs: [Ipv6Addr::UNSPECIFIED; MAX_HOPS_V6],
                },
            },
        }
    }

    /// A list of IPv4 hops ([`Error::TooManyHops`] over [`MAX_HOPS_V4`]).
    #[inline]
    pub fn from_v4(hops: &[Ipv4Addr]) -> Result<HopList> {
        let mut l = HopList::new(HopFamily::V4);
        for &a in hops {
            l.push_v4(a)?;
        }
        Ok(l)
    }

    /// A list of IPv6 hops ([`Error::TooManyHops`] over [`MAX_HOPS_V6`]).
    #[inline]
    pub fn from_v6(hops: &[Ipv6Addr]) -> Result<HopList> {
        let mut l = HopList::new(HopFamily::V6);
        for &a in hops {
            l.push_v6(a)?;
        }
        Ok(l)
    }

    /// Appends an IPv4 hop.
    #[inline]
    pub fn push_v4(&mut self, a: Ipv4Addr) -> Result<()> {
        match &mut self.hops {
            Hops::V4 { len, addrs } => {
                let slot = addrs.get_mut(*len as usize).ok_or(Error::TooManyHops)?;
                *slot = a;
                *len += 1;
                Ok(())
            }
            Hops::V6 { .. } => Err(Error::HopFamilyMismatch),
        }
    }

    /// Appends an IPv6 hop.
    #[inline]
    pub fn push_v6(&mut self, a: Ipv6Addr) -> Result<()> {
        match &mut self.hops {
            Hops::V6 { len, addrs } => {
                let slot = addrs.get_mut(*len as usize).ok_or(Error::TooManyHops)?;
                *slot = a;
                *len += 1;
                Ok(())
            }
            Hops::V4 { .. } => Err(Error::HopFamilyMismatch),
        }
    }

    /// Appends a hop of the list's family.
    #[inline]
    pub fn push(&mut self, a: IpAddr) -> Result<()> {
        match a {
            IpAddr::V4(a) => self.push_v4(a),
            IpAddr::V6(a) => self.push_v6(a),
        }
    }

    /// Family of the list.
    #[inline]
    pub const fn family(&self) -> HopFamily {
        match self.hops {
            Hops::V4 { .. } => HopFamily::V4,
            Hops::V6 { .. } => HopFamily::V6,
        }
    }

    /// Number of hops.
    #[inline]
    pub const fn len(&self) -> usize {
        match self.hops {
            Hops::V4 { len, .. } | Hops::V6 { len, .. } => len as usize,
        }
    }

    /// True when empty.
    #[inline]
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The IPv4 hops, or `None` for a V6 list.
    #[inline]
    pub fn as_v4(&self) -> Option<&[Ipv4Addr]> {
        match &self.hops {
            Hops::V4 { len, addrs } => addrs.get(..*len as usize),
            Hops::V6 { .. } => None,
        }
    }

    /// The IPv6 hops, or `None` for a V4 list.
    #[inline]
    pub fn as_v6(&self) -> Option<&[Ipv6Addr]> {
        match &self.hops {
            Hops::V6 { len, addrs } => addrs.get(..*len as usize),
            Hops::V4 { .. } => None,
        }
    }

    /// Hop `i` of either family.
    #[inline]
    pub fn get(&self, i: usize) -> Option<IpAddr> {
        match self.family() {
            HopFamily::V4 => self.as_v4()?.get(i).copied().map(IpAddr::V4),
            HopFamily::V6 => self.as_v6()?.get(i).copied().map(IpAddr::V6),
        }
    }
}

impl PartialEq for HopList {
    fn eq(&self, other: &HopList) -> bool {
        match (self.as_v4(), other.as_v4()) {
            (Some(a), Some(b)) => a == b,
            (None, None) => self.as_v6() == other.as_v6(),
            _ => false,
        }
    }
}

impl Eq for HopList {}

impl fmt::Debug for HopList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut l = f.debug_list();
        if let Some(v) = self.as_v4() {
            l.entries(v);
        }
        if let Some(v) = self.as_v6() {
            l.entries(v);
        }
        l.finish()
    }
}

/// High-level description of a GLB GUE header (the payload is not included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Inner protocol: 4 (IPv4) or 41 (IPv6).
    pub proto: u8,
    /// Index in `hops` of the next hop to try.
    pub next_hop: u8,
    /// The hop list (hops after the first); its family fixes the address size.
    pub hops: HopList,
}

impl Repr {
    /// Reads a checked header; also requires proto 4 or 41 ([`Error::BadGueProto`]).
    #[inline]
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr> {
        let p = Packet::new_checked(packet.buffer, packet.family)?;
        let proto = p.proto();
        if proto != ip_proto::IPV4 && proto != ip_proto::IPV6 {
            return Err(Error::BadGueProto);
        }
        let mut hops = HopList::new(p.family);
        for i in 0..p.hop_count() as usize {
            match p.hop(i) {
                Some(a) => hops.push(a)?,
                None => return Err(Error::Truncated),
            }
        }
        Ok(Repr {
            proto,
            next_hop: p.next_hop(),
            hops,
        })
    }

    /// Header length: 8 + address size * number of hops.
    #[inline]
    pub const fn header_len(&self) -> usize {
        GLB_FIXED_LEN + self.hops.family().addr_len() * self.hops.len()
    }

    /// Same as [`Repr::header_len`] (the payload is not part of the `Repr`).
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        self.header_len()
    }

    /// Writes the header. Errors: [`Error::HopFamilyMismatch`] if the view's family differs
    /// from the hop list's, [`Error::BufferTooSmall`].
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(
        &self,
        packet: &mut Packet<&mut T>,
    ) -> Result<()> {
        if packet.family != self.hops.family() {
            return Err(Error::HopFamilyMismatch);
        }
        let buf = packet.buffer.as_mut();
        if let Some(h) = self.hops.as_v4() {
            emit_glb_v4(buf, self.proto, h, self.next_hop)?;
        } else if let Some(h) = self.hops.as_v6() {
            emit_glb_v6(buf, self.proto, h, self.next_hop)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{checksum, ipv4, udp};

    #[test]
    fn known_answer_v4() {
        let mut b = [0xeeu8; 16];
        let n = emit_glb_v4(&mut b, 4, &[Ipv4Addr::new(10, 0, 0, 2)], 0).unwrap();
        assert_eq!(n, 12);
        assert_eq!(n, glb_header_len_v4(1));
        assert_eq!(
            &b[..12],
            &[0x02, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x02]
        );
        assert_eq!(&b[12..], &[0xee; 4]);
        let p = Packet::new_checked(&b[..], HopFamily::V4).unwrap();
        assert_eq!(p.version(), 0);
        assert!(!p.is_control());
        assert_eq!(p.hlen(), 2);
        assert_eq!(p.proto(), 4);
        assert_eq!(p.flags(), 0);
        assert_eq!(p.private_type(), 0);
        assert_eq!(p.next_hop(), 0);
        assert_eq!(p.hop_count(), 1);
        assert_eq!(p.header_len(), 12);
        assert_eq!(p.hop_v4(0), Some(Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!(p.hop(0), Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))));
        assert_eq!(p.hop_v4(1), None);
        assert_eq!(p.hop_v6(0), None);
        assert_eq!(p.payload(), &[0xee; 4]);
        // The same bytes do not validate as an IPv6 hop list (hlen 2 != 4 * 1 + 1).
        assert_eq!(
            Packet::new_checked(&b[..], HopFamily::V6).err(),
            Some(Error::BadGueHopCount)
        );
    }

    #[test]
    fn known_answer_v6() {
        let h: Ipv6Addr = "fdb4:98ce:52d4::42".parse().unwrap();
        let mut b = [0u8; 24];
        let n = emit_glb_v6(&mut b, 41, &[h], 1).unwrap();
        assert_eq!(n, 24);
        assert_eq!(n, glb_header_len_v6(1));
        assert_eq!(&b[..8], &[0x05, 0x29, 0, 0, 0, 0, 0x01, 0x01]);
        assert_eq!(&b[8..], &h.octets());
        let p = Packet::new_checked(&b[..], HopFamily::V6).unwrap();
        assert_eq!(p.hlen(), 5);
        assert_eq!(p.hop_v6(0), Some(h));
        assert_eq!(p.hop_v4(0), None);
        assert_eq!(p.hop_v6(1), None);
        assert!(p.payload().is_empty());
        let r = Repr::parse(&p).unwrap();
        assert_eq!(r.hops.as_v6(), Some(&[h][..]));
        assert_eq!((r.proto, r.next_hop), (41, 1));
        assert_eq!(r.buffer_len(), 24);
    }

    #[test]
    fn health_check_header() {
        // glb-healthcheck's GUE header: hlen 1, proto 4, no hops.
        let b = [0x01, 0x04, 0, 0, 0, 0, 0, 0];
        for fam in [HopFamily::V4, HopFamily::V6] {
            let p = Packet::new_checked(&b[..], fam).unwrap();
            assert_eq!(p.hop_count(), 0);
            assert_eq!(p.header_len(), 8);
            let r = Repr::parse(&p).unwrap();
            assert!(r.hops.is_empty());
            assert_eq!(r.hops.family(), fam);
        }
        let mut out = [0u8; 8];
        assert_eq!(emit_glb_v4(&mut out, 4, &[], 0), Ok(8));
        assert_eq!(out, b);
    }

    #[test]
    fn validation_errors() {
        let good = [0x02, 0x04, 0, 0, 0, 0, 0, 1, 10, 0, 0, 2];
        let check = |f: &dyn Fn(&mut [u8; 12])| {
            let mut b = good;
            f(&mut b);
            Packet::new_checked(b, HopFamily::V4).map(|_| ())
        };
        assert_eq!(check(&|_| ()), Ok(()));
        assert_eq!(check(&|b| b[0] |= 0x40), Err(Error::BadGueVersion));
        assert_eq!(check(&|b| b[0] |= 0x80), Err(Error::BadGueVersion));
        assert_eq!(check(&|b| b[0] |= 0x20), Err(Error::GueControl));
        assert_eq!(check(&|b| b[0] = 0), Err(Error::BadGueHlen));
        assert_eq!(check(&|b| b[0] = 3), Err(Error::Truncated));
        assert_eq!(check(&|b| b[5] = 1), Err(Error::BadGuePrivateType));
        assert_eq!(check(&|b| b[7] = 2), Err(Error::BadGueHopCount));
        assert_eq!(check(&|b| b[7] = 0), Err(Error::BadGueHopCount));
        assert_eq!(
            check(&|b| {
                b[0] = 1;
                b[7] = 0
            }),
            Ok(())
        );
        // proto is checked by Repr::parse only.
        assert_eq!(check(&|b| b[1] = 17), Ok(()));
        let mut b = good;
        b[1] = 17;
        let p = Packet::new_checked(&b[..], HopFamily::V4).unwrap();
        assert_eq!(Repr::parse(&p), Err(Error::BadGueProto));
        for n in 0..good.len() {
            assert_eq!(
                Packet::new_checked(&good[..n], HopFamily::V4).err(),
                Some(Error::Truncated),
                "len {n}"
            );
        }
    }

    #[test]
    fn emit_limits() {
        let v4 = [Ipv4Addr::LOCALHOST; MAX_HOPS_V4 + 1];
        let mut b = [0u8; 256];
        assert_eq!(emit_glb_v4(&mut b, 4, &v4, 0), Err(Error::TooManyHops));
        let n = emit_glb_v4(&mut b, 4, &v4[..MAX_HOPS_V4], 0).unwrap();
        assert_eq!(n, 128);
        let p = Packet::new_checked(&b[..n], HopFamily::V4).unwrap();
        assert_eq!(p.hlen(), 31);
        assert_eq!(p.hop_v4(29), Some(Ipv4Addr::LOCALHOST));
        assert_eq!(Repr::parse(&p).unwrap().hops.len(), 30);
        let v6 = [Ipv6Addr::LOCALHOST; MAX_HOPS_V6 + 1];
        assert_eq!(emit_glb_v6(&mut b, 41, &v6, 0), Err(Error::TooManyHops));
        let n = emit_glb_v6(&mut b, 41, &v6[..MAX_HOPS_V6], 0).unwrap();
        assert_eq!(n, 120);
        let p = Packet::new_checked(&b[..n], HopFamily::V6).unwrap();
        assert_eq!(p.hlen(), 29);
        assert_eq!(
            emit_glb_v4(&mut [0u8; 11], 4, &[Ipv4Addr::LOCALHOST], 0),
            Err(Error::BufferTooSmall)
        );
        assert_eq!(
            emit_glb_v6(&mut [0u8; 23], 41, &[Ipv6Addr::LOCALHOST], 0),
            Err(Error::BufferTooSmall)
        );
    }

    #[test]
    fn setters() {
        let mut b = [0u8; 16];
        let hops = [Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 3)];
        emit_glb_v4(&mut b, 4, &hops, 0).unwrap();
        let mut p = Packet::new_checked(&mut b[..], HopFamily::V4).unwrap();
        p.set_next_hop(1);
        p.set_proto(41);
        p.set_flags(0x8000);
        p.set_hop_v4(1, Ipv4Addr::new(10, 0, 0, 9)).unwrap();
        assert_eq!(
            p.set_hop_v4(2, Ipv4Addr::LOCALHOST),
            Err(Error::TooManyHops)
        );
        assert_eq!(
            p.set_hop_v6(0, Ipv6Addr::LOCALHOST),
            Err(Error::HopFamilyMismatch)
        );
        assert!(p.payload_mut().is_empty());
        assert_eq!(p.family(), HopFamily::V4);
        assert_eq!(b, [0x03, 41, 0x80, 0, 0, 0, 1, 2, 10, 0, 0, 2, 10, 0, 0, 9]);
    }

    #[test]
    fn hop_list() {
        let mut l = HopList::new(HopFamily::V4);
        assert!(l.is_empty());
        l.push_v4(Ipv4Addr::new(1, 2, 3, 4)).unwrap();
        assert_eq!(
            l.push_v6(Ipv6Addr::LOCALHOST),
            Err(Error::HopFamilyMismatch)
        );
        assert_eq!(l.get(0), Some(IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4))));
        assert_eq!(l.get(1), None);
        assert_eq!(l.as_v6(), None);
        assert_eq!(format!("{l:?}"), "[1.2.3.4]");
        assert_ne!(l, HopList::new(HopFamily::V4));
        assert_ne!(HopList::new(HopFamily::V6), HopList::new(HopFamily::V4));
        assert_eq!(HopList::new(HopFamily::V6), HopList::from_v6(&[]).unwrap());
        assert_eq!(
            HopList::from_v6(&[Ipv6Addr::LOCALHOST; 8]),
            Err(Error::TooManyHops)
        );
        assert_eq!(
            HopList::from_v4(&[Ipv4Addr::LOCALHOST; 31]),
            Err(Error::TooManyHops)
        );
        let r = Repr {
            proto: 4,
            next_hop: 0,
            hops: l,
        };
        let mut b = [0u8; 12];
        assert_eq!(
            r.emit(&mut Packet::new_unchecked(&mut b[..], HopFamily::V6)),
            Err(Error::HopFamilyMismatch)
        );
        r.emit(&mut Packet::new_unchecked(&mut b[..], HopFamily::V4))
            .unwrap();
        assert_eq!(
            Repr::parse(&Packet::new_checked(&b[..], HopFamily::V4).unwrap()),
            Ok(r)
        );
    }

    /// A whole GLB encapsulation (outer IPv4, UDP, GUE with its hop list, as GLB's director
    /// sends) of the captured SYN, H = 2.
    #[test]
    fn full_glb_encap_of_captured_syn() {
        let inner: [u8; 40] = [
            0x45, 0x00, 0x00, 0x28, 0x00, 0x01, 0x00, 0x00, 0x40, 0x06, 0x62, 0xb6, 0x0a, 0x0b,
            0x0c, 0x0d, 0x01, 0x01, 0x01, 0x01, 0xb2, 0x6e, 0x00, 0x50, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x50, 0x02, 0x20, 0x00, 0xc5, 0x0a, 0x00, 0x00,
        ];
        let src = Ipv4Addr::new(192, 168, 50, 1);
        let hop0 = Ipv4Addr::new(192, 168, 50, 10);
        let hop1 = Ipv4Addr::new(192, 168, 50, 11);
        let gue_len = glb_header_len_v4(1);
        let udp_len = 8 + gue_len + inner.len();
        let mut pkt = vec![0u8; 20 + udp_len];
        assert_eq!(pkt.len() - inner.len(), 40);
        pkt[20 + 8 + gue_len..].copy_from_slice(&inner);
        emit_glb_v4(&mut pkt[28..], ip_proto::IPV4, &[hop1], 0).unwrap();
        udp::Repr {
            src_port: 0x8000 | 0x1234,
            dst_port: PORT,
            payload_len: gue_len + inner.len(),
        }
        .emit_v4(&mut udp::Packet::new_unchecked(&mut pkt[20..]), src, hop0)
        .unwrap();
        ipv4::Repr {
            src_addr: src,
            dst_addr: hop0,
            next_header: ip_proto::UDP,
            payload_len: udp_len,
            hop_limit: 64,
            dont_frag: true,
            ident: 0,
            dscp_ecn: 0,
        }
        .emit(&mut ipv4::Packet::new_unchecked(&mut pkt[..]))
        .unwrap();

        let ip = ipv4::Packet::new_checked(&pkt[..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.total_len() as usize, 20 + 8 + 4 + 4 + 4 + inner.len());
        let u = udp::Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(u.dst_port(), 19523);
        assert!(u.verify_checksum_v4(src, hop0));
        // Independent check: the whole UDP datagram with the pseudo-header sums to 0xffff.
        let ph = checksum::pseudo_header_v4(src, hop0, 17, udp_len as u32);
        assert_eq!(
            checksum::fold(checksum::add(ph, checksum::sum(ip.payload()))),
            0xffff
        );
        let g = Packet::new_checked(u.payload(), HopFamily::V4).unwrap();
        assert_eq!(g.hop_v4(0), Some(hop1));
        assert_eq!(g.payload(), &inner);
        assert_eq!(
            &u.payload()[..12],
            &[0x02, 0x04, 0, 0, 0, 0, 0, 1, 192, 168, 50, 11]
        );
    }
}
