//! `stats count min(_time) as firstTime max(_time) as lastTime by <fields>`.
//!
//! Groups are found through an index of small slots ([`GroupIndex`]) keyed
//! by the by-field values. A lookup hashes the borrowed values of the current
//! membership and compares them in place, so an existing group costs no
//! allocation; a new group appends its key once to one arena (a byte string
//! with field end offsets) and its aggregates to one vector, so 10^5 groups
//! are three allocations, not 10^5. The groups come out sorted by a radix
//! sort on 15-byte digits of their values (`Stats::sorted`).
//!
//! Times follow Splunk's min/max: values that parse as decimal numbers are
//! compared numerically; only when a group has no numeric value at all is the
//! lexicographic extreme used. The chosen value keeps its original text; among
//! numerically equal texts (`1.5`, `1.50`) the byte-wise smallest is kept, so
//! the result does not depend on the order events arrive in, nor on how they
//! were split between the indexers of a distributed search.

use super::index::{GroupIndex, Slot};
use super::prefetch::{prefetch, prefetch_whole};
use crate::placement;
use foldhash::fast::FixedState;
use hashbrown::hash_table::Entry;
use hashbrown::HashTable;
use std::cmp::Ordering;
use std::hash::{BuildHasher, Hasher};

/// Most by-fields a search may group on (ESCU v1-v4 group on 6, v13 on 17).
pub const MAX_KEY_FIELDS: usize = 32;

/// Most bytes of by-field values (and long `_time` texts) the group table may hold. `max_groups`
/// bounds how many groups there are, this bounds how large they are: one
/// event with big multivalue fields could otherwise fill memory with few
/// groups. Real detections hold a few hundred bytes per group, so the
/// default `max_groups` of 1,000,000 fits well inside it.
pub const MAX_GROUP_BYTES: usize = 512 << 20;

/// A `_time` text kept by a group: inline when short (epoch seconds with
/// milliseconds take 14 bytes), so a new group costs no allocation for it.
#[derive(Debug, Clone, Default)]
enum Text {
    #[default]
    Unset,
    Inline(u8, [u8; 30]),
    Heap(Vec<u8>),
}

impl Text {
    fn set(&mut self, text: &[u8]) {
        match self {
            Text::Heap(v) => {
                v.clear();
                v.extend_from_slice(text);
            }
            Text::Inline(len, bytes) if text.len() <= 30 => {
                copy_short(bytes, text);
                *len = text.len() as u8;
            }
            _ if text.len() <= 30 => {
                let mut bytes = [0u8; 30];
                copy_short(&mut bytes, text);
                *self = Text::Inline(text.len() as u8, bytes);
            }
            _ => *self = Text::Heap(text.to_vec()),
        }
    }

    /// Bytes held outside the group (a long text's heap buffer).
    fn heap_bytes(&self) -> usize {
        match self {
            Text::Heap(v) => v.capacity(),
            _ => 0,
        }
    }

    fn get(&self) -> Option<&[u8]> {
        match self {
            Text::Unset => None,
            Text::Inline(len, bytes) => Some(&bytes[..*len as usize]),
            Text::Heap(v) => Some(v),
        }
    }
}

/// Copy `text` (at most 30 bytes) to the front of `to` with two fixed-size,
/// possibly overlapping copies, which compile to two moves. splunkd sends
/// events newest first, so a group's earliest `_time` changes with almost
/// every event: a copy of unknown length there was a `memmove` call a
/// membership, about 2% of the samples at a 20% match rate.
#[inline]
fn copy_short(to: &mut [u8; 30], text: &[u8]) {
    let n = text.len();
    match n {
        16..=30 => {
            to[..16].copy_from_slice(&text[..16]);
            to[n - 16..n].copy_from_slice(&text[n - 16..]);
        }
        8..=15 => {
            to[..8].copy_from_slice(&text[..8]);
            to[n - 8..n].copy_from_slice(&text[n - 8..]);
        }
        4..=7 => {
            to[..4].copy_from_slice(&text[..4]);
            to[n - 4..n].copy_from_slice(&text[n - 4..]);
        }
        _ => to[..n].copy_from_slice(text),
    }
}

/// One extreme (the minimum or the maximum) of a group's `_time` values: the
/// numeric extreme once any value was numeric, the lexicographic one before.
#[derive(Debug, Clone, Default)]
struct Extreme {
    number: Option<f64>,
    text: Text,
}

impl Extreme {
    /// Keep `t` if it beats the current extreme; `better` says which way.
    fn offer(&mut self, t: &Time<'_>, better: Ordering) {
        let replace = match (t.number, self.number) {
            (Some(n), Some(cur)) => match n.partial_cmp(&cur) {
                Some(Ordering::Equal) => self.text.get().is_some_and(|cur| t.text < cur),
                order => order == Some(better),
            },
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => self.text.get().is_none_or(|cur| t.text.cmp(cur) == better),
        };
        if replace {
            self.number = t.number;
            self.text.set(t.text);
        }
    }

    fn text(&self) -> &[u8] {
        self.text.get().unwrap_or_default()
    }
}

/// Running minimum and maximum of one group's `_time` values.
#[derive(Debug, Clone, Default)]
struct TimeRange {
    first: Extreme,
    last: Extreme,
}

/// A `_time` value prepared once per event, then applied to each of the
/// event's group memberships.
#[derive(Debug, Clone, Copy)]
pub struct Time<'a> {
    text: &'a [u8],
    number: Option<f64>,
}

impl<'a> Time<'a> {
    /// Classify a `_time` value as numeric or text.
    pub fn new(text: &'a [u8]) -> Self {
        Time {
            text,
            number: parse_number(text),
        }
    }
}

/// Parse a decimal number the way a `_time` value is written (`1700000000`,
/// `1700000000.500`, `-3`, `1e9`); names like `inf` or `NaN` are text.
pub fn parse_number(text: &[u8]) -> Option<f64> {
    if let Some(n) = parse_plain_decimal(text) {
        return Some(n);
    }
    if text.is_empty()
        || !text.iter().any(u8::is_ascii_digit)
        || !text
            .iter()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
    {
        return None;
    }
    std::str::from_utf8(text)
        .ok()?
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
}

