//! QUIC-LB configurations: [`QuicLbConfig`] (one codepoint), its TOML shape
//! [`QuicLbSpec`], and [`QuicLbConfigs`], the one or two a director decodes with while keys
//! rotate.
//!
//! The draft's rules (section 3.1, "Config Rotation"; 5.1; 5.3, "Configuration Agent
//! Actions"), checked by [`QuicLbConfig::new`]:
//!
//! - the config rotation codepoint (`config_id`) is 0..=6; 7 (0b111) marks unroutable
//!   CIDs and "MUST NOT" be configured;
//! - the server ID is at least 1 byte, the nonce at least 4, and together at most 19 (a
//!   QUIC v1 CID is at most 20 bytes, the first octet included): so the server ID is
//!   1..=15 bytes and the nonce 4..=18 (the draft's YANG model states these ranges);
//! - the key, when there is one, is 16 bytes (AES-128). Without a key the CID is
//!   plaintext (observers can read the server ID); with one, a server ID and nonce of
//!   exactly 16 bytes are one AES block (single pass), any other length takes the
//!   four-pass Feistel network ([`super::feistel`], whose `expand` needs the 5..=19
//!   bytes the rules above already give). Draft-21 sets no other limit for either case.
//!
//! Native TOML (a bind's `quic_lb`, and `rondo quic-lb --config`):
//!
//! ```toml
//! quic_lb = { config_id = 0, server_id_len = 3, nonce_len = 13, key = "8f95f09245765f80256934e50c66207f" }
//! ```
//!
//! `key` absent means plaintext CIDs; `encode_length = true` (default false) makes servers
//! write the CID length minus one in the first octet's low five bits (section 3.3) instead
//! of random bits, and lets the director take a short header's DCID length from there.

use aes::cipher::KeyInit;
use aes::Aes128;
use serde::{Deserialize, Serialize};

use super::hex::{parse_hex, to_hex, HexError};
use super::{
    codepoint, Decoded, MAX_NONCE_LEN, MAX_PLAINTEXT_LEN, MAX_SERVER_ID_LEN, MIN_NONCE_LEN,
    MIN_SERVER_ID_LEN, SINGLE_PASS_LEN, UNROUTABLE,
};

/// A configuration the draft forbids, named by its field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("config_id {0}: the draft allows 0..=6 (7, 0b111, marks unroutable connection IDs and may not be configured)")]
    ConfigId(u32),
    #[error("server_id_len {0}: the draft requires 1..=15")]
    ServerIdLen(u32),
    #[error("nonce_len {0}: the draft requires 4..=18")]
    NonceLen(u32),
    #[error("server_id_len {server_id_len} + nonce_len {nonce_len} = {}: the draft requires at most 19 (a connection ID is at most 20 bytes with its first octet)", server_id_len + nonce_len)]
    TooLong { server_id_len: u32, nonce_len: u32 },
    #[error("key: {0} bytes; AES-128 needs exactly 16 (32 hex digits)")]
    KeyLen(usize),
    #[error("key: {0}")]
    KeyHex(HexError),
    #[error("config_id {0}: configured twice (each codepoint names one configuration)")]
    DuplicateConfigId(u8),
    #[error("{0} configurations: at most 2 (the one in use and the next, while keys rotate)")]
    TooMany(usize),
}

/// One QUIC-LB configuration, validated, its AES key schedule done (once, here: never per
/// packet).
#[derive(Clone)]
pub struct QuicLbConfig {
    config_id: u8,
    server_id_len: u8,
    nonce_len: u8,
    encode_length: bool,
    key: Option<[u8; 16]>,
    pub(super) cipher: Option<Aes128>,
}

impl QuicLbConfig {
    /// A configuration: codepoint `config_id` (0..=6), `server_id_len` (1..=15) and
    /// `nonce_len` (4..=18) bytes, together at most 19, and an AES-128 key of 16 bytes or
    /// none (plaintext). Every rule of the draft is checked; see the module doc.
    pub fn new(
        config_id: u8,
        server_id_len: usize,
        nonce_len: usize,
        key: Option<&[u8]>,
    ) -> Result<QuicLbConfig, ConfigError> {
        let wide = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        check_lengths(u32::from(config_id), wide(server_id_len), wide(nonce_len))?;
        let key = match key {
            None => None,
            Some(k) => Some(<[u8; 16]>::try_from(k).map_err(|_| ConfigError::KeyLen(k.len()))?),
        };
        Ok(QuicLbConfig {
            config_id,
            // Both checked to be <= 18 above.
            server_id_len: server_id_len as u8,
            nonce_len: nonce_len as u8,
            encode_length: false,
            key,
            cipher: key.map(|k| Aes128::new(&k.into())),
        })
    }

