//! The burst: how many packets the pipeline takes at once, and the masks that name its
//! packets (one bit per packet).

/// Packets per burst, as in DPDK applications.
pub const BURST_MAX: usize = 32;

// A burst mask is a `u32`.
const _: () = assert!(BURST_MAX <= 32);

/// The packets `0..n` of a burst, as a mask (all of them for `n >= BURST_MAX`).
#[inline(always)]
pub(crate) fn first(n: usize) -> u32 {
    if n >= BURST_MAX {
        u32::MAX
    } else {
        (1 << n) - 1
    }
}

/// The set bits of a burst mask, lowest first: the indices of the packets it holds.
pub(crate) struct Bits(pub u32);

impl Iterator for Bits {
    type Item = usize;
    #[inline(always)]
    fn next(&mut self) -> Option<usize> {
        if self.0 == 0 {
            return None;
        }
        let i = self.0.trailing_zeros() as usize;
        self.0 &= self.0 - 1;
        Some(i & (BURST_MAX - 1))
    }
}