/// `[-]digits[.digits]` with at most 19 digits whose value is below 2^53,
/// as [`parse_number`] reads it, without its general parser: every event's
/// `_time` is parsed, and epoch seconds with milliseconds are this shape.
/// Both the digits and the power of ten are exact in an `f64`, so the one
/// division rounds correctly, as the general parser does (Clinger's fast
/// path). `None` for any other shape: the general parser decides.
fn parse_plain_decimal(text: &[u8]) -> Option<f64> {
    const POW10: [f64; 20] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19,
    ];
    let (negative, rest) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let (int, frac) = match rest.iter().position(|&b| b == b'.') {
        Some(dot) => (&rest[..dot], &rest[dot + 1..]),
        None => (rest, &rest[..0]),
    };
    if int.is_empty() || (frac.is_empty() && int.len() < rest.len()) || int.len() + frac.len() > 19 {
        return None;
    }
    // Two plain loops: a chained iterator tests which half it is in at every digit.
    let digits = decimal_digits(decimal_digits(0, int)?, frac)?;
    if digits >= 1 << 53 {
        return None;
    }
    let value = digits as f64 / POW10[frac.len()];
    Some(if negative { -value } else { value })
}

/// `digits` followed by the decimal digits of `text` (at most 19 digits in
/// all, which a `u64` holds); `None` at a byte that is not a digit.
#[inline(always)]
fn decimal_digits(mut digits: u64, text: &[u8]) -> Option<u64> {
    for &b in text {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        digits = digits * 10 + u64::from(d);
    }
    Some(digits)
}

impl TimeRange {
    fn add(&mut self, t: &Time<'_>) {
        self.first.offer(t, Ordering::Less);
        self.last.offer(t, Ordering::Greater);
    }

    fn first(&self) -> &[u8] {
        self.first.text()
    }

    /// Bytes of `_time` text held on the heap, counted against the group-bytes cap.
    fn heap_bytes(&self) -> usize {
        self.first.text.heap_bytes() + self.last.text.heap_bytes()
    }

    fn last(&self) -> &[u8] {
        self.last.text()
    }
}

/// One group's running aggregates. Its key is a record in the key arena of
/// [`Stats`], at `key`.
#[derive(Debug)]
struct Tally {
    key: usize,
    count: u64,
    times: TimeRange,
}

/// The hash hashbrown sees for a 32-bit hash (the rank table's): its 32
/// bits in both halves, so the bucket (low bits) and the control byte (top
/// bits) both come from them.
fn table_hash(hash: u32) -> u64 {
    (u64::from(hash) << 32) | u64::from(hash)
}

/// Bytes in front of a key record: its length and its tally's index, `u32` each.
const RECORD_HEAD: usize = 8;

fn read_u32(bytes: &[u8], at: usize) -> usize {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize
}

/// Memberships [`Stats::stage`] holds before counting them: enough for the
/// cache misses of their lookups to overlap (with 10^5 groups each lookup
/// misses two or three times), few enough that their slots, key records and
/// tallies stay in the L1 cache until counted.
const STAGED: usize = 16;

/// Groups from which memberships are staged: with fewer, the index, keys
/// and tallies (under a megabyte) stay in the L2 cache, and a membership is
/// counted at once, saving the copy and second probe staging costs. Under
/// the fuzzers, 2, so that their few groups are staged too.
const STAGE_FROM: usize = if cfg!(fuzzing) { 2 } else { 4096 };

/// Bytes of keys and times past which the staged memberships are counted
/// whatever their number, so that staging holds little more memory than
/// one membership's key. Under the fuzzers, 256 bytes.
const STAGED_BYTES: usize = if cfg!(fuzzing) { 256 } else { 64 * 1024 };

/// Where an event came from, as its front-end counts (a row of a chunk and
/// its byte offset there; a record of a file): the engine never reads it,
/// but hands it back with a cap reached by one of the event's memberships,
/// which may be counted after later events were read ([`Stats::stage`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Origin {
    /// The row (or record) number.
    pub row: u64,
    /// Its byte offset.
    pub offset: u64,
}

/// A cap (groups, group bytes) reached by a membership of the event from `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapReached {
    /// Where the event came from.
    pub at: Origin,
    /// Which cap, in words for the user.
    pub message: String,
}

/// Staged memberships: their keys (laid out as probes) and `_time` texts
/// end to end in one buffer, so staging allocates nothing once warm.
#[derive(Debug, Default)]
struct Staged {
    bytes: Vec<u8>,
    times: Vec<StagedTime>,
    memberships: Vec<Membership>,
}

/// A staged `_time` value: its text in [`Staged::bytes`], its number.
#[derive(Debug)]
struct StagedTime {
    text: std::ops::Range<usize>,
    number: Option<f64>,
}

/// A staged membership: its probe key in [`Staged::bytes`], the key's hash,
/// its times in [`Staged::times`], and where its event came from.
#[derive(Debug)]
struct Membership {
    probe: std::ops::Range<usize>,
    hash: u32,
    times: std::ops::Range<usize>,
    at: Origin,
}

/// One group, as read from a [`Stats`]: its by-values, count and `_time` range.
///
/// Keys live end to end in one arena, each a record: the length of the rest
/// and the tally index (`u32` each), then each by-value's end offset as a
/// little-endian `u32`, then the by-values end to end; so comparing a probe
/// with a group (values and boundaries together) is one `memcmp`, whatever
/// the number of fields, and the table holds no allocation per group.
#[derive(Debug, Clone, Copy)]
pub struct Group<'a> {
    /// The end offsets (`u32` each), then the by-values.
    key: &'a [u8],
    fields: usize,
    index: usize,
    tally: &'a Tally,
}

/// Where a group is in a [`Stats`], as [`Stats::order`] lists them.
#[derive(Debug, Clone, Copy)]
pub struct GroupId(usize);

impl<'a> Group<'a> {
    /// By-value `i` (in `stats … by` order).
    pub fn field(&self, i: usize) -> &'a [u8] {
        let values = 4 * self.fields;
        let start = if i == 0 { 0 } else { read_u32(self.key, 4 * (i - 1)) };
        &self.key[values + start..values + read_u32(self.key, 4 * i)]
    }

    /// The by-values in order: [`Self::field`] for each, reading each end
    /// offset once, for the reply that writes them all.
    pub fn values(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let (ends, values) = self.key.split_at(4 * self.fields);
        let mut start = 0;
        ends.chunks_exact(4).map(move |end| {
            let end = u32::from_le_bytes(end.try_into().expect("4 bytes")) as usize;
            let value = &values[start..end];
            start = end;
            value
        })
    }

    /// By-values in the key.
    pub fn fields(&self) -> usize {
        self.fields
    }

    /// The group's position in [`Stats::unordered`] (the order groups appeared in).
    pub fn index(&self) -> usize {
        self.index
    }

    /// Memberships counted.
    pub fn count(&self) -> u64 {
        self.tally.count
    }

    /// The minimum `_time`, in its original text (empty when none was seen).
    pub fn first(&self) -> &'a [u8] {
        self.tally.times.first()
    }

    /// The maximum `_time`, in its original text (empty when none was seen).
    pub fn last(&self) -> &'a [u8] {
        self.tally.times.last()
    }
}