    /// The same configuration with servers self-encoding the CID length in the first
    /// octet (`true`) or writing random bits there (`false`, the default).
    pub fn with_encode_length(mut self, encode_length: bool) -> QuicLbConfig {
        self.encode_length = encode_length;
        self
    }

    /// The config rotation codepoint, 0..=6.
    #[inline]
    pub fn config_id(&self) -> u8 {
        self.config_id
    }

    /// Server ID length in bytes.
    #[inline]
    pub fn server_id_len(&self) -> usize {
        usize::from(self.server_id_len)
    }

    /// Nonce length in bytes.
    #[inline]
    pub fn nonce_len(&self) -> usize {
        usize::from(self.nonce_len)
    }

    /// Server ID and nonce length: what the encryption covers.
    #[inline]
    pub fn plaintext_len(&self) -> usize {
        self.server_id_len() + self.nonce_len()
    }

    /// The length of the CIDs this configuration makes: first octet, server ID, nonce.
    #[inline]
    pub fn cid_len(&self) -> usize {
        1 + self.plaintext_len()
    }

    /// Whether servers write the CID length in the first octet.
    #[inline]
    pub fn encode_length(&self) -> bool {
        self.encode_length
    }

    /// The AES-128 key, if the CIDs are encrypted.
    #[inline]
    pub fn key(&self) -> Option<&[u8; 16]> {
        self.key.as_ref()
    }

    /// The algorithm the draft prescribes for these lengths.
    #[inline]
    pub fn algorithm(&self) -> Algorithm {
        match self.key {
            None => Algorithm::Plaintext,
            Some(_) if self.plaintext_len() == SINGLE_PASS_LEN => Algorithm::SinglePass,
            Some(_) => Algorithm::FourPass,
        }
    }

    /// The TOML shape of this configuration (the key in hex).
    pub fn spec(&self) -> QuicLbSpec {
        QuicLbSpec {
            config_id: u32::from(self.config_id),
            server_id_len: u32::from(self.server_id_len),
            nonce_len: u32::from(self.nonce_len),
            key: self.key.as_ref().map(|k| to_hex(k)),
            encode_length: self.encode_length,
        }
    }
}

/// Equal when every setting and the key are (the key schedule follows from the key).
impl PartialEq for QuicLbConfig {
    fn eq(&self, o: &Self) -> bool {
        (
            self.config_id,
            self.server_id_len,
            self.nonce_len,
            self.encode_length,
            self.key,
        ) == (
            o.config_id,
            o.server_id_len,
            o.nonce_len,
            o.encode_length,
            o.key,
        )
    }
}

impl Eq for QuicLbConfig {}

/// Never prints the key.
impl core::fmt::Debug for QuicLbConfig {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("QuicLbConfig")
            .field("config_id", &self.config_id)
            .field("server_id_len", &self.server_id_len)
            .field("nonce_len", &self.nonce_len)
            .field("encode_length", &self.encode_length)
            .field("algorithm", &self.algorithm())
            .finish()
    }
}

/// How a configuration's CIDs hide the server ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// No key: server ID and nonce in the clear.
    Plaintext,
    /// Server ID and nonce are 16 bytes: one AES-128-ECB block.
    SinglePass,
    /// Any other length: the four-pass Feistel network.
    FourPass,
}

impl core::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Algorithm::Plaintext => "plaintext",
            Algorithm::SinglePass => "single-pass AES-128-ECB",
            Algorithm::FourPass => "four-pass AES-128-ECB Feistel",
        })
    }
}

fn check_lengths(config_id: u32, server_id_len: u32, nonce_len: u32) -> Result<(), ConfigError> {
    if config_id >= u32::from(UNROUTABLE) {
        return Err(ConfigError::ConfigId(config_id));
    }
    let range = |lo: usize, hi: usize, v: u32| (lo as u32..=hi as u32).contains(&v);
    if !range(MIN_SERVER_ID_LEN, MAX_SERVER_ID_LEN, server_id_len) {
        return Err(ConfigError::ServerIdLen(server_id_len));
    }
    if !range(MIN_NONCE_LEN, MAX_NONCE_LEN, nonce_len) {
        return Err(ConfigError::NonceLen(nonce_len));
    }
    if server_id_len + nonce_len > MAX_PLAINTEXT_LEN as u32 {
        return Err(ConfigError::TooLong {
            server_id_len,
            nonce_len,
        });
    }
    Ok(())
}

