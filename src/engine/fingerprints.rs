//! The prefilter's fingerprint search, 64 bytes a step: in one register on
//! CPUs with AVX-512 (F, BW and VBMI), in two halves with AVX2.
//!
//! [`Prefilter`](super::prefilter::Prefilter) looks for three-byte
//! fingerprints in any letter case. aho-corasick's Teddy does that with
//! AVX2, 32 bytes a step, and was a fifth of the command's samples at a 1%
//! match rate; no crate has a wider form. This is Teddy's idea at AVX-512
//! width; with AVX2 alone it is Teddy's width, but one search goes on past
//! each hit and needs no letter-case variants (Teddy is asked again after
//! each hit, and checks each variant it finds). Each fingerprint owns one
//! bit (a *bucket*). For each of its three bytes, two 16-entry tables
//! give, for a byte's low and for its high nybble, the buckets whose
//! fingerprint accepts that nybble there; a
//! byte's buckets at one place are the AND of its two lookups (one
//! `vpshufb` each). A fingerprint ends at byte `e` when its bit survives
//! the AND over `e-2`, `e-1` and `e`: one load a block, the classes of the
//! first two bytes carried into the next block by a cross-lane byte permute.
//!
//! Both spellings of a letter share the low nybble, so a bucket's tables
//! accept exactly its fingerprint's case variants; with one fingerprint per
//! bucket a surviving bit is a hit, not a maybe. Up to eight fingerprints
//! have a bucket each (one byte of buckets). Longer pattern lists share the
//! buckets, eight or sixteen in two sets of tables looked up in the same
//! pass: a bucket's tables then accept any mix of its fingerprints'
//! nybbles, so a surviving bit is a maybe, which the caller checks against
//! the bucket's fingerprints ([`Tables::accepted`] lets it weigh how often a
//! bucket will be wrong before it chooses one).

/// Fingerprint length: the prefilter's (the search's three classes a
/// block are written for it).
use super::prefilter::FINGERPRINT as LEN;

/// Most buckets: two sets of eight, each a byte of bucket bits.
pub const MAX_BUCKETS: usize = 16;

/// The nybble tables of up to sixteen buckets of fingerprints, eight to a
/// set: bucket `j` is bit `j % 8` of set `j / 8`.
#[derive(Debug, Clone)]
pub struct Tables {
    /// `lo[s][i][n]`: the buckets of set `s` whose fingerprint's byte `i`
    /// has low nybble `n`.
    lo: [[[u8; 16]; LEN]; 2],
    /// `hi[s][i][n]`: the same for high nybbles, both letter cases.
    hi: [[[u8; 16]; LEN]; 2],
    /// Sets in use: 1 for up to eight buckets, 2 for more (each set costs
    /// the search its own lookups; x86_64 only).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    sets: usize,
    /// The CPU runs [`find_avx512`]; otherwise [`find_avx2`] (x86_64
    /// only).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    avx512: bool,
}

impl Tables {
    /// Tables for `buckets` of fingerprints (lowercased), the fingerprints
    /// of `buckets[j]` in bucket `j`; `None` for more than [`MAX_BUCKETS`],
    /// or when this CPU cannot run the search.
    pub fn new(buckets: &[Vec<[u8; LEN]>]) -> Option<Self> {
        if buckets.len() > MAX_BUCKETS || !Self::runs_here() {
            return None;
        }
        let (avx512, _) = available();
        Some(Tables {
            avx512,
            ..Self::of(buckets)
        })
    }

    /// Whether this CPU can run the search: a list too long for Teddy is
    /// only given shared buckets where it can.
    pub fn runs_here() -> bool {
        let (avx512, avx2) = available();
        avx512 || avx2
    }

