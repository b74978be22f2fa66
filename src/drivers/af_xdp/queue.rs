//! The worker side of one AF_XDP socket: [`AfXdpRx`] drives the RX and fill rings,
//! [`AfXdpTx`] the TX and completion rings; each is used by one thread. Frames move
//! between them through the socket's [`Frames`] free list, never by copy: a received
//! frame is the pipeline's buffer ([`XskBuf`]), and sent back out of the same socket by
//! its address (see [`super::frame`]).

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use crate::datapath::{PacketBuf, BURST_MAX};
use crate::drivers::{Burst, PortCounters, RxQueue, TxQueue};

use super::frame::{Frames, XskBuf, TX_HEADROOM};
use super::xsk::{kick_tx, wake_rx, Ring};
use super::{FRAME_SIZE, RING_SIZE};

/// What a queue's two halves share: the socket, its frames and the port's counters.
#[derive(Debug)]
pub struct Shared {
    pub fd: OwnedFd,
    pub frames: Arc<Frames>,
    pub counters: Arc<PortCounters>,
    /// Preferred busy polling: wake the kernel on every empty poll and every TX burst,
    /// since it drives the NIC only when asked.
    pub busy_poll: bool,
}

/// Receive side of one AF_XDP socket.
pub struct AfXdpRx {
    pub(super) shared: Arc<Shared>,
    pub(super) fill: Ring<u64>,
    pub(super) rx: Ring<libc::xdp_desc>,
}

impl RxQueue for AfXdpRx {
    type Buf = XskBuf;

    fn wait(&mut self, timeout: std::time::Duration) {
        self.poll_rx(timeout);
    }

    fn rx_burst(&mut self, out: &mut Burst<XskBuf>) -> usize {
        self.refill();
        let want = out.room().min(BURST_MAX) as u32;
        let n = self.rx.cons_ready(want);
        if n == 0 {
            if self.shared.busy_poll || self.fill.needs_wakeup() {
                wake_rx(self.shared.fd.as_raw_fd());
            }
            return 0;
        }
        let frames = &self.shared.frames;
        let (mut got, mut bytes, mut bad) = (0usize, 0u64, 0u64);
        for i in 0..n {
            let d = self.rx.cons_read(i);
            match frames.received(d.addr, d.len) {
                Some(b) => {
                    bytes += u64::from(d.len);
                    // Cannot fail: at most `out.room()` descriptors were read (and a
                    // refused buffer would free its frame).
                    if out.push(b).is_ok() {
                        got += 1;
                    }
                }
                None => bad += 1,
            }
        }
        self.rx.cons_release(n);
        let c = &self.shared.counters;
        PortCounters::add(&c.rx_packets, got as u64);
        PortCounters::add(&c.rx_bytes, bytes);
        PortCounters::add(&c.rx_errors, bad);
        got
    }
}

impl AfXdpRx {
    /// See [`RxQueue::wait`]: poll(2) on the socket (POLLIN when the RX ring has
    /// descriptors; in need-wakeup mode the poll also drives the kernel's receive).
    fn poll_rx(&mut self, timeout: std::time::Duration) {
        self.refill();
        if self.rx.cons_ready(1) > 0 {
            return;
        }
        let ms = i32::try_from(timeout.as_millis().max(1)).unwrap_or(i32::MAX);
        let _ = crate::sys::poll::poll_readable(self.shared.fd.as_raw_fd(), ms);
    }

    /// Keep the fill ring full from the free frames.
    #[inline]
    fn refill(&mut self) {
        let room = self.fill.prod_room(RING_SIZE);
        if room < BURST_MAX as u32 {
            return;
        }
        let frames = &self.shared.frames;
        let mut n = 0;
        while n < room {
            let Some(f) = frames.pop() else { break };
            self.fill.prod_write(n, f);
            n += 1;
        }
        if n > 0 {
            self.fill.prod_submit(n);
            if self.fill.needs_wakeup() {
                wake_rx(self.shared.fd.as_raw_fd());
            }
        }
    }
}

/// Transmit side of one AF_XDP socket.
pub struct AfXdpTx {
    pub(super) shared: Arc<Shared>,
    pub(super) tx: Ring<libc::xdp_desc>,
    pub(super) comp: Ring<u64>,
    /// Descriptors submitted since the last kick.
    pub(super) unkicked: bool,
    /// Largest frame the interface takes (MTU plus Ethernet and one VLAN tag).
    pub(super) max_frame: usize,
}

impl AfXdpTx {
    /// Take completed frames back into the free list.
    #[inline]
    fn reclaim(&mut self) {
        let n = self.comp.cons_ready(RING_SIZE);
        for i in 0..n {
            self.shared.frames.push(self.comp.cons_read(i));
        }
        self.comp.cons_release(n);
    }

    /// One `sendto` when the kernel asks for a wakeup (always with busy polling), a few
    /// more while it says it has more to send and descriptors are still waiting (bounded:
    /// per burst, not per packet).
    fn kick(&mut self) {
        if self.unkicked && (self.shared.busy_poll || self.tx.needs_wakeup()) {
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
    type Buf = XskBuf;

    fn tx_burst(&mut self, pkts: &mut Burst<XskBuf>) -> usize {
        self.reclaim();
        let room = self.tx.prod_room(pkts.len() as u32);
        let (mut sent, mut bytes, mut too_big) = (0u32, 0u64, 0u64);
        // A frame of this UMEM fits by construction; a copied one must fit after the
        // headroom.
        let max = self.max_frame.min(FRAME_SIZE as usize - TX_HEADROOM);
        let frames = &self.shared.frames;
        let tx = &mut self.tx;
        let taken = pkts.send_each(|b| {
            if sent >= room {
                return Err(b);
            }
            let len = b.len();
            if len > max {
                too_big += 1;
                return Ok(()); // dropped: its frame goes back to the free list
            }
            let (addr, len) = match b.into_desc(frames) {
                Ok(d) => d,
                // Another socket's frame (or the control plane's): copied into one of ours.
                Err(b) => match frames.pop() {
                    Some(f) => frames.copy_into(f, b.data()),
                    None => return Err(b),
                },
            };
            tx.prod_write(
                sent,
                libc::xdp_desc {
                    addr,
                    len,
                    options: 0,
                },
            );
            sent += 1;
            bytes += u64::from(len);
            Ok(())
        });
        if sent > 0 {
            self.tx.prod_submit(sent);
            self.unkicked = true;
            self.kick();
        }
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
