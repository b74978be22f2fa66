//! The RX queue: walking the `TPACKET_V3` blocks the kernel hands over, frame by frame,
//! into pool buffers (VLAN tags put back, checksums left to the NIC completed).

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::ring::Ring;
use super::{uapi, ETH_HLEN, RX_SCAN_MAX};
use crate::datapath::PacketBuf;
use crate::drivers::{BufPool, Burst, PoolBuf, PortCounters as Counters, RxQueue};
use crate::sys::socket::getsockopt;
use crate::wire::offload::complete_l4_checksum;

/// The kernel's drop count of an RX ring socket since the last call (the kernel resets
/// the counters when they are read).
pub(super) fn kernel_drops(fd: &OwnedFd) -> u64 {
    getsockopt::<uapi::TpacketStatsV3>(fd, libc::SOL_PACKET, uapi::PACKET_STATISTICS)
        .map(|s| u64::from(s.drops))
        .unwrap_or(0)
}

fn read_u32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn read_u16(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

/// What one `tpacket3_hdr` in an RX block describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RxFrame {
    /// A frame to deliver: `block[start..start + len]`, plus the VLAN tag the kernel took
    /// out of the data (offloaded), to be put back.
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
    /// Cut short by the ring (snaplen < len).
    Truncated,
    /// The header points outside the block: give up on the rest of the block.
    Corrupt,
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
    let next = field(uapi::V3_NEXT_OFFSET);
    let snaplen = field(uapi::V3_SNAPLEN) as usize;
    let len = field(uapi::V3_LEN) as usize;
    let status = field(uapi::V3_STATUS);
    let mac = read_u16(h, uapi::V3_MAC).unwrap_or(0) as usize;
    let pkttype = h[uapi::V3_SLL + uapi::SLL_PKTTYPE];
    let start = off + mac;
    if mac < uapi::TPACKET3_HDRLEN || start.checked_add(snaplen).is_none_or(|e| e > block.len()) {
        return (RxFrame::Corrupt, next);
    }
    if pkttype == uapi::PACKET_OUTGOING {
        return (RxFrame::Outgoing, next);
    }
    if snaplen < len || snaplen < ETH_HLEN {
        return (RxFrame::Truncated, next);
    }
    let vlan = (status & uapi::TP_STATUS_VLAN_VALID != 0).then(|| {
        let tpid = if status & uapi::TP_STATUS_VLAN_TPID_VALID != 0 {
            read_u16(h, uapi::V3_VLAN_TPID).unwrap_or(0x8100)
        } else {
            0x8100
        };
        let tci = field(uapi::V3_VLAN_TCI) as u16;
        let [a, b] = tpid.to_be_bytes();
        let [c, d] = tci.to_be_bytes();
        [a, b, c, d]
    });
    (
        RxFrame::Frame {
            start,
            len: snaplen,
            vlan,
            csum_not_ready: status & uapi::TP_STATUS_CSUMNOTREADY != 0,
        },
        next,
    )
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

/// RX queue of an [`AfPacketPort`](super::AfPacketPort): one socket with a `TPACKET_V3` ring.
pub struct AfPacketRx {
    // Declared before `fd`: unmapped before the socket closes.
    pub(super) ring: Ring,
    pub(super) fd: Arc<OwnedFd>,
    pub(super) block_size: usize,
    pub(super) block_count: usize,
    /// Block being read, or the next one to wait for.
    pub(super) block: usize,
    /// `block` is ours (handed over by the kernel, not yet given back).
    pub(super) in_block: bool,
    /// Frames of `block` not read yet, and the offset of the next.
    pub(super) pkts_left: u32,
    pub(super) offset: usize,
    pub(super) pool: BufPool,
    pub(super) counters: Arc<Counters>,
}

impl AfPacketRx {
    /// Hand the current block back to the kernel and move to the next.
    #[inline]
    fn release_block(&mut self) {
        if let Some(s) = self
            .ring
            .status(self.block * self.block_size + uapi::BLOCK_STATUS)
        {
            s.store(uapi::TP_STATUS_KERNEL, Ordering::Release);
        }
        self.in_block = false;
        self.pkts_left = 0;
        self.block = (self.block + 1) % self.block_count;
    }
}

impl std::fmt::Debug for AfPacketRx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfPacketRx")
            .field("fd", &self.fd.as_raw_fd())
            .field("block_size", &self.block_size)
            .field("block_count", &self.block_count)
            .field("block", &self.block)
            .finish()
    }
}

impl AsRawFd for AfPacketRx {
    /// The socket, readable (poll) when a block is ready.
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl RxQueue for AfPacketRx {
    type Buf = PoolBuf;

    fn rx_burst(&mut self, out: &mut Burst<PoolBuf>) -> usize {
        let (mut n, mut bytes, mut dropped, mut errors) = (0usize, 0u64, 0u64, 0u64);
        let mut scanned = 0;
        while out.room() > 0 && scanned < RX_SCAN_MAX {
            let base = self.block * self.block_size;
            if !self.in_block {
                let Some(status) = self.ring.status(base + uapi::BLOCK_STATUS) else {
                    break;
                };
                if status.load(Ordering::Acquire) & uapi::TP_STATUS_USER == 0 {
                    break;
                }
                let Some(block) = self.ring.bytes(base, self.block_size) else {
                    break;
                };
                self.pkts_left = read_u32(block, uapi::BLOCK_NUM_PKTS).unwrap_or(0);
                self.offset = read_u32(block, uapi::BLOCK_FIRST_PKT).unwrap_or(0) as usize;
                self.in_block = true;
                if self.pkts_left == 0 {
                    self.release_block();
                    continue;
                }
            }
            let Some(block) = self.ring.bytes(base, self.block_size) else {
                break;
            };
            let (frame, next) = parse_v3(block, self.offset);
            scanned += 1;
            match frame {
                RxFrame::Frame {
                    start,
                    len,
                    vlan,
                    csum_not_ready,
                } => match self.pool.get() {
                    Some(mut buf) => {
                        match copy_frame(buf.room_mut(), &block[start..start + len], vlan) {
                            Some(l) => {
                                buf.set_len(l);
                                if csum_not_ready {
                                    complete_l4_checksum(buf.data_mut());
                                }
                                bytes += l as u64;
                                n += 1;
                                let _ = out.push(buf);
                            }
                            // Larger than the buffers: counted, the buffer goes back.
                            None => dropped += 1,
                        }
                    }
                    // Pool empty: the frame is dropped (counted) and the ring moves on.
                    None => dropped += 1,
                },
                RxFrame::Outgoing => {}
                RxFrame::Truncated => errors += 1,
                RxFrame::Corrupt => {
                    errors += u64::from(self.pkts_left);
                    self.release_block();
                    continue;
                }
            }
            self.pkts_left -= 1;
            if self.pkts_left == 0 {
                self.release_block();
            } else if next == 0 {
                errors += u64::from(self.pkts_left);
                self.release_block();
            } else {
                self.offset += next as usize;
            }
        }
        let c = &self.counters;
        Counters::add(&c.rx_packets, n as u64);
        Counters::add(&c.rx_bytes, bytes);
        Counters::add(&c.rx_dropped, dropped);
        Counters::add(&c.rx_errors, errors);
        n
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
