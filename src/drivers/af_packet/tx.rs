//! The TX queue: a `TPACKET_V2` ring filled slot by slot and pushed to the kernel with one
//! `send()` per burst.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::ring::Ring;
use super::{uapi, ETH_HLEN, VLAN_HLEN};
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
    /// Largest frame a ring slot holds (fixed when the ring is made).
    pub(super) ring_max: usize,
    /// The interface MTU as the port last read it (its control side re-reads it); loaded
    /// once per burst.
    pub(super) mtu: Arc<AtomicUsize>,
    /// Slot of the last frame queued, to see whether the kernel has taken it.
    pub(super) last_queued: Option<usize>,
    /// Oldest slot that may still be queued (only kept up to date on the error path).
    pub(super) head: usize,
    /// When the last refused-frames warning was logged, and frames refused since.
    pub(super) refused_logged: Option<Instant>,
    pub(super) refused_unlogged: u64,
    pub(super) counters: Arc<Counters>,
}

/// `send()` calls one kick makes at most (retries and frames taken out of the ring).
const KICK_SYSCALLS_MAX: usize = 64;
/// Refusals in a row (`ENOBUFS`) after which the frame at the kernel's ring head is taken
/// out of the ring and dropped. A full qdisc refuses too; retrying the same frame three
/// times in a row and then dropping it is what a full device queue would do anyway.
const KICK_REFUSALS_MAX: usize = 3;
/// Least time between two warnings about refused frames.
const REFUSED_LOG_EVERY: Duration = Duration::from_secs(1);

impl AfPacketTx {
    #[inline]
    fn slot_offset(&self, i: usize) -> usize {
        super::ring::slot_offset(i, self.per_block, self.block_size, self.frame_size)
    }

