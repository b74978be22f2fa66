//! A DPDK port over rings this process owns (`rte_eth_from_rings`), and its far side,
//! [`RingPeer`]: the DPDK counterpart of [`crate::drivers::mem`]. Tests, the demo and
//! pktgen use it to drive the real DPDK driver (ethdev, mbufs, mempool) in process.
#![allow(unsafe_code)]

use std::ffi::{c_void, CString};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use dpdk_sys::{rte_mbuf, rte_ring};

use super::eal::{self, EalPlan};
use super::mbuf::Mbuf;
use super::mempool::Mempool;
use super::port::{DpdkPort, DpdkPortOptions};
use super::{err_text, DpdkError};

/// A ring created by us; never freed while the process may still use the port.
#[derive(Clone, Copy)]
struct Ring(NonNull<rte_ring>);
// SAFETY: rings are created multi-producer/multi-consumer (flags 0), so any thread may
// enqueue and dequeue; the pointer stays valid for the life of the process.
unsafe impl Send for Ring {}
// SAFETY: as above.
unsafe impl Sync for Ring {}

/// The far side of a ring port: injects frames into its RX rings (one per queue) and
/// collects what the port sent from its TX rings (one per queue, plus the exception
/// queue's).
pub struct RingPeer {
    rx: Vec<Ring>,
    tx: Vec<Ring>,
    pool: Mempool,
    next_tx: AtomicU32,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

fn ring(name: &str, size: u32) -> Result<Ring, DpdkError> {
    let c = CString::new(name).expect("ring names have no NUL");
    // SAFETY: EAL is up; the name is a valid C string (DPDK copies it); flags 0 = MP/MC.
    let r = unsafe { dpdk_sys::rte_ring_create(c.as_ptr(), size, dpdk_sys::SOCKET_ID_ANY, 0) };
    NonNull::new(r).map(Ring).ok_or_else(|| {
        // SAFETY: reads this thread's rte_errno, set by the failed create.
        let e = unsafe { dpdk_sys::rte_errno() };
        DpdkError::Probe {
            devargs: name.to_string(),
            code: e,
            msg: format!("rte_ring_create: {}", err_text(e)),
        }
    })
}

/// A DPDK port named `net_ring_<name>` over `queues` RX rings and `queues + 1` TX rings of
/// `ring_size` (a power of two) each, and its peer.
pub fn ring_pair(
    name: &str,
    queues: usize,
    ring_size: u32,
    opts: DpdkPortOptions,
) -> Result<(DpdkPort, RingPeer), DpdkError> {
    eal::init(
        &opts.settings,
        &EalPlan {
            pci: vec![],
            worker_cores: opts.worker_cores.clone(),
        },
    )?;
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let mk = |dir: &str, i: usize| ring(&format!("rr{seq}{dir}{i}_{name}"), ring_size);
    let rx: Vec<Ring> = (0..queues).map(|i| mk("r", i)).collect::<Result<_, _>>()?;
    let tx: Vec<Ring> = (0..=queues).map(|i| mk("t", i)).collect::<Result<_, _>>()?;
    let cname = CString::new(name).map_err(|_| DpdkError::Probe {
        devargs: name.to_string(),
        code: libc::EINVAL,
        msg: "NUL in the name".into(),
    })?;
    let rxp: Vec<*mut rte_ring> = rx.iter().map(|r| r.0.as_ptr()).collect();
    let txp: Vec<*mut rte_ring> = tx.iter().map(|r| r.0.as_ptr()).collect();
    // SAFETY: both arrays hold live rings, as many as the counts say; the name is valid.
    let r = unsafe {
        dpdk_sys::rte_eth_from_rings(
            cname.as_ptr(),
            rxp.as_ptr(),
            rxp.len() as u32,
            txp.as_ptr(),
            txp.len() as u32,
            0,
        )
    };
    if r < 0 {
        // SAFETY: reads this thread's rte_errno.
        let e = unsafe { dpdk_sys::rte_errno() };
        return Err(DpdkError::Probe {
            devargs: name.to_string(),
            code: e,
            msg: format!("rte_eth_from_rings: {}", err_text(e)),
        });
    }
    let port = DpdkPort::open(&format!("net_ring_{name}"), opts)?;
    let pool = port.pool();
    Ok((
        port,
        RingPeer {
            rx,
            tx,
            pool,
            next_tx: AtomicU32::new(0),
        },
    ))
}

impl RingPeer {
    /// RX queues of the port.
    pub fn queues(&self) -> usize {
        self.rx.len()
    }

