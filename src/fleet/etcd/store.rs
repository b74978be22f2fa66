//! [`EtcdStore`]: the synchronous facade, owned by one control-side thread.
//!
//! Every call blocks on the store's own current-thread runtime under
//! [`EtcdSettings::request_timeout`]. A call that fails on the connection (member dead,
//! timeout) drops it; the next call reconnects, starting at the next endpoint. A transient
//! failure (`Unavailable`: a dead member, a leader change, an election under way) is tried
//! again, on the next member, within that same timeout.
//!
//! Leadership: [`EtcdStore::campaign`] uses etcd's election API (v3election) on a
//! [`Lease`]. A leader must check [`Leadership::is_leader`] before each write, and should
//! write with [`EtcdStore::put_if_leader`], whose transaction succeeds only while the
//! leader key it was elected with still exists (same create revision): a leader whose
//! lease expired (crash of its keepalive, partition, pause) is deposed by etcd itself, and
//! its late writes fail with [`EtcdError::NotLeader`] even before it learns of it.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Client, Compare, CompareOp, GetOptions, LeaderKey, PutOptions, Txn, TxnOp};

use super::conn::{connect_any, current_thread_runtime, is_connection_error};
use super::lease::{Lease, LeaseState};
use super::watch::Watch;
use super::{EtcdError, EtcdSettings};

/// Room for the gRPC framing and the key around a document of the limit's size.
const ENVELOPE: usize = 64 * 1024;

/// The first pause before a transient failure is tried again; doubled each time.
const RETRY_FIRST_PAUSE: Duration = Duration::from_millis(50);
const RETRY_MAX_PAUSE: Duration = Duration::from_millis(500);

/// One revision of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub bytes: Vec<u8>,
    /// The revision that wrote this value: what [`EtcdStore::put_document_if`] expects.
    pub mod_revision: i64,
    pub create_revision: i64,
    /// How many times the key was written since it was created (1 for the first).
    pub version: i64,
}

/// Won an election: hold it, check [`Leadership::is_leader`] before each write.
#[derive(Debug, Clone)]
pub struct Leadership {
    election: String,
    leader_key: LeaderKey,
    lease: Arc<LeaseState>,
}

impl Leadership {
    /// The election's full key (under the prefix).
    pub fn election(&self) -> &str {
        &self.election
    }

    /// The leader key etcd made for this candidate (`<election>/<lease id>`).
    pub fn key(&self) -> &[u8] {
        self.leader_key.key()
    }

    /// The leader key's create revision: the txn guard of [`EtcdStore::put_if_leader`].
    pub fn revision(&self) -> i64 {
        self.leader_key.rev()
    }

    /// True while the lease the leadership stands on is surely valid (the last keepalive
    /// answer's TTL, counted from when it was sent, has not run out, less a margin). Once
    /// false it stays false: stop writing and campaign again with a new lease.
    pub fn is_leader(&self) -> bool {
        self.lease.is_alive()
    }

    /// Blocks up to `timeout` for the loss of the leadership; true when it is lost.
    pub fn wait_lost(&self, timeout: Duration) -> bool {
        self.lease.wait_lost(timeout)
    }
}

/// The sync facade over etcd. See the module docs.
pub struct EtcdStore {
    settings: EtcdSettings,
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    endpoint: usize,
}

fn check_key(key: &str) -> Result<(), EtcdError> {
    let bad = |why| {
        Err(EtcdError::BadKey {
            key: key.to_string(),
            why,
        })
    };
    if key.is_empty() {
        return bad("empty");
    }
    if key.starts_with('/') || key.ends_with('/') {
        return bad("keys are relative to the prefix: no leading or trailing /");
    }
    if key
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return bad("an empty, \".\" or \"..\" segment");
    }
    if !key.chars().all(|c| c.is_ascii_graphic()) {
        return bad("only printable ASCII without spaces");
    }
    Ok(())
}

fn doc(kv: &etcd_client::KeyValue) -> Document {
    Document {
        bytes: kv.value().to_vec(),
        mod_revision: kv.mod_revision(),
        create_revision: kv.create_revision(),
        version: kv.version(),
    }
}

impl EtcdStore {
    /// Validate the settings and connect to the first endpoint that answers within the
    /// connect timeout ([`EtcdError::Unreachable`] otherwise).
    pub fn connect(settings: EtcdSettings) -> Result<EtcdStore, EtcdError> {
        settings.validate()?;
        let rt = current_thread_runtime()?;
        let (client, endpoint) = rt.block_on(connect_any(&settings, 0, false))?;
        tracing::info!(endpoint = %settings.endpoints[endpoint], prefix = %settings.prefix, "connected to etcd");
        Ok(EtcdStore {
            settings,
            rt,
            client: Some(client),
            endpoint,
        })
    }

