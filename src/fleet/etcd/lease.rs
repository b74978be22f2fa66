//! [`Lease`]: an etcd lease kept alive by a thread of its own (own runtime, own
//! connection, rotating endpoints on failure).
//!
//! The holder knows locally until when the lease is surely valid: each keepalive answer
//! carries the TTL etcd granted, counted from when the keepalive was *sent*, less a margin.
//! Past that instant without a newer answer the lease is treated as lost, even if etcd
//! might still hold it for a moment: a leader stops writing before etcd could elect
//! another. A lost lease is never regained; make a new one.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::conn::{connect_any, current_thread_runtime};
use super::{EtcdError, EtcdSettings};

#[derive(Debug)]
pub(crate) struct LeaseState {
    id: i64,
    base: Instant,
    margin: Duration,
    /// Milliseconds after `base` until which the lease is surely valid.
    valid_until_ms: AtomicU64,
    lost: Mutex<Option<String>>,
    lost_cv: Condvar,
}

impl LeaseState {
    fn extend(&self, sent: Instant, ttl_secs: i64) {
        let until = (sent + Duration::from_secs(ttl_secs.max(0) as u64))
            .checked_sub(self.margin)
            .unwrap_or(sent);
        let ms = until.saturating_duration_since(self.base).as_millis() as u64;
        self.valid_until_ms.fetch_max(ms, Ordering::AcqRel);
    }

    fn deadline(&self) -> Instant {
        self.base + Duration::from_millis(self.valid_until_ms.load(Ordering::Acquire))
    }

    fn lose(&self, why: String) {
        let mut l = self.lost.lock().unwrap_or_else(|p| p.into_inner());
        if l.is_none() {
            tracing::warn!(lease = format!("{:x}", self.id), why = %why, "etcd lease lost");
            *l = Some(why);
            self.lost_cv.notify_all();
        }
    }

    fn lost_reason(&self) -> Option<String> {
        self.lost.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn is_alive(&self) -> bool {
        if self.lost_reason().is_some() {
            return false;
        }
        if Instant::now() >= self.deadline() {
            self.lose("no keepalive answer before its TTL ran out".into());
            return false;
        }
        true
    }

    pub(crate) fn wait_lost(&self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        let mut l = self.lost.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if l.is_some() {
                return true;
            }
            let now = Instant::now();
            if now >= self.deadline() {
                drop(l);
                return !self.is_alive();
            }
            if now >= end {
                return false;
            }
            let step = (end.min(self.deadline()) - now).min(Duration::from_millis(100));
            l = self
                .lost_cv
                .wait_timeout(l, step)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// A lease kept alive until dropped; dropping it revokes it (its keys vanish at once).
/// If the process dies, etcd expires it after its TTL.
pub struct Lease {
    state: Arc<LeaseState>,
    ttl: i64,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Lease({:x}, ttl {} s)", self.state.id, self.ttl)
    }
}

impl Lease {
    pub(crate) fn start(
        settings: EtcdSettings,
        id: i64,
        ttl: i64,
        sent: Instant,
        endpoint: usize,
    ) -> Result<Lease, EtcdError> {
        let ttl_d = Duration::from_secs(ttl.max(1) as u64);
        let state = Arc::new(LeaseState {
            id,
            base: sent,
            margin: (ttl_d / 4).min(Duration::from_millis(500)),
            valid_until_ms: AtomicU64::new(0),
            lost: Mutex::new(None),
            lost_cv: Condvar::new(),
        });
        state.extend(sent, ttl);
        let stop = Arc::new(AtomicBool::new(false));
        let rt = current_thread_runtime()?;
        let (st, sp) = (state.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name(format!("etcd-lease-{id:x}"))
            .spawn(move || rt.block_on(keep(settings, st, sp, ttl_d, endpoint)))
            .map_err(EtcdError::Runtime)?;
        Ok(Lease {
            state,
            ttl,
            stop,
            thread: Some(thread),
        })
    }

    /// The lease's etcd id.
    pub fn id(&self) -> i64 {
        self.state.id
    }

    /// The TTL etcd granted, in seconds.
    pub fn ttl_secs(&self) -> i64 {
        self.ttl
    }

    /// True while the lease is surely valid (see the module docs).
    pub fn is_alive(&self) -> bool {
        self.state.is_alive()
    }

    /// Blocks up to `timeout` for the lease's loss; true when it is lost.
    pub fn wait_lost(&self, timeout: Duration) -> bool {
        self.state.wait_lost(timeout)
    }

    pub(crate) fn check_alive(&self) -> Result<(), EtcdError> {
        if self.is_alive() {
            return Ok(());
        }
        Err(EtcdError::LeaseLost {
            id: self.state.id,
            why: self.state.lost_reason().unwrap_or_default(),
        })
    }

    pub(crate) fn state(&self) -> Arc<LeaseState> {
        self.state.clone()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn nap(stop: &AtomicBool, d: Duration) {
    let end = Instant::now() + d;
    while !stop.load(Ordering::Acquire) && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(50).min(end - Instant::now())).await;
    }
}

async fn keep(
    settings: EtcdSettings,
    state: Arc<LeaseState>,
    stop: Arc<AtomicBool>,
    ttl: Duration,
    mut endpoint: usize,
) {
    let interval = (ttl / 3).max(Duration::from_millis(300));
    let answer_within = settings.request_timeout().min(ttl / 2);
    let mut client = None;
    'outer: while !stop.load(Ordering::Acquire) && state.is_alive() {
        let mut c = match client.take() {
            Some(c) => c,
            None => match connect_any(&settings, endpoint, false).await {
                Ok((c, i)) => {
                    endpoint = i;
                    c
                }
                Err(e) => {
                    tracing::debug!(error = %e, "etcd lease keepalive: reconnecting");
                    nap(&stop, Duration::from_millis(200)).await;
                    continue;
                }
            },
        };
        let pair = tokio::time::timeout(answer_within, c.lease_keep_alive(state.id)).await;
        let (mut keeper, mut stream) = match pair {
            Ok(Ok(p)) => p,
            _ => {
                endpoint += 1;
                continue;
            }
        };
        loop {
            if stop.load(Ordering::Acquire) {
                client = Some(c);
                break 'outer;
            }
            let sent = Instant::now();
            let ok = keeper.keep_alive().await.is_ok();
            let answer = if ok {
                tokio::time::timeout(answer_within, stream.message()).await
            } else {
                Ok(Ok(None))
            };
            match answer {
                Ok(Ok(Some(r))) if r.ttl() > 0 => state.extend(sent, r.ttl()),
                Ok(Ok(Some(_))) => {
                    state.lose("etcd says it expired or was revoked".into());
                    return;
                }
                _ => {
                    // Connection trouble: try the next member while the lease is still
                    // surely valid.
                    endpoint += 1;
                    continue 'outer;
                }
            }
            if !state.is_alive() {
                return;
            }
            nap(&stop, interval).await;
        }
    }
    if stop.load(Ordering::Acquire) {
        let mut c = match client {
            Some(c) => c,
            None => match connect_any(&settings, endpoint, false).await {
                Ok((c, _)) => c,
                Err(_) => return,
            },
        };
        let _ = tokio::time::timeout(settings.request_timeout(), c.lease_revoke(state.id)).await;
        state.lose("revoked by its holder".into());
    }
}
