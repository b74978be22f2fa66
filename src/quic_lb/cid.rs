//! Encoding CIDs (servers) and decoding them (the director), draft-21 sections 5.4 and 5.5.
//!
//! A CID is `first octet || ciphertext(server ID || nonce)`:
//!
//! - first octet: the config rotation codepoint in the top three bits; in the low five the
//!   CID length minus one (`encode_length`) or random bits (section 3.3 asks that they have
//!   "no observable relationship to previous connection IDs");
//! - no key: the plaintext itself. Then the nonce must be unlinkable too, so
//!   [`RandomNonce`];
//! - a key and 16 bytes of server ID and nonce: one AES-128-ECB block (section 5.4.1);
//! - a key and any other length: the four-pass Feistel network ([`super::feistel`]).
//!
//! With a key, the nonce only has to be unique: a counter from a random start
//! ([`CounterNonce`]) is what section 9.6 recommends; it may never repeat under one key.
//! Servers "MAY append additional bytes" after the nonce; decoding reads the first
//! `cid_len()` bytes and ignores any more.

use aes::cipher::{BlockCipherDecrypt, BlockCipherEncrypt};

use super::config::{Algorithm, QuicLbConfig};
use super::feistel;
use super::server_id::ServerId;
use super::{codepoint, MAX_CID_LEN, MAX_NONCE_LEN, MAX_PLAINTEXT_LEN, UNROUTABLE};

/// What a CID says to the director. [`QuicLbConfig::decode`] and
/// [`super::QuicLbConfigs::decode`] give one for any bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decoded {
    /// Route to this server.
    ServerId(ServerId),
    /// Codepoint 7 (0b111): a server without a configuration made it (section 3.2). Route
    /// by the fallback (the 4-tuple).
    Unroutable,
    /// A codepoint with no configuration here (client-chosen CIDs, an old or a future
    /// configuration): unroutable too.
    UnknownConfig(u8),
    /// Shorter than the configuration's CIDs (or empty): unroutable.
    TooShort,
}

/// Why a CID could not be made.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("server ID of {got} bytes: the configuration's server_id_len is {want}")]
    ServerIdLen { got: usize, want: usize },
    #[error("nonce of {got} bytes: the configuration's nonce_len is {want}")]
    NonceLen { got: usize, want: usize },
    #[error(transparent)]
    Nonce(#[from] NonceError),
}

/// A server ID and nonce, decrypted (for tools and tests; routing needs only
/// [`Decoded`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plaintext {
    /// The server ID.
    pub server_id: ServerId,
    nonce: [u8; MAX_NONCE_LEN],
    nonce_len: u8,
}

impl Plaintext {
    /// The nonce.
    pub fn nonce(&self) -> &[u8] {
        &self.nonce[..usize::from(self.nonce_len)]
    }
}

impl QuicLbConfig {
    /// Encode a fresh CID for `server_id` into `out`, returning its length
    /// ([`QuicLbConfig::cid_len`]): the nonce and, without `encode_length`, the first
    /// octet's random bits come from `nonces`.
    pub fn encode(
        &self,
        server_id: &ServerId,
        nonces: &mut (impl NonceSource + ?Sized),
        out: &mut [u8; MAX_CID_LEN],
    ) -> Result<usize, EncodeError> {
        let mut nonce = [0u8; MAX_NONCE_LEN];
        let nonce = &mut nonce[..self.nonce_len()];
        nonces.next_nonce(nonce)?;
        let bits = if self.encode_length() {
            0
        } else {
            nonces.random_bits()?
        };
        self.encode_with_nonce(server_id, nonce, bits, out)
    }

    /// Encode the CID of `server_id` and `nonce` (exactly the configured lengths) into
    /// `out`: the first octet's low five bits are `low_bits` (masked) unless the
    /// configuration self-encodes the length. Deterministic: for known answers, and for
    /// callers with their own nonces.
    pub fn encode_with_nonce(
        &self,
        server_id: &ServerId,
        nonce: &[u8],
        low_bits: u8,
        out: &mut [u8; MAX_CID_LEN],
    ) -> Result<usize, EncodeError> {
        let (sid_len, nonce_len) = (self.server_id_len(), self.nonce_len());
        if server_id.len() != sid_len {
            return Err(EncodeError::ServerIdLen {
                got: server_id.len(),
                want: sid_len,
            });
        }
        if nonce.len() != nonce_len {
            return Err(EncodeError::NonceLen {
                got: nonce.len(),
                want: nonce_len,
            });
        }
        let n = sid_len + nonce_len;
        let low = if self.encode_length() {
            // n <= 19: the length minus one fits five bits.
            n as u8
        } else {
            low_bits & 0x1f
        };
        out[0] = (self.config_id() << 5) | low;
        let mut plain = [0u8; MAX_PLAINTEXT_LEN];
        plain[..sid_len].copy_from_slice(server_id.as_bytes());
        plain[sid_len..n].copy_from_slice(nonce);
        let body = &mut out[1..=n];
        match (&self.cipher, self.algorithm()) {
            (Some(cipher), Algorithm::SinglePass) => {
                let mut block = aes::Block::default();
                block.copy_from_slice(&plain[..n]);
                cipher.encrypt_block(&mut block);
                body.copy_from_slice(&block);
            }
            (Some(cipher), Algorithm::FourPass) => feistel::encrypt(cipher, &plain[..n], body),
            _ => body.copy_from_slice(&plain[..n]),
        }
        Ok(1 + n)
    }

