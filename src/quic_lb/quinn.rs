//! QUIC-LB CIDs for a quinn server (feature `quinn`): [`QuicLbCidGenerator`] is a
//! quinn-proto [`ConnectionIdGenerator`], so every CID the server issues routes back to it
//! through the director.
//!
//! ```
//! # use rondo::quic_lb::{quinn::QuicLbCidGenerator, QuicLbSpec, ServerId};
//! let config = QuicLbSpec {
//!     config_id: 0,
//!     server_id_len: 3,
//!     nonce_len: 13,
//!     key: Some("8f95f09245765f80256934e50c66207f".into()),
//!     encode_length: false,
//! }
//! .build()?;
//! let factory = QuicLbCidGenerator::factory(config, ServerId::from_hex("31441a")?)?;
//! // endpoint_config.cid_generator(factory);   (quinn_proto::EndpointConfig)
//! let mut generator = factory();
//! assert_eq!(generator.generate_cid().len(), 17);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Nonces: with a key, a counter from a random start (never repeating under the key);
//! without one, random (plaintext nonces must not link CIDs). When the counter has gone
//! all the way round, the generator issues unroutable CIDs (codepoint 7, length
//! self-encoded, random bytes), as draft-21 section 9.6 says a server out of nonces must;
//! its configuration needs replacing.

use std::time::Duration;

use quinn_proto::{ConnectionId, ConnectionIdGenerator, InvalidCid};

use super::cid::{CounterNonce, Decoded, EncodeError, NonceSource, RandomNonce};
use super::config::QuicLbConfig;
use super::server_id::ServerId;
use super::{codepoint, MAX_CID_LEN, UNROUTABLE};

/// Generates the CIDs of one server under one QUIC-LB configuration.
pub struct QuicLbCidGenerator {
    config: QuicLbConfig,
    server_id: ServerId,
    nonces: Nonces,
    lifetime: Option<Duration>,
    /// CIDs issued as unroutable since the nonces ran out (or the OS gave no randomness).
    unroutable: u64,
}

enum Nonces {
    Counter(CounterNonce),
    Random(RandomNonce),
}

impl QuicLbCidGenerator {
    /// A generator for `server_id` (of the configuration's server ID length).
    pub fn new(
        config: QuicLbConfig,
        server_id: ServerId,
    ) -> Result<QuicLbCidGenerator, EncodeError> {
        check(&config, &server_id)?;
        Ok(QuicLbCidGenerator::build(config, server_id))
    }

    /// What quinn-proto's `EndpointConfig::cid_generator` takes: a new generator (its own
    /// random counter start) for each call.
    pub fn factory(
        config: QuicLbConfig,
        server_id: ServerId,
    ) -> Result<impl Fn() -> Box<dyn ConnectionIdGenerator> + Send + Sync + 'static, EncodeError>
    {
        check(&config, &server_id)?;
        Ok(move || -> Box<dyn ConnectionIdGenerator> {
            Box::new(QuicLbCidGenerator::build(config.clone(), server_id))
        })
    }

    /// `server_id` has the configuration's length (`check`).
    fn build(config: QuicLbConfig, server_id: ServerId) -> QuicLbCidGenerator {
        let nonces = match config.key() {
            Some(_) => match CounterNonce::from_os(config.nonce_len()) {
                Ok(c) => Nonces::Counter(c),
                // No randomness from the OS: random nonces will fail too, and the CIDs
                // will be unroutable (see `generate_cid`) rather than predictable.
                Err(_) => Nonces::Random(RandomNonce::new()),
            },
            None => Nonces::Random(RandomNonce::new()),
        };
        QuicLbCidGenerator {
            config,
            server_id,
            nonces,
            lifetime: None,
            unroutable: 0,
        }
    }

    /// Retire CIDs after `d` (quinn issues new ones).
    pub fn set_lifetime(&mut self, d: Duration) -> &mut Self {
        self.lifetime = Some(d);
        self
    }

    /// How many unroutable CIDs it issued (nonces exhausted).
    pub fn unroutable_issued(&self) -> u64 {
        self.unroutable
    }

    fn encode(&mut self, out: &mut [u8; MAX_CID_LEN]) -> Result<usize, EncodeError> {
        let source: &mut dyn NonceSource = match &mut self.nonces {
            Nonces::Counter(c) => c,
            Nonces::Random(r) => r,
        };
        self.config.encode(&self.server_id, source, out)
    }

    /// A codepoint 7 CID of the configuration's length: random bytes after the first
    /// octet, its length self-encoded.
    fn unroutable_cid(&mut self, out: &mut [u8; MAX_CID_LEN]) -> usize {
        self.unroutable += 1;
        let len = self.config.cid_len();
        if getrandom::fill(&mut out[1..len]).is_err() {
            // Last resort when the OS gives no random bytes (it does not fail on Linux
            // once booted), without a panic: a hash of the time and a count.
            use std::hash::Hasher;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            for (i, chunk) in out[1..len].chunks_mut(8).enumerate() {
                let mut h = std::hash::DefaultHasher::new();
                h.write_u128(now);
                h.write_u64(self.unroutable);
                h.write_usize(i);
                chunk.copy_from_slice(&h.finish().to_be_bytes()[..chunk.len()]);
            }
        }
        // len <= 20: the length minus one fits five bits.
        out[0] = (UNROUTABLE << 5) | (len - 1) as u8;
        len
    }
}

