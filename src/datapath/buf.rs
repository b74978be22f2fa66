//! Packet buffers: a contiguous frame with headroom in front, like an `rte_mbuf` segment.

/// What the pipeline needs from a driver's buffer. Implemented by [`HeapBuf`] here and by each
/// driver's own buffer (pool slots, DPDK mbufs).
pub trait PacketBuf {
    /// The frame, starting at the Ethernet header.
    fn data(&self) -> &[u8];
    fn data_mut(&mut self) -> &mut [u8];
    /// Length of the frame (`data().len()`, which buffers can say without making a slice).
    #[inline(always)]
    fn len(&self) -> usize {
        self.data().len()
    }
    /// No frame bytes at all.
    #[inline(always)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Free bytes in front of the frame.
    fn headroom(&self) -> usize;
    /// Grow the frame at the front by `n` bytes (contents unspecified); `false` and no change
    /// when the headroom is too small.
    fn prepend(&mut self, n: usize) -> bool;
    /// Shrink the frame at the front by `n` bytes; `false` and no change if it is shorter.
    fn adj(&mut self, n: usize) -> bool;
    /// Shrink the frame at the end by `n` bytes; `false` and no change if it is shorter.
    fn trim(&mut self, n: usize) -> bool;
    /// Turn the frame into `outer` new bytes (contents unspecified) followed by the `len`
    /// bytes that start at `at` (the IP packet: the link header before it and any padding
    /// after it go), and return the new frame. `None`, with the frame unchanged, when the
    /// headroom cannot take the difference or the frame is shorter than `at + len`.
    ///
    /// The default goes through the methods above; buffers override it to do the
    /// encapsulation's bookkeeping with one bounds check.
    #[inline(always)]
    fn reframe(&mut self, at: usize, len: usize, outer: usize) -> Option<&mut [u8]> {
        let extra = self.data().len().checked_sub(at.checked_add(len)?)?;
        if outer > at && outer - at > self.headroom() {
            return None;
        }
        if extra > 0 && !self.trim(extra) {
            return None;
        }
        let moved = if outer > at {
            self.prepend(outer - at)
        } else {
            self.adj(at - outer)
        };
        moved.then(|| self.data_mut())
    }
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
    #[inline(always)]
    fn len(&self) -> usize {
        self.end - self.start
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
    fn reframe(&mut self, at: usize, len: usize, outer: usize) -> Option<&mut [u8]> {
        let from = self.start.checked_add(at)?;
        let end = from.checked_add(len).filter(|&e| e <= self.end)?;
        let start = from.checked_sub(outer)?;
        self.start = start;
        self.end = end;
        self.storage.get_mut(start..end)
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

    /// Goes through the trait's default `reframe` (the other methods of a `HeapBuf`).
    struct Plain(HeapBuf);

    impl PacketBuf for Plain {
        fn data(&self) -> &[u8] {
            self.0.data()
        }
        fn data_mut(&mut self) -> &mut [u8] {
            self.0.data_mut()
        }
        fn headroom(&self) -> usize {
            self.0.headroom()
        }
        fn prepend(&mut self, n: usize) -> bool {
            self.0.prepend(n)
        }
        fn adj(&mut self, n: usize) -> bool {
            self.0.adj(n)
        }
        fn trim(&mut self, n: usize) -> bool {
            self.0.trim(n)
        }
    }

    #[test]
    fn reframe_keeps_the_packet_and_makes_room_in_front() {
        let frame: Vec<u8> = (0..20).collect();
        for headroom in [0, 3, 8, 128] {
            for at in 0..22 {
                for len in 0..22 {
                    for outer in 0..12 {
                        let mut h = HeapBuf::new(headroom, 64);
                        h.storage[headroom..headroom + 20].copy_from_slice(&frame);
                        h.end = headroom + 20;
                        let mut p = Plain(h.clone());
                        let fits = at + len <= 20 && outer <= headroom + at;
                        let a = h.reframe(at, len, outer).map(|d| d.len());
                        let b = p.reframe(at, len, outer).map(|d| d.len());
                        assert_eq!(a, b, "headroom {headroom} at {at} len {len} outer {outer}");
                        assert_eq!(a.is_some(), fits);
                        assert_eq!(h.data(), p.data());
                        if fits {
                            assert_eq!(h.data().len(), outer + len);
                            assert_eq!(&h.data()[outer..], &frame[at..at + len]);
                        } else {
                            assert_eq!(h.data(), &frame[..], "unchanged when refused");
                        }
                    }
                }
            }
        }
    }
}