    /// The tables, whatever the CPU (at most [`MAX_BUCKETS`] buckets): not
    /// for [`Self::find`], which runs the search this CPU was seen to have.
    fn of(buckets: &[Vec<[u8; LEN]>]) -> Self {
        let mut t = Tables {
            lo: [[[0; 16]; LEN]; 2],
            hi: [[[0; 16]; LEN]; 2],
            sets: if buckets.len() > 8 { 2 } else { 1 },
            avx512: false,
        };
        for (j, bucket) in buckets.iter().enumerate().take(MAX_BUCKETS) {
            let (set, bit) = (j / 8, 1 << (j % 8));
            for fp in bucket {
                for (i, &b) in fp.iter().enumerate() {
                    for spelling in [b.to_ascii_lowercase(), b.to_ascii_uppercase()] {
                        t.lo[set][i][usize::from(spelling & 15)] |= bit;
                        t.hi[set][i][usize::from(spelling >> 4)] |= bit;
                    }
                }
            }
        }
        t
    }

    /// The buckets that accept byte `b` at place `i` of a fingerprint
    /// (bucket `j` is bit `j`): with shared buckets more than their
    /// fingerprints' own bytes.
    fn accepts(&self, i: usize, b: u8) -> u16 {
        let (lo, hi) = (usize::from(b & 15), usize::from(b >> 4));
        u16::from(self.lo[0][i][lo] & self.hi[0][i][hi]) | u16::from(self.lo[1][i][lo] & self.hi[1][i][hi]) << 8
    }

    /// Which bytes one bucket holding `fingerprints` accepts at each place
    /// (`[i][b]`), whatever the CPU: what the prefilter weighs before it
    /// chooses a bucket.
    pub fn accepted(fingerprints: &[[u8; LEN]]) -> [[bool; 256]; LEN] {
        let t = Self::of(&[fingerprints.to_vec()]);
        std::array::from_fn(|i| std::array::from_fn(|b| t.accepts(i, b as u8) != 0))
    }

