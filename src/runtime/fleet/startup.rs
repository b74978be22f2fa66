//! A fleet director's start-up (feature `etcd`): connect to etcd (the connect timeout),
//! read `desired`, build its tables with this director's own `[director]` settings and go
//! live on them; if etcd is unreachable (or its document cannot be used) start on the
//! local cache instead, and say so (`source: "cache"`). Neither: an error, nothing
//! started.

use super::cache;
use crate::config::desired::parse_desired;
use crate::config::Config;
use crate::datapath::Snapshot;
use crate::fleet::docs::{Refusal, DESIRED};
use crate::fleet::etcd::{EtcdSettings, EtcdStore};
use crate::runtime::control::Control;
use crate::runtime::overrides::BackendOverride;
use crate::table::ForwardingTable;

/// The document's operator overrides, as [`Control::apply_desired`] takes them.
pub type Rules = crate::runtime::overrides::OperatorRules;

/// Build a desired document for this director: its tables with the local `[director]`
/// settings (row policy), and its overrides. `what` names the document in errors.
pub fn build(bytes: &[u8], what: &str, local: &Config) -> Result<(Config, Rules), String> {
    let d = parse_desired(bytes, what).map_err(|e| e.to_string())?;
    let tables = d
        .specs
        .into_iter()
        .map(|s| {
            ForwardingTable::build(s, local.settings.row_policy).map_err(|e| format!("{what}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let rules = d
        .overrides
        .into_iter()
        .map(|r| {
            (
                (r.table, r.ip),
                BackendOverride {
                    state: r.state,
                    weight: r.weight,
                    health: r.health,
                },
            )
        })
        .collect();
    Ok((
        Config {
            settings: local.settings.clone(),
            tables,
            run: local.run.clone(),
        },
        rules,
    ))
}

/// What start-up found: the first snapshot's origin and the store, if etcd answered.
pub struct Started {
    pub store: Option<EtcdStore>,
    pub revision: i64,
    pub seen_revision: i64,
    /// The live tables' document (written to the cache once forwarding).
    pub document: Vec<u8>,
    pub source: &'static str,
    pub refused: Option<Refusal>,
    pub last_error: Option<String>,
}

pub(super) fn desired_name(s: &EtcdSettings, rev: i64) -> String {
    format!("etcd {}/{DESIRED}@{rev}", s.prefix)
}

/// Start-up: the first snapshot from etcd's desired document, else from the cache. See the
/// module docs.
pub fn start(
    s: &EtcdSettings,
    local: &Config,
    control: &mut Control,
) -> Result<(Snapshot, Started), String> {
    control.set_follows(&s.prefix);
    let mut st = Started {
        store: None,
        revision: 0,
        seen_revision: 0,
        document: Vec::new(),
        source: "etcd",
        refused: None,
        last_error: None,
    };
    match EtcdStore::connect(s.clone()) {
        Ok(mut store) => {
            match store.get_document(DESIRED) {
                Ok(Some(doc)) => {
                    let rev = doc.mod_revision;
                    st.seen_revision = rev;
                    let what = desired_name(s, rev);
                    match build(&doc.bytes, &what, local)
                        .and_then(|(cfg, rules)| control.initial_from(cfg, rules))
                    {
                        Ok(snap) => {
                            tracing::info!(revision = rev, prefix = %s.prefix, "fleet: starting on etcd's desired document");
                            st.revision = rev;
                            st.document = doc.bytes;
                            st.store = Some(store);
                            return Ok((snap, st));
                        }
                        Err(e) => {
                            tracing::error!(
                                revision = rev,
                                "fleet: etcd's desired document refused: {e}"
                            );
                            st.refused = Some(Refusal {
                                revision: rev,
                                error: e.clone(),
                            });
                            st.last_error = Some(format!("revision {rev} refused: {e}"));
                        }
                    }
                }
                Ok(None) => {
                    st.last_error = Some(format!(
                        "etcd {}/{DESIRED} does not exist (write one with `rondo fleet push`)",
                        s.prefix
                    ))
                }
                Err(e) => st.last_error = Some(e.to_string()),
            }
            st.store = Some(store);
        }
        Err(e) => st.last_error = Some(format!("etcd unreachable at start: {e}")),
    }
    let why = st.last_error.clone().unwrap_or_default();
    let Some(path) = &s.cache else {
        return Err(format!(
            "[fleet]: cannot start: {why}; and no [fleet] cache is configured to start from"
        ));
    };
    let cached = cache::read(path, &s.prefix)
        .map_err(|e| format!("[fleet]: cannot start: {why}; and {e}"))?
        .ok_or_else(|| {
            format!(
                "[fleet]: cannot start: {why}; and the fleet cache {} does not exist yet (it is written after the first revision applied)",
                path.display()
            )
        })?;
    let what = format!(
        "fleet cache {} (revision {})",
        path.display(),
        cached.revision
    );
    let snap = build(&cached.document, &what, local)
        .and_then(|(cfg, rules)| control.initial_from(cfg, rules))
        .map_err(|e| format!("[fleet]: cannot start: {why}; and the cache cannot be used: {e}"))?;
    tracing::warn!(
        revision = cached.revision,
        cache = %path.display(),
        reason = %why,
        "fleet: starting on the local cache, not on etcd"
    );
    st.revision = cached.revision;
    st.seen_revision = st.seen_revision.max(cached.revision);
    st.document = cached.document;
    st.source = "cache";
    Ok((snap, st))
}
