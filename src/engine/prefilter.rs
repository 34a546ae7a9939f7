//! Which places of a whole chunk body could hold a match, found without
//! reading a single field.
//!
//! Every pattern but `*` needs at least one literal in the matched value
//! ([`PatternSet::required_literals`](super::wildcard::PatternSet::required_literals)):
//! `*pastebin*` needs `pastebin`, `*tunnel.*.ngrok.com*` its longest segment.
//! A value's bytes stand in the CSV body as they are (quoting only doubles
//! the `"` of a value, and no literal here holds one), so a row whose bytes
//! hold none of the literals, in any letter case, cannot match, and need not
//! be tokenised. [`Prefilter::find`] searches the body for them at SIMD speed.
//!
//! The search: aho-corasick's packed searcher (Teddy) is the fastest
//! multi-literal search there is, but has no ASCII case folding. So each
//! literal is represented by a three-byte *fingerprint*, its slice with the
//! fewest letters, and every letter-case variant of the fingerprints (at most
//! eight each) goes into Teddy. Variants of one fingerprint share their low
//! nybbles, so Teddy puts them in one bucket and the bucket's masks accept
//! exactly the case-folded fingerprint. Each fingerprint hit is then checked
//! against the whole literals that own the fingerprint, ASCII-case-insensitively.
//! On CPUs with AVX-512 (F, BW, VBMI) and up to eight fingerprints, our own
//! search of the same fingerprints 64 bytes a step ([`super::fingerprints`])
//! takes Teddy's place: 1.5x its speed on the bench machine, and 0.91-0.94x
//! the command's time at a 1% match rate, 0.92-0.97x at 20%. With AVX2
//! alone it searches 64 bytes a step in two 32-byte halves, once over a
//! body for all its hits, where Teddy is asked again after each: 0.82x
//! Teddy's time at 20% (0.91x at 1%), 0.95x the command's CPU at 20%.
//!
//! Lists with more fingerprints than Teddy serves (ESCU v13's 35 patterns
//! take 30, the app's `extended` 100) share the wide search's eight buckets,
//! or sixteen in two sets, where the CPU has it: each literal takes its
//! rarest slice by the byte weights of real Sysmon values, and each
//! fingerprint the bucket whose expected false hits it raises least. A
//! shared bucket's hit is first told apart by its three bytes, then checked
//! as any other. A list expected to stop the search too often is read row
//! by row, as every list past sixteen fingerprints was before.

use aho_corasick::packed::{Config, MatchKind, Searcher};
use aho_corasick::Span;

use super::fingerprints::{Tables, MAX_BUCKETS};

/// Bytes per fingerprint: Teddy's widest mask.
pub(super) const FINGERPRINT: usize = 3;

/// Above this many fingerprint variants Teddy is not built: its buckets
/// fill up and its verification, not the scan, sets the pace. (One
/// case-folding DFA over all the literals instead was tried for
/// `list=extended`: 3x slower than tokenising, since it walks every byte of
/// the body.)
const MAX_VARIANTS: usize = 256;

/// Above this many distinct fingerprints Teddy's buckets (16 in its wide
/// form) must share, and a shared bucket's masks accept any mix of its
/// fingerprints' bytes: with 100 generated patterns the false hits made
/// skimming 5x slower than tokenising.
const MAX_FINGERPRINTS: usize = 16;

/// At most this many literals are given a prefilter: the fingerprint
/// choice compares each literal's choices with the others'. ESCU v13's
/// list has 35, the app's `extended` list about 120.
const MAX_LITERALS: usize = 256;

/// A literal's fingerprint is chosen among its first this many slices (any
/// slice serves): the choice compares each with the other literals', so a
/// lookup of long patterns would otherwise take it quadratic time in their
/// length. A DNS name holds at most 253 bytes.
const MAX_SLICES: usize = 256;

/// At most this many fingerprints share the wide search's buckets
/// ([`Prefilter::shared`]); past that a bucket's tables accept most bytes.
/// The app's `extended` list takes 100.
const MAX_SHARED: usize = 128;

/// Eight shared buckets are used only while they are expected to stop at
/// fewer body places than this (false and true hits, from the byte weights
/// of [`weight`] and [`COMMON_WORDS`]). ESCU v13's 35 patterns (30
/// fingerprints) come to 0.8%, and take 0.33x and 0.46x the time they
/// take read row by row (1% and 20% match). The app's `extended` list (100 fingerprints) comes to 15% in
/// eight buckets: so shared, it took as long as row by row (0.33 s for 10^6
/// events) and 1.7x the CPU, every stop a check on the reading thread.
const MAX_HIT_RATE: f64 = 0.02;

/// Sixteen shared buckets (two sets, each block looked up twice) are used
/// while they are expected to stop at fewer places than this many times
/// [`MAX_HIT_RATE`]. `extended` comes to 3.7% in sixteen, and takes 0.41x
/// and 0.46x the time it takes read row by row (1% and 20% match).
const WIDE_RATE: f64 = 2.5;

/// A literal and where its fingerprint sits in it.
#[derive(Debug, Clone)]
struct Owner {
    literal: Vec<u8>,
    at: usize,
    /// A literal of at most 16 bytes as one word, to check a hit with a
    /// load, an OR and a compare (at 20% match rate checking hits byte by
    /// byte was 6.7% of the samples): the literal lowercased, zero past its
    /// end...
    word: u128,
    /// ...0x20 in the bytes that are letters, where the body's byte is
    /// ORed with it (for a letter, `b | 0x20` is its lowercase, and only
    /// its two spellings give it)...
    fold: u128,
    /// ...and 0xff in the literal's bytes.
    bytes: u128,
}

