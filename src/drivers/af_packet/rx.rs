//! The RX queue: walking the `TPACKET_V2` slots or the `TPACKET_V3` blocks the kernel hands
//! over, frame by frame, into pool buffers (VLAN tags put back, checksums left to the NIC
//! completed). Which ring a queue has is one enum matched once per burst.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::ring::{slot_offset, Ring};
use super::{uapi, ETH_HLEN, RX_SCAN_MAX};
use crate::datapath::PacketBuf;
use crate::drivers::{BufPool, Burst, PoolBuf, PortCounters as Counters, RxQueue};
use crate::sys::socket::getsockopt;
use crate::wire::offload::complete_l4_checksum;

/// The kernel's drop count of an RX ring socket since the last call (the kernel resets
/// the counters when they are read).
pub(super) fn kernel_drops(fd: &OwnedFd) -> u64 {
    getsockopt::<uapi::TpacketStats>(fd, libc::SOL_PACKET, uapi::PACKET_STATISTICS)
        .map(|s| u64::from(s.drops))
        .unwrap_or(0)
}

fn read_u32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn read_u16(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

/// What one frame header in an RX ring (`tpacket2_hdr` or `tpacket3_hdr`) describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RxFrame {
    /// A frame to deliver: `area[start..start + len]` of the slot or block parsed, plus the
    /// VLAN tag the kernel took out of the data (offloaded), to be put back.
    Frame {
        start: usize,
        len: usize,
        vlan: Option<[u8; 4]>,
        /// `TP_STATUS_CSUMNOTREADY`: the TCP/UDP checksum must be completed
        /// ([`complete_l4_checksum`](crate::wire::offload::complete_l4_checksum)) before the frame is forwarded.
        csum_not_ready: bool,
    },
    /// Sent by this host (seen on kernels without `PACKET_IGNORE_OUTGOING`).
    Outgoing,
    /// Cut short by the ring (snaplen < len): larger than a V2 slot holds.
    Truncated,
    /// The header points outside its slot or block (V3: give up on the rest of the block).
    Corrupt,
}

/// The fields of a frame header both ring kinds have, read out of the shared memory.
struct Hdr {
    /// Offset of the frame data from the header.
    mac: usize,
    snaplen: usize,
    len: usize,
    status: u32,
    pkttype: u8,
    vlan_tci: u16,
    vlan_tpid: u16,
}

/// Classify a frame whose header sits at `off` in `area` (a V2 slot, a V3 block).
#[inline]
fn classify(area: &[u8], off: usize, h: &Hdr, min_mac: usize) -> RxFrame {
    let Some(start) = off.checked_add(h.mac) else {
        return RxFrame::Corrupt;
    };
    if h.mac < min_mac || start.checked_add(h.snaplen).is_none_or(|e| e > area.len()) {
        return RxFrame::Corrupt;
    }
    if h.pkttype == uapi::PACKET_OUTGOING {
        return RxFrame::Outgoing;
    }
    if h.snaplen < h.len || h.snaplen < ETH_HLEN {
        return RxFrame::Truncated;
    }
    let vlan = (h.status & uapi::TP_STATUS_VLAN_VALID != 0).then(|| {
        let tpid = if h.status & uapi::TP_STATUS_VLAN_TPID_VALID != 0 {
            h.vlan_tpid
        } else {
            0x8100
        };
        let [a, b] = tpid.to_be_bytes();
        let [c, d] = h.vlan_tci.to_be_bytes();
        [a, b, c, d]
    });
    RxFrame::Frame {
        start,
        len: h.snaplen,
        vlan,
        csum_not_ready: h.status & uapi::TP_STATUS_CSUMNOTREADY != 0,
    }
}

/// Parse the frame header at `off` in `block`; also returns `tp_next_offset`.
fn parse_v3(block: &[u8], off: usize) -> (RxFrame, u32) {
    let Some(h) = off
        .checked_add(uapi::TPACKET3_HDRLEN)
        .and_then(|end| block.get(off..end))
    else {
        return (RxFrame::Corrupt, 0);
    };
    let field = |o| read_u32(h, o).unwrap_or(0);
    let hdr = Hdr {
        mac: read_u16(h, uapi::V3_MAC).unwrap_or(0) as usize,
        snaplen: field(uapi::V3_SNAPLEN) as usize,
        len: field(uapi::V3_LEN) as usize,
        status: field(uapi::V3_STATUS),
        pkttype: h[uapi::V3_SLL + uapi::SLL_PKTTYPE],
        vlan_tci: field(uapi::V3_VLAN_TCI) as u16,
        vlan_tpid: read_u16(h, uapi::V3_VLAN_TPID).unwrap_or(0x8100),
    };
    (
        classify(block, off, &hdr, uapi::TPACKET3_HDRLEN),
        field(uapi::V3_NEXT_OFFSET),
    )
}

