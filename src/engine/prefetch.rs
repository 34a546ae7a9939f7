//! A hint to the CPU to start loading memory the code will read a little
//! later. With many groups, each lookup meets the group index, a key record
//! and a tally at random places of tens of megabytes, and so does the
//! reply's walk in sorted order; asking for those lines some lookups or rows
//! ahead turns waits for memory into work done meanwhile.
//!
//! The one `unsafe` block outside the skimmer (SECURITY.md): the prefetch
//! instruction reads nothing the program sees and cannot fault, and it is
//! only ever given addresses inside a live reference's value.

/// Ask for the cache line holding the start of `value`; nothing on
/// architectures without a stable prefetch instruction.
#[inline(always)]
pub fn prefetch<T: ?Sized>(value: &T) {
    let address: *const T = value;
    prefetch_at(address.cast(), 0);
}

/// Ask for every cache line `value` spans: a group's tally is 112 bytes,
/// two or three lines, and counting a membership or writing its row reads
/// all of them, not just the first.
#[inline(always)]
pub fn prefetch_whole<T>(value: &T) {
    let address: *const T = value;
    let size = std::mem::size_of::<T>();
    for offset in (0..size).step_by(64).chain(size.checked_sub(1)) {
        prefetch_at(address.cast(), offset);
    }
}

/// Ask for the line holding byte `offset` of the live value at `base`.
#[inline(always)]
fn prefetch_at(base: *const u8, offset: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch is a hint (SSE, in every x86_64 CPU): it reads
        // nothing the program sees and never faults, and the address lies
        // within a live reference's value (`offset` below its size).
        unsafe { _mm_prefetch::<_MM_HINT_T0>(base.wrapping_add(offset).cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (base, offset);
}
