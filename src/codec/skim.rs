//! Skimming a body: finding where each row ends, and that it is well formed,
//! 64 bytes at a time, without tokenising it.
//!
//! Most rows of a search cannot match (a 1% match rate is usual), and the
//! [`Prefilter`](crate::engine::prefilter::Prefilter) tells which rows might.
//! The others only need to be counted — and checked, since a malformed row
//! must still be an error — which [`skim`] does far cheaper than the
//! tokeniser: each 64-byte block is classified into bit masks of its quotes,
//! commas and LFs (SSE2, AVX2 or AVX-512 on x86_64, NEON on aarch64), and the quoted
//! regions follow from a prefix XOR of the quote mask (a position is inside
//! quotes exactly when an odd number of quotes precede it, doubled quotes
//! included; one carry-less multiplication with AVX2). A row ends at an LF
//! outside quotes; its field count is the commas outside quotes, plus one.
//!
//! RFC 4180 is checked on the masks: a quote that opens a quoted region
//! must start a cell (follow a comma, an LF, the row start, or — for a
//! doubled quote — a quote), and a quote that closes one must be followed by
//! a comma, an LF or a quote. (A CRLF after a closing quote is well formed,
//! but splunkd ends rows with LF alone, so such a row is simply left to the
//! tokeniser.) Whenever a row breaks a rule, or has
//! the wrong field count, skimming stops at its start and the tokeniser
//! takes that row, so every error is reported by the one code that words
//! them; the checks here only have to be strict enough never to pass a row
//! the tokeniser would refuse.
//!
//! The reader thread skims ahead of the decoder with [`skim_runs`], which
//! goes on past the rows [`skim`] would stop at, recording each stretch it
//! passed over as a [`Run`]; [`odd_quotes`] carries the quote state over
//! the bytes it leaves to the decoder.

use std::ops::ControlFlow;

/// The classes of one 64-byte block: bit `i` for byte `i`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Masks {
    quote: u64,
    comma: u64,
    lf: u64,
}

/// A way of classifying a block: the code [`skim`] is compiled with.
trait Classify {
    fn classify(block: &[u8; 64]) -> Masks;

    /// Bit `i` set when an odd number of bits `0..=i` of `x` are set.
    #[inline(always)]
    fn prefix_xor(x: u64) -> u64 {
        prefix_xor(x)
    }
}

/// SSE2, in every x86_64 CPU.
#[cfg(target_arch = "x86_64")]
struct Sse2;

#[cfg(target_arch = "x86_64")]
impl Classify for Sse2 {
    #[inline(always)]
    fn classify(block: &[u8; 64]) -> Masks {
        use std::arch::x86_64::{__m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8};
        let mut m = Masks::default();
        for i in 0..4 {
            // SAFETY: SSE2 is part of the x86_64 baseline, and the 16 bytes
            // read lie inside `block` (an unaligned load is allowed).
            unsafe {
                let v = _mm_loadu_si128(block.as_ptr().add(16 * i).cast::<__m128i>());
                let bits =
                    |c: u8| (_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(c as i8))) as u16 as u64) << (16 * i);
                m.quote |= bits(b'"');
                m.comma |= bits(b',');
                m.lf |= bits(b'\n');
            }
        }
        m
    }
}

/// AVX2, checked for at run time: half the instructions of SSE2.
#[cfg(target_arch = "x86_64")]
struct Avx2;

#[cfg(target_arch = "x86_64")]
impl Classify for Avx2 {
    /// Only ever inlined into [`skim_avx2`], which enables AVX2.
    #[inline(always)]
    fn classify(block: &[u8; 64]) -> Masks {
        use std::arch::x86_64::{
            __m256i, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_set1_epi8,
        };
        let mut m = Masks::default();
        for i in 0..2 {
            // SAFETY: reached only through `skim_avx2`, called after the CPU
            // was seen to have AVX2; the 32 bytes read lie inside `block`.
            unsafe {
                let v = _mm256_loadu_si256(block.as_ptr().add(32 * i).cast::<__m256i>());
                let bits = |c: u8| {
                    (_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, _mm256_set1_epi8(c as i8))) as u32 as u64) << (32 * i)
                };
                m.quote |= bits(b'"');
                m.comma |= bits(b',');
                m.lf |= bits(b'\n');
            }
        }
        m
    }

    /// A carry-less multiplication by all ones is the prefix XOR in one
    /// instruction (PCLMULQDQ, checked for with AVX2).
    #[inline(always)]
    fn prefix_xor(x: u64) -> u64 {
        use std::arch::x86_64::{_mm_clmulepi64_si128, _mm_cvtsi128_si64, _mm_set1_epi8, _mm_set_epi64x};
        // SAFETY: reached only through the `_avx2` and `_avx512` entries,
        // called after the CPU was seen to have PCLMULQDQ; no memory is
        // touched.
        unsafe {
            _mm_cvtsi128_si64(_mm_clmulepi64_si128::<0>(
                _mm_set_epi64x(0, x as i64),
                _mm_set1_epi8(-1),
            )) as u64
        }
    }
}