    /// Ask the kernel to send every queued slot (never blocks; a bounded number of
    /// syscalls).
    ///
    /// `ENOBUFS` means the kernel gave the frame at its ring head back (`tpacket_snd` sets it
    /// to `TP_STATUS_SEND_REQUEST` again when the device dropped it: a full qdisc, or a veth
    /// whose peer's MTU is below the frame), and would refuse it again on every later kick:
    /// the whole ring behind it would wait. So it is tried [`KICK_REFUSALS_MAX`] times in a
    /// row; still refused, it is taken out of the ring ([`AfPacketTx::discard_head`]),
    /// dropped and counted as `tx_kernel_refused`, and the frames behind it go.
    fn kick(&mut self) {
        let mut syscalls = 0usize;
        let mut refusals = 0usize;
        let mut discarded = 0u64;
        while syscalls < KICK_SYSCALLS_MAX {
            syscalls += 1;
            // SAFETY: a zero-length send with a NULL buffer is the documented way to flush a
            // PACKET_TX_RING; the kernel reads nothing through the pointer.
            let r =
                unsafe { libc::send(self.fd.as_raw_fd(), std::ptr::null(), 0, libc::MSG_DONTWAIT) };
            if r >= 0 {
                break;
            }
            match io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => continue,
                // Socket buffer full: frames are in flight, the slots stay queued and go
                // with the next kick.
                Some(libc::EAGAIN) => break,
                Some(libc::ENOBUFS) => {
                    refusals += 1;
                    if refusals < KICK_REFUSALS_MAX {
                        continue;
                    }
                    refusals = 0;
                    if !self.discard_head() {
                        break;
                    }
                    discarded += 1;
                }
                _ => {
                    // Interface down or gone: the slots stay queued until it is back or
                    // the ring fills and bursts are refused.
                    Counters::add(&self.counters.tx_errors, 1);
                    break;
                }
            }
        }
        if discarded > 0 {
            Counters::add(&self.counters.tx_kernel_refused, discarded);
            Counters::add(&self.counters.tx_dropped, discarded);
            self.log_refused(discarded);
        }
    }

    /// The slot at the kernel's ring head: the first one still `TP_STATUS_SEND_REQUEST`
    /// from the oldest slot that may be queued (the kernel sends in ring order). Error
    /// path only: it may look at the whole ring.
    fn kernel_head(&mut self) -> Option<usize> {
        for _ in 0..self.frames {
            if self.head == self.next && !self.is_queued(self.head) {
                return None;
            }
            if self.is_queued(self.head) {
                return Some(self.head);
            }
            self.head = (self.head + 1) % self.frames;
        }
        None
    }

    #[inline]
    fn is_queued(&self, i: usize) -> bool {
        self.ring
            .status(self.slot_offset(i))
            .is_some_and(|s| s.load(Ordering::Acquire) == uapi::TP_STATUS_SEND_REQUEST)
    }

    /// Take the frame at the kernel's ring head out of the ring: its length becomes 0, so
    /// on the next kick the kernel finds it malformed (shorter than an Ethernet header)
    /// and, as `PACKET_LOSS` is set, marks it available and moves its head past it. The
    /// kernel only reads a slot during `send()`, which only this queue calls, so the slot
    /// may be written here. Returns whether there was one.
    fn discard_head(&mut self) -> bool {
        let Some(i) = self.kernel_head() else {
            return false;
        };
        let off = self.slot_offset(i);
        match self.ring.bytes_mut(off + uapi::V2_LEN, 4) {
            Some(len) => {
                len.copy_from_slice(&0u32.to_ne_bytes());
                true
            }
            None => false,
        }
    }

    /// A warning at most every [`REFUSED_LOG_EVERY`], with the count since the last one.
    #[cold]
    fn log_refused(&mut self, n: u64) {
        self.refused_unlogged += n;
        let now = Instant::now();
        if self
            .refused_logged
            .is_some_and(|t| now.duration_since(t) < REFUSED_LOG_EVERY)
        {
            return;
        }
        tracing::warn!(
            frames = self.refused_unlogged,
            "af_packet: the kernel refused to send frames again and again (the device or its \
             peer drops them: a peer MTU below the frame length?); they were dropped \
             (tx_kernel_refused)"
        );
        self.refused_logged = Some(now);
        self.refused_unlogged = 0;
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
            .field("ring_max", &self.ring_max)
            .field("mtu", &self.mtu.load(Ordering::Relaxed))
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
    /// not fit the ring stay in `pkts`; frames the interface cannot send are taken and
    /// counted: shorter than an Ethernet header as `tx_errors` (and `tx_dropped`); longer than the current MTU
    /// plus the Ethernet header (plus a VLAN tag when the frame has one), or than a ring
    /// slot holds, as `tx_too_big` (and `tx_dropped`). The kernel would discard those
    /// (`PACKET_LOSS`) after they were counted as sent.
    fn tx_burst(&mut self, pkts: &mut Burst<PoolBuf>) -> usize {
        // What the kernel's tpacket_snd takes: MTU + link header, + one VLAN tag if tagged.
        let mtu = self.mtu.load(Ordering::Relaxed);
        let max_untagged = mtu.saturating_add(ETH_HLEN).min(self.ring_max);
        let max_tagged = mtu.saturating_add(ETH_HLEN + VLAN_HLEN).min(self.ring_max);
        let (mut taken, mut queued, mut bytes) = (0usize, 0u64, 0u64);
        let (mut errors, mut too_big) = (0u64, 0u64);
        let mut kicked = false;
        for b in pkts.as_slice() {
            let data = b.data();
            if data.len() < ETH_HLEN {
                errors += 1;
                taken += 1;
                continue;
            }
            // The tag is looked at only for a frame over the untagged limit (rare).
            if data.len() > max_untagged && !(data.len() <= max_tagged && is_vlan_tagged(data)) {
                too_big += 1;
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
        Counters::add(&c.tx_too_big, too_big);
        // Taken and not sent, whatever the reason: both are drops.
        Counters::add(&c.tx_dropped, too_big + errors);
        taken
    }

    fn flush(&mut self) {
        if self.pending() {
            self.kick();
        }
    }
}

/// Whether an Ethernet frame (at least [`ETH_HLEN`] bytes) carries an 802.1Q or 802.1ad tag.
#[inline]
fn is_vlan_tagged(frame: &[u8]) -> bool {
    matches!(u16::from_be_bytes([frame[12], frame[13]]), 0x8100 | 0x88a8)
}

impl Drop for AfPacketTx {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vlan_tags_are_recognised() {
        let mut f = [0u8; 18];
        assert!(!is_vlan_tagged(&f));
        f[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
        assert!(is_vlan_tagged(&f));
        f[12..14].copy_from_slice(&0x88a8u16.to_be_bytes());
        assert!(is_vlan_tagged(&f));
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        assert!(!is_vlan_tagged(&f));
    }
}
