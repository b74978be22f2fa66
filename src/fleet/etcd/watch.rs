//! [`Watch`]: one key's revisions, delivered from a thread of its own into a crossbeam
//! channel.
//!
//! The thread connects to one member at a time (rotating on failure, with backoff from
//! 100 ms to 2 s), watches from the revision after the last one it delivered, and drops
//! anything at or below it, so revisions delivered never go backwards nor repeat, across
//! reconnects to other members. If etcd compacted the revision it should resume from, it
//! says so ([`WatchEvent::Compacted`]), then delivers the key's current value (if newer)
//! and goes on from there. Watches use `require_leader`, so a member cut off from the
//! cluster's quorum ends the watch and the thread moves to another member.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, RecvTimeoutError, Sender};
use etcd_client::{EventType, GetOptions, WatchOptions};

use super::conn::{connect_any, current_thread_runtime};
use super::{EtcdError, EtcdSettings};

const ENVELOPE: usize = 64 * 1024;

/// What a watch delivers, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// The key was written at `revision` (strictly above every revision delivered before).
    Put { revision: i64, bytes: Vec<u8> },
    /// The key was deleted at `revision`.
    Deleted { revision: i64 },
    /// A value over `max_document_bytes` was written at `revision`; not delivered.
    TooLarge { revision: i64, size: usize },
    /// Revisions from `wanted` up to `compact_revision` are gone from etcd's history; the
    /// key's current value follows if it is newer than what was delivered.
    Compacted { wanted: i64, compact_revision: i64 },
    /// Lost etcd (once per outage); the watch keeps trying.
    Disconnected { error: String },
    /// Watching again, through `endpoint`, from `from_revision`.
    Connected {
        endpoint: String,
        from_revision: i64,
    },
}