/// AVX-512 (BW), checked for at run time: one compare per class gives a
/// block's whole mask, against two compares, two moves, a shift and an OR
/// with AVX2.
#[cfg(target_arch = "x86_64")]
struct Avx512;

#[cfg(target_arch = "x86_64")]
impl Classify for Avx512 {
    /// Only ever inlined into the `_avx512` entries, which enable AVX-512.
    #[inline(always)]
    fn classify(block: &[u8; 64]) -> Masks {
        use std::arch::x86_64::{_mm512_cmpeq_epi8_mask, _mm512_loadu_si512, _mm512_set1_epi8};
        // SAFETY: reached only through the `_avx512` entries, called after
        // the CPU was seen to have AVX-512 F and BW; the 64 bytes read are
        // `block` (an unaligned load is allowed).
        unsafe {
            let v = _mm512_loadu_si512(block.as_ptr().cast());
            Masks {
                quote: _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(b'"' as i8)),
                comma: _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(b',' as i8)),
                lf: _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(b'\n' as i8)),
            }
        }
    }

    /// As AVX2's: the AVX-512 entries enable PCLMULQDQ too.
    #[inline(always)]
    fn prefix_xor(x: u64) -> u64 {
        Avx2::prefix_xor(x)
    }
}

/// NEON, in every aarch64 CPU.
#[cfg(target_arch = "aarch64")]
struct Neon;

#[cfg(target_arch = "aarch64")]
impl Classify for Neon {
    #[inline(always)]
    fn classify(block: &[u8; 64]) -> Masks {
        use std::arch::aarch64::{
            uint8x16_t, vandq_u8, vceqq_u8, vdupq_n_u8, vgetq_lane_u64, vld1q_u8, vpaddq_u8, vreinterpretq_u64_u8,
        };
        // SAFETY: NEON is part of the aarch64 baseline, and the four 16-byte
        // loads lie inside `block`.
        unsafe {
            const WEIGHTS: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];
            let weights = vld1q_u8(WEIGHTS.as_ptr());
            let v: [uint8x16_t; 4] = std::array::from_fn(|i| vld1q_u8(block.as_ptr().add(16 * i)));
            // One bit per byte: weight each lane's match, then add neighbours
            // pairwise until each byte of the first 64 bits holds eight lanes.
            let bits = |c: u8| {
                let c = vdupq_n_u8(c);
                let t: [uint8x16_t; 4] = std::array::from_fn(|i| vandq_u8(vceqq_u8(v[i], c), weights));
                let s = vpaddq_u8(vpaddq_u8(t[0], t[1]), vpaddq_u8(t[2], t[3]));
                vgetq_lane_u64::<0>(vreinterpretq_u64_u8(vpaddq_u8(s, s)))
            };
            Masks {
                quote: bits(b'"'),
                comma: bits(b','),
                lf: bits(b'\n'),
            }
        }
    }
}

/// Byte at a time: other architectures, and the tests' oracle.
#[cfg_attr(any(target_arch = "x86_64", target_arch = "aarch64"), allow(dead_code))]
struct Scalar;

impl Classify for Scalar {
    #[inline(always)]
    fn classify(block: &[u8; 64]) -> Masks {
        classify_scalar(block)
    }
}

/// The byte-at-a-time classification: the fallback for other architectures
/// and the oracle for the SIMD ones.
#[cfg_attr(any(target_arch = "x86_64", target_arch = "aarch64"), allow(dead_code))]
fn classify_scalar(block: &[u8; 64]) -> Masks {
    let mut m = Masks::default();
    for (i, &b) in block.iter().enumerate() {
        let bit = 1u64 << i;
        match b {
            b'"' => m.quote |= bit,
            b',' => m.comma |= bit,
            b'\n' => m.lf |= bit,
            _ => {}
        }
    }
    m
}

/// Bit `i` set when an odd number of bits `0..=i` of `x` are set.
#[inline(always)]
fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

/// Call `$with` compiled for this CPU's [`Classify`]: `$avx512` (the same,
/// compiled for AVX-512 BW) on x86_64 CPUs that have it, else `$avx2`
/// (compiled for AVX2 with POPCNT, BMI1 and PCLMULQDQ) on those that have
/// them: every public entry of the skimmer dispatches this way.
macro_rules! by_cpu {
    ($avx512:ident, $avx2:ident, $with:ident($($arg:expr),*)) => {{
        #[cfg(target_arch = "x86_64")]
        {
            if has_avx2() {
                if has_avx512() {
                    // SAFETY: the CPU has the features the function is compiled for.
                    return unsafe { $avx512($($arg),*) };
                }
                // SAFETY: the CPU has the features the function is compiled for.
                return unsafe { $avx2($($arg),*) };
            }
            $with::<Sse2>($($arg),*)
        }
        #[cfg(target_arch = "aarch64")]
        {
            $with::<Neon>($($arg),*)
        }
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        {
            $with::<Scalar>($($arg),*)
        }
    }};
}

