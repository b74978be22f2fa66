//! The fleet side of a director: how it tells the network what it serves. Today that is
//! BGP through a real daemon ([`bgp`]: BIRD 2 driven over its control socket, with a
//! lifeline that takes the routes away when the director dies), and the fleet's shared
//! store, etcd (`etcd`: revisioned documents with compare-and-swap, watches, leases and
//! leader election behind a synchronous facade; cargo feature `etcd`, since its gRPC code
//! needs protoc to build). See `src/fleet/README.md`.
pub mod bgp;
pub mod docs;
#[cfg(feature = "etcd")]
pub mod etcd;

/// A setting of one of the fleet's sections (`[bgp]`, `[fleet]`) was refused: which
/// section and field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{section} {field}: {message}")]
pub struct FieldError {
    /// How the section is named in messages (`[bgp]`, `etcd settings:`).
    pub section: &'static str,
    pub field: String,
    pub message: String,
}
