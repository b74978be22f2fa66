//! The Internet checksum (RFC 1071): ones-complement sums, pseudo-headers, incremental update.
//!
//! A *partial sum* (`u32`) is the ones-complement sum of 16-bit big-endian words, not yet
//! folded to 16 bits nor complemented. Partial sums of even-length segments add up
//! (with [`add`], or as `u64` then [`fold`]); the checksum field is `!fold(total)`.

use core::net::{Ipv4Addr, Ipv6Addr};

/// Folds a 64-bit ones-complement accumulator to 32 bits (same value modulo 0xffff).
#[inline(always)]
fn fold64to32(acc: u64) -> u32 {
    let s = (acc & 0xffff_ffff) + (acc >> 32);
    let s = (s & 0xffff_ffff) + (s >> 32);
    s as u32
}

/// Ones-complement partial sum of `data` as 16-bit big-endian words (odd tail padded with 0).
///
/// The sum is independent of byte order (RFC 1071 section 2(B)): the data is summed as
/// little-endian 64-bit words with end-around carry (the machine's own loads on x86), in
/// two independent accumulators for instruction-level parallelism, and the folded 16-bit
/// result is byte-swapped into the big-endian sum. The result is already folded (at most
/// 0xffff), and is 0 only for all-zero data, exactly like the word-by-word sum.
#[inline(always)]
pub fn sum(data: &[u8]) -> u32 {
    u32::from(fold(sum_le(data)).swap_bytes())
}

/// The ones-complement sum of `data` in the little-endian domain, not folded to 16 bits:
/// `data` as little-endian 64-bit words with end-around carry, reduced below 2^33 so that
/// callers can add many small terms without overflow. Folded to 16 bits it is [`sum`]
/// with its bytes swapped. Callers that finish a checksum themselves add their other terms
/// byte-swapped (a 16-bit `v` as `v.swap_bytes()`, 4 address bytes as
/// `u32::from_le_bytes`), fold once, and store the complement as little-endian bytes,
/// which saves [`sum`]'s fold and swap.
#[inline(always)]
pub fn sum_le(data: &[u8]) -> u64 {
    let mut acc: u128 = 0;
    add_from(&mut acc, data, 0);
    finish_le(acc)
}

/// [`sum_le`] of `data`, with its first `N` bytes (a multiple of 8) summed by
/// straight-line code when it is at least that long: for packets whose headers are known
/// to be there (`N` = the IP and TCP headers), no loop setup for those. The same value as
/// [`sum_le`].
#[inline(always)]
pub fn sum_le_min<const N: usize>(data: &[u8]) -> u64 {
    const { assert!(N.is_multiple_of(8)) };
    let Some(head) = data.first_chunk::<N>() else {
        return sum_le(data);
    };
    let mut acc: u128 = 0;
    for w in head.chunks_exact(8) {
        acc += u128::from(le_word(w));
    }
    if data.len() > N {
        add_from(&mut acc, data, N);
    }
    finish_le(acc)
}

#[inline(always)]
fn le_word(b: &[u8]) -> u64 {
    u64::from_le_bytes(b.try_into().unwrap_or([0; 8]))
}

/// Add `data[from..]` to `acc` as little-endian 64-bit words (the last one zero-padded).
#[inline(always)]
fn add_from(acc: &mut u128, data: &[u8], from: usize) {
    let Some(rest) = data.get(from..) else {
        return;
    };
    // Words add into 128 bits (an add and an add-with-carry each); the carries out of
    // the low half, kept in the high half, are added back at the end.
    let mut pairs = rest.chunks_exact(16);
    for p in &mut pairs {
        *acc += u128::from(le_word(&p[..8]));
        *acc += u128::from(le_word(&p[8..]));
    }
    let tail = pairs.remainder();
    if tail.len() >= 8 {
        *acc += u128::from(le_word(&tail[..8]));
    }
    let n = tail.len() & 7;
    if n != 0 {
        *acc += u128::from(match data.len().checked_sub(8) {
            // The last 8 bytes of `data` end with the `n` bytes of the tail: shifted down,
            // each tail byte sits at its position in the tail's own word (1 <= n <= 7).
            Some(at) => le_word(&data[at..]) >> (8 * (8 - n)),
            None => short_le(&tail[tail.len() - n..]),
        });
    }
}