    /// The server ID `cid` carries under this configuration: total over any bytes, no
    /// allocation, no panic. Codepoint 7 is [`Decoded::Unroutable`], another codepoint than
    /// this configuration's [`Decoded::UnknownConfig`], fewer than
    /// [`QuicLbConfig::cid_len`] bytes [`Decoded::TooShort`]; bytes past that are the
    /// server's own and are ignored.
    #[inline]
    pub fn decode(&self, cid: &[u8]) -> Decoded {
        let Some(&first) = cid.first() else {
            return Decoded::TooShort;
        };
        let cp = codepoint(first);
        if cp == UNROUTABLE {
            return Decoded::Unroutable;
        }
        if cp != self.config_id() {
            return Decoded::UnknownConfig(cp);
        }
        let n = self.plaintext_len();
        let Some(body) = cid.get(1..=n) else {
            return Decoded::TooShort;
        };
        let sid_len = self.server_id_len();
        let mut sid = [0u8; MAX_PLAINTEXT_LEN];
        match (&self.cipher, self.algorithm()) {
            (Some(cipher), Algorithm::SinglePass) => {
                let mut block = aes::Block::default();
                block.copy_from_slice(body);
                cipher.decrypt_block(&mut block);
                sid[..sid_len].copy_from_slice(&block[..sid_len]);
            }
            (Some(cipher), Algorithm::FourPass) => {
                feistel::decrypt_server_id(cipher, body, sid_len, &mut sid)
            }
            _ => sid[..sid_len].copy_from_slice(&body[..sid_len]),
        }
        match ServerId::new(&sid[..sid_len]) {
            Ok(id) => Decoded::ServerId(id),
            // sid_len is 1..=15 by construction; never taken.
            Err(_) => Decoded::TooShort,
        }
    }

    /// Server ID and nonce of `cid` (all passes), or why not ([`QuicLbConfig::decode`]'s
    /// other outcomes).
    pub fn decrypt(&self, cid: &[u8]) -> Result<Plaintext, Decoded> {
        let server_id = match self.decode(cid) {
            Decoded::ServerId(id) => id,
            other => return Err(other),
        };
        let n = self.plaintext_len();
        let body = &cid[1..=n];
        let mut plain = [0u8; MAX_PLAINTEXT_LEN];
        match (&self.cipher, self.algorithm()) {
            (Some(cipher), Algorithm::SinglePass) => {
                let mut block = aes::Block::default();
                block.copy_from_slice(body);
                cipher.decrypt_block(&mut block);
                plain[..n].copy_from_slice(&block);
            }
            (Some(cipher), Algorithm::FourPass) => feistel::decrypt(cipher, body, &mut plain),
            _ => plain[..n].copy_from_slice(body),
        }
        let mut nonce = [0u8; MAX_NONCE_LEN];
        let sid_len = self.server_id_len();
        nonce[..n - sid_len].copy_from_slice(&plain[sid_len..n]);
        Ok(Plaintext {
            server_id,
            nonce,
            // nonce_len <= 18.
            nonce_len: (n - sid_len) as u8,
        })
    }
}