/// Parse the V2 slot `slot` (header at its start), whose status word read `status`.
fn parse_v2(slot: &[u8], status: u32) -> RxFrame {
    let Some(h) = slot.get(..uapi::TPACKET2_HDRLEN) else {
        return RxFrame::Corrupt;
    };
    let field = |o| read_u32(h, o).unwrap_or(0);
    let hdr = Hdr {
        mac: read_u16(h, uapi::V2_MAC).unwrap_or(0) as usize,
        snaplen: field(uapi::V2_SNAPLEN) as usize,
        len: field(uapi::V2_LEN) as usize,
        status,
        pkttype: h[uapi::V2_SLL + uapi::SLL_PKTTYPE],
        vlan_tci: read_u16(h, uapi::V2_VLAN_TCI).unwrap_or(0),
        vlan_tpid: read_u16(h, uapi::V2_VLAN_TPID).unwrap_or(0x8100),
    };
    classify(slot, 0, &hdr, uapi::TPACKET2_HDRLEN)
}

/// Copy `data` into `dst`, re-inserting an offloaded VLAN tag after the MAC addresses;
/// returns the frame length, or `None` if it does not fit.
fn copy_frame(dst: &mut [u8], data: &[u8], vlan: Option<[u8; 4]>) -> Option<usize> {
    match vlan {
        None => {
            dst.get_mut(..data.len())?.copy_from_slice(data);
            Some(data.len())
        }
        Some(tag) => {
            let total = data.len().checked_add(4)?;
            if data.len() < 12 || total > dst.len() {
                return None;
            }
            dst[..12].copy_from_slice(&data[..12]);
            dst[12..16].copy_from_slice(&tag);
            dst[16..total].copy_from_slice(&data[12..]);
            Some(total)
        }
    }
}

/// What one burst counted, added to the port's counters once at its end.
#[derive(Default)]
struct Tally {
    packets: usize,
    bytes: u64,
    dropped: u64,
    errors: u64,
}

/// Act on one parsed frame of `area`: copy it into a pool buffer pushed to `out`, or count
/// why not.
#[inline]
fn take(frame: RxFrame, area: &[u8], pool: &BufPool, out: &mut Burst<PoolBuf>, t: &mut Tally) {
    match frame {
        RxFrame::Frame {
            start,
            len,
            vlan,
            csum_not_ready,
        } => {
            // Pool empty: the frame is dropped (counted) and the ring moves on.
            let Some(mut buf) = pool.get() else {
                t.dropped += 1;
                return;
            };
            // `classify` checked `start + len` against the area; checked again for free.
            let copied = area
                .get(start..start + len)
                .and_then(|data| copy_frame(buf.room_mut(), data, vlan));
            match copied {
                Some(l) => {
                    buf.set_len(l);
                    if csum_not_ready {
                        complete_l4_checksum(buf.data_mut());
                    }
                    t.bytes += l as u64;
                    t.packets += 1;
                    let _ = out.push(buf);
                }
                // Larger than the buffers: counted, the buffer goes back.
                None => t.dropped += 1,
            }
        }
        RxFrame::Outgoing => {}
        RxFrame::Truncated | RxFrame::Corrupt => t.errors += 1,
    }
}

/// Where a `TPACKET_V2` RX queue is in its ring of slots.
#[derive(Debug)]
pub(super) struct V2Walk {
    pub(super) block_size: usize,
    pub(super) frame_size: usize,
    pub(super) per_block: usize,
    pub(super) frames: usize,
    /// The next slot to look at (the kernel fills them in order).
    pub(super) next: usize,
}

/// Where a `TPACKET_V3` RX queue is in its ring of blocks.
#[derive(Debug)]
pub(super) struct V3Walk {
    pub(super) block_size: usize,
    pub(super) block_count: usize,
    /// Block being read, or the next one to wait for.
    pub(super) block: usize,
    /// `block` is ours (handed over by the kernel, not yet given back).
    pub(super) in_block: bool,
    /// Frames of `block` not read yet, and the offset of the next.
    pub(super) pkts_left: u32,
    pub(super) offset: usize,
}

