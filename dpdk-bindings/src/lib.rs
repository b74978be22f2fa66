//! `dpdk-sys`: raw FFI bindings to DPDK 22.11 for Rondo.
//!
//! * Everything DPDK exports as a real symbol comes from bindgen (run over
//!   `src/bindings.h` with an explicit allowlist, see `build.rs`).
//! * DPDK's `static inline` functions, macros and thread-locals are wrapped by
//!   C shims in `src/shim.c` (`rte_eth_rx_burst_`, ...) and re-exported here
//!   under the DPDK names (`rte_eth_rx_burst`, ...) as `#[inline] pub unsafe fn`,
//!   so call sites read like the DPDK programmer's guide.
//! * A few pure-Rust helpers (`pktmbuf_*`) read mbuf fields directly so the
//!   hot path does not cross the FFI boundary for them.
//!
//! In DPDK 22.11 `rte_pktmbuf_free_bulk`, `rte_mempool_avail_count`,
//! `rte_mempool_in_use_count` and `rte_socket_id` are exported functions, so
//! they come straight from bindgen and have no shim.
#![allow(non_camel_case_types, non_upper_case_globals, non_snake_case)]

mod bindings {
    #![allow(
        non_camel_case_types,
        non_upper_case_globals,
        non_snake_case,
        dead_code
    )]
    #![allow(clippy::all, clippy::undocumented_unsafe_blocks)]
    #![allow(rustdoc::all)]
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}
pub use bindings::*;

use std::ffi::{c_char, c_int, c_uint, c_void, CString};

// ---------------------------------------------------------------------------
// Shims for static-inline functions, under their DPDK names.
// ---------------------------------------------------------------------------

/// Receives up to `nb_pkts` packets from `queue_id` of `port_id` into `rx_pkts`.
///
/// # Safety
/// EAL must be initialised, the port configured and started, the queue set up,
/// `rx_pkts` valid for `nb_pkts` writes, and the queue not used concurrently
/// from another thread. Received mbufs are owned by the caller.
#[inline]
pub unsafe fn rte_eth_rx_burst(
    port_id: u16,
    queue_id: u16,
    rx_pkts: *mut *mut rte_mbuf,
    nb_pkts: u16,
) -> u16 {
    // SAFETY: forwarded verbatim; the caller upholds the contract above.
    unsafe { rte_eth_rx_burst_(port_id, queue_id, rx_pkts, nb_pkts) }
}

/// Sends up to `nb_pkts` packets from `tx_pkts` on `queue_id` of `port_id`;
/// returns how many were taken (their ownership passes to the driver).
///
/// # Safety
/// As [`rte_eth_rx_burst`]; `tx_pkts` must hold `nb_pkts` valid mbufs. Mbufs
/// past the returned count remain owned by the caller.
#[inline]
pub unsafe fn rte_eth_tx_burst(
    port_id: u16,
    queue_id: u16,
    tx_pkts: *mut *mut rte_mbuf,
    nb_pkts: u16,
) -> u16 {
    // SAFETY: forwarded verbatim; the caller upholds the contract above.
    unsafe { rte_eth_tx_burst_(port_id, queue_id, tx_pkts, nb_pkts) }
}

/// Allocates one mbuf from `mp` and resets it; null if the pool is empty.
///
/// # Safety
/// `mp` must be a live pktmbuf pool; from a non-EAL thread the pool cache is
/// bypassed (the call is still valid).
#[inline]
pub unsafe fn rte_pktmbuf_alloc(mp: *mut rte_mempool) -> *mut rte_mbuf {
    // SAFETY: forwarded verbatim; the caller upholds the contract above.
    unsafe { rte_pktmbuf_alloc_(mp) }
}

/// Frees an mbuf (chain) back to its pool. Null is allowed.
///
/// # Safety
/// `m` must be null or an mbuf owned by the caller; it must not be used after.
#[inline]
pub unsafe fn rte_pktmbuf_free(m: *mut rte_mbuf) {
    // SAFETY: forwarded verbatim; the caller upholds the contract above.
    unsafe { rte_pktmbuf_free_(m) }
}

