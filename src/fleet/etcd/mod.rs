//! The fleet's shared store: etcd, through the `etcd-client` crate (gRPC, tonic), behind a
//! synchronous facade. Nothing async leaks out: [`EtcdStore`] owns a current-thread tokio
//! runtime and blocks on each request under a timeout; a watch ([`Watch`]) and a lease
//! keepalive ([`Lease`]) each run on a thread of their own with their own runtime and
//! connection, and talk to the caller through channels and atomics.
//!
//! - `settings.rs`: [`EtcdSettings`], validated, every error naming its field.
//! - `conn.rs`: connecting (TLS, auth, endpoint rotation, the connect timeout).
//! - `store.rs`: [`EtcdStore`]: documents with compare-and-swap, history, lease-bound keys,
//!   the election and leader-guarded writes.
//! - `watch.rs`: [`Watch`]: a key's revisions as [`WatchEvent`]s, resumed across
//!   reconnects, never going backwards.
//! - `lease.rs`: [`Lease`]: a lease kept alive by a thread, which knows (locally) until
//!   when it is surely valid and says when it is lost.
//!
//! Keys given to the API are relative to [`EtcdSettings::prefix`]: `desired` is
//! `<prefix>/desired`; elections live under `<prefix>/election/<name>`.
//! See `src/fleet/README.md` ("etcd").

mod conn;
mod lease;
mod settings;
mod store;
mod watch;

pub use lease::Lease;
pub use settings::{
    validate_prefix, EtcdSettings, SettingsError, TlsSettings, DEFAULT_MAX_DOCUMENT_BYTES,
    MAX_DOCUMENT_LIMIT,
};
pub use store::{Document, EtcdStore, Leadership};
pub use watch::{Watch, WatchEvent};

/// What an etcd operation can fail with. Messages say which key, which endpoint set and
/// what was expected.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("etcd: cannot start the client runtime: {0}")]
    Runtime(std::io::Error),
    #[error("etcd: reading TLS file {path}: {source}")]
    TlsFile {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("etcd: no endpoint of [{endpoints}] answered within {timeout_ms} ms each (last error: {last})")]
    Unreachable {
        endpoints: String,
        timeout_ms: u64,
        last: String,
    },
    #[error("etcd: {op} {key}: no answer within {timeout_ms} ms")]
    Timeout {
        op: &'static str,
        key: String,
        timeout_ms: u64,
    },
    #[error("etcd: {op} {key}: {message}")]
    Request {
        op: &'static str,
        key: String,
        message: String,
    },
    #[error(
        "etcd: {key}: document {size} is over the limit of {limit} bytes (max_document_bytes)"
    )]
    TooLarge {
        key: String,
        /// "of N bytes", or "too large to receive" when etcd sent more than the limit.
        size: String,
        limit: usize,
    },
    #[error("etcd: {key}: expected revision {expected}{}, but it is at revision {current}{}: someone else wrote it first", if *expected == 0 { " (absent)" } else { "" }, if *current == 0 { " (absent)" } else { "" })]
    Conflict {
        key: String,
        expected: i64,
        current: i64,
    },
    #[error("etcd: {key}: not written: this process is no longer the leader of {election}")]
    NotLeader { key: String, election: String },
    #[error("etcd: bad key {key:?}: {why}")]
    BadKey { key: String, why: &'static str },
    #[error("etcd: lease {id:x} is lost ({why}); make a new lease")]
    LeaseLost { id: i64, why: String },
    #[error("etcd: campaign for {election}: not elected within {timeout_ms} ms")]
    CampaignTimeout { election: String, timeout_ms: u64 },
}