/// Define `$avx2` and `$avx512`: `$with` compiled for AVX2 (with POPCNT
/// and BMI1 for counting and walking the masks, PCLMULQDQ for the prefix
/// XOR) and for AVX-512 BW on top of those. Only [`by_cpu!`] calls them,
/// after the CPU was seen to have the features.
macro_rules! compiled_for_x86 {
    ($avx2:ident, $avx512:ident, $with:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,popcnt,bmi1,pclmulqdq")]
        unsafe fn $avx2($($arg: $ty),*) -> $ret {
            $with::<Avx2>($($arg),*)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f,avx512bw,avx2,popcnt,bmi1,pclmulqdq")]
        unsafe fn $avx512($($arg: $ty),*) -> $ret {
            $with::<Avx512>($($arg),*)
        }
    };
}

/// The CPU has what the `_avx2` entries are compiled for.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn has_avx2() -> bool {
    is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("popcnt")
        && is_x86_feature_detected!("bmi1")
        && is_x86_feature_detected!("pclmulqdq")
}

/// The CPU has what the `_avx512` entries are compiled for, on top of
/// [`has_avx2`]'s features.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn has_avx512() -> bool {
    is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw")
}

/// What [`skim`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Skimmed {
    /// Where it stopped: the start of the first row it left to the
    /// tokeniser (a possible match, a row it could not vouch for, or the
    /// unfinished last row of `data`).
    pub next: usize,
    /// Rows passed over (blank lines are not rows).
    pub rows: u64,
}

/// Pass over the complete rows of `data` from `start` (a row start) that
/// have `fields` fields, follow RFC 4180, and hold no position `candidate`
/// names; stop at the first other row. `candidate(from)` gives the first
/// possible-match position at or after `from` (`usize::MAX` for none); it is
/// only asked for positions at row starts, in increasing order.
pub fn skim(data: &[u8], start: usize, fields: usize, candidate: impl FnMut(usize) -> usize) -> Skimmed {
    by_cpu!(skim_avx512, skim_avx2, skim_with(data, start, fields, candidate))
}

/// Whether `data` holds an odd number of double quotes: the quote state the
/// reader thread carries past the bytes it does not skim, found from the
/// same block classes as the skim's (a quote mask per 64 bytes, folded by
/// XOR, counted once).
pub fn odd_quotes(data: &[u8]) -> bool {
    by_cpu!(odd_quotes_avx512, odd_quotes_avx2, odd_quotes_with(data))
}

compiled_for_x86!(odd_quotes_avx2, odd_quotes_avx512, odd_quotes_with(data: &[u8]) -> bool);

#[inline(always)]
fn odd_quotes_with<C: Classify>(data: &[u8]) -> bool {
    let mut blocks = data.chunks_exact(64);
    let mut folded = 0u64;
    for block in &mut blocks {
        folded ^= C::classify(block.try_into().expect("64 bytes")).quote;
    }
    let tail = blocks.remainder().iter().filter(|&&b| b == b'"').count();
    (folded.count_ones() as usize + tail) % 2 == 1
}

compiled_for_x86!(
    skim_avx2,
    skim_avx512,
    skim_with(data: &[u8], start: usize, fields: usize, candidate: impl FnMut(usize) -> usize) -> Skimmed
);

/// What one block says about row structure, once its carries are applied.
struct Structure {
    /// Bytes that break RFC 4180 as [`skim`] checks it (within the data).
    broken: u64,
    /// Commas outside quotes.
    comma_out: u64,
    /// LFs outside quotes (within the data): row ends.
    ends: u64,
    /// Quotes right after a closing quote: a doubled quote inside a quoted
    /// value (within the data), which [`cells`] leaves to the tokeniser.
    doubled: u64,
}

/// The state one block hands the next.
struct Carries {
    /// All ones inside a quoted region.
    in_quotes: u64,
    /// Bit 0: the previous byte lets a quote open (row start: yes).
    prev_delim: u64,
    /// Bit 0: the previous byte closed a quoted region.
    after_close: u64,
}

impl Carries {
    /// At a row start, or at any byte whose quote state is `quoted`.
    fn at(quoted: bool) -> Self {
        Carries {
            in_quotes: if quoted { !0 } else { 0 },
            prev_delim: 1,
            after_close: 0,
        }
    }
}

/// Classify the block of `data` at `base` (zero-padded past the end) and
/// derive its row structure, carrying quote state in and out.
#[inline(always)]
fn structure<C: Classify>(data: &[u8], base: usize, carries: &mut Carries, block: &mut [u8; 64]) -> Structure {
    match data.get(base..base + 64) {
        // Whole blocks (all but the last) apart, so that their masks need
        // no trimming.
        Some(whole) => derive::<C>(C::classify(whole.try_into().expect("64 bytes")), !0, carries),
        None => {
            let len = data.len() - base;
            block[..len].copy_from_slice(&data[base..]);
            block[len..].fill(0);
            derive::<C>(C::classify(block), (1u64 << len) - 1, carries)
        }
    }
}

