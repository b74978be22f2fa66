//! One AF_XDP socket: its UMEM (an anonymous mapping of `FRAMES` frames registered with
//! `XDP_UMEM_REG`) and its four rings (fill, completion, RX, TX) mapped from the socket.
//! Everything that touches memory shared with the kernel is here, each `unsafe` block
//! saying why it is sound; [`super::queue`] drives the rings through the safe methods.
#![allow(unsafe_code)]

use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use super::frame::Frames;
use super::{XdpMode, FRAMES, FRAME_SIZE, RING_SIZE};

/// `Err(last OS error)` for a negative return value.
fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// An anonymous shared mapping, unmapped on drop.
#[derive(Debug)]
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory; who may touch which bytes is decided by the ring
// protocol (each frame is owned by exactly one side at a time), not by the thread.
unsafe impl Send for Mapping {}
// SAFETY: as above; shared references only hand out raw pointers.
unsafe impl Sync for Mapping {}

impl Mapping {
    fn map(len: usize, fd: RawFd, offset: libc::off_t, anon: bool) -> io::Result<Mapping> {
        let flags = if anon {
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE
        } else {
            libc::MAP_SHARED | libc::MAP_POPULATE
        };
        // SAFETY: a fresh mapping at an address the kernel chooses: no existing memory is
        // affected; the result is checked before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                fd,
                offset,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        NonNull::new(p.cast())
            .map(|ptr| Mapping { ptr, len })
            .ok_or_else(|| io::Error::other("mmap returned a null mapping"))
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly the mapping made in `map`, unmapped only here.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// One ring mapped from the socket: producer and consumer indices, flags and `size`
/// entries of `T` (u64 frame addresses for fill/completion, `xdp_desc` for RX/TX).
#[derive(Debug)]
pub struct Ring<T> {
    _map: Mapping,
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    flags: NonNull<AtomicU32>,
    desc: NonNull<T>,
    mask: u32,
    /// Our copy of the index we advance (producer for fill/TX, consumer for RX/completion).
    local: u32,
    /// Last seen value of the other side's index.
    cached: u32,
}

// SAFETY: the ring's memory is owned by this value (and the kernel); one thread at a time
// uses a ring, because a `Ring` is only reachable through `&mut` in one queue.
unsafe impl<T: Send> Send for Ring<T> {}

impl<T: Copy> Ring<T> {
    fn map(fd: RawFd, off: &libc::xdp_ring_offset, pgoff: u64) -> io::Result<Ring<T>> {
        let len = off.desc as usize + RING_SIZE as usize * size_of::<T>();
        let map = Mapping::map(len, fd, pgoff as libc::off_t, false)?;
        let base = map.ptr.as_ptr();
        let at = |o: u64| -> io::Result<NonNull<u8>> {
            let base: *mut u8 = base;
            if o as usize + 4 > len {
                return Err(io::Error::other("ring offsets past the mapping"));
            }
            // SAFETY: `o` is inside the mapping (checked above).
            NonNull::new(unsafe { base.add(o as usize) })
                .ok_or_else(|| io::Error::other("null ring pointer"))
        };
        let producer: NonNull<AtomicU32> = at(off.producer)?.cast();
        let consumer: NonNull<AtomicU32> = at(off.consumer)?.cast();
        let flags: NonNull<AtomicU32> = at(off.flags)?.cast();
        let desc: NonNull<T> = at(off.desc)?.cast();
        // SAFETY: both indices are initialised u32s in the mapping, aligned by the kernel.
        let (p, c) = unsafe {
            (
                (*producer.as_ptr()).load(Ordering::Acquire),
                (*consumer.as_ptr()).load(Ordering::Acquire),
            )
        };
        Ok(Ring {
            _map: map,
            producer,
            consumer,
            flags,
            desc,
            mask: RING_SIZE - 1,
            local: 0,
            cached: 0,
        }
        .with_indices(p, c))
    }

    fn with_indices(mut self, p: u32, c: u32) -> Self {
        // Set by the caller's role below; both start at the kernel's values (0).
        self.local = p;
        self.cached = c;
        self
    }

    fn load(p: NonNull<AtomicU32>) -> u32 {
        // SAFETY: `p` points to a u32 index inside the live mapping (see `map`).
        unsafe { (*p.as_ptr()).load(Ordering::Acquire) }
    }

    fn store(p: NonNull<AtomicU32>, v: u32) {
        // SAFETY: as in `load`; the Release store publishes the entries written before it.
        unsafe { (*p.as_ptr()).store(v, Ordering::Release) }
    }

    /// Whether the kernel asks for a wakeup (`XDP_RING_NEED_WAKEUP`).
    #[inline]
    pub fn needs_wakeup(&self) -> bool {
        Self::load(self.flags) & libc::XDP_RING_NEED_WAKEUP != 0
    }

    #[inline]
    fn slot(&self, idx: u32) -> *mut T {
        // SAFETY: `idx & mask` < RING_SIZE, and the mapping holds RING_SIZE entries of T
        // from `desc` (its length was computed so).
        unsafe { self.desc.as_ptr().add((idx & self.mask) as usize) }
    }

    // ----- as a producer (fill, TX): `local` is our producer, `cached` the consumer -----

    /// Free entries we may produce (at most `want`).
    #[inline]
    pub fn prod_room(&mut self, want: u32) -> u32 {
        let mut free = RING_SIZE - self.local.wrapping_sub(self.cached);
        if free < want {
            self.cached = Self::load(self.consumer);
            free = RING_SIZE - self.local.wrapping_sub(self.cached);
        }
        free.min(want)
    }

    /// Write entry `i` of those reserved by [`Ring::prod_room`].
    #[inline]
    pub fn prod_write(&mut self, i: u32, v: T) {
        let p = self.slot(self.local.wrapping_add(i));
        // SAFETY: the slot is one the consumer released (prod_room checked), so the kernel
        // does not read it until the producer index moves past it in `prod_submit`.
        unsafe { p.write(v) };
    }

    /// Entries published that the kernel has not consumed yet.
    #[inline]
    pub fn prod_outstanding(&mut self) -> u32 {
        self.cached = Self::load(self.consumer);
        self.local.wrapping_sub(self.cached)
    }

    /// Publish `n` written entries.
    #[inline]
    pub fn prod_submit(&mut self, n: u32) {
        self.local = self.local.wrapping_add(n);
        Self::store(self.producer, self.local);
    }

    // ----- as a consumer (RX, completion): `local` is our consumer, `cached` the producer -----

    /// Entries ready to consume (at most `want`).
    #[inline]
    pub fn cons_ready(&mut self, want: u32) -> u32 {
        let mut n = self.cached.wrapping_sub(self.local);
        if n < want {
            self.cached = Self::load(self.producer);
            n = self.cached.wrapping_sub(self.local);
        }
        n.min(want)
    }

    /// Entry `i` of those [`Ring::cons_ready`] reported.
    #[inline]
    pub fn cons_read(&self, i: u32) -> T {
        let p = self.slot(self.local.wrapping_add(i));
        // SAFETY: the kernel published this entry (its producer index is past it, loaded
        // with Acquire) and does not reuse it until we release it in `cons_release`.
        unsafe { p.read() }
    }

    /// Hand `n` consumed entries back.
    #[inline]
    pub fn cons_release(&mut self, n: u32) {
        self.local = self.local.wrapping_add(n);
        Self::store(self.consumer, self.local);
    }
}

/// The UMEM: `FRAMES` frames of `FRAME_SIZE` bytes.
#[derive(Debug)]
pub struct Umem {
    map: Mapping,
}

impl Umem {
    /// A fresh anonymous mapping of `FRAMES` frames (registered by [`Xsk::open`]).
    pub fn anonymous() -> io::Result<Umem> {
        let len = FRAMES as usize * FRAME_SIZE as usize;
        Ok(Umem {
            map: Mapping::map(len, -1, 0, true)?,
        })
    }

    /// The first byte of the mapping.
    #[inline(always)]
    pub fn base(&self) -> NonNull<u8> {
        self.map.ptr
    }

    /// Bytes in the mapping.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.map.len
    }
}

/// Facts about a bound socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    pub zerocopy: bool,
}