/// Allocates `count` mbufs into `mbufs`; 0 on success, negative errno (and no
/// mbuf taken) otherwise.
///
/// # Safety
/// `pool` must be a live pktmbuf pool and `mbufs` valid for `count` writes.
#[inline]
pub unsafe fn rte_pktmbuf_alloc_bulk(
    pool: *mut rte_mempool,
    mbufs: *mut *mut rte_mbuf,
    count: c_uint,
) -> c_int {
    // SAFETY: forwarded verbatim; the caller upholds the contract above.
    unsafe { rte_pktmbuf_alloc_bulk_(pool, mbufs, count) }
}

/// Prepends `len` bytes of headroom to the data; returns the new data start,
/// or null (mbuf unchanged) if the headroom is too small.
///
/// # Safety
/// `m` must be a valid mbuf owned by the caller.
#[inline]
pub unsafe fn rte_pktmbuf_prepend(m: *mut rte_mbuf, len: u16) -> *mut c_char {
    // SAFETY: forwarded verbatim; the caller upholds the contract above.
    unsafe { rte_pktmbuf_prepend_(m, len) }
}

/// Removes `len` bytes from the start of the data; returns the new data start,
/// or null (mbuf unchanged) if `len` exceeds the segment's data length.
///
/// # Safety
/// `m` must be a valid mbuf owned by the caller.
#[inline]
pub unsafe fn rte_pktmbuf_adj(m: *mut rte_mbuf, len: u16) -> *mut c_char {
    // SAFETY: forwarded verbatim; the caller upholds the contract above.
    unsafe { rte_pktmbuf_adj_(m, len) }
}

/// Removes `len` bytes from the end of the last segment; 0 on success, -1
/// (mbuf unchanged) if the last segment is shorter than `len`.
///
/// # Safety
/// `m` must be a valid mbuf owned by the caller.
#[inline]
pub unsafe fn rte_pktmbuf_trim(m: *mut rte_mbuf, len: u16) -> c_int {
    // SAFETY: forwarded verbatim; the caller upholds the contract above.
    unsafe { rte_pktmbuf_trim_(m, len) }
}

/// Appends `len` bytes to the last segment; returns a pointer to the added
/// bytes, or null (mbuf unchanged) if the tailroom is too small.
///
/// # Safety
/// `m` must be a valid mbuf owned by the caller.
#[inline]
pub unsafe fn rte_pktmbuf_append(m: *mut rte_mbuf, len: u16) -> *mut c_char {
    // SAFETY: forwarded verbatim; the caller upholds the contract above.
    unsafe { rte_pktmbuf_append_(m, len) }
}

/// The `rte_pktmbuf_mtod(m, void *)` macro: `buf_addr + data_off`.
/// [`pktmbuf_mtod`] is the same in pure Rust.
///
/// # Safety
/// `m` must be a valid mbuf.
#[inline]
pub unsafe fn rte_pktmbuf_mtod(m: *mut rte_mbuf) -> *mut c_void {
    // SAFETY: forwarded verbatim; the caller upholds the contract above.
    unsafe { rte_pktmbuf_mtod_(m) }
}

/// Bytes of headroom in the first segment (`data_off`).
///
/// # Safety
/// `m` must be a valid mbuf.
#[inline]
pub unsafe fn rte_pktmbuf_headroom(m: *const rte_mbuf) -> u16 {
    // SAFETY: forwarded verbatim; the caller upholds the contract above.
    unsafe { rte_pktmbuf_headroom_(m) }
}

/// Bytes of tailroom in this segment (`buf_len - data_off - data_len`).
///
/// # Safety
/// `m` must be a valid mbuf.
#[inline]
pub unsafe fn rte_pktmbuf_tailroom(m: *const rte_mbuf) -> u16 {
    // SAFETY: forwarded verbatim; the caller upholds the contract above.
    unsafe { rte_pktmbuf_tailroom_(m) }
}