/// [`structure`] from a block's classes, `valid` its bits within the data.
#[inline(always)]
fn derive<C: Classify>(m: Masks, valid: u64, carries: &mut Carries) -> Structure {
    let inside = C::prefix_xor(m.quote) ^ carries.in_quotes;
    carries.in_quotes = 0u64.wrapping_sub(inside >> 63);
    let opens = m.quote & inside;
    let closes = m.quote & !inside;
    let delims = m.comma | m.lf | m.quote;
    let may_open = (delims << 1) | carries.prev_delim;
    carries.prev_delim = delims >> 63;
    let follows_close = (closes << 1) | carries.after_close;
    carries.after_close = closes >> 63;
    Structure {
        broken: ((opens & !may_open) | (follows_close & !delims)) & valid,
        comma_out: m.comma & !inside,
        ends: m.lf & !inside & valid,
        doubled: follows_close & m.quote & valid,
    }
}

/// The blocks of `data` from `start` (a byte whose quote state is
/// `quoted`), each with its position and row structure, carrying the quote
/// state from block to block: [`cells`]' walk over one record, a few blocks
/// (the walks over many rows take a [`batch`] at a time).
struct Blocks<'a, C> {
    data: &'a [u8],
    base: usize,
    carries: Carries,
    /// The last, short block, zero-padded.
    block: [u8; 64],
    classify: std::marker::PhantomData<C>,
}

impl<'a, C: Classify> Blocks<'a, C> {
    #[inline(always)]
    fn new(data: &'a [u8], start: usize, quoted: bool) -> Self {
        Blocks {
            data,
            base: start,
            carries: Carries::at(quoted),
            block: [0u8; 64],
            classify: std::marker::PhantomData,
        }
    }
}

impl<C: Classify> Iterator for Blocks<'_, C> {
    type Item = (usize, Structure);

    #[inline(always)]
    fn next(&mut self) -> Option<(usize, Structure)> {
        let base = self.base;
        if base >= self.data.len() {
            return None;
        }
        self.base += 64;
        Some((
            base,
            structure::<C>(self.data, base, &mut self.carries, &mut self.block),
        ))
    }
}

/// What the row walks ([`skim`], [`skim_runs`]) read of a batch of
/// blocks' [`Structure`]s, field by field.
#[derive(Debug, Default, Clone, Copy)]
struct Batch {
    broken: [u64; BATCH],
    comma_out: [u64; BATCH],
    ends: [u64; BATCH],
}

impl Batch {
    #[inline(always)]
    fn set(&mut self, i: usize, s: Structure) {
        self.broken[i] = s.broken;
        self.comma_out[i] = s.comma_out;
        self.ends[i] = s.ends;
    }
}

/// Blocks classified at a time by [`batch`].
const BATCH: usize = 8;

/// Classify the blocks of `data` from `base` into `out`, [`BATCH`] of them
/// (fewer at the end of the data), carrying quote state in `carries`, and
/// return how many. The row walks classify a batch ahead of walking it: in
/// one loop with the walk, the carries went through memory and the walk's
/// branches stalled the classification; apart, the blocks of a batch are
/// classified side by side (a fifth faster over a whole body).
#[inline(always)]
fn batch<C: Classify>(data: &[u8], base: usize, carries: &mut Carries, out: &mut Batch, block: &mut [u8; 64]) -> usize {
    if let Some(whole) = data.get(base..base + 64 * BATCH) {
        for i in 0..BATCH {
            let b: &[u8; 64] = whole[64 * i..64 * i + 64].try_into().expect("64 bytes");
            out.set(i, derive::<C>(C::classify(b), !0, carries));
        }
        BATCH
    } else {
        let n = data.len().saturating_sub(base).div_ceil(64).min(BATCH);
        for i in 0..n {
            out.set(i, structure::<C>(data, base + 64 * i, carries, block));
        }
        n
    }
}

/// Walk the blocks of `data` from `start` (a byte whose quote state is
/// `quoted`) a [`batch`] at a time: `each(base, broken, comma_out, ends)`
/// for every block at `base`, until it breaks. Returns whether the data
/// ends inside quotes (when walked to its end). The row walks' common loop.
#[inline(always)]
fn walk<C: Classify>(
    data: &[u8],
    start: usize,
    quoted: bool,
    mut each: impl FnMut(usize, u64, u64, u64) -> ControlFlow<()>,
) -> bool {
    let mut carries = Carries::at(quoted);
    let (mut masks, mut block) = (Batch::default(), [0u8; 64]);
    let mut first = start;
    while first < data.len() {
        let n = batch::<C>(data, first, &mut carries, &mut masks, &mut block);
        for i in 0..n {
            if each(first + 64 * i, masks.broken[i], masks.comma_out[i], masks.ends[i]).is_break() {
                return carries.in_quotes != 0;
            }
        }
        first += 64 * n;
    }
    carries.in_quotes != 0
}