impl Owner {
    fn new(literal: &[u8], at: usize) -> Self {
        let mut word = [0u8; 16];
        let mut fold = [0u8; 16];
        let mut bytes = [0u8; 16];
        for (i, &b) in literal.iter().take(16).enumerate() {
            word[i] = b.to_ascii_lowercase();
            fold[i] = if b.is_ascii_alphabetic() { 0x20 } else { 0 };
            bytes[i] = 0xff;
        }
        Owner {
            literal: literal.to_vec(),
            at,
            word: u128::from_le_bytes(word),
            fold: u128::from_le_bytes(fold),
            bytes: u128::from_le_bytes(bytes),
        }
    }

    /// The literal occurs, in any letter case, at `hay[start..]`.
    #[inline]
    fn occurs_at(&self, hay: &[u8], start: usize) -> bool {
        match hay.get(start..start + 16) {
            Some(w) if self.literal.len() <= 16 => {
                let w = u128::from_le_bytes(w.try_into().expect("16 bytes"));
                (w | self.fold) & self.bytes == self.word
            }
            _ => hay
                .get(start..start + self.literal.len())
                .is_some_and(|s| s.eq_ignore_ascii_case(&self.literal)),
        }
    }
}

/// Finds, in a body, places where a pattern's literal occurs.
#[derive(Debug, Clone)]
pub struct Prefilter {
    /// Lowercased fingerprints, sorted, and the literals owning each.
    fingerprints: Vec<([u8; FINGERPRINT], Vec<Owner>)>,
    search: Search,
}

/// How a [`Prefilter`] searches.
#[derive(Debug, Clone)]
enum Search {
    /// Teddy over every spelling of the fingerprints; `spelled`: the
    /// fingerprint of each spelling, by Teddy's pattern index, so that a hit
    /// names its owners without a lookup.
    Teddy { searcher: Searcher, spelled: Vec<u8> },
    /// The search 64 bytes a step, with AVX-512 VBMI or in two halves with
    /// AVX2 ([`super::fingerprints`]), used instead of Teddy on CPUs with
    /// either. Up to eight fingerprints have a bucket each (bucket `j`:
    /// `fingerprints[j]`, and `shared` is `None`); a longer list shares the
    /// eight, bucket `j` holding the fingerprints of `shared[j]`.
    Wide {
        tables: Tables,
        shared: Option<Vec<Vec<Folded>>>,
    },
}

/// A fingerprint in a shared bucket: which one a hit of the bucket is, if
/// any, told with an OR and a compare of the hit's three bytes (as
/// [`Owner`] tells a literal).
#[derive(Debug, Clone, Copy)]
struct Folded {
    /// The fingerprint's bytes, lowercased, as a little-endian word.
    word: u32,
    /// 0x20 in the bytes that are letters.
    fold: u32,
    /// Its index in [`Prefilter::fingerprints`].
    fp: usize,
}

impl Folded {
    fn new(fp: &[u8; FINGERPRINT], index: usize) -> Self {
        let (mut word, mut fold) = (0u32, 0u32);
        for (i, &b) in fp.iter().enumerate() {
            word |= u32::from(b.to_ascii_lowercase()) << (8 * i);
            if b.is_ascii_alphabetic() {
                fold |= 0x20 << (8 * i);
            }
        }
        Folded { word, fold, fp: index }
    }
}

impl Prefilter {
    /// The prefilter of a search's patterns, when one can be built.
    pub fn of(patterns: &super::wildcard::PatternSet) -> Option<Self> {
        patterns.required_literals().and_then(Self::new)
    }

    /// A prefilter for `literals` (ASCII-case-insensitive), or `None` when
    /// none can serve: no literals, a literal shorter than a fingerprint (it
    /// would be in most rows), one holding `"` (doubled in the body), `$`
    /// (doubled in an `__mv_` cell) or an LF (a literal must lie within one
    /// line of the body, see [`find`](Self::find)), more than
    /// [`MAX_LITERALS`], or a list whose fingerprints neither Teddy nor
    /// the wide search's shared buckets serve well.
    pub fn new(literals: &[Vec<u8>]) -> Option<Self> {
        Self::within(literals, MAX_HIT_RATE)
    }

    /// [`new`](Self::new), with shared buckets taken while they are
    /// expected to stop at fewer than `max_rate` of the body's places (the
    /// tests take them whatever their rate).
    fn within(literals: &[Vec<u8>], max_rate: f64) -> Option<Self> {
        if literals.is_empty() || literals.len() > MAX_LITERALS {
            return None;
        }
        if literals
            .iter()
            .any(|l| l.len() < FINGERPRINT || l.iter().any(|b| matches!(b, b'"' | b'$' | b'\n')))
        {
            return None;
        }
        // Each literal's fingerprint: its cheapest slice, where a slice some
        // other literal already uses costs nothing more. Twice over, so the
        // first literals also see the choices of the later ones.
        let mut chosen: Vec<usize> = vec![0; literals.len()];
        for pass in 0..2 {
            for (i, literal) in literals.iter().enumerate() {
                let others: Vec<[u8; FINGERPRINT]> = (0..literals.len())
                    .filter(|&j| j != i && (pass > 0 || j < i))
                    .map(|j| lowered(&literals[j][chosen[j]..]))
                    .collect();
                chosen[i] = (0..=literal.len() - FINGERPRINT)
                    .take(MAX_SLICES)
                    .min_by_key(|&at| {
                        let fp = lowered(&literal[at..]);
                        let added = if others.contains(&fp) { 0 } else { 1 << letters(&fp) };
                        (added, commonness(&fp))
                    })
                    .expect("the literal is long enough");
            }
        }
        let fingerprints = owned(literals, &chosen);
        if fingerprints.len() <= 8 {
            if let Some(tables) = Tables::new(&fingerprints.iter().map(|(fp, _)| vec![*fp]).collect::<Vec<_>>()) {
                return Some(Prefilter {
                    fingerprints,
                    search: Search::Wide { tables, shared: None },
                });
            }
        }
        if let Some(search) = teddy(&fingerprints) {
            return Some(Prefilter { fingerprints, search });
        }
        Self::shared(literals, max_rate)
    }

