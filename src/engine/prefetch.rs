//! A hint to the CPU to start loading memory the code will read a little
//! later. With many groups, each lookup meets the group index, a key record
//! and a tally at random places of tens of megabytes, and so does the
//! reply's walk in sorted order; asking for those lines some lookups or rows
//! ahead turns waits for memory into work done meanwhile.
//!
//! The one `unsafe` block outside the skimmer (SECURITY.md): the prefetch
//! instruction reads nothing the program sees and cannot fault, and it is
//! only ever given the address of a live reference.

/// Ask for the cache line holding the start of `value`; nothing on
/// architectures without a stable prefetch instruction.
#[inline(always)]
pub fn prefetch<T: ?Sized>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let address: *const T = value;
        // SAFETY: a prefetch is a hint (SSE, in every x86_64 CPU): it reads
        // nothing the program sees and never faults, and the address is that
        // of a live reference.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(address.cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}