#[inline(always)]
fn skim_with<C: Classify>(
    data: &[u8],
    start: usize,
    fields: usize,
    mut candidate: impl FnMut(usize) -> usize,
) -> Skimmed {
    let commas_wanted = fields.saturating_sub(1) as u64;
    let mut row_start = start;
    let mut rows = 0;
    let mut next_candidate = candidate(start);
    let mut commas = 0u64; // commas outside quotes in the current row, before this block
    walk::<C>(data, start, false, |base, broken, comma_out, mut ends| {
        // The block's bits from the current row's start on (a row never
        // starts inside a block it did not end the previous row in).
        let mut rest = !0u64;
        while ends != 0 {
            let end_bit = ends.trailing_zeros();
            let upto = u64::MAX >> (63 - end_bit); // bits 0..=end_bit
            let row_bits = rest & upto;
            let end = base + end_bit as usize; // the LF
            let blank = end == row_start || (end == row_start + 1 && data[row_start] == b'\r');
            if broken & row_bits != 0 {
                return ControlFlow::Break(());
            }
            if !blank {
                let row_commas = commas + u64::from((comma_out & row_bits).count_ones());
                if row_commas != commas_wanted || next_candidate <= end {
                    return ControlFlow::Break(());
                }
                rows += 1;
            }
            row_start = end + 1;
            if next_candidate < row_start {
                next_candidate = candidate(row_start);
            }
            commas = 0;
            rest = !upto;
            ends &= ends - 1;
        }
        if broken & rest != 0 {
            return ControlFlow::Break(());
        }
        commas += u64::from((comma_out & rest).count_ones());
        ControlFlow::Continue(())
    });
    // Stopped (at the start of a row it cannot vouch for) or at the end.
    Skimmed { next: row_start, rows }
}

/// Tokenise the record of `data` that starts at `start` from the block
/// classes, when it is plain: it ends at an LF (without a CR before it)
/// inside `data`, and it keeps RFC 4180 with no doubled quote in a quoted
/// value. Calls `cut` with the end of each cell in order (a comma's or the
/// LF's position, a quoted value's closing quote just before it) and
/// returns where the next record starts; `None` (some cells may have been
/// cut) for any other record, which the byte-at-a-time tokeniser then
/// takes, so that it alone words every error and undoubles every quote.
///
/// A matching row is tokenised once for its fields: from 64-byte masks its
/// twenty-odd cells cost a few instructions each, where a search per cell
/// costs a call and a set-up.
pub fn cells(data: &[u8], start: usize, cut: impl FnMut(usize)) -> Option<usize> {
    by_cpu!(cells_avx512, cells_avx2, cells_with(data, start, cut))
}

compiled_for_x86!(
    cells_avx2,
    cells_avx512,
    cells_with(data: &[u8], start: usize, cut: impl FnMut(usize)) -> Option<usize>
);

#[inline(always)]
fn cells_with<C: Classify>(data: &[u8], start: usize, mut cut: impl FnMut(usize)) -> Option<usize> {
    for (base, s) in Blocks::<C>::new(data, start, false) {
        // The block's bits up to the record's LF, if it is in this block.
        let upto = match s.ends {
            0 => !0,
            ends => ends ^ (ends - 1),
        };
        if (s.broken | s.doubled) & upto != 0 {
            return None;
        }
        let mut ends = (s.comma_out | s.ends) & upto;
        while ends != 0 {
            cut(base + ends.trailing_zeros() as usize);
            ends &= ends - 1;
        }
        if s.ends != 0 {
            let lf = base + s.ends.trailing_zeros() as usize;
            return (lf == start || data[lf - 1] != b'\r').then_some(lf + 1);
        }
    }
    None
}

/// A stretch of rows skimmed ahead: what [`skim`] from `from` would answer.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// A row start (just after an LF outside quotes).
    pub from: usize,
    /// Where [`skim`] from `from` stops.
    pub next: usize,
    /// Rows passed over.
    pub rows: u64,
    /// `next` starts a row [`skim`] refuses (the tokeniser's to take);
    /// otherwise the data ended there.
    pub refused: bool,
}

/// Skim `data` from `start`, any byte whose quote state is `quoted`, the way
/// [`skim`] would from every row start after it, without stopping: each row
/// [`skim`] refuses ends one [`Run`] in `runs`, and the next begins after
/// it. The reader thread does this ahead, so the decoder only has to check
/// that it stands at a run's `from` to take its answer. The first row
/// (unfinished at `start`) is in no run. At most `max_runs` runs are made
/// (a window of tiny refused rows would otherwise need a list as long as
/// itself); the rows after the last are left to [`skim`]. `candidate` is
/// [`skim`]'s, asked likewise at row starts in increasing order. Returns the
/// quote state at the end of `data`, for the bytes that follow.
///
/// Each run equals [`skim`] from its `from`: a row start follows an LF
/// outside quotes, so the quote state there is the one [`skim`] starts
/// with, and the rows after it are judged on their own bytes alone.
pub fn skim_runs(
    data: &[u8],
    start: usize,
    quoted: bool,
    fields: usize,
    candidate: impl FnMut(usize) -> usize,
    (runs, max_runs): (&mut Vec<Run>, usize),
) -> bool {
    by_cpu!(
        runs_avx512,
        runs_avx2,
        runs_with(data, start, quoted, fields, candidate, (runs, max_runs))
    )
}

compiled_for_x86!(
    runs_avx2,
    runs_avx512,
    runs_with(
        data: &[u8],
        start: usize,
        quoted: bool,
        fields: usize,
        candidate: impl FnMut(usize) -> usize,
        runs: (&mut Vec<Run>, usize)
    ) -> bool
);