/// The group table of one search.
pub struct Stats {
    index: GroupIndex,
    /// The groups' aggregates, in the order the groups appeared.
    tallies: Vec<Tally>,
    /// The groups' key records, end to end, in the same order.
    keys: Vec<u8>,
    /// By-fields per group.
    fields: usize,
    hasher: FixedState,
    max_groups: usize,
    memberships: u64,
    key_bytes: usize,
    /// The key being looked up, laid out like a record without its head.
    probe: Vec<u8>,
    /// Memberships hashed but not yet counted ([`Stats::stage`]).
    staged: Staged,
}

impl Stats {
    /// An empty table of groups over `fields` by-fields (at most
    /// [`MAX_KEY_FIELDS`]) that refuses to grow past `max_groups` groups.
    pub fn new(max_groups: usize, fields: usize) -> Self {
        assert!(
            (1..=MAX_KEY_FIELDS).contains(&fields),
            "1 to {MAX_KEY_FIELDS} by-fields"
        );
        Stats {
            index: GroupIndex::default(),
            tallies: Vec::new(),
            keys: Vec::new(),
            fields,
            hasher: FixedState::default(),
            max_groups,
            memberships: 0,
            key_bytes: 0,
            probe: Vec::new(),
            staged: Staged::default(),
        }
    }

    /// By-fields per group.
    pub fn fields(&self) -> usize {
        self.fields
    }

    /// Distinct groups so far.
    pub fn groups(&self) -> usize {
        self.tallies.len()
    }

    /// Memberships counted so far (the sum of all counts).
    pub fn memberships(&self) -> u64 {
        self.memberships
    }

