//! Ethernet II frames, MAC addresses and the L2 classifier (at most one 802.1Q tag).

use core::fmt;
use core::str::FromStr;

use super::bytes::{arr, be16, set16};
use super::{Error, Result};

/// Ethertypes Rondo knows.
pub mod ethertype {
    /// IPv4.
    pub const IPV4: u16 = 0x0800;
    /// ARP.
    pub const ARP: u16 = 0x0806;
    /// IEEE 802.1Q VLAN tag (C-tag).
    pub const VLAN: u16 = 0x8100;
    /// IPv6.
    pub const IPV6: u16 = 0x86DD;
    /// IEEE 802.1ad service tag (QinQ S-tag).
    pub const QINQ: u16 = 0x88A8;
    /// Pre-standard QinQ tag.
    pub const QINQ_OLD: u16 = 0x9100;
}

/// A 48-bit Ethernet MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// 00:00:00:00:00:00.
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// The address bytes.
    #[inline]
    pub const fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// Builds an address from a 6-byte slice; `None` if the length differs.
    #[inline]
    pub fn from_slice(b: &[u8]) -> Option<MacAddr> {
        if b.len() != 6 {
            return None;
        }
        Some(MacAddr(arr(b, 0)))
    }

    /// Group (multicast or broadcast) bit set.
    #[inline]
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 1 != 0
    }

    /// All ones.
    #[inline]
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// Neither multicast nor broadcast.
    #[inline]
    pub const fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl FromStr for MacAddr {
    type Err = Error;

    /// Parses `aa:bb:cc:dd:ee:ff` (exactly two hex digits per group, any case).
    fn from_str(s: &str) -> Result<MacAddr> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for o in out.iter_mut() {
            let p = parts.next().ok_or(Error::BadMacAddr)?;
            if p.len() != 2 || !p.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(Error::BadMacAddr);
            }
            *o = u8::from_str_radix(p, 16).map_err(|_| Error::BadMacAddr)?;
        }
        if parts.next().is_some() {
            return Err(Error::BadMacAddr);
        }
        Ok(MacAddr(out))
    }
}

mod field {
    use crate::wire::Field;
    pub const DST: Field = 0..6;
    pub const SRC: Field = 6..12;
    pub const ETHERTYPE: Field = 12..14;
    pub const PAYLOAD: usize = 14;
}

/// Length of an untagged Ethernet II header.
pub const HEADER_LEN: usize = field::PAYLOAD;
/// Length of an Ethernet II header with one 802.1Q tag.
pub const VLAN_HEADER_LEN: usize = HEADER_LEN + 4;

/// A zero-copy view of an untagged Ethernet II frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps a buffer without checks.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Frame<T> {
        Frame { buffer }
    }

    /// Wraps a buffer, checking it holds at least the 14-byte header.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Frame<T>> {
        let f = Self::new_unchecked(buffer);
        f.check_len()?;
        Ok(f)
    }

    /// Checks the buffer is long enough for the header.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Consumes the view, returning the buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Header length (14).
    #[inline]
    pub const fn header_len() -> usize {
        HEADER_LEN
    }

    /// Destination MAC.
    #[inline]
    pub fn dst_addr(&self) -> MacAddr {
        MacAddr(arr(self.buffer.as_ref(), field::DST.start))
    }

    /// Source MAC.
    #[inline]
    pub fn src_addr(&self) -> MacAddr {
        MacAddr(arr(self.buffer.as_ref(), field::SRC.start))
    }

    /// Ethertype (for a tagged frame this is 0x8100).
    #[inline]
    pub fn ethertype(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ETHERTYPE.start)
    }

    /// Everything after the 14-byte header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Sets the destination MAC.
    #[inline]
    pub fn set_dst_addr(&mut self, a: MacAddr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&a.0);
    }

    /// Sets the source MAC.
    #[inline]
    pub fn set_src_addr(&mut self, a: MacAddr) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&a.0);
    }

    /// Sets the ethertype.
    #[inline]
    pub fn set_ethertype(&mut self, t: u16) {
        set16(self.buffer.as_mut(), field::ETHERTYPE.start, t);
    }

    /// Mutable payload.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

/// High-level description of an untagged Ethernet II header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source MAC.
    pub src_addr: MacAddr,
    /// Destination MAC.
    pub dst_addr: MacAddr,
    /// Ethertype.
    pub ethertype: u16,
}

impl Repr {
    /// Reads the header of a checked frame.
    #[inline]
    pub fn parse<T: AsRef<[u8]> + ?Sized>(frame: &Frame<&T>) -> Result<Repr> {
        frame.check_len()?;
        Ok(Repr {
            src_addr: frame.src_addr(),
            dst_addr: frame.dst_addr(),
            ethertype: frame.ethertype(),
        })
    }

