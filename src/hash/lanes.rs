//! SipHash-2-4 of several messages at once, one per lane: the packet hash of a whole burst.
//!
//! A single SipHash is a chain of dependent additions and rotations (about 30 cycles of
//! latency for a 4-byte message), so hashing packet after packet leaves most of the core
//! idle. Here eight messages of the same length move through the rounds in lock step as
//! `[u64; 8]` arrays; compiled for AVX-512 (see [`super::simd`]) every step is one
//! vector instruction (`vpaddq`, `vprolq`, `vpxorq`) for all eight, and without it the
//! eight independent chains still overlap in the out-of-order core.
//!
//! Messages are given as [`HashInput`]s: the key halves and the message as little-endian
//! 64-bit words, zero-padded after the last byte. The result is exactly
//! [`super::siphash24`] of the message bytes (tested against it and the siphasher crate).
//!
//! This module is the portable code and the layouts; [`super::simd`] compiles it for each
//! instruction set and [`super::batch`] is what the rest of the crate calls to hash a burst
//! or a table row (imports run batch -> simd -> lanes).

use super::SipKey;

/// Messages hashed together.
pub const LANES: usize = 8;
/// Words of the longest message: 36 bytes (two IPv6 addresses and two ports) is 4 full
/// words and a partial fifth.
pub const MAX_WORDS: usize = 5;
/// Longest message in bytes (words needed: `len / 8 + 1`, the last one partial).
pub const MAX_LEN: usize = MAX_WORDS * 8 - 1;

/// One message and its key, laid out for the lane hasher. Written field by field by the
/// classifier; `words[..=len / 8]` must hold the message, zero past its last byte.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C, align(64))]
pub struct HashInput {
    pub k0: u64,
    pub k1: u64,
    pub words: [u64; MAX_WORDS],
    /// Message length in bytes, at most [`MAX_LEN`].
    pub len: u8,
}

impl HashInput {
    /// All zero (as `Default`), usable in constants.
    pub const EMPTY: HashInput = HashInput {
        k0: 0,
        k1: 0,
        words: [0; MAX_WORDS],
        len: 0,
    };

    /// The message bytes (for tests and diagnostics).
    pub fn bytes(&self) -> Vec<u8> {
        let mut v: Vec<u8> = self.words.iter().flat_map(|w| w.to_le_bytes()).collect();
        v.truncate(usize::from(self.len));
        v
    }

    /// Builds the message by appending little-endian values of 1 to 8 bytes.
    #[inline(always)]
    pub fn writer(&mut self, key: (u64, u64)) -> InputWriter<'_> {
        self.k0 = key.0;
        self.k1 = key.1;
        InputWriter {
            input: self,
            acc: 0,
            bits: 0,
            word: 0,
        }
    }
}

/// Appends bytes to a [`HashInput`] a value at a time (see [`HashInput::writer`]).
pub struct InputWriter<'a> {
    input: &'a mut HashInput,
    acc: u64,
    bits: u32,
    word: usize,
}

impl InputWriter<'_> {
    /// Append the `n` (1..=8) bytes of `v` in little-endian order: the bytes
    /// `v.to_le_bytes()[..n]` (higher bytes of `v` must be zero).
    #[inline(always)]
    pub fn push(&mut self, v: u64, n: u32) {
        debug_assert!((1..=8).contains(&n) && (n == 8 || v >> (8 * n) == 0));
        if self.word >= MAX_WORDS - 1 && self.bits + 8 * n > 8 * (MAX_LEN as u32 % 8) {
            return; // beyond MAX_LEN: the callers never push that much
        }
        self.acc |= v << self.bits;
        let bits = self.bits + 8 * n;
        if bits >= 64 {
            self.input.words[self.word] = self.acc;
            self.word += 1;
            // The part of `v` that did not fit (nothing when it ended on the boundary).
            self.acc = if self.bits == 0 {
                0
            } else {
                v >> (64 - self.bits)
            };
            self.bits = bits - 64;
        } else {
            self.bits = bits;
        }
    }

    /// Append raw bytes in message order (an address).
    #[inline(always)]
    pub fn push_bytes<const N: usize>(&mut self, b: &[u8; N]) {
        let mut i = 0;
        while i + 8 <= N {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[i..i + 8]);
            self.push(u64::from_le_bytes(w), 8);
            i += 8;
        }
        if i + 4 <= N {
            let mut w = [0u8; 4];
            w.copy_from_slice(&b[i..i + 4]);
            self.push(u64::from(u32::from_le_bytes(w)), 4);
        }
    }

    /// Append a 16-bit value in network byte order (a port).
    #[inline(always)]
    pub fn push_be16(&mut self, v: u16) {
        self.push(u64::from(v.swap_bytes()), 2);
    }

    /// Store the last, partial word and the length.
    #[inline(always)]
    pub fn finish(self) {
        let word = self.word.min(MAX_WORDS - 1);
        self.input.words[word] = self.acc;
        self.input.len = (self.word * 8) as u8 + (self.bits / 8) as u8;
    }
}