    /// Count one membership of the group `values` with the event's `_time`
    /// values, now. Fails when a new group would exceed a cap.
    pub fn add(&mut self, values: &[&[u8]], times: &[Time<'_>]) -> Result<(), String> {
        self.stage(values, times, Origin::default())
            .and_then(|()| self.settle())
            .map_err(|e| e.message)
    }

    /// Count one membership of the group `values` with the event's `_time`
    /// values, a little later once there are many groups ([`STAGE_FROM`]):
    /// its key is laid out and hashed now and the index slot its lookup
    /// starts at is asked for ([`GroupIndex::prefetch`]), and it is looked up
    /// with the next few ([`STAGED`]), so that their cache misses overlap
    /// instead of following one another.
    ///
    /// Memberships are counted in the order staged, so every cap is reached
    /// at the same membership as when counting each at once. A cap reached by
    /// this membership or one staged before it fails this call or a later
    /// [`stage`](Self::stage) or [`settle`](Self::settle), with the origin
    /// `at` it was staged with; the table is then incomplete, only fit to be
    /// dropped.
    pub fn stage(&mut self, values: &[&[u8]], times: &[Time<'_>], at: Origin) -> Result<(), CapReached> {
        self.stage_noting(values, times, at).map(drop)
    }

    /// Whether a membership staged now is counted at once ([`stage`](Self::stage)).
    #[inline]
    pub fn counts_at_once(&self) -> bool {
        self.tallies.len() < STAGE_FROM && self.staged.memberships.is_empty()
    }

    /// [`stage`](Self::stage), telling the tally the membership was counted
    /// in when it was counted at once ([`counts_at_once`](Self::counts_at_once)).
    pub fn stage_noting(
        &mut self,
        values: &[&[u8]],
        times: &[Time<'_>],
        at: Origin,
    ) -> Result<Option<usize>, CapReached> {
        debug_assert_eq!(values.len(), self.fields);
        if self.counts_at_once() {
            return self
                .group(values)
                .and_then(|tally| self.count(tally, times.iter().copied()).map(|()| Some(tally)))
                .map_err(|message| CapReached { at, message });
        }
        let start = self.staged.bytes.len();
        if let Err(message) = lay_out(values, &mut self.staged.bytes) {
            self.settle()?;
            return Err(CapReached { at, message });
        }
        let probe = start..self.staged.bytes.len();
        let hash = self.hash32(&self.staged.bytes[probe.clone()]);
        self.index.prefetch(hash);
        let staged = &mut self.staged;
        let first_time = staged.times.len();
        for t in times {
            let text = staged.bytes.len();
            staged.bytes.extend_from_slice(t.text);
            staged.times.push(StagedTime {
                text: text..staged.bytes.len(),
                number: t.number,
            });
        }
        staged.memberships.push(Membership {
            probe,
            hash,
            times: first_time..staged.times.len(),
            at,
        });
        if staged.memberships.len() >= STAGED || staged.bytes.len() >= STAGED_BYTES {
            self.settle().map(|()| None)
        } else {
            Ok(None)
        }
    }

    /// Count one more membership of the group whose tally
    /// [`stage_noting`](Self::stage_noting) told, with `times`: the
    /// memberships staged before it are counted first.
    pub fn count_again(&mut self, tally: usize, times: &[Time<'_>], at: Origin) -> Result<(), CapReached> {
        self.settle()?;
        self.count(tally, times.iter().copied())
            .map_err(|message| CapReached { at, message })
    }

    /// Count every staged membership ([`stage`](Self::stage)), in order; the
    /// first to reach a cap ends it.
    pub fn settle(&mut self) -> Result<(), CapReached> {
        if self.staged.memberships.is_empty() {
            return Ok(());
        }
        let mut staged = std::mem::take(&mut self.staged);
        // The slots asked for when staging are in by now: ask for the key
        // record and the tally of the group each lookup will most likely
        // meet (for a new group, none).
        for m in &staged.memberships {
            if let Some(slot) = self.index.candidate(m.hash) {
                let record = &self.keys[slot.key..self.keys.len().min(slot.key + RECORD_HEAD + m.probe.len())];
                prefetch_lines(record);
                prefetch_whole(&self.tallies[slot.tally as usize]);
            }
        }
        let mut settled = Ok(());
        for m in &staged.memberships {
            let probe = &staged.bytes[m.probe.clone()];
            let times = staged.times[m.times.clone()].iter().map(|t| Time {
                text: &staged.bytes[t.text.clone()],
                number: t.number,
            });
            if let Err(message) = self.tally_of(probe, m.hash).and_then(|tally| self.count(tally, times)) {
                settled = Err(CapReached { at: m.at, message });
                break;
            }
        }
        staged.bytes.clear();
        staged.times.clear();
        staged.memberships.clear();
        self.staged = staged;
        settled
    }

    /// Whether no membership waits to be counted: the table may be read.
    pub fn is_settled(&self) -> bool {
        self.staged.memberships.is_empty()
    }

    /// Count one membership of tally `tally` with `times`.
    fn count<'t>(&mut self, tally: usize, times: impl Iterator<Item = Time<'t>>) -> Result<(), String> {
        let group = &mut self.tallies[tally];
        group.count += 1;
        let held = group.times.heap_bytes();
        for t in times {
            group.times.add(&t);
        }
        // Long `_time` texts are copied into the group too: count them.
        self.key_bytes += group.times.heap_bytes() - held;
        self.memberships += 1;
        if self.key_bytes > MAX_GROUP_BYTES {
            return Err(bytes_exceeded());
        }
        Ok(())
    }

    /// The 32 bits of `bytes`' hash the tables keep (both halves folded).
    fn hash32(&self, bytes: &[u8]) -> u32 {
        let mut h = self.hasher.build_hasher();
        h.write(bytes);
        let h = h.finish();
        (h ^ (h >> 32)) as u32
    }

    /// The index of the tally of the group `values`, created empty if new
    /// (within the caps).
    fn group(&mut self, values: &[&[u8]]) -> Result<usize, String> {
        debug_assert_eq!(values.len(), self.fields);
        let mut probe = std::mem::take(&mut self.probe);
        probe.clear();
        let tally = lay_out(values, &mut probe).and_then(|()| {
            let hash = self.hash32(&probe);
            self.tally_of(&probe, hash)
        });
        self.probe = probe;
        tally
    }

    /// The index of the tally of the group whose key is laid out in `probe`
    /// ([`lay_out`]) and hashes to `hash`, created empty if new (within the
    /// caps).
    fn tally_of(&mut self, probe: &[u8], hash: u32) -> Result<usize, String> {
        let keys = &self.keys;
        let same = |s: &Slot| {
            read_u32(keys, s.key) == probe.len()
                && keys[s.key + RECORD_HEAD..s.key + RECORD_HEAD + probe.len()] == *probe
        };
        let vacant = match self.index.find(hash, same) {
            Ok(slot) => return Ok(slot.tally as usize),
            Err(vacant) => vacant,
        };
        let groups = self.tallies.len();
        if groups >= self.max_groups {
            return Err(format!(
                "more than {} distinct groups (max_groups={}): narrow the search or raise max_groups",
                self.max_groups, self.max_groups
            ));
        }
        if groups >= u32::MAX as usize {
            return Err(format!("more than {} distinct groups: narrow the search", u32::MAX));
        }
        let total = probe.len() - 4 * self.fields;
        if self.key_bytes + total > MAX_GROUP_BYTES {
            return Err(bytes_exceeded());
        }
        self.key_bytes += total;
        let key = self.keys.len();
        self.keys.extend_from_slice(&(probe.len() as u32).to_le_bytes());
        self.keys.extend_from_slice(&(groups as u32).to_le_bytes());
        self.keys.extend_from_slice(probe);
        self.index.insert(
            vacant,
            Slot {
                key,
                tally: groups as u32,
                hash,
            },
        );
        self.tallies.push(Tally {
            key,
            count: 0,
            times: TimeRange::default(),
        });
        Ok(groups)
    }

    /// Merge a partial aggregate of the group `values` (a map phase's row):
    /// `count` memberships whose `_time` extremes were `first` and `last`.
    /// Counts add; the extremes compete as any `_time` value does, so merging
    /// gives what counting every event here would have given. Nothing may be
    /// staged: [`settle`](Self::settle) first, so that caps fall in order.
    pub fn merge(
        &mut self,
        values: &[&[u8]],
        count: u64,
        first: Option<&Time<'_>>,
        last: Option<&Time<'_>>,
    ) -> Result<(), String> {
        debug_assert!(self.is_settled(), "merged before the staged memberships");
        let tally = self.group(values)?;
        let group = &mut self.tallies[tally];
        group.count = group
            .count
            .checked_add(count)
            .ok_or_else(|| "a group's count overflows 2^64".to_string())?;
        let held = group.times.heap_bytes();
        if let Some(t) = first {
            group.times.first.offer(t, Ordering::Less);
        }
        if let Some(t) = last {
            group.times.last.offer(t, Ordering::Greater);
        }
        self.key_bytes += group.times.heap_bytes() - held;
        self.memberships = self.memberships.saturating_add(count);
        if self.key_bytes > MAX_GROUP_BYTES {
            return Err(bytes_exceeded());
        }
        Ok(())
    }

    /// The group `id`.
    pub fn get(&self, id: GroupId) -> Group<'_> {
        let key = id.0;
        let len = read_u32(&self.keys, key);
        let index = read_u32(&self.keys, key + 4);
        Group {
            key: &self.keys[key + RECORD_HEAD..key + RECORD_HEAD + len],
            fields: self.fields,
            index,
            tally: &self.tallies[index],
        }
    }

    /// Start loading the first lines of group `id`'s key record, for a walk
    /// in sorted order, which meets the groups at random places in memory.
    /// Only a hint to the CPU ([`prefetch`]), never a fault. Reads nothing:
    /// even the record's length would wait for the very line asked for.
    pub fn prefetch_record(&self, id: GroupId) {
        // Every line of the record's first 256 bytes (most records), their
        // last one too whatever the record's alignment.
        prefetch_lines(&self.keys[id.0..self.keys.len().min(id.0 + 256)]);
    }

    /// Start loading group `id`'s tally, whose index is in its key record:
    /// call it once [`Self::prefetch_record`] has had time to bring that in.
    pub fn prefetch_tally(&self, id: GroupId) {
        prefetch_whole(&self.tallies[read_u32(&self.keys, id.0 + 4)]);
    }

    /// The groups in the order they appeared: the cheapest walk, in memory order.
    pub fn unordered(&self) -> impl Iterator<Item = Group<'_>> + '_ {
        self.tallies.iter().map(|t| self.get(GroupId(t.key)))
    }

    /// The groups sorted by their by-values, field by field, as byte strings
    /// (the order `stats … by` writes its rows in).
    pub fn sorted(&self) -> Vec<Group<'_>> {
        self.order().into_iter().map(|id| self.get(id)).collect()
    }

    /// [`Self::sorted`] as handles, 8 bytes a group.
    pub fn order(&self) -> Vec<GroupId> {
        self.sorted_keys().into_iter().map(|(_, key)| GroupId(key)).collect()
    }

    /// [`Self::sorted`] as key record offsets, in two stages.
    ///
    /// First the leading by-fields that hold few distinct values (an image
    /// path, a domain, a status) are ranked: each field's distinct values are
    /// found in one walk of the groups in memory order and sorted once, and
    /// the ranks of a group's values are packed into one `u128`, so that
    /// 10^5 groups sharing 30 image paths are not compared on those paths
    /// again and again. Ranking stops at the first field with many distinct
    /// values (see [`Ranks`]).
    ///
    /// Groups still tied after that go on through a most-significant-digit
    /// radix sort whose digits are 15 bytes of one by-value at a time (see
    /// [`digit`]), so a comparison is one `u128` compare on a contiguous
    /// array rather than a walk of two keys elsewhere in memory, and a key
    /// is read again only while it ties with another one. Runs are taken
    /// depth first from an explicit stack (no recursion, however long the
    /// shared prefixes), and runs of a few keys finish with whole-key
    /// comparisons. With many groups two threads share the tied runs.
    fn sorted_keys(&self) -> Vec<(u128, usize)> {
        let n = self.fields;
        let ranks = Ranks::new(self);
        let mut entries: Vec<(u128, usize)> = self
            .tallies
            .iter()
            .enumerate()
            .map(|(i, t)| (ranks.packed(i), t.key))
            .collect();
        let mut stack = Vec::new();
        if ranks.fields == 0 {
            stack.push((0, entries.len(), 0, 0, false));
        } else {
            entries.sort_unstable_by_key(|e| e.0);
            if ranks.fields < n {
                let mut i = 0;
                while i < entries.len() {
                    let d = entries[i].0;
                    let j = i + entries[i..].iter().position(|e| e.0 != d).unwrap_or(entries.len() - i);
                    if j - i > 1 {
                        stack.push((i, j, ranks.fields, 0, false));
                    }
                    i = j;
                }
            }
        }
        // Tied runs are independent: with many groups a second thread sorts
        // those above the middle (or above the run across it).
        let mid = entries.len() / 2;
        let cut = stack.iter().find(|r| r.0 < mid && mid < r.1).map_or(mid, |r| r.1);
        let upper: Vec<Tied> = stack
            .iter()
            .filter(|r| r.0 >= cut)
            .map(|&(lo, hi, field, offset, loaded)| (lo - cut, hi - cut, field, offset, loaded))
            .collect();
        stack.retain(|r| r.0 < cut);
        let parallel = entries.len() >= PARALLEL_SORT && !upper.is_empty();
        let (lower_entries, upper_entries) = entries.split_at_mut(cut);
        if !parallel {
            self.radix(upper_entries, upper);
            self.radix(lower_entries, stack);
        } else {
            std::thread::scope(|scope| {
                // The helper is handed its half once it runs, so that the
                // half stays here when no thread can start.
                let (give, take) = std::sync::mpsc::sync_channel(1);
                let helper = placement::spawn_scoped(scope, std::thread::Builder::new(), move || {
                    if let Ok((entries, runs)) = take.recv() {
                        self.radix(entries, runs);
                    }
                });
                // A helper that did not start (or stopped) leaves it here.
                let helper = helper.ok();
                let half = (upper_entries, upper);
                let unsent = match &helper {
                    Some(_) => give.send(half).err().map(|e| e.0),
                    None => Some(half),
                };
                if let Some((entries, runs)) = unsent {
                    self.radix(entries, runs);
                }
                self.radix(lower_entries, stack);
                if let Some(helper) = helper {
                    helper.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                }
            });
        }
        entries
    }

    /// Sort each tied run of `stack` in `entries` (and the runs still tied
    /// inside it) as [`Self::sorted_keys`] describes.
    fn radix(&self, entries: &mut [(u128, usize)], mut stack: Vec<Tied>) {
        const SMALL: usize = 12;
        let (keys, n) = (&self.keys[..], self.fields);
        // (start, end, field, offset into the field's value, digits loaded)
        while let Some((lo, hi, field, offset, loaded)) = stack.pop() {
            let run = &mut entries[lo..hi];
            if run.len() <= SMALL {
                // The run's keys share every field before `field`.
                for e in run.iter() {
                    self.prefetch_record(GroupId(e.1));
                }
                run.sort_unstable_by(|a, b| compare_records(keys, a.1, b.1, n, field));
                continue;
            }
            if !loaded {
                // The run's records lie at random places in the arena: ask
                // for each one's first lines some entries ahead.
                for i in 0..run.len() {
                    if let Some(ahead) = run.get(i + 8) {
                        self.prefetch_record(GroupId(ahead.1));
                    }
                    run[i].0 = digit(keys, run[i].1, n, field, offset);
                }
            }
            run.sort_unstable_by_key(|e| e.0);
            let mut i = 0;
            while i < run.len() {
                let d = run[i].0;
                let j = i + run[i..].iter().position(|e| e.0 != d).unwrap_or(run.len() - i);
                if j - i > 1 {
                    // Tied: the value goes on, or it ended and the next field decides.
                    let next = if d as u8 == DIGIT_MORE {
                        (field, offset + DIGIT_BYTES)
                    } else {
                        (field + 1, 0)
                    };
                    if next.0 < n {
                        stack.push((lo + i, lo + j, next.0, next.1, false));
                    }
                }
                i = j;
            }
        }
    }
}

/// A run of sort entries tied on everything before one by-value's digit:
/// (start, end, by-value, offset into it, digits loaded).
type Tied = (usize, usize, usize, usize, bool);

/// After this many groups a field with more than a quarter as many distinct
/// values is not ranked (its values would mostly be distinct throughout).
/// Under the fuzzers, 8, so that their few groups take both ways.
const RANK_SAMPLE: usize = if cfg!(fuzzing) { 8 } else { 4096 };

/// From this many groups the reply's sort splits its tied runs between two
/// threads (half the runs' records each to read at random places). Under
/// the fuzzers, 4 groups.
const PARALLEL_SORT: usize = if cfg!(fuzzing) { 4 } else { 1 << 13 };

/// The ranks of the leading by-fields that hold few distinct values, for
/// [`Stats::sorted_keys`]: rank `r` of a field is its `r`-th smallest
/// distinct value, and a group's ranks pack into one `u128`, most
/// significant field first, so comparing two packed ranks compares those
/// fields' values.
struct Ranks {
    /// Leading by-fields ranked (0 when the first has too many values).
    fields: usize,
    /// For each ranked field, each group's rank, by tally index.
    of_group: Vec<Vec<u32>>,
    /// For each ranked field, the bits its ranks take.
    bits: Vec<u32>,
}

impl Ranks {
    /// Rank fields from the first while each holds at most a quarter as many
    /// distinct values as there are groups (more, and ranking them costs as
    /// much as sorting on them) and the packed ranks fit in 128 bits.
    fn new(stats: &Stats) -> Self {
        let groups = stats.tallies.len();
        let mut ranks = Ranks {
            fields: 0,
            of_group: Vec::new(),
            bits: Vec::new(),
        };
        let mut total_bits = 0;
        for field in 0..stats.fields {
            let Some((of_group, distinct)) = Self::rank_field(stats, field, groups / 4) else {
                break;
            };
            let bits = usize::BITS - (distinct.max(1) - 1).leading_zeros();
            if total_bits + bits > u128::BITS {
                break;
            }
            total_bits += bits;
            ranks.of_group.push(of_group);
            ranks.bits.push(bits);
            ranks.fields += 1;
        }
        ranks
    }