/// The ring kind of a queue and where it is in it: matched once per burst.
#[derive(Debug)]
pub(super) enum Walk {
    V2(V2Walk),
    V3(V3Walk),
}

/// One burst from a V2 ring: every slot whose status says the kernel is done with it,
/// handed back one by one as soon as it is copied.
#[inline]
fn burst_v2(
    ring: &mut Ring,
    w: &mut V2Walk,
    pool: &BufPool,
    out: &mut Burst<PoolBuf>,
    t: &mut Tally,
) {
    let mut scanned = 0;
    while out.room() > 0 && scanned < RX_SCAN_MAX {
        let off = slot_offset(w.next, w.per_block, w.block_size, w.frame_size);
        let Some(status) = ring.status(off + uapi::V2_STATUS) else {
            break;
        };
        let st = status.load(Ordering::Acquire);
        if st & uapi::TP_STATUS_USER == 0 {
            break;
        }
        scanned += 1;
        match ring.bytes(off, w.frame_size) {
            Some(slot) => take(parse_v2(slot, st), slot, pool, out, t),
            None => t.errors += 1,
        }
        ring.set_status(off + uapi::V2_STATUS, uapi::TP_STATUS_KERNEL);
        w.next += 1;
        if w.next == w.frames {
            w.next = 0;
        }
    }
}

/// Hand V3 block `w.block` back to the kernel and move to the next.
#[inline]
fn release_block(ring: &mut Ring, w: &mut V3Walk) {
    ring.set_status(
        w.block * w.block_size + uapi::BLOCK_STATUS,
        uapi::TP_STATUS_KERNEL,
    );
    w.in_block = false;
    w.pkts_left = 0;
    w.block = (w.block + 1) % w.block_count;
}

/// One burst from a V3 ring: frame by frame through the blocks the kernel handed over (a
/// burst may stop half-way through a block and resume there).
#[inline]
fn burst_v3(
    ring: &mut Ring,
    w: &mut V3Walk,
    pool: &BufPool,
    out: &mut Burst<PoolBuf>,
    t: &mut Tally,
) {
    let mut scanned = 0;
    while out.room() > 0 && scanned < RX_SCAN_MAX {
        let base = w.block * w.block_size;
        if !w.in_block {
            let Some(status) = ring.status(base + uapi::BLOCK_STATUS) else {
                break;
            };
            if status.load(Ordering::Acquire) & uapi::TP_STATUS_USER == 0 {
                break;
            }
            let Some(block) = ring.bytes(base, w.block_size) else {
                break;
            };
            w.pkts_left = read_u32(block, uapi::BLOCK_NUM_PKTS).unwrap_or(0);
            w.offset = read_u32(block, uapi::BLOCK_FIRST_PKT).unwrap_or(0) as usize;
            w.in_block = true;
            if w.pkts_left == 0 {
                release_block(ring, w);
                continue;
            }
        }
        let Some(block) = ring.bytes(base, w.block_size) else {
            break;
        };
        let (frame, next) = parse_v3(block, w.offset);
        scanned += 1;
        if frame == RxFrame::Corrupt {
            t.errors += u64::from(w.pkts_left);
            release_block(ring, w);
            continue;
        }
        take(frame, block, pool, out, t);
        w.pkts_left -= 1;
        if w.pkts_left == 0 {
            release_block(ring, w);
        } else if next == 0 {
            t.errors += u64::from(w.pkts_left);
            release_block(ring, w);
        } else {
            w.offset += next as usize;
        }
    }
}

/// RX queue of an [`AfPacketPort`](super::AfPacketPort): one socket with a `TPACKET_V2` or
/// `TPACKET_V3` ring ([`RxRing`](super::RxRing)).
pub struct AfPacketRx {
    // Declared before `fd`: unmapped before the socket closes.
    pub(super) ring: Ring,
    pub(super) fd: Arc<OwnedFd>,
    pub(super) walk: Walk,
    pub(super) pool: BufPool,
    pub(super) counters: Arc<Counters>,
}

impl AfPacketRx {
    /// The receive ring kind of this queue.
    pub fn rx_ring(&self) -> super::RxRing {
        match self.walk {
            Walk::V2(_) => super::RxRing::V2,
            Walk::V3(_) => super::RxRing::V3,
        }
    }
}