    /// A list too long for a bucket per fingerprint and for Teddy: the
    /// wide search's buckets shared, eight or sixteen. Each literal takes its rarest
    /// slice (by [`weight`]; a slice another literal took before wins a
    /// tie), and each fingerprint, rarest last, the bucket whose expected
    /// rate of hits it raises least ([`bucket_rate`]). `None` past
    /// [`MAX_SHARED`] fingerprints, on a CPU without the wide search, or when
    /// eight buckets are expected to stop at `max_rate` of a body's places
    /// or more and sixteen at [`WIDE_RATE`] times that.
    fn shared(literals: &[Vec<u8>], max_rate: f64) -> Option<Self> {
        if !Tables::runs_here() {
            return None;
        }
        let mut taken: Vec<[u8; FINGERPRINT]> = Vec::new();
        let mut chosen = Vec::with_capacity(literals.len());
        for literal in literals {
            let at = (0..=literal.len() - FINGERPRINT)
                .take(MAX_SLICES)
                .min_by(|&a, &b| {
                    let (fa, fb) = (lowered(&literal[a..]), lowered(&literal[b..]));
                    rate(&fa)
                        .total_cmp(&rate(&fb))
                        .then(taken.contains(&fb).cmp(&taken.contains(&fa)))
                })
                .expect("the literal is long enough");
            let fp = lowered(&literal[at..]);
            if !taken.contains(&fp) {
                taken.push(fp);
            }
            chosen.push(at);
        }
        let fingerprints = owned(literals, &chosen);
        if fingerprints.len() > MAX_SHARED {
            return None;
        }
        // Eight buckets if they serve, else sixteen (two sets: the search
        // looks each block up twice).
        for (count, bound) in [(8, max_rate), (MAX_BUCKETS, max_rate * WIDE_RATE)] {
            let Assigned { buckets, members, rate } = assign(&fingerprints, count);
            if rate < bound {
                let tables = Tables::new(&buckets)?;
                return Some(Prefilter {
                    fingerprints,
                    search: Search::Wide {
                        tables,
                        shared: Some(members),
                    },
                });
            }
        }
        None
    }

    /// The same prefilter searching with Teddy (the tests compare the two),
    /// when Teddy can serve its fingerprints.
    #[cfg(test)]
    fn with_teddy(&self) -> Option<Self> {
        Some(Prefilter {
            fingerprints: self.fingerprints.clone(),
            search: teddy(&self.fingerprints)?,
        })
    }

    /// Whether the wide search's buckets are shared (the tests check which
    /// lists get them).
    #[cfg(test)]
    pub(crate) fn shares_buckets(&self) -> bool {
        matches!(&self.search, Search::Wide { shared: Some(_), .. })
    }

    /// The length of the longest literal: how far past a position an
    /// occurrence starting before it can reach.
    pub fn longest(&self) -> usize {
        self.fingerprints
            .iter()
            .flat_map(|(_, owners)| owners.iter().map(|o| o.literal.len()))
            .max()
            .unwrap_or(FINGERPRINT)
    }

    /// How many fingerprint spellings the search holds (at most 32 keeps
    /// Teddy in its narrow, fastest form).
    #[cfg(test)]
    fn spellings(&self) -> usize {
        self.fingerprints.iter().map(|(fp, _)| 1 << letters(fp)).sum()
    }

    /// A position at or after `from` inside an occurrence of a literal in
    /// `hay` that starts at or after `from`; `None` when no occurrence does.
    /// It is the first fingerprint position whose literals check out, and
    /// every occurrence covers its fingerprint, so an occurrence starting in
    /// `from..p` covers `p` too: it lies on the line (LF-free stretch) of
    /// `p`, and no body row between `from` and the row of `p` holds one.
    pub fn find(&self, hay: &[u8], from: usize) -> Option<usize> {
        self.find_past(hay, from, from)
    }

    /// [`find`](Self::find), when no fingerprint position between `from`
    /// and `past` can be the answer: the search starts at `past`.
    pub fn find_past(&self, hay: &[u8], from: usize, past: usize) -> Option<usize> {
        match &self.search {
            Search::Wide { tables, shared } => tables.find(hay, past.max(from), |p, bucket| {
                self.checked(shared, bucket, hay, from, p)
            }),
            Search::Teddy { searcher, spelled } => self.find_past_teddy(searcher, spelled, hay, from, past),
        }
    }