/// The 128-bit word sum reduced below 2^33 (see [`sum_le`]).
#[inline(always)]
fn finish_le(acc: u128) -> u64 {
    let s = add_carry(acc as u64, (acc >> 64) as u64);
    (s & 0xffff_ffff) + (s >> 32)
}

/// The little-endian word of fewer than 8 bytes (zero-padded), read with fixed-size loads.
#[inline(always)]
fn short_le(tail: &[u8]) -> u64 {
    let (n, mut i, mut t) = (tail.len(), 0, 0u64);
    if n & 4 != 0 {
        t = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
        i = 4;
    }
    if n & 2 != 0 {
        t |= u64::from(u16::from_le_bytes([tail[i], tail[i + 1]])) << (8 * i);
        i += 2;
    }
    if n & 1 != 0 {
        t |= u64::from(tail[i]) << (8 * i);
    }
    t
}

/// `a + b` with the carry out added back in (ones-complement addition of 64-bit words).
#[inline(always)]
fn add_carry(a: u64, b: u64) -> u64 {
    let (s, c) = a.overflowing_add(b);
    s + u64::from(c)
}

/// Reference partial sum: 16-bit big-endian words one by one (for tests).
#[cfg(test)]
fn sum_reference(data: &[u8]) -> u32 {
    let mut acc: u64 = 0;
    for c in data.chunks(2) {
        acc += u64::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    fold(acc) as u32
}

/// Folds a partial sum (`u16`, `u32` or `u64`) to 16 bits with end-around carry.
///
/// Not complemented: the checksum field is `!fold(..)`.
#[inline]
pub fn fold(sum: impl Into<u64>) -> u16 {
    // Branch-free: each step keeps the value modulo 0xffff and is the identity once it is
    // at most 0xffff. The two 32-bit halves add with end-around carry into a u32 (the
    // carry cannot overflow it: with a carry out the sum is at most 2^32 - 2); two 16-bit
    // steps then bring any u32 to at most 0xffff (the first leaves at most 0x1fffe).
    let s: u64 = sum.into();
    let (lo, carry) = (s as u32).overflowing_add((s >> 32) as u32);
    let s = lo + u32::from(carry);
    let s = (s & 0xffff) + (s >> 16);
    let s = (s & 0xffff) + (s >> 16);
    s as u16
}

/// Ones-complement addition of two folded sums (each at most 0xffff): the same as
/// [`fold`] of `a + b`, in one step.
#[inline(always)]
pub fn add16(a: u16, b: u16) -> u16 {
    let s = u32::from(a) + u32::from(b); // at most 0x1fffe
    ((s & 0xffff) + (s >> 16)) as u16 // at most 0xffff
}

/// Ones-complement addition of two partial sums.
#[inline]
pub fn add(a: u32, b: u32) -> u32 {
    fold64to32(a as u64 + b as u64)
}

/// The checksum of `data` alone: `!fold(sum(data))`. Zero when `data` holds a valid checksum.
#[inline]
pub fn data(data: &[u8]) -> u16 {
    !fold(sum(data))
}

/// Combines partial sums into the final checksum field value: `!fold(Σ sums)`.
#[inline]
pub fn combine(sums: &[u32]) -> u16 {
    let mut acc: u64 = 0;
    for &s in sums {
        acc += s as u64;
    }
    !fold(acc)
}

/// Partial sum of the IPv4 pseudo-header (RFC 768 / RFC 793). `len` is the L4 length.
#[inline]
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: u32) -> u32 {
    let s = u32::from(src);
    let d = u32::from(dst);
    (s >> 16)
        + (s & 0xffff)
        + (d >> 16)
        + (d & 0xffff)
        + proto as u32
        + (len >> 16)
        + (len & 0xffff)
}

