//! `rondo fleet`: the operator's command for a fleet whose desired state lives in etcd
//! (issue 20; see `src/fleet/README.md`, "rondo fleet"). Needs a build with
//! `--features etcd`; without it the command exists and says so.
//!
//! - `doc.rs`: the desired document parsed and checked (every table built), its overrides
//!   with the console's rules.
//! - `edit.rs`: overrides written back in the document's own format (TOML comments kept).
//! - `compare.rs`: what one document changes against another (rows moved, backends).
//! - `status.rs`: `status` and `wait` (the directors' reports).
//! - `write.rs`: `push`, `set`, `clear`, `rollback` (compare-and-swap on the revision).
//! - `revisions.rs`: `diff` and `history`.

#![cfg_attr(not(feature = "etcd"), allow(dead_code))]

mod compare;
mod doc;
mod edit;
#[cfg(feature = "etcd")]
mod revisions;
#[cfg(feature = "etcd")]
mod status;
#[cfg(feature = "etcd")]
mod write;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

#[derive(Args)]
pub struct FleetArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(subcommand)]
    cmd: FleetCmd,
}

/// Where the fleet lives: a config's `[fleet]` table, or the flags (which override it).
#[derive(Args, Clone)]
pub struct ConnArgs {
    /// A TOML file whose `[fleet]` table is the etcd settings (a director's config works:
    /// other tables are ignored).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// etcd endpoints, comma-separated (`http://HOST:PORT`).
    #[arg(long, global = true, value_delimiter = ',')]
    endpoints: Vec<String>,
    /// The fleet's key prefix (e.g. `/rondo/prod`).
    #[arg(long, global = true)]
    prefix: Option<String>,
    /// This client's name (default `rondo-fleet-<host>`).
    #[arg(long, global = true)]
    name: Option<String>,
    #[arg(long, global = true)]
    user: Option<String>,
    #[arg(long, global = true)]
    password: Option<String>,
}

#[derive(Subcommand)]
enum FleetCmd {
    /// Every director: applied vs desired revision, fingerprints equal or not, age, errors.
    /// Exits 1 when a director is behind, refused the revision, or fingerprints differ.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Validate FILE locally, then write it as the desired document (compare-and-swap).
    Push {
        file: PathBuf,
        /// Write only if the desired document is at this revision (default: the one read).
        #[arg(long)]
        expect_revision: Option<i64>,
        /// Drop the current document's overrides instead of carrying them over.
        #[arg(long)]
        replace_overrides: bool,
    },
    /// `set backend TABLE IP state=S|weight=W|health=up|down|auto... [force] [dry-run]`.
    Set {
        /// `backend`.
        what: String,
        table: String,
        ip: String,
        /// Changes (`state=draining`, `weight=2`, `health=down`), `force`, `dry-run`.
        #[arg(required = true)]
        words: Vec<String>,
    },
    /// `clear backend TABLE IP [force] [dry-run]`, or `clear all [dry-run]`.
    Clear {
        /// `backend` or `all`.
        what: String,
        words: Vec<String>,
    },
    /// What the pending change moves: FILE vs the current document (without FILE: the
    /// previous revision vs the current one).
    Diff {
        file: Option<PathBuf>,
        /// As `push --replace-overrides` would write FILE (default: as `push`, the current
        /// overrides carried over into a FILE without any).
        #[arg(long)]
        replace_overrides: bool,
        #[arg(long)]
        json: bool,
    },
    /// The desired document's revisions, newest first.
    History {
        #[arg(long, default_value_t = 20)]
        max: usize,
        #[arg(long)]
        json: bool,
    },
    /// Write revision REV's document again, as a new revision (compare-and-swap).
    Rollback { rev: i64 },
    /// Block until every live director applied the revision (or refused it).
    Wait {
        /// Default: the current desired revision.
        #[arg(long)]
        revision: Option<i64>,
        /// `30s`, `500ms`, `2m`.
        #[arg(long, default_value = "30s")]
        timeout: String,
        /// Wait for at least this many directors to report.
        #[arg(long, default_value_t = 1)]
        min_directors: usize,
    },
}

/// How a subcommand failed: a usage error (exit 2) or a failure (exit 1).
#[derive(Debug)]
pub enum Fail {
    Usage(String),
    Failed(String),
}

impl From<String> for Fail {
    fn from(s: String) -> Fail {
        Fail::Failed(s)
    }
}

/// `Ok(true)`: exit 0; `Ok(false)`: the command said what is wrong, exit 1.
pub type Outcome = Result<bool, Fail>;

/// Entry point: the exit code (0 ok, 1 failure, 2 usage).
pub fn main(args: &FleetArgs) -> ExitCode {
    match dispatch(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(super::EXIT_FAILURE),
        Err(Fail::Usage(m)) => {
            eprintln!("rondo fleet: usage: {m}");
            ExitCode::from(2)
        }
        Err(Fail::Failed(m)) => {
            eprintln!("rondo fleet: error: {m}");
            ExitCode::from(super::EXIT_FAILURE)
        }
    }
}

