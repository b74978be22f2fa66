//! The four-pass encryption of draft-21 section 5.4.2: a four-round Feistel network whose
//! round function is AES-128-ECB, for server ID + nonce lengths other than 16.
//!
//! The plaintext (server ID then nonce, `n` = 5..=19 bytes, not 16) splits into halves
//! `left` and `right` of `half_len = ceil(n / 2)` bytes. When `n` is odd the middle byte's
//! high nibble goes left, its low nibble right: `left` clears its last four bits, `right`
//! its first four (`0x7040b81b55ccf3` -> `0x7040b810`, `0x0b55ccf3`). Then, for passes
//! 1..=4,
//!
//! ```text
//! pass 1: right_1 = right_0 ^ truncate(AES(expand(n, 1, left_0)),  half_len)
//! pass 2: left_1  = left_0  ^ truncate(AES(expand(n, 2, right_1)), half_len)
//! pass 3: right_2 = right_1 ^ truncate(AES(expand(n, 3, left_1)),  half_len)
//! pass 4: left_2  = left_1  ^ truncate(AES(expand(n, 4, right_2)), half_len)
//! ```
//!
//! re-clearing the same nibble after each pass when `n` is odd; the ciphertext is
//! `left_2 || right_2` with the two cleared nibbles squeezed out. `expand(n, pass, half)`
//! is the 16-byte AES input `half || zeros || n || pass` (`expand(6, 2, aaba3c)` =
//! `aaba3c00000000000000000000000602`).
//!
//! Decryption runs the same passes backwards (4, 3, 2, 1): XOR undoes itself. The load
//! balancer needs only the server ID, so it stops after pass 2 when the server ID fits in
//! `left_0` (server ID no longer than the nonce), and runs pass 1 only otherwise.
//!
//! The draft's decryption pseudocode (section 5.5.2) clears `left_1` again after computing
//! `right_1`; that is a slip for `right_1` (the step mirrors encryption's step 9), and
//! clearing `right_1` is what makes the draft's own vectors decode.

use aes::cipher::BlockCipherEncrypt;
use aes::Aes128;

/// Longest half: `ceil(19 / 2)`.
pub const MAX_HALF_LEN: usize = 10;

/// The 16-byte AES input of one pass: `half || zero padding || length || pass`.
///
/// `half` is `ceil(length / 2)` bytes (3..=10); `length` is the server ID and nonce
/// length (5..=19).
#[inline]
pub fn expand(length: usize, pass: u8, half: &[u8]) -> [u8; 16] {
    let mut block = [0u8; 16];
    let n = half.len().min(14);
    block[..n].copy_from_slice(&half[..n]);
    // length <= 19 for every caller; the narrowing is exact.
    block[14] = length as u8;
    block[15] = pass;
    block
}

/// What one pass computed, for tracing (`encrypt_traced`): the draft's "Encryption
/// Example" lists exactly these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// 1..=4.
    pub number: u8,
    /// `expand(n, number, half)`.
    pub aes_input: [u8; 16],
    /// `AES_ECB(key, aes_input)`.
    pub aes_output: [u8; 16],
    /// The half the pass wrote (`right_1`, `left_1`, `right_2`, `left_2`), nibble cleared;
    /// its first `half_len` bytes.
    pub result: [u8; MAX_HALF_LEN],
}

/// The two halves of a plaintext or ciphertext.
#[derive(Clone, Copy)]
pub struct Halves {
    /// `left_i`, its first `half_len` bytes.
    pub left: [u8; MAX_HALF_LEN],
    /// `right_i`, its first `half_len` bytes.
    pub right: [u8; MAX_HALF_LEN],
    len: usize,
    half: usize,
}

impl Halves {
    /// Split `bytes` (5..=19 of them) into `left_0` and `right_0` (step 2).
    #[inline]
    pub fn split(bytes: &[u8]) -> Halves {
        let len = bytes.len().min(2 * MAX_HALF_LEN - 1);
        let half = len.div_ceil(2);
        let mut h = Halves {
            left: [0; MAX_HALF_LEN],
            right: [0; MAX_HALF_LEN],
            len,
            half,
        };
        h.left[..half].copy_from_slice(&bytes[..half]);
        h.right[..half].copy_from_slice(&bytes[len - half..len]);
        h.clear_left();
        h.clear_right();
        h
    }

    /// `half_len`.
    #[inline]
    pub fn half_len(&self) -> usize {
        self.half
    }

    #[inline]
    fn odd(&self) -> bool {
        !self.len.is_multiple_of(2)
    }

    /// With an odd length, `left` clears its last four bits.
    #[inline]
    fn clear_left(&mut self) {
        if self.odd() && self.half > 0 {
            self.left[self.half - 1] &= 0xf0;
        }
    }

    /// With an odd length, `right` clears its first four bits.
    #[inline]
    fn clear_right(&mut self) {
        if self.odd() {
            self.right[0] &= 0x0f;
        }
    }

