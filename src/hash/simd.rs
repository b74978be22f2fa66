//! Instruction-set dispatch for the lane hasher ([`super::lanes`]): eight SipHash-2-4
//! computations in the eight 64-bit lanes of AVX-512 registers (`vpaddq`, `vprolq`,
//! `vpxorq`: one instruction per step for all eight) when the CPU has AVX-512F, the portable
//! lock-step code of [`super::lanes`] otherwise. The check is `is_x86_feature_detected!`
//! at run time (a cached flag after the first call), so one binary runs on either CPU.
//! The rest of the crate calls these through [`super::batch`].
//!
//! Like the driver modules, this is where `unsafe` may live (the AVX-512 intrinsics), each
//! block with its `// SAFETY:` reasoning.
#![allow(unsafe_code)]

use super::lanes::{
    finish_lanes, hash_column_group, hash_lanes, Columns, HashInput, COLUMN_LANES, LANES, MAX_WORDS,
};
use super::SipState;

/// SipHash-2-4 of the eight inputs, each taken as `len` bytes long.
#[inline]
pub fn hash8(inputs: &[HashInput; LANES], len: usize) -> [u64; LANES] {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: `avx512::hash8` only needs AVX-512F, which the CPU was just found to have.
        return unsafe { avx512::hash8(inputs, len) };
    }
    hash8_portable(inputs, len)
}

/// Hash lane `i` of `cols` into `out[i]` for every bit `i` of `mask`, each message `len`
/// bytes (at most 15; see [`super::batch::hash_columns`]).
#[inline]
pub fn hash_columns(cols: &Columns, len: usize, mask: u32, out: &mut [u64; COLUMN_LANES]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: `avx512::hash_columns` only needs AVX-512F, which the CPU was just found
        // to have.
        return unsafe { avx512::hash_columns(cols, len, mask, out) };
    }
    hash_columns_portable(cols, len, mask, out);
}

/// The portable column hasher (what [`hash_columns`] runs without AVX-512), for tests.
#[inline]
pub fn hash_columns_portable(cols: &Columns, len: usize, mask: u32, out: &mut [u64; COLUMN_LANES]) {
    for (g, out) in out.chunks_exact_mut(LANES).enumerate() {
        let bits = mask >> (g * LANES) & 0xff;
        if bits == 0 {
            continue;
        }
        let h = hash_column_group(cols, g, len);
        for (l, (o, h)) in out.iter_mut().zip(h).enumerate() {
            if bits >> l & 1 != 0 {
                *o = h;
            }
        }
    }
}

/// Finish eight hashes per group from the common midstate `state` (the table builder: one
/// row seed, many backends; see [`super::lanes::finish_lanes`]): `cols` holds
/// `out.len()` groups of `nwords` columns each (group `g`'s word `w` for its eight lanes at
/// `cols[g * nwords + w]`), `out[g]` gets group `g`'s eight hashes. With AVX-512 two
/// groups go through the rounds interleaved, so that their independent dependency chains
/// overlap.
#[inline]
pub fn finish_groups(
    state: &SipState,
    nwords: usize,
    cols: &[[u64; LANES]],
    out: &mut [[u64; LANES]],
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: `avx512::finish_groups` only needs AVX-512F, which the CPU was just found
        // to have.
        return unsafe { avx512::finish_groups(state.words(), nwords, cols, out) };
    }
    for (g, o) in out.iter_mut().enumerate() {
        if let Some(words) = cols.get(g * nwords..(g + 1) * nwords) {
            *o = finish_lanes(state, words);
        }
    }
}