#[inline(always)]
fn round<const L: usize>(v: &mut [[u64; L]; 4]) {
    let [v0, v1, v2, v3] = v;
    for l in 0..L {
        v0[l] = v0[l].wrapping_add(v1[l]);
        v1[l] = v1[l].rotate_left(13) ^ v0[l];
        v0[l] = v0[l].rotate_left(32);
        v2[l] = v2[l].wrapping_add(v3[l]);
        v3[l] = v3[l].rotate_left(16) ^ v2[l];
        v0[l] = v0[l].wrapping_add(v3[l]);
        v3[l] = v3[l].rotate_left(21) ^ v0[l];
        v2[l] = v2[l].wrapping_add(v1[l]);
        v1[l] = v1[l].rotate_left(17) ^ v2[l];
        v2[l] = v2[l].rotate_left(32);
    }
}

#[inline(always)]
fn compress<const L: usize>(v: &mut [[u64; L]; 4], m: &[u64; L]) {
    for l in 0..L {
        v[3][l] ^= m[l];
    }
    round(v);
    round(v);
    for l in 0..L {
        v[0][l] ^= m[l];
    }
}

/// The four finalisation rounds and the fold of each lane's state into its hash.
#[inline(always)]
fn finalize<const L: usize>(mut v: [[u64; L]; 4]) -> [u64; L] {
    for x in &mut v[2] {
        *x ^= 0xff;
    }
    round(&mut v);
    round(&mut v);
    round(&mut v);
    round(&mut v);
    let mut out = [0u64; L];
    for l in 0..L {
        out[l] = v[0][l] ^ v[1][l] ^ v[2][l] ^ v[3][l];
    }
    out
}

/// SipHash-2-4 of `L` messages of `len` bytes each (every input's own `len` is ignored):
/// the body of the lane hasher, compiled once per instruction set by [`super::simd`].
#[inline(always)]
pub fn hash_lanes<const L: usize>(inputs: [&HashInput; L], len: usize) -> [u64; L] {
    let k0 = std::array::from_fn(|l| inputs[l].k0);
    let k1 = std::array::from_fn(|l| inputs[l].k1);
    let full = (len / 8).min(MAX_WORDS - 1);
    sip_lanes(&k0, &k1, full, len, |w, l| inputs[l].words[w])
}

/// SipHash-2-4 of `L` messages of `len` bytes, lane `l` keyed by `k0[l]`, `k1[l]`, with
/// word `w` of its message `word(w, l)` (`full` whole words, then the last, zero-padded).
#[inline(always)]
fn sip_lanes<const L: usize>(
    k0: &[u64; L],
    k1: &[u64; L],
    full: usize,
    len: usize,
    word: impl Fn(usize, usize) -> u64,
) -> [u64; L] {
    let mut v = [[0u64; L]; 4];
    for l in 0..L {
        v[0][l] = k0[l] ^ 0x736f_6d65_7073_6575;
        v[1][l] = k1[l] ^ 0x646f_7261_6e64_6f6d;
        v[2][l] = k0[l] ^ 0x6c79_6765_6e65_7261;
        v[3][l] = k1[l] ^ 0x7465_6462_7974_6573;
    }
    let mut m = [0u64; L];
    for w in 0..full {
        for (l, m) in m.iter_mut().enumerate() {
            *m = word(w, l);
        }
        compress(&mut v, &m);
    }
    // Last block: the remaining bytes (already zero-padded) and the length byte on top.
    for (l, m) in m.iter_mut().enumerate() {
        *m = word(full, l) | ((len as u64) << 56);
    }
    compress(&mut v, &m);
    finalize(v)
}

/// Lanes of [`Columns`]: one burst.
pub const COLUMN_LANES: usize = 32;
/// Words of a message in [`Columns`]: at most 15 bytes, which holds every IPv4 field set
/// (up to 12 bytes).
pub const SHORT_WORDS: usize = 2;
/// Longest message in [`Columns`], in bytes.
pub const SHORT_LEN: usize = SHORT_WORDS * 8 - 1;

/// The inputs of up to [`COLUMN_LANES`] hashes of short messages, by columns: lane `l`'s
/// key halves in `k0[l]` and `k1[l]`, word `w` of its message in `words[w][l]`
/// (little-endian, zero past the last byte). A vector loads eight lanes of a column at once,
/// where [`HashInput`]s take eight loads and inserts per column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C, align(64))]
pub struct Columns {
    pub k0: [u64; COLUMN_LANES],
    pub k1: [u64; COLUMN_LANES],
    pub words: [[u64; COLUMN_LANES]; SHORT_WORDS],
}