    /// Call `each` with what [`find`](Self::find) gives from `from`, then
    /// from just after each answer, in turn, until `each` returns `false`
    /// or none is left. One pass over `hay`: a search asked again after each
    /// answer sets up its tables and reloads the answer's block every time,
    /// which at a 20% match rate was a third of the search's time.
    ///
    /// The same answers as the repeated calls: those consider the
    /// fingerprint places after the last answer in the order this pass
    /// meets them, each checked against literals starting after the last
    /// answer, and so does this pass (a place at or before the last answer
    /// has none).
    pub fn find_each(&self, hay: &[u8], from: usize, mut each: impl FnMut(usize) -> bool) {
        match &self.search {
            Search::Wide { tables, shared } => {
                let mut after = from;
                tables.find(hay, from, |p, bucket| {
                    if !self.checked(shared, bucket, hay, after, p) {
                        return false;
                    }
                    after = p + 1;
                    !each(p)
                });
            }
            Search::Teddy { searcher, spelled } => {
                let mut at = from;
                while let Some(p) = self.find_past_teddy(searcher, spelled, hay, at, at) {
                    if !each(p) {
                        return;
                    }
                    at = p + 1;
                }
            }
        }
    }

    /// Whether a hit of the wide search's `bucket` at `p` is a literal
    /// starting at or after `from`: one of the bucket's fingerprint's own
    /// (a bucket each), or of whichever of a shared bucket's fingerprints
    /// lies at `p`.
    #[inline(always)]
    fn checked(&self, shared: &Option<Vec<Vec<Folded>>>, bucket: usize, hay: &[u8], from: usize, p: usize) -> bool {
        match shared {
            None => verified(&self.fingerprints[bucket].1, hay, from, p),
            Some(buckets) => {
                // The three bytes at `p`, read once for all the bucket's
                // fingerprints (read again for each behind a call, 1.03x
                // the time of ESCU v13's list).
                let Some(&[a, b, c]) = hay.get(p..p + FINGERPRINT) else {
                    return false;
                };
                let word = u32::from(a) | u32::from(b) << 8 | u32::from(c) << 16;
                for f in &buckets[bucket] {
                    if word | f.fold == f.word && verified(&self.fingerprints[f.fp].1, hay, from, p) {
                        return true;
                    }
                }
                false
            }
        }
    }

    /// [`find_past`](Self::find_past) with Teddy.
    fn find_past_teddy(
        &self,
        searcher: &Searcher,
        spelled: &[u8],
        hay: &[u8],
        from: usize,
        past: usize,
    ) -> Option<usize> {
        let mut at = past.max(from);
        while at < hay.len() {
            let m = searcher.find_in(hay, Span::from(at..hay.len()))?;
            let p = m.start();
            let owners = &self.fingerprints[usize::from(spelled[m.pattern().as_usize()])].1;
            if verified(owners, hay, from, p) {
                return Some(p);
            }
            at = p + 1;
        }
        None
    }
}

/// Fingerprints shared among buckets ([`assign`]).
struct Assigned {
    /// Each bucket's fingerprints, for the tables.
    buckets: Vec<Vec<[u8; FINGERPRINT]>>,
    /// The same, as the prefilter tells them apart.
    members: Vec<Vec<Folded>>,
    /// The rate of stops the buckets are expected at.
    rate: f64,
}

/// `fingerprints` shared among `count` buckets: each, commonest first, in
/// the bucket whose expected rate of stops ([`bucket_rate`]) it raises
/// least.
fn assign(fingerprints: &[([u8; FINGERPRINT], Vec<Owner>)], count: usize) -> Assigned {
    let mut order: Vec<usize> = (0..fingerprints.len()).collect();
    order.sort_by(|&a, &b| rate(&fingerprints[b].0).total_cmp(&rate(&fingerprints[a].0)));
    let mut buckets: Vec<Vec<[u8; FINGERPRINT]>> = vec![Vec::new(); count];
    let mut members: Vec<Vec<Folded>> = vec![Vec::new(); count];
    let mut rates = vec![0f64; count];
    for i in order {
        let fp = fingerprints[i].0;
        let (j, with) = (0..count)
            .map(|j| {
                let mut trial = buckets[j].clone();
                trial.push(fp);
                (j, bucket_rate(&trial))
            })
            .min_by(|(a, ra), (b, rb)| (ra - rates[*a]).total_cmp(&(rb - rates[*b])))
            .expect("at least one bucket");
        buckets[j].push(fp);
        members[j].push(Folded::new(&fp, i));
        rates[j] = with;
    }
    Assigned {
        buckets,
        members,
        rate: rates.iter().sum(),
    }
}

/// The fingerprints `chosen` for `literals` (each literal's fingerprint
/// starts at its `chosen` place), lowercased and sorted, each with the
/// literals that own it.
fn owned(literals: &[Vec<u8>], chosen: &[usize]) -> Vec<([u8; FINGERPRINT], Vec<Owner>)> {
    let mut fingerprints: Vec<([u8; FINGERPRINT], Vec<Owner>)> = Vec::new();
    for (literal, &at) in literals.iter().zip(chosen) {
        let fp = lowered(&literal[at..]);
        let owner = Owner::new(literal, at);
        match fingerprints.binary_search_by(|(f, _)| f.cmp(&fp)) {
            Ok(i) => fingerprints[i].1.push(owner),
            Err(i) => fingerprints.insert(i, (fp, vec![owner])),
        }
    }
    fingerprints
}

