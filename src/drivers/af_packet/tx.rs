//! The TX queue: a `TPACKET_V2` ring filled slot by slot and pushed to the kernel with one
//! `send()` per burst.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::ring::Ring;
use super::{uapi, ETH_HLEN};
use crate::datapath::PacketBuf;
use crate::drivers::{Burst, PoolBuf, PortCounters as Counters, TxQueue};

/// TX queue of an [`AfPacketPort`](super::AfPacketPort): one socket with a `TPACKET_V2` ring, pushed with one
/// `send()` per burst.
pub struct AfPacketTx {
    // Declared before `fd`: unmapped before the socket closes.
    pub(super) ring: Ring,
    pub(super) fd: OwnedFd,
    pub(super) block_size: usize,
    pub(super) frame_size: usize,
    pub(super) per_block: usize,
    pub(super) frames: usize,
    /// Next slot to fill.
    pub(super) next: usize,
    /// Largest frame the kernel takes (slot size and MTU).
    pub(super) max_len: usize,
    /// Slot of the last frame queued, to see whether the kernel has taken it.
    pub(super) last_queued: Option<usize>,
    pub(super) counters: Arc<Counters>,
}

impl AfPacketTx {
    #[inline]
    fn slot_offset(&self, i: usize) -> usize {
        (i / self.per_block) * self.block_size + (i % self.per_block) * self.frame_size
    }

    /// Ask the kernel to send every queued slot (one syscall, never blocks).
    fn kick(&mut self) {
        loop {
            // SAFETY: a zero-length send with a NULL buffer is the documented way to flush a
            // PACKET_TX_RING; the kernel reads nothing through the pointer.
            let r =
                unsafe { libc::send(self.fd.as_raw_fd(), std::ptr::null(), 0, libc::MSG_DONTWAIT) };
            if r >= 0 {
                break;
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                // Socket buffer full: the slots stay queued and go with the next kick.
                Some(libc::EAGAIN) | Some(libc::ENOBUFS) => break,
                _ => {
                    // Interface down or gone: the slots stay queued until it is back or
                    // the ring fills and bursts are refused.
                    Counters::add(&self.counters.tx_errors, 1);
                    break;
                }
            }
        }
    }

    /// Whether the slot at `off` may be filled (free, or refused by the kernel earlier).
    #[inline]
    fn slot_free(&self, off: usize) -> bool {
        self.ring.status(off).is_some_and(|s| {
            let st = s.load(Ordering::Acquire);
            st == uapi::TP_STATUS_AVAILABLE || st & uapi::TP_STATUS_WRONG_FORMAT != 0
        })
    }

    /// Whether the last queued frame still waits for the kernel.
    fn pending(&self) -> bool {
        self.last_queued
            .and_then(|i| self.ring.status(self.slot_offset(i)))
            .is_some_and(|s| s.load(Ordering::Acquire) == uapi::TP_STATUS_SEND_REQUEST)
    }
}

impl std::fmt::Debug for AfPacketTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfPacketTx")
            .field("fd", &self.fd.as_raw_fd())
            .field("frames", &self.frames)
            .field("frame_size", &self.frame_size)
            .field("max_len", &self.max_len)
            .finish()
    }
}

impl AsRawFd for AfPacketTx {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl TxQueue for AfPacketTx {
    type Buf = PoolBuf;

    /// Copies frames into free ring slots and sends them with one syscall. Frames that do
    /// not fit the ring stay in `pkts`; frames the interface can never send (shorter than an
    /// Ethernet header, longer than the MTU) are taken and counted as `tx_errors`.
    fn tx_burst(&mut self, pkts: &mut Burst<PoolBuf>) -> usize {
        let (mut taken, mut queued, mut bytes, mut errors) = (0usize, 0u64, 0u64, 0u64);
        let mut kicked = false;
        for b in pkts.as_slice() {
            let data = b.data();
            if data.len() < ETH_HLEN || data.len() > self.max_len {
                errors += 1;
                taken += 1;
                continue;
            }
            let off = self.slot_offset(self.next);
            let mut free = self.slot_free(off);
            if !free && !kicked && queued == 0 && self.pending() {
                // Ring full of frames that wait for a kick (the socket buffer was full last
                // time): kick once and look again.
                kicked = true;
                self.kick();
                free = self.slot_free(off);
            }
            if !free {
                break;
            }
            // The slot after its status word: tp_len, the rest of the header, the frame.
            let Some(slot) = self
                .ring
                .bytes_mut(off + uapi::V2_LEN, self.frame_size - uapi::V2_LEN)
            else {
                break;
            };
            slot[..4].copy_from_slice(&(data.len() as u32).to_ne_bytes());
            let at = uapi::V2_DATA - uapi::V2_LEN;
            slot[at..at + data.len()].copy_from_slice(data);
            if let Some(s) = self.ring.status(off) {
                s.store(uapi::TP_STATUS_SEND_REQUEST, Ordering::Release);
            }
            self.last_queued = Some(self.next);
            self.next = (self.next + 1) % self.frames;
            queued += 1;
            bytes += data.len() as u64;
            taken += 1;
        }
        if queued > 0 {
            self.kick();
        }
        // Buffers go back to the pool.
        pkts.drain_front(taken).for_each(drop);
        let c = &self.counters;
        Counters::add(&c.tx_packets, queued);
        Counters::add(&c.tx_bytes, bytes);
        Counters::add(&c.tx_errors, errors);
        taken
    }

    fn flush(&mut self) {
        if self.pending() {
            self.kick();
        }
    }
}

impl Drop for AfPacketTx {
    fn drop(&mut self) {
        self.flush();
    }
}