/// The portable lane hasher (what [`hash8`] runs without AVX-512), for tests.
#[inline]
pub fn hash8_portable(inputs: &[HashInput; LANES], len: usize) -> [u64; LANES] {
    let lanes = [
        &inputs[0], &inputs[1], &inputs[2], &inputs[3], &inputs[4], &inputs[5], &inputs[6],
        &inputs[7],
    ];
    hash_lanes(lanes, len)
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{Columns, HashInput, COLUMN_LANES, LANES, MAX_WORDS};

    /// One field of the eight inputs as a vector (lane `l` = input `l`).
    macro_rules! column {
        ($inputs:expr, $($field:tt)+) => {
            _mm512_set_epi64(
                $inputs[7].$($field)+ as i64,
                $inputs[6].$($field)+ as i64,
                $inputs[5].$($field)+ as i64,
                $inputs[4].$($field)+ as i64,
                $inputs[3].$($field)+ as i64,
                $inputs[2].$($field)+ as i64,
                $inputs[1].$($field)+ as i64,
                $inputs[0].$($field)+ as i64,
            )
        };
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn round(v: &mut [__m512i; 4]) {
        v[0] = _mm512_add_epi64(v[0], v[1]);
        v[1] = _mm512_xor_si512(_mm512_rol_epi64::<13>(v[1]), v[0]);
        v[0] = _mm512_rol_epi64::<32>(v[0]);
        v[2] = _mm512_add_epi64(v[2], v[3]);
        v[3] = _mm512_xor_si512(_mm512_rol_epi64::<16>(v[3]), v[2]);
        v[0] = _mm512_add_epi64(v[0], v[3]);
        v[3] = _mm512_xor_si512(_mm512_rol_epi64::<21>(v[3]), v[0]);
        v[2] = _mm512_add_epi64(v[2], v[1]);
        v[1] = _mm512_xor_si512(_mm512_rol_epi64::<17>(v[1]), v[2]);
        v[2] = _mm512_rol_epi64::<32>(v[2]);
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn compress(v: &mut [__m512i; 4], m: __m512i) {
        v[3] = _mm512_xor_si512(v[3], m);
        round(v);
        round(v);
        v[0] = _mm512_xor_si512(v[0], m);
    }

    /// Same result as `finish_lanes` on each group; two groups at a time.
    #[target_feature(enable = "avx512f")]
    pub fn finish_groups(
        state: [u64; 4],
        nwords: usize,
        cols: &[[u64; LANES]],
        out: &mut [[u64; LANES]],
    ) {
        let b = |x: u64| _mm512_set1_epi64(x as i64);
        let init = [b(state[0]), b(state[1]), b(state[2]), b(state[3])];
        let mut g = 0;
        while g < out.len() {
            let Some(a) = cols.get(g * nwords..(g + 1) * nwords) else {
                return;
            };
            match cols.get((g + 1) * nwords..(g + 2) * nwords) {
                Some(c) if g + 1 < out.len() => {
                    // Two independent states, step by step: their dependency chains overlap.
                    let (mut v, mut u) = (init, init);
                    for (wa, wc) in a.iter().zip(c) {
                        compress(&mut v, column(wa));
                        compress(&mut u, column(wc));
                    }
                    out[g] = finalize(v);
                    out[g + 1] = finalize(u);
                    g += 2;
                }
                _ => {
                    let mut v = init;
                    for w in a {
                        compress(&mut v, column(w));
                    }
                    out[g] = finalize(v);
                    g += 1;
                }
            }
        }
    }

    /// One word of eight lanes as a vector.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn column(w: &[u64; LANES]) -> __m512i {
        _mm512_set_epi64(
            w[7] as i64,
            w[6] as i64,
            w[5] as i64,
            w[4] as i64,
            w[3] as i64,
            w[2] as i64,
            w[1] as i64,
            w[0] as i64,
        )
    }

    /// The four finalisation rounds and the fold of the state into the eight hashes.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn finalize(mut v: [__m512i; 4]) -> [u64; LANES] {
        v[2] = _mm512_xor_si512(v[2], _mm512_set1_epi64(0xff));
        round(&mut v);
        round(&mut v);
        round(&mut v);
        round(&mut v);
        let h = _mm512_xor_si512(_mm512_xor_si512(v[0], v[1]), _mm512_xor_si512(v[2], v[3]));
        let mut out = [0u64; LANES];
        // SAFETY: `out` is 64 writable bytes, exactly one unaligned 512-bit store.
        unsafe { _mm512_storeu_si512(out.as_mut_ptr().cast(), h) };
        out
    }

    /// Same result as `hash_lanes(inputs, len)`, eight lanes per instruction.
    #[target_feature(enable = "avx512f")]
    pub fn hash8(inputs: &[HashInput; LANES], len: usize) -> [u64; LANES] {
        let k0 = column!(inputs, k0);
        let k1 = column!(inputs, k1);
        let c = |x: u64| _mm512_set1_epi64(x as i64);
        let mut v = [
            _mm512_xor_si512(k0, c(0x736f_6d65_7073_6575)),
            _mm512_xor_si512(k1, c(0x646f_7261_6e64_6f6d)),
            _mm512_xor_si512(k0, c(0x6c79_6765_6e65_7261)),
            _mm512_xor_si512(k1, c(0x7465_6462_7974_6573)),
        ];
        let full = (len / 8).min(MAX_WORDS - 1);
        for w in 0..full {
            compress(&mut v, column!(inputs, words[w]));
        }
        let last = _mm512_or_si512(column!(inputs, words[full]), c((len as u64) << 56));
        compress(&mut v, last);
        finalize(v)
    }

    /// Groups of eight lanes in [`Columns`].
    const GROUPS: usize = COLUMN_LANES / LANES;

    /// Same result as the portable column hasher: all four groups of eight lanes through
    /// the rounds together (their dependency chains overlap), each group's hashes stored
    /// under its byte of `mask`.
    #[target_feature(enable = "avx512f")]
    pub fn hash_columns(cols: &Columns, len: usize, mask: u32, out: &mut [u64; COLUMN_LANES]) {
        let c = |x: u64| _mm512_set1_epi64(x as i64);
        // SAFETY: group g's lanes are elements 8g..8g+8 of a 32-element column, 64
        // readable bytes (g < GROUPS).
        let load = |col: &[u64; COLUMN_LANES], g: usize| unsafe {
            _mm512_loadu_si512(col.as_ptr().add(g * LANES).cast())
        };
        let mut v: [[__m512i; 4]; GROUPS] = std::array::from_fn(|g| {
            let (k0, k1) = (load(&cols.k0, g), load(&cols.k1, g));
            [
                _mm512_xor_si512(k0, c(0x736f_6d65_7073_6575)),
                _mm512_xor_si512(k1, c(0x646f_7261_6e64_6f6d)),
                _mm512_xor_si512(k0, c(0x6c79_6765_6e65_7261)),
                _mm512_xor_si512(k1, c(0x7465_6462_7974_6573)),
            ]
        });
        let full = (len / 8).min(cols.words.len() - 1);
        if full == 1 {
            for (g, v) in v.iter_mut().enumerate() {
                compress(v, load(&cols.words[0], g));
            }
        }
        let tail = c((len as u64) << 56);
        for (g, v) in v.iter_mut().enumerate() {
            compress(v, _mm512_or_si512(load(&cols.words[full], g), tail));
        }
        for v in &mut v {
            v[2] = _mm512_xor_si512(v[2], c(0xff));
        }
        for _ in 0..4 {
            for v in &mut v {
                round(v);
            }
        }
        for (g, v) in v.iter().enumerate() {
            let h = _mm512_xor_si512(_mm512_xor_si512(v[0], v[1]), _mm512_xor_si512(v[2], v[3]));
            let k = (mask >> (g * LANES)) as u8;
            // SAFETY: lanes 8g..8g+8 of `out` are 64 writable bytes (g < GROUPS); the
            // store writes only the lanes of `k`.
            unsafe { _mm512_mask_storeu_epi64(out.as_mut_ptr().add(g * LANES).cast(), k, h) };
        }
    }
}