/// Why no nonce could be had.
#[derive(Debug, thiserror::Error)]
pub enum NonceError {
    /// Every nonce of this length was used once: the draft (section 9.6) says switch to a
    /// new configuration (key).
    #[error("the nonce counter went all the way round: every {0}-byte nonce was used; a new configuration (key) is needed")]
    Exhausted(usize),
    #[error("no random bytes from the OS: {0}")]
    Random(#[from] getrandom::Error),
}

/// Where a server's nonces (and the first octet's random bits) come from.
pub trait NonceSource {
    /// Fill `nonce` (the configuration's nonce length) with the next nonce.
    fn next_nonce(&mut self, nonce: &mut [u8]) -> Result<(), NonceError>;
    /// Random bits for the first octet's low five (when the length is not self-encoded).
    fn random_bits(&mut self) -> Result<u8, NonceError>;
}

/// Random bytes from the OS, fetched 64 at a time.
#[derive(Clone)]
struct OsPool {
    buf: [u8; 64],
    used: usize,
}

impl OsPool {
    fn new() -> OsPool {
        OsPool {
            buf: [0; 64],
            used: 64,
        }
    }

    fn fill(&mut self, out: &mut [u8]) -> Result<(), NonceError> {
        for b in out {
            if self.used == self.buf.len() {
                getrandom::fill(&mut self.buf)?;
                self.used = 0;
            }
            *b = self.buf[self.used];
            // Used bytes are not kept.
            self.buf[self.used] = 0;
            self.used += 1;
        }
        Ok(())
    }
}

/// Random nonces from the OS: what a plaintext configuration needs (its nonces are in
/// the clear and must not link CIDs). Repeats are possible (birthday bound, section 9.6).
#[derive(Clone)]
pub struct RandomNonce {
    pool: OsPool,
}

impl RandomNonce {
    pub fn new() -> RandomNonce {
        RandomNonce {
            pool: OsPool::new(),
        }
    }
}

impl Default for RandomNonce {
    fn default() -> Self {
        RandomNonce::new()
    }
}

impl NonceSource for RandomNonce {
    fn next_nonce(&mut self, nonce: &mut [u8]) -> Result<(), NonceError> {
        self.pool.fill(nonce)
    }

    fn random_bits(&mut self) -> Result<u8, NonceError> {
        let mut b = [0u8];
        self.pool.fill(&mut b)?;
        Ok(b[0] & 0x1f)
    }
}

/// A big-endian counter of the nonce's length from a starting value (random:
/// [`CounterNonce::from_os`]), wrapping once round and then refusing
/// ([`NonceError::Exhausted`]): with a key, no nonce repeats (section 9.6).
#[derive(Clone)]
pub struct CounterNonce {
    next: [u8; MAX_NONCE_LEN],
    start: [u8; MAX_NONCE_LEN],
    len: usize,
    exhausted: bool,
    pool: OsPool,
}

impl CounterNonce {
    /// Count `len`-byte nonces (4..=18; longer is cut to 18) from `start` (its last `len`
    /// bytes, right-aligned; shorter is zero-extended on the left).
    pub fn new(len: usize, start: &[u8]) -> CounterNonce {
        let len = len.min(MAX_NONCE_LEN);
        let mut next = [0u8; MAX_NONCE_LEN];
        let take = start.len().min(len);
        next[len - take..len].copy_from_slice(&start[start.len() - take..]);
        CounterNonce {
            next,
            start: next,
            len,
            exhausted: false,
            pool: OsPool::new(),
        }
    }

    /// Go on with a counter that started at `start` and has reached `next` (both
    /// right-aligned like [`CounterNonce::new`]'s): a server restarting under the same key
    /// must not reuse nonces, so it saves [`CounterNonce::position`] and resumes here.
    pub fn resume(len: usize, start: &[u8], next: &[u8]) -> CounterNonce {
        let mut c = CounterNonce::new(len, start);
        let at = CounterNonce::new(len, next);
        c.next = at.next;
        c
    }

    /// The next nonce it will give (save it with the start to resume).
    pub fn position(&self) -> &[u8] {
        &self.next[..self.len]
    }

    /// Where it started.
    pub fn start(&self) -> &[u8] {
        &self.start[..self.len]
    }

    /// Count from a random start.
    pub fn from_os(len: usize) -> Result<CounterNonce, NonceError> {
        let mut start = [0u8; MAX_NONCE_LEN];
        getrandom::fill(&mut start)?;
        Ok(CounterNonce::new(len, &start[..len.min(MAX_NONCE_LEN)]))
    }
}

impl NonceSource for CounterNonce {
    fn next_nonce(&mut self, nonce: &mut [u8]) -> Result<(), NonceError> {
        if self.exhausted {
            return Err(NonceError::Exhausted(self.len));
        }
        let n = nonce.len().min(self.len);
        nonce[..n].copy_from_slice(&self.next[self.len - n..self.len]);
        for b in self.next[..self.len].iter_mut().rev() {
            *b = b.wrapping_add(1);
            if *b != 0 {
                break;
            }
        }
        if self.next == self.start {
            self.exhausted = true;
        }
        Ok(())
    }

