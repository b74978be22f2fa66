//! Batch hashing: what the rest of the crate calls to hash many messages at once (the
//! pipeline's bursts, the table builder's rows). Each entry point picks the instruction set
//! at run time through [`super::simd`], which runs the lock-step code of [`super::lanes`]
//! without AVX-512.

use super::lanes::{hash_one, Columns, HashInput, COLUMN_LANES, LANES, SHORT_LEN};
use super::simd;

pub use super::simd::finish_groups;

/// Hash lane `i` of `cols` into `out[i]` for every bit `i` of `mask`, each message `len`
/// bytes (at most [`SHORT_LEN`]); the other entries of `out` are left alone. The burst's
/// short messages of one length (the express lane's), all lanes through the rounds
/// together: with AVX-512, four groups of eight interleaved.
#[inline]
pub fn hash_columns(cols: &Columns, len: usize, mask: u32, out: &mut [u64; COLUMN_LANES]) {
    debug_assert!(len <= SHORT_LEN);
    simd::hash_columns(cols, len.min(SHORT_LEN), mask, out);
}

/// Hash `inputs[i]` into `out[i]` for every `i` with `want[i]`, eight at a time where eight
/// neighbours share a length (the usual case: one address family and one field set), one
/// by one otherwise. Lanes not wanted may be hashed too (their result is written but
/// means nothing), so their inputs must merely be initialised.
#[inline]
pub fn hash_many(inputs: &[HashInput], want: &[bool], out: &mut [u64]) {
    let n = inputs.len().min(want.len()).min(out.len());
    let mut g = 0;
    while g < n {
        let end = (g + LANES).min(n);
        let mut len = None;
        let mut uniform = end - g == LANES;
        for i in g..end {
            if want[i] {
                match len {
                    None => len = Some(inputs[i].len),
                    Some(l) => uniform &= l == inputs[i].len,
                }
            }
        }
        match len {
            None => {}
            Some(l) if uniform => {
                let group: &[HashInput; LANES] = match inputs[g..end].try_into() {
                    Ok(a) => a,
                    Err(_) => unreachable_group(),
                };
                let h = simd::hash8(group, usize::from(l));
                out[g..end].copy_from_slice(&h);
            }
            Some(_) => {
                for i in g..end {
                    if want[i] {
                        out[i] = hash_one(&inputs[i]);
                    }
                }
            }
        }
        g = end;
    }
}