    /// Each group's rank in `field`, and how many distinct values there
    /// are; `None` past `limit` distinct values.
    fn rank_field(stats: &Stats, field: usize, limit: usize) -> Option<(Vec<u32>, usize)> {
        // (hash, first index) of each distinct value, in order of appearance.
        let mut seen: HashTable<(u32, u32)> = HashTable::new();
        let mut values: Vec<&[u8]> = Vec::new();
        let mut of_group = Vec::with_capacity(stats.tallies.len());
        for (seen_groups, t) in stats.tallies.iter().enumerate() {
            // A field whose first groups are mostly distinct will pass the
            // limit too: stop before hashing tens of thousands of values.
            if seen_groups == RANK_SAMPLE && values.len() > RANK_SAMPLE / 4 {
                return None;
            }
            let value = stats.get(GroupId(t.key)).field(field);
            let hash = stats.hash32(value);
            let id = match seen.entry(
                table_hash(hash),
                |&(h, i)| h == hash && values[i as usize] == value,
                |&(h, _)| table_hash(h),
            ) {
                Entry::Occupied(e) => e.get().1,
                Entry::Vacant(e) => {
                    if values.len() >= limit {
                        return None;
                    }
                    let id = values.len() as u32;
                    values.push(value);
                    e.insert((hash, id));
                    id
                }
            };
            of_group.push(id);
        }
        let mut order: Vec<u32> = (0..values.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| values[a as usize].cmp(values[b as usize]));
        let mut rank = vec![0u32; values.len()];
        for (r, &id) in order.iter().enumerate() {
            rank[id as usize] = r as u32;
        }
        for id in &mut of_group {
            *id = rank[*id as usize];
        }
        Some((of_group, values.len()))
    }

