//! SipHash-2-4 keyed as GLB keys it: the hash of every flow and of every rendezvous table
//! row, bit for bit what GLB Director computes.
//!
//! GLB hashes with the reference SipHash-2-4 (64-bit output). The 16-byte key is split into
//! `k0 = LE u64 of key[0..8]` and `k1 = LE u64 of key[8..16]`; the reference implementation
//! writes its 64-bit result as 8 little-endian bytes, so a hash "as bytes" is
//! `h.to_le_bytes()` and a hash "read as a little-endian u64" is `h` itself.
//!
//! Besides the one-shot [`siphash24`], this module offers a midstate API used by the table
//! builder: every rendezvous hash of a row starts with the same 8-byte `row_seed`, so the
//! state after that first block is computed once per row ([`SipKey::prefix8`]) and each
//! backend only pays for its own bytes, eight backends per pass ([`lanes::finish_lanes`]).
//!
//! Many hashes at once: [`lanes`] holds the portable lock-step code and its layouts,
//! [`simd`] the AVX-512 form of it (chosen at run time, the one module here with `unsafe`),
//! and [`batch`] the entry points the pipeline and the table builder call. Imports run
//! `batch -> simd -> lanes -> this module`; nothing here imports `crate::sys`.

pub mod batch;
pub mod lanes;
pub mod simd;

/// A SipHash-2-4 key, as the two little-endian halves of a 16-byte key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SipKey {
    k0: u64,
    k1: u64,
}

/// SipHash internal state after absorbing exactly one 8-byte block (see [`SipKey::prefix8`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipState {
    v0: u64,
    v1: u64,
    v2: u64,
    v3: u64,
}

/// One SipRound on the state held by value (keeps the four words in registers).
#[inline(always)]
fn sip_round([mut v0, mut v1, mut v2, mut v3]: [u64; 4]) -> [u64; 4] {
    v0 = v0.wrapping_add(v1);
    v1 = v1.rotate_left(13) ^ v0;
    v0 = v0.rotate_left(32);
    v2 = v2.wrapping_add(v3);
    v3 = v3.rotate_left(16) ^ v2;
    v0 = v0.wrapping_add(v3);
    v3 = v3.rotate_left(21) ^ v0;
    v2 = v2.wrapping_add(v1);
    v1 = v1.rotate_left(17) ^ v2;
    v2 = v2.rotate_left(32);
    [v0, v1, v2, v3]
}

impl SipState {
    /// Two compression rounds over one 64-bit message word.
    #[inline(always)]
    fn compress(&mut self, m: u64) {
        let v = [self.v0, self.v1, self.v2, self.v3 ^ m];
        let [v0, v1, v2, v3] = sip_round(sip_round(v));
        *self = SipState {
            v0: v0 ^ m,
            v1,
            v2,
            v3,
        };
    }

    /// Absorb `data` (whose first byte is message byte `already`, a multiple of 8) and
    /// finalise for a message of `already + data.len()` bytes in total.
    #[inline(always)]
    fn absorb_and_finish(mut self, data: &[u8], already: usize) -> u64 {
        let mut chunks = data.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.compress(u64::from_le_bytes(word));
        }
        let tail = chunks.remainder();
        let total = already.wrapping_add(data.len());
        let mut last = [0u8; 8];
        last[..tail.len()].copy_from_slice(tail);
        // The length byte is the total length mod 256, in the top byte of the last word.
        last[7] = total as u8;
        self.compress(u64::from_le_bytes(last));
        self.finalize()
    }

    /// The four finalisation rounds.
    #[inline(always)]
    fn finalize(self) -> u64 {
        let v = [self.v0, self.v1, self.v2 ^ 0xff, self.v3];
        let [v0, v1, v2, v3] = sip_round(sip_round(sip_round(sip_round(v))));
        v0 ^ v1 ^ v2 ^ v3
    }

    /// The four state words `[v0, v1, v2, v3]` (for the lane hasher).
    #[inline(always)]
    pub(crate) fn words(&self) -> [u64; 4] {
        [self.v0, self.v1, self.v2, self.v3]
    }

    /// Finish a hash from precomputed message words: `words` are the rest of the message as
    /// little-endian u64s, the last one zero-padded and carrying SipHash's length byte
    /// (total message length mod 256) in its top byte. The one-lane reference of
    /// [`lanes::finish_lanes`], which the builder uses.
    #[cfg(test)]
    pub fn finish_words(&self, words: &[u64]) -> u64 {
        let mut state = *self;
        for &w in words {
            state.compress(w);
        }
        state.finalize()
    }

    /// Finish a hash whose first 8 bytes were absorbed by [`SipKey::prefix8`]: `rest` is the
    /// remainder of the message, so the result equals `siphash24(key, first8 || rest)`.
    /// (One message at a time, as `glb_score` does; the builder's rows use
    /// [`lanes::finish_lanes`].)
    #[inline]
    pub fn finish_with(&self, rest: &[u8]) -> u64 {
        self.absorb_and_finish(rest, 8)
    }
}

