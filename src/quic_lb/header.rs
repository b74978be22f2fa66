//! The destination connection ID of a QUIC packet, from its UDP payload: zero-copy,
//! total (every input gives `Ok` or a precise [`HeaderError`], never a panic).
//!
//! Only what RFC 8999 (QUIC's version-independent properties) promises is read, so the
//! director needs no change when servers deploy new QUIC versions (draft-21 section 8):
//!
//! ```text
//! Long Header {                       Short Header {
//!   Header Form (1) = 1,                Header Form (1) = 0,
//!   Version-Specific Bits (7),          Version-Specific Bits (7),
//!   Version (32),                       Destination Connection ID (..),
//!   DCID Length (8), DCID (..),         ...
//!   SCID Length (8), SCID (..),       }
//!   ...
//! }
//! ```
//!
//! - A long header names its DCID length. Version 0 is Version Negotiation, whose CIDs may
//!   be up to 255 bytes ([`Header::VersionNegotiation`]); any other version is refused when
//!   a CID is longer than 20 bytes (QUIC v1's and v2's limit, and QUIC-LB's).
//! - A short header does not: its length is the one the director's configuration gives
//!   for the codepoint in the DCID's first octet ([`QuicLbConfigs::short_dcid_len`]):
//!   `1 + server_id_len + nonce_len`, or, when the configuration's servers self-encode
//!   the length (`encode_length`, section 3.3), the first octet's low five bits plus one.
//!   Codepoint 7 CIDs always self-encode theirs (section 3.2). A codepoint without a
//!   configuration has no known length ([`HeaderError::UnknownShortLength`]): such a
//!   packet is unroutable, for the 4-tuple fallback.
//!
//! The long header packet type ([`LongType`]) is known for QUIC v1 (RFC 9000) and v2
//! (RFC 9369, which permutes the type bits); other versions give `None`.
//!
//! The fixed bit (0x40) is not checked: RFC 9287 lets endpoints grease it.

use super::config::QuicLbConfigs;
use super::{codepoint, MAX_CID_LEN, UNROUTABLE};

/// QUIC version 1 (RFC 9000).
pub const VERSION_1: u32 = 0x0000_0001;
/// QUIC version 2 (RFC 9369).
pub const VERSION_2: u32 = 0x6b33_43cf;
/// The version of a Version Negotiation packet.
pub const VERSION_NEGOTIATION: u32 = 0;

/// The header of a QUIC packet, borrowing its CIDs from the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header<'a> {
    /// A long header (form bit set), version not 0.
    Long {
        version: u32,
        /// Initial, 0-RTT, Handshake or Retry, for versions 1 and 2.
        packet_type: Option<LongType>,
        dcid: &'a [u8],
        scid: &'a [u8],
    },
    /// Version 0: Version Negotiation (RFC 8999 section 6), CIDs up to 255 bytes.
    VersionNegotiation { dcid: &'a [u8], scid: &'a [u8] },
    /// A short header: the DCID, of the length the configuration gives.
    Short { dcid: &'a [u8] },
}

impl<'a> Header<'a> {
    /// The destination connection ID.
    #[inline]
    pub fn dcid(&self) -> &'a [u8] {
        match *self {
            Header::Long { dcid, .. }
            | Header::VersionNegotiation { dcid, .. }
            | Header::Short { dcid } => dcid,
        }
    }
}

/// Long header packet types of QUIC v1 and v2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LongType {
    Initial,
    ZeroRtt,
    Handshake,
    Retry,
}

impl LongType {
    /// The type of a `version` long header whose first octet is `first`, if the version
    /// is known.
    #[inline]
    pub fn of(version: u32, first: u8) -> Option<LongType> {
        let bits = (first >> 4) & 0b11;
        let types = match version {
            VERSION_1 => [
                LongType::Initial,
                LongType::ZeroRtt,
                LongType::Handshake,
                LongType::Retry,
            ],
            VERSION_2 => [
                LongType::Retry,
                LongType::Initial,
                LongType::ZeroRtt,
                LongType::Handshake,
            ],
            _ => return None,
        };
        Some(types[usize::from(bits)])
    }
}

