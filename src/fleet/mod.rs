//! The fleet side of a director: how it tells the network what it serves. Today that is
//! BGP through a real daemon ([`bgp`]: BIRD 2 driven over its control socket, with a
//! lifeline that takes the routes away when the director dies); a shared state store
//! (etcd) may join it later. See `src/fleet/README.md`.
pub mod bgp;
pub mod etcd;
