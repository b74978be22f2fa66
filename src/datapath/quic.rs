//! QUIC-LB in the data path (issue 22): a UDP packet to a table with `quic_lb` goes to the
//! backend whose server ID its destination connection ID carries, with the rendezvous
//! row's other hops after it for second chance; any packet whose CID does not name a
//! usable backend of the table takes the row as every other packet does (the draft's
//! fallback). Built once per snapshot: the AES key schedules, the server IDs sorted for a
//! binary search and which backends may take packets. Per packet: one header parse, one
//! decode (no AES for plaintext CIDs, one block for single-pass, three or four for the
//! four-pass network), one search; no allocation.

use std::net::IpAddr;

use crate::quic_lb::{header, Decoded, Header, HeaderError, QuicLbConfigs, ServerId};
use crate::table::{BackendState, TableSpec};

use super::counters::QuicOutcome;

/// A table's QUIC-LB routing, compiled.
#[derive(Debug, Clone)]
pub struct QuicRoute {
    configs: QuicLbConfigs,
    /// (server ID as a [`id_key`], backend index), sorted: an integer binary search per
    /// packet (comparing `ServerId`s byte array by byte array cost a third of the path).
    by_id: Box<[(u128, u32)]>,
    /// Per backend index: it may take packets named for it (healthy, and active, filling
    /// or draining: a draining backend keeps its connections).
    usable: Box<[bool]>,
}

/// Why a table's QUIC-LB settings cannot be compiled.
#[derive(Debug, thiserror::Error)]
pub enum QuicRouteError {
    #[error("quic_lb: {0}")]
    Config(#[from] crate::quic_lb::ConfigError),
    #[error("quic_lb: backend {0}'s server ID is another backend's too")]
    Duplicate(IpAddr),
    #[error("quic_lb: server ID of {0}, which is not a backend of the table")]
    NotABackend(IpAddr),
    #[error("quic_lb: server ID of {0}, backend {1} of the table: QUIC-LB routes to the first 65535 backends only")]
    BackendIndex(IpAddr, usize),
}

impl QuicRoute {
    /// Compile `spec`'s QUIC-LB settings; `None` when it has none.
    pub fn compile(spec: &TableSpec) -> Result<Option<QuicRoute>, QuicRouteError> {
        let Some(q) = &spec.quic_lb else {
            return Ok(None);
        };
        let configs = QuicLbConfigs::from_specs(q.configs.iter())?;
        let mut by_id = Vec::with_capacity(q.server_ids.len());
        for (ip, id) in &q.server_ids {
            let i = spec
                .backends
                .iter()
                .position(|b| b.ip == *ip)
                .ok_or(QuicRouteError::NotABackend(*ip))?;
            // A flow pins index + 1 in 16 bits.
            if i >= usize::from(u16::MAX) {
                return Err(QuicRouteError::BackendIndex(*ip, i));
            }
            by_id.push((id_key(id), i as u32));
        }
        by_id.sort_unstable();
        if let Some(w) = by_id.windows(2).find(|w| w[0].0 == w[1].0) {
            let ip = spec.backends[w[1].1 as usize].ip;
            return Err(QuicRouteError::Duplicate(ip));
        }
        let usable = spec
            .backends
            .iter()
            .map(|b| b.healthy && b.state != BackendState::Inactive)
            .collect();
        Ok(Some(QuicRoute {
            configs,
            by_id: by_id.into_boxed_slice(),
            usable,
        }))
    }

    /// The configurations CIDs are decoded with.
    pub fn configs(&self) -> &QuicLbConfigs {
        &self.configs
    }

    /// The backend (index) with server ID `id`, if any.
    #[inline]
    pub fn backend_of(&self, id: &ServerId) -> Option<u32> {
        let k = id_key(id);
        let i = self.by_id.partition_point(|(x, _)| *x < k);
        match self.by_id.get(i) {
            Some(&(x, b)) if x == k => Some(b),
            _ => None,
        }
    }

    /// Route the UDP datagram `udp` (header and payload): the pinned backend's index, or
    /// why the row's hops stay as they are.
    #[inline]
    pub fn route(&self, udp: &[u8]) -> (Option<u32>, QuicOutcome) {
        let payload = udp.get(8..).unwrap_or_default();
        let dcid = match header::parse(payload, &self.configs) {
            Ok(Header::VersionNegotiation { .. }) => {
                return (None, QuicOutcome::VersionNegotiation)
            }
            Ok(h) => h.dcid(),
            Err(HeaderError::UnknownShortLength { .. }) => {
                return (None, QuicOutcome::UnknownConfig)
            }
            Err(_) => return (None, QuicOutcome::NotQuic),
        };
        match self.configs.decode(dcid) {
            Decoded::ServerId(id) => match self.backend_of(&id) {
                Some(b) if self.usable.get(b as usize) == Some(&true) => {
                    (Some(b), QuicOutcome::Routed)
                }
                Some(_) => (None, QuicOutcome::UnusableServer),
                None => (None, QuicOutcome::UnknownServer),
            },
            Decoded::Unroutable => (None, QuicOutcome::Unroutable),
            Decoded::UnknownConfig(_) => (None, QuicOutcome::UnknownConfig),
            Decoded::TooShort => (None, QuicOutcome::TooShort),
        }
    }
}

/// A server ID as one integer: its length in the top byte, its bytes after it (1..=15), so
/// that equal keys are equal IDs.
#[inline(always)]
fn id_key(id: &ServerId) -> u128 {
    let mut b = [0u8; 16];
    let bytes = id.as_bytes();
    b[0] = bytes.len() as u8;
    b[1..1 + bytes.len()].copy_from_slice(bytes);
    u128::from_be_bytes(b)
}

/// Hops for a packet pinned to backend `pin`: `pin` first, then the row's hops other than
/// `pin` in their order, as many as the row has (a row of one hop gives `[pin]`). Written
/// to `out`; the hops are `out[..row.len()]`.
#[inline]
pub(crate) fn pinned_hops(pin: u32, row: &[u32], out: &mut [u32]) -> usize {
    let n = row.len().min(out.len());
    if n == 0 {
        return 0;
    }
    out[0] = pin;
    let mut k = 1;
    for &h in row {
        if k == n {
            break;
        }
        if h != pin {
            out[k] = h;
            k += 1;
        }
    }
    // Fewer distinct hops than slots (the row repeated `pin`): repeat the last.
    while k < n {
        out[k] = out[k - 1];
        k += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pinned_backend_leads_and_the_row_follows() {
        let mut out = [0u32; 4];
        assert_eq!(pinned_hops(7, &[1, 2], &mut out), 2);
        assert_eq!(out[..2], [7, 1]);
        pinned_hops(2, &[1, 2], &mut out);
        assert_eq!(out[..2], [2, 1]);
        pinned_hops(1, &[1, 2, 3], &mut out);
        assert_eq!(out[..3], [1, 2, 3]);
        pinned_hops(1, &[1, 1], &mut out);
        assert_eq!(out[..2], [1, 1]);
        assert_eq!(pinned_hops(5, &[], &mut out), 0);
        assert_eq!(pinned_hops(5, &[9], &mut out), 1);
        assert_eq!(out[0], 5);
    }
}