fn check(config: &QuicLbConfig, server_id: &ServerId) -> Result<(), EncodeError> {
    if server_id.len() != config.server_id_len() {
        return Err(EncodeError::ServerIdLen {
            got: server_id.len(),
            want: config.server_id_len(),
        });
    }
    Ok(())
}

impl ConnectionIdGenerator for QuicLbCidGenerator {
    fn generate_cid(&mut self) -> ConnectionId {
        let mut out = [0u8; MAX_CID_LEN];
        let len = match self.encode(&mut out) {
            Ok(n) => n,
            Err(_) => self.unroutable_cid(&mut out),
        };
        ConnectionId::new(&out[..len])
    }

    /// Ours: it decodes to this server ID, or it is one of the unroutable CIDs of our
    /// length we issue once the nonces run out.
    fn validate(&self, cid: &ConnectionId) -> Result<(), InvalidCid> {
        let bytes: &[u8] = cid;
        if bytes.len() != self.config.cid_len() {
            return Err(InvalidCid);
        }
        match self.config.decode(bytes) {
            Decoded::ServerId(id) if id == self.server_id => Ok(()),
            Decoded::Unroutable if self.unroutable > 0 && codepoint(bytes[0]) == UNROUTABLE => {
                Ok(())
            }
            _ => Err(InvalidCid),
        }
    }

    fn cid_len(&self) -> usize {
        self.config.cid_len()
    }

    fn cid_lifetime(&self) -> Option<Duration> {
        self.lifetime
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn generated_cids_decode_to_the_server_id() {
        let id = ServerId::from_hex("ed793a").unwrap();
        let other = ServerId::from_hex("ed793b").unwrap();
        for (sid_len, nonce_len, key) in [
            (3, 4, Some([0x8f; 16])),
            (3, 13, Some([0x11; 16])),
            (3, 6, None),
        ] {
            let config = QuicLbConfig::new(2, sid_len, nonce_len, key.as_ref().map(|k| &k[..]))
                .unwrap()
                .with_encode_length(key.is_none());
            let mut g = QuicLbCidGenerator::new(config.clone(), id).unwrap();
            g.set_lifetime(Duration::from_secs(60));
            assert_eq!(g.cid_len(), 1 + sid_len + nonce_len);
            assert_eq!(g.cid_lifetime(), Some(Duration::from_secs(60)));
            let mut seen = HashSet::new();
            for _ in 0..500 {
                let cid = g.generate_cid();
                assert_eq!(cid.len(), g.cid_len());
                assert_eq!(codepoint(cid[0]), 2);
                assert_eq!(config.decode(&cid), Decoded::ServerId(id));
                assert!(g.validate(&cid).is_ok());
                assert!(seen.insert(cid), "a CID repeated");
            }
            let mut theirs = QuicLbCidGenerator::new(config, other).unwrap();
            assert!(g.validate(&theirs.generate_cid()).is_err());
            assert!(g.validate(&ConnectionId::new(&[0x40; 8])).is_err());
        }
        let wrong = QuicLbConfig::new(0, 4, 4, None).unwrap();
        assert!(QuicLbCidGenerator::new(wrong.clone(), id).is_err());
        assert!(QuicLbCidGenerator::factory(wrong, id).is_err());
        let config = QuicLbConfig::new(0, 3, 4, Some(&[1; 16])).unwrap();
        let factory = QuicLbCidGenerator::factory(config.clone(), id).unwrap();
        let (mut a, mut b) = (factory(), factory());
        for _ in 0..10 {
            assert_eq!(config.decode(&a.generate_cid()), Decoded::ServerId(id));
            assert_eq!(config.decode(&b.generate_cid()), Decoded::ServerId(id));
        }
    }

    #[test]
    fn out_of_nonces_it_issues_unroutable_cids() {
        let id = ServerId::from_hex("0102").unwrap();
        let config = QuicLbConfig::new(1, 2, 4, Some(&[5; 16])).unwrap();
        let mut g = QuicLbCidGenerator::new(config.clone(), id).unwrap();
        // A counter at the last nonce of its round (resumed one before its start).
        g.nonces = Nonces::Counter(CounterNonce::resume(4, &[0; 4], &[0xff; 4]));
        let last = g.generate_cid();
        assert_eq!(config.decode(&last), Decoded::ServerId(id));
        assert_eq!(g.unroutable_issued(), 0);
        let cid = g.generate_cid();
        assert_eq!(cid.len(), 7);
        assert_eq!(cid[0], 0xe6);
        assert_eq!(config.decode(&cid), Decoded::Unroutable);
        assert!(g.validate(&cid).is_ok());
        assert_eq!(g.unroutable_issued(), 1);
        assert_ne!(g.generate_cid(), cid);
        assert_eq!(g.unroutable_issued(), 2);
    }
}