/// Teddy over every spelling of `fingerprints`, when it can serve them
/// (at most [`MAX_FINGERPRINTS`] and [`MAX_VARIANTS`] spellings).
fn teddy(fingerprints: &[([u8; FINGERPRINT], Vec<Owner>)]) -> Option<Search> {
    if fingerprints.len() > MAX_FINGERPRINTS {
        return None;
    }
    // Teddy gives each new group of variants (same low nybbles) the
    // bucket `last - id % buckets`, where `id` is its first pattern's
    // index: with each fingerprint's first spelling listed first, every
    // fingerprint opens its group with a new index, so up to 8 (16 in
    // Teddy's wide form) fingerprints get buckets of their own instead of
    // sharing one, whose masks would then accept any mix of them.
    let spellings: Vec<Vec<Vec<u8>>> = fingerprints.iter().map(|(fp, _)| case_variants(fp)).collect();
    let firsts = spellings.iter().map(|v| v[0].clone());
    let rest = spellings.iter().flat_map(|v| v[1..].iter().cloned());
    let variants: Vec<Vec<u8>> = firsts.chain(rest).collect();
    if variants.len() > MAX_VARIANTS {
        return None;
    }
    let spelled: Vec<u8> = (0..spellings.len())
        .chain(
            spellings
                .iter()
                .enumerate()
                .flat_map(|(i, v)| v[1..].iter().map(move |_| i)),
        )
        .map(|i| i as u8)
        .collect();
    let searcher = Config::new()
        .match_kind(MatchKind::LeftmostFirst)
        .heuristic_pattern_limits(false)
        .builder()
        .extend(&variants)
        .build()?;
    Some(Search::Teddy { searcher, spelled })
}

/// How often a byte stands in the values a body's rows hold, per 10,000
/// bytes: the lowercased bytes of the `Image`, `QueryName`, `QueryResults`
/// and `Computer` values of the 232 groups of every real Sysmon EventID 22
/// record in the project's fixtures. `e`, `m`, `.` and `o` lead (`.com`,
/// `microsoft`); bytes seen less than once in 10,000 weigh 1.
fn weight(b: u8) -> u32 {
    match b.to_ascii_lowercase() {
        b'e' => 939,
        b'm' => 714,
        b'.' => 668,
        b'o' => 611,
        b'\\' => 522,
        b'r' => 496,
        b's' => 494,
        b'a' => 462,
        b'n' => 440,
        b'd' => 423,
        b't' => 395,
        b'p' => 386,
        b'c' => 347,
        b'f' => 324,
        b'g' => 301,
        b'i' => 270,
        b'0' => 265,
        b'w' => 202,
        b'x' => 198,
        b'-' => 190,
        b'l' => 144,
        b'1' => 129,
        b'2' => 121,
        b':' => 119,
        b'9' => 113,
        b'8' => 108,
        b'4' => 105,
        b' ' => 101,
        b'7' => 99,
        b'b' => 48,
        b'u' => 38,
        b'3' => 33,
        b'6' => 32,
        b'y' => 28,
        b'5' => 25,
        b'h' => 24,
        b'k' => 21,
        b'v' => 19,
        b';' => 15,
        b'z' => 9,
        b'j' | b'(' | b')' => 4,
        b'q' => 3,
        b'<' | b'>' | b'_' => 2,
        _ => 1,
    }
}

/// The share of a body's bytes that are `b`, by [`weight`], a letter's
/// weight split between its two spellings.
fn share(b: u8) -> f64 {
    static TOTAL: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    let raw = |b: u8| f64::from(weight(b)) / if b.is_ascii_alphabetic() { 2.0 } else { 1.0 };
    raw(b) / TOTAL.get_or_init(|| (0..=255u8).map(raw).sum())
}

/// Words that fill the values of Sysmon DNS rows, whose slices the byte
/// weights alone would take for rare: Windows' own paths, in nearly every
/// `Image`, and the names every Windows host and browser asks for again and
/// again (Microsoft's, in most of the fixtures' `QueryName`s, and Google's).
/// Fingerprinted by byte weights alone (`storage.googleapis.com` by `ogl`),
/// ESCU v13's list stopped the search at 1.59 M places of the 10^6-event
/// 1%-match bench stream (0.85% of its 186 MB), and its hits' checks were a
/// fifth of the samples; kept off these words, at 0.44 M (0.24%).
const COMMON_WORDS: [&[u8]; 44] = [
    b"c:\\program files\\",
    b"\\windows\\system32\\",
    b"syswow64",
    b"appdata",
    b".exe",
    b"microsoft.com",
    b"google.com",
    b"windows.com",
    b"office.com",
    b"live.com",
    b".com",
    b".net",
    b".org",
    b"googleapis",
    b"gstatic",
    b"outlook",
    b"bing",
    b"msn",
    b"azure",
    b"akamai",
    b"windowsupdate",
    b"cloudfront",
    b"amazonaws",
    b"apple",
    b"icloud",
    b"facebook",
    b"youtube",
    b"update",
    b"events",
    b"settings",
    b"client",
    b"service",
    b"server",
    b"download",
    b"login",
    b"teams",
    b"edge",
    b"network",
    b"program files",
    b"windows",
    b"system32",
    b"microsoft",
    b"google",
    b"office",
];

/// How often a slice of [`COMMON_WORDS`] is taken to stand at a body place.
const COMMON_RATE: f64 = 0.001;