impl SipKey {
    /// Key from 16 bytes: `k0` = LE u64 of bytes 0..8, `k1` = LE u64 of bytes 8..16.
    #[inline]
    pub const fn from_bytes(key: &[u8; 16]) -> SipKey {
        let k0 = u64::from_le_bytes([
            key[0], key[1], key[2], key[3], key[4], key[5], key[6], key[7],
        ]);
        let k1 = u64::from_le_bytes([
            key[8], key[9], key[10], key[11], key[12], key[13], key[14], key[15],
        ]);
        SipKey { k0, k1 }
    }

    /// Key from its two 64-bit halves.
    #[inline]
    pub const fn from_halves(k0: u64, k1: u64) -> SipKey {
        SipKey { k0, k1 }
    }

    /// The two 64-bit halves `(k0, k1)`.
    #[inline]
    pub const fn halves(&self) -> (u64, u64) {
        (self.k0, self.k1)
    }

    #[inline(always)]
    fn init(&self) -> SipState {
        SipState {
            v0: self.k0 ^ 0x736f_6d65_7073_6575,
            v1: self.k1 ^ 0x646f_7261_6e64_6f6d,
            v2: self.k0 ^ 0x6c79_6765_6e65_7261,
            v3: self.k1 ^ 0x7465_6462_7974_6573,
        }
    }

    /// SipHash-2-4 of `data` with this key (same as [`siphash24`]).
    #[inline]
    pub fn hash(&self, data: &[u8]) -> u64 {
        self.init().absorb_and_finish(data, 0)
    }

    /// The state after absorbing the 8-byte block `first8`; finish it with
    /// [`lanes::finish_lanes`]. Computing this once and finishing it many times is how
    /// the table builder hashes `row_seed || ip` for every backend of a row.
    #[inline]
    pub fn prefix8(&self, first8: [u8; 8]) -> SipState {
        let mut state = self.init();
        state.compress(u64::from_le_bytes(first8));
        state
    }
}

/// SipHash-2-4 (64-bit output) of `data` under `key`.
#[inline]
pub fn siphash24(key: &SipKey, data: &[u8]) -> u64 {
    key.hash(data)
}

/// Parse a GLB hex key (`hash_key`, `seed`): exactly 32 hex digits (either case), decoded
/// in string order (`"0011..."` gives `[0x00, 0x11, ...]`).
///
/// The error says what is wrong (length, or the first bad character and its position)
/// without echoing the whole string, which may be a secret.
pub fn parse_hex_key(s: &str) -> Result<[u8; 16], String> {
    let chars = s.chars().count();
    if chars != 32 {
        return Err(format!(
            "expected exactly 32 hex digits (16 bytes), got {chars} characters"
        ));
    }
    let mut out = [0u8; 16];
    for (pos, c) in s.chars().enumerate() {
        let Some(nibble) = c.to_digit(16) else {
            return Err(format!(
                "expected exactly 32 hex digits, found {c:?} at position {}",
                pos + 1
            ));
        };
        // `to_digit(16)` is < 16, so the narrowing is exact.
        out[pos / 2] |= (nibble as u8) << if pos % 2 == 0 { 4 } else { 0 };
    }
    Ok(out)
}

