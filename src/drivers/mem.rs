//! In-process ports: lock-free rings between threads. The director side is a [`MemPort`];
//! the other side, a [`MemPeer`], injects frames (one ring per worker queue, like RSS) and
//! collects what the director sends. Used by `rondo demo`, tests and benchmarks.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crossbeam::queue::ArrayQueue;

use super::{BufPool, Burst, DriverError, PoolBuf, Port, PortStats, RxQueue, TxQueue};
use crate::datapath::PacketBuf;
use crate::wire::MacAddr;

use super::PortCounters as Counters;

struct Rings {
    /// Peer -> director, one per worker queue.
    rx: Vec<ArrayQueue<PoolBuf>>,
    /// Director -> peer, shared by every TX queue.
    tx: ArrayQueue<PoolBuf>,
    counters: Counters,
}

/// The director's side of an in-process port.
pub struct MemPort {
    name: String,
    pool: BufPool,
    rings: Arc<Rings>,
    mac: MacAddr,
    next_rx: usize,
    exception_taken: bool,
}

/// The far side of a [`MemPort`]: the "network".
#[derive(Clone)]
pub struct MemPeer {
    pool: BufPool,
    rings: Arc<Rings>,
}

/// Make a port with `queues` RX rings of `ring_size` each and one TX ring of
/// `ring_size * queues`, buffers from `pool`.
pub fn pair(
    name: &str,
    queues: usize,
    ring_size: usize,
    pool: BufPool,
) -> Result<(MemPort, MemPeer), DriverError> {
    if queues == 0 || ring_size == 0 {
        return Err(DriverError::Port {
            port: format!("mem:{name}"),
            reason: "needs at least one queue and a ring size above 0".into(),
        });
    }
    let rings = Arc::new(Rings {
        rx: (0..queues).map(|_| ArrayQueue::new(ring_size)).collect(),
        tx: ArrayQueue::new(ring_size * queues),
        counters: Counters::default(),
    });
    // A locally administered MAC derived from the name, stable across runs.
    let h = name
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    let mac = MacAddr([
        0x02,
        0x52,
        (h >> 24) as u8,
        (h >> 16) as u8,
        (h >> 8) as u8,
        h as u8,
    ]);
    Ok((
        MemPort {
            name: format!("mem:{name}"),
            pool: pool.clone(),
            rings: rings.clone(),
            mac,
            next_rx: 0,
            exception_taken: false,
        },
        MemPeer { pool, rings },
    ))
}

impl MemPeer {
    /// Number of RX queues of the port.
    pub fn queues(&self) -> usize {
        self.rings.rx.len()
    }
    /// Put `frame` on RX queue `queue`; `false` when the ring is full or the pool is empty.
    pub fn send(&self, queue: usize, frame: &[u8]) -> bool {
        let Some(buf) = self.pool.get_with(frame) else {
            return false;
        };
        self.send_buf(queue, buf).is_ok()
    }
    /// Put a buffer on RX queue `queue`; gives it back when the ring is full.
    pub fn send_buf(&self, queue: usize, buf: PoolBuf) -> Result<(), PoolBuf> {
        let ring = &self.rings.rx[queue % self.rings.rx.len()];
        ring.push(buf)
    }
    /// A buffer from the port's pool (to fill and [`MemPeer::send_buf`]).
    pub fn alloc(&self) -> Option<PoolBuf> {
        self.pool.get()
    }
    /// Next frame the director sent, if any.
    pub fn recv(&self) -> Option<PoolBuf> {
        self.rings.tx.pop()
    }
    /// Frames the director sent that [`MemPeer::recv`] has not taken yet.
    pub fn tx_pending(&self) -> usize {
        self.rings.tx.len()
    }
    /// Frames waiting in the RX rings (not yet taken by the director).
    pub fn rx_pending(&self) -> usize {
        self.rings.rx.iter().map(|r| r.len()).sum()
    }
}

/// RX queue of a [`MemPort`].
pub struct MemRx {
    rings: Arc<Rings>,
    idx: usize,
}

/// TX queue of a [`MemPort`].
pub struct MemTx {
    rings: Arc<Rings>,
}