/// Why a payload gives no DCID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("empty UDP payload")]
    Empty,
    #[error("truncated QUIC header: {need} bytes needed, {have} present")]
    Truncated { need: usize, have: usize },
    #[error("destination connection ID of {len} bytes: at most 20 (version {version:#x})")]
    DcidTooLong { len: usize, version: u32 },
    #[error("source connection ID of {len} bytes: at most 20 (version {version:#x})")]
    ScidTooLong { len: usize, version: u32 },
    #[error("short header DCID with self-encoded length {len}: at most 20")]
    BadSelfEncodedLength { len: usize },
    #[error("short header DCID with codepoint {codepoint}: no configuration gives its length")]
    UnknownShortLength { codepoint: u8 },
}

impl QuicLbConfigs {
    /// The length of a short header DCID whose first octet is `first`: from the
    /// configuration at its codepoint (self-encoded when that configuration says so),
    /// self-encoded for codepoint 7, unknown for a codepoint with no configuration.
    #[inline]
    pub fn short_dcid_len(&self, first: u8) -> Result<usize, HeaderError> {
        let cp = codepoint(first);
        let self_encoded = usize::from(first & 0x1f) + 1;
        let len = if cp == UNROUTABLE {
            self_encoded
        } else {
            match self.get(cp) {
                Some(c) if c.encode_length() => self_encoded,
                Some(c) => c.cid_len(),
                None => return Err(HeaderError::UnknownShortLength { codepoint: cp }),
            }
        };
        if len > MAX_CID_LEN {
            return Err(HeaderError::BadSelfEncodedLength { len });
        }
        Ok(len)
    }
}