#[cold]
fn unreachable_group() -> ! {
    // `end - g == LANES` was checked just before.
    unreachable!("a group of LANES inputs")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::lanes::tests::input;
    use crate::hash::lanes::{finish_lanes, MAX_LEN};
    use crate::hash::{siphash24, SipKey};
    use proptest::prelude::*;

    #[test]
    fn eight_lanes_equal_one_by_one() {
        let key = *b"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f";
        for len in 0..=MAX_LEN {
            let inputs: Vec<HashInput> = (0..LANES)
                .map(|l| {
                    let msg: Vec<u8> = (0..len).map(|i| (i * 31 + l * 7) as u8).collect();
                    let mut k = key;
                    k[0] ^= l as u8;
                    input(&k, &msg)
                })
                .collect();
            let mut out = [0u64; LANES];
            hash_many(&inputs, &[true; LANES], &mut out);
            for (l, h) in inputs.iter().enumerate() {
                let mut k = key;
                k[0] ^= l as u8;
                assert_eq!(
                    out[l],
                    siphash24(&SipKey::from_bytes(&k), &h.bytes()),
                    "len {len}"
                );
                assert_eq!(out[l], hash_one(h));
            }
            // Both instruction sets (the vector one where the CPU has it).
            let group: &[HashInput; LANES] = inputs[..].try_into().unwrap();
            assert_eq!(simd::hash8_portable(group, len), out);
            assert_eq!(simd::hash8(group, len), out);
        }
    }

    #[test]
    fn columns_equal_one_by_one_under_the_mask() {
        let mut cols = Columns::EMPTY;
        let mut inputs = Vec::new();
        for len in 0..=SHORT_LEN {
            for l in 0..COLUMN_LANES {
                let mut key = [0u8; 16];
                key[0] = l as u8;
                key[15] = len as u8;
                let msg: Vec<u8> = (0..len).map(|i| (i * 13 + l * 5 + 1) as u8).collect();
                let h = input(&key, &msg);
                let mut bytes = [0u8; 16];
                bytes[..len].copy_from_slice(&msg);
                cols.set(l, u128::from_le_bytes(bytes), len);
                cols.set_key(l, (h.k0, h.k1));
                inputs.push(h);
            }
            let inputs = &inputs[len * COLUMN_LANES..];
            for mask in [0u32, 1, 0x8000_0001, 0x00ff_ff00, 0x5555_5555, u32::MAX] {
                let before: [u64; COLUMN_LANES] = std::array::from_fn(|l| l as u64 + 7);
                let mut fast = before;
                let mut portable = before;
                hash_columns(&cols, len, mask, &mut fast);
                simd::hash_columns_portable(&cols, len, mask, &mut portable);
                for l in 0..COLUMN_LANES {
                    let want = if mask >> l & 1 != 0 {
                        hash_one(&inputs[l])
                    } else {
                        before[l]
                    };
                    assert_eq!(fast[l], want, "len {len} mask {mask:#x} lane {l}");
                    assert_eq!(portable[l], want, "len {len} mask {mask:#x} lane {l}");
                }
            }
        }
    }

    #[test]
    fn fill_key_keys_every_lane_and_set_key_one() {
        let (one, other) = ([9u8; 16], [4u8; 16]);
        let len = 4;
        let msg = |l: usize| [l as u8, 1, 2, 3];
        let mut cols = Columns::EMPTY;
        for l in 0..COLUMN_LANES {
            cols.set(l, u128::from(u32::from_le_bytes(msg(l))), len);
            // Keys left over from an earlier burst: all replaced.
            cols.set_key(l, (l as u64, !(l as u64)));
        }
        let k = input(&one, &[]);
        cols.fill_key((k.k0, k.k1));
        let o = input(&other, &[]);
        cols.set_key(5, (o.k0, o.k1));
        let mut out = [0u64; COLUMN_LANES];
        hash_columns(&cols, len, u32::MAX, &mut out);
        for (l, &h) in out.iter().enumerate() {
            let key = if l == 5 { &other } else { &one };
            assert_eq!(h, hash_one(&input(key, &msg(l))), "lane {l}");
        }
    }

    #[test]
    fn mixed_lengths_and_unwanted_lanes() {
        let key = [3u8; 16];
        let inputs: Vec<HashInput> = (0..19)
            .map(|i| input(&key, &vec![i as u8; 4 + (i % 3) * 8]))
            .collect();
        let want: Vec<bool> = (0..19).map(|i| i % 5 != 0).collect();
        let mut out = vec![0u64; 19];
        hash_many(&inputs, &want, &mut out);
        for i in 0..19 {
            if want[i] {
                let h = siphash24(&SipKey::from_bytes(&key), &inputs[i].bytes());
                assert_eq!(out[i], h, "lane {i}");
            } else {
                assert_eq!(out[i], 0, "lane {i} not wanted and in a mixed group");
            }
        }
    }

    #[test]
    fn finish_lanes_equals_finish_words() {
        let key = SipKey::from_bytes(&[9; 16]);
        let state = key.prefix8(*b"rowseed!");
        let words: Vec<[u64; LANES]> = (0..3u64)
            .map(|w| std::array::from_fn(|l| (w + 1) * 0x0101_0101 * (l as u64 + 3)))
            .collect();
        for n in 1..=3 {
            let mut out = [[0u64; LANES]];
            simd::finish_groups(&state, n, &words[..n], &mut out);
            let lanes = out[0];
            for (l, &h) in lanes.iter().enumerate() {
                let mine: Vec<u64> = words[..n].iter().map(|w| w[l]).collect();
                assert_eq!(h, state.finish_words(&mine), "{n} words, lane {l}");
            }
            assert_eq!(finish_lanes(&state, &words[..n]), lanes);
        }
        // Many groups (two at a time with AVX-512, and an odd one left over).
        for nwords in 1..=3 {
            for groups in 1..=5 {
                let cols: Vec<[u64; LANES]> = (0..groups * nwords)
                    .map(|c| std::array::from_fn(|l| ((c as u64 + 7) * 0x9e37_79b9) ^ l as u64))
                    .collect();
                let mut out = vec![[0u64; LANES]; groups];
                simd::finish_groups(&state, nwords, &cols, &mut out);
                for (g, o) in out.iter().enumerate() {
                    let words = &cols[g * nwords..(g + 1) * nwords];
                    assert_eq!(*o, finish_lanes(&state, words), "{nwords} words, group {g}");
                }
            }
        }
    }

    proptest! {
        #[test]
        fn matches_siphasher(
            key in any::<[u8; 16]>(),
            msgs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 12), 8),
        ) {
            let inputs: Vec<HashInput> = msgs.iter().map(|m| input(&key, m)).collect();
            let mut out = [0u64; 8];
            hash_many(&inputs, &[true; 8], &mut out);
            for (m, h) in msgs.iter().zip(out) {
                let r = siphasher::sip::SipHasher24::new_with_key(&key).hash(m);
                prop_assert_eq!(h, r);
            }
        }
    }
}