#[cfg(not(feature = "etcd"))]
fn dispatch(_args: &FleetArgs) -> Outcome {
    Err(Fail::Failed(
        "`rondo fleet` needs a build with `--features etcd` (cargo build --release --features etcd; needs protoc)".into(),
    ))
}

/// Parse `30s`, `500ms`, `2m` or plain seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let t = s.trim();
    let (num, mult_ms) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1000.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60_000.0)
    } else {
        (t, 1000.0)
    };
    match num.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 && v * mult_ms < 1e12 => {
            Ok(std::time::Duration::from_millis((v * mult_ms) as u64))
        }
        _ => Err(format!(
            "expected a duration such as 30s, 500ms or 2m, got {s:?}"
        )),
    }
}

#[cfg(feature = "etcd")]
use crate::fleet::etcd::{EtcdSettings, EtcdStore};

#[cfg(feature = "etcd")]
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The etcd settings from `--config` and the flags.
#[cfg(feature = "etcd")]
pub fn settings(c: &ConnArgs) -> Result<EtcdSettings, Fail> {
    let mut s = match &c.config {
        Some(path) => {
            let text = crate::sys::file::read_text_bounded(
                path,
                crate::sys::file::CONFIG_LIMIT,
                "a TOML config with a [fleet] table",
            )
            .map_err(|e| Fail::Failed(e.to_string()))?;
            let doc: toml::Table = toml::from_str(&text)
                .map_err(|e| Fail::Failed(format!("{}: {}", path.display(), e.message())))?;
            let fleet = doc.get("fleet").cloned().ok_or_else(|| {
                Fail::Failed(format!(
                    "{}: no [fleet] table (the etcd settings: endpoints, prefix, name)",
                    path.display()
                ))
            })?;
            fleet.try_into::<EtcdSettings>().map_err(|e| {
                Fail::Failed(format!("{}: [fleet]: {}", path.display(), e.message()))
            })?
        }
        None => {
            let prefix = c.prefix.clone().ok_or_else(|| {
                Fail::Usage(
                    "give --config FILE (with a [fleet] table) or --endpoints URL[,URL] --prefix P"
                        .into(),
                )
            })?;
            EtcdSettings::new(vec![], &prefix, "")
        }
    };
    if !c.endpoints.is_empty() {
        s.endpoints = c.endpoints.clone();
    }
    if s.endpoints.is_empty() {
        return Err(Fail::Usage(
            "no etcd endpoints: give --endpoints URL[,URL] or --config FILE".into(),
        ));
    }
    if let Some(p) = &c.prefix {
        s.prefix = p.clone();
    }
    if let Some(n) = &c.name {
        s.name = n.clone();
    }
    if s.name.is_empty() {
        s.name = format!("rondo-fleet-{}", host_name());
    }
    if c.user.is_some() {
        s.user = c.user.clone();
    }
    if c.password.is_some() {
        s.password = c.password.clone();
    }
    s.validate().map_err(|e| Fail::Usage(e.to_string()))?;
    Ok(s)
}

/// Connect, naming the endpoints and prefix on failure.
#[cfg(feature = "etcd")]
pub fn connect(c: &ConnArgs) -> Result<EtcdStore, Fail> {
    let s = settings(c)?;
    let prefix = s.prefix.clone();
    EtcdStore::connect(s).map_err(|e| Fail::Failed(format!("fleet {prefix}: {e}")))
}

/// `<prefix>/<key>@<rev>`: how a document is named in messages.
#[cfg(feature = "etcd")]
pub fn doc_name(store: &EtcdStore, key: &str, rev: i64) -> String {
    format!("etcd {}/{key}@{rev}", store.settings().prefix)
}

#[cfg(feature = "etcd")]
fn dispatch(args: &FleetArgs) -> Outcome {
    match &args.cmd {
        FleetCmd::Status { json } => status::status(&args.conn, *json),
        FleetCmd::Wait {
            revision,
            timeout,
            min_directors,
        } => {
            let t = parse_duration(timeout).map_err(Fail::Usage)?;
            status::wait(&args.conn, *revision, t, *min_directors)
        }
        FleetCmd::Push {
            file,
            expect_revision,
            replace_overrides,
        } => write::push(&args.conn, file, *expect_revision, *replace_overrides),
        FleetCmd::Set {
            what,
            table,
            ip,
            words,
        } => write::set(&args.conn, what, table, ip, words),
        FleetCmd::Clear { what, words } => write::clear(&args.conn, what, words),
        FleetCmd::Rollback { rev } => write::rollback(&args.conn, *rev),
        FleetCmd::Diff {
            file,
            replace_overrides,
            json,
        } => revisions::diff(&args.conn, file.as_deref(), *replace_overrides, *json),
        FleetCmd::History { max, json } => revisions::history(&args.conn, *max, *json),
    }
}

/// Unix time now, milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30s").unwrap().as_millis(), 30_000);
        assert_eq!(parse_duration("500ms").unwrap().as_millis(), 500);
        assert_eq!(parse_duration("2m").unwrap().as_secs(), 120);
        assert_eq!(parse_duration("1.5").unwrap().as_millis(), 1500);
        for bad in ["", "x", "-1s", "1h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
