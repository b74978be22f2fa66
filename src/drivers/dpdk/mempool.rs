//! Pktmbuf pools, one per NUMA socket, created on first use and kept for the life of the
//! process (ports and in-flight mbufs may refer to them until exit).
#![allow(unsafe_code)]

use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::Mutex;

use dpdk_sys::rte_mempool;

use super::{err_text, DpdkError};

/// A pktmbuf pool. Copyable handle: pools are never freed.
#[derive(Clone, Copy, Debug)]
pub struct Mempool(NonNull<rte_mempool>);

// SAFETY: DPDK mempools are multi-producer/multi-consumer safe; the handle is a pointer to
// a pool that lives until the process exits.
unsafe impl Send for Mempool {}
// SAFETY: as above: every operation on a pool through this handle is thread-safe.
unsafe impl Sync for Mempool {}

/// Pool sizing, from `runtime.pool_size` and `[dpdk]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSpec {
    pub size: usize,
    pub cache: u32,
    pub data_room: u16,
}

static POOLS: Mutex<Vec<(i32, PoolSpec, Mempool)>> = Mutex::new(Vec::new());

impl Mempool {
    /// The pool for `socket` (created on first use with `spec`; later callers share it).
    pub fn for_socket(socket: i32, spec: PoolSpec) -> Result<Mempool, DpdkError> {
        let mut pools = POOLS.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, have, pool)) = pools.iter().find(|(s, _, _)| *s == socket) {
            if *have != spec {
                tracing::warn!(socket, ?have, wanted = ?spec, "mempool for this socket exists already; sharing it");
            }
            return Ok(*pool);
        }
        let buf = u32::from(spec.data_room) + dpdk_sys::RTE_PKTMBUF_HEADROOM;
        let fail = |msg: String| DpdkError::Mempool {
            size: spec.size,
            buf,
            socket,
            msg,
        };
        let size = u32::try_from(spec.size).map_err(|_| fail("too many mbufs".into()))?;
        let buf16 = u16::try_from(buf).map_err(|_| fail("mbuf too large".into()))?;
        // A cache larger than size / 1.5 is refused by DPDK: shrink it for small pools.
        let cache = spec
            .cache
            .min(size * 2 / 3)
            .min(dpdk_sys::RTE_MEMPOOL_CACHE_MAX_SIZE);
        let name = CString::new(format!("rondo_pool_s{}_{}", socket.max(0), pools.len()))
            .expect("no NUL in the pool name");
        // SAFETY: EAL is up (callers initialise it first); the name is a valid C string
        // that outlives the call (DPDK copies it).
        let p = unsafe {
            dpdk_sys::rte_pktmbuf_pool_create(name.as_ptr(), size, cache, 0, buf16, socket)
        };
        let Some(p) = NonNull::new(p) else {
            // SAFETY: reads this thread's rte_errno, set by the failed create.
            let e = unsafe { dpdk_sys::rte_errno() };
            return Err(fail(format!(
                "{}{}",
                err_text(e),
                if e == libc::ENOMEM {
                    " (lower runtime.pool_size or give EAL more memory: -m / hugepages)"
                } else {
                    ""
                }
            )));
        };
        let pool = Mempool(p);
        tracing::info!(socket, size, cache, buf, "mbuf pool created");
        pools.push((socket, spec, pool));
        Ok(pool)
    }

    pub fn as_ptr(&self) -> *mut rte_mempool {
        self.0.as_ptr()
    }

    /// Mbufs currently out of the pool (in queues, in flight, in our hands).
    pub fn in_use(&self) -> u32 {
        // SAFETY: the pool is live (never freed).
        unsafe { dpdk_sys::rte_mempool_in_use_count(self.0.as_ptr()) }
    }

    /// Mbufs free in the pool (including per-lcore caches).
    pub fn available(&self) -> u32 {
        // SAFETY: the pool is live (never freed).
        unsafe { dpdk_sys::rte_mempool_avail_count(self.0.as_ptr()) }
    }
}