/// The calling thread's lcore id, or [`LCORE_ID_ANY`] for an unregistered
/// non-EAL thread (a thread-local in DPDK, hence a shim).
///
/// # Safety
/// Always safe to call in practice; `unsafe` because it is FFI.
#[inline]
pub unsafe fn rte_lcore_id() -> c_uint {
    // SAFETY: reads a thread-local; no preconditions.
    unsafe { rte_lcore_id_() }
}

/// The calling thread's `rte_errno` (a per-lcore thread-local in DPDK).
///
/// # Safety
/// Always safe to call in practice; `unsafe` because it is FFI.
#[inline]
pub unsafe fn rte_errno() -> c_int {
    // SAFETY: reads a thread-local; no preconditions.
    unsafe { rte_errno_() }
}

/// Sets the calling thread's `rte_errno` (e.g. to 0 before a call whose
/// failure is reported only through it).
///
/// # Safety
/// Always safe to call in practice; `unsafe` because it is FFI.
#[inline]
pub unsafe fn rte_errno_set(value: c_int) {
    // SAFETY: writes a thread-local; no preconditions.
    unsafe { rte_errno_set_(value) }
}

/// Enqueues up to `n` objects from `obj_table` (fewer when the ring is full);
/// returns how many. `free_space` (nullable) receives the room left.
///
/// # Safety
/// `r` must be a live ring; `obj_table` valid for `n` reads; the ring's
/// producer mode (single/multi) must match how callers use it.
#[inline]
pub unsafe fn rte_ring_enqueue_burst(
    r: *mut rte_ring,
    obj_table: *const *mut c_void,
    n: c_uint,
    free_space: *mut c_uint,
) -> c_uint {
    // SAFETY: forwarded verbatim; the caller upholds the contract above.
    unsafe { rte_ring_enqueue_burst_(r, obj_table, n, free_space) }
}

/// Dequeues up to `n` objects into `obj_table`; returns how many.
/// `available` (nullable) receives how many are left.
///
/// # Safety
/// `r` must be a live ring; `obj_table` valid for `n` writes; the ring's
/// consumer mode (single/multi) must match how callers use it.
#[inline]
pub unsafe fn rte_ring_dequeue_burst(
    r: *mut rte_ring,
    obj_table: *mut *mut c_void,
    n: c_uint,
    available: *mut c_uint,
) -> c_uint {
    // SAFETY: forwarded verbatim; the caller upholds the contract above.
    unsafe { rte_ring_dequeue_burst_(r, obj_table, n, available) }
}

/// Objects in the ring.
///
/// # Safety
/// `r` must be a live ring.
#[inline]
pub unsafe fn rte_ring_count(r: *const rte_ring) -> c_uint {
    // SAFETY: forwarded verbatim; the caller upholds the contract above.
    unsafe { rte_ring_count_(r) }
}

// ---------------------------------------------------------------------------
// Constants bindgen cannot see (function-like macros), checked against C in tests.
// ---------------------------------------------------------------------------

/// The DPDK version this crate was built against (`pkg-config --modversion libdpdk`).
pub const DPDK_VERSION: &str = env!("DPDK_PKG_VERSION");