impl std::fmt::Debug for AfPacketRx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfPacketRx")
            .field("fd", &self.fd.as_raw_fd())
            .field("walk", &self.walk)
            .finish()
    }
}

impl AsRawFd for AfPacketRx {
    /// The socket, readable (poll) when a frame (V2) or a block (V3) is ready.
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl RxQueue for AfPacketRx {
    type Buf = PoolBuf;

    fn wait(&mut self, timeout: std::time::Duration) {
        // POLLIN when the frame at the ring's head belongs to user space (V2) or a block
        // was retired (V3). An error only ends the wait early: the next burst reports it.
        let ms = i32::try_from(timeout.as_millis().max(1)).unwrap_or(i32::MAX);
        let _ = crate::sys::poll::poll_readable(self.fd.as_raw_fd(), ms);
    }

    fn rx_burst(&mut self, out: &mut Burst<PoolBuf>) -> usize {
        let mut t = Tally::default();
        match &mut self.walk {
            Walk::V2(w) => burst_v2(&mut self.ring, w, &self.pool, out, &mut t),
            Walk::V3(w) => burst_v3(&mut self.ring, w, &self.pool, out, &mut t),
        }
        let c = &self.counters;
        Counters::add(&c.rx_packets, t.packets as u64);
        Counters::add(&c.rx_bytes, t.bytes);
        Counters::add(&c.rx_dropped, t.dropped);
        Counters::add(&c.rx_errors, t.errors);
        t.packets
    }
}

impl Drop for AfPacketRx {
    fn drop(&mut self) {
        // Keep the kernel's last drops (the port may still be asked for stats).
        Counters::add(&self.counters.rx_dropped, kernel_drops(&self.fd));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datapath::BURST_MAX;

    /// Where the kernel puts an untagged frame's MAC header in a V2 slot.
    const V2_MAC_OFF: usize = uapi::V2_RX_NETOFF - ETH_HLEN;

    /// A V2 slot `i` as the kernel leaves it: header, `sockaddr_ll`, frame, then status.
    fn put_v2(
        ring: &mut Ring,
        w: &V2Walk,
        i: usize,
        data: &[u8],
        status: u32,
        pkttype: u8,
    ) -> usize {
        let off = slot_offset(i, w.per_block, w.block_size, w.frame_size);
        let slot = ring.bytes_mut(off, w.frame_size).unwrap();
        slot.fill(0);
        slot[4..8].copy_from_slice(&(data.len() as u32).to_ne_bytes());
        slot[8..12].copy_from_slice(&(data.len() as u32).to_ne_bytes());
        slot[12..14].copy_from_slice(&(V2_MAC_OFF as u16).to_ne_bytes());
        slot[14..16].copy_from_slice(&(uapi::V2_RX_NETOFF as u16).to_ne_bytes());
        slot[24..26].copy_from_slice(&0x0123u16.to_ne_bytes());
        slot[26..28].copy_from_slice(&0x88a8u16.to_ne_bytes());
        slot[uapi::V2_SLL + uapi::SLL_PKTTYPE] = pkttype;
        slot[V2_MAC_OFF..V2_MAC_OFF + data.len()].copy_from_slice(data);
        ring.set_status(off, status);
        off
    }

    fn status_at(ring: &Ring, off: usize) -> u32 {
        ring.status(off).unwrap().load(Ordering::Relaxed)
    }

    /// Two 8 KiB blocks of five 1536-byte slots (512 bytes unused at each block's end).
    fn v2_ring() -> (Ring, V2Walk) {
        let w = V2Walk {
            block_size: 8192,
            frame_size: 1536,
            per_block: 5,
            frames: 10,
            next: 0,
        };
        (Ring::anonymous(2 * 8192), w)
    }

    fn frame(seq: u8, len: usize) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(3) ^ seq).collect()
    }