    /// Header length (14).
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Header length (14).
    #[inline]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header into `frame`.
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(
        &self,
        frame: &mut Frame<&mut T>,
    ) -> Result<()> {
        emit_header(
            frame.buffer.as_mut(),
            self.dst_addr,
            self.src_addr,
            self.ethertype,
        )
    }
}

/// Result of [`parse_l2`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L2 {
    /// Ethertype of the payload (after the VLAN tag, if any).
    pub ethertype: u16,
    /// The 802.1Q TCI (PCP, DEI, VID), if the frame was tagged.
    pub vlan: Option<u16>,
    /// Offset of the payload: 14, or 18 when tagged.
    pub header_len: usize,
}

#[inline]
fn check_ethertype(t: u16) -> Result<()> {
    match t {
        ethertype::VLAN | ethertype::QINQ | ethertype::QINQ_OLD => Err(Error::StackedVlan),
        t if t < 0x0600 => Err(Error::NotEthernetII),
        _ => Ok(()),
    }
}

/// Classifies an Ethernet II frame with zero or one 802.1Q tag.
///
/// Errors: [`Error::Truncated`]; [`Error::NotEthernetII`] for an 802.3 length field
/// (< 0x0600); [`Error::StackedVlan`] for a second tag or an outer 802.1ad tag.
#[inline]
pub fn parse_l2(buf: &[u8]) -> Result<L2> {
    let t = match buf.get(12..14) {
        Some(b) => u16::from_be_bytes([b[0], b[1]]),
        None => return Err(Error::Truncated),
    };
    if t == ethertype::VLAN {
        let (tci, inner) = match buf.get(14..18) {
            Some(b) => (
                u16::from_be_bytes([b[0], b[1]]),
                u16::from_be_bytes([b[2], b[3]]),
            ),
            None => return Err(Error::Truncated),
        };
        check_ethertype(inner)?;
        return Ok(L2 {
            ethertype: inner,
            vlan: Some(tci),
            header_len: VLAN_HEADER_LEN,
        });
    }
    check_ethertype(t)?;
    Ok(L2 {
        ethertype: t,
        vlan: None,
        header_len: HEADER_LEN,
    })
}

/// Writes an untagged 14-byte Ethernet II header at the start of `buf`.
#[inline]
pub fn emit_header(buf: &mut [u8], dst: MacAddr, src: MacAddr, ethertype: u16) -> Result<()> {
    let h = buf.get_mut(..HEADER_LEN).ok_or(Error::BufferTooSmall)?;
    h[field::DST].copy_from_slice(&dst.0);
    h[field::SRC].copy_from_slice(&src.0);
    h[field::ETHERTYPE].copy_from_slice(&ethertype.to_be_bytes());
    Ok(())
}