    /// The first place `p` from `at` on where a fingerprint starts in `hay`
    /// (its three bytes inside `hay`) and `hit(p, bucket)` says yes; `hit`
    /// is asked about every fingerprint found before, in order.
    pub fn find(&self, hay: &[u8], at: usize, hit: impl FnMut(usize, usize) -> bool) -> Option<usize> {
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: `Tables::new` makes tables only where `available` saw
            // the features `find_avx512` is compiled for (when `avx512`) or
            // those of `find_avx2`.
            unsafe {
                if self.avx512 {
                    if self.sets == 1 {
                        find_avx512::<1>(self, hay, at, hit)
                    } else {
                        find_avx512::<2>(self, hay, at, hit)
                    }
                } else if self.sets == 1 {
                    find_avx2::<1>(self, hay, at, hit)
                } else {
                    find_avx2::<2>(self, hay, at, hit)
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            find_scalar(self, hay, at, hit)
        }
    }
}

/// Whether the CPU can run [`find_avx512`], and [`find_avx2`].
fn available() -> (bool, bool) {
    #[cfg(target_arch = "x86_64")]
    {
        let avx512 = is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vbmi");
        (avx512, is_x86_feature_detected!("avx2"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        (false, false)
    }
}

/// The buckets whose fingerprint starts at `hay[p..]`, byte by byte.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn buckets_at(t: &Tables, hay: &[u8], p: usize) -> u16 {
    (0..LEN).fold(!0, |acc, i| acc & t.accepts(i, hay[p + i]))
}

/// [`Tables::find`] a byte at a time: the tests' oracle, and the search on
/// other architectures (where [`Tables::new`] makes none yet).
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn find_scalar(t: &Tables, hay: &[u8], at: usize, mut hit: impl FnMut(usize, usize) -> bool) -> Option<usize> {
    (at..hay.len().saturating_sub(LEN - 1)).find(|&p| {
        let mut buckets = buckets_at(t, hay, p);
        while buckets != 0 {
            if hit(p, buckets.trailing_zeros() as usize) {
                return true;
            }
            buckets &= buckets - 1;
        }
        false
    })
}

/// Byte `k` of a permute by this index takes byte `k - by` of the block,
/// or byte `64 + k - by` of the block before for `k < by`.
#[cfg(target_arch = "x86_64")]
const fn shifted_by(by: usize) -> [u8; 64] {
    let mut idx = [0u8; 64];
    let mut k = 0;
    while k < 64 {
        idx[k] = (64 + k - by) as u8;
        k += 1;
    }
    idx
}

/// Permute indexes: the classes of each byte's predecessor, and of the one
/// before it.
#[cfg(target_arch = "x86_64")]
const BY_1: [u8; 64] = shifted_by(1);
#[cfg(target_arch = "x86_64")]
const BY_2: [u8; 64] = shifted_by(2);

/// Ask `hit` about the fingerprints ending at `base + k` for each bit `k`
/// of `mask`, in order, bucket by bucket (`each[s][k]`, set by set): the
/// wide searches' answer for one 64-byte block; the place `hit` says yes to.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn report_block<const SETS: usize>(
    base: usize,
    each: &[[u8; 64]; SETS],
    mut mask: u64,
    hit: &mut impl FnMut(usize, usize) -> bool,
) -> Option<usize> {
    while mask != 0 {
        let k = mask.trailing_zeros() as usize;
        let start = base + k - (LEN - 1);
        for (s, set) in each.iter().enumerate() {
            let mut b = set[k];
            while b != 0 {
                if hit(start, 8 * s + b.trailing_zeros() as usize) {
                    return Some(start);
                }
                b &= b - 1;
            }
        }
        mask &= mask - 1;
    }
    None
}

/// [`Tables::find`] 64 places a step, for `SETS` sets of eight buckets.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
unsafe fn find_avx512<const SETS: usize>(
    t: &Tables,
    hay: &[u8],
    at: usize,
    mut hit: impl FnMut(usize, usize) -> bool,
) -> Option<usize> {
    use std::arch::x86_64::{
        __m512i, _mm512_and_si512, _mm512_broadcast_i32x4, _mm512_loadu_si512, _mm512_permutex2var_epi8,
        _mm512_set1_epi8, _mm512_setzero_si512, _mm512_shuffle_epi8, _mm512_srli_epi16, _mm512_storeu_si512,
        _mm512_test_epi8_mask, _mm_loadu_si128,
    };
    if at >= hay.len() {
        return None;
    }
    // SAFETY (every load and store below): each reads or writes 16 or 64
    // bytes of a 16- or 64-byte array, or 64 bytes of `hay` at a place the
    // loop's bound keeps 64 bytes before its end.
    let load64 = |bytes: *const u8| unsafe { _mm512_loadu_si512(bytes.cast()) };
    let table = |row: &[u8; 16]| unsafe { _mm512_broadcast_i32x4(_mm_loadu_si128(row.as_ptr().cast())) };
    let lo: [[__m512i; LEN]; SETS] = std::array::from_fn(|s| std::array::from_fn(|i| table(&t.lo[s][i])));
    let hi: [[__m512i; LEN]; SETS] = std::array::from_fn(|s| std::array::from_fn(|i| table(&t.hi[s][i])));
    let (by_1, by_2) = (load64(BY_1.as_ptr()), load64(BY_2.as_ptr()));
    let nybble = _mm512_set1_epi8(15);
    // The block's low and high nybbles, split once for every set.
    let nybbles = |v: __m512i| {
        (
            _mm512_and_si512(v, nybble),
            _mm512_and_si512(_mm512_srli_epi16::<4>(v), nybble),
        )
    };
    let class = |(l, h): (__m512i, __m512i), s: usize, i: usize| {
        _mm512_and_si512(_mm512_shuffle_epi8(lo[s][i], l), _mm512_shuffle_epi8(hi[s][i], h))
    };
    // The classes of the block before, set by set: none before `at`.
    let mut before = [(_mm512_setzero_si512(), _mm512_setzero_si512()); SETS];
    // The buckets of each set of the fingerprints ending at each byte of the
    // block `v`, and their bit mask.
    let mut ends = |v: __m512i| {
        let n = nybbles(v);
        let mut mask = 0u64;
        let buckets: [__m512i; SETS] = std::array::from_fn(|s| {
            let (c0, c1, c2) = (class(n, s, 0), class(n, s, 1), class(n, s, 2));
            let first = _mm512_permutex2var_epi8(before[s].0, by_2, c0);
            let second = _mm512_permutex2var_epi8(before[s].1, by_1, c1);
            before[s] = (c0, c1);
            let b = _mm512_and_si512(_mm512_and_si512(first, second), c2);
            mask |= _mm512_test_epi8_mask(b, b);
            b
        });
        (buckets, mask)
    };
    // The block's buckets, stored, asked about ([`report_block`]).
    let mut report = |base: usize, buckets: [__m512i; SETS], mask: u64| {
        let mut each = [[0u8; 64]; SETS];
        for (set, b) in each.iter_mut().zip(buckets) {
            unsafe { _mm512_storeu_si512(set.as_mut_ptr().cast(), b) };
        }
        report_block(base, &each, mask, &mut hit)
    };
    let mut p = at;
    while hay.len() - p >= 64 {
        let (buckets, mask) = ends(load64(hay[p..].as_ptr()));
        if mask != 0 {
            if let Some(found) = report(p, buckets, mask) {
                return Some(found);
            }
        }
        p += 64;
    }
    // The last, short block, zero-padded: only ends inside `hay` count.
    let rest = hay.len() - p;
    if rest == 0 {
        return None;
    }
    let mut pad = [0u8; 64];
    pad[..rest].copy_from_slice(&hay[p..]);
    let (buckets, mask) = ends(load64(pad.as_ptr()));
    report(p, buckets, mask & (u64::MAX >> (64 - rest)))
}

/// [`Tables::find`] 64 places a step in two 32-byte halves, with AVX2,
/// for `SETS` sets of eight buckets: the same classes, each byte's
/// predecessors' taken from the half before by a lane-crossing align. (One half a step, its mask tested each time,
/// took 1.06-1.07x as long over the bench streams.)
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn find_avx2<const SETS: usize>(
    t: &Tables,
    hay: &[u8],
    at: usize,
    mut hit: impl FnMut(usize, usize) -> bool,
) -> Option<usize> {
    use std::arch::x86_64::{
        __m256i, _mm256_alignr_epi8, _mm256_and_si256, _mm256_broadcastsi128_si256, _mm256_cmpeq_epi8,
        _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_permute2x128_si256, _mm256_set1_epi8, _mm256_setzero_si256,
        _mm256_shuffle_epi8, _mm256_srli_epi16, _mm256_storeu_si256, _mm_loadu_si128,
    };
    if at >= hay.len() {
        return None;
    }
    // SAFETY (every load and store below): each reads or writes 16 or 32
    // bytes of a 16-, 32- or 64-byte array, or 64 bytes of `hay` at a place
    // the loop's bound keeps 64 bytes before its end.
    let load32 = |bytes: *const u8| unsafe { _mm256_loadu_si256(bytes.cast()) };
    let table = |row: &[u8; 16]| unsafe { _mm256_broadcastsi128_si256(_mm_loadu_si128(row.as_ptr().cast())) };
    let lo: [[__m256i; LEN]; SETS] = std::array::from_fn(|s| std::array::from_fn(|i| table(&t.lo[s][i])));
    let hi: [[__m256i; LEN]; SETS] = std::array::from_fn(|s| std::array::from_fn(|i| table(&t.hi[s][i])));
    let nybble = _mm256_set1_epi8(15);
    let class = |v: __m256i, s: usize, i: usize| {
        let l = _mm256_shuffle_epi8(lo[s][i], _mm256_and_si256(v, nybble));
        let h = _mm256_shuffle_epi8(hi[s][i], _mm256_and_si256(_mm256_srli_epi16::<4>(v), nybble));
        _mm256_and_si256(l, h)
    };
    // The classes of the block before, set by set: none before `at`.
    let mut before = [(_mm256_setzero_si256(), _mm256_setzero_si256()); SETS];
    // The buckets of set `s` of the fingerprints ending at each byte of the
    // block `v`: byte `k` of `_mm256_alignr_epi8::<16 - by>(c, joined)` is
    // the class of byte `k - by` (of the block before for `k < by`), where
    // `joined` holds the block before's high lane and this block's low lane.
    let mut ends = |v: __m256i, s: usize| {
        let (c0, c1, c2) = (class(v, s, 0), class(v, s, 1), class(v, s, 2));
        let (before_0, before_1) = before[s];
        let first = _mm256_alignr_epi8::<14>(c0, _mm256_permute2x128_si256::<0x21>(before_0, c0));
        let second = _mm256_alignr_epi8::<15>(c1, _mm256_permute2x128_si256::<0x21>(before_1, c1));
        before[s] = (c0, c1);
        _mm256_and_si256(_mm256_and_si256(first, second), c2)
    };
    let nonzero = |buckets: __m256i| !(_mm256_movemask_epi8(_mm256_cmpeq_epi8(buckets, _mm256_setzero_si256())) as u32);
    // The buckets of the 64 places from `block`, in two halves a set, and
    // their bit mask: one test a block, as with AVX-512.
    let mut ends64 = |block: *const u8| {
        let (low, high) = (load32(block), load32(block.wrapping_add(32)));
        let mut mask = 0u64;
        let halves: [(__m256i, __m256i); SETS] = std::array::from_fn(|s| {
            let (l, h) = (ends(low, s), ends(high, s));
            mask |= u64::from(nonzero(l)) | u64::from(nonzero(h)) << 32;
            (l, h)
        });
        (halves, mask)
    };
    // The block's buckets, stored, asked about ([`report_block`]).
    let mut report = |base: usize, halves: [(__m256i, __m256i); SETS], mask: u64| {
        let mut each = [[0u8; 64]; SETS];
        for (set, (low, high)) in each.iter_mut().zip(halves) {
            unsafe {
                _mm256_storeu_si256(set.as_mut_ptr().cast(), low);
                _mm256_storeu_si256(set.as_mut_ptr().add(32).cast(), high);
            }
        }
        report_block(base, &each, mask, &mut hit)
    };
    let mut p = at;
    while hay.len() - p >= 64 {
        let (halves, mask) = ends64(hay[p..].as_ptr());
        if mask != 0 {
            if let Some(found) = report(p, halves, mask) {
                return Some(found);
            }
        }
        p += 64;
    }
    // The last, short block, zero-padded: only ends inside `hay` count.
    let rest = hay.len() - p;
    if rest == 0 {
        return None;
    }
    let mut pad = [0u8; 64];
    pad[..rest].copy_from_slice(&hay[p..]);
    let (halves, mask) = ends64(pad.as_ptr());
    report(p, halves, mask & (u64::MAX >> (64 - rest)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The tables accept exactly each fingerprint's spellings, in its own
    /// bucket, in both sets of eight: every three bytes of an alphabet of
    /// near misses.
    #[test]
    fn buckets_hold_exactly_their_fingerprints_spellings() {
        let fps = [
            *b"pas", *b"k.i", *b"x0b", *b"qa.", *b"@`p", *b"bsk", *b"iix", *b"0.x", *b"kpa", *b"s@q", *b"b.b",
        ];
        let t = Tables::of(&fps.map(|fp| vec![fp]));
        let alphabet = b"pPaAsSkK.iIxX0bB@`qQ\x10\x0e\xf0";
        for &a in alphabet {
            for &b in alphabet {
                for &c in alphabet {
                    let hay = [a, b, c];
                    let want = fps
                        .iter()
                        .enumerate()
                        .filter(|(_, fp)| hay.eq_ignore_ascii_case(&fp[..]))
                        .fold(0u16, |acc, (j, _)| acc | 1 << j);
                    assert_eq!(buckets_at(&t, &hay, 0), want, "{hay:?}");
                }
            }
        }
    }

    /// Sixteen buckets (two sets): each fingerprint found across every
    /// seam of the wide searches (a half, a block, a block's last bytes
    /// carried into the next), as the byte-at-a-time search finds it.
    #[test]
    fn two_sets_find_fingerprints_across_every_seam() {
        let fps: Vec<[u8; LEN]> = (0..16u8).map(|j| [b'a' + j, b'.', b'q' + j % 8]).collect();
        let t = Tables::of(&fps.iter().map(|&fp| vec![fp]).collect::<Vec<_>>());
        assert_eq!(t.sets, 2);
        let (avx512, avx2) = available();
        for (j, fp) in fps.iter().enumerate() {
            for at in (28..36).chain(60..68).chain(92..100).chain(124..130) {
                let mut hay = vec![b'x'; 140];
                hay[at..at + LEN].copy_from_slice(&fp.to_ascii_uppercase());
                let all = |wide: Option<bool>| {
                    let mut seen = Vec::new();
                    let hit = |p: usize, bucket: usize| {
                        seen.push((p, bucket));
                        false
                    };
                    match wide {
                        Some(avx512) => Tables { avx512, ..t.clone() }.find(&hay, 0, hit),
                        None => find_scalar(&t, &hay, 0, hit),
                    };
                    seen
                };
                assert_eq!(all(None), [(at, j)], "{fp:?} at {at}");
                for wide in [avx512.then_some(true), avx2.then_some(false)].into_iter().flatten() {
                    assert_eq!(all(Some(wide)), [(at, j)], "{fp:?} at {at}");
                }
            }
        }
    }

    proptest! {
        /// The search reports what the byte-at-a-time one does, in order,
        /// stops where the caller says yes, and finds nothing from a start
        /// at or past the end (where the loop's bound would wrap).
        #[test]
        fn wide_search_reports_as_the_scalar_one(
            fps in prop::collection::vec("[a-cA-C.0\\x00]{3}", 1..17),
            hay in prop::collection::vec(prop::sample::select(b"abcABC.0,\n\"x\0".to_vec()), 0..300),
            at in prop_oneof![0usize..310, Just(usize::MAX)],
            stop_after in 0usize..6,
            shared in prop::option::of(1usize..12),
        ) {
            let fps: Vec<[u8; LEN]> = fps
                .iter()
                .map(|f| f.to_ascii_lowercase().into_bytes().try_into().unwrap())
                .collect();
            // One bucket each, or shared round-robin among `shared` buckets
            // (past eight buckets, in two sets).
            let buckets: Vec<Vec<[u8; LEN]>> = match shared {
                None => fps.iter().map(|&fp| vec![fp]).collect(),
                Some(n) => (0..n).map(|j| fps.iter().skip(j).step_by(n).copied().collect()).collect(),
            };
            let t = Tables::of(&buckets);
            let run = |wide: Option<bool>| {
                let mut seen = Vec::new();
                let hit = |p: usize, bucket: usize| {
                    seen.push((p, bucket));
                    seen.len() > stop_after
                };
                let found = match wide {
                    Some(avx512) => Tables { avx512, ..t.clone() }.find(&hay, at, hit),
                    None => find_scalar(&t, &hay, at, hit),
                };
                (found, seen)
            };
            let (scalar_found, scalar_seen) = run(None);
            // Each wide search this CPU can run (none without AVX2: Teddy serves).
            let (avx512, avx2) = available();
            for wide in [avx512.then_some(true), avx2.then_some(false)].into_iter().flatten() {
                let (found, seen) = run(Some(wide));
                prop_assert_eq!(found, scalar_found, "AVX-512: {}", wide);
                prop_assert_eq!(&seen, &scalar_seen, "AVX-512: {}", wide);
            }
            for &(p, bucket) in &scalar_seen {
                prop_assert!(p >= at);
                if shared.is_none() {
                    prop_assert!(hay[p..p + LEN].eq_ignore_ascii_case(&fps[bucket]));
                }
            }
            // Every fingerprint place before the search stopped is asked
            // about in its bucket, shared or not.
            let stopped = scalar_found.unwrap_or(usize::MAX);
            for (j, bucket) in buckets.iter().enumerate() {
                for fp in bucket {
                    for p in at..hay.len().saturating_sub(LEN - 1) {
                        if p < stopped && hay[p..p + LEN].eq_ignore_ascii_case(fp) {
                            prop_assert!(scalar_seen.contains(&(p, j)), "{:?} at {}", fp, p);
                        }
                    }
                }
            }
        }
    }
}