    /// The packed ranks of the group at tally `index` (0 with no field ranked).
    fn packed(&self, index: usize) -> u128 {
        self.of_group
            .iter()
            .zip(&self.bits)
            .fold(0u128, |acc, (ranks, &bits)| (acc << bits) | u128::from(ranks[index]))
    }
}

/// Bytes of a by-value in one radix digit.
const DIGIT_BYTES: usize = 15;
/// The last byte of a digit whose value goes on past it.
const DIGIT_MORE: u8 = DIGIT_BYTES as u8 + 1;

/// The radix digit of by-value `field` of the key record at `key`, from byte
/// `offset`: up to 15 bytes, big-endian, zero-padded, then how many of them
/// there are (0 to 15), or 16 when the value goes on. Two digits compare as
/// the values' remainders do: on the bytes, then a value that ends first
/// (a prefix of the other) is smaller; equal digits below 16 mean equal values.
fn digit(keys: &[u8], key: usize, fields: usize, field: usize, offset: usize) -> u128 {
    let ends = key + RECORD_HEAD;
    let values = ends + 4 * fields;
    let start = if field == 0 {
        0
    } else {
        read_u32(keys, ends + 4 * (field - 1))
    };
    let rest = &keys[values + start + offset..values + read_u32(keys, ends + 4 * field)];
    let mut bytes = [0u8; 16];
    let take = rest.len().min(DIGIT_BYTES);
    bytes[..take].copy_from_slice(&rest[..take]);
    bytes[DIGIT_BYTES] = if rest.len() > DIGIT_BYTES {
        DIGIT_MORE
    } else {
        take as u8
    };
    u128::from_be_bytes(bytes)
}

/// Order the key records at `a` and `b` by their values, field by field,
/// each compared as a byte string (not by their concatenation), from field
/// `from` on: the caller knows the fields before it equal (a tied run of
/// the radix sort), so their often long shared values are not compared again.
fn compare_records(keys: &[u8], a: usize, b: usize, fields: usize, from: usize) -> Ordering {
    let key = |at: usize| &keys[at + RECORD_HEAD..at + RECORD_HEAD + read_u32(keys, at)];
    let (a, b) = (key(a), key(b));
    let (a_ends, a_values) = a.split_at(4 * fields);
    let (b_ends, b_values) = b.split_at(4 * fields);
    let start = |ends: &[u8]| if from == 0 { 0 } else { read_u32(ends, 4 * (from - 1)) };
    let (mut a_start, mut b_start) = (start(a_ends), start(b_ends));
    for i in from..fields {
        let (a_end, b_end) = (read_u32(a_ends, 4 * i), read_u32(b_ends, 4 * i));
        match a_values[a_start..a_end].cmp(&b_values[b_start..b_end]) {
            Ordering::Equal => {}
            other => return other,
        }
        (a_start, b_start) = (a_end, b_end);
    }
    Ordering::Equal
}

/// Lay a group key out as the key arena holds it (its values' end offsets,
/// then the values end to end) at the end of `probe`, so that hashing and
/// comparing it are one pass and one `memcmp` each, whatever the number of
/// fields. Fails when the values alone are over the group-bytes cap.
fn lay_out(values: &[&[u8]], probe: &mut Vec<u8>) -> Result<(), String> {
    let total: usize = values.iter().map(|v| v.len()).sum();
    if total > MAX_GROUP_BYTES {
        return Err(bytes_exceeded());
    }
    let mut end = 0u32;
    for v in values {
        end += v.len() as u32;
        probe.extend_from_slice(&end.to_le_bytes());
    }
    for v in values {
        probe.extend_from_slice(v);
    }
    Ok(())
}

/// Ask for every cache line of `bytes` ([`prefetch`]).
fn prefetch_lines(bytes: &[u8]) {
    for line in (0..bytes.len()).step_by(64).chain(bytes.len().checked_sub(1)) {
        prefetch(&bytes[line]);
    }
}

/// The error when the groups would hold too many bytes.
fn bytes_exceeded() -> String {
    format!(
        "the result groups would hold more than {} MiB of field values and times: narrow the search",
        MAX_GROUP_BYTES >> 20
    )
}

/// A repeatable stream of numbers below `n`, for the generated cases of
/// this module's tests and the reply's.
#[cfg(test)]
pub(crate) fn xorshift(mut seed: u64) -> impl FnMut(u64) -> u64 {
    move |n| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::command::{write_results, RESULT_COLUMNS as COLS};

    fn key<'a>(q: &'a str, host: &'a str) -> [&'a [u8]; 6] {
        [b"C:\\x.exe", q.as_bytes(), b"0", b"x.exe", b"-", host.as_bytes()]
    }

