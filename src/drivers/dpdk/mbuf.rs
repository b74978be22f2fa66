//! [`Mbuf`]: one owned `rte_mbuf`, freed on drop, handed to the NIC by [`Mbuf::into_raw`].
//! Field access is plain Rust (no FFI call per packet); only alloc and free cross into C.
#![allow(unsafe_code)]

use std::ptr::NonNull;

use dpdk_sys::rte_mbuf;

use crate::datapath::PacketBuf;

/// An owned packet buffer from a DPDK mempool. Single-segment frames are what the
/// pipeline sees; of a chained mbuf only the first segment is visible (RX scatter is never
/// enabled, so chains only come from a misbehaving driver and parse as truncated frames).
#[repr(transparent)]
pub struct Mbuf(NonNull<rte_mbuf>);

// SAFETY: an Mbuf is the only owner of its rte_mbuf (no aliasing handle exists), and DPDK
// mbufs may be used and freed from any thread.
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Take ownership of `m`.
    ///
    /// # Safety
    /// `m` must be a valid mbuf that nothing else owns or uses afterwards.
    #[inline]
    pub unsafe fn from_raw(m: NonNull<rte_mbuf>) -> Mbuf {
        Mbuf(m)
    }

    /// Give up ownership (to a TX queue): the mbuf is not freed by this value.
    #[inline]
    pub fn into_raw(self) -> NonNull<rte_mbuf> {
        let p = self.0;
        std::mem::forget(self);
        p
    }

    /// A new mbuf from `pool` holding a copy of `frame`; `None` when the pool is empty or
    /// the frame does not fit.
    pub fn alloc_with(pool: &super::mempool::Mempool, frame: &[u8]) -> Option<Mbuf> {
        let len = u16::try_from(frame.len()).ok()?;
        // SAFETY: the pool is a live pktmbuf pool (Mempool only holds created pools, which
        // are never freed).
        let m = NonNull::new(unsafe { dpdk_sys::rte_pktmbuf_alloc(pool.as_ptr()) })?;
        // SAFETY: freshly allocated, owned by nobody else.
        let mut mb = unsafe { Mbuf::from_raw(m) };
        // SAFETY: `m` is valid; append fails (null) when the tailroom is too small.
        let dst = unsafe { dpdk_sys::rte_pktmbuf_append(m.as_ptr(), len) };
        if dst.is_null() {
            return None; // dropped: freed by Mbuf's Drop
        }
        mb.data_mut().copy_from_slice(frame);
        Some(mb)
    }

    #[inline(always)]
    fn m(&self) -> &rte_mbuf {
        // SAFETY: we own a valid mbuf for as long as self lives.
        unsafe { self.0.as_ref() }
    }

    #[inline(always)]
    fn m_mut(&mut self) -> &mut rte_mbuf {
        // SAFETY: we own a valid mbuf exclusively for as long as self lives.
        unsafe { self.0.as_mut() }
    }
}

impl Drop for Mbuf {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: we own the mbuf and it is not used after this.
        unsafe { dpdk_sys::rte_pktmbuf_free(self.0.as_ptr()) }
    }
}

impl PacketBuf for Mbuf {
    #[inline(always)]
    fn data(&self) -> &[u8] {
        let m = self.m();
        // SAFETY: buf_addr + data_off .. + data_len lies inside the buffer DPDK attached to
        // this mbuf, which we own; the slice borrows self.
        unsafe {
            std::slice::from_raw_parts(
                (m.buf_addr as *const u8).add(m.data_off as usize),
                m.data_len as usize,
            )
        }
    }
    #[inline(always)]
    fn data_mut(&mut self) -> &mut [u8] {
        let m = self.m_mut();
        // SAFETY: as in data(); the mutable borrow of self makes the access exclusive.
        unsafe {
            std::slice::from_raw_parts_mut(
                (m.buf_addr as *mut u8).add(m.data_off as usize),
                m.data_len as usize,
            )
        }
    }
    #[inline(always)]
    fn len(&self) -> usize {
        usize::from(self.m().data_len)
    }
    #[inline(always)]
    fn headroom(&self) -> usize {
        self.m().data_off as usize
    }
    #[inline(always)]
    fn prepend(&mut self, n: usize) -> bool {
        let m = self.m_mut();
        if n > m.data_off as usize {
            return false;
        }
        let n16 = n as u16; // n <= data_off, a u16
        m.data_off -= n16;
        m.data_len += n16; // data_off + data_len <= buf_len, a u16: cannot overflow
        m.pkt_len += n as u32;
        true
    }
    #[inline(always)]
    fn adj(&mut self, n: usize) -> bool {
        let m = self.m_mut();
        if n > m.data_len as usize {
            return false;
        }
        let n16 = n as u16;
        m.data_off += n16;
        m.data_len -= n16;
        m.pkt_len -= n as u32;
        true
    }
    /// Segmented mbufs are refused (the pipeline drops them): the packet would carry the
    /// later segments after the IP packet. Rondo configures no scattered receive.
    #[inline(always)]
    fn reframe(&mut self, at: usize, len: usize, outer: usize) -> Option<&mut [u8]> {
        let m = self.m_mut();
        if m.nb_segs != 1 || at.checked_add(len)? > usize::from(m.data_len) {
            return None;
        }
        let start = (usize::from(m.data_off) + at).checked_sub(outer)?;
        let new_len = outer + len;
        // start + new_len = data_off + at + len <= data_off + data_len <= buf_len, a u16.
        m.data_off = start as u16;
        m.data_len = new_len as u16;
        m.pkt_len = new_len as u32;
        // SAFETY: buf_addr + start .. + new_len lies inside this mbuf's buffer (bound
        // above); the mutable borrow of self makes the access exclusive.
        Some(unsafe { std::slice::from_raw_parts_mut((m.buf_addr as *mut u8).add(start), new_len) })
    }
    #[inline(always)]
    fn prefetch_headroom(&self, n: usize) {
        let m = self.m();
        let at = usize::from(m.data_off).saturating_sub(n);
        // `buf_addr + at` lies inside this mbuf's buffer (at <= data_off); a prefetch never
        // faults and changes nothing observable anyway.
        crate::sys::prefetch_ptr((m.buf_addr as *const u8).wrapping_add(at));
    }
    #[inline(always)]
    fn trim(&mut self, n: usize) -> bool {
        let m = self.m_mut();
        if m.nb_segs != 1 || n > m.data_len as usize {
            return false;
        }
        m.data_len -= n as u16;
        m.pkt_len -= n as u32;
        true
    }
}