/// The three-byte slices of [`COMMON_WORDS`], each once.
fn common_trigrams() -> &'static [[u8; FINGERPRINT]] {
    static TRIGRAMS: std::sync::OnceLock<Vec<[u8; FINGERPRINT]>> = std::sync::OnceLock::new();
    TRIGRAMS.get_or_init(|| {
        let mut all: Vec<[u8; FINGERPRINT]> = COMMON_WORDS
            .iter()
            .flat_map(|w| w.windows(FINGERPRINT).map(lowered))
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    })
}

/// How often `fp` is expected at a body place, in any letter case: by the
/// byte weights, a thousand times that for a slice of [`COMMON_WORDS`].
fn rate(fp: &[u8; FINGERPRINT]) -> f64 {
    let bytes: f64 = fp
        .iter()
        .map(|&b| {
            if b.is_ascii_alphabetic() {
                2.0 * share(b)
            } else {
                share(b)
            }
        })
        .product();
    if common_trigrams().binary_search(fp).is_ok() {
        bytes * 1000.0
    } else {
        bytes
    }
}

/// How often a shared bucket of `fingerprints` is expected to stop at a
/// body place: the share of bytes its tables accept at each of the three
/// places, multiplied (any mix of its fingerprints' nybbles passes), and
/// [`COMMON_RATE`] for each slice of [`COMMON_WORDS`] it accepts (a mix
/// such as `t.c`, from `r.c` and `tun`, stands in every `microsoft.com`).
fn bucket_rate(fingerprints: &[[u8; FINGERPRINT]]) -> f64 {
    let accepted = Tables::accepted(fingerprints);
    let bytes: f64 = accepted
        .iter()
        .map(|place| (0..=255u8).filter(|&b| place[usize::from(b)]).map(share).sum::<f64>())
        .product();
    let common = common_trigrams()
        .iter()
        .filter(|t| t.iter().enumerate().all(|(i, &b)| accepted[i][usize::from(b)]))
        .count();
    bytes + COMMON_RATE * common as f64
}

/// Does one of `owners`, the literals owning the fingerprint Teddy found at
/// `p`, occur around it, starting at or after `from`?
fn verified(owners: &[Owner], hay: &[u8], from: usize, p: usize) -> bool {
    owners.iter().any(|o| p >= from + o.at && o.occurs_at(hay, p - o.at))
}

/// The first [`FINGERPRINT`] bytes of `bytes`, lowercased.
fn lowered(bytes: &[u8]) -> [u8; FINGERPRINT] {
    let mut fp = [0u8; FINGERPRINT];
    fp.copy_from_slice(&bytes[..FINGERPRINT]);
    fp.make_ascii_lowercase();
    fp
}

/// How many letters `fp` has: each doubles its case variants.
fn letters(fp: &[u8]) -> u32 {
    fp.iter().filter(|b| b.is_ascii_alphabetic()).count() as u32
}

/// How common the bytes of `fp` are in DNS names and paths: between two
/// fingerprints, the more common gives Teddy more false hits to check.
/// `.` and `o` lead the byte counts of the distinct QueryNames in the real
/// Sysmon captures (`.com`, `microsoft`, `windows`, `outlook.`): with `o`
/// weighed as other letters, `ngrok.io` took `ok.`, which the generated
/// benchmark streams hold 55 times as often as `k.i` (`outlook.`,
/// `facebook.`), and its false hits cost 6% of the instructions at 1% match.
fn commonness(fp: &[u8]) -> usize {
    fp.iter()
        .map(|b| match b.to_ascii_lowercase() {
            b'.' | b'o' => 3,
            b'e' | b'a' | b'i' | b'n' | b's' | b't' | b'r' | b'c' | b'm' | b'l' => 2,
            b'0'..=b'9' | b'-' | b'/' | b'\\' | b' ' => 1,
            _ => 0,
        })
        .sum()
}

