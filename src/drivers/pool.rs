//! A pool of pre-allocated packet buffers, shared lock-free between threads.
//!
//! Buffers are allocated once when the pool is made; taking one pops it from a lock-free
//! queue and dropping a [`PoolBuf`] pushes its storage back, so the data path never calls
//! the allocator. An empty pool is a counted RX drop, as in DPDK.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam::queue::ArrayQueue;

use crate::datapath::{HeapBuf, PacketBuf};

/// Headroom in front of every frame (as DPDK's `RTE_PKTMBUF_HEADROOM`).
pub const HEADROOM: usize = HeapBuf::HEADROOM;
/// Room for a frame: 9000-byte jumbo plus Ethernet and VLAN headers.
pub const DEFAULT_DATA_ROOM: usize = 9216;

struct Shared {
    free: ArrayQueue<Box<[u8]>>,
    size: usize,
    data_room: usize,
    alloc_failed: AtomicU64,
}

/// Handle to a buffer pool; cheap to clone.
#[derive(Clone)]
pub struct BufPool {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for BufPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufPool")
            .field("size", &self.shared.size)
            .field("available", &self.available())
            .finish()
    }
}

impl BufPool {
    /// `size` buffers of `data_room` bytes after [`HEADROOM`]. `size` must be at least 1.
    pub fn new(size: usize, data_room: usize) -> Result<BufPool, String> {
        if size == 0 {
            return Err("a buffer pool needs at least one buffer".into());
        }
        let free = ArrayQueue::new(size);
        for _ in 0..size {
            let _ = free.push(vec![0u8; HEADROOM + data_room].into_boxed_slice());
        }
        Ok(BufPool {
            shared: Arc::new(Shared {
                free,
                size,
                data_room,
                alloc_failed: AtomicU64::new(0),
            }),
        })
    }

    /// A buffer with an empty frame, or `None` (counted) when all are in use.
    #[inline]
    pub fn get(&self) -> Option<PoolBuf> {
        match self.shared.free.pop() {
            Some(storage) => Some(PoolBuf {
                frame: HeapBuf::from_storage(storage),
                pool: Some(self.shared.clone()),
            }),
            None => {
                self.shared.alloc_failed.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// A buffer holding a copy of `frame`; `None` when the pool is empty or the frame is
    /// larger than the data room.
    #[inline]
    pub fn get_with(&self, frame: &[u8]) -> Option<PoolBuf> {
        if frame.len() > self.shared.data_room {
            return None;
        }
        let mut b = self.get()?;
        b.frame.set_frame(frame);
        Some(b)
    }

    /// Buffers in the pool (free ones).
    pub fn available(&self) -> usize {
        self.shared.free.len()
    }
    /// Buffers the pool was made with.
    pub fn size(&self) -> usize {
        self.shared.size
    }
    pub fn data_room(&self) -> usize {
        self.shared.data_room
    }
    /// How many times a buffer was wanted and none was free.
    pub fn alloc_failed(&self) -> u64 {
        self.shared.alloc_failed.load(Ordering::Relaxed)
    }
}

/// A packet buffer from a [`BufPool`]; goes back to its pool when dropped.
pub struct PoolBuf {
    frame: HeapBuf,
    pool: Option<Arc<Shared>>,
}

impl PoolBuf {
    /// Replace the frame with `frame` (cut to the data room), resetting the headroom.
    pub fn set_frame(&mut self, frame: &[u8]) {
        self.frame.set_frame(frame);
    }
    /// Set the frame length (for drivers that wrote into [`PoolBuf::room_mut`]).
    pub fn set_len(&mut self, len: usize) {
        self.frame.set_len(len);
    }
    /// The whole data room after the headroom, for drivers that receive into it.
    pub fn room_mut(&mut self) -> &mut [u8] {
        self.frame.room_mut()
    }
}

impl Drop for PoolBuf {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            // Cannot fail: the queue holds every buffer the pool made.
            let _ = pool.free.push(self.frame.take_storage());
        }
    }
}

impl PacketBuf for PoolBuf {
    #[inline]
    fn data(&self) -> &[u8] {
        self.frame.data()
    }
    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        self.frame.data_mut()
    }
    #[inline(always)]
    fn len(&self) -> usize {
        self.frame.len()
    }
    #[inline]
    fn headroom(&self) -> usize {
        self.frame.headroom()
    }
    #[inline]
    fn prepend(&mut self, n: usize) -> bool {
        self.frame.prepend(n)
    }
    #[inline]
    fn adj(&mut self, n: usize) -> bool {
        self.frame.adj(n)
    }
    #[inline]
    fn trim(&mut self, n: usize) -> bool {
        self.frame.trim(n)
    }
    #[inline(always)]
    fn reframe(&mut self, at: usize, len: usize, outer: usize) -> Option<&mut [u8]> {
        self.frame.reframe(at, len, outer)
    }
    #[inline(always)]
    fn prefetch_headroom(&self, n: usize) {
        self.frame.prefetch_headroom(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_return_to_the_pool_on_drop_across_threads() {
        let pool = BufPool::new(4, 256).unwrap();
        let a = pool.get_with(&[1, 2, 3]).unwrap();
        let b = pool.get().unwrap();
        assert_eq!(pool.available(), 2);
        assert_eq!(a.data(), &[1, 2, 3]);
        assert_eq!(a.headroom(), HEADROOM);
        std::thread::spawn(move || drop((a, b))).join().unwrap();
        assert_eq!(pool.available(), 4);
        let all: Vec<_> = (0..4).map(|_| pool.get().unwrap()).collect();
        assert!(pool.get().is_none());
        assert_eq!(pool.alloc_failed(), 1);
        drop(all);
        assert_eq!(pool.available(), 4);
        assert!(
            pool.get_with(&[0; 257]).is_none(),
            "larger than the data room"
        );
        assert!(BufPool::new(0, 64).is_err());
    }
}