/// An AF_XDP socket with its UMEM and rings, bound to one queue of an interface.
#[derive(Debug)]
pub struct Xsk {
    pub fd: OwnedFd,
    pub frames: Arc<Frames>,
    pub fill: Ring<u64>,
    pub comp: Ring<u64>,
    pub rx: Ring<libc::xdp_desc>,
    pub tx: Ring<libc::xdp_desc>,
    pub bound: Bound,
}

fn setopt<T>(fd: RawFd, name: libc::c_int, v: &T) -> io::Result<()> {
    // SAFETY: `v` is a live, initialised value of the layout the kernel expects for this
    // SOL_XDP option (the callers pass the uapi structs from libc or a u32 ring size).
    cvt(unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_XDP,
            name,
            (v as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

// SOL_SOCKET options of <asm-generic/socket.h> (x86-64 and arm64), Linux >= 5.11.
const SO_BUSY_POLL: libc::c_int = 46;
const SO_PREFER_BUSY_POLL: libc::c_int = 69;
const SO_BUSY_POLL_BUDGET: libc::c_int = 70;

/// Preferred busy polling on a bound socket: the kernel defers the NIC's interrupts and
/// runs its NAPI poll (up to `budget` frames) when the application calls into it, every
/// empty poll and TX burst (`SO_PREFER_BUSY_POLL`, `SO_BUSY_POLL` 20 µs,
/// `SO_BUSY_POLL_BUDGET`).
pub fn set_busy_poll(fd: RawFd, budget: u32) -> Result<(), XskError> {
    let set = |name: libc::c_int, v: libc::c_int, op: &'static str| {
        // SAFETY: `v` is a live c_int, its exact size is passed.
        cvt(unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                name,
                (&v as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        })
        .map(|_| ())
        .map_err(|source| XskError { op, source })
    };
    set(
        SO_PREFER_BUSY_POLL,
        1,
        "SO_PREFER_BUSY_POLL (busy_poll; needs Linux 5.11)",
    )?;
    set(SO_BUSY_POLL, 20, "SO_BUSY_POLL (busy_poll)")?;
    set(
        SO_BUSY_POLL_BUDGET,
        budget as libc::c_int,
        "SO_BUSY_POLL_BUDGET (busy_poll; needs CAP_NET_ADMIN above the default budget)",
    )
}

/// The XDP statistics of a socket (`XDP_STATISTICS`).
pub fn statistics(fd: RawFd) -> io::Result<libc::xdp_statistics> {
    // SAFETY: all-zero is a valid xdp_statistics (plain integers).
    let mut s: libc::xdp_statistics = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::xdp_statistics>() as libc::socklen_t;
    // SAFETY: `s` is writable for `len` bytes; the kernel writes at most that many.
    cvt(unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_XDP,
            libc::XDP_STATISTICS,
            (&mut s as *mut libc::xdp_statistics).cast(),
            &mut len,
        )
    })?;
    Ok(s)
}

