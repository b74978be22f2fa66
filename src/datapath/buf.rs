//! Packet buffers: a contiguous frame with headroom in front, like an `rte_mbuf` segment.

/// What the pipeline needs from a driver's buffer. Implemented by [`HeapBuf`] here and by each
/// driver's own buffer (pool slots, DPDK mbufs).
pub trait PacketBuf {
    /// The frame, starting at the Ethernet header.
    fn data(&self) -> &[u8];
    fn data_mut(&mut self) -> &mut [u8];
    /// Free bytes in front of the frame.
    fn headroom(&self) -> usize;
    /// Grow the frame at the front by `n` bytes (contents unspecified); `false` and no change
    /// when the headroom is too small.
    fn prepend(&mut self, n: usize) -> bool;
    /// Shrink the frame at the front by `n` bytes; `false` and no change if it is shorter.
    fn adj(&mut self, n: usize) -> bool;
    /// Shrink the frame at the end by `n` bytes; `false` and no change if it is shorter.
    fn trim(&mut self, n: usize) -> bool;
    /// Hint: the `n` bytes in front of the frame are about to be written (the outer
    /// headers). Start fetching their cache line, which receiving the frame did not touch.
    /// No effect on contents; the default does nothing.
    #[inline(always)]
    fn prefetch_headroom(&self, n: usize) {
        let _ = n;
    }
}

/// A heap-backed buffer: one allocation per buffer, reused across packets. Used by the pcap
/// tool and tests; drivers bring pooled buffers.
#[derive(Clone)]
pub struct HeapBuf {
    storage: Box<[u8]>,
    start: usize,
    end: usize,
}

impl HeapBuf {
    /// Default headroom, as DPDK's `RTE_PKTMBUF_HEADROOM`.
    pub const HEADROOM: usize = 128;

    /// An empty buffer able to hold `capacity` bytes of frame after `headroom`.
    pub fn new(headroom: usize, capacity: usize) -> Self {
        HeapBuf {
            storage: vec![0; headroom + capacity].into_boxed_slice(),
            start: headroom,
            end: headroom,
        }
    }

    /// A buffer holding a copy of `frame` with the default headroom.
    pub fn from_frame(frame: &[u8]) -> Self {
        let mut b = HeapBuf::new(Self::HEADROOM, frame.len().max(2048));
        b.set_frame(frame);
        b
    }

    /// Replace the contents with `frame`, resetting the headroom. Frames longer than the
    /// capacity are cut to it (callers check the frame length against the buffer first).
    pub fn set_frame(&mut self, frame: &[u8]) {
        self.start = Self::HEADROOM.min(self.storage.len());
        let n = frame.len().min(self.storage.len() - self.start);
        self.storage[self.start..self.start + n].copy_from_slice(&frame[..n]);
        self.end = self.start + n;
    }

    /// Wrap existing storage (at least [`HeapBuf::HEADROOM`] bytes) with an empty frame.
    pub fn from_storage(storage: Box<[u8]>) -> Self {
        let start = Self::HEADROOM.min(storage.len());
        HeapBuf {
            storage,
            start,
            end: start,
        }
    }

    /// Give the storage back (for pools), leaving this buffer empty.
    pub fn take_storage(&mut self) -> Box<[u8]> {
        self.start = 0;
        self.end = 0;
        std::mem::take(&mut self.storage)
    }

    /// Set the frame to the first `len` bytes after the headroom (for drivers that wrote
    /// into [`HeapBuf::room_mut`]); cut to the capacity.
    pub fn set_len(&mut self, len: usize) {
        self.start = Self::HEADROOM.min(self.storage.len());
        self.end = self.start + len.min(self.storage.len() - self.start);
    }

    /// The whole room after the default headroom, for drivers that receive into it.
    pub fn room_mut(&mut self) -> &mut [u8] {
        let h = Self::HEADROOM.min(self.storage.len());
        &mut self.storage[h..]
    }
}

impl PacketBuf for HeapBuf {
    #[inline]
    fn data(&self) -> &[u8] {
        &self.storage[self.start..self.end]
    }
    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.end]
    }
    #[inline]
    fn headroom(&self) -> usize {
        self.start
    }
    #[inline]
    fn prepend(&mut self, n: usize) -> bool {
        if n > self.start {
            return false;
        }
        self.start -= n;
        true
    }
    #[inline]
    fn adj(&mut self, n: usize) -> bool {
        if n > self.end - self.start {
            return false;
        }
        self.start += n;
        true
    }
    #[inline]
    fn trim(&mut self, n: usize) -> bool {
        if n > self.end - self.start {
            return false;
        }
        self.end -= n;
        true
    }
    #[inline(always)]
    fn prefetch_headroom(&self, n: usize) {
        if let Some(b) = self
            .start
            .checked_sub(n)
            .and_then(|at| self.storage.get(at))
        {
            crate::sys::prefetch(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepend_adj_trim_keep_bounds() {
        let mut b = HeapBuf::from_frame(&[1, 2, 3, 4]);
        assert_eq!(b.headroom(), 128);
        assert!(b.prepend(128));
        assert!(!b.prepend(1));
        assert_eq!(b.data().len(), 132);
        assert!(b.adj(130));
        assert_eq!(b.data(), &[3, 4]);
        assert!(!b.adj(3));
        assert!(b.trim(1));
        assert_eq!(b.data(), &[3]);
        assert!(!b.trim(2));
        assert_eq!(b.data(), &[3]);
    }
}
