//! Forwarding tables: what a table is (binds + backends + rows), how rows are built
//! (rendezvous hashing, [`build`]), and the file formats ([`glb_bin`], [`glb_json`]).

pub mod build;
pub mod diff;
pub mod fingerprint;
pub mod glb_bin;
pub mod glb_json;

pub use fingerprint::fingerprint;

use std::net::IpAddr;

/// Rows per table; `row = hash & 0xffff`, fixed by GLB's format.
pub const TABLE_ROWS: usize = 65536;

/// Backend lifecycle state, with GLB's meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendState {
    /// Being added: takes rows like an active backend; unknown flows go on to the secondary.
    Filling,
    /// Normal.
    Active,
    /// Being removed: keeps its existing connections (as secondary) but gets no new rows as primary.
    Draining,
    /// Not in the rendezvous at all.
    Inactive,
}

impl BackendState {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendState::Filling => "filling",
            BackendState::Active => "active",
            BackendState::Draining => "draining",
            BackendState::Inactive => "inactive",
        }
    }
}

impl std::str::FromStr for BackendState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "filling" => Ok(BackendState::Filling),
            "active" => Ok(BackendState::Active),
            "draining" => Ok(BackendState::Draining),
            "inactive" => Ok(BackendState::Inactive),
            other => Err(format!(
                "expected one of active, draining, filling, inactive; got {other:?}"
            )),
        }
    }
}

/// L4 protocol of a bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    Tcp = 6,
    Udp = 17,
}

impl Proto {
    pub fn number(self) -> u8 {
        self as u8
    }
    pub fn from_number(n: u8) -> Option<Proto> {
        match n {
            6 => Some(Proto::Tcp),
            17 => Some(Proto::Udp),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// Health checks configured for a backend (GLB's `healthchecks` object).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthChecks {
    pub http: Option<u16>,
    pub http_uri: Option<String>,
    pub tcp: Option<u16>,
    pub gue: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    pub ip: IpAddr,
    pub state: BackendState,
    pub healthy: bool,
    /// Rendezvous weight (native tables); GLB tables are always weight 1.
    pub weight: u32,
    pub healthchecks: HealthChecks,
}

/// A VIP match: destination in `addr/prefix_len`, protocol, destination port in
/// `port_start..=port_end`. Host bits of `addr` are kept as written (GLB does not mask them)
/// but ignored when matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bind {
    pub addr: IpAddr,
    pub prefix_len: u8,
    pub proto: Proto,
    pub port_start: u16,
    pub port_end: u16,
}

impl Bind {
    /// Whether `ip` is inside this bind's prefix (families must match).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let bits = u32::from(self.prefix_len.min(32));
                let mask = if bits == 0 {
                    0
                } else {
                    u32::MAX << (32 - bits)
                };
                (u32::from(net) & mask) == (u32::from(ip) & mask)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let bits = u32::from(self.prefix_len.min(128));
                let mask = if bits == 0 {
                    0
                } else {
                    u128::MAX << (128 - bits)
                };
                (u128::from(net) & mask) == (u128::from(ip) & mask)
            }
            _ => false,
        }
    }
}

/// Everything that defines a table before its rows are built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    /// Operator-facing name (`table0`, `table1`, ... when the source has none).
    pub name: String,
    /// SipHash key for packet hashing (`hash_key`, GLB's `secure_key`).
    pub hash_key: [u8; 16],
    /// SipHash key for the rendezvous; `None` for tables read from a GLB .bin, which does not store it.
    pub seed: Option<[u8; 16]>,
    pub binds: Vec<Bind>,
    pub backends: Vec<Backend>,
    /// QUIC-LB on the table's UDP binds (native tables only; `None` for GLB tables).
    pub quic_lb: Option<QuicLbTable>,
}

