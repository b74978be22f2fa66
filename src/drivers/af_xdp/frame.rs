//! UMEM frames as the pipeline's packet buffers: [`Frames`] (one socket's UMEM and the
//! list of its frames that no one uses) and [`XskBuf`] (one frame owned by user space).
//!
//! A frame is always in exactly one place: the kernel's hands (fill ring, RX in flight,
//! TX ring, completion ring), the free list, or one `XskBuf`. The RX queue turns RX
//! descriptors into `XskBuf`s with no copy; the data sits at the offset the kernel chose
//! (`XDP_PACKET_HEADROOM`, 256 bytes), which is the headroom the GUE headers are prepended
//! into. The TX queue of the same socket hands the frame back to the kernel by address
//! (no copy); a buffer of another socket's UMEM is copied into a frame of this one. A
//! dropped `XskBuf` puts its frame on the free list, from any thread.
#![allow(unsafe_code)]

use std::ptr::NonNull;
use std::sync::Arc;

use crossbeam::queue::ArrayQueue;

use crate::datapath::PacketBuf;

use super::xsk::Umem;
use super::{FRAMES, FRAME_SIZE};

/// Where the frame of a buffer made in user space starts (as the kernel's
/// `XDP_PACKET_HEADROOM` for received ones).
pub const TX_HEADROOM: usize = 256;

const MASK: u64 = !(FRAME_SIZE as u64 - 1);

/// One socket's UMEM and its free frames (start addresses).
#[derive(Debug)]
pub struct Frames {
    umem: Umem,
    free: ArrayQueue<u64>,
}

impl Frames {
    /// Every frame of `umem` starts free.
    pub fn new(umem: Umem) -> Frames {
        let free = ArrayQueue::new(FRAMES as usize);
        for i in 0..u64::from(FRAMES) {
            // Cannot fail: the queue holds FRAMES entries.
            let _ = free.push(i * u64::from(FRAME_SIZE));
        }
        Frames { umem, free }
    }

    /// A free frame for the kernel (the fill ring, a TX copy), or `None`.
    #[inline]
    pub fn pop(&self) -> Option<u64> {
        self.free.pop()
    }

    /// A frame back from the kernel (the completion ring) or from a buffer: `addr` may
    /// point anywhere inside it. Addresses outside the UMEM are ignored (returns false).
    #[inline]
    pub fn push(&self, addr: u64) -> bool {
        let f = addr & MASK;
        if f >= self.umem.len() as u64 {
            return false;
        }
        // Cannot fail: the queue holds every frame of the UMEM, each at most once.
        self.free.push(f).is_ok()
    }

    /// Frames on the free list now.
    pub fn available(&self) -> usize {
        self.free.len()
    }

    /// The buffer for RX descriptor (`addr`, `len`): the frame is the caller's, taken off
    /// the RX ring. `None` (the frame goes back to the free list) when the descriptor does
    /// not lie inside one frame of the UMEM.
    #[inline]
    pub fn received(self: &Arc<Self>, addr: u64, len: u32) -> Option<XskBuf> {
        let frame = addr & MASK;
        let start = (addr - frame) as u32;
        if start + len > FRAME_SIZE || frame + u64::from(FRAME_SIZE) > self.umem.len() as u64 {
            self.push(addr);
            return None;
        }
        Some(XskBuf {
            ptr: self.frame_ptr(frame),
            frames: Some(self.clone()),
            addr: frame,
            start,
            len,
        })
    }

    /// A free frame holding a copy of `data` after [`TX_HEADROOM`]; `None` when no frame
    /// is free or `data` does not fit.
    pub fn alloc_with(self: &Arc<Self>, data: &[u8]) -> Option<XskBuf> {
        if data.len() > FRAME_SIZE as usize - TX_HEADROOM {
            return None;
        }
        let frame = self.pop()?;
        let mut b = XskBuf {
            ptr: self.frame_ptr(frame),
            frames: Some(self.clone()),
            addr: frame,
            start: TX_HEADROOM as u32,
            len: data.len() as u32,
        };
        b.data_mut().copy_from_slice(data);
        Some(b)
    }