/// Which step of the set-up failed, for the error message.
#[derive(Debug)]
pub struct XskError {
    pub op: &'static str,
    pub source: io::Error,
}

impl Xsk {
    /// Open a socket, register a fresh UMEM, map the rings and bind to `queue` of
    /// `ifindex` in `mode` with `XDP_USE_NEED_WAKEUP`. The fill ring is not filled yet.
    pub fn open(ifindex: u32, queue: u32, mode: XdpMode) -> Result<Xsk, XskError> {
        let e = |op: &'static str| move |source: io::Error| XskError { op, source };
        // SAFETY: plain socket(2); the result is checked and owned at once.
        let raw =
            cvt(unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) })
                .map_err(e("socket(AF_XDP)"))?;
        // SAFETY: `raw` is a fresh descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let umem = Umem::anonymous().map_err(e("mmap of the UMEM"))?;
        let reg = libc::xdp_umem_reg {
            addr: umem.base().as_ptr() as u64,
            len: umem.len() as u64,
            chunk_size: FRAME_SIZE,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        setopt(raw, libc::XDP_UMEM_REG, &reg).map_err(e(
            "XDP_UMEM_REG (UMEM registration; locked-memory limit, ulimit -l?)",
        ))?;
        let size: u32 = RING_SIZE;
        setopt(raw, libc::XDP_UMEM_FILL_RING, &size).map_err(e("XDP_UMEM_FILL_RING"))?;
        setopt(raw, libc::XDP_UMEM_COMPLETION_RING, &size)
            .map_err(e("XDP_UMEM_COMPLETION_RING"))?;
        setopt(raw, libc::XDP_RX_RING, &size).map_err(e("XDP_RX_RING"))?;
        setopt(raw, libc::XDP_TX_RING, &size).map_err(e("XDP_TX_RING"))?;
        // SAFETY: all-zero is a valid xdp_mmap_offsets (plain integers).
        let mut off: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
        let mut olen = size_of::<libc::xdp_mmap_offsets>() as libc::socklen_t;
        // SAFETY: `off` is writable for `olen` bytes; the kernel writes at most that many.
        cvt(unsafe {
            libc::getsockopt(
                raw,
                libc::SOL_XDP,
                libc::XDP_MMAP_OFFSETS,
                (&mut off as *mut libc::xdp_mmap_offsets).cast(),
                &mut olen,
            )
        })
        .map_err(e("XDP_MMAP_OFFSETS"))?;
        if olen as usize != size_of::<libc::xdp_mmap_offsets>() {
            return Err(XskError {
                op: "XDP_MMAP_OFFSETS",
                source: io::Error::other("kernel without ring flags (needs Linux 5.4 or later)"),
            });
        }
        let fill = Ring::map(raw, &off.fr, libc::XDP_UMEM_PGOFF_FILL_RING)
            .map_err(e("mmap of the fill ring"))?;
        let comp = Ring::map(raw, &off.cr, libc::XDP_UMEM_PGOFF_COMPLETION_RING)
            .map_err(e("mmap of the completion ring"))?;
        let rx = Ring::map(raw, &off.rx, libc::XDP_PGOFF_RX_RING as u64)
            .map_err(e("mmap of the RX ring"))?;
        let tx = Ring::map(raw, &off.tx, libc::XDP_PGOFF_TX_RING as u64)
            .map_err(e("mmap of the TX ring"))?;
        let mut xsk = Xsk {
            fd,
            frames: Arc::new(Frames::new(umem)),
            fill,
            comp,
            rx,
            tx,
            bound: Bound { zerocopy: false },
        };
        // Fill before bind, so the first frames find buffers: half the frames; the other
        // half stays free for frames in user space and on the TX ring.
        let mut n = 0;
        let room = xsk.fill.prod_room(FRAMES / 2);
        while n < room {
            let Some(f) = xsk.frames.pop() else { break };
            xsk.fill.prod_write(n, f);
            n += 1;
        }
        xsk.fill.prod_submit(n);
        let flags = libc::XDP_USE_NEED_WAKEUP
            | match mode {
                XdpMode::Auto => 0,
                XdpMode::Zerocopy => libc::XDP_ZEROCOPY,
                XdpMode::Copy => libc::XDP_COPY,
            };
        let sa = libc::sockaddr_xdp {
            sxdp_family: libc::AF_XDP as u16,
            sxdp_flags: flags,
            sxdp_ifindex: ifindex,
            sxdp_queue_id: queue,
            sxdp_shared_umem_fd: 0,
        };
        // SAFETY: `sa` is an initialised sockaddr_xdp whose exact size is passed.
        cvt(unsafe {
            libc::bind(
                raw,
                (&sa as *const libc::sockaddr_xdp).cast(),
                size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
            )
        })
        .map_err(e("bind to the queue"))?;
        // SAFETY: all-zero is a valid xdp_options.
        let mut opts: libc::xdp_options = unsafe { std::mem::zeroed() };
        let mut olen = size_of::<libc::xdp_options>() as libc::socklen_t;
        // SAFETY: `opts` is writable for `olen` bytes.
        let r = unsafe {
            libc::getsockopt(
                raw,
                libc::SOL_XDP,
                libc::XDP_OPTIONS,
                (&mut opts as *mut libc::xdp_options).cast(),
                &mut olen,
            )
        };
        xsk.bound.zerocopy = r == 0 && opts.flags & libc::XDP_OPTIONS_ZEROCOPY != 0;
        Ok(xsk)
    }
}

/// Wake the kernel's RX side (`recvfrom` with no buffer, non-blocking).
pub fn wake_rx(fd: RawFd) {
    // SAFETY: a zero-length receive with null buffer and address: the kernel writes nothing.
    unsafe {
        libc::recvfrom(
            fd,
            std::ptr::null_mut(),
            0,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
}

/// Kick the kernel's TX side (`sendto` with no data, non-blocking). Returns whether the
/// kernel says it has more to send (`EAGAIN`: copy mode sends a bounded batch per call).
/// Other errors (EBUSY, ENOBUFS: the device is busy; ENETDOWN) are left to the next kick.
pub fn kick_tx(fd: RawFd) -> bool {
    // SAFETY: a zero-length send with null buffer and address: the kernel reads nothing.
    let r = unsafe {
        libc::sendto(
            fd,
            std::ptr::null(),
            0,
            libc::MSG_DONTWAIT,
            std::ptr::null(),
            0,
        )
    };
    r < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EAGAIN)
}

impl AsRawFd for Xsk {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