    #[test]
    fn v2_slots_are_walked_in_order_and_handed_back() {
        let (mut ring, mut w) = v2_ring();
        let pool = BufPool::new(64, 2048).unwrap();
        let mut out = Burst::new();
        let mut t = Tally::default();
        // Nothing written yet: nothing read, nothing counted.
        burst_v2(&mut ring, &mut w, &pool, &mut out, &mut t);
        assert_eq!((out.len(), t.errors, w.next), (0, 0, 0));

        let offs: Vec<usize> = (0..3)
            .map(|i| put_v2(&mut ring, &w, i, &frame(i as u8, 60 + i * 100), 1, 0))
            .collect();
        burst_v2(&mut ring, &mut w, &pool, &mut out, &mut t);
        assert_eq!(out.len(), 3);
        for (i, b) in out.drain().enumerate() {
            assert_eq!(b.data(), &frame(i as u8, 60 + i * 100)[..]);
        }
        assert_eq!((t.packets, t.bytes), (3, 60 + 160 + 260));
        assert!(offs
            .iter()
            .all(|&o| status_at(&ring, o) == uapi::TP_STATUS_KERNEL));
        assert_eq!(w.next, 3);

        // Around the end of the ring, across the block boundary: slots 3..=9, then 0 and 1.
        for i in (3..10).chain(0..2) {
            put_v2(&mut ring, &w, i, &frame(i as u8, 64), 1, 0);
        }
        burst_v2(&mut ring, &mut w, &pool, &mut out, &mut t);
        let seen: Vec<u8> = out.drain().map(|b| b.data()[0]).collect();
        assert_eq!(seen, vec![3, 4, 5, 6, 7, 8, 9, 0, 1]);
        assert_eq!(w.next, 2);
        // Slot 5 is the first of the second block.
        assert_eq!(slot_offset(5, 5, 8192, 1536), 8192);
    }

    #[test]
    fn v2_bad_slots_are_counted_never_a_panic() {
        let (mut ring, mut w) = v2_ring();
        let pool = BufPool::new(64, 2048).unwrap();
        let mut out = Burst::new();
        let mut t = Tally::default();
        let data = frame(1, 100);
        // 0: fine. 1: snaplen past the slot (corrupt). 2: tp_mac inside the header
        // (corrupt). 3: cut short by the slot (truncated). 4: sent by this host (skipped,
        // not an error). 5: VLAN tag put back, checksum flagged. 6: tp_mac past the slot.
        for i in 0..7 {
            put_v2(&mut ring, &w, i, &data, 1, 0);
        }
        let (pb, bs, fs) = (w.per_block, w.block_size, w.frame_size);
        let off = move |i| slot_offset(i, pb, bs, fs);
        ring.bytes_mut(off(1) + 8, 4)
            .unwrap()
            .copy_from_slice(&u32::MAX.to_ne_bytes());
        ring.bytes_mut(off(2) + 12, 2)
            .unwrap()
            .copy_from_slice(&8u16.to_ne_bytes());
        ring.bytes_mut(off(3) + 4, 4)
            .unwrap()
            .copy_from_slice(&5000u32.to_ne_bytes());
        put_v2(&mut ring, &w, 4, &data, 1, uapi::PACKET_OUTGOING);
        let st = 1
            | uapi::TP_STATUS_VLAN_VALID
            | uapi::TP_STATUS_VLAN_TPID_VALID
            | uapi::TP_STATUS_CSUMNOTREADY;
        put_v2(&mut ring, &w, 5, &data, st, 0);
        put_v2(&mut ring, &w, 6, &data, 1, 0);
        ring.bytes_mut(off(6) + 12, 2)
            .unwrap()
            .copy_from_slice(&0xffffu16.to_ne_bytes());
        burst_v2(&mut ring, &mut w, &pool, &mut out, &mut t);
        assert_eq!((t.packets, t.errors, t.dropped), (2, 4, 0));
        assert_eq!(w.next, 7);
        assert!((0..7).all(|i| status_at(&ring, off(i)) == uapi::TP_STATUS_KERNEL));
        let got: Vec<Vec<u8>> = out.drain().map(|b| b.data().to_vec()).collect();
        assert_eq!(got[0], data);
        assert_eq!(&got[1][..12], &data[..12]);
        assert_eq!(&got[1][12..16], &[0x88, 0xa8, 0x01, 0x23]);
        assert_eq!(&got[1][16..], &data[12..]);

        // A slot too short for its header, straight from the parser.
        assert_eq!(parse_v2(&[0u8; 40], 1), RxFrame::Corrupt);
    }