/// Lowercase hex of a 16-byte key, the inverse of [`parse_hex_key`].
pub fn key_to_hex(key: &[u8; 16]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(32);
    for b in key {
        // Writing to a String cannot fail.
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The 64 reference outputs of SipHash-2-4 (key 00..0f, message 00..(n-1) for
    /// n = 0..63), from the SipHash paper's `vectors.h`, as little-endian bytes.
    const REFERENCE: [[u8; 8]; 64] = [
        [0x31, 0x0e, 0x0e, 0xdd, 0x47, 0xdb, 0x6f, 0x72],
        [0xfd, 0x67, 0xdc, 0x93, 0xc5, 0x39, 0xf8, 0x74],
        [0x5a, 0x4f, 0xa9, 0xd9, 0x09, 0x80, 0x6c, 0x0d],
        [0x2d, 0x7e, 0xfb, 0xd7, 0x96, 0x66, 0x67, 0x85],
        [0xb7, 0x87, 0x71, 0x27, 0xe0, 0x94, 0x27, 0xcf],
        [0x8d, 0xa6, 0x99, 0xcd, 0x64, 0x55, 0x76, 0x18],
        [0xce, 0xe3, 0xfe, 0x58, 0x6e, 0x46, 0xc9, 0xcb],
        [0x37, 0xd1, 0x01, 0x8b, 0xf5, 0x00, 0x02, 0xab],
        [0x62, 0x24, 0x93, 0x9a, 0x79, 0xf5, 0xf5, 0x93],
        [0xb0, 0xe4, 0xa9, 0x0b, 0xdf, 0x82, 0x00, 0x9e],
        [0xf3, 0xb9, 0xdd, 0x94, 0xc5, 0xbb, 0x5d, 0x7a],
        [0xa7, 0xad, 0x6b, 0x22, 0x46, 0x2f, 0xb3, 0xf4],
        [0xfb, 0xe5, 0x0e, 0x86, 0xbc, 0x8f, 0x1e, 0x75],
        [0x90, 0x3d, 0x84, 0xc0, 0x27, 0x56, 0xea, 0x14],
        [0xee, 0xf2, 0x7a, 0x8e, 0x90, 0xca, 0x23, 0xf7],
        [0xe5, 0x45, 0xbe, 0x49, 0x61, 0xca, 0x29, 0xa1],
        [0xdb, 0x9b, 0xc2, 0x57, 0x7f, 0xcc, 0x2a, 0x3f],
        [0x94, 0x47, 0xbe, 0x2c, 0xf5, 0xe9, 0x9a, 0x69],
        [0x9c, 0xd3, 0x8d, 0x96, 0xf0, 0xb3, 0xc1, 0x4b],
        [0xbd, 0x61, 0x79, 0xa7, 0x1d, 0xc9, 0x6d, 0xbb],
        [0x98, 0xee, 0xa2, 0x1a, 0xf2, 0x5c, 0xd6, 0xbe],
        [0xc7, 0x67, 0x3b, 0x2e, 0xb0, 0xcb, 0xf2, 0xd0],
        [0x88, 0x3e, 0xa3, 0xe3, 0x95, 0x67, 0x53, 0x93],
        [0xc8, 0xce, 0x5c, 0xcd, 0x8c, 0x03, 0x0c, 0xa8],
        [0x94, 0xaf, 0x49, 0xf6, 0xc6, 0x50, 0xad, 0xb8],
        [0xea, 0xb8, 0x85, 0x8a, 0xde, 0x92, 0xe1, 0xbc],
        [0xf3, 0x15, 0xbb, 0x5b, 0xb8, 0x35, 0xd8, 0x17],
        [0xad, 0xcf, 0x6b, 0x07, 0x63, 0x61, 0x2e, 0x2f],
        [0xa5, 0xc9, 0x1d, 0xa7, 0xac, 0xaa, 0x4d, 0xde],
        [0x71, 0x65, 0x95, 0x87, 0x66, 0x50, 0xa2, 0xa6],
        [0x28, 0xef, 0x49, 0x5c, 0x53, 0xa3, 0x87, 0xad],
        [0x42, 0xc3, 0x41, 0xd8, 0xfa, 0x92, 0xd8, 0x32],
        [0xce, 0x7c, 0xf2, 0x72, 0x2f, 0x51, 0x27, 0x71],
        [0xe3, 0x78, 0x59, 0xf9, 0x46, 0x23, 0xf3, 0xa7],
        [0x38, 0x12, 0x05, 0xbb, 0x1a, 0xb0, 0xe0, 0x12],
        [0xae, 0x97, 0xa1, 0x0f, 0xd4, 0x34, 0xe0, 0x15],
        [0xb4, 0xa3, 0x15, 0x08, 0xbe, 0xff, 0x4d, 0x31],
        [0x81, 0x39, 0x62, 0x29, 0xf0, 0x90, 0x79, 0x02],
        [0x4d, 0x0c, 0xf4, 0x9e, 0xe5, 0xd4, 0xdc, 0xca],
        [0x5c, 0x73, 0x33, 0x6a, 0x76, 0xd8, 0xbf, 0x9a],
        [0xd0, 0xa7, 0x04, 0x53, 0x6b, 0xa9, 0x3e, 0x0e],
        [0x92, 0x59, 0x58, 0xfc, 0xd6, 0x42, 0x0c, 0xad],
        [0xa9, 0x15, 0xc2, 0x9b, 0xc8, 0x06, 0x73, 0x18],
        [0x95, 0x2b, 0x79, 0xf3, 0xbc, 0x0a, 0xa6, 0xd4],
        [0xf2, 0x1d, 0xf2, 0xe4, 0x1d, 0x45, 0x35, 0xf9],
        [0x87, 0x57, 0x75, 0x19, 0x04, 0x8f, 0x53, 0xa9],
        [0x10, 0xa5, 0x6c, 0xf5, 0xdf, 0xcd, 0x9a, 0xdb],
        [0xeb, 0x75, 0x09, 0x5c, 0xcd, 0x98, 0x6c, 0xd0],
        [0x51, 0xa9, 0xcb, 0x9e, 0xcb, 0xa3, 0x12, 0xe6],
        [0x96, 0xaf, 0xad, 0xfc, 0x2c, 0xe6, 0x66, 0xc7],
        [0x72, 0xfe, 0x52, 0x97, 0x5a, 0x43, 0x64, 0xee],
        [0x5a, 0x16, 0x45, 0xb2, 0x76, 0xd5, 0x92, 0xa1],
        [0xb2, 0x74, 0xcb, 0x8e, 0xbf, 0x87, 0x87, 0x0a],
        [0x6f, 0x9b, 0xb4, 0x20, 0x3d, 0xe7, 0xb3, 0x81],
        [0xea, 0xec, 0xb2, 0xa3, 0x0b, 0x22, 0xa8, 0x7f],
        [0x99, 0x24, 0xa4, 0x3c, 0xc1, 0x31, 0x57, 0x24],
        [0xbd, 0x83, 0x8d, 0x3a, 0xaf, 0xbf, 0x8d, 0xb7],
        [0x0b, 0x1a, 0x2a, 0x32, 0x65, 0xd5, 0x1a, 0xea],
        [0x13, 0x50, 0x79, 0xa3, 0x23, 0x1c, 0xe6, 0x60],
        [0x93, 0x2b, 0x28, 0x46, 0xe4, 0xd7, 0x06, 0x66],
        [0xe1, 0x91, 0x5f, 0x5c, 0xb1, 0xec, 0xa4, 0x6c],
        [0xf3, 0x25, 0x96, 0x5c, 0xa1, 0x6d, 0x62, 0x9f],
        [0x57, 0x5f, 0xf2, 0x8e, 0x60, 0x38, 0x1b, 0xe5],
        [0x72, 0x45, 0x06, 0xeb, 0x4c, 0x32, 0x8a, 0x95],
    ];

    fn reference_key() -> SipKey {
        let mut key = [0u8; 16];
        for (i, b) in key.iter_mut().enumerate() {
            *b = i as u8;
        }
        SipKey::from_bytes(&key)
    }

    #[test]
    fn reference_vectors() {
        let key = reference_key();
        let msg: Vec<u8> = (0u8..64).collect();
        for (n, expected) in REFERENCE.iter().enumerate() {
            assert_eq!(
                siphash24(&key, &msg[..n]).to_le_bytes(),
                *expected,
                "message length {n}"
            );
        }
    }

    #[test]
    fn midstate_matches_reference_vectors() {
        let key = reference_key();
        let msg: Vec<u8> = (0u8..64).collect();
        for (n, expected) in REFERENCE.iter().enumerate().skip(8) {
            let mut first8 = [0u8; 8];
            first8.copy_from_slice(&msg[..8]);
            let h = key.prefix8(first8).finish_with(&msg[8..n]);
            assert_eq!(h.to_le_bytes(), *expected, "message length {n}");
        }
    }

    /// Row-seed vectors of GLB's rendezvous table: `row_seed = siphash(seed, row as BE u32)`
    /// shown as the hash's 8 output bytes (little-endian), i.e. the bytes GLB concatenates
    /// with the backend IP.
    #[test]
    fn spec_row_seed_vectors() {
        let seed = SipKey::from_bytes(&parse_hex_key("49a3d861d661ae5ab06ed9326871a2f5").unwrap());
        for (row, hex) in [
            (0x0000u32, "491c53a72df4c837"),
            (0xffff, "f223c0cc65161620"),
            (0xbb44, "e290f8f430eb33d3"),
        ] {
            let h = siphash24(&seed, &row.to_be_bytes());
            let got: String = h.to_le_bytes().iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(got, hex, "row {row:#06x}");
        }
    }

    #[test]
    fn hex_keys() {
        let k = parse_hex_key("000102030405060708090a0B0c0d0e0F").unwrap();
        assert_eq!(k, core::array::from_fn(|i| i as u8));
        assert_eq!(key_to_hex(&k), "000102030405060708090a0b0c0d0e0f");
        assert_eq!(
            parse_hex_key("0011").unwrap_err(),
            "expected exactly 32 hex digits (16 bytes), got 4 characters"
        );
        assert_eq!(
            parse_hex_key("000102030405060708090a0b0c0d0e0g").unwrap_err(),
            "expected exactly 32 hex digits, found 'g' at position 32"
        );
        // Multi-byte characters are counted as characters, never split.
        assert!(parse_hex_key("ééééééééééééééééééééééééééééééé").is_err());
        assert!(parse_hex_key("éééééééééééééééééééééééééééééééé").is_err());
        assert!(parse_hex_key("+0010203040506070809a0b0c0d0e0f").is_err());
    }

    #[test]
    fn finish_words_matches() {
        let key = reference_key();
        let msg: Vec<u8> = (0u8..24).collect();
        let mut first8 = [0u8; 8];
        first8.copy_from_slice(&msg[..8]);
        let w = |b: &[u8]| {
            let mut a = [0u8; 8];
            a[..b.len()].copy_from_slice(b);
            u64::from_le_bytes(a)
        };
        // 12 bytes: one final word with the length in its top byte.
        let words12 = [w(&msg[8..12]) | (12u64 << 56)];
        assert_eq!(
            key.prefix8(first8).finish_words(&words12),
            siphash24(&key, &msg[..12])
        );
        let words24 = [w(&msg[8..16]), w(&msg[16..24]), 24u64 << 56];
        assert_eq!(
            key.prefix8(first8).finish_words(&words24),
            siphash24(&key, &msg[..24])
        );
    }

    proptest! {
        #[test]
        fn matches_siphasher(key in any::<[u8; 16]>(), msg in proptest::collection::vec(any::<u8>(), 0..100)) {
            let reference = siphasher::sip::SipHasher24::new_with_key(&key).hash(&msg);
            let k = SipKey::from_bytes(&key);
            prop_assert_eq!(siphash24(&k, &msg), reference);
            if msg.len() >= 8 {
                let mut first8 = [0u8; 8];
                first8.copy_from_slice(&msg[..8]);
                prop_assert_eq!(k.prefix8(first8).finish_with(&msg[8..]), reference);
            }
        }

        #[test]
        fn hex_roundtrip(key in any::<[u8; 16]>()) {
            prop_assert_eq!(parse_hex_key(&key_to_hex(&key)).unwrap(), key);
        }
    }
}