    pub fn settings(&self) -> &EtcdSettings {
        &self.settings
    }

    /// `<prefix>/<key>`, after checking `key`.
    pub fn full_key(&self, key: &str) -> Result<String, EtcdError> {
        check_key(key)?;
        Ok(format!("{}/{key}", self.settings.prefix))
    }

    /// Run one request. A transient failure (the member died or lost its leader, an
    /// election is under way: gRPC `Unavailable` and the like) drops the connection and is
    /// tried again, on the next member, after a short pause, until
    /// [`EtcdSettings::request_timeout`] has passed since the first try: a leader change
    /// (about one election timeout) is ridden out, not reported. Every request here is
    /// safe to send twice: reads, deletes and plain puts are idempotent and the
    /// compare-and-put transactions are guarded by their compare (see
    /// [`EtcdStore::put_document_if`] for the one ambiguity that leaves).
    fn run<T, F, Fut>(&mut self, op: &'static str, key: &str, f: F) -> Result<T, EtcdError>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        self.run_counting(op, key, f).map(|(v, _)| v)
    }

    /// [`EtcdStore::run`], also saying how many tries it took (1: no retry).
    fn run_counting<T, F, Fut>(
        &mut self,
        op: &'static str,
        key: &str,
        f: F,
    ) -> Result<(T, u32), EtcdError>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let budget = self.settings.request_timeout();
        let deadline = Instant::now() + budget;
        let mut pause = RETRY_FIRST_PAUSE;
        let mut tries = 0u32;
        loop {
            tries += 1;
            let client = match &self.client {
                Some(c) => c.clone(),
                None => {
                    let (c, i) =
                        self.rt
                            .block_on(connect_any(&self.settings, self.endpoint, false))?;
                    tracing::info!(endpoint = %self.settings.endpoints[i], "reconnected to etcd");
                    self.endpoint = i;
                    self.client = Some(c.clone());
                    c
                }
            };
            let left = deadline.saturating_duration_since(Instant::now());
            let fut = f(client);
            match self
                .rt
                .block_on(async move { tokio::time::timeout(left, fut).await })
            {
                Ok(Ok(v)) => return Ok((v, tries)),
                Ok(Err(e)) => {
                    let transient = is_connection_error(&e);
                    if transient {
                        self.drop_connection();
                    }
                    let now = Instant::now();
                    if transient && now + pause < deadline {
                        tracing::debug!(op, key, error = %e, try_ = tries, "etcd request failed, trying again");
                        std::thread::sleep(pause);
                        pause = (pause * 2).min(RETRY_MAX_PAUSE);
                        continue;
                    }
                    return Err(EtcdError::Request {
                        op,
                        key: key.to_string(),
                        message: if tries > 1 {
                            format!("{e} (after {tries} tries in {} ms)", budget.as_millis())
                        } else {
                            e.to_string()
                        },
                    });
                }
                Err(_) => {
                    self.drop_connection();
                    return Err(EtcdError::Timeout {
                        op,
                        key: key.to_string(),
                        timeout_ms: self.settings.request_timeout_ms,
                    });
                }
            }
        }
    }

    fn drop_connection(&mut self) {
        self.client = None;
        self.endpoint = (self.endpoint + 1) % self.settings.endpoints.len();
    }

    fn too_large(&self, key: &str, e: EtcdError) -> EtcdError {
        match &e {
            EtcdError::Request { message, .. }
                if message.contains("too large") || message.contains("OutOfRange") =>
            {
                EtcdError::TooLarge {
                    key: key.to_string(),
                    size: "too large to receive".into(),
                    limit: self.settings.max_document_bytes,
                }
            }
            _ => e,
        }
    }

    fn get_at(&mut self, key: &str, revision: i64) -> Result<Option<Document>, EtcdError> {
        let full = self.full_key(key)?;
        let limit = self.settings.max_document_bytes;
        let k = full.clone();
        let r = self.run("get", &full, move |c| {
            let k = k.clone();
            async move {
                let mut opts = GetOptions::new();
                if revision > 0 {
                    opts = opts.with_revision(revision);
                }
                c.kv_client()
                    .max_decoding_message_size(limit + ENVELOPE)
                    .get(k, Some(opts))
                    .await
            }
        });
        let resp = r.map_err(|e| self.too_large(&full, e))?;
        match resp.kvs().first() {
            None => Ok(None),
            Some(kv) if kv.value().len() > limit => Err(EtcdError::TooLarge {
                key: full,
                size: format!("of {} bytes", kv.value().len()),
                limit,
            }),
            Some(kv) => Ok(Some(doc(kv))),
        }
    }

    /// The key's current value and revision; `None` when absent.
    pub fn get_document(&mut self, key: &str) -> Result<Option<Document>, EtcdError> {
        self.get_at(key, 0)
    }

    /// The key's value as of store revision `revision` (etcd's history; the returned
    /// [`Document::mod_revision`] is the write at or before it). `None` when the key did not
    /// exist then; a compacted revision is a [`EtcdError::Request`] naming it.
    pub fn get_document_at(
        &mut self,
        key: &str,
        revision: i64,
    ) -> Result<Option<Document>, EtcdError> {
        if revision <= 0 {
            return Err(EtcdError::BadKey {
                key: key.to_string(),
                why: "a revision must be at least 1",
            });
        }
        self.get_at(key, revision)
    }

    /// Every key directly or indirectly under `dir` (relative to the prefix, e.g.
    /// `directors`), with its value: `(key relative to dir, document)`, in key order. Values
    /// over `max_document_bytes` are refused as for [`EtcdStore::get_document`]; at most
    /// 10 000 keys are read.
    pub fn list(&mut self, dir: &str) -> Result<Vec<(String, Document)>, EtcdError> {
        let full = format!("{}/", self.full_key(dir)?);
        let limit = self.settings.max_document_bytes;
        let k = full.clone();
        let r = self.run("list", &full, move |c| {
            let k = k.clone();
            async move {
                c.kv_client()
                    .max_decoding_message_size(4 * (limit + ENVELOPE))
                    .get(k, Some(GetOptions::new().with_prefix().with_limit(10_000)))
                    .await
            }
        });
        let resp = r.map_err(|e| self.too_large(&full, e))?;
        let mut out = Vec::new();
        for kv in resp.kvs() {
            let name =
                String::from_utf8_lossy(&kv.key()[full.len().min(kv.key().len())..]).into_owned();
            if kv.value().len() > limit {
                return Err(EtcdError::TooLarge {
                    key: format!("{full}{name}"),
                    size: format!("of {} bytes", kv.value().len()),
                    limit,
                });
            }
            out.push((name, doc(kv)));
        }
        Ok(out)
    }

    /// Write `bytes` only if the key is still at `expected` (its `mod_revision`; 0: only if
    /// absent). Returns the new revision, or [`EtcdError::Conflict`] with the current one.
    pub fn put_document_if(
        &mut self,
        key: &str,
        bytes: &[u8],
        expected: i64,
    ) -> Result<i64, EtcdError> {
        let full = self.full_key(key)?;
        self.check_size(&full, bytes)?;
        let cmp = if expected == 0 {
            Compare::create_revision(full.clone(), CompareOp::Equal, 0)
        } else {
            Compare::mod_revision(full.clone(), CompareOp::Equal, expected)
        };
        let txn = Txn::new()
            .when([cmp])
            .and_then([TxnOp::put(full.clone(), bytes.to_vec(), None)])
            .or_else([TxnOp::get(
                full.clone(),
                Some(GetOptions::new().with_keys_only()),
            )]);
        let (mut resp, tries) = self.run_counting("put", &full, move |mut c| {
            let txn = txn.clone();
            async move { c.txn(txn).await }
        })?;
        if resp.succeeded() {
            return Ok(resp.take_header().map(|h| h.revision()).unwrap_or(0));
        }
        let current = resp
            .op_responses()
            .into_iter()
            .find_map(|r| match r {
                etcd_client::TxnOpResponse::Get(g) => {
                    Some(g.kvs().first().map(|kv| kv.mod_revision()).unwrap_or(0))
                }
                _ => None,
            })
            .unwrap_or(0);
        // A try that failed on a leader change may still have been applied; its retry then
        // finds its own write. That is success, not a conflict: the key holds exactly these
        // bytes, written over exactly the revision expected.
        if tries > 1 && current > 0 && self.is_own_write(key, bytes, expected, current) {
            tracing::info!(key = %full, revision = current, "an earlier try of this put was applied");
            return Ok(current);
        }
        Err(EtcdError::Conflict {
            key: full,
            expected,
            current,
        })
    }

    /// Does revision `current` of `key` hold `bytes`, written over revision `expected`
    /// (0: over nothing)?
    fn is_own_write(&mut self, key: &str, bytes: &[u8], expected: i64, current: i64) -> bool {
        let Ok(Some(now)) = self.get_at(key, current) else {
            return false;
        };
        if now.mod_revision != current || now.bytes != bytes {
            return false;
        }
        match self.get_at(key, current - 1) {
            Ok(None) => expected == 0,
            Ok(Some(before)) => now.version > 1 && before.mod_revision == expected,
            Err(_) => false,
        }
    }

    fn check_size(&self, full: &str, bytes: &[u8]) -> Result<(), EtcdError> {
        if bytes.len() > self.settings.max_document_bytes {
            return Err(EtcdError::TooLarge {
                key: full.to_string(),
                size: format!("of {} bytes", bytes.len()),
                limit: self.settings.max_document_bytes,
            });
        }
        Ok(())
    }

    /// Up to `max` revisions of the key, newest first, read back from etcd's history (one
    /// `get` at a revision each); stops at the key's creation or at the compaction point.
    pub fn history(&mut self, key: &str, max: usize) -> Result<Vec<Document>, EtcdError> {
        let mut out: Vec<Document> = Vec::new();
        let mut next = self.get_document(key)?;
        while let Some(d) = next {
            let (rev, version) = (d.mod_revision, d.version);
            out.push(d);
            if out.len() >= max || version <= 1 {
                break;
            }
            next = match self.get_at(key, rev - 1) {
                Ok(d) => d,
                // Compacted away (or otherwise gone): the history ends here.
                Err(EtcdError::Request { message, .. }) if message.contains("compacted") => None,
                Err(e) => return Err(e),
            };
        }
        Ok(out)
    }

    /// The store's current revision (the cluster's, as the member answering saw it).
    pub fn current_revision(&mut self) -> Result<i64, EtcdError> {
        let prefix = self.settings.prefix.clone();
        let mut r = self.run("status", &prefix, |mut c| async move {
            c.get("\0", Some(GetOptions::new().with_count_only())).await
        })?;
        Ok(r.take_header().map(|h| h.revision()).unwrap_or(0))
    }

    /// Watch `key` from revision `from_revision` (the first revision to deliver; 0: from
    /// now, that is every write after this call). Runs on a thread of its own; see
    /// [`Watch`].
    pub fn watch(&mut self, key: &str, from_revision: i64) -> Result<Watch, EtcdError> {
        let full = self.full_key(key)?;
        let from = if from_revision > 0 {
            from_revision
        } else {
            self.current_revision()? + 1
        };
        Watch::start(self.settings.clone(), full, from, self.endpoint)
    }

    /// Grant a lease of `ttl` (whole seconds, at least 2: etcd's minimum) and keep it
    /// alive from a thread of its own until the [`Lease`] is dropped (which revokes it).
    pub fn lease_keepalive(&mut self, ttl: Duration) -> Result<Lease, EtcdError> {
        let secs = ttl.as_secs().max(2) as i64;
        let prefix = self.settings.prefix.clone();
        let sent = std::time::Instant::now();
        let resp = self.run("lease grant", &prefix, move |mut c| async move {
            c.lease_grant(secs, None).await
        })?;
        Lease::start(
            self.settings.clone(),
            resp.id(),
            resp.ttl(),
            sent,
            self.endpoint,
        )
    }

    /// Put `bytes` bound to `lease`: the key vanishes when the lease ends (the holder died
    /// or dropped it).
    pub fn put_with_lease(
        &mut self,
        lease: &Lease,
        key: &str,
        bytes: &[u8],
    ) -> Result<i64, EtcdError> {
        let full = self.full_key(key)?;
        self.check_size(&full, bytes)?;
        lease.check_alive()?;
        let (k, v, id) = (full.clone(), bytes.to_vec(), lease.id());
        let resp = self.run("put", &full, move |mut c| {
            let (k, v) = (k.clone(), v.clone());
            async move { c.put(k, v, Some(PutOptions::new().with_lease(id))).await }
        })?;
        Ok(resp.header().map(|h| h.revision()).unwrap_or(0))
    }

    /// Delete `key` (no error when absent).
    pub fn delete(&mut self, key: &str) -> Result<(), EtcdError> {
        let full = self.full_key(key)?;
        let k = full.clone();
        self.run("delete", &full, move |mut c| {
            let k = k.clone();
            async move { c.delete(k, None).await }
        })?;
        Ok(())
    }

    fn election_key(&self, name: &str) -> Result<String, EtcdError> {
        self.full_key(&format!("election/{name}"))
    }

    /// Stand for election `name` with `value` (e.g. this instance's name) on `lease`;
    /// blocks until elected or `wait` passed ([`EtcdError::CampaignTimeout`]: call again to
    /// keep standing). Candidates are served in the order they first stood.
    pub fn campaign(
        &mut self,
        name: &str,
        value: &[u8],
        lease: &Lease,
        wait: Duration,
    ) -> Result<Leadership, EtcdError> {
        let election = self.election_key(name)?;
        lease.check_alive()?;
        let client = match &self.client {
            Some(c) => c.clone(),
            None => {
                let (c, i) = self
                    .rt
                    .block_on(connect_any(&self.settings, self.endpoint, false))?;
                self.endpoint = i;
                self.client = Some(c.clone());
                c
            }
        };
        let (e, v, id) = (election.clone(), value.to_vec(), lease.id());
        let fut = async move {
            let mut c = client;
            c.campaign(e, v, id).await
        };
        match self
            .rt
            .block_on(async move { tokio::time::timeout(wait, fut).await })
        {
            Err(_) => Err(EtcdError::CampaignTimeout {
                election,
                timeout_ms: wait.as_millis() as u64,
            }),
            Ok(Err(err)) => {
                if is_connection_error(&err) {
                    self.drop_connection();
                }
                Err(EtcdError::Request {
                    op: "campaign",
                    key: election,
                    message: err.to_string(),
                })
            }
            Ok(Ok(mut resp)) => {
                let leader_key = resp.take_leader().ok_or_else(|| EtcdError::Request {
                    op: "campaign",
                    key: election.clone(),
                    message: "etcd answered without a leader key".into(),
                })?;
                tracing::info!(election = %election, "elected leader");
                Ok(Leadership {
                    election,
                    leader_key,
                    lease: lease.state(),
                })
            }
        }
    }

    /// The current leader's value of election `name`, if there is one.
    pub fn leader(&mut self, name: &str) -> Result<Option<Vec<u8>>, EtcdError> {
        let election = self.election_key(name)?;
        let e = election.clone();
        match self.run("leader", &election, move |mut c| {
            let e = e.clone();
            async move { c.leader(e).await }
        }) {
            Ok(r) => Ok(r.kv().map(|kv| kv.value().to_vec())),
            // etcd answers "election: no leader" as an error.
            Err(EtcdError::Request { message, .. }) if message.contains("no leader") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Give the leadership up (for a planned restart: the next candidate takes over at
    /// once). The lease stays; the leadership handle is spent.
    pub fn resign(&mut self, leadership: Leadership) -> Result<(), EtcdError> {
        let election = leadership.election.clone();
        let lk = leadership.leader_key;
        self.run("resign", &election, move |mut c| {
            let lk = lk.clone();
            async move {
                c.resign(Some(etcd_client::ResignOptions::new().with_leader(lk)))
                    .await
            }
        })?;
        Ok(())
    }

    /// Put `bytes` only while `leadership` holds: refused locally when its lease is no
    /// longer surely valid, and by etcd (a txn comparing the leader key's create revision)
    /// when the leader key is gone, so a deposed leader's write never lands.
    pub fn put_if_leader(
        &mut self,
        leadership: &Leadership,
        key: &str,
        bytes: &[u8],
    ) -> Result<i64, EtcdError> {
        let full = self.full_key(key)?;
        self.check_size(&full, bytes)?;
        let not_leader = || EtcdError::NotLeader {
            key: full.clone(),
            election: leadership.election.clone(),
        };
        if !leadership.is_leader() {
            return Err(not_leader());
        }
        let txn = Txn::new()
            .when([Compare::create_revision(
                leadership.key().to_vec(),
                CompareOp::Equal,
                leadership.revision(),
            )])
            .and_then([TxnOp::put(full.clone(), bytes.to_vec(), None)]);
        let mut resp = self.run("put", &full, move |mut c| {
            let txn = txn.clone();
            async move { c.txn(txn).await }
        })?;
        if !resp.succeeded() {
            return Err(not_leader());
        }
        Ok(resp.take_header().map(|h| h.revision()).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked() {
        check_key("desired").unwrap();
        check_key("status/d-1").unwrap();
        for k in ["", "/abs", "a/", "a//b", "a/../b", "..", "a b", "a\u{e9}"] {
            assert!(
                matches!(check_key(k), Err(EtcdError::BadKey { .. })),
                "{k:?}"
            );
        }
    }

    #[test]
    fn connect_validates_settings_first() {
        let s = EtcdSettings::new(vec![], "/r", "d");
        match EtcdStore::connect(s) {
            Err(EtcdError::Settings(e)) => assert_eq!(e.field, "endpoints"),
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("connected with no endpoints"),
        }
    }
}