/// A running watch; dropping it stops the thread.
pub struct Watch {
    rx: Receiver<WatchEvent>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Watch {
    pub(crate) fn start(
        settings: EtcdSettings,
        key: String,
        from_revision: i64,
        endpoint: usize,
    ) -> Result<Watch, EtcdError> {
        let (tx, rx) = crossbeam::channel::unbounded();
        let stop = Arc::new(AtomicBool::new(false));
        let rt = current_thread_runtime()?;
        let sp = stop.clone();
        let thread = std::thread::Builder::new()
            .name("etcd-watch".into())
            .spawn(move || {
                rt.block_on(run(settings, key, from_revision, endpoint, tx, sp));
            })
            .map_err(EtcdError::Runtime)?;
        Ok(Watch {
            rx,
            stop,
            thread: Some(thread),
        })
    }

    /// The events, for `select!` or polling.
    pub fn receiver(&self) -> &Receiver<WatchEvent> {
        &self.rx
    }

    /// The next event within `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<WatchEvent> {
        match self.rx.recv_timeout(timeout) {
            Ok(e) => Some(e),
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => None,
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Delivers events past `next - 1` only; `next` is the next revision wanted.
struct Deliver {
    tx: Sender<WatchEvent>,
    next: i64,
    limit: usize,
    outage_said: bool,
}

impl Deliver {
    /// False when the receiver is gone.
    fn event(&mut self, revision: i64, deleted: bool, bytes: &[u8]) -> bool {
        if revision < self.next {
            return true;
        }
        self.next = revision + 1;
        let ev = if deleted {
            WatchEvent::Deleted { revision }
        } else if bytes.len() > self.limit {
            WatchEvent::TooLarge {
                revision,
                size: bytes.len(),
            }
        } else {
            WatchEvent::Put {
                revision,
                bytes: bytes.to_vec(),
            }
        };
        self.tx.send(ev).is_ok()
    }

    fn say(&self, ev: WatchEvent) -> bool {
        self.tx.send(ev).is_ok()
    }

    /// Says `Disconnected` once per outage; false when the receiver is gone.
    fn disconnected(&mut self, key: &str, error: String) -> bool {
        if self.outage_said {
            return true;
        }
        self.outage_said = true;
        tracing::warn!(key = %key, error = %error, "etcd watch disconnected");
        self.say(WatchEvent::Disconnected { error })
    }
}

async fn run(
    settings: EtcdSettings,
    key: String,
    from_revision: i64,
    mut endpoint: usize,
    tx: Sender<WatchEvent>,
    stop: Arc<AtomicBool>,
) {
    let limit = settings.max_document_bytes;
    let mut out = Deliver {
        tx,
        next: from_revision.max(0),
        limit,
        outage_said: false,
    };
    let mut backoff = Duration::from_millis(100);
    while !stop.load(Ordering::Acquire) {
        let (client, i) = match connect_any(&settings, endpoint, true).await {
            Ok(p) => p,
            Err(e) => {
                if !out.disconnected(&key, e.to_string()) {
                    return;
                }
                nap(&stop, backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        endpoint = i;
        // 0 means "from now": ask etcd for now, to resume from a definite revision.
        if out.next == 0 {
            let r = tokio::time::timeout(
                settings.request_timeout(),
                client
                    .kv_client()
                    .get(key.clone(), Some(GetOptions::new().with_count_only())),
            )
            .await;
            match r {
                Ok(Ok(mut r)) => out.next = r.take_header().map(|h| h.revision() + 1).unwrap_or(1),
                _ => {
                    endpoint += 1;
                    continue;
                }
            }
        }
        // Events over the document limit must still arrive (to be reported as TooLarge):
        // decode up to the largest limit there is.
        let opts = WatchOptions::new()
            .with_start_revision(out.next)
            .with_progress_notify();
        let started = tokio::time::timeout(
            settings.request_timeout(),
            client
                .watch_client()
                .max_decoding_message_size(super::MAX_DOCUMENT_LIMIT + ENVELOPE)
                .watch(key.clone(), Some(opts)),
        )
        .await;
        let mut stream = match started {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                if !out.disconnected(&key, format!("{}: {e}", settings.endpoints[endpoint])) {
                    return;
                }
                endpoint += 1;
                nap(&stop, backoff).await;
                continue;
            }
            Err(_) => {
                endpoint += 1;
                continue;
            }
        };
        if !out.say(WatchEvent::Connected {
            endpoint: settings.endpoints[endpoint].clone(),
            from_revision: out.next,
        }) {
            return;
        }
        out.outage_said = false;
        backoff = Duration::from_millis(100);
        let connected_at = Instant::now();
        let why = loop {
            if stop.load(Ordering::Acquire) {
                return;
            }
            let m = tokio::time::timeout(Duration::from_millis(100), stream.message()).await;
            let resp = match m {
                Err(_) => continue,
                Ok(Err(e)) => break e.to_string(),
                Ok(Ok(None)) => break "the watch stream ended".to_string(),
                Ok(Ok(Some(r))) => r,
            };
            if resp.compact_revision() > 0 {
                let compact = resp.compact_revision();
                if !out.say(WatchEvent::Compacted {
                    wanted: out.next,
                    compact_revision: compact,
                }) {
                    return;
                }
                // Restart from the current value.
                let cur = tokio::time::timeout(
                    settings.request_timeout(),
                    client
                        .kv_client()
                        .max_decoding_message_size(limit + ENVELOPE)
                        .get(key.clone(), None),
                )
                .await;
                match cur {
                    Ok(Ok(mut r)) => {
                        let head = r.take_header().map(|h| h.revision()).unwrap_or(0);
                        match r.kvs().first() {
                            Some(kv) => {
                                if !out.event(kv.mod_revision(), false, kv.value()) {
                                    return;
                                }
                            }
                            None => {
                                // Absent now: a delete we may have missed; say it once.
                                if !out.event(head.max(out.next), true, &[]) {
                                    return;
                                }
                            }
                        }
                        out.next = out.next.max(head + 1);
                    }
                    _ => out.next = out.next.max(compact),
                }
                break "compacted: restarting from the current value".to_string();
            }
            if resp.canceled() {
                break format!("watch canceled by etcd: {}", resp.cancel_reason());
            }
            for ev in resp.events() {
                let Some(kv) = ev.kv() else { continue };
                let deleted = ev.event_type() == EventType::Delete;
                if !out.event(kv.mod_revision(), deleted, kv.value()) {
                    return;
                }
            }
        };
        tracing::debug!(reason = %why, after = ?connected_at.elapsed(), "etcd watch restarting");
        if !why.starts_with("compacted") {
            if !out.disconnected(&key, format!("{}: {why}", settings.endpoints[endpoint])) {
                return;
            }
            endpoint += 1;
            nap(&stop, backoff).await;
        }
    }
}

async fn nap(stop: &AtomicBool, d: Duration) {
    let end = Instant::now() + d;
    while !stop.load(Ordering::Acquire) && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(50).min(end - Instant::now())).await;
    }
}
