//! CPU hints for the hot path: cache-line prefetches (x86_64 `prefetcht0`; nothing elsewhere).
#![allow(unsafe_code)]

/// Hint the CPU to pull the cache line holding `p` into L1; never faults, no effect on
/// program semantics.
#[inline(always)]
pub fn prefetch<T>(p: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE is part of the x86_64 baseline, so `prefetcht0` exists on every CPU this
    // code runs on; prefetch is a hint that never faults and reads nothing observable, and
    // `p` is a valid reference anyway.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((p as *const T).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// [`prefetch`] for an address that need not be a valid reference (a prefetch never faults,
/// whatever the address).
#[inline(always)]
pub fn prefetch_ptr(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: as in `prefetch`: `prefetcht0` is baseline x86_64, never faults and reads
    // nothing observable, so any address is fine.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
