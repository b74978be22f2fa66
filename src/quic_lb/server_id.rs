//! [`ServerId`]: what a QUIC-LB CID routes to, 1..=15 bytes, as a `Copy` value.

use core::fmt;

use super::hex::{parse_hex, to_hex, HexError};
use super::{MAX_SERVER_ID_LEN, MIN_SERVER_ID_LEN};

/// A server ID of 1..=15 bytes (draft section 5.1; 15 = 19 bytes of server ID and nonce
/// less the shortest nonce). Fixed size, no allocation: equal IDs of different lengths
/// are different IDs (`00` is not `0000`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerId {
    len: u8,
    bytes: [u8; MAX_SERVER_ID_LEN],
}

/// Why bytes or hex are not a server ID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServerIdError {
    #[error("server ID of {0} bytes: the draft allows 1..=15")]
    Length(usize),
    #[error("server ID: {0}")]
    Hex(#[from] HexError),
}

impl ServerId {
    /// The server ID `bytes` (1..=15 of them).
    pub fn new(bytes: &[u8]) -> Result<ServerId, ServerIdError> {
        let n = bytes.len();
        if !(MIN_SERVER_ID_LEN..=MAX_SERVER_ID_LEN).contains(&n) {
            return Err(ServerIdError::Length(n));
        }
        let mut out = [0u8; MAX_SERVER_ID_LEN];
        out[..n].copy_from_slice(bytes);
        Ok(ServerId {
            // n <= 15: exact.
            len: n as u8,
            bytes: out,
        })
    }

    /// A server ID written in hex (`31441a`, `0x31441a`, `31:44:1a`).
    pub fn from_hex(s: &str) -> Result<ServerId, ServerIdError> {
        // One byte of room more than allowed, so a 16-byte ID is a length error.
        let mut buf = [0u8; MAX_SERVER_ID_LEN + 1];
        let n = match parse_hex(s, &mut buf) {
            Ok(n) => n,
            Err(HexError::Length { bytes, .. }) => return Err(ServerIdError::Length(bytes)),
            Err(e) => return Err(e.into()),
        };
        ServerId::new(&buf[..n])
    }

    /// The server ID's bytes.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Its length in bytes (1..=15).
    #[inline]
    #[allow(clippy::len_without_is_empty)] // never empty
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }
}

impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&to_hex(self.as_bytes()))
    }
}

impl fmt::Debug for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServerId({self})")
    }
}

impl core::str::FromStr for ServerId {
    type Err = ServerIdError;
    fn from_str(s: &str) -> Result<ServerId, ServerIdError> {
        ServerId::from_hex(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_one_to_fifteen_bytes() {
        let id = ServerId::from_hex("31441a").unwrap();
        assert_eq!(id.as_bytes(), &[0x31, 0x44, 0x1a]);
        assert_eq!(id.len(), 3);
        assert_eq!(id.to_string(), "31441a");
        assert_eq!(format!("{id:?}"), "ServerId(31441a)");
        assert!(ServerId::new(&[0; 15]).is_ok());
        assert_eq!(ServerId::new(&[]), Err(ServerIdError::Length(0)));
        assert_eq!(ServerId::new(&[0; 16]), Err(ServerIdError::Length(16)));
        assert_eq!(
            ServerId::from_hex(&"ab".repeat(17)),
            Err(ServerIdError::Length(17))
        );
        assert_ne!(
            ServerId::new(&[0]).unwrap(),
            ServerId::new(&[0, 0]).unwrap()
        );
        assert!(ServerId::from_hex("12345").is_err());
    }
}