    #[test]
    fn v2_pool_empty_and_oversize_frames_are_drops_and_the_ring_moves() {
        let (mut ring, mut w) = v2_ring();
        // Buffers of 256 bytes, three of them.
        let pool = BufPool::new(3, 256).unwrap();
        let mut out = Burst::new();
        let mut t = Tally::default();
        put_v2(&mut ring, &w, 0, &frame(0, 1000), 1, 0);
        for i in 1..6 {
            put_v2(&mut ring, &w, i, &frame(i as u8, 100), 1, 0);
        }
        burst_v2(&mut ring, &mut w, &pool, &mut out, &mut t);
        // Slot 0 is larger than a buffer; 1..=3 take the three buffers; 4 and 5 find the
        // pool empty.
        assert_eq!((t.packets, t.dropped, t.errors), (3, 3, 0));
        assert_eq!(w.next, 6);
        drop(out);
        assert_eq!(pool.available(), 3);
    }

    #[test]
    fn v2_bursts_stop_at_32_and_scans_at_the_limit() {
        let w0 = V2Walk {
            block_size: 1 << 16,
            frame_size: 128,
            per_block: 512,
            frames: 512,
            next: 0,
        };
        let mut ring = Ring::anonymous(1 << 16);
        let mut w = w0;
        let pool = BufPool::new(256, 2048).unwrap();
        let mut t = Tally::default();
        for i in 0..40 {
            put_v2(&mut ring, &w, i, &frame(i as u8, 60), 1, 0);
        }
        let mut out = Burst::new();
        burst_v2(&mut ring, &mut w, &pool, &mut out, &mut t);
        assert_eq!((out.len(), w.next), (BURST_MAX, BURST_MAX));
        out.drain().for_each(drop);
        burst_v2(&mut ring, &mut w, &pool, &mut out, &mut t);
        assert_eq!((out.len(), w.next), (8, 40));
        out.drain().for_each(drop);
        // Frames skipped (outgoing) count toward the scan limit.
        for i in 40..200 {
            put_v2(&mut ring, &w, i, &frame(0, 60), 1, uapi::PACKET_OUTGOING);
        }
        burst_v2(&mut ring, &mut w, &pool, &mut out, &mut t);
        assert_eq!((out.len(), w.next), (0, 40 + RX_SCAN_MAX));
    }

    #[test]
    fn v3_blocks_are_walked_frame_by_frame_and_handed_back() {
        let mut ring = Ring::anonymous(2 * 4096);
        let mut w = V3Walk {
            block_size: 4096,
            block_count: 2,
            block: 0,
            in_block: false,
            pkts_left: 0,
            offset: 0,
        };
        let pool = BufPool::new(64, 2048).unwrap();
        let mut out = Burst::new();
        let mut t = Tally::default();
        let data = frame(7, 60);
        {
            let block = ring.bytes_mut(0, 4096).unwrap();
            block[uapi::BLOCK_NUM_PKTS..][..4].copy_from_slice(&3u32.to_ne_bytes());
            block[uapi::BLOCK_FIRST_PKT..][..4].copy_from_slice(&48u32.to_ne_bytes());
            put_frame(block, 48, &data, 160, 1, 0);
            put_frame(block, 208, &data, 160, 1, uapi::PACKET_OUTGOING);
            put_frame(block, 368, &data, 0, 1, 0);
        }
        // Block 1: corrupt after its first frame (tp_next_offset 0 with frames left).
        {
            let block = ring.bytes_mut(4096, 4096).unwrap();
            block[uapi::BLOCK_NUM_PKTS..][..4].copy_from_slice(&4u32.to_ne_bytes());
            block[uapi::BLOCK_FIRST_PKT..][..4].copy_from_slice(&48u32.to_ne_bytes());
            put_frame(block, 48, &data, 0, 1, 0);
        }
        ring.set_status(4096 + uapi::BLOCK_STATUS, uapi::TP_STATUS_USER);
        ring.set_status(uapi::BLOCK_STATUS, uapi::TP_STATUS_USER);
        burst_v3(&mut ring, &mut w, &pool, &mut out, &mut t);
        assert_eq!((out.len(), t.errors), (3, 3));
        assert!(out.drain().all(|b| b.data() == &data[..]));
        assert_eq!((w.block, w.in_block), (0, false));
        assert_eq!(status_at(&ring, uapi::BLOCK_STATUS), uapi::TP_STATUS_KERNEL);
        assert_eq!(
            status_at(&ring, 4096 + uapi::BLOCK_STATUS),
            uapi::TP_STATUS_KERNEL
        );
    }

