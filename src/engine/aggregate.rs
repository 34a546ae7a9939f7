//! `stats count min(_time) as firstTime max(_time) as lastTime by <fields>`.
//!
//! Groups live in a `hashbrown::HashTable` keyed by the by-field values. A
//! lookup hashes the borrowed values of the current membership and compares
//! them in place, so an existing group costs no allocation; a new group
//! stores its key once, as one boxed byte string with field end offsets.
//!
//! Times follow Splunk's min/max: values that parse as decimal numbers are
//! compared numerically; only when a group has no numeric value at all is the
//! lexicographic extreme used. The chosen value keeps its original text; among
//! numerically equal texts (`1.5`, `1.50`) the byte-wise smallest is kept, so
//! the result does not depend on the order events arrive in, nor on how they
//! were split between the indexers of a distributed search.

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
            _ if text.len() <= 30 => {
                let mut bytes = [0u8; 30];
                bytes[..text.len()].copy_from_slice(text);
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

/// One group: its by-values, count and `_time` range.
///
/// The key is one allocation: the by-values end to end, then each value's
/// end offset as a little-endian `u32`, so that comparing two keys (values
/// and boundaries together) is one `memcmp`, whatever the number of fields.
#[derive(Debug)]
pub struct Group {
    hash: u64,
    key: Box<[u8]>,
    fields: u8,
    count: u64,
    times: TimeRange,
}

/// Order two keys laid out as [`Group`] describes by their values, field by
/// field, each compared as a byte string (not by their concatenation).
fn compare_keys(a: &[u8], b: &[u8], fields: usize) -> Ordering {
    let (a_values, a_ends) = a.split_at(a.len() - 4 * fields);
    let (b_values, b_ends) = b.split_at(b.len() - 4 * fields);
    let (mut a_start, mut b_start) = (0, 0);
    for (a_end, b_end) in a_ends.chunks_exact(4).zip(b_ends.chunks_exact(4)) {
        let a_end = u32::from_le_bytes([a_end[0], a_end[1], a_end[2], a_end[3]]) as usize;
        let b_end = u32::from_le_bytes([b_end[0], b_end[1], b_end[2], b_end[3]]) as usize;
        match a_values[a_start..a_end].cmp(&b_values[b_start..b_end]) {
            Ordering::Equal => {}
            other => return other,
        }
        (a_start, b_start) = (a_end, b_end);
    }
    Ordering::Equal
}

/// End offset `i` of a key laid out as [`Group`] describes.
fn key_end(key: &[u8], fields: usize, i: usize) -> usize {
    let at = key.len() - 4 * fields + 4 * i;
    u32::from_le_bytes([key[at], key[at + 1], key[at + 2], key[at + 3]]) as usize
}

impl Group {
    /// By-value `i` (in `stats … by` order).
    pub fn field(&self, i: usize) -> &[u8] {
        let n = self.fields as usize;
        let start = if i == 0 { 0 } else { key_end(&self.key, n, i - 1) };
        &self.key[start..key_end(&self.key, n, i)]
    }

    /// Memberships counted.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The minimum `_time`, in its original text (empty when none was seen).
    pub fn first(&self) -> &[u8] {
        self.times.first()
    }

    /// The maximum `_time`, in its original text (empty when none was seen).
    pub fn last(&self) -> &[u8] {
        self.times.last()
    }
}

/// The group table of one search.
pub struct Stats {
    table: HashTable<Group>,
    /// By-fields per group.
    fields: usize,
    hasher: FixedState,
    max_groups: usize,
    memberships: u64,
    key_bytes: usize,
    /// The key being looked up, laid out like a group's key.
    probe: Vec<u8>,
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
            table: HashTable::new(),
            fields,
            hasher: FixedState::default(),
            max_groups,
            memberships: 0,
            key_bytes: 0,
            probe: Vec::new(),
        }
    }

    /// By-fields per group.
    pub fn fields(&self) -> usize {
        self.fields
    }

    /// Distinct groups so far.
    pub fn groups(&self) -> usize {
        self.table.len()
    }

    /// Memberships counted so far (the sum of all counts).
    pub fn memberships(&self) -> u64 {
        self.memberships
    }

    /// Count one membership of the group `values` with the event's `_time`
    /// values. Fails when a new group would exceed a cap.
    ///
    /// The probe key is first laid out contiguously (values end to end plus
    /// their end offsets), so hashing and comparing a group are one pass and
    /// one `memcmp` each, rather than six.
    pub fn add(&mut self, values: &[&[u8]], times: &[Time<'_>]) -> Result<(), String> {
        let group = self.group(values)?;
        group.count += 1;
        let held = group.times.heap_bytes();
        for t in times {
            group.times.add(t);
        }
        // Long `_time` texts are copied into the group too: count them.
        self.key_bytes += group.times.heap_bytes() - held;
        self.memberships += 1;
        if self.key_bytes > MAX_GROUP_BYTES {
            return Err(bytes_exceeded());
        }
        Ok(())
    }

    /// The group of `values`, created empty if new (within the caps).
    fn group(&mut self, values: &[&[u8]]) -> Result<&mut Group, String> {
        debug_assert_eq!(values.len(), self.fields);
        let total: usize = values.iter().map(|v| v.len()).sum();
        if total > MAX_GROUP_BYTES {
            return Err(bytes_exceeded());
        }
        self.probe.clear();
        let mut end = 0u32;
        for v in values {
            self.probe.extend_from_slice(v);
        }
        for v in values {
            end += v.len() as u32;
            self.probe.extend_from_slice(&end.to_le_bytes());
        }
        let hash = {
            let mut h = self.hasher.build_hasher();
            h.write(&self.probe);
            h.finish()
        };
        let groups = self.table.len();
        let probe = &self.probe;
        match self
            .table
            .entry(hash, |g| g.hash == hash && *g.key == **probe, |g| g.hash)
        {
            Entry::Occupied(entry) => Ok(entry.into_mut()),
            Entry::Vacant(entry) => {
                if groups >= self.max_groups {
                    return Err(format!(
                        "more than {} distinct groups (max_groups={}): narrow the search or raise max_groups",
                        self.max_groups, self.max_groups
                    ));
                }
                if self.key_bytes + total > MAX_GROUP_BYTES {
                    return Err(bytes_exceeded());
                }
                self.key_bytes += total;
                let group = Group {
                    hash,
                    key: probe.as_slice().into(),
                    fields: self.fields as u8,
                    count: 0,
                    times: TimeRange::default(),
                };
                Ok(entry.insert(group).into_mut())
            }
        }
    }

    /// Merge a partial aggregate of the group `values` (a map phase's row):
    /// `count` memberships whose `_time` extremes were `first` and `last`.
    /// Counts add; the extremes compete as any `_time` value does, so merging
    /// gives what counting every event here would have given.
    pub fn merge(
        &mut self,
        values: &[&[u8]],
        count: u64,
        first: Option<&Time<'_>>,
        last: Option<&Time<'_>>,
    ) -> Result<(), String> {
        let group = self.group(values)?;
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

    /// The groups sorted by their by-values, field by field, as byte strings
    /// (the order `stats … by` writes its rows in).
    pub fn sorted(&self) -> Vec<&Group> {
        let n = self.fields;
        let mut groups: Vec<&Group> = self.table.iter().collect();
        groups.sort_unstable_by(|a, b| compare_keys(&a.key, &b.key, n));
        groups
    }
}

/// The error when the groups would hold too many bytes.
fn bytes_exceeded() -> String {
    format!(
        "the result groups would hold more than {} MiB of field values and times: narrow the search",
        MAX_GROUP_BYTES >> 20
    )
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
    fn numbers() {
        assert_eq!(parse_number(b"1700000000.500"), Some(1_700_000_000.5));
        assert_eq!(parse_number(b"-1"), Some(-1.0));
        assert_eq!(parse_number(b"inf"), None);
        assert_eq!(parse_number(b"1e999"), None);
        assert_eq!(parse_number(b" 1"), None);
        assert_eq!(parse_number(b"."), None);
        assert_eq!(parse_number(b"1.2.3"), None);
    }
}