/// A table's QUIC-LB settings: the configurations every UDP bind of the table decodes
/// destination connection IDs with (at most two, for key rotation; all with one server ID
/// length), and the server ID of each backend that has one. Validated when parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuicLbTable {
    pub configs: Vec<crate::quic_lb::QuicLbSpec>,
    /// (backend address, its server ID); a backend without one is reached by the hash only.
    pub server_ids: Vec<(IpAddr, crate::quic_lb::ServerId)>,
}

/// How rows are chosen from the rendezvous order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowPolicy {
    /// Byte-for-byte GLB (`glb-director-cli`): 2 hops, GLB's rendezvous ranking and its
    /// primary/secondary swap rule, bugs included.
    Glb,
    /// Rondo's fixed semantics: walk the whole rendezvous order for the first usable backends,
    /// `hops` hops per row (>= 1), weights honoured.
    Native { hops: usize },
}

/// A built table: spec plus `TABLE_ROWS * hops` backend indices, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardingTable {
    pub spec: TableSpec,
    pub policy: RowPolicy,
    hops: usize,
    rows: Box<[u32]>,
}

impl ForwardingTable {
    /// Assemble from parts; `rows.len()` must be `TABLE_ROWS * hops` and every index must
    /// name a backend of `spec`.
    pub fn from_parts(
        spec: TableSpec,
        policy: RowPolicy,
        hops: usize,
        rows: Box<[u32]>,
    ) -> Result<Self, TableError> {
        if hops == 0 || rows.len() != TABLE_ROWS * hops {
            return Err(TableError::Invalid {
                table: spec.name.clone(),
                reason: format!(
                    "expected {} row entries ({} rows x {} hops), got {}",
                    TABLE_ROWS * hops,
                    TABLE_ROWS,
                    hops,
                    rows.len()
                ),
            });
        }
        let n = spec.backends.len();
        if let Some((i, idx)) = rows.iter().enumerate().find(|(_, &b)| b as usize >= n) {
            return Err(TableError::Invalid {
                table: spec.name.clone(),
                reason: format!(
                    "row {} names backend index {} but the table has {} backends",
                    i / hops,
                    idx,
                    n
                ),
            });
        }
        Ok(ForwardingTable {
            spec,
            policy,
            hops,
            rows,
        })
    }

    /// Hops per row (2 for GLB tables).
    pub fn hops(&self) -> usize {
        self.hops
    }

    /// Backend indices of row `row`: `[primary, secondary, ...]`.
    #[inline]
    pub fn row(&self, row: u16) -> &[u32] {
        let start = usize::from(row) * self.hops;
        &self.rows[start..start + self.hops]
    }

    /// Row `row` of a table with two hops per row (primary and secondary), `None` for other
    /// tables: [`ForwardingTable::row`] as an array, found with a shift rather than a
    /// multiplication.
    #[inline]
    pub fn pair(&self, row: u16) -> Option<&[u32; 2]> {
        Some(&self.pairs()?[usize::from(row)])
    }

    /// All rows of a table with two hops per row, as pairs (`None` for other tables): for
    /// looking up many rows of one table, by a `u16` with no bounds check.
    #[inline]
    pub fn pairs(&self) -> Option<&[[u32; 2]; TABLE_ROWS]> {
        if self.hops != 2 {
            return None;
        }
        self.rows.as_chunks::<2>().0.try_into().ok()
    }

    /// All rows, row-major.
    pub fn rows(&self) -> &[u32] {
        &self.rows
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("table {table:?}: no backend is available (all are inactive or there are none); a table needs at least one")]
    NoBackends { table: String },
    #[error("table {table:?}: {count} {what}, but the GLB binary format holds at most 256; use a native (TOML) table for more")]
    TooMany {
        table: String,
        what: &'static str,
        count: usize,
    },
    #[error("table {table:?}: {reason}")]
    Invalid { table: String, reason: String },
    #[error("{file}: {reason}")]
    Format { file: String, reason: String },
    #[error("{file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Read(#[from] crate::sys::file::ReadError),
}