    fn results(s: &Stats) -> String {
        let mut out = Vec::new();
        write_results(s, &COLS, &mut out);
        String::from_utf8(out).unwrap()
    }

    /// A kept `_time` text reads back as set, whatever its length and
    /// whatever was kept before (shorter, longer, inline or on the heap).
    #[test]
    fn kept_texts_read_back_as_set() {
        let texts: Vec<Vec<u8>> = (0..=40u8).map(|n| (0..n).map(|i| b'a' + i % 26).collect()).collect();
        for before in &texts {
            for after in &texts {
                let mut t = Text::default();
                t.set(before);
                t.set(after);
                assert_eq!(t.get(), Some(&after[..]), "{} then {} bytes", before.len(), after.len());
            }
        }
    }

    #[test]
    fn counts_and_times_keep_original_text() {
        let mut s = Stats::new(10, 6);
        s.add(&key("b", "h"), &[Time::new(b"1700000000.500")]).unwrap();
        s.add(&key("b", "h"), &[Time::new(b"1700000000.5")]).unwrap();
        s.add(&key("b", "h"), &[Time::new(b"999")]).unwrap();
        s.add(&key("a", "h"), &[]).unwrap();
        let text = results(&s);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "Image,QueryName,QueryStatus,\"process_name\",QueryResults,dest,count,firstTime,lastTime"
        );
        assert_eq!(lines[1], "\"C:\\x.exe\",a,0,\"x.exe\",\"-\",h,1,,");
        assert_eq!(lines[2], "\"C:\\x.exe\",b,0,\"x.exe\",\"-\",h,3,999,\"1700000000.5\"");
        assert_eq!(s.memberships(), 4);
    }

    #[test]
    fn text_times_only_when_no_number() {
        let mut s = Stats::new(10, 6);
        s.add(&key("a", "h"), &[Time::new(b"2014-06-11T08:19:59")]).unwrap();
        s.add(&key("a", "h"), &[Time::new(b"2013-01-01")]).unwrap();
        assert!(results(&s).ends_with(",2,\"2013-01-01\",\"2014-06-11T08:19:59\"\n"));
        s.add(&key("a", "h"), &[Time::new(b"5")]).unwrap();
        assert!(results(&s).ends_with(",3,5,5\n"));
    }

    #[test]
    fn sorts_field_by_field_not_by_concatenation() {
        let mut s = Stats::new(10, 6);
        s.add(&key("ab", "c"), &[]).unwrap();
        s.add(&key("a", "bc"), &[]).unwrap();
        s.add(&key("B", "a"), &[]).unwrap();
        let text = results(&s);
        let qs: Vec<&str> = text.lines().skip(1).map(|l| l.split(',').nth(1).unwrap()).collect();
        assert_eq!(qs, ["B", "a", "ab"]);
    }

    #[test]
    fn radix_order_is_field_by_field_byte_order() {
        // Values around the 15-byte digit, with NULs, shared prefixes and
        // empty values, over 1 to 3 fields; compared with a plain sort.
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        // With `few`, every field but the last holds one of 7 values, so
        // the leading fields are ranked before the radix sort takes over.
        // 20,000 events make more groups than `PARALLEL_SORT` and
        // `RANK_SAMPLE`: two threads sort, and many-valued fields are
        // given up on early.
        let cases = [(1, false), (2, false), (3, false), (2, true), (3, true), (4, true)];
        for ((fields, few), adds) in cases.into_iter().flat_map(|c| [(c, 3000), (c, 20_000)]) {
            let mut s = Stats::new(100_000, fields);
            let mut want: Vec<Vec<Vec<u8>>> = Vec::new();
            let mut value = |pool: Option<u64>| -> Vec<u8> {
                let mut len = [0, 1, 14, 15, 16, 17, 30, 31, 45][next(9) as usize];
                len -= (next(2) as usize).min(len);
                if let Some(pool) = pool {
                    // One of `pool` values: a shared 16-byte stem, then a tail.
                    let pick = next(pool);
                    let mut v = b"0123456789abcdef".to_vec();
                    v.truncate((pick as usize * 3).min(16));
                    v.extend((0..pick).map(|i| b"\0\x01ab\xff"[i as usize % 5]));
                    return v;
                }
                (0..len).map(|_| b"\0\x01ab\xff"[next(5) as usize]).collect()
            };
            for _ in 0..adds {
                let key: Vec<Vec<u8>> = (0..fields)
                    .map(|f| value((few && f + 1 < fields).then_some(7)))
                    .collect();
                let values: Vec<&[u8]> = key.iter().map(Vec::as_slice).collect();
                s.add(&values, &[]).unwrap();
                want.push(key);
            }
            want.sort();
            want.dedup();
            let got: Vec<Vec<Vec<u8>>> = s
                .sorted()
                .iter()
                .map(|g| (0..fields).map(|i| g.field(i).to_vec()).collect())
                .collect();
            assert_eq!(got, want, "{fields} fields");
            assert_eq!(Ranks::new(&s).fields > 0, few, "{fields} fields, few values: {few}");
            let counted: u64 = s.unordered().map(|g| g.count()).sum();
            assert_eq!(counted, adds);
            assert_eq!(s.groups() > PARALLEL_SORT, adds > 3000);
        }
    }

    #[test]
    fn cap_is_enforced_with_the_option_name() {
        let mut s = Stats::new(1, 6);
        s.add(&key("a", "h"), &[]).unwrap();
        s.add(&key("a", "h"), &[]).unwrap();
        let e = s.add(&key("b", "h"), &[]).unwrap_err().to_string();
        assert!(e.contains("max_groups=1"), "{e}");
    }

    #[test]
    fn bytes_held_by_groups_are_capped() {
        let mut s = Stats::new(10, 6);
        let big = vec![b'x'; MAX_GROUP_BYTES / 2];
        let key = |q: &'static [u8]| -> [&[u8]; 6] { [&big, q, b"0", b"p", b"-", b"h"] };
        s.add(&key(b"a"), &[]).unwrap();
        s.add(&key(b"a"), &[]).unwrap();
        let e = s.add(&key(b"b"), &[]).unwrap_err().to_string();
        assert!(e.contains("more than 512 MiB"), "{e}");
        assert_eq!(s.groups(), 1);
    }

    #[test]
    fn plain_decimals_read_as_the_general_parser_reads_them() {
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
        let general = |t: &[u8]| {
            std::str::from_utf8(t)
                .ok()?
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
        };
        for _ in 0..200_000 {
            let mut t = Vec::new();
            if next(4) == 0 {
                t.push(b'-');
            }
            t.extend((0..next(21)).map(|_| b'0' + next(10) as u8));
            if next(2) == 0 {
                t.push(b'.');
                t.extend((0..next(21)).map(|_| b'0' + next(10) as u8));
            }
            if let Some(fast) = parse_plain_decimal(&t) {
                let want = general(&t).expect("a plain decimal is a number");
                assert_eq!(fast.to_bits(), want.to_bits(), "{}", String::from_utf8_lossy(&t));
            }
            assert_eq!(
                parse_number(&t).map(f64::to_bits),
                general(&t)
                    .map(f64::to_bits)
                    .filter(|_| t.iter().any(u8::is_ascii_digit))
            );
        }
        for t in [
            "1700000000.500",
            "0",
            "-0",
            "9007199254740991",
            "0.0000000000000000001",
            "12.",
        ] {
            assert_eq!(parse_number(t.as_bytes()), general(t.as_bytes()), "{t}");
        }
        assert_eq!(parse_plain_decimal(b"9007199254740992"), None);
        assert_eq!(parse_plain_decimal(b".5"), None);
        assert_eq!(parse_plain_decimal(b"12."), None);
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_number(b"1700000000.500"), Some(1_700_000_000.5));
        assert_eq!(parse_number(b"-1"), Some(-1.0));
        assert_eq!(parse_number(b"inf"), None);
        assert_eq!(parse_number(b"1e999"), None);
        assert_eq!(parse_number(b" 1"), None);
        assert_eq!(parse_number(b"."), None);
        assert_eq!(parse_number(b"1.2.3"), None);
    }

    /// Memberships staged in batches (past [`STAGE_FROM`] groups) count
    /// exactly as counting each at once would: every group's count and
    /// `_time` extremes, against a model, with keys repeating in random
    /// order and `_time` texts both numeric and not.
    #[test]
    fn staged_memberships_count_as_counted_at_once() {
        use std::collections::BTreeMap;
        let mut next = xorshift(0x05ee_d0f5_7a6e);
        let groups = STAGE_FROM as u64 * 3;
        let mut staged = Stats::new(usize::MAX, 6);
        let mut model: BTreeMap<String, (u64, f64, f64)> = BTreeMap::new();
        for row in 0..groups * 4 {
            let host = format!("host{}", next(groups));
            let time = next(1 << 20) as f64 / 4.0;
            let text = time.to_string();
            staged
                .stage(
                    &key("q", &host),
                    &[Time::new(text.as_bytes())],
                    Origin { row, offset: 0 },
                )
                .unwrap();
            let m = model.entry(host).or_insert((0, f64::INFINITY, f64::NEG_INFINITY));
            *m = (m.0 + 1, m.1.min(time), m.2.max(time));
        }
        staged.settle().unwrap();
        assert!(staged.groups() > STAGE_FROM * 2, "most lookups were staged");
        assert_eq!(staged.groups(), model.len());
        for g in staged.unordered() {
            let host = String::from_utf8(g.field(5).to_vec()).unwrap();
            let (count, first, last) = model[&host];
            let number = |t: &[u8]| std::str::from_utf8(t).unwrap().parse::<f64>().unwrap();
            assert_eq!(
                (g.count(), number(g.first()), number(g.last())),
                (count, first, last),
                "{host}"
            );
        }
    }

    /// A cap reached by a staged membership fails with the origin it was
    /// staged with, at the same membership as counting each at once.
    #[test]
    fn a_staged_cap_falls_on_the_same_membership() {
        let cap = STAGE_FROM + 100;
        let mut staged = Stats::new(cap, 6);
        let mut at_once = Stats::new(cap, 6);
        let mut next = xorshift(7);
        let mut failed = None;
        for row in 0.. {
            let host = format!("h{}", next(cap as u64 * 2));
            if let Err(e) = at_once.add(&key("q", &host), &[]) {
                failed = Some((row, e));
                break;
            }
        }
        let (row, message) = failed.expect("twice the cap of hosts passes it");
        let mut next = xorshift(7);
        let mut got = None;
        for r in 0..=row + 20 {
            let host = format!("h{}", next(cap as u64 * 2));
            if let Err(e) = staged.stage(&key("q", &host), &[], Origin { row: r, offset: 3 * r }) {
                got = Some(e);
                break;
            }
        }
        let got = match got {
            Some(e) => e,
            None => staged.settle().expect_err("the cap is passed"),
        };
        assert_eq!(got.at, Origin { row, offset: 3 * row });
        assert_eq!(got.message, message);
    }
}
