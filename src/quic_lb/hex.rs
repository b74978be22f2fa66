//! Hex for keys, server IDs and CIDs: `8f95f092...`, with an optional `0x` and, as the
//! draft's YANG model writes keys (`yang:hex-string`), optional `:` between bytes.

use std::fmt::Write;

/// Why a hex string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HexError {
    #[error("{found:?} at position {pos} is not a hex digit")]
    NotHex { found: char, pos: usize },
    #[error("{digits} hex digits: a whole number of bytes needs an even number")]
    Odd { digits: usize },
    #[error("{bytes} bytes: expected {expected}")]
    Length { bytes: usize, expected: String },
}

/// Parse `s` into `out`, returning how many bytes it held; `out.len()` is the most
/// allowed (`expected` says so in the error).
pub fn parse_hex(s: &str, out: &mut [u8]) -> Result<usize, HexError> {
    let s = s.trim();
    let body = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    let offset = s.len() - body.len();
    let mut digits = 0usize;
    let mut bytes = 0usize;
    let mut high = 0u8;
    for (i, c) in body.char_indices() {
        if c == ':' {
            continue;
        }
        let Some(v) = c.to_digit(16) else {
            return Err(HexError::NotHex {
                found: c,
                pos: offset + i + 1,
            });
        };
        // `to_digit(16)` is < 16: the narrowing is exact.
        let v = v as u8;
        if digits.is_multiple_of(2) {
            high = v << 4;
        } else {
            if let Some(slot) = out.get_mut(bytes) {
                *slot = high | v;
            }
            bytes += 1;
        }
        digits += 1;
    }
    if !digits.is_multiple_of(2) {
        return Err(HexError::Odd { digits });
    }
    if bytes > out.len() {
        return Err(HexError::Length {
            bytes,
            expected: format!("at most {}", out.len()),
        });
    }
    Ok(bytes)
}

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_prefixed_and_colon_separated_hex() {
        let mut out = [0u8; 4];
        assert_eq!(parse_hex("c4605e", &mut out), Ok(3));
        assert_eq!(&out[..3], &[0xc4, 0x60, 0x5e]);
        assert_eq!(parse_hex("0xC4:60:5E:01", &mut out), Ok(4));
        assert_eq!(out, [0xc4, 0x60, 0x5e, 0x01]);
        assert_eq!(parse_hex("", &mut out), Ok(0));
        assert_eq!(to_hex(&out), "c4605e01");
    }

    #[test]
    fn refuses_odd_foreign_and_long_hex() {
        let mut out = [0u8; 4];
        assert_eq!(
            parse_hex("3487d970b", &mut out),
            Err(HexError::Odd { digits: 9 })
        );
        assert_eq!(
            parse_hex("0x12g4", &mut out),
            Err(HexError::NotHex { found: 'g', pos: 5 })
        );
        let e = parse_hex("0102030405", &mut out).unwrap_err();
        assert_eq!(e.to_string(), "5 bytes: expected at most 4");
    }
}