/// Writes an 18-byte Ethernet II header with one 802.1Q tag (`tci`) at the start of `buf`.
#[inline]
pub fn emit_header_vlan(
    buf: &mut [u8],
    dst: MacAddr,
    src: MacAddr,
    tci: u16,
    ethertype: u16,
) -> Result<()> {
    let h = buf
        .get_mut(..VLAN_HEADER_LEN)
        .ok_or(Error::BufferTooSmall)?;
    h[field::DST].copy_from_slice(&dst.0);
    h[field::SRC].copy_from_slice(&src.0);
    h[12..14].copy_from_slice(&self::ethertype::VLAN.to_be_bytes());
    h[14..16].copy_from_slice(&tci.to_be_bytes());
    h[16..18].copy_from_slice(&ethertype.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // First 14 bytes of a frame from GLB's 1k_pkts.pcap.
    static FRAME: [u8; 16] = [
        0x52, 0x54, 0x00, 0x12, 0x35, 0x02, 0x08, 0x00, 0x27, 0x8d, 0xc0, 0x4d, 0x08, 0x00, 0x45,
        0x00,
    ];

    #[test]
    fn frame_fields() {
        let f = Frame::new_checked(&FRAME[..]).unwrap();
        assert_eq!(f.dst_addr(), MacAddr([0x52, 0x54, 0x00, 0x12, 0x35, 0x02]));
        assert_eq!(f.src_addr().to_string(), "08:00:27:8d:c0:4d");
        assert_eq!(f.ethertype(), ethertype::IPV4);
        assert_eq!(f.payload(), &[0x45, 0x00]);
        let r = Repr::parse(&f).unwrap();
        let mut out = [0u8; 16];
        out[14..].copy_from_slice(&[0x45, 0x00]);
        r.emit(&mut Frame::new_unchecked(&mut out[..])).unwrap();
        assert_eq!(out, FRAME);
    }

    #[test]
    fn frame_setters() {
        let mut b = [0u8; 14];
        let mut f = Frame::new_checked(&mut b[..]).unwrap();
        f.set_dst_addr(MacAddr::BROADCAST);
        f.set_src_addr("02:00:00:00:00:01".parse().unwrap());
        f.set_ethertype(ethertype::IPV6);
        assert!(f.dst_addr().is_broadcast());
        assert!(f.src_addr().is_unicast());
        assert_eq!(
            b,
            [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x86, 0xdd]
        );
    }

    #[test]
    fn mac_parse_display() {
        let m: MacAddr = "AA:bb:0c:dd:ee:FF".parse().unwrap();
        assert_eq!(m, MacAddr([0xaa, 0xbb, 0x0c, 0xdd, 0xee, 0xff]));
        assert_eq!(m.to_string(), "aa:bb:0c:dd:ee:ff");
        for bad in [
            "",
            "aa:bb:cc:dd:ee",
            "aa:bb:cc:dd:ee:ff:00",
            "aa:bb:cc:dd:ee:f",
            "aa:bb:cc:dd:ee:fff",
            "aa-bb-cc-dd-ee-ff",
            "aa:bb:cc:dd:ee:gg",
            "+a:bb:cc:dd:ee:ff",
            "aa:bb:cc:dd:ee:ff:",
        ] {
            assert_eq!(bad.parse::<MacAddr>(), Err(Error::BadMacAddr), "{bad}");
        }
        assert_eq!(MacAddr::from_slice(&[1, 2, 3]), None);
        assert!(MacAddr([1, 0, 0, 0, 0, 0]).is_multicast());
    }

    #[test]
    fn l2_untagged_and_tagged() {
        assert_eq!(
            parse_l2(&FRAME),
            Ok(L2 {
                ethertype: ethertype::IPV4,
                vlan: None,
                header_len: 14
            })
        );
        let mut t = [0u8; 18];
        emit_header_vlan(
            &mut t,
            MacAddr::BROADCAST,
            MacAddr::ZERO,
            0x2064,
            ethertype::IPV6,
        )
        .unwrap();
        assert_eq!(&t[12..], &[0x81, 0x00, 0x20, 0x64, 0x86, 0xdd]);
        assert_eq!(
            parse_l2(&t),
            Ok(L2 {
                ethertype: ethertype::IPV6,
                vlan: Some(0x2064),
                header_len: 18
            })
        );
    }

    #[test]
    fn l2_errors() {
        let mut t = [0u8; 18];
        emit_header_vlan(&mut t, MacAddr::ZERO, MacAddr::ZERO, 1, ethertype::VLAN).unwrap();
        assert_eq!(parse_l2(&t), Err(Error::StackedVlan));
        emit_header_vlan(&mut t, MacAddr::ZERO, MacAddr::ZERO, 1, ethertype::QINQ).unwrap();
        assert_eq!(parse_l2(&t), Err(Error::StackedVlan));
        emit_header_vlan(&mut t, MacAddr::ZERO, MacAddr::ZERO, 1, 0x05dc).unwrap();
        assert_eq!(parse_l2(&t), Err(Error::NotEthernetII));
        emit_header(&mut t, MacAddr::ZERO, MacAddr::ZERO, ethertype::QINQ).unwrap();
        assert_eq!(parse_l2(&t), Err(Error::StackedVlan));
        emit_header(&mut t, MacAddr::ZERO, MacAddr::ZERO, 0x002e).unwrap();
        assert_eq!(parse_l2(&t), Err(Error::NotEthernetII));
        emit_header(&mut t, MacAddr::ZERO, MacAddr::ZERO, 0x0600).unwrap();
        assert_eq!(parse_l2(&t).unwrap().ethertype, 0x0600);
        assert_eq!(
            emit_header(&mut [0u8; 13], MacAddr::ZERO, MacAddr::ZERO, 0),
            Err(Error::BufferTooSmall)
        );
        assert_eq!(
            emit_header_vlan(&mut [0u8; 17], MacAddr::ZERO, MacAddr::ZERO, 0, 0),
            Err(Error::BufferTooSmall)
        );
    }

    #[test]
    fn truncated_prefixes() {
        let mut t = [0u8; 18];
        emit_header_vlan(&mut t, MacAddr::ZERO, MacAddr::ZERO, 5, ethertype::IPV4).unwrap();
        for n in 0..t.len() {
            let r = parse_l2(&t[..n]);
            assert_eq!(r, Err(Error::Truncated), "len {n}");
            assert_eq!(Frame::new_checked(&t[..n]).is_ok(), n >= 14);
        }
        assert!(parse_l2(&t).is_ok());
    }
}