/// The TOML (serde) shape of a configuration:
/// `{ config_id = 0, server_id_len = 3, nonce_len = 13, key = "32 hex digits" }`.
///
/// Numbers are read wide so that an out-of-range value gets the draft's rule in its error
/// ([`QuicLbSpec::build`]) rather than serde's "expected u8".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuicLbSpec {
    /// Config rotation codepoint, 0..=6 (the top three bits of every CID).
    pub config_id: u32,
    /// Server ID length in bytes, 1..=15.
    pub server_id_len: u32,
    /// Nonce length in bytes, 4..=18; with `server_id_len` at most 19.
    pub nonce_len: u32,
    /// AES-128 key, 32 hex digits (`:` between bytes allowed); absent: plaintext CIDs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Servers write the CID length minus one in the first octet's low five bits.
    #[serde(default)]
    pub encode_length: bool,
}

impl QuicLbSpec {
    /// Validate and build the configuration (the AES key schedule runs here).
    pub fn build(&self) -> Result<QuicLbConfig, ConfigError> {
        check_lengths(self.config_id, self.server_id_len, self.nonce_len)?;
        let mut key = [0u8; 17];
        let key = match &self.key {
            None => None,
            Some(hex) => {
                let n = match parse_hex(hex, &mut key) {
                    Ok(n) => n,
                    Err(HexError::Length { bytes, .. }) => return Err(ConfigError::KeyLen(bytes)),
                    Err(e) => return Err(ConfigError::KeyHex(e)),
                };
                Some(&key[..n])
            }
        };
        // Checked: config_id <= 6, lengths <= 18.
        Ok(QuicLbConfig::new(
            self.config_id as u8,
            self.server_id_len as usize,
            self.nonce_len as usize,
            key,
        )?
        .with_encode_length(self.encode_length))
    }
}

/// The configurations a director decodes with: at most two (the one in use and the next,
/// while keys rotate; draft section 3.1), each at its own codepoint. A CID's first octet
/// picks the configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuicLbConfigs {
    configs: [Option<QuicLbConfig>; 2],
    /// Codepoint -> index into `configs` (`NONE` for none).
    by_codepoint: [u8; 8],
}

const NONE: u8 = u8::MAX;

impl QuicLbConfigs {
    /// No configuration: every CID is unroutable.
    pub fn empty() -> QuicLbConfigs {
        QuicLbConfigs {
            configs: [None, None],
            by_codepoint: [NONE; 8],
        }
    }

    /// One or two configurations at distinct codepoints.
    pub fn new(
        configs: impl IntoIterator<Item = QuicLbConfig>,
    ) -> Result<QuicLbConfigs, ConfigError> {
        let mut out = QuicLbConfigs::empty();
        let mut n = 0usize;
        for c in configs {
            let cp = usize::from(c.config_id());
            if out.by_codepoint[cp] != NONE {
                return Err(ConfigError::DuplicateConfigId(c.config_id()));
            }
            if n < 2 {
                // n < 2: exact.
                out.by_codepoint[cp] = n as u8;
                out.configs[n] = Some(c);
            }
            n += 1;
        }
        if n > 2 {
            return Err(ConfigError::TooMany(n));
        }
        Ok(out)
    }