    /// The port's mempool (frames are copied into its mbufs).
    pub fn pool(&self) -> Mempool {
        self.pool
    }

    /// Put a copy of `frame` on RX queue `queue`; `false` when the ring is full, the pool
    /// is empty or the queue does not exist.
    pub fn send(&self, queue: usize, frame: &[u8]) -> bool {
        let Some(r) = self.rx.get(queue) else {
            return false;
        };
        let Some(m) = Mbuf::alloc_with(&self.pool, frame) else {
            return false;
        };
        let p = m.into_raw().as_ptr().cast::<c_void>();
        // SAFETY: the ring is live and MP-safe; the table holds one valid mbuf pointer.
        let n =
            unsafe { dpdk_sys::rte_ring_enqueue_burst(r.0.as_ptr(), &p, 1, std::ptr::null_mut()) };
        if n == 1 {
            return true;
        }
        // Not enqueued: we still own it. SAFETY: `p` came from into_raw just above.
        drop(unsafe { Mbuf::from_raw(NonNull::new_unchecked(p.cast::<rte_mbuf>())) });
        false
    }

    /// One frame the port sent (any TX queue, round robin), if any.
    pub fn recv(&self) -> Option<Mbuf> {
        let n = self.tx.len() as u32;
        let start = self.next_tx.fetch_add(1, Ordering::Relaxed);
        for k in 0..n {
            let r = self.tx[((start + k) % n) as usize];
            let mut p: *mut c_void = std::ptr::null_mut();
            // SAFETY: the ring is live and MC-safe; room for one pointer.
            let got = unsafe {
                dpdk_sys::rte_ring_dequeue_burst(r.0.as_ptr(), &mut p, 1, std::ptr::null_mut())
            };
            if got == 1 {
                // SAFETY: the port enqueued an mbuf it gave up; dequeuing makes it ours.
                return NonNull::new(p.cast::<rte_mbuf>()).map(|m| unsafe { Mbuf::from_raw(m) });
            }
        }
        None
    }

    /// Frames waiting in the RX rings (not yet taken by the port).
    pub fn rx_pending(&self) -> usize {
        self.rx
            .iter()
            // SAFETY: the rings are live.
            .map(|r| unsafe { dpdk_sys::rte_ring_count(r.0.as_ptr()) } as usize)
            .sum()
    }

    /// Frames the port sent that nobody collected yet.
    pub fn tx_pending(&self) -> usize {
        self.tx
            .iter()
            // SAFETY: the rings are live.
            .map(|r| unsafe { dpdk_sys::rte_ring_count(r.0.as_ptr()) } as usize)
            .sum()
    }
}

impl Drop for RingPeer {
    fn drop(&mut self) {
        // Give back every mbuf still in a ring; the rings themselves stay (the port may
        // still point at them until it is closed, and they are small).
        while self.recv().is_some() {}
        for r in &self.rx {
            let mut p: *mut c_void = std::ptr::null_mut();
            // SAFETY: the ring is live and MC-safe; each dequeued mbuf is ours to free.
            while unsafe {
                dpdk_sys::rte_ring_dequeue_burst(r.0.as_ptr(), &mut p, 1, std::ptr::null_mut())
            } == 1
            {
                if let Some(m) = NonNull::new(p.cast::<rte_mbuf>()) {
                    // SAFETY: as above: owned by us now.
                    drop(unsafe { Mbuf::from_raw(m) });
                }
            }
        }
    }
}