/// Every ASCII letter-case spelling of `fp`.
fn case_variants(fp: &[u8; FINGERPRINT]) -> Vec<Vec<u8>> {
    let mut out = vec![Vec::with_capacity(FINGERPRINT)];
    for &b in fp {
        let spellings: &[u8] = if b.is_ascii_alphabetic() {
            &[b.to_ascii_lowercase(), b.to_ascii_uppercase()]
        } else {
            std::slice::from_ref(&b)
        };
        out = out
            .into_iter()
            .flat_map(|v| {
                spellings.iter().map(move |&s| {
                    let mut v = v.clone();
                    v.push(s);
                    v
                })
            })
            .collect();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lits(l: &[&str]) -> Vec<Vec<u8>> {
        l.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    /// The prefilter of the six default patterns.
    fn six() -> Prefilter {
        Prefilter::of(&super::super::wildcard::PatternSet::new(&super::super::wildcard::DEFAULT_PATTERNS).unwrap())
            .expect("the six get a prefilter")
    }

    #[test]
    fn finds_the_six_in_any_case_and_nothing_else() {
        let p = six();
        let hay: &[u8] =
            b"\"C:\\x.exe\",\"www.PasteBin.com\",0\n\"a\",\"cdn.DISCORDapp.com\"\n\"b\",\"ngrok.com\",\"paste.io\"\n";
        let mut found = Vec::new();
        let mut at = 0;
        while let Some(f) = p.find(hay, at) {
            found.push(f);
            at = f + 1;
        }
        let rows: Vec<usize> = found
            .iter()
            .map(|&f| hay[..f].iter().filter(|&&b| b == b'\n').count())
            .collect();
        assert_eq!(rows, [0, 1], "ngrok.com and paste.io are near misses: {found:?}");
    }

    /// A hit is checked as a byte-at-a-time case-blind compare would: every
    /// byte value at every place of the literal, with the literal in the
    /// middle of a long body (one word) and at its very end (byte by byte).
    #[test]
    fn hits_check_out_as_a_case_blind_compare() {
        for literal in [&b"Pa.s-0@`z"[..], b"ngrok.io", b"abcdefghijklmnopqrstu"] {
            let o = Owner::new(literal, 0);
            for i in 0..literal.len() {
                for b in 0..=255u8 {
                    let mut text = literal.to_vec();
                    text[i] = b;
                    let want = text.eq_ignore_ascii_case(literal);
                    let long = [&b"xx"[..], &text, &[b'y'; 20]].concat();
                    assert_eq!(o.occurs_at(&long, 2), want, "{:?} in the middle", text);
                    let end = [&b"xx"[..], &text].concat();
                    assert_eq!(o.occurs_at(&end, 2), want, "{:?} at the end", text);
                    assert!(!o.occurs_at(&end[..end.len() - 1], 2), "cut short");
                }
            }
        }
    }

    #[test]
    fn refuses_what_it_cannot_serve() {
        assert!(Prefilter::new(&[]).is_none());
        assert!(Prefilter::new(&lits(&["ab"])).is_none());
        assert!(Prefilter::new(&lits(&["a\"bc"])).is_none());
        // `$` is doubled in an `__mv_` cell: the raw bytes would not hold it.
        assert!(Prefilter::new(&lits(&["abc", "pay$day"])).is_none());
        assert!(Prefilter::new(&lits(&["abc", "de\nf"])).is_none());
        let some: Vec<String> = (0..16).map(|i| format!("zz{i:03}")).collect();
        let some: Vec<&str> = some.iter().map(String::as_str).collect();
        assert!(Prefilter::new(&lits(&some)).is_some());
        // More fingerprints than Teddy has buckets share the wide search's
        // eight, where the CPU has it.
        let many: Vec<String> = (0..17).map(|i| format!("zz{i:03}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let shared = Prefilter::new(&lits(&many));
        assert_eq!(shared.is_some(), Tables::runs_here());
        assert!(shared.is_none_or(|p| p.shares_buckets()));
        // Past what the shared buckets serve: a hundred slices of the
        // words every row holds, each alone expected at `COMMON_RATE`, so
        // at more than `MAX_HIT_RATE` of a body's places in eight buckets
        // and `WIDE_RATE` times that in sixteen...
        let common: Vec<String> = common_trigrams()[..100]
            .iter()
            .map(|t| String::from_utf8_lossy(t).into_owned())
            .collect();
        const { assert!(100.0 * COMMON_RATE > MAX_HIT_RATE * WIDE_RATE) };
        let common: Vec<&str> = common.iter().map(String::as_str).collect();
        assert!(Prefilter::new(&lits(&common)).is_none());
        assert_eq!(
            Prefilter::within(&lits(&common), f64::INFINITY).is_some(),
            Tables::runs_here()
        );
        // ...more fingerprints than `MAX_SHARED`, or literals than `MAX_LITERALS`.
        let distinct: Vec<String> = (0..=MAX_SHARED).map(|i| format!("q{i:02x}")).collect();
        let distinct: Vec<&str> = distinct.iter().map(String::as_str).collect();
        assert!(Prefilter::within(&lits(&distinct), f64::INFINITY).is_none());
        assert_eq!(
            Prefilter::within(&lits(&distinct[1..]), f64::INFINITY).is_some(),
            Tables::runs_here()
        );
        // Long literals: the fingerprint lies among the first slices, and
        // a literal is still found whole.
        let long: Vec<Vec<u8>> = (0..MAX_LITERALS)
            .map(|i| [format!("zz{i:03}").into_bytes(), vec![b'q'; 100_000], b"!".to_vec()].concat())
            .collect();
        let built = [
            (Prefilter::new(&long[..2]), 1),
            (Prefilter::within(&long, f64::INFINITY), 7),
        ];
        for (p, i) in built.into_iter().filter_map(|(p, i)| Some((p?, i))) {
            let hay = [&b"x,"[..], &long[i], b"\n"].concat();
            assert!(p.find(&hay, 0).is_some_and(|f| f < MAX_SLICES + 2));
            assert_eq!(p.find(&hay[..hay.len() - 2], 0), None, "cut short");
        }
        let longest: Vec<String> = (0..=MAX_LITERALS).map(|i| format!("zz{i:03}")).collect();
        let longest: Vec<&str> = longest.iter().map(String::as_str).collect();
        assert!(Prefilter::within(&lits(&longest), f64::INFINITY).is_none());
    }

    #[test]
    fn fingerprints_avoid_letters() {
        assert_eq!(case_variants(b"k.i").len(), 4);
        let six = six();
        // few enough for Teddy's narrow (and faster) form, which serves 32
        assert!(six.spellings() <= 32, "{six:?}");
        // `ngrok.io` avoids `ok.`, the end of `outlook.` and `facebook.`
        let chosen: Vec<&[u8]> = six.fingerprints.iter().map(|(fp, _)| &fp[..]).collect();
        assert_eq!(chosen, [&b"dis"[..], b"k.i", b"ns.", b"pas", b"xtb"]);
    }

    /// After an answer, one pass checks the later fingerprint places
    /// against literals starting after that answer, as a search asked again
    /// from there does: in `...b`, the `...b` that starts at 0 covers the
    /// place 1 of its fingerprint `..b`, but place 0 (of `...`) is the first
    /// answer, so 1 is none.
    #[test]
    fn each_answer_starts_the_next_search() {
        let p = Prefilter::new(&lits(&["...b", "...", "..ba"])).expect("a prefilter");
        let teddy = p.with_teddy().expect("Teddy serves three fingerprints");
        for q in [&p, &teddy] {
            let mut all = Vec::new();
            q.find_each(b"...b", 0, |f| {
                all.push(f);
                true
            });
            assert_eq!(all, [0]);
        }
    }

    proptest! {
        #[test]
        fn agrees_with_a_plain_search(
            literals in prop::collection::vec("[a-cA-C.0]{3,6}", 1..8),
            hay in prop::collection::vec(prop::sample::select(b"abcABC.0,\n\"x".to_vec()), 0..300),
            from in 0usize..300,
        ) {
            let literals: Vec<Vec<u8>> = literals.into_iter().map(String::into_bytes).collect();
            let from = from.min(hay.len());
            let p = Prefilter::new(&literals).unwrap();
            let teddy = p.with_teddy().expect("Teddy serves eight literals");
            check(&p, &literals, &hay, from)?;
            // Both searches give every answer alike, from past the end too.
            for past in [from, from + 1, from + 70, hay.len(), hay.len() + 1, usize::MAX] {
                prop_assert_eq!(p.find_past(&hay, from, past), teddy.find_past(&hay, from, past), "past {}", past);
            }
            prop_assert_eq!(p.find_past(&hay, from, usize::MAX), None);
            one_pass_agrees(&[&p, &teddy], &hay, from)?;
        }

        /// Lists too long for a bucket each: the eight buckets shared,
        /// whatever the rate of false hits, still give exactly the answers
        /// a plain search promises.
        #[test]
        fn shared_buckets_agree_with_a_plain_search(
            literals in prop::collection::vec("[a-eA-E.0-2]{3,7}", 9..60),
            hay in prop::collection::vec(prop::sample::select(b"abcdeABCDE.012,\n\"x".to_vec()), 0..400),
            from in 0usize..400,
        ) {
            let literals: Vec<Vec<u8>> = literals.into_iter().map(String::into_bytes).collect();
            let from = from.min(hay.len());
            // `None` on a CPU without the wide search (Teddy or the rows then serve).
            if let Some(p) = Prefilter::shared(&literals, f64::INFINITY) {
                prop_assert!(p.shares_buckets());
                check(&p, &literals, &hay, from)?;
                for past in [from, from + 1, from + 70, hay.len(), usize::MAX] {
                    let want = if past > from { Prefilter::plain_find_past(&p, &hay, from, past) } else { p.find(&hay, from) };
                    prop_assert_eq!(p.find_past(&hay, from, past), want, "past {}", past);
                }
                one_pass_agrees(&[&p], &hay, from)?;
            }
        }
    }

    impl Prefilter {
        /// What [`Prefilter::find_past`] promises: the first answer of
        /// `find` from `from` at `past` or later, given none lies between.
        fn plain_find_past(&self, hay: &[u8], from: usize, past: usize) -> Option<usize> {
            let mut at = from;
            while let Some(f) = self.find(hay, at) {
                if f >= past {
                    return Some(f);
                }
                at = f + 1;
            }
            None
        }
    }

    /// One pass gives what asking again after each answer gives, with each
    /// search, and stops where told.
    fn one_pass_agrees(searches: &[&Prefilter], hay: &[u8], from: usize) -> Result<(), TestCaseError> {
        let mut want = Vec::new();
        let mut at = from;
        while let Some(f) = searches[0].find(hay, at) {
            want.push(f);
            at = f + 1;
        }
        for q in searches {
            let mut all = Vec::new();
            q.find_each(hay, from, |f| {
                all.push(f);
                true
            });
            prop_assert_eq!(&all, &want);
            let mut first = Vec::new();
            q.find_each(hay, from, |f| {
                first.push(f);
                first.len() < 2
            });
            prop_assert_eq!(&first[..], &want[..want.len().min(2)]);
        }
        Ok(())
    }

    /// What [`Prefilter::find`] promises, checked by brute force.
    fn check(p: &Prefilter, literals: &[Vec<u8>], hay: &[u8], from: usize) -> Result<(), TestCaseError> {
        let occurrences: Vec<(usize, usize)> = literals
            .iter()
            .flat_map(|l| {
                (0..hay.len().saturating_sub(l.len() - 1))
                    .filter(|&i| hay[i..i + l.len()].eq_ignore_ascii_case(l))
                    .map(|i| (i, i + l.len()))
            })
            .collect();
        let line = |at: usize| hay[..at].iter().filter(|&&b| b == b'\n').count();
        match p.find(hay, from) {
            Some(f) => {
                // inside an occurrence starting at or after `from`
                prop_assert!(
                    occurrences.iter().any(|&(s, e)| s >= from && s <= f && f < e),
                    "{} from {}",
                    f,
                    from
                );
                // and every occurrence starting before it is on its line
                for &(s, _) in occurrences.iter().filter(|&&(s, _)| s >= from && s < f) {
                    prop_assert_eq!(line(s), line(f));
                }
            }
            None => prop_assert!(occurrences.iter().all(|&(s, _)| s < from)),
        }
        Ok(())
    }
}
