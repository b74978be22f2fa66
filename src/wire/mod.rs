//! Wire formats: zero-copy views and emitters for every header Rondo reads or writes.
//!
//! Modelled on smoltcp's `wire` module. Each protocol has two layers:
//! - `Packet<T: AsRef<[u8]>>` (or `Frame` for Ethernet): a view over a buffer whose
//!   `new_checked()` validates the buffer so that no getter or setter of a checked view
//!   can panic. `new_unchecked()` skips validation (getters may then panic on short
//!   buffers).
//! - `Repr`: a high-level, owned (or borrowing) description with `parse()`, `emit()` and
//!   `buffer_len()`.
//!
//! Parsing is validation: every parser is total (returns `Ok` or a precise [`Error`],
//! never panics, never allocates, never loops unboundedly).

pub mod checksum;
pub mod ethernet;
pub mod gue;
pub mod icmpv4;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod offload;
pub mod tcp;
pub mod udp;

pub use self::ethernet::{
    ethertype, parse_l2, Frame as EthernetFrame, MacAddr, Repr as EthernetRepr, L2,
};
pub use self::gue::{
    emit_glb_v4, emit_glb_v6, glb_header_len_v4, glb_header_len_v6, HopFamily, HopList,
    Packet as GuePacket, Repr as GueRepr,
};
pub use self::icmpv4::{Packet as Icmpv4Packet, Repr as Icmpv4Repr};
pub use self::icmpv6::{Packet as Icmpv6Packet, Repr as Icmpv6Repr};
pub use self::ipv4::{Packet as Ipv4Packet, Repr as Ipv4Repr};
pub use self::ipv6::{
    upper_layer as ipv6_upper_layer, Fragment as Ipv6Fragment, Packet as Ipv6Packet,
    Repr as Ipv6Repr, UpperLayer as Ipv6UpperLayer,
};
pub use self::tcp::{Packet as TcpPacket, Repr as TcpRepr};
pub use self::udp::{Packet as UdpPacket, Repr as UdpRepr};

/// IP protocol numbers (IPv4 `protocol`, IPv6 `next_header`).
pub mod ip_proto {
    /// IPv6 Hop-by-Hop Options.
    pub const HOPOPT: u8 = 0;
    /// ICMP for IPv4.
    pub const ICMP: u8 = 1;
    /// IPv4 encapsulation (GUE `proto` for an inner IPv4 packet).
    pub const IPV4: u8 = 4;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// IPv6 encapsulation (GUE `proto` for an inner IPv6 packet).
    pub const IPV6: u8 = 41;
    /// IPv6 Routing header.
    pub const IPV6_ROUTE: u8 = 43;
    /// IPv6 Fragment header.
    pub const IPV6_FRAG: u8 = 44;
    /// Encapsulating Security Payload.
    pub const ESP: u8 = 50;
    /// Authentication Header.
    pub const AH: u8 = 51;
    /// ICMP for IPv6.
    pub const ICMPV6: u8 = 58;
    /// IPv6 No Next Header.
    pub const IPV6_NONXT: u8 = 59;
    /// IPv6 Destination Options.
    pub const IPV6_OPTS: u8 = 60;
}

/// Every way a wire-format parse or emit can fail.
///
/// [`Error::reason`] gives a short snake_case label suitable for a drop counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Error {
    /// The buffer is shorter than the header, or than a length field declares.
    #[error("buffer truncated")]
    Truncated,
    /// An output buffer is too small for what is being emitted.
    #[error("output buffer too small")]
    BufferTooSmall,
    /// IP version field does not match the parser (4 or 6).
    #[error("bad IP version")]
    BadVersion,
    /// IPv4 IHL below 5 or larger than the total length.
    #[error("bad IPv4 header length (IHL)")]
    BadHeaderLen,
    /// IPv4 total length below 20.
    #[error("bad IPv4 total length")]
    BadTotalLen,
    /// IPv4 header checksum does not verify (only from explicitly checking parsers).
    #[error("bad checksum")]
    BadChecksum,
    /// IPv4 fragment given to a parser that does not model fragments.
    #[error("IP fragment")]
    Fragment,
    /// UDP length field below 8.
    #[error("bad UDP length")]
    BadLength,
    /// TCP data offset below 5.
    #[error("bad TCP data offset")]
    BadDataOffset,
    /// Ethertype below 0x0600: an IEEE 802.3 length field, not Ethernet II.
    #[error("802.3 length frame, not Ethernet II")]
    NotEthernetII,
    /// A second VLAN tag (QinQ / 802.1ad), or an outer 802.1ad tag.
    #[error("stacked VLAN tags")]
    StackedVlan,
    /// A MAC address string that is not `aa:bb:cc:dd:ee:ff`.
    #[error("bad MAC address")]
    BadMacAddr,
    /// More IPv6 extension headers than [`ipv6::MAX_EXT_HEADERS`].
    #[error("too many IPv6 extension headers")]
    TooManyExtHeaders,
    /// An IPv6 extension header that does not fit in the payload, or a repeated Fragment header.
    #[error("bad IPv6 extension header")]
    BadExtHeader,
    /// An IPv6 Hop-by-Hop header that is not the first header after the IPv6 header.
    #[error("IPv6 hop-by-hop header not first")]
    HopByHopNotFirst,
    /// An ICMP message type or code that the `Repr` does not model.
    #[error("unrecognized message")]
    Unrecognized,
    /// GUE version is not 0.
    #[error("bad GUE version")]
    BadGueVersion,
    /// GUE control message (C bit set).
    #[error("GUE control message")]
    GueControl,
    /// GUE hlen is 0 (no room for the GLB private data).
    #[error("bad GUE hlen")]
    BadGueHlen,
    /// GUE private type is not 0 (GLB).
    #[error("bad GUE private type")]
    BadGuePrivateType,
    /// GUE hlen does not match hop_count for the hop family.
    #[error("GUE hop count does not match hlen")]
    BadGueHopCount,
    /// GUE proto is neither 4 (IPv4) nor 41 (IPv6).
    #[error("bad GUE proto")]
    BadGueProto,
    /// More GUE hops than fit in a GUE header (or in a [`HopList`]).
    #[error("too many GUE hops")]
    TooManyHops,
    /// A GUE hop of the wrong address family.
    #[error("GUE hop family mismatch")]
    HopFamilyMismatch,
}