/// The header of the QUIC packet in `payload` (a UDP payload), short header DCID lengths
/// from `configs`.
#[inline]
pub fn parse<'a>(payload: &'a [u8], configs: &QuicLbConfigs) -> Result<Header<'a>, HeaderError> {
    let Some(&first) = payload.first() else {
        return Err(HeaderError::Empty);
    };
    let truncated = |need: usize| HeaderError::Truncated {
        need,
        have: payload.len(),
    };
    if first & 0x80 == 0 {
        let Some(&dcid_first) = payload.get(1) else {
            return Err(truncated(2));
        };
        let len = configs.short_dcid_len(dcid_first)?;
        let dcid = payload.get(1..1 + len).ok_or(truncated(1 + len))?;
        return Ok(Header::Short { dcid });
    }
    let Some(v) = payload.get(1..5) else {
        return Err(truncated(6));
    };
    let version = u32::from_be_bytes([v[0], v[1], v[2], v[3]]);
    let dcid_len = usize::from(*payload.get(5).ok_or(truncated(6))?);
    if version != VERSION_NEGOTIATION && dcid_len > MAX_CID_LEN {
        return Err(HeaderError::DcidTooLong {
            len: dcid_len,
            version,
        });
    }
    let dcid_end = 6 + dcid_len;
    let dcid = payload.get(6..dcid_end).ok_or(truncated(dcid_end + 1))?;
    let scid_len = usize::from(*payload.get(dcid_end).ok_or(truncated(dcid_end + 1))?);
    if version != VERSION_NEGOTIATION && scid_len > MAX_CID_LEN {
        return Err(HeaderError::ScidTooLong {
            len: scid_len,
            version,
        });
    }
    let scid_end = dcid_end + 1 + scid_len;
    let scid = payload
        .get(dcid_end + 1..scid_end)
        .ok_or(truncated(scid_end))?;
    if version == VERSION_NEGOTIATION {
        return Ok(Header::VersionNegotiation { dcid, scid });
    }
    Ok(Header::Long {
        version,
        packet_type: LongType::of(version, first),
        dcid,
        scid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quic_lb::QuicLbConfig;

    fn configs() -> QuicLbConfigs {
        QuicLbConfigs::new([
            QuicLbConfig::new(0, 3, 4, None).unwrap(),
            QuicLbConfig::new(1, 5, 5, None)
                .unwrap()
                .with_encode_length(true),
        ])
        .unwrap()
    }

    fn long(first: u8, version: u32, dcid: &[u8], scid: &[u8]) -> Vec<u8> {
        let mut p = vec![first];
        p.extend_from_slice(&version.to_be_bytes());
        p.push(dcid.len() as u8);
        p.extend_from_slice(dcid);
        p.push(scid.len() as u8);
        p.extend_from_slice(scid);
        p.extend_from_slice(&[0; 8]); // token length, length, packet number...
        p
    }

    #[test]
    fn long_headers_give_version_type_and_both_cids() {
        let c = configs();
        let dcid = [0x07, 1, 2, 3, 4, 5, 6, 7];
        for (first, v1, v2) in [
            (0xc0, LongType::Initial, LongType::Retry),
            (0xd0, LongType::ZeroRtt, LongType::Initial),
            (0xe0, LongType::Handshake, LongType::ZeroRtt),
            (0xf0, LongType::Retry, LongType::Handshake),
        ] {
            let p = long(first, VERSION_1, &dcid, &[9; 4]);
            assert_eq!(
                parse(&p, &c),
                Ok(Header::Long {
                    version: 1,
                    packet_type: Some(v1),
                    dcid: &dcid,
                    scid: &[9; 4]
                })
            );
            let p = long(first, VERSION_2, &dcid, &[]);
            let h = parse(&p, &c).unwrap();
            assert!(matches!(h, Header::Long { packet_type: Some(t), scid: [], .. } if t == v2));
            assert_eq!(h.dcid(), &dcid);
        }
        let p = long(0xc0, 0x1a2a_3a4a, &dcid, &[]);
        assert!(matches!(
            parse(&p, &c),
            Ok(Header::Long {
                packet_type: None,
                ..
            })
        ));
    }

    #[test]
    fn cids_over_twenty_bytes_only_in_version_negotiation() {
        let c = configs();
        let p = long(0xc0, VERSION_1, &[1; 21], &[]);
        assert_eq!(
            parse(&p, &c),
            Err(HeaderError::DcidTooLong {
                len: 21,
                version: 1
            })
        );
        let p = long(0xc0, VERSION_1, &[1; 20], &[2; 21]);
        assert_eq!(
            parse(&p, &c),
            Err(HeaderError::ScidTooLong {
                len: 21,
                version: 1
            })
        );
        let p = long(0x80, VERSION_NEGOTIATION, &[1; 200], &[2; 255]);
        assert_eq!(
            parse(&p, &c),
            Ok(Header::VersionNegotiation {
                dcid: &[1; 200],
                scid: &[2; 255]
            })
        );
    }

    #[test]
    fn truncated_long_headers() {
        let c = configs();
        let p = long(0xc0, VERSION_1, &[1; 8], &[2; 8]);
        // Every cut before the end of the SCID is refused; from there on, it parses.
        for cut in 0..6 + 8 + 1 + 8 {
            let r = parse(&p[..cut], &c);
            assert!(r.is_err(), "cut {cut}: {r:?}");
        }
        assert!(parse(&p[..23], &c).is_ok());
        assert_eq!(
            parse(&p[..3], &c),
            Err(HeaderError::Truncated { need: 6, have: 3 })
        );
        assert_eq!(parse(&[], &c), Err(HeaderError::Empty));
    }

    #[test]
    fn short_header_lengths_come_from_the_configuration() {
        let c = configs();
        // Codepoint 0: 1 + 3 + 4 = 8 bytes, whatever the low bits say.
        let mut p = vec![0x40, 0x1f, 1, 2, 3, 4, 5, 6, 7, 0xaa, 0xbb];
        assert_eq!(parse(&p, &c).unwrap().dcid(), &p[1..9]);
        assert_eq!(
            parse(&p[..8], &c),
            Err(HeaderError::Truncated { need: 9, have: 8 })
        );
        // Codepoint 1 self-encodes: 0x2a = codepoint 1, length 11.
        p = vec![0x40, 0x2a, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0xee];
        assert_eq!(parse(&p, &c).unwrap().dcid(), &p[1..12]);
        // Codepoint 7: self-encoded, always.
        p = vec![0x40, 0xe3, 1, 2, 3, 0xee];
        assert_eq!(parse(&p, &c).unwrap().dcid(), &p[1..5]);
        p = vec![0x40, 0xff, 1];
        assert_eq!(
            parse(&p, &c),
            Err(HeaderError::BadSelfEncodedLength { len: 32 })
        );
        // Codepoint 3: no configuration.
        assert_eq!(
            parse(&[0x40, 0x60, 1, 2, 3, 4, 5, 6, 7, 8], &c),
            Err(HeaderError::UnknownShortLength { codepoint: 3 })
        );
        assert_eq!(
            parse(&[0x40], &c),
            Err(HeaderError::Truncated { need: 2, have: 1 })
        );
    }
}
