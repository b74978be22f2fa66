//! The mmap'd packet ring shared with the kernel, and the ring geometry the kernel accepts
//! (checked up front so a bad option is explained rather than refused by a syscall).
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use super::{
    uapi, AfPacketOptions, RxRing, L2_OVERHEAD, RX_BLOCK_TIMEOUT_MS, TX_RING_FRAMES, VLAN_HLEN,
};

pub(super) fn page_size() -> usize {
    // SAFETY: sysconf only reads a configuration value; no pointers are involved.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

/// A shared mapping of a socket's packet ring; unmapped on drop.
pub(super) struct Ring {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: `Ring` owns its mapping exclusively (it is created once per socket and never
// cloned); the memory is plain bytes shared only with the kernel, so moving the owner to
// another thread is sound. `Ring` is not `Sync` and hands out references only through
// `&self`/`&mut self` methods of the single queue that owns it.
unsafe impl Send for Ring {}

impl Ring {
    pub(super) fn map(fd: &OwnedFd, len: usize) -> io::Result<Ring> {
        // SAFETY: asks for a new shared mapping of the socket's ring at an address the kernel
        // picks; no existing memory is touched. The result is checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr =
            NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned NULL"))?;
        Ok(Ring { ptr, len })
    }

    /// A private anonymous mapping of `len` bytes standing in for a kernel ring (unit
    /// tests of the frame walks).
    #[cfg(test)]
    pub(super) fn anonymous(len: usize) -> Ring {
        // SAFETY: a new private anonymous mapping at an address the kernel picks; no
        // existing memory is touched. The result is checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED, "{}", io::Error::last_os_error());
        Ring {
            ptr: NonNull::new(p.cast::<u8>()).expect("mmap returned NULL"),
            len,
        }
    }

    /// The ring's status word at `off`, shared with the kernel; `None` if out of bounds or
    /// misaligned.
    #[inline]
    pub(super) fn status(&self, off: usize) -> Option<&AtomicU32> {
        if !off.is_multiple_of(4) || off.checked_add(4)? > self.len {
            return None;
        }
        // SAFETY: `off..off + 4` is inside the live mapping (checked above) and 4-byte
        // aligned (the mapping is page aligned and `off % 4 == 0`); the word is shared with
        // the kernel, which accesses it with its own atomic/barrier protocol, so it is only
        // ever accessed through this atomic on our side. The reference cannot outlive `self`,
        // which keeps the mapping alive.
        Some(unsafe { AtomicU32::from_ptr(self.ptr.as_ptr().add(off).cast::<u32>()) })
    }

    /// Hand the area whose status word is at `off` over (to the kernel, for RX) with a
    /// Release store of `value`: everything this side read or wrote of the area before
    /// comes first. `&mut self`: no slice of the ring ([`Ring::bytes`]) is alive any more.
    /// Out of bounds or misaligned: nothing happens.
    #[inline]
    pub(super) fn set_status(&mut self, off: usize, value: u32) {
        if let Some(s) = self.status(off) {
            s.store(value, Ordering::Release);
        }
    }

    /// Bytes `off..off + len` of a ring area this side owns (an RX block handed to user
    /// space, a free TX slot); `None` if out of bounds.
    #[inline]
    pub(super) fn bytes(&self, off: usize, len: usize) -> Option<&[u8]> {
        if off.checked_add(len)? > self.len {
            return None;
        }
        // SAFETY: the range is inside the live mapping (checked above). Callers only ask for
        // areas whose status word says user space owns them (read with Acquire), and the
        // kernel does not write those until the status is handed back with a Release store,
        // (`Ring::set_status`, which takes `&mut self`), which the borrow rules therefore
        // place after the last use of this slice.
        Some(unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(off), len) })
    }

    /// Mutable view of bytes `off..off + len` of a ring area this side owns; `None` if out
    /// of bounds.
    #[inline]
    pub(super) fn bytes_mut(&mut self, off: usize, len: usize) -> Option<&mut [u8]> {
        if off.checked_add(len)? > self.len {
            return None;
        }
        // SAFETY: in bounds (checked above), and only used for the part of a TX slot after
        // its status word while that status is TP_STATUS_AVAILABLE: the kernel neither
        // reads nor writes those bytes until we store TP_STATUS_SEND_REQUEST (Release) after
        // the last use of this slice. `&mut self` guarantees no other slice of the ring is
        // alive.
        Some(unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(off), len) })
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe exactly the mapping made in `Ring::map`, unmapped only
        // here, once; every reference into it borrows `self` and so is gone by now.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// The checks both RX ring kinds share: block size and count, the frame size's alignment,
/// the kernel's 4 GiB limit.
fn check_rx_blocks(opts: &AfPacketOptions, page: usize) -> Result<(), String> {
    let AfPacketOptions {
        block_size,
        block_count,
        frame_size,
        ..
    } = *opts;
    if block_size == 0 || block_size % page != 0 {
        return Err(format!(
            "block_size {block_size} must be a non-zero multiple of the page size ({page})"
        ));
    }
    if block_count == 0 {
        return Err("block_count must be at least 1".into());
    }
    if frame_size < uapi::TPACKET3_HDRLEN || frame_size % 16 != 0 || frame_size > block_size {
        return Err(format!(
            "frame_size {frame_size} must be a multiple of 16 between {} and block_size ({block_size})",
            uapi::TPACKET3_HDRLEN.div_ceil(16) * 16
        ));
    }
    let total = block_size
        .checked_mul(block_count)
        .filter(|&t| t <= u32::MAX as usize);
    if total.is_none() {
        return Err(format!(
            "ring of {block_count} blocks of {block_size} bytes exceeds the kernel's 4 GiB limit"
        ));
    }
    Ok(())
}

/// The kernel's RX ring request for either ring kind.
#[derive(Debug, Clone, Copy)]
pub(super) enum RxReq {
    V2(uapi::TpacketReq),
    V3(uapi::TpacketReq3),
}

impl RxReq {
    pub(super) fn block_size(&self) -> usize {
        match self {
            RxReq::V2(r) => r.block_size as usize,
            RxReq::V3(r) => r.block_size as usize,
        }
    }
    pub(super) fn block_count(&self) -> usize {
        match self {
            RxReq::V2(r) => r.block_nr as usize,
            RxReq::V3(r) => r.block_nr as usize,
        }
    }
}

/// The RX ring of `opts.rx_ring`, checked against the kernel's rules.
pub(super) fn rx_ring_req(
    opts: &AfPacketOptions,
    mtu: usize,
    page: usize,
) -> Result<RxReq, String> {
    match opts.rx_ring {
        RxRing::V2 => rx_ring_req_v2(opts, mtu, page).map(RxReq::V2),
        RxRing::V3 => rx_ring_req_v3(opts, mtu, page).map(RxReq::V3),
    }
}

/// V2 RX slot size: at least `frame_size`, enough for an MTU-sized frame with a VLAN tag
/// left in the data after the kernel's header ([`uapi::V2_RX_NETOFF`]).
pub(super) fn rx_frame_size_v2(frame_size: usize, mtu: usize) -> usize {
    let need = (uapi::V2_RX_NETOFF + mtu + VLAN_HLEN).div_ceil(16) * 16;
    frame_size.max(need)
}

/// `TPACKET_V2` RX ring geometry: `block_count` blocks of `block_size`, each holding
/// `block_size / slot` slots, the slot raised to fit the MTU ([`rx_frame_size_v2`]).
pub(super) fn rx_ring_req_v2(
    opts: &AfPacketOptions,
    mtu: usize,
    page: usize,
) -> Result<uapi::TpacketReq, String> {
    check_rx_blocks(opts, page)?;
    let frame_size = rx_frame_size_v2(opts.frame_size, mtu);
    if frame_size > opts.block_size {
        return Err(format!(
            "block_size {} cannot hold one frame slot for the interface MTU {mtu} (needs {frame_size})",
            opts.block_size
        ));
    }
    let per_block = opts.block_size / frame_size;
    Ok(uapi::TpacketReq {
        block_size: opts.block_size as u32,
        block_nr: opts.block_count as u32,
        frame_size: frame_size as u32,
        frame_nr: (per_block * opts.block_count) as u32,
    })
}

/// `TPACKET_V3` RX ring geometry checked against the kernel's rules.
pub(super) fn rx_ring_req_v3(
    opts: &AfPacketOptions,
    mtu: usize,
    page: usize,
) -> Result<uapi::TpacketReq3, String> {
    check_rx_blocks(opts, page)?;
    let AfPacketOptions {
        block_size,
        block_count,
        frame_size,
        ..
    } = *opts;
    let need = uapi::BLOCK_DESC_LEN + uapi::TPACKET3_HDRLEN + 16 + mtu + L2_OVERHEAD;
    if block_size < need {
        return Err(format!(
            "block_size {block_size} cannot hold one frame of the interface MTU {mtu} (needs {need})"
        ));
    }
    let per_block = block_size / frame_size;
    Ok(uapi::TpacketReq3 {
        block_size: block_size as u32,
        block_nr: block_count as u32,
        frame_size: frame_size as u32,
        frame_nr: (per_block * block_count) as u32,
        retire_blk_tov: RX_BLOCK_TIMEOUT_MS,
        sizeof_priv: 0,
        feature_req_word: 0,
    })
}

/// Where slot `i` of a V2 ring starts: slots never straddle blocks, so a block may end
/// with unused bytes.
#[inline]
pub(super) fn slot_offset(
    i: usize,
    per_block: usize,
    block_size: usize,
    frame_size: usize,
) -> usize {
    (i / per_block) * block_size + (i % per_block) * frame_size
}

/// TX slot size: at least `frame_size`, enough for an MTU-sized frame with a VLAN tag.
pub(super) fn tx_frame_size(frame_size: usize, mtu: usize) -> usize {
    let need = (uapi::V2_DATA + mtu + L2_OVERHEAD).div_ceil(16) * 16;
    frame_size
        .max(need)
        .max(uapi::TPACKET2_HDRLEN.div_ceil(16) * 16)
}

/// TX ring geometry: blocks of a power of two holding at least four slots (at least a
/// page), enough blocks for [`TX_RING_FRAMES`].
pub(super) fn tx_ring_req(frame_size: usize, page: usize) -> uapi::TpacketReq {
    let block_size = (frame_size * 4).max(page).next_power_of_two();
    let per_block = block_size / frame_size;
    let block_nr = TX_RING_FRAMES.div_ceil(per_block);
    uapi::TpacketReq {
        block_size: block_size as u32,
        block_nr: block_nr as u32,
        frame_size: frame_size as u32,
        frame_nr: (per_block * block_nr) as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_defaults_are_valid() {
        let o = AfPacketOptions::default();
        assert_eq!(
            (o.block_size, o.block_count, o.frame_size),
            (1 << 20, 64, 2048)
        );
        assert!(o.promiscuous);
        assert_eq!(o.fanout_group, None);
        assert_eq!(o.rx_ring, RxRing::V2);
        let req = rx_ring_req_v3(&o, 1500, 4096).unwrap();
        assert_eq!(req.frame_nr, 512 * 64);
        assert_eq!(req.retire_blk_tov, RX_BLOCK_TIMEOUT_MS);
        // Jumbo MTU fits the default blocks too.
        assert!(rx_ring_req_v3(&o, 9000, 4096).is_ok());
        let RxReq::V2(req) = rx_ring_req(&o, 1500, 4096).unwrap() else {
            panic!("the default is V2")
        };
        assert_eq!((req.block_size, req.block_nr), (1 << 20, 64));
        assert_eq!((req.frame_size, req.frame_nr), (2048, 512 * 64));
    }

    #[test]
    fn bad_ring_geometry_is_explained() {
        let bad = |block_size, block_count, frame_size, mtu| {
            let o = AfPacketOptions {
                block_size,
                block_count,
                frame_size,
                ..AfPacketOptions::default()
            };
            rx_ring_req_v3(&o, mtu, 4096).unwrap_err()
        };
        assert!(bad(1000, 64, 2048, 1500).contains("page size"));
        assert!(bad(0, 64, 2048, 1500).contains("page size"));
        assert!(bad(1 << 20, 0, 2048, 1500).contains("block_count"));
        assert!(bad(1 << 20, 64, 100, 1500).contains("multiple of 16"));
        assert!(bad(1 << 20, 64, 32, 1500).contains("frame_size"));
        assert!(bad(4096, 64, 2048, 9000).contains("MTU 9000"));
        assert!(bad(1 << 20, 1 << 20, 2048, 1500).contains("4 GiB"));
    }

    #[test]
    fn v2_rx_ring_geometry() {
        let o = |block_size, block_count, frame_size| AfPacketOptions {
            rx_ring: RxRing::V2,
            block_size,
            block_count,
            frame_size,
            ..AfPacketOptions::default()
        };
        // An MTU-sized frame plus an in-data VLAN tag fits behind the kernel's header.
        assert_eq!(uapi::V2_RX_NETOFF, 80);
        assert_eq!(rx_frame_size_v2(2048, 1500), 2048);
        assert_eq!(rx_frame_size_v2(1024, 1500), 1584);
        let jumbo = rx_frame_size_v2(2048, 9000);
        assert!(jumbo >= 80 + 9004 && jumbo.is_multiple_of(16), "{jumbo}");
        // Slots never straddle blocks; the kernel wants frame_nr = per block * blocks.
        let r = rx_ring_req_v2(&o(1 << 16, 4, 2048), 1500, 4096).unwrap();
        assert_eq!(
            (r.block_size, r.block_nr, r.frame_size, r.frame_nr),
            (1 << 16, 4, 2048, 128)
        );
        let r = rx_ring_req_v2(&o(1 << 16, 4, 2048), 9000, 4096).unwrap();
        let per_block = (1 << 16) / r.frame_size;
        assert_eq!(r.frame_nr, per_block * 4);
        assert_eq!(r.frame_size as usize, jumbo);
        let (pb, bs, fs) = (per_block as usize, 1 << 16, r.frame_size as usize);
        assert_eq!(slot_offset(0, pb, bs, fs), 0);
        assert_eq!(slot_offset(pb - 1, pb, bs, fs), (pb - 1) * fs);
        assert_eq!(slot_offset(pb, pb, bs, fs), bs);
        assert!(slot_offset(pb - 1, pb, bs, fs) + fs <= bs);
        let last = r.frame_nr as usize - 1;
        assert!(slot_offset(last, pb, bs, fs) + fs <= bs * 4);
        // A block smaller than one jumbo slot, and the shared checks.
        let e = rx_ring_req_v2(&o(8192, 4, 2048), 9000, 4096).unwrap_err();
        assert!(e.contains("MTU 9000"), "{e}");
        assert!(rx_ring_req_v2(&o(5000, 4, 2048), 1500, 4096)
            .unwrap_err()
            .contains("page size"));
        assert!(rx_ring_req_v2(&o(1 << 16, 0, 2048), 1500, 4096)
            .unwrap_err()
            .contains("block_count"));
        assert!(rx_ring_req_v2(&o(1 << 16, 4, 2056 - 4), 1500, 4096)
            .unwrap_err()
            .contains("multiple of 16"));
        assert!(rx_ring_req_v2(&o(1 << 20, 1 << 20, 2048), 1500, 4096)
            .unwrap_err()
            .contains("4 GiB"));
        let RxReq::V3(_) = rx_ring_req(
            &AfPacketOptions {
                rx_ring: RxRing::V3,
                ..AfPacketOptions::default()
            },
            1500,
            4096,
        )
        .unwrap() else {
            panic!("rx=v3 asks for a V3 ring")
        };
    }

    #[test]
    fn tx_ring_fits_the_mtu() {
        assert_eq!(tx_frame_size(2048, 1500), 2048);
        let f = tx_frame_size(2048, 9000);
        assert!(f >= uapi::V2_DATA + 9018 && f.is_multiple_of(16));
        let req = tx_ring_req(2048, 4096);
        assert_eq!(req.block_size, 8192);
        assert_eq!(req.frame_nr as usize, TX_RING_FRAMES);
        assert_eq!(
            req.frame_nr,
            req.block_nr * (req.block_size / req.frame_size)
        );
        let req = tx_ring_req(f, 4096);
        assert!(req.frame_nr as usize >= TX_RING_FRAMES);
        assert_eq!(req.block_size % 4096, 0);
    }
}