    /// Copy `data` into free frame `frame` at [`TX_HEADROOM`]: the TX descriptor
    /// (address, length) for it. The caller owns `frame` (from [`Frames::pop`]) and has
    /// checked that `data` fits.
    #[inline]
    pub fn copy_into(&self, frame: u64, data: &[u8]) -> (u64, u32) {
        debug_assert!(data.len() <= FRAME_SIZE as usize - TX_HEADROOM);
        let n = data.len().min(FRAME_SIZE as usize - TX_HEADROOM);
        let p = self.frame_ptr(frame & MASK);
        // SAFETY: the frame lies inside the UMEM (its address came from this UMEM's free
        // list) and is owned by the caller, so no other reference to these bytes exists;
        // TX_HEADROOM + n <= FRAME_SIZE.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), p.as_ptr().add(TX_HEADROOM), n);
        }
        ((frame & MASK) + TX_HEADROOM as u64, n as u32)
    }

    #[inline(always)]
    fn frame_ptr(&self, frame: u64) -> NonNull<u8> {
        debug_assert!(frame + u64::from(FRAME_SIZE) <= self.umem.len() as u64);
        // SAFETY: every caller passes the start of a frame inside the UMEM mapping.
        unsafe { NonNull::new_unchecked(self.umem.base().as_ptr().add(frame as usize)) }
    }
}

/// One UMEM frame owned by user space, as a packet buffer. Dropping it frees the frame.
pub struct XskBuf {
    /// The frame's first byte.
    ptr: NonNull<u8>,
    /// `None` once the frame went to the kernel ([`XskBuf::into_desc`]).
    frames: Option<Arc<Frames>>,
    /// The frame's address in the UMEM.
    addr: u64,
    /// The packet: `start..start + len` of the frame (`start + len <= FRAME_SIZE`).
    start: u32,
    len: u32,
}

// SAFETY: an XskBuf is the only user-space owner of its frame (frames come from the RX
// ring or the free list, each handed out once), and the frame's memory stays mapped while
// the buffer holds the Arc of its UMEM; the frame may be used and freed from any thread.
unsafe impl Send for XskBuf {}

impl XskBuf {
    /// Hand the frame to `frames`' kernel side: the TX descriptor (address, length) when
    /// this buffer is a frame of `frames`' UMEM (no copy), the buffer back otherwise.
    #[inline]
    pub fn into_desc(mut self, frames: &Arc<Frames>) -> Result<(u64, u32), XskBuf> {
        match &self.frames {
            Some(f) if Arc::ptr_eq(f, frames) => {
                // Taken: Drop no longer frees the frame, the kernel has it.
                self.frames = None;
                Ok((self.addr + u64::from(self.start), self.len))
            }
            _ => Err(self),
        }
    }
}

impl Drop for XskBuf {
    #[inline]
    fn drop(&mut self) {
        if let Some(f) = self.frames.take() {
            f.push(self.addr);
        }
    }
}