#[inline(always)]
fn runs_with<C: Classify>(
    data: &[u8],
    start: usize,
    quoted: bool,
    fields: usize,
    mut candidate: impl FnMut(usize) -> usize,
    (runs, max_runs): (&mut Vec<Run>, usize),
) -> bool {
    let mut full = runs.len() >= max_runs;
    let commas_wanted = fields.saturating_sub(1) as u64;
    // The current run: `None` before the first row start, and once
    // `max_runs` runs are made.
    let mut run: Option<Run> = None;
    let mut row_start = start;
    let mut row_broken = false;
    let mut next_candidate = 0;
    let mut commas = 0u64;
    let in_quotes = walk::<C>(data, start, quoted, |base, broken, comma_out, mut ends| {
        let mut rest = !0u64;
        while ends != 0 {
            let end_bit = ends.trailing_zeros();
            let upto = u64::MAX >> (63 - end_bit);
            let row_bits = rest & upto;
            let end = base + end_bit as usize;
            if let Some(r) = &mut run {
                let blank = end == row_start || (end == row_start + 1 && data[row_start] == b'\r');
                let row_commas = commas + u64::from((comma_out & row_bits).count_ones());
                let refused = row_broken
                    || broken & row_bits != 0
                    || (!blank && (row_commas != commas_wanted || next_candidate <= end));
                if refused {
                    r.next = row_start;
                    r.refused = true;
                    runs.push(*r);
                    *r = Run::default();
                    full = runs.len() >= max_runs;
                } else if !blank {
                    r.rows += 1;
                }
            }
            row_start = end + 1;
            if full {
                run = None;
            } else {
                let r = run.get_or_insert_with(Run::default);
                if r.rows == 0 {
                    r.from = row_start;
                }
            }
            if next_candidate < row_start {
                next_candidate = candidate(row_start);
            }
            row_broken = false;
            commas = 0;
            rest = !upto;
            ends &= ends - 1;
        }
        row_broken |= broken & rest != 0;
        commas += u64::from((comma_out & rest).count_ones());
        ControlFlow::Continue(())
    });
    if let Some(mut r) = run.filter(|r| r.from < row_start) {
        r.next = row_start;
        runs.push(r);
    }
    in_quotes
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// [`cells`] from `start` with each classifier this CPU can run (the
    /// scalar one first): where the next record starts and the cell ends
    /// cut, when a record was cut.
    #[allow(clippy::type_complexity)]
    pub(crate) fn cells_every_way(data: &[u8], start: usize) -> Vec<Option<(usize, Vec<usize>)>> {
        fn with(cells: impl FnOnce(&mut dyn FnMut(usize)) -> Option<usize>) -> Option<(usize, Vec<usize>)> {
            let mut ends = Vec::new();
            cells(&mut |e| ends.push(e)).map(|next| (next, ends))
        }
        let all = vec![
            with(|cut| cells_with::<Scalar>(data, start, cut)),
            with(|cut| cells(data, start, cut)),
            #[cfg(target_arch = "x86_64")]
            with(|cut| cells_with::<Sse2>(data, start, cut)),
        ];
        #[cfg(target_arch = "x86_64")]
        let all = {
            let mut all = all;
            if has_avx2() {
                // SAFETY: the CPU has the features (`cells` may have taken AVX-512).
                all.push(with(|cut| unsafe { cells_avx2(data, start, cut) }));
            }
            all
        };
        assert!(all.iter().all(|c| c == &all[0]), "the classifiers disagree: {all:?}");
        all
    }

    #[test]
    fn simd_classes_equal_the_scalar_ones() {
        let mut block = [0u8; 64];
        for seed in 0..2000u32 {
            for (i, b) in block.iter_mut().enumerate() {
                let x = (seed.wrapping_mul(2654435761) ^ (i as u32).wrapping_mul(40503)).rotate_left(i as u32 % 31);
                *b = b"\",\n\rab\xff\x00"[(x % 8) as usize];
            }
            #[cfg(target_arch = "x86_64")]
            {
                assert_eq!(Sse2::classify(&block), classify_scalar(&block), "{block:?}");
                if is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU has AVX2.
                    assert_eq!(unsafe { avx2_classify(&block) }, classify_scalar(&block), "{block:?}");
                }
                if has_avx512() {
                    // SAFETY: the CPU has AVX-512 F and BW.
                    assert_eq!(unsafe { avx512_classify(&block) }, classify_scalar(&block), "{block:?}");
                }
            }
            #[cfg(target_arch = "aarch64")]
            assert_eq!(Neon::classify(&block), classify_scalar(&block), "{block:?}");
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn avx2_classify(block: &[u8; 64]) -> Masks {
        Avx2::classify(block)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn avx512_classify(block: &[u8; 64]) -> Masks {
        Avx512::classify(block)
    }

    /// Every way of skimming gives the same answer as the scalar one.
    fn skim_all(data: &[u8], fields: usize) -> Skimmed {
        let s = skim(data, 0, fields, no_candidates);
        assert_eq!(s, skim_with::<Scalar>(data, 0, fields, no_candidates));
        #[cfg(target_arch = "x86_64")]
        assert_eq!(s, skim_with::<Sse2>(data, 0, fields, no_candidates));
        #[cfg(target_arch = "x86_64")]
        if has_avx2() {
            // SAFETY: the CPU has the features (`skim` may have taken AVX-512).
            assert_eq!(s, unsafe { skim_avx2(data, 0, fields, no_candidates) });
        }
        s
    }

    fn no_candidates(_: usize) -> usize {
        usize::MAX
    }

    #[test]
    fn passes_over_well_formed_rows_and_stops_at_the_rest() {
        let body = b"a,\"b,\nc\"\n\"x\"\"y\",z\r\n\n\"p\",q\nbad\",r\n";
        let s = skim(body, 0, 2, no_candidates);
        assert_eq!(s.rows, 3);
        assert_eq!(&body[s.next..], b"bad\",r\n");
        // wrong field count
        assert_eq!(skim(b"a,b\nc\n", 0, 2, no_candidates), Skimmed { next: 4, rows: 1 });
        // a closing quote followed by a letter, or by a CR (left to the tokeniser)
        assert_eq!(skim(b"\"a\"b,c\n", 0, 2, no_candidates).next, 0);
        assert_eq!(skim(b"a,\"c\"\rx\n", 0, 2, no_candidates).next, 0);
        // an unfinished row is left for more input
        assert_eq!(skim(b"a,b\nc,\"d\n", 0, 2, no_candidates), Skimmed { next: 4, rows: 1 });
        // a candidate position stops at its row
        assert_eq!(
            skim(b"a,b\nc,d\ne,f\n", 0, 2, |from| if from <= 5 { 5 } else { usize::MAX }).next,
            4
        );
    }

    /// The records the tokeniser finds, as (start, next, fields, blank),
    /// until the end or an error.
    fn tokenised(data: &[u8]) -> Vec<(usize, usize, usize, bool)> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < data.len() {
            match super::super::body::tokenise_for_tests(data, pos) {
                Some((next, fields, blank)) => {
                    out.push((pos, next, fields, blank));
                    pos = next;
                }
                None => break,
            }
        }
        out
    }

    proptest! {
        /// Whatever the body, the skimmer passes over exactly a prefix of
        /// the rows the tokeniser accepts with the right field count, and
        /// stops at a row start.
        #[test]
        fn never_passes_a_row_the_tokeniser_would_refuse(
            body in prop::collection::vec(prop::sample::select(b"\",\n\rab".to_vec()), 0..1400),
            fields in 1usize..4,
        ) {
            let s = skim_all(&body, fields);
            let rows = tokenised(&body);
            let mut passed = 0;
            let mut pos = 0;
            for &(start, next, n, blank) in &rows {
                if start == s.next { break; }
                prop_assert!(blank || n == fields, "passed a row with {} fields at {}", n, start);
                prop_assert!(body[next - 1] == b'\n', "passed an unterminated row");
                if !blank { passed += 1; }
                pos = next;
            }
            prop_assert_eq!(pos, s.next, "stopped inside a row");
            prop_assert_eq!(passed, s.rows);
        }

        /// Skimming ahead without stopping gives, for each run, what
        /// [`skim`] from the run's start gives; and the quote state after
        /// the data, whatever the start.
        #[test]
        fn runs_answer_as_skim_from_their_start(
            body in prop::collection::vec(prop::sample::select(b"\",\n\rab".to_vec()), 0..1400),
            fields in 1usize..4,
            start in 0usize..1400,
            quoted in any::<bool>(),
            hits in prop::collection::btree_set(0usize..1400, 0..6),
            max_runs in prop_oneof![0usize..6, Just(usize::MAX)],
        ) {
            check_runs(&body, fields, start, quoted, &hits, max_runs)?;
        }

        /// The same over rows mostly longer than a block, as real rows are
        /// (most blocks end one row or none), some rows broken, with the
        /// wrong field count, CRLF-ended or blank.
        #[test]
        fn runs_over_long_rows_answer_as_skim(
            rows in prop::collection::vec(
                prop::collection::vec(
                    prop_oneof![4 => "[ab]{20,90}", 2 => "[ab\"\r]{0,3}", 1 => Just("\r".to_string()), 1 => "\"[ab,\n]{0,70}\""],
                    1..4,
                ),
                0..40,
            ),
            fields in 1usize..4,
            start in 0usize..3000,
            hits in prop::collection::btree_set(0usize..3000, 0..6),
            max_runs in prop_oneof![0usize..6, Just(usize::MAX)],
        ) {
            let body: Vec<u8> = rows.iter().flat_map(|r| {
                let mut row = r.join(",").into_bytes();
                row.push(b'\n');
                row
            }).collect();
            check_runs(&body, fields, start, false, &hits, max_runs)?;
        }
    }

    /// Rows judged across a block's edges: a CRLF blank row whose LF is
    /// alone in its block is no row, and a broken byte right after a passed
    /// row's LF refuses the next row when that ends a block later.
    #[test]
    fn runs_judge_rows_at_block_edges() {
        let mut runs = Vec::new();
        let mut skim_ahead = |body: &[u8], fields: usize| {
            runs.clear();
            skim_runs(body, 0, false, fields, no_candidates, (&mut runs, usize::MAX));
            runs.clone()
        };
        // LFs at 63 and 65, then one at 166.
        let blank = [&[b'a'; 63][..], b"\n\r\n", &[b'b'; 100], b"\n"].concat();
        let want = skim(&blank, 64, 1, no_candidates);
        assert_eq!(want.rows, 1, "the blank row is no row");
        // A run starts past blank rows.
        assert_eq!(
            skim_ahead(&blank, 1),
            [Run {
                from: 66,
                next: want.next,
                rows: 1,
                refused: false
            }]
        );
        // After the unfinished row, a row ending at 125, then `a"",c…`: its
        // quote at 127 opens a region inside a cell, and it ends at 230.
        let broken = [&[b'a'; 63][..], b"\n", &[b'a'; 59], b",b\na\"\",", &[b'c'; 100], b"\n"].concat();
        assert_eq!(skim(&broken, 64, 2, no_candidates), Skimmed { next: 126, rows: 1 });
        let runs = skim_ahead(&broken, 2);
        let first = Run {
            from: 64,
            next: 126,
            rows: 1,
            refused: true,
        };
        assert_eq!(runs.first(), Some(&first), "{runs:?}");
    }

    /// Skimming `body` ahead from `start` gives, for each run, what
    /// [`skim`] from the run's start gives, whatever the CPU's code, and
    /// the quote state after the data.
    fn check_runs(
        body: &[u8],
        fields: usize,
        start: usize,
        quoted: bool,
        hits: &std::collections::BTreeSet<usize>,
        max_runs: usize,
    ) -> Result<(), TestCaseError> {
        let start = start.min(body.len());
        // Asked at rising row starts, which the reader's walk through its
        // list of hits relies on.
        let asked = std::cell::Cell::new(0);
        let candidate = |from: usize| {
            assert!(
                from > asked.get() || from == start,
                "asked at {from} after {}",
                asked.get()
            );
            asked.set(from);
            hits.range(from..).next().copied().unwrap_or(usize::MAX)
        };
        let mut runs = Vec::new();
        let after = skim_runs(body, start, quoted, fields, candidate, (&mut runs, max_runs));
        prop_assert!(runs.len() <= max_runs);
        let mut scalar = Vec::new();
        asked.set(0);
        let scalar_after = runs_with::<Scalar>(body, start, quoted, fields, candidate, (&mut scalar, max_runs));
        prop_assert_eq!(&runs, &scalar);
        prop_assert_eq!(after, scalar_after);
        #[cfg(target_arch = "x86_64")]
        if has_avx2() {
            // `skim_runs` may have taken AVX-512: the AVX2 code too.
            let mut avx2 = Vec::new();
            asked.set(0);
            // SAFETY: the CPU has the features.
            let avx2_after = unsafe { runs_avx2(body, start, quoted, fields, candidate, (&mut avx2, max_runs)) };
            prop_assert_eq!(&runs, &avx2);
            prop_assert_eq!(after, avx2_after);
            // SAFETY: as above.
            prop_assert_eq!(odd_quotes(&body[start..]), unsafe { odd_quotes_avx2(&body[start..]) });
        }
        prop_assert_eq!(odd_quotes(&body[start..]), odd_quotes_with::<Scalar>(&body[start..]));
        let quotes = body[start..].iter().filter(|&&b| b == b'"').count();
        prop_assert_eq!(after, quoted ^ (quotes % 2 == 1));
        let mut last = start;
        for r in &runs {
            prop_assert!(
                r.from > last || (r.from == last && last > start),
                "runs out of order: {:?}",
                runs
            );
            prop_assert_eq!(body[r.from - 1], b'\n');
            asked.set(0);
            prop_assert_eq!(
                skim(body, r.from, fields, candidate),
                Skimmed {
                    next: r.next,
                    rows: r.rows
                }
            );
            if r.refused {
                asked.set(0);
                prop_assert_eq!(skim(body, r.next, fields, candidate), Skimmed { next: r.next, rows: 0 });
            }
            last = r.next;
        }
        Ok(())
    }

    proptest! {
        /// On well-formed bodies with LF row ends it passes over every
        /// complete row.
        #[test]
        fn passes_every_well_formed_row(
            rows in prop::collection::vec(prop::collection::vec("[ab,\"\r\n]{0,8}", 3), 0..80),
            crlf in any::<bool>(),
        ) {
            let mut body = Vec::new();
            for r in &rows {
                for (i, v) in r.iter().enumerate() {
                    if i > 0 { body.push(b','); }
                    body.push(b'"');
                    body.extend(v.replace('"', "\"\"").bytes());
                    body.push(b'"');
                }
                body.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
            }
            let s = skim(&body, 0, 3, no_candidates);
            if crlf {
                // a quoted last cell before CRLF goes to the tokeniser
                prop_assert_eq!(s, Skimmed { next: 0, rows: 0 });
            } else {
                prop_assert_eq!(s.next, body.len());
                prop_assert_eq!(s.rows, rows.len() as u64);
            }
        }
    }
}