    fn random_bits(&mut self) -> Result<u8, NonceError> {
        let mut b = [0u8];
        self.pool.fill(&mut b)?;
        Ok(b[0] & 0x1f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_counts_from_its_start_and_stops_after_one_round() {
        let mut c = CounterNonce::new(4, &[0xff, 0xff, 0xff, 0xfe]);
        let mut n = [0u8; 4];
        c.next_nonce(&mut n).unwrap();
        assert_eq!(n, [0xff, 0xff, 0xff, 0xfe]);
        c.next_nonce(&mut n).unwrap();
        assert_eq!(n, [0xff, 0xff, 0xff, 0xff]);
        c.next_nonce(&mut n).unwrap();
        assert_eq!(n, [0, 0, 0, 0]);
        // A short start is right-aligned.
        let mut c = CounterNonce::new(5, &[0x01]);
        let mut n = [0u8; 5];
        c.next_nonce(&mut n).unwrap();
        assert_eq!(n, [0, 0, 0, 0, 1]);
        // The last nonce of the round (the one before the start), then no more.
        let mut c = CounterNonce::resume(4, &[0, 0, 0, 0], &[0xff; 4]);
        assert_eq!((c.start(), c.position()), (&[0u8; 4][..], &[0xff; 4][..]));
        c.next_nonce(&mut [0u8; 4]).unwrap();
        assert!(matches!(
            c.next_nonce(&mut [0u8; 4]),
            Err(NonceError::Exhausted(4))
        ));
    }

    #[test]
    fn random_nonces_differ_and_bits_fit_five() {
        let mut r = RandomNonce::new();
        let (mut a, mut b) = ([0u8; 16], [0u8; 16]);
        r.next_nonce(&mut a).unwrap();
        r.next_nonce(&mut b).unwrap();
        assert_ne!(a, b);
        for _ in 0..200 {
            assert!(r.random_bits().unwrap() < 32);
        }
    }

    #[test]
    fn encode_checks_lengths_and_writes_the_first_octet() {
        let c = QuicLbConfig::new(5, 3, 4, None).unwrap();
        let sid = ServerId::new(&[1, 2, 3]).unwrap();
        let mut out = [0u8; MAX_CID_LEN];
        let n = c
            .encode_with_nonce(&sid, &[9, 9, 9, 9], 0xff, &mut out)
            .unwrap();
        assert_eq!(&out[..n], &[0xbf, 1, 2, 3, 9, 9, 9, 9]);
        let c = c.with_encode_length(true);
        let n = c
            .encode_with_nonce(&sid, &[9, 9, 9, 9], 0xff, &mut out)
            .unwrap();
        assert_eq!(&out[..n], &[0xa7, 1, 2, 3, 9, 9, 9, 9]);
        assert!(matches!(
            c.encode_with_nonce(&ServerId::new(&[1]).unwrap(), &[0; 4], 0, &mut out),
            Err(EncodeError::ServerIdLen { got: 1, want: 3 })
        ));
        let e = c.encode_with_nonce(&sid, &[0; 5], 0, &mut out).unwrap_err();
        assert_eq!(
            e.to_string(),
            "nonce of 5 bytes: the configuration's nonce_len is 4"
        );
    }

    #[test]
    fn decode_outcomes() {
        let c = QuicLbConfig::new(1, 3, 4, Some(&[3; 16])).unwrap();
        assert_eq!(c.decode(&[]), Decoded::TooShort);
        assert_eq!(c.decode(&[0xe0, 1, 2, 3, 4, 5, 6, 7]), Decoded::Unroutable);
        assert_eq!(
            c.decode(&[0x40, 1, 2, 3, 4, 5, 6, 7]),
            Decoded::UnknownConfig(2)
        );
        assert_eq!(c.decode(&[0x20, 1, 2, 3, 4, 5, 6]), Decoded::TooShort);
        let sid = ServerId::new(&[0xaa, 0xbb, 0xcc]).unwrap();
        let mut out = [0u8; MAX_CID_LEN];
        let n = c
            .encode(&sid, &mut CounterNonce::new(4, &[1]), &mut out)
            .unwrap();
        assert_eq!(c.decode(&out[..n]), Decoded::ServerId(sid));
        // Bytes a server appends are ignored.
        assert_eq!(c.decode(&out[..n + 3]), Decoded::ServerId(sid));
        let p = c.decrypt(&out[..n]).unwrap();
        assert_eq!((p.server_id, p.nonce()), (sid, &[0, 0, 0, 1][..]));
    }
}