    #[test]
    fn csum_not_ready_status_is_reported() {
        let mut block = vec![0u8; 4096];
        let data: Vec<u8> = (0..60).collect();
        put_frame(
            &mut block,
            48,
            &data,
            0,
            1 | uapi::TP_STATUS_CSUMNOTREADY,
            0,
        );
        let (f, _) = parse_v3(&block, 48);
        assert!(
            matches!(
                f,
                RxFrame::Frame {
                    csum_not_ready: true,
                    ..
                }
            ),
            "{f:?}"
        );
        put_frame(&mut block, 48, &data, 0, 1, 0);
        assert!(matches!(
            parse_v3(&block, 48).0,
            RxFrame::Frame {
                csum_not_ready: false,
                ..
            }
        ));
    }

    /// A V3 frame header at `off` in `block` describing `data`.
    fn put_frame(block: &mut [u8], off: usize, data: &[u8], next: u32, status: u32, pkttype: u8) {
        let mac = 80usize;
        block[off..off + 4].copy_from_slice(&next.to_ne_bytes());
        block[off + 12..off + 16].copy_from_slice(&(data.len() as u32).to_ne_bytes());
        block[off + 16..off + 20].copy_from_slice(&(data.len() as u32).to_ne_bytes());
        block[off + 20..off + 24].copy_from_slice(&status.to_ne_bytes());
        block[off + 24..off + 26].copy_from_slice(&(mac as u16).to_ne_bytes());
        block[off + 32..off + 36].copy_from_slice(&0x0123u32.to_ne_bytes());
        block[off + 36..off + 38].copy_from_slice(&0x88a8u16.to_ne_bytes());
        block[off + uapi::V3_SLL + uapi::SLL_PKTTYPE] = pkttype;
        block[off + mac..off + mac + data.len()].copy_from_slice(data);
    }

    #[test]
    fn v3_frames_parse_and_bad_headers_never_panic() {
        let mut block = vec![0u8; 4096];
        let data: Vec<u8> = (0..60).collect();
        put_frame(&mut block, 48, &data, 160, 1, 0);
        let (f, next) = parse_v3(&block, 48);
        assert_eq!(next, 160);
        let RxFrame::Frame {
            start, len, vlan, ..
        } = f
        else {
            panic!("{f:?}")
        };
        assert_eq!(&block[start..start + len], &data[..]);
        assert_eq!(vlan, None);

        put_frame(
            &mut block,
            208,
            &data,
            0,
            1 | uapi::TP_STATUS_VLAN_VALID | uapi::TP_STATUS_VLAN_TPID_VALID,
            0,
        );
        let (f, _) = parse_v3(&block, 208);
        let RxFrame::Frame {
            start, len, vlan, ..
        } = f
        else {
            panic!("{f:?}")
        };
        assert_eq!(vlan, Some([0x88, 0xa8, 0x01, 0x23]));
        let mut dst = [0u8; 128];
        let n = copy_frame(&mut dst, &block[start..start + len], vlan).unwrap();
        assert_eq!(n, 64);
        assert_eq!(&dst[..12], &data[..12]);
        assert_eq!(&dst[12..16], &[0x88, 0xa8, 0x01, 0x23]);
        assert_eq!(&dst[16..64], &data[12..]);
        assert_eq!(copy_frame(&mut dst[..63], &data, vlan), None);
        assert_eq!(copy_frame(&mut dst[..59], &data, None), None);

        put_frame(&mut block, 400, &data, 0, 1, uapi::PACKET_OUTGOING);
        assert_eq!(parse_v3(&block, 400).0, RxFrame::Outgoing);
        // snaplen < len
        put_frame(&mut block, 600, &data, 0, 1, 0);
        block[600 + 16..600 + 20].copy_from_slice(&1000u32.to_ne_bytes());
        assert_eq!(parse_v3(&block, 600).0, RxFrame::Truncated);
        // Data past the block end, header past the end, absurd offsets.
        put_frame(&mut block, 800, &data, 0, 1, 0);
        block[800 + 12..800 + 16].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert_eq!(parse_v3(&block, 800).0, RxFrame::Corrupt);
        assert_eq!(parse_v3(&block, 4090).0, RxFrame::Corrupt);
        assert_eq!(parse_v3(&block, usize::MAX - 3).0, RxFrame::Corrupt);
        block[1000 + 24..1000 + 26].copy_from_slice(&0xffffu16.to_ne_bytes());
        assert_eq!(parse_v3(&block, 1000).0, RxFrame::Corrupt);
    }
}