impl RxQueue for MemRx {
    type Buf = PoolBuf;
    #[inline]
    fn rx_burst(&mut self, out: &mut Burst<PoolBuf>) -> usize {
        let ring = &self.rings.rx[self.idx];
        let mut n = 0;
        let mut bytes = 0;
        while out.room() > 0 {
            let Some(b) = ring.pop() else { break };
            bytes += b.data().len() as u64;
            let _ = out.push(b);
            n += 1;
        }
        if n > 0 {
            let c = &self.rings.counters;
            c.rx_packets.fetch_add(n as u64, Ordering::Relaxed);
            c.rx_bytes.fetch_add(bytes, Ordering::Relaxed);
        }
        n
    }
}

impl TxQueue for MemTx {
    type Buf = PoolBuf;
    #[inline]
    fn tx_burst(&mut self, pkts: &mut Burst<PoolBuf>) -> usize {
        let ring = &self.rings.tx;
        let mut bytes = 0;
        let sent = pkts.send_each(|b| {
            let len = b.data().len() as u64;
            ring.push(b).map(|()| bytes += len)
        });
        let c = &self.rings.counters;
        c.tx_packets.fetch_add(sent as u64, Ordering::Relaxed);
        c.tx_bytes.fetch_add(bytes, Ordering::Relaxed);
        sent
    }
}

impl Port for MemPort {
    type Buf = PoolBuf;
    type Rx = MemRx;
    type Tx = MemTx;

    fn name(&self) -> &str {
        &self.name
    }
    fn mac(&self) -> Option<MacAddr> {
        Some(self.mac)
    }
    fn take_queues(&mut self, n: usize) -> Result<Vec<(MemRx, MemTx)>, DriverError> {
        let have = self.rings.rx.len() - self.next_rx;
        if n > have {
            return Err(DriverError::Port {
                port: self.name.clone(),
                reason: format!(
                    "{n} queues wanted, {have} left (the port was made with {})",
                    self.rings.rx.len()
                ),
            });
        }
        let q = (self.next_rx..self.next_rx + n)
            .map(|idx| {
                (
                    MemRx {
                        rings: self.rings.clone(),
                        idx,
                    },
                    MemTx {
                        rings: self.rings.clone(),
                    },
                )
            })
            .collect();
        self.next_rx += n;
        Ok(q)
    }
    fn take_exception_tx(&mut self) -> Result<Option<MemTx>, DriverError> {
        if self.exception_taken {
            return Err(DriverError::Port {
                port: self.name.clone(),
                reason: "exception TX queue already taken".into(),
            });
        }
        self.exception_taken = true;
        Ok(Some(MemTx {
            rings: self.rings.clone(),
        }))
    }
    fn alloc(&self, frame: &[u8]) -> Option<PoolBuf> {
        self.pool.get_with(frame)
    }
    fn stats(&self) -> PortStats {
        PortStats {
            rx_dropped: self.pool.alloc_failed(),
            ..self.rings.counters.read()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_cross_between_peer_and_port() {
        let pool = BufPool::new(64, 2048).unwrap();
        let (mut port, peer) = pair("t", 2, 8, pool.clone()).unwrap();
        let mut q = port.take_queues(2).unwrap();
        assert!(port.take_queues(1).is_err());
        assert!(peer.send(1, &[1, 2, 3]));
        let mut b = Burst::new();
        assert_eq!(q[0].0.rx_burst(&mut b), 0);
        assert_eq!(q[1].0.rx_burst(&mut b), 1);
        assert_eq!(b.as_slice()[0].data(), &[1, 2, 3]);
        assert_eq!(q[1].1.tx_burst(&mut b), 1);
        assert!(b.is_empty());
        assert_eq!(peer.recv().unwrap().data(), &[1, 2, 3]);
        assert_eq!(port.stats().rx_packets, 1);
        assert_eq!(port.stats().tx_packets, 1);
        assert_eq!(pool.available(), 64);
        // A full RX ring refuses; a full TX ring leaves packets in the burst.
        for _ in 0..8 {
            assert!(peer.send(0, &[0; 60]));
        }
        assert!(!peer.send(0, &[0; 60]));
        let mut b = Burst::new();
        while q[0].0.rx_burst(&mut b) > 0 {}
        assert_eq!(b.len(), 8);
        for _ in 0..3 {
            b.push(pool.get_with(&[9; 60]).unwrap()).ok().unwrap();
        }
        assert_eq!(q[0].1.tx_burst(&mut b), 11);
        let mut b2 = Burst::new();
        for _ in 0..8 {
            b2.push(pool.get_with(&[7; 60]).unwrap()).ok().unwrap();
        }
        assert_eq!(q[1].1.tx_burst(&mut b2), 5, "ring of 16 holds 11 + 5");
        assert_eq!(b2.len(), 3);
    }
}