    /// Build every spec, then [`QuicLbConfigs::new`].
    pub fn from_specs<'a>(
        specs: impl IntoIterator<Item = &'a QuicLbSpec>,
    ) -> Result<QuicLbConfigs, ConfigError> {
        let configs = specs
            .into_iter()
            .map(QuicLbSpec::build)
            .collect::<Result<Vec<_>, _>>()?;
        QuicLbConfigs::new(configs)
    }

    /// The configuration at `codepoint`, if any.
    #[inline]
    pub fn get(&self, codepoint: u8) -> Option<&QuicLbConfig> {
        let i = *self.by_codepoint.get(usize::from(codepoint))?;
        self.configs.get(usize::from(i))?.as_ref()
    }

    /// The configurations, in the order given.
    pub fn iter(&self) -> impl Iterator<Item = &QuicLbConfig> {
        self.configs.iter().flatten()
    }

    /// How many (0..=2).
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// No configuration at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Decode `cid` with the configuration its first octet names: total over any bytes, no
    /// allocation. Empty: [`Decoded::TooShort`]; codepoint 7: [`Decoded::Unroutable`]; a
    /// codepoint with no configuration: [`Decoded::UnknownConfig`].
    #[inline]
    pub fn decode(&self, cid: &[u8]) -> Decoded {
        let Some(&first) = cid.first() else {
            return Decoded::TooShort;
        };
        let cp = codepoint(first);
        if cp == UNROUTABLE {
            return Decoded::Unroutable;
        }
        match self.get(cp) {
            Some(c) => c.decode(cid),
            None => Decoded::UnknownConfig(cp),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(toml_text: &str) -> Result<QuicLbConfig, String> {
        let s: QuicLbSpec = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        s.build().map_err(|e| e.to_string())
    }

    #[test]
    fn the_draft_ranges_are_enforced_with_field_named_errors() {
        assert!(QuicLbConfig::new(0, 1, 4, None).is_ok());
        assert!(QuicLbConfig::new(6, 15, 4, None).is_ok());
        assert!(QuicLbConfig::new(6, 1, 18, Some(&[0; 16])).is_ok());
        let e = |r: Result<QuicLbConfig, ConfigError>| r.unwrap_err().to_string();
        assert_eq!(
            e(QuicLbConfig::new(0, 3, 3, None)),
            "nonce_len 3: the draft requires 4..=18"
        );
        assert_eq!(
            e(QuicLbConfig::new(0, 0, 8, None)),
            "server_id_len 0: the draft requires 1..=15"
        );
        assert_eq!(
            e(QuicLbConfig::new(0, 16, 4, None)),
            "server_id_len 16: the draft requires 1..=15"
        );
        assert_eq!(
            e(QuicLbConfig::new(0, 1, 19, None)),
            "nonce_len 19: the draft requires 4..=18"
        );
        assert!(e(QuicLbConfig::new(0, 8, 12, None))
            .starts_with("server_id_len 8 + nonce_len 12 = 20: the draft requires at most 19"));
        assert!(
            e(QuicLbConfig::new(7, 3, 4, None)).starts_with("config_id 7: the draft allows 0..=6")
        );
        assert_eq!(
            e(QuicLbConfig::new(0, 3, 4, Some(&[0; 15]))),
            "key: 15 bytes; AES-128 needs exactly 16 (32 hex digits)"
        );
        assert!(QuicLbConfig::new(0, 3, 4, Some(&[0; 32])).is_err());
    }

    #[test]
    fn the_toml_shape_builds_and_names_what_is_wrong() {
        let c = spec(
            r#"config_id = 2
server_id_len = 3
nonce_len = 13
key = "8f95f09245765f80256934e50c66207f""#,
        )
        .unwrap();
        assert_eq!((c.config_id(), c.cid_len()), (2, 17));
        assert_eq!(c.algorithm(), Algorithm::SinglePass);
        assert!(!c.encode_length());
        let c =
            spec("config_id = 0\nserver_id_len = 3\nnonce_len = 4\nencode_length = true").unwrap();
        assert_eq!(c.algorithm(), Algorithm::Plaintext);
        assert!(c.encode_length());
        // Round trip through the shape.
        let back = c.spec().build().unwrap();
        assert_eq!(back.spec(), c.spec());

        assert!(spec("config_id = 7\nserver_id_len = 3\nnonce_len = 4")
            .unwrap_err()
            .starts_with("config_id 7:"));
        assert!(spec("config_id = 300\nserver_id_len = 3\nnonce_len = 4")
            .unwrap_err()
            .starts_with("config_id 300:"));
        assert_eq!(
            spec("config_id = 0\nserver_id_len = 3\nnonce_len = 4\nkey = \"00112233\"")
                .unwrap_err(),
            "key: 4 bytes; AES-128 needs exactly 16 (32 hex digits)"
        );
        assert_eq!(
            spec(&format!(
                "config_id = 0\nserver_id_len = 3\nnonce_len = 4\nkey = \"{}\"",
                "ab".repeat(20)
            ))
            .unwrap_err(),
            "key: 20 bytes; AES-128 needs exactly 16 (32 hex digits)"
        );
        assert_eq!(
            spec("config_id = 0\nserver_id_len = 3\nnonce_len = 4\nkey = \"zz\"").unwrap_err(),
            "key: 'z' at position 1 is not a hex digit"
        );
        assert!(
            spec("config_id = 0\nserver_id_len = 3\nnonce_len = 4\nsid = 1")
                .unwrap_err()
                .contains("unknown field")
        );
    }

    #[test]
    fn debug_never_shows_the_key() {
        let c = QuicLbConfig::new(1, 3, 4, Some(&[0xab; 16])).unwrap();
        let d = format!("{c:?}");
        assert!(!d.to_lowercase().contains("abab"), "{d}");
        assert!(d.contains("four-pass") || d.contains("FourPass"), "{d}");
    }

    #[test]
    fn at_most_two_configurations_at_distinct_codepoints() {
        let c = |id| QuicLbConfig::new(id, 3, 4, None).unwrap();
        let set = QuicLbConfigs::new([c(0), c(5)]).unwrap();
        assert_eq!(set.len(), 2);
        assert_eq!(set.get(5).unwrap().config_id(), 5);
        assert!(set.get(1).is_none() && set.get(7).is_none() && set.get(200).is_none());
        assert_eq!(
            QuicLbConfigs::new([c(1), c(1)]).unwrap_err(),
            ConfigError::DuplicateConfigId(1)
        );
        assert_eq!(
            QuicLbConfigs::new([c(0), c(1), c(2)]).unwrap_err(),
            ConfigError::TooMany(3)
        );
        assert!(QuicLbConfigs::empty().is_empty());
    }
}