/// `RTE_ETH_RSS_IPV4` ... as in `rte_ethdev.h` (`RTE_BIT64(n)`).
pub const RTE_ETH_RSS_IPV4: u64 = 1 << 2;
pub const RTE_ETH_RSS_FRAG_IPV4: u64 = 1 << 3;
pub const RTE_ETH_RSS_NONFRAG_IPV4_TCP: u64 = 1 << 4;
pub const RTE_ETH_RSS_NONFRAG_IPV4_UDP: u64 = 1 << 5;
pub const RTE_ETH_RSS_NONFRAG_IPV4_OTHER: u64 = 1 << 7;
pub const RTE_ETH_RSS_IPV6: u64 = 1 << 8;
pub const RTE_ETH_RSS_FRAG_IPV6: u64 = 1 << 9;
pub const RTE_ETH_RSS_NONFRAG_IPV6_TCP: u64 = 1 << 10;
pub const RTE_ETH_RSS_NONFRAG_IPV6_UDP: u64 = 1 << 11;
pub const RTE_ETH_RSS_NONFRAG_IPV6_OTHER: u64 = 1 << 13;
pub const RTE_ETH_RSS_IPV6_EX: u64 = 1 << 15;
pub const RTE_ETH_RSS_IPV6_TCP_EX: u64 = 1 << 16;
pub const RTE_ETH_RSS_IPV6_UDP_EX: u64 = 1 << 17;
/// `RTE_ETH_RSS_IP`.
pub const RTE_ETH_RSS_IP: u64 = RTE_ETH_RSS_IPV4
    | RTE_ETH_RSS_FRAG_IPV4
    | RTE_ETH_RSS_NONFRAG_IPV4_OTHER
    | RTE_ETH_RSS_IPV6
    | RTE_ETH_RSS_FRAG_IPV6
    | RTE_ETH_RSS_NONFRAG_IPV6_OTHER
    | RTE_ETH_RSS_IPV6_EX;
/// `RTE_ETH_RSS_TCP`.
pub const RTE_ETH_RSS_TCP: u64 =
    RTE_ETH_RSS_NONFRAG_IPV4_TCP | RTE_ETH_RSS_NONFRAG_IPV6_TCP | RTE_ETH_RSS_IPV6_TCP_EX;
/// `RTE_ETH_RSS_UDP`.
pub const RTE_ETH_RSS_UDP: u64 =
    RTE_ETH_RSS_NONFRAG_IPV4_UDP | RTE_ETH_RSS_NONFRAG_IPV6_UDP | RTE_ETH_RSS_IPV6_UDP_EX;

