//! QUIC-LB: routable QUIC connection IDs, as draft-ietf-quic-load-balancers-21 (27 August
//! 2025) defines them.
//!
//! A QUIC server behind the director writes its *server ID* into every connection ID (CID)
//! it issues; the director reads it back from the destination CID of each packet and sends
//! the packet to that server, whatever the client's address does (NAT rebinding,
//! migration). This module is the codec both sides share; it is a leaf library (it imports
//! nothing else of Rondo), the datapath will use it.
//!
//! ```text
//! QUIC-LB Connection ID {            First Octet {
//!   First Octet (8),                   Config Rotation (3),   0..=6; 7 = unroutable
//!   Server ID (8..120),                CID Len or Random Bits (5),
//!   Nonce (32..144),                 }
//! }   (server ID + nonce <= 19 bytes: the CID is at most 20)
//! ```
//!
//! - [`config`]: a configuration ([`QuicLbConfig`]: codepoint, lengths, optional AES-128
//!   key, validated by the draft's rules), its TOML shape ([`QuicLbSpec`]) and the set a
//!   director holds while keys rotate ([`QuicLbConfigs`]: at most two, by codepoint).
//! - [`cid`]: encoding (servers) and decoding (the director): plaintext, single-pass
//!   AES-128-ECB when server ID and nonce are exactly 16 bytes, the four-pass Feistel
//!   network ([`feistel`]) otherwise; nonce sources ([`CounterNonce`], [`RandomNonce`]).
//! - [`header`]: the destination CID of a UDP payload (QUIC long and short headers,
//!   version invariant), zero-copy.
//! - [`server_id`]: [`ServerId`], a small `Copy` value (1..=15 bytes).
//! - `quinn` (feature `quinn`): a quinn-proto `ConnectionIdGenerator`.
//!
//! Everything that reads bytes from the network ([`QuicLbConfig::decode`],
//! [`QuicLbConfigs::decode`], [`header::parse`]) is total: any input gives an answer, never
//! a panic, never an allocation.
//!
//! AES comes from RustCrypto's `aes` crate, which picks AES-NI (and VAES) at run time
//! when the CPU has them and a constant-time software implementation otherwise. The key
//! schedule runs once, when a configuration is built; a decode costs one AES block
//! (single pass) or three or four (four-pass).
//!
//! Known answers: the draft's Appendix B vectors and its "Encryption Example", step by step
//! (`tests/quic_lb.rs`, `tests/vectors/quic_lb/`).

pub mod cid;
pub mod config;
pub mod feistel;
pub mod header;
mod hex;
#[cfg(feature = "quinn")]
pub mod quinn;
pub mod server_id;

pub use self::cid::{
    CounterNonce, Decoded, EncodeError, NonceError, NonceSource, Plaintext, RandomNonce,
};
pub use self::config::{Algorithm, ConfigError, QuicLbConfig, QuicLbConfigs, QuicLbSpec};
pub use self::header::{Header, HeaderError, LongType};
pub use self::hex::{parse_hex, to_hex, HexError};
pub use self::server_id::{ServerId, ServerIdError};

/// Longest connection ID QUIC versions 1 and 2 allow (RFC 9000 section 17.2), and so the
/// longest QUIC-LB CID.
pub const MAX_CID_LEN: usize = 20;

/// The config rotation codepoint 0b111: a CID of a server without a configuration, always
/// unroutable (draft section 3.2, "Configuration Failover"). No configuration may use it.
pub const UNROUTABLE: u8 = 0b111;

/// Shortest server ID (draft section 5.1: "at least one octet").
pub const MIN_SERVER_ID_LEN: usize = 1;
/// Longest server ID: 19 bytes less the shortest nonce.
pub const MAX_SERVER_ID_LEN: usize = MAX_PLAINTEXT_LEN - MIN_NONCE_LEN;
/// Shortest nonce (draft section 5.3: "at least 4 octets").
pub const MIN_NONCE_LEN: usize = 4;
/// Longest nonce: 19 bytes less the shortest server ID.
pub const MAX_NONCE_LEN: usize = MAX_PLAINTEXT_LEN - MIN_SERVER_ID_LEN;
/// Most bytes of server ID and nonce together (draft section 5.3: they "MUST sum to 19
/// octets or less", the CID's first octet making 20).
pub const MAX_PLAINTEXT_LEN: usize = MAX_CID_LEN - 1;
/// The server ID and nonce length whose sum is one AES block: single-pass encryption.
pub const SINGLE_PASS_LEN: usize = 16;

/// The config rotation codepoint of a CID's first octet (its top three bits).
#[inline]
pub const fn codepoint(first_octet: u8) -> u8 {
    first_octet >> 5
}