impl Columns {
    /// All zero, usable in constants.
    pub const EMPTY: Columns = Columns {
        k0: [0; COLUMN_LANES],
        k1: [0; COLUMN_LANES],
        words: [[0; COLUMN_LANES]; SHORT_WORDS],
    };

    /// Lane `lane` (taken modulo [`COLUMN_LANES`]) hashes the message `msg` of `len`
    /// bytes (as a little-endian value; at most [`SHORT_LEN`]), under the key that
    /// [`Columns::set_key`] or [`Columns::fill_key`] gives it. The second word is written
    /// only for messages that have one (`len >= 8`; [`super::batch::hash_columns`] reads
    /// it for those alone).
    #[inline(always)]
    pub fn set(&mut self, lane: usize, msg: u128, len: usize) {
        let lane = lane % COLUMN_LANES;
        self.words[0][lane] = msg as u64;
        if len >= 8 {
            self.words[1][lane] = (msg >> 64) as u64;
        }
    }

    /// Lane `lane` (taken modulo [`COLUMN_LANES`]) hashes under `key`.
    #[inline(always)]
    pub fn set_key(&mut self, lane: usize, key: (u64, u64)) {
        let lane = lane % COLUMN_LANES;
        self.k0[lane] = key.0;
        self.k1[lane] = key.1;
    }

    /// Every lane hashes under `key` (a burst to one table: a few vector stores rather
    /// than a store per lane).
    #[inline(always)]
    pub fn fill_key(&mut self, key: (u64, u64)) {
        self.k0 = [key.0; COLUMN_LANES];
        self.k1 = [key.1; COLUMN_LANES];
    }
}

/// SipHash-2-4 of the eight lanes `8 * group ..` of `cols`, each message `len` bytes (at
/// most [`SHORT_LEN`]): the portable column hasher.
#[inline(always)]
pub fn hash_column_group(cols: &Columns, group: usize, len: usize) -> [u64; LANES] {
    let at = (group * LANES) % COLUMN_LANES;
    let lanes = |c: &[u64; COLUMN_LANES]| -> [u64; LANES] { std::array::from_fn(|l| c[at + l]) };
    let full = (len / 8).min(SHORT_WORDS - 1);
    sip_lanes(&lanes(&cols.k0), &lanes(&cols.k1), full, len, |w, l| {
        cols.words[w][at + l]
    })
}

/// Finish `L` hashes that share the midstate `state` (see [`super::SipKey::prefix8`]):
/// `words[w][l]` is word `w` of the rest of lane `l`'s message, the last word carrying the
/// length byte (as `SipState::finish_words`, its one-lane reference in the tests, takes
/// them). The table builder's form: one row seed, many backends.
#[inline(always)]
pub fn finish_lanes<const L: usize>(state: &super::SipState, words: &[[u64; L]]) -> [u64; L] {
    let s = state.words();
    let mut v = [[s[0]; L], [s[1]; L], [s[2]; L], [s[3]; L]];
    for m in words {
        compress(&mut v, m);
    }
    finalize(v)
}

/// SipHash-2-4 of one input (scalar).
#[inline]
pub fn hash_one(input: &HashInput) -> u64 {
    hash_lanes([input], usize::from(input.len))[0]
}

impl SipKey {
    /// The key as the `(k0, k1)` pair a [`HashInput`] carries.
    #[inline]
    pub fn lanes_key(&self) -> (u64, u64) {
        self.halves()
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// `msg` under `key`, written three bytes at a time.
    pub(in crate::hash) fn input(key: &[u8; 16], msg: &[u8]) -> HashInput {
        let mut h = HashInput::default();
        let k = SipKey::from_bytes(key);
        let mut w = h.writer(k.halves());
        for c in msg.chunks(3) {
            let mut b = [0u8; 8];
            b[..c.len()].copy_from_slice(c);
            w.push(u64::from_le_bytes(b), c.len() as u32);
        }
        w.finish();
        h
    }

    #[test]
    fn writer_lays_out_bytes() {
        let msg: Vec<u8> = (1..=36).collect();
        let h = input(&[7; 16], &msg);
        assert_eq!(h.len, 36);
        assert_eq!(h.bytes(), msg);
        assert_eq!(h.words[4], u64::from(u32::from_le_bytes([33, 34, 35, 36])));
        let mut h = HashInput::default();
        let mut w = h.writer((1, 2));
        w.push_bytes(&[10, 11, 12, 13]);
        w.push_be16(0x1234);
        w.push_be16(80);
        w.finish();
        assert_eq!(h.bytes(), vec![10, 11, 12, 13, 0x12, 0x34, 0, 80]);
        assert_eq!((h.k0, h.k1, h.words[1]), (1, 2, 0));
    }
}
