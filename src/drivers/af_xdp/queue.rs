//! The worker side of one AF_XDP socket: [`AfXdpRx`] drives the RX and fill rings over the
//! first half of the UMEM frames, [`AfXdpTx`] the TX and completion rings over the second
//! half, so the two never share a frame and each is used by one thread.
//!
//! This first landing copies: a received frame is copied into a [`PoolBuf`] and its UMEM
//! frame goes straight back to the fill ring; a sent buffer is copied into a free TX frame.
//! Handing UMEM frames to the pipeline as its buffers (no copy in zero-copy mode) is the
//! next step.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use crate::datapath::{PacketBuf, BURST_MAX};
use crate::drivers::{BufPool, Burst, PoolBuf, PortCounters, RxQueue, TxQueue};

use super::xsk::{kick_tx, wake_rx, Ring, Umem};
use super::{FRAMES, FRAME_SIZE};

/// What a queue's two halves share: the socket and the UMEM (frames are split between
/// them, see the module doc).
#[derive(Debug)]
pub struct Shared {
    pub fd: OwnedFd,
    pub umem: Umem,
    pub counters: Arc<PortCounters>,
}

/// Receive side of one AF_XDP socket.
pub struct AfXdpRx {
    pub(super) shared: Arc<Shared>,
    pub(super) fill: Ring<u64>,
    pub(super) rx: Ring<libc::xdp_desc>,
    pub(super) pool: BufPool,
    /// Frames taken off the RX ring, waiting to go back to the fill ring.
    pub(super) recycle: Vec<u64>,
}

impl RxQueue for AfXdpRx {
    type Buf = PoolBuf;

    fn rx_burst(&mut self, out: &mut Burst<PoolBuf>) -> usize {
        self.refill();
        let want = out.room().min(BURST_MAX) as u32;
        let n = self.rx.cons_ready(want);
        if n == 0 {
            if self.fill.needs_wakeup() {
                wake_rx(self.shared.fd.as_raw_fd());
            }
            return 0;
        }
        let (mut got, mut bytes, mut dropped, mut bad) = (0usize, 0u64, 0u64, 0u64);
        for i in 0..n {
            let d = self.rx.cons_read(i);
            match self.shared.umem.frame(d.addr, d.len as usize) {
                Some(frame) => match self.pool.get_with(frame) {
                    Some(b) => {
                        bytes += frame.len() as u64;
                        // Cannot fail: at most `out.room()` descriptors were read.
                        if out.push(b).is_ok() {
                            got += 1;
                        }
                    }
                    None => dropped += 1,
                },
                None => bad += 1,
            }
            // Aligned UMEM: the frame's start is its address rounded down.
            self.recycle.push(d.addr & !(u64::from(FRAME_SIZE) - 1));
        }
        self.rx.cons_release(n);
        self.refill();
        let c = &self.shared.counters;
        PortCounters::add(&c.rx_packets, got as u64);
        PortCounters::add(&c.rx_bytes, bytes);
        PortCounters::add(&c.rx_dropped, dropped);
        PortCounters::add(&c.rx_errors, bad);
        got
    }
}

impl AfXdpRx {
    /// Give the frames read so far back to the kernel (the fill ring has room for every
    /// RX frame, so all of them fit).
    fn refill(&mut self) {
        if self.recycle.is_empty() {
            return;
        }
        let n = self.fill.prod_room(self.recycle.len() as u32);
        for i in 0..n {
            self.fill.prod_write(i, self.recycle[i as usize]);
        }
        self.fill.prod_submit(n);
        self.recycle.drain(..n as usize);
        if n > 0 && self.fill.needs_wakeup() {
            wake_rx(self.shared.fd.as_raw_fd());
        }
    }
}

/// Transmit side of one AF_XDP socket.
pub struct AfXdpTx {
    pub(super) shared: Arc<Shared>,
    pub(super) tx: Ring<libc::xdp_desc>,
    pub(super) comp: Ring<u64>,
    /// TX frames not in the kernel's hands.
    pub(super) free: Vec<u64>,
    /// Descriptors submitted since the last kick.
    pub(super) unkicked: bool,
    /// Largest frame the interface takes (MTU plus Ethernet and one VLAN tag).
    pub(super) max_frame: usize,
}

impl AfXdpTx {
    /// The TX frames of a fresh socket: the second half of the UMEM.
    pub(super) fn initial_free() -> Vec<u64> {
        (FRAMES / 2..FRAMES)
            .map(|i| u64::from(i) * u64::from(FRAME_SIZE))
            .collect()
    }

    /// Take completed frames back into the free list.
    fn reclaim(&mut self) {
        let n = self.comp.cons_ready(FRAMES / 2);
        for i in 0..n {
            let a = self.comp.cons_read(i);
            if self.free.len() < self.free.capacity() {
                self.free.push(a & !(u64::from(FRAME_SIZE) - 1));
            }
        }
        self.comp.cons_release(n);
    }

    /// One `sendto` when the kernel asks for a wakeup, a few more while it says it has
    /// more to send and descriptors are still waiting (bounded: per burst, not per packet).
    fn kick(&mut self) {
        if self.unkicked && self.tx.needs_wakeup() {
            for _ in 0..4 {
                let more = kick_tx(self.shared.fd.as_raw_fd());
                if !more || self.tx.prod_outstanding() == 0 {
                    break;
                }
            }
        }
        self.unkicked = false;
    }
}

impl TxQueue for AfXdpTx {
    type Buf = PoolBuf;

    fn tx_burst(&mut self, pkts: &mut Burst<PoolBuf>) -> usize {
        self.reclaim();
        let room = self.tx.prod_room(pkts.len() as u32);
        let (mut sent, mut bytes, mut too_big) = (0u32, 0u64, 0u64);
        let max = self.max_frame.min(FRAME_SIZE as usize);
        let mut taken = 0usize;
        for b in pkts.as_slice() {
            if sent >= room {
                break;
            }
            let data = b.data();
            if data.len() > max {
                too_big += 1;
                taken += 1;
                continue;
            }
            let Some(addr) = self.free.pop() else { break };
            match self.shared.umem.frame_mut(addr, data.len()) {
                Some(f) => f.copy_from_slice(data),
                None => {
                    self.free.push(addr);
                    break;
                }
            }
            self.tx.prod_write(
                sent,
                libc::xdp_desc {
                    addr,
                    len: data.len() as u32,
                    options: 0,
                },
            );
            sent += 1;
            taken += 1;
            bytes += data.len() as u64;
        }
        if sent > 0 {
            self.tx.prod_submit(sent);
            self.unkicked = true;
            self.kick();
        }
        pkts.drain_front(taken);
        let c = &self.shared.counters;
        PortCounters::add(&c.tx_packets, u64::from(sent));
        PortCounters::add(&c.tx_bytes, bytes);
        PortCounters::add(&c.tx_dropped, too_big);
        PortCounters::add(&c.tx_too_big, too_big);
        taken
    }

    /// Also kicks again while the kernel has not taken every descriptor (copy mode sends
    /// a bounded batch per kick), so nothing waits in the ring for the next burst.
    fn flush(&mut self) {
        self.reclaim();
        if self.tx.prod_outstanding() > 0 {
            self.unkicked = true;
        }
        self.kick();
    }
}