/// `rte_version()` (the DPDK library actually loaded) as a Rust string.
pub fn runtime_version() -> String {
    // SAFETY: rte_version needs no EAL and returns a pointer to a static
    // NUL-terminated string.
    unsafe {
        let p = rte_version();
        if p.is_null() {
            return String::new();
        }
        std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

// ---------------------------------------------------------------------------
// Pure-Rust mbuf field helpers (inline, no FFI call).
// ---------------------------------------------------------------------------

/// `m->data_len`: bytes of data in this segment.
///
/// # Safety
/// `m` must point to a valid, initialised `rte_mbuf`.
#[inline(always)]
pub unsafe fn pktmbuf_data_len(m: *const rte_mbuf) -> u16 {
    // SAFETY: the caller guarantees `m` points to a valid mbuf.
    unsafe { (*m).data_len }
}

/// `m->pkt_len`: bytes of data in the whole chain.
///
/// # Safety
/// `m` must point to a valid, initialised `rte_mbuf`.
#[inline(always)]
pub unsafe fn pktmbuf_pkt_len(m: *const rte_mbuf) -> u32 {
    // SAFETY: the caller guarantees `m` points to a valid mbuf.
    unsafe { (*m).pkt_len }
}

/// `m->data_off`: offset of the data from `buf_addr` (= the headroom).
///
/// # Safety
/// `m` must point to a valid, initialised `rte_mbuf`.
#[inline(always)]
pub unsafe fn pktmbuf_data_off(m: *const rte_mbuf) -> u16 {
    // SAFETY: the caller guarantees `m` points to a valid mbuf.
    unsafe { (*m).data_off }
}

/// `m->buf_len`: size of the segment buffer.
///
/// # Safety
/// `m` must point to a valid, initialised `rte_mbuf`.
#[inline(always)]
pub unsafe fn pktmbuf_buf_len(m: *const rte_mbuf) -> u16 {
    // SAFETY: the caller guarantees `m` points to a valid mbuf.
    unsafe { (*m).buf_len }
}

/// Tailroom of this segment: `buf_len - data_off - data_len`.
///
/// # Safety
/// `m` must point to a valid, initialised `rte_mbuf`.
#[inline(always)]
pub unsafe fn pktmbuf_tailroom(m: *const rte_mbuf) -> u16 {
    // SAFETY: the caller guarantees `m` points to a valid mbuf; DPDK keeps
    // data_off + data_len <= buf_len, wrapping_sub mirrors C's uint16 maths.
    unsafe {
        (*m).buf_len
            .wrapping_sub((*m).data_off)
            .wrapping_sub((*m).data_len)
    }
}

/// `rte_pktmbuf_mtod(m, uint8_t *)`: start of this segment's data.
///
/// # Safety
/// `m` must point to a valid, initialised `rte_mbuf` with a buffer attached.
#[inline(always)]
pub unsafe fn pktmbuf_mtod(m: *const rte_mbuf) -> *mut u8 {
    // SAFETY: the caller guarantees `m` is valid; data_off < buf_len, so the
    // offset stays inside the mbuf's buffer.
    unsafe { ((*m).buf_addr as *mut u8).add((*m).data_off as usize) }
}

/// This segment's data as a mutable byte slice (`data_len` bytes at mtod).
///
/// # Safety
/// `m` must point to a valid mbuf that the caller owns exclusively for `'a`
/// (no other reference to its data, no free while the slice lives).
#[inline(always)]
pub unsafe fn pktmbuf_data<'a>(m: *mut rte_mbuf) -> &'a mut [u8] {
    // SAFETY: mtod .. mtod + data_len lies inside the buffer DPDK attached to
    // `m`, and the caller guarantees exclusive access for 'a.
    unsafe { std::slice::from_raw_parts_mut(pktmbuf_mtod(m), (*m).data_len as usize) }
}

// ---------------------------------------------------------------------------
// EAL start-up helper.
// ---------------------------------------------------------------------------

/// Calls `rte_eal_init` with `args` (`args[0]` is the program name).
///
/// `rte_eal_init` reorders the argv array it is given, so this passes a
/// scratch array of pointers and keeps the `CString`s alive for the call.
/// Returns the number of arguments EAL consumed, or `Err(rte_errno)`
/// (`Err(EINVAL)` if an argument contains a NUL byte).
///
/// # Safety
/// Call at most once per process (EAL cannot be re-initialised, even after
/// `rte_eal_cleanup`); the calling thread becomes the main lcore.
pub unsafe fn eal_init<S: AsRef<str>>(args: &[S]) -> Result<usize, c_int> {
    let owned: Vec<CString> = args
        .iter()
        .map(|a| CString::new(a.as_ref()).map_err(|_| libc_einval()))
        .collect::<Result<_, _>>()?;
    let mut argv: Vec<*mut c_char> = owned.iter().map(|c| c.as_ptr() as *mut c_char).collect();
    argv.push(std::ptr::null_mut());
    let argc = owned.len() as c_int;
    // SAFETY: argv holds argc valid NUL-terminated strings (kept alive by
    // `owned` until after the call) plus a terminating null; EAL may permute
    // the scratch array but does not write through the string pointers.
    let ret = unsafe { rte_eal_init(argc, argv.as_mut_ptr()) };
    if ret < 0 {
        // SAFETY: reads a thread-local.
        Err(unsafe { rte_errno() })
    } else {
        Ok(ret as usize)
    }
}

const fn libc_einval() -> c_int {
    22 // EINVAL on Linux
}

/// `rte_strerror(errnum)` as an owned Rust string.
pub fn strerror(errnum: c_int) -> String {
    // SAFETY: rte_strerror accepts any value and returns a pointer to a static
    // or thread-local NUL-terminated string.
    unsafe {
        let p = rte_strerror(errnum);
        if p.is_null() {
            return format!("errno {errnum}");
        }
        std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}