impl Error {
    /// Short snake_case name, usable as a counter label.
    pub const fn reason(&self) -> &'static str {
        match self {
            Error::Truncated => "truncated",
            Error::BufferTooSmall => "buffer_too_small",
            Error::BadVersion => "bad_version",
            Error::BadHeaderLen => "bad_ihl",
            Error::BadTotalLen => "bad_total_len",
            Error::BadChecksum => "bad_checksum",
            Error::Fragment => "fragment",
            Error::BadLength => "bad_length",
            Error::BadDataOffset => "bad_data_offset",
            Error::NotEthernetII => "not_ethernet_ii",
            Error::StackedVlan => "stacked_vlan",
            Error::BadMacAddr => "bad_mac_addr",
            Error::TooManyExtHeaders => "too_many_ext_headers",
            Error::BadExtHeader => "bad_ext_header",
            Error::HopByHopNotFirst => "hop_by_hop_not_first",
            Error::Unrecognized => "unrecognized",
            Error::BadGueVersion => "bad_gue_version",
            Error::GueControl => "gue_control",
            Error::BadGueHlen => "bad_gue_hlen",
            Error::BadGuePrivateType => "bad_gue_private_type",
            Error::BadGueHopCount => "bad_gue_hop_count",
            Error::BadGueProto => "bad_gue_proto",
            Error::TooManyHops => "too_many_hops",
            Error::HopFamilyMismatch => "hop_family_mismatch",
        }
    }

    /// Every variant, e.g. to pre-register counters.
    pub const ALL: [Error; 24] = [
        Error::Truncated,
        Error::BufferTooSmall,
        Error::BadVersion,
        Error::BadHeaderLen,
        Error::BadTotalLen,
        Error::BadChecksum,
        Error::Fragment,
        Error::BadLength,
        Error::BadDataOffset,
        Error::NotEthernetII,
        Error::StackedVlan,
        Error::BadMacAddr,
        Error::TooManyExtHeaders,
        Error::BadExtHeader,
        Error::HopByHopNotFirst,
        Error::Unrecognized,
        Error::BadGueVersion,
        Error::GueControl,
        Error::BadGueHlen,
        Error::BadGuePrivateType,
        Error::BadGueHopCount,
        Error::BadGueProto,
        Error::TooManyHops,
        Error::HopFamilyMismatch,
    ];
}

/// Result type of this module.
pub type Result<T> = core::result::Result<T, Error>;

/// Source and destination ports from the first 4 bytes of a TCP or UDP header.
///
/// Works on the 8 bytes of L4 header quoted by ICMP errors, where a full
/// [`TcpPacket`] view would not validate.
#[inline]
pub fn l4_ports(buf: &[u8]) -> Result<(u16, u16)> {
    match buf.get(0..4) {
        Some(b) => Ok((
            u16::from_be_bytes([b[0], b[1]]),
            u16::from_be_bytes([b[2], b[3]]),
        )),
        None => Err(Error::Truncated),
    }
}

/// Field range type used by every `mod field`.
pub(crate) type Field = core::ops::Range<usize>;

/// Byte-access helpers. Indexing here is guaranteed in range by each view's `new_checked`.
pub(crate) mod bytes {
    #[inline]
    pub fn be16(d: &[u8], at: usize) -> u16 {
        u16::from_be_bytes([d[at], d[at + 1]])
    }

    #[inline]
    pub fn be32(d: &[u8], at: usize) -> u32 {
        u32::from_be_bytes([d[at], d[at + 1], d[at + 2], d[at + 3]])
    }

    #[inline]
    pub fn arr<const N: usize>(d: &[u8], at: usize) -> [u8; N] {
        let mut a = [0u8; N];
        a.copy_from_slice(&d[at..at + N]);
        a
    }

    #[inline]
    pub fn set16(d: &mut [u8], at: usize, v: u16) {
        d[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }

    #[inline]
    pub fn set32(d: &mut [u8], at: usize, v: u32) {
        d[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for e in Error::ALL {
            let r = e.reason();
            assert!(seen.insert(r), "duplicate reason {r}");
            assert!(r
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
            assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn ports_from_quoted_header() {
        assert_eq!(l4_ports(&[0xb2, 0x6e, 0x00, 0x50]), Ok((45678, 80)));
        assert_eq!(l4_ports(&[0xb2, 0x6e, 0x00]), Err(Error::Truncated));
    }
}