/// Partial sum of the IPv6 pseudo-header (RFC 8200 section 8.1). `len` is the L4 length.
#[inline]
pub fn pseudo_header_v6(src: &Ipv6Addr, dst: &Ipv6Addr, proto: u8, len: u32) -> u32 {
    let mut acc: u32 = proto as u32 + (len >> 16) + (len & 0xffff);
    for w in src.segments() {
        acc += w as u32;
    }
    for w in dst.segments() {
        acc += w as u32;
    }
    acc
}

/// Incrementally updates checksum field `check` when a 16-bit word changes from `old` to
/// `new` (RFC 1624 eqn. 3).
#[inline]
pub fn update16(check: u16, old: u16, new: u16) -> u16 {
    let s = (!check) as u32 + (!old) as u32 + new as u32;
    !fold(s)
}

/// Incrementally updates checksum field `check` when an aligned 32-bit field (e.g. an IPv4
/// address) changes from `old` to `new`.
#[inline]
pub fn update32(check: u16, old: u32, new: u32) -> u16 {
    let s =
        (!check) as u32 + (!(old >> 16) & 0xffff) + (!old & 0xffff) + (new >> 16) + (new & 0xffff);
    !fold(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straightforward 16-bit reference implementation.
    fn naive(data: &[u8]) -> u16 {
        let mut s: u64 = 0;
        let mut i = 0;
        while i + 1 < data.len() {
            s += u16::from_be_bytes([data[i], data[i + 1]]) as u64;
            i += 2;
        }
        if i < data.len() {
            s += (data[i] as u64) << 8;
        }
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        s as u16
    }

    #[test]
    fn fold_matches_repeated_folding() {
        let looped = |mut s: u64| {
            while s > 0xffff {
                s = (s & 0xffff) + (s >> 16);
            }
            s as u16
        };
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for v in [
            0,
            1,
            0xffff,
            0x1_0000,
            0x1_fffe,
            0xffff_ffff,
            u64::MAX,
            u64::MAX - 1,
            0xffff_ffff_0000_0001,
            0x0000_0001_ffff_ffff,
            0x8000_0000_8000_0000,
            0x0001_fffe_0001_fffe,
        ] {
            assert_eq!(fold(v), looped(v), "{v:#x}");
        }
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            for v in [x, x >> 20, x >> 40] {
                assert_eq!(fold(v), looped(v), "{v:#x}");
            }
        }
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to 0xddf2.
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&d)), 0xddf2);
        assert_eq!(data(&d), 0x220d);
    }

    #[test]
    fn odd_length_pads_low_byte() {
        assert_eq!(fold(sum(&[0x01])), 0x0100);
        assert_eq!(fold(sum(&[0x12, 0x34, 0x56])), 0x1234 + 0x5600);
        assert_eq!(sum(&[]), 0);
        assert_eq!(data(&[]), 0xffff);
    }

    #[test]
    fn known_ipv4_header() {
        // Classic example header (192.168.0.1 -> 192.168.0.199, UDP), checksum 0xb861.
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(data(&h), 0);
        h[10] = 0;
        h[11] = 0;
        assert_eq!(data(&h), 0xb861);
    }

    #[test]
    fn captured_tcp_syn_pseudo_header() {
        // GLB's 1k_pkts.pcap: 10.11.12.13:45678 -> 1.1.1.1:80 SYN, TCP checksum 0xc50a.
        let tcp = [
            0xb2, 0x6e, 0x00, 0x50, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, 0x02, 0x20, 0x00, 0xc5, 0x0a,
            0x00, 0x00,
        ];
        let ph = pseudo_header_v4(
            Ipv4Addr::new(10, 11, 12, 13),
            Ipv4Addr::new(1, 1, 1, 1),
            6,
            20,
        );
        assert_eq!(combine(&[ph, sum(&tcp)]), 0);
        let mut z = tcp;
        z[16] = 0;
        z[17] = 0;
        assert_eq!(combine(&[ph, sum(&z)]), 0xc50a);
        assert_eq!(!fold(add(ph, sum(&z))), 0xc50a);
    }

    #[test]
    fn pseudo_header_v6_matches_bytes() {
        let s: Ipv6Addr = "fdb4:98ce:52d4::42".parse().unwrap();
        let d: Ipv6Addr = "2001:db8::ffff:1".parse().unwrap();
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&s.octets());
        bytes.extend_from_slice(&d.octets());
        bytes.extend_from_slice(&70000u32.to_be_bytes());
        bytes.extend_from_slice(&[0, 0, 0, 17]);
        assert_eq!(fold(pseudo_header_v6(&s, &d, 17, 70000)), naive(&bytes));
    }

    #[test]
    fn fast_sum_matches_naive() {
        let buf: Vec<u8> = (0..300u32).map(|i| (i * 151 + 7) as u8 | 0x80).collect();
        for start in 0..4 {
            for end in start..buf.len() {
                assert_eq!(fold(sum(&buf[start..end])), naive(&buf[start..end]));
            }
        }
        // All ones: every word add carries out.
        let ff = [0xffu8; 300];
        for n in 1..ff.len() {
            assert_eq!(fold(sum(&ff[..n])), naive(&ff[..n]), "{n} bytes of 0xff");
            assert!(sum_le(&ff[..n]) < 1 << 33, "room for the caller's terms");
        }
    }

    #[test]
    fn sum_le_is_the_byte_swapped_sum() {
        let buf: Vec<u8> = (0..200u32).map(|i| (i * 37 + 11) as u8).collect();
        for start in 0..3 {
            for end in start..buf.len() {
                let d = &buf[start..end];
                assert_eq!(fold(sum_le(d)).swap_bytes(), naive(d), "{start}..{end}");
            }
        }
        // Terms added the documented way give the big-endian sum with them.
        let (d, v, a) = (&buf[..40], 0x1234u16, [10u8, 0, 0, 7]);
        let le = sum_le(d) + u64::from(v.swap_bytes()) + u64::from(u32::from_le_bytes(a));
        let be = u64::from(naive(d)) + u64::from(v) + u64::from(u32::from_be_bytes(a));
        assert_eq!(fold(le).swap_bytes(), fold(be));
    }

    #[test]
    fn add16_is_fold_of_the_sum() {
        for a in (0..=0xffffu32).step_by(257).chain([0xfffe, 0xffff]) {
            for b in (0..=0xffffu32).step_by(251).chain([0, 1, 0xfffe, 0xffff]) {
                assert_eq!(add16(a as u16, b as u16), fold(a + b), "{a:#x} + {b:#x}");
            }
        }
    }

    #[test]
    fn sum_le_min_equals_sum_le() {
        let buf: Vec<u8> = (0..120u32).map(|i| (i * 89 + 3) as u8 | 0x40).collect();
        let ff = [0xffu8; 120];
        for d in [&buf[..], &ff[..]] {
            for n in 0..d.len() {
                let d = &d[..n];
                assert_eq!(sum_le_min::<40>(d), sum_le(d), "{n} bytes, head 40");
                assert_eq!(sum_le_min::<24>(d), sum_le(d), "{n} bytes, head 24");
                assert_eq!(sum_le_min::<0>(d), sum_le(d), "{n} bytes, no head");
            }
        }
    }

    #[test]
    fn incremental_update_matches_recompute() {
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        // TTL 64 -> 63 (word at offset 8).
        let old = u16::from_be_bytes([h[8], h[9]]);
        h[8] = 63;
        let new = u16::from_be_bytes([h[8], h[9]]);
        let c = update16(0xb861, old, new);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(data(&h), 0);
        // Destination address change.
        let old = u32::from_be_bytes([h[16], h[17], h[18], h[19]]);
        let new = u32::from(Ipv4Addr::new(10, 0, 0, 2));
        h[16..20].copy_from_slice(&new.to_be_bytes());
        let c = update32(c, old, new);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(data(&h), 0);
    }

    #[test]
    fn sum_equals_the_16_bit_word_sum() {
        let mut x = 0x9e37_79b9u32;
        for len in 0..300usize {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            assert_eq!(fold(sum(&data)), fold(sum_reference(&data)), "len {len}");
            let ones = vec![0xffu8; len];
            assert_eq!(
                fold(sum(&ones)),
                fold(sum_reference(&ones)),
                "all ones, len {len}"
            );
        }
    }
}