impl PacketBuf for XskBuf {
    #[inline(always)]
    fn data(&self) -> &[u8] {
        // SAFETY: start + len <= FRAME_SIZE (kept by every method), the frame is mapped
        // and owned by this buffer alone; the slice borrows self.
        unsafe {
            std::slice::from_raw_parts(
                self.ptr.as_ptr().add(self.start as usize),
                self.len as usize,
            )
        }
    }
    #[inline(always)]
    fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in data(); the mutable borrow of self makes the access exclusive.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.ptr.as_ptr().add(self.start as usize),
                self.len as usize,
            )
        }
    }
    #[inline(always)]
    fn len(&self) -> usize {
        self.len as usize
    }
    #[inline(always)]
    fn headroom(&self) -> usize {
        self.start as usize
    }
    #[inline(always)]
    fn prepend(&mut self, n: usize) -> bool {
        if n > self.start as usize {
            return false;
        }
        self.start -= n as u32;
        self.len += n as u32;
        true
    }
    #[inline(always)]
    fn adj(&mut self, n: usize) -> bool {
        if n > self.len as usize {
            return false;
        }
        self.start += n as u32;
        self.len -= n as u32;
        true
    }
    #[inline(always)]
    fn trim(&mut self, n: usize) -> bool {
        if n > self.len as usize {
            return false;
        }
        self.len -= n as u32;
        true
    }
    #[inline(always)]
    fn reframe(&mut self, at: usize, len: usize, outer: usize) -> Option<&mut [u8]> {
        if at.checked_add(len)? > self.len as usize {
            return None;
        }
        let start = (self.start as usize + at).checked_sub(outer)?;
        let new_len = outer + len;
        // start + new_len = self.start + at + len <= self.start + self.len <= FRAME_SIZE.
        self.start = start as u32;
        self.len = new_len as u32;
        Some(self.data_mut())
    }
    #[inline(always)]
    fn prefetch_headroom(&self, n: usize) {
        let at = (self.start as usize).saturating_sub(n);
        // Inside this buffer's frame (at <= start); a prefetch never faults anyway.
        crate::sys::prefetch_ptr(self.ptr.as_ptr().wrapping_add(at));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames() -> Arc<Frames> {
        Arc::new(Frames::new(
            Umem::anonymous().expect("an anonymous UMEM mapping"),
        ))
    }

    #[test]
    fn a_received_frame_is_a_buffer_with_the_kernels_headroom_and_goes_back_on_drop() {
        let f = frames();
        let all = f.available();
        assert_eq!(all, FRAMES as usize);
        let a = f.pop().unwrap();
        let b = f.received(a + 256, 60).unwrap();
        assert_eq!((b.headroom(), b.len()), (256, 60));
        assert_eq!(f.available(), all - 1);
        std::thread::spawn(move || drop(b)).join().unwrap();
        assert_eq!(f.available(), all);
    }

    #[test]
    fn descriptors_outside_one_frame_are_refused_and_the_frame_kept() {
        let f = frames();
        let a = f.pop().unwrap();
        assert!(f.received(a + 4000, 200).is_none(), "crosses the frame end");
        assert_eq!(f.available(), FRAMES as usize, "the frame went back");
        let a = f.pop().unwrap();
        let _ = a;
        let past = u64::from(FRAMES) * u64::from(FRAME_SIZE);
        assert!(f.received(past, 60).is_none(), "past the UMEM");
        assert!(!f.push(past), "not a frame of this UMEM");
    }

    #[test]
    fn prepend_adj_trim_and_reframe_stay_inside_the_frame() {
        let f = frames();
        let mut b = f.alloc_with(&[7u8; 100]).unwrap();
        assert_eq!(b.headroom(), TX_HEADROOM);
        assert!(b.prepend(56));
        assert_eq!((b.headroom(), b.len()), (200, 156));
        assert!(!b.prepend(201));
        assert!(b.adj(56) && b.trim(10));
        assert_eq!(b.data(), &[7u8; 90][..]);
        // Ethernet (14) off, 80 bytes of IP packet kept, 60 bytes of outer headers on.
        let out = b.reframe(14, 70, 60).unwrap();
        assert_eq!(out.len(), 130);
        assert_eq!(&out[60..], &[7u8; 70][..]);
        assert!(b.reframe(0, 131, 0).is_none(), "longer than the frame");
        assert!(
            b.reframe(0, 10, 10_000).is_none(),
            "more headroom than there is"
        );
        assert!(
            f.alloc_with(&[0u8; 4000]).is_none(),
            "does not fit after the headroom"
        );
    }

    #[test]
    fn into_desc_hands_over_only_frames_of_the_same_umem() {
        let (f, g) = (frames(), frames());
        let b = f.alloc_with(&[1, 2, 3]).unwrap();
        let b = b.into_desc(&g).expect_err("another UMEM: refused");
        let Ok((addr, len)) = b.into_desc(&f) else {
            panic!("its own UMEM: handed over")
        };
        assert_eq!((addr % u64::from(FRAME_SIZE), len), (TX_HEADROOM as u64, 3));
        assert_eq!(f.available(), FRAMES as usize - 1, "the kernel has it now");
        assert!(f.push(addr));
        assert_eq!(f.available(), FRAMES as usize);
        let fr = g.pop().unwrap();
        let (a, l) = g.copy_into(fr, &[9; 10]);
        assert_eq!((a, l), (fr + TX_HEADROOM as u64, 10));
    }
}