    /// Pass `number` (1..=4): odd passes XOR `right` with the AES of `left`, even passes
    /// `left` with the AES of `right`.
    #[inline]
    pub fn pass(&mut self, cipher: &Aes128, number: u8, trace: &mut impl FnMut(&Pass)) {
        let half = self.half;
        let (src, dst) = if !number.is_multiple_of(2) {
            (&self.left, &mut self.right)
        } else {
            (&self.right, &mut self.left)
        };
        let aes_input = expand(self.len, number, &src[..half]);
        let mut block = aes::Block::from(aes_input);
        cipher.encrypt_block(&mut block);
        for (d, k) in dst[..half].iter_mut().zip(block.iter()) {
            *d ^= k;
        }
        if !number.is_multiple_of(2) {
            self.clear_right();
        } else {
            self.clear_left();
        }
        let result = if !number.is_multiple_of(2) {
            self.right
        } else {
            self.left
        };
        trace(&Pass {
            number,
            aes_input,
            aes_output: block.into(),
            result,
        });
    }

    /// `left || right`, the cleared nibbles squeezed out (step 12), into `out[..len]`.
    #[inline]
    pub fn join(&self, out: &mut [u8]) {
        let (len, half) = (self.len, self.half);
        if self.odd() {
            out[..half - 1].copy_from_slice(&self.left[..half - 1]);
            out[half - 1] = self.left[half - 1] | self.right[0];
            out[half..len].copy_from_slice(&self.right[1..half]);
        } else {
            out[..half].copy_from_slice(&self.left[..half]);
            out[half..len].copy_from_slice(&self.right[..half]);
        }
    }
}

/// Encrypt `plaintext` (5..=19 bytes, not 16) into `out[..plaintext.len()]`.
#[inline]
pub fn encrypt(cipher: &Aes128, plaintext: &[u8], out: &mut [u8]) {
    encrypt_traced(cipher, plaintext, out, &mut |_| {});
}

/// [`encrypt`], calling `trace` after each pass (the code path is the same: `encrypt` is
/// this with a closure that does nothing).
#[inline]
pub fn encrypt_traced(
    cipher: &Aes128,
    plaintext: &[u8],
    out: &mut [u8],
    trace: &mut impl FnMut(&Pass),
) {
    let mut h = Halves::split(plaintext);
    for number in 1..=4 {
        h.pass(cipher, number, trace);
    }
    h.join(out);
}

/// Decrypt `ciphertext` (5..=19 bytes, not 16) into `out[..ciphertext.len()]`: all four
/// passes.
#[inline]
pub fn decrypt(cipher: &Aes128, ciphertext: &[u8], out: &mut [u8]) {
    let mut h = Halves::split(ciphertext);
    for number in (1..=4).rev() {
        h.pass(cipher, number, &mut |_| {});
    }
    h.join(out);
}

/// The first `server_id_len` bytes of the plaintext of `ciphertext` into
/// `out[..server_id_len]`: three passes when the server ID lies within `left_0` (it is
/// at most `floor(len / 2)` bytes, i.e. no longer than the nonce), four otherwise.
#[inline]
pub fn decrypt_server_id(cipher: &Aes128, ciphertext: &[u8], server_id_len: usize, out: &mut [u8]) {
    let mut h = Halves::split(ciphertext);
    let nothing = &mut |_: &Pass| {};
    h.pass(cipher, 4, nothing);
    h.pass(cipher, 3, nothing);
    h.pass(cipher, 2, nothing);
    if server_id_len <= h.len / 2 {
        out[..server_id_len].copy_from_slice(&h.left[..server_id_len]);
    } else {
        h.pass(cipher, 1, nothing);
        let mut plain = [0u8; 2 * MAX_HALF_LEN];
        h.join(&mut plain);
        out[..server_id_len].copy_from_slice(&plain[..server_id_len]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expand_and_split_as_the_draft_shows() {
        // Section 5.4.2.2 and step 2 of 5.4.2.3.
        assert_eq!(
            expand(6, 2, &[0xaa, 0xba, 0x3c]),
            [0xaa, 0xba, 0x3c, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 6, 2]
        );
        let h = Halves::split(&[0x70, 0x40, 0xb8, 0x1b, 0x55, 0xcc, 0xf3]);
        assert_eq!(h.half_len(), 4);
        assert_eq!(&h.left[..4], &[0x70, 0x40, 0xb8, 0x10]);
        assert_eq!(&h.right[..4], &[0x0b, 0x55, 0xcc, 0xf3]);
        let mut out = [0u8; 7];
        h.join(&mut out);
        assert_eq!(out, [0x70, 0x40, 0xb8, 0x1b, 0x55, 0xcc, 0xf3]);
    }

    #[test]
    fn decrypt_undoes_encrypt_for_every_length() {
        use aes::cipher::KeyInit;
        let cipher = Aes128::new(&[7u8; 16].into());
        for len in (5..=19).filter(|&l| l != 16) {
            let pt: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
            let mut ct = [0u8; 19];
            encrypt(&cipher, &pt, &mut ct);
            assert_ne!(&ct[..len], &pt[..], "len {len}");
            let mut back = [0u8; 19];
            decrypt(&cipher, &ct[..len], &mut back);
            assert_eq!(&back[..len], &pt[..], "len {len}");
            for sid in 1..=len - 4 {
                let mut id = [0u8; 15];
                decrypt_server_id(&cipher, &ct[..len], sid, &mut id);
                assert_eq!(&id[..sid], &pt[..sid], "len {len} sid {sid}");
            }
        }
    }
}
