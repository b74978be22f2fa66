//! The fleet's documents in etcd: key names and the JSON a director and the health checker
//! write (the desired document's own format is `crate::config::desired`). Plain data, no
//! etcd code: `rondo fleet`, `rondo run` and `rondo healthcheck --fleet` all read these,
//! and tests can build them without a store. See `src/fleet/README.md`, "The fleet's
//! documents".
//!
//! Keys are relative to the `[fleet]` prefix:
//! - [`DESIRED`]: the desired document (tables and overrides), written by `rondo fleet`
//!   with compare-and-swap on its `mod_revision`; that revision is "the revision".
//! - [`status_key`]`(name)`: a [`DirectorStatus`], JSON, bound to the director's lease (it
//!   vanishes when the director dies), rewritten whenever it changes and at least every
//!   [`STATUS_REFRESH`].
//! - [`HEALTH`]: a [`HealthDoc`], JSON, written only by the elected checker leader
//!   (`put_if_leader`).
//!
//! Readers ignore fields they do not know: a fleet runs mixed versions during an upgrade.
//! - the checker's election is [`HEALTH_ELECTION`] (`<prefix>/election/healthcheck`).

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The desired document.
pub const DESIRED: &str = "desired";
/// The health checker leader's results.
pub const HEALTH: &str = "health";
/// Where directors report (one key per director below it).
pub const STATUS_DIR: &str = "directors";
/// The health checkers' election name.
pub const HEALTH_ELECTION: &str = "healthcheck";
/// A director rewrites its status at least this often (its `updated_ms` shows the age).
pub const STATUS_REFRESH: Duration = Duration::from_secs(5);

/// The status key of director `name` (`directors/<name>`).
pub fn status_key(name: &str) -> String {
    format!("{STATUS_DIR}/{name}")
}

/// What one director runs, as it reports it under [`status_key`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectorStatus {
    /// `[fleet] name`.
    pub name: String,
    pub pid: u32,
    /// Host name of the machine.
    pub host: String,
    /// Rondo's version (`CARGO_PKG_VERSION`).
    pub version: String,
    /// Unix time, milliseconds: when the process started, and when this was written.
    pub started_ms: u64,
    pub updated_ms: u64,
    /// The newest desired revision this director has seen (0: none yet).
    pub seen_revision: i64,
    /// The desired revision whose tables are live here (0: none; running on the local
    /// cache counts as the cached revision).
    pub applied_revision: i64,
    /// The newest revision it refused, and why (validation failed; the running tables
    /// stayed). Cleared once a later revision is applied.
    pub refused: Option<Refusal>,
    /// Where the live tables came from: "etcd", or "cache" (started without etcd on the
    /// locally persisted last good document).
    pub source: String,
    /// Every live table: name and fingerprint (see `crate::table::fingerprint`).
    pub tables: Vec<TableFingerprint>,
    /// The health document revision applied (0: none).
    pub health_revision: i64,
    /// Port specs and whether each link is up.
    pub ports: Vec<PortStatus>,
    /// "forwarding", "stopped" (console `stop`), "starting" or "stopping".
    pub forwarding: String,
    /// BGP: per VIP prefix, announced or not (empty without `[bgp]`).
    pub bgp: Vec<BgpVipStatus>,
    /// The last error worth an operator's attention (etcd trouble, a cache write failing), or
    /// `None`.
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub revision: i64,
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableFingerprint {
    pub name: String,
    /// 16 lowercase hex digits.
    pub fingerprint: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortStatus {
    pub spec: String,
    pub link_up: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BgpVipStatus {
    pub prefix: String,
    pub announced: bool,
    /// Why not announced (empty when announced).
    pub reason: String,
}

/// The health checker leader's results under [`HEALTH`]. Directors apply `backends` as
/// health observations (an operator's `health` override still wins); a new leader reads
/// `targets` to carry the dampening on where the old one left it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthDoc {
    /// The leader's name (`--name`, or host:pid) and its leadership's revision (etcd's
    /// create revision of the leader key): a new term has a higher one.
    pub leader: String,
    pub term: i64,
    /// The desired revision whose backends were checked.
    pub desired_revision: i64,
    /// Unix time, milliseconds, of the round written.
    pub round_ms: u64,
    /// Every checked backend's dampened health.
    pub backends: Vec<BackendHealth>,
    /// The dampener of every check target.
    pub targets: Vec<TargetDampening>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendHealth {
    pub table: String,
    pub ip: String,
    pub healthy: bool,
}

/// One check target's dampener (GLB's `DampenedResultStream`): the value it reports, the
/// raw value of the current run and the run's length.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetDampening {
    /// The target as the checker names it, e.g. `http://10.1.0.1:80/` or `gue:10.1.0.1:19523`.
    pub target: String,
    pub reported: Option<bool>,
    pub current: bool,
    pub streak: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_and_tolerates_fields_added_later() {
        let s = DirectorStatus {
            name: "d1".into(),
            pid: 7,
            host: "h".into(),
            version: "0.1.0".into(),
            started_ms: 1,
            updated_ms: 2,
            seen_revision: 5,
            applied_revision: 4,
            refused: Some(Refusal {
                revision: 5,
                error: "bad".into(),
            }),
            source: "etcd".into(),
            tables: vec![TableFingerprint {
                name: "web".into(),
                fingerprint: "00112233445566ff".into(),
            }],
            health_revision: 0,
            ports: vec![],
            forwarding: "forwarding".into(),
            bgp: vec![],
            last_error: None,
        };
        let j = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<DirectorStatus>(&j).unwrap(), s);
        let mut v: serde_json::Value = serde_json::from_str(&j).unwrap();
        // A newer director may add fields: an older `rondo fleet` still reads the rest.
        v["added_later"] = 1.into();
        assert_eq!(serde_json::from_value::<DirectorStatus>(v).unwrap(), s);
        assert_eq!(status_key("d1"), "directors/d1");
    }
}
