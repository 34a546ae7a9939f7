//! The engine: matching and grouping events, with no protocol and no I/O.
//!
//! A front-end (the SCP v2 command, later `scan`) hands the engine one event
//! at a time through the [`Event`] trait, which exposes the event's fields by
//! *slot*: [`TIME_SLOT`] for `_time`, [`by_slot`] for the by-fields, and a
//! match slot the front-end chooses. The engine matches the match field's
//! values against the search's [`PatternSet`], and counts each matching event
//! in the groups of its by-values ([`Stats`]). It never sees CSV, chunks or
//! files, and its errors ([`EventError`]) say only what went wrong in the
//! event; the front-end adds where (chunk, row, byte offset, file, record).

pub mod aggregate;
pub mod fingerprints;
pub mod index;
pub mod memo;
pub mod prefetch;
pub mod prefilter;
pub mod verdicts;
pub mod wildcard;

use crate::codec::multivalue;
pub use aggregate::{CapReached, Origin};
use aggregate::{Stats, Time, MAX_KEY_FIELDS};
use arrayvec::ArrayVec;
use memo::{Memo, MemoKey, Outcome};
use std::borrow::Cow;
use std::ops::Range;
use verdicts::Verdicts;
use wildcard::PatternSet;

/// Slot of `_time` in every event the engine is handed.
pub const TIME_SLOT: usize = 0;

/// Slot of by-field `i` (0-based, in `stats … by` order): the by-fields
/// follow `_time`.
pub const fn by_slot(i: usize) -> usize {
    TIME_SLOT + 1 + i
}

/// Most group memberships one event may produce through the cartesian product
/// of its multivalue by-fields; beyond it the event is refused, so one crafted
/// event cannot keep the command busy forever.
pub const MAX_COMBINATIONS_PER_EVENT: u64 = 1_000_000;

/// One field of an event, as the front-end found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field<'a> {
    /// No such field, or only empty values (an empty value is an absent value
    /// in Splunk).
    Absent,
    /// A single non-empty value.
    Single(Cow<'a, [u8]>),
    /// Several values in Splunk's multivalue encoding (`$v1$;$v2$`, `$$` for
    /// `$`), decoded lazily so the common single-valued case costs nothing.
    Multi(Cow<'a, [u8]>),
}

impl Field<'_> {
    /// Iterate over the values of this field; a broken multivalue encoding
    /// yields `Err(byte offset inside the field)`.
    pub fn values(&self) -> FieldValues<'_> {
        match self {
            Field::Absent => FieldValues::Done,
            Field::Single(v) => FieldValues::One(Some(v)),
            Field::Multi(enc) => FieldValues::Many(multivalue::decode(enc)),
        }
    }
}

/// Iterator over a field's values (see [`Field::values`]).
pub enum FieldValues<'a> {
    /// No values.
    Done,
    /// The single value, not yet returned.
    One(Option<&'a [u8]>),
    /// Values decoded from the multivalue encoding.
    Many(multivalue::Values<'a>),
}

impl<'a> Iterator for FieldValues<'a> {
    type Item = Result<Cow<'a, [u8]>, usize>;
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            FieldValues::Done => None,
            FieldValues::One(v) => v.take().map(|v| Ok(Cow::Borrowed(v))),
            FieldValues::Many(it) => it.next(),
        }
    }
}

/// An event as the engine reads it: fields by slot. Implemented by each
/// front-end's record type, so events are read in place, never copied.
pub trait Event {
    /// The field in `slot` ([`TIME_SLOT`], [`by_slot`], or the match slot).
    fn field(&self, slot: usize) -> Field<'_>;

    /// Where the field in `slot` is single-valued (or absent) and the
    /// front-end knows every place where one of the matcher's required
    /// literals starts inside its value (the chunk decoder knows where its
    /// prefilter found them), whether there is one. With a matcher for
    /// which that decides ([`PatternSet::any_literal_matches`]) the value
    /// matches, or not, without being searched again: every matching value
    /// holds a required literal, and with such a matcher every value that
    /// holds one matches. `None` when not known.
    fn holds_literal(&self, slot: usize) -> Option<bool> {
        let _ = slot;
        None
    }

    /// The raw bytes that decide everything about the event but its
    /// `_time` ([`MemoKey`]), when the front-end can name them: an event
    /// with the same key as one offered before is counted as that one was
    /// ([`memo`]). `None` when not known.
    fn memo_key(&self) -> Option<MemoKey<'_>> {
        None
    }
}

/// What is wrong with one event; the front-end says where the event was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventError {
    /// A multivalue field's encoding is broken at byte `at` of the value.
    BrokenMultivalue {
        /// The field's slot.
        slot: usize,
        /// Byte offset inside the encoded value.
        at: usize,
    },
    /// A cap was reached (groups, group bytes, combinations), by the event
    /// the error names ([`Origin`]): the one offered or, since memberships
    /// are counted a little after their event ([`Stats::stage`]), an earlier
    /// one.
    Limit(CapReached),
}

/// Counters of one engine, for the Job Inspector.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Events offered.
    pub events_read: u64,
    /// Events whose match field matched a pattern.
    pub events_matched: u64,
    /// Partial aggregates (a map phase's rows) merged.
    pub partials_merged: u64,
}

/// How a search groups: how many by-fields (in slots [`by_slot`]`(0..fields)`)
/// and which of them take a default value when an event has none (ESCU v13's
/// `eval answer=coalesce(answer,"none")`). Chosen once when a search starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grouping {
    /// Number of by-fields, 1 to [`MAX_KEY_FIELDS`].
    pub fields: usize,
    /// `(by-field index, value)`: the field's value when it has no non-empty one.
    pub coalesce: Vec<(usize, Vec<u8>)>,
}

impl Grouping {
    /// `fields` by-fields, none coalesced.
    pub fn plain(fields: usize) -> Self {
        Grouping {
            fields,
            coalesce: Vec::new(),
        }
    }

    fn default_of(&self, i: usize) -> Option<&[u8]> {
        self.coalesce.iter().find(|(j, _)| *j == i).map(|(_, v)| v.as_slice())
    }
}

/// Matches and groups the events of one search (or one map request).
pub struct Engine<'p> {
    matcher: &'p PatternSet,
    match_slot: usize,
    /// An event whose match field holds a required literal matches
    /// ([`PatternSet::any_literal_matches`]).
    literal_decides: bool,
    grouping: &'p Grouping,
    stats: Stats,
    counters: Counters,
    /// Decoded values of the current event, and where each one sits.
    scratch: Vec<u8>,
    by_values: Vec<Vec<Range<usize>>>,
    time_values: Vec<Range<usize>>,
    /// Outcomes of the events offered so far, by their keys.
    memo: Memo,
    /// Verdicts of match-field values, where the matcher costs more than
    /// asking them ([`PatternSet::costly`]); `None` otherwise.
    verdicts: Option<Verdicts>,
}

impl<'p> Engine<'p> {
    /// An engine matching field `match_slot` against `matcher`, grouping as
    /// `grouping` says, refusing to hold more than `max_groups` groups.
    pub fn new(matcher: &'p PatternSet, match_slot: usize, max_groups: usize, grouping: &'p Grouping) -> Self {
        Engine {
            matcher,
            match_slot,
            literal_decides: matcher.any_literal_matches(),
            grouping,
            stats: Stats::new(max_groups, grouping.fields),
            counters: Counters::default(),
            scratch: Vec::new(),
            by_values: vec![Vec::new(); grouping.fields],
            time_values: Vec::new(),
            memo: Memo::default(),
            verdicts: matcher.costly().then(Verdicts::default),
        }
    }

    /// The groups counted so far: call [`settle`](Self::settle) first.
    pub fn stats(&self) -> &Stats {
        assert!(
            self.stats.is_settled(),
            "the groups were read before the last memberships were counted"
        );
        &self.stats
    }

    /// Count the memberships still staged ([`Stats::stage`]): after the last
    /// event, and before reporting any other problem of a later event, since
    /// a cap one of them reaches came first.
    pub fn settle(&mut self) -> Result<(), CapReached> {
        self.stats.settle()
    }

    /// The counters so far.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Match one event and, when it matches, count it in the group of each
    /// combination of its by-values. An event lacking a by-field is dropped,
    /// as `stats … by` drops it. `at` says where the event came from, for a
    /// cap its memberships reach ([`EventError::Limit`]); they are counted
    /// with the next few events' or at [`settle`](Self::settle).
    ///
    /// An event whose front-end names its key ([`Event::memo_key`]) and
    /// whose key was seen before is counted as the event seen then was, its
    /// own `_time` aside ([`memo`]), while the table counts memberships at
    /// once (few groups); with many, memberships are staged and the memo
    /// stops, so that they are still counted in order.
    pub fn offer<E: Event + ?Sized>(&mut self, event: &E, at: Origin) -> Result<(), EventError> {
        if self.memo.is_on() {
            if self.told(event) == Some(false) {
                // Told at once without the memo, which would fill up with
                // such rows: most hold a literal elsewhere, and are unique.
                self.counters.events_read += 1;
                return Ok(());
            }
            if let Some(key) = event.memo_key() {
                if self.stats.counts_at_once() {
                    let hash = self.memo.hash(&key);
                    if let Some(outcome) = self.memo.recall(&key, hash) {
                        return self.offer_again(outcome, event, at);
                    }
                    match self.offer_noting(event, at)? {
                        // A literal decides too, where the front-end's list
                        // covers the value; where not, such rows seldom repeat.
                        Some(Outcome::Unmatched) if self.literal_decides => {}
                        Some(outcome) => self.memo.remember(&key, hash, outcome),
                        None => {}
                    }
                    return Ok(());
                }
                self.memo.stop();
            }
        }
        self.offer_noting(event, at).map(drop)
    }

    /// Count `event` as the event it shares its key with was ([`Outcome`]).
    fn offer_again<E: Event + ?Sized>(&mut self, outcome: Outcome, event: &E, at: Origin) -> Result<(), EventError> {
        let tally = match outcome {
            Outcome::Unmatched => {
                self.counters.events_read += 1;
                return Ok(());
            }
            Outcome::Dropped => {
                self.counters.events_read += 1;
                self.counters.events_matched += 1;
                return Ok(());
            }
            Outcome::Counted(tally) => tally as usize,
        };
        // The key holds the `__mv_` cell of `_time`, empty when the event
        // seen before was counted: `_time` is its plain cell, one value or none.
        let counted = match event.field(TIME_SLOT) {
            Field::Absent => self.stats.count_again(tally, &[], at),
            Field::Single(t) => self.stats.count_again(tally, &[Time::new(&t)], at),
            Field::Multi(_) => return self.offer_noting(event, at).map(drop),
        };
        self.counters.events_read += 1;
        self.counters.events_matched += 1;
        counted.map_err(EventError::Limit)
    }

    /// [`offer`](Self::offer), without the memo: what it did, when an
    /// event with the same key would do it again ([`Outcome`]).
    fn offer_noting<E: Event + ?Sized>(&mut self, event: &E, at: Origin) -> Result<Option<Outcome>, EventError> {
        self.counters.events_read += 1;
        let matched = match self.told(event) {
            Some(holds) => holds,
            None => self.matches(event)?,
        };
        if !matched {
            return Ok(Some(Outcome::Unmatched));
        }
        self.counters.events_matched += 1;

        // Fast path: every by-field single-valued and borrowed (almost every
        // Sysmon event), so the group key is borrowed straight from the
        // record, each field read once.
        let n = self.grouping.fields;
        let mut key: ArrayVec<&[u8], MAX_KEY_FIELDS> = ArrayVec::new();
        for i in 0..n {
            match event.field(by_slot(i)) {
                Field::Single(Cow::Borrowed(v)) => key.push(v),
                Field::Absent => match self.grouping.default_of(i) {
                    Some(v) => key.push(v),
                    // dropped by `stats … by`, after the slow path has checked
                    // the other fields' encodings
                    None => break,
                },
                _ => break,
            }
        }
        if key.len() == n {
            let staged = match event.field(TIME_SLOT) {
                Field::Absent => Some(self.stats.stage_noting(&key, &[], at)),
                Field::Single(t) => Some(self.stats.stage_noting(&key, &[Time::new(&t)], at)),
                Field::Multi(_) => None,
            };
            if let Some(staged) = staged {
                let tally = staged.map_err(EventError::Limit)?;
                return Ok(tally.and_then(|t| u32::try_from(t).ok()).map(Outcome::Counted));
            }
        }
        drop(key);

        let fields: ArrayVec<Field<'_>, MAX_KEY_FIELDS> = (0..n).map(|i| event.field(by_slot(i))).collect();
        self.scratch.clear();
        let mut by_values = std::mem::take(&mut self.by_values);
        let mut combinations: u64 = 1;
        let mut result = Ok(());
        for (i, ranges) in by_values.iter_mut().enumerate() {
            if let Err(e) = collect(&mut self.scratch, &fields[i], by_slot(i), ranges) {
                result = Err(e);
                break;
            }
            if ranges.is_empty() {
                if let Some(v) = self.grouping.default_of(i) {
                    let start = self.scratch.len();
                    self.scratch.extend_from_slice(v);
                    ranges.push(start..self.scratch.len());
                }
            }
            combinations = combinations.saturating_mul(ranges.len() as u64);
        }
        let mut time_values = std::mem::take(&mut self.time_values);
        if result.is_ok() {
            result = collect(&mut self.scratch, &event.field(TIME_SLOT), TIME_SLOT, &mut time_values)
                .and_then(|()| self.count(&by_values, &time_values, combinations, at));
        }
        self.by_values = by_values;
        self.time_values = time_values;
        // Dropped for a by-field without a value: so is an event with the
        // same by-values, whatever its `_time`.
        result.map(|()| (combinations == 0).then_some(Outcome::Dropped))
    }

    /// Whether the event matches, where the front-end's list of literals
    /// decides it ([`Event::holds_literal`]) without the matcher.
    #[inline]
    fn told<E: Event + ?Sized>(&self, event: &E) -> Option<bool> {
        event.holds_literal(self.match_slot).filter(|_| self.literal_decides)
    }

    /// Does any value of the event's match field match?
    fn matches<E: Event + ?Sized>(&mut self, event: &E) -> Result<bool, EventError> {
        let matcher = self.matcher;
        let mut is_match = |value: &[u8]| match &mut self.verdicts {
            Some(verdicts) => verdicts.get_or(value, |v| matcher.is_match(v)),
            None => matcher.is_match(value),
        };
        Ok(match event.field(self.match_slot) {
            Field::Absent => false,
            Field::Single(value) => is_match(&value),
            multi => {
                for value in multi.values() {
                    let value = value.map_err(|at| EventError::BrokenMultivalue {
                        slot: self.match_slot,
                        at,
                    })?;
                    if is_match(&value) {
                        return Ok(true);
                    }
                }
                false
            }
        })
    }

    /// Count `n` events the front-end knows cannot match without offering
    /// them (rows the [`prefilter`] found none of its literals in).
    pub fn passed_over(&mut self, n: u64) {
        self.counters.events_read += n;
    }

    /// Merge a partial aggregate of one group, as a map phase computed it
    /// over some of the events: `count` memberships whose `_time` extremes
    /// were `first` and `last` (absent when none of its events had a time).
    /// No matching: the map phase matched with the same patterns. The
    /// memberships staged before it are counted first.
    pub fn merge(
        &mut self,
        key: &[&[u8]],
        count: u64,
        first: Option<&[u8]>,
        last: Option<&[u8]>,
        at: Origin,
    ) -> Result<(), EventError> {
        self.settle().map_err(EventError::Limit)?;
        self.counters.partials_merged += 1;
        let first = first.map(Time::new);
        let last = last.map(Time::new);
        self.stats
            .merge(key, count, first.as_ref(), last.as_ref())
            .map_err(|message| EventError::Limit(CapReached { at, message }))
    }

    fn count(
        &mut self,
        by_values: &[Vec<Range<usize>>],
        time_values: &[Range<usize>],
        combinations: u64,
        at: Origin,
    ) -> Result<(), EventError> {
        if combinations == 0 {
            return Ok(()); // a by-field is absent: `stats … by` drops the event
        }
        if combinations > MAX_COMBINATIONS_PER_EVENT {
            // Reached before the event's memberships are staged, so after
            // those of earlier events.
            self.settle().map_err(EventError::Limit)?;
            return Err(EventError::Limit(CapReached {
                at,
                message: format!(
                    "the event's multivalue by-fields form {combinations} combinations, more than the limit of \
                     {MAX_COMBINATIONS_PER_EVENT}"
                ),
            }));
        }
        let scratch = &self.scratch;
        let one_time;
        let many_times: Vec<Time<'_>>;
        let times: &[Time<'_>] = match time_values {
            [only] => {
                one_time = [Time::new(&scratch[only.clone()])];
                &one_time
            }
            _ => {
                many_times = time_values.iter().map(|r| Time::new(&scratch[r.clone()])).collect();
                &many_times
            }
        };
        let n = by_values.len();
        let mut index = [0usize; MAX_KEY_FIELDS];
        let mut key: ArrayVec<&[u8], MAX_KEY_FIELDS> = ArrayVec::new();
        loop {
            key.clear();
            key.extend((0..n).map(|i| &scratch[by_values[i][index[i]].clone()]));
            self.stats.stage(&key, times, at).map_err(EventError::Limit)?;
            // Advance the odometer over the value lists, last field fastest.
            let mut k = n;
            loop {
                if k == 0 {
                    return Ok(());
                }
                k -= 1;
                index[k] += 1;
                if index[k] < by_values[k].len() {
                    break;
                }
                index[k] = 0;
            }
        }
    }
}

/// Decode every value of `field` into `scratch`, skipping empty elements;
/// record where they sit in `into`.
fn collect(
    scratch: &mut Vec<u8>,
    field: &Field<'_>,
    slot: usize,
    into: &mut Vec<Range<usize>>,
) -> Result<(), EventError> {
    into.clear();
    for value in field.values() {
        let value = value.map_err(|at| EventError::BrokenMultivalue { slot, at })?;
        if !value.is_empty() {
            let start = scratch.len();
            scratch.extend_from_slice(&value);
            into.push(start..scratch.len());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An event given as one value list per slot (empty list = absent).
    struct Plain(Vec<Vec<&'static str>>);

    impl Event for Plain {
        fn field(&self, slot: usize) -> Field<'_> {
            match self.0.get(slot).map(Vec::as_slice) {
                None | Some([]) => Field::Absent,
                Some([one]) => Field::Single(Cow::Borrowed(one.as_bytes())),
                Some(many) => {
                    let mut enc = Vec::new();
                    multivalue::encode(many.iter().map(|v| v.as_bytes()), &mut enc);
                    Field::Multi(Cow::Owned(enc))
                }
            }
        }
    }

    fn event(time: &[&'static str], query: &[&'static str], host: &[&'static str]) -> Plain {
        Plain(vec![
            time.to_vec(),
            vec!["C:\\p.exe"],
            query.to_vec(),
            vec!["0"],
            vec!["p.exe"],
            vec!["-"],
            host.to_vec(),
            query.to_vec(),
        ])
    }

    /// [`Plain`], but every single value copied, as a front-end copies a
    /// value whose doubled quotes it undid.
    struct Copied(Plain);

    impl Event for Copied {
        fn field(&self, slot: usize) -> Field<'_> {
            match self.0.field(slot) {
                Field::Single(v) => Field::Single(Cow::Owned(v.into_owned())),
                other => other,
            }
        }
    }

    #[test]
    fn copied_values_group_as_borrowed_ones() {
        let patterns = PatternSet::new(&["*pastebin*"]).unwrap();
        let grouping = Grouping::plain(6);
        let mut engine = Engine::new(&patterns, by_slot(6), 100, &grouping);
        for (t, copied) in [("5", false), ("3", true), ("9", true), ("4", false)] {
            let e = event(&[t], &["pastebin.com"], &["h1"]);
            let at = Origin::default();
            if copied {
                engine.offer(&Copied(e), at).unwrap();
            } else {
                engine.offer(&e, at).unwrap();
            }
        }
        engine.settle().unwrap();
        let groups = engine.stats().sorted();
        assert_eq!(groups.len(), 1);
        assert_eq!(
            (groups[0].count(), groups[0].first(), groups[0].last()),
            (4, &b"3"[..], &b"9"[..])
        );
        assert_eq!(engine.counters().events_matched, 4);
    }

    /// A list long enough to have its verdicts remembered by value counts
    /// the events a short list matching the same values counts, whatever
    /// the letter case, order and repeats, multivalue fields included.
    #[test]
    fn remembered_verdicts_count_as_matching_each_value() {
        let mut long: Vec<String> = (0..1100).map(|i| format!("*n{i}.abused.invalid*")).collect();
        long.extend(["*pastebin*".to_string(), "*.ngrok.io".to_string()]);
        let costly = PatternSet::new(&long).unwrap();
        let short = PatternSet::new(&["*pastebin*", "*.ngrok.io"]).unwrap();
        assert!(costly.costly() && !short.costly());
        let grouping = Grouping::plain(6);
        let mut remembering = Engine::new(&costly, by_slot(6), 100, &grouping);
        let mut plain = Engine::new(&short, by_slot(6), 100, &grouping);
        assert!(remembering.verdicts.is_some() && plain.verdicts.is_none());
        let queries: [&[&'static str]; 6] = [
            &["pastebin.com"],
            &["PasteBin.COM"],
            &["a.ngrok.io"],
            &["a.ngrok.io.example"],
            &["example.com", "b.NGROK.io"],
            &["example.com"],
        ];
        for (round, time) in ["1", "2", "3"].into_iter().enumerate() {
            for (i, query) in queries.iter().enumerate() {
                let host = ["h1", "h2"][(round + i) % 2];
                let e = event(&[time], query, &[host]);
                let at = Origin::default();
                assert_eq!(remembering.offer(&e, at), plain.offer(&e, at), "{query:?}");
            }
        }
        assert_eq!(remembering.settle(), plain.settle());
        let rows = |engine: &Engine<'_>| -> Vec<(Vec<Vec<u8>>, u64)> {
            engine
                .stats()
                .sorted()
                .iter()
                .map(|g| (g.values().map(<[u8]>::to_vec).collect(), g.count()))
                .collect()
        };
        assert_eq!(rows(&remembering), rows(&plain));
        assert_eq!(remembering.counters(), plain.counters());
        // Four of the six queries match, in each of the three rounds.
        assert_eq!(plain.counters().events_matched, 12);
    }

    #[test]
    fn matches_groups_and_drops_events_without_a_by_field() {
        let matcher = PatternSet::new(&["*pastebin*"]).unwrap();
        let grouping = Grouping::plain(6);
        let mut engine = Engine::new(&matcher, 7, 100, &grouping);
        let at = Origin::default();
        engine
            .offer(&event(&["10"], &["pastebin.com", "other.net"], &["h1"]), at)
            .unwrap();
        engine.offer(&event(&["5"], &["example.com"], &["h1"]), at).unwrap();
        engine.offer(&event(&["7"], &["PASTEBIN.com"], &[]), at).unwrap();
        engine.offer(&event(&["3"], &["pastebin.com"], &["h1"]), at).unwrap();
        engine.settle().unwrap();
        assert_eq!(
            engine.counters(),
            Counters {
                events_read: 4,
                events_matched: 3,
                partials_merged: 0
            }
        );
        let groups: Vec<String> = engine
            .stats()
            .sorted()
            .iter()
            .map(|g| {
                let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
                format!(
                    "{} {} {} {}",
                    text(g.field(1)),
                    g.count(),
                    text(g.first()),
                    text(g.last())
                )
            })
            .collect();
        assert_eq!(groups, ["other.net 1 10 10", "pastebin.com 2 3 10"]);
    }

    /// [`Plain`], vouching that its match field holds a literal (or,
    /// `false`, none), whether or not it does.
    struct Vouched(Plain, bool);

    impl Event for Vouched {
        fn field(&self, slot: usize) -> Field<'_> {
            self.0.field(slot)
        }

        fn holds_literal(&self, slot: usize) -> Option<bool> {
            (slot == 7).then_some(self.1)
        }
    }

    /// An event vouched for counts, or not, without a search of its value
    /// where a literal decides, and is searched where one does not.
    #[test]
    fn a_vouched_literal_decides_only_for_contains_patterns() {
        let grouping = Grouping::plain(6);
        let at = Origin::default();
        for (patterns, counted) in [(&["*pastebin*"][..], 2), (&["*pastebin*", "pastebin*"], 3)] {
            let matcher = PatternSet::new(patterns).unwrap();
            let mut engine = Engine::new(&matcher, 7, 100, &grouping);
            // Where a literal decides, the first is counted and the third
            // not: the engine took the front-end's word for them.
            let vouched = |id, query, holds| Vouched(event(&[id], &[query], &["h1"]), holds);
            engine.offer(&vouched("1", "example.com", true), at).unwrap();
            engine.offer(&vouched("2", "pastebin.com", true), at).unwrap();
            engine.offer(&vouched("3", "pastebin.com", false), at).unwrap();
            engine.offer(&vouched("4", "pastebin.net", false), at).unwrap();
            engine.offer(&event(&["5"], &["example.com"], &["h1"]), at).unwrap();
            engine.settle().unwrap();
            assert_eq!(engine.counters().events_matched, counted, "{patterns:?}");
            assert_eq!(engine.counters().events_read, 5);
        }
    }

    #[test]
    fn broken_multivalue_names_the_slot() {
        let matcher = PatternSet::new(&["*"]).unwrap();
        let grouping = Grouping::plain(6);
        let mut engine = Engine::new(&matcher, 7, 100, &grouping);
        struct Broken;
        impl Event for Broken {
            fn field(&self, slot: usize) -> Field<'_> {
                if slot == 7 {
                    Field::Multi(Cow::Borrowed(b"x$a$"))
                } else {
                    Field::Single(Cow::Borrowed(b"v"))
                }
            }
        }
        assert!(matches!(
            engine.offer(&Broken, Origin::default()),
            Err(EventError::BrokenMultivalue { slot: 7, .. })
        ));
    }

    /// A cap reached by a staged membership names the row of its event,
    /// however many events were offered after it, and stops the counting
    /// there.
    #[test]
    fn a_cap_names_the_event_whose_membership_reached_it() {
        let matcher = PatternSet::new(&["*pastebin*"]).unwrap();
        let grouping = Grouping::plain(6);
        let mut engine = Engine::new(&matcher, 7, 2, &grouping);
        let at = |row| Origin { row, offset: 100 * row };
        let hosts = ["h1", "h2", "h1", "h3", "h1", "h4"];
        let mut failed = None;
        for (row, host) in hosts.iter().enumerate() {
            match engine.offer(&event(&["1"], &["pastebin.com"], &[host]), at(row as u64)) {
                Ok(()) => {}
                Err(EventError::Limit(cap)) => {
                    failed = Some(cap);
                    break;
                }
                Err(e) => panic!("{e:?}"),
            }
        }
        let cap = match failed {
            Some(cap) => cap,
            None => engine.settle().expect_err("a third group"),
        };
        assert_eq!(cap.at, at(3), "h3 is the third group");
        assert!(cap.message.contains("max_groups=2"), "{}", cap.message);
        engine.settle().expect("nothing left staged");
        assert_eq!(engine.stats().memberships(), 3, "h1, h2, h1: counted before the cap");
    }

    /// An event given as owned value lists per slot, which names its memo
    /// key (every slot but `_time`, each value list length-prefixed) or,
    /// `unkeyed`, none.
    #[derive(Debug, Clone)]
    struct Keyed {
        slots: Vec<Vec<Vec<u8>>>,
        encoded: Vec<Vec<u8>>,
        key: Vec<u8>,
        unkeyed: bool,
    }

    impl Keyed {
        fn new(slots: Vec<Vec<Vec<u8>>>) -> Self {
            let encoded = slots
                .iter()
                .map(|values| {
                    let mut enc = Vec::new();
                    multivalue::encode(values.iter().map(|v| v.as_slice()), &mut enc);
                    enc
                })
                .collect();
            let mut key = Vec::new();
            for values in &slots[TIME_SLOT + 1..] {
                key.extend_from_slice(&values.len().to_le_bytes());
                for v in values {
                    key.extend_from_slice(&v.len().to_le_bytes());
                    key.extend_from_slice(v);
                }
            }
            Keyed {
                slots,
                encoded,
                key,
                unkeyed: false,
            }
        }
    }

    impl Event for Keyed {
        fn field(&self, slot: usize) -> Field<'_> {
            match self.slots[slot].as_slice() {
                [] => Field::Absent,
                [one] if one.is_empty() => Field::Absent,
                [one] => Field::Single(Cow::Borrowed(one)),
                _ => Field::Multi(Cow::Borrowed(&self.encoded[slot])),
            }
        }

        fn memo_key(&self) -> Option<MemoKey<'_>> {
            (!self.unkeyed).then(|| MemoKey {
                layout: 1,
                spans: [&self.key[..]].into_iter().collect(),
            })
        }
    }

    /// A group as the proptest compares them: values, count, first and last time.
    type GroupRow = (Vec<Vec<u8>>, u64, Vec<u8>, Vec<u8>);

    fn values(pool: &'static [&'static str]) -> impl Strategy<Value = Vec<Vec<u8>>> {
        let one = proptest::sample::select(pool).prop_map(|v| v.as_bytes().to_vec());
        prop_oneof![
            8 => one.clone().prop_map(|v| vec![v]),
            1 => Just(Vec::new()),
            1 => proptest::collection::vec(one, 2..4),
        ]
    }

    fn keyed() -> impl Strategy<Value = Keyed> {
        const TIMES: &[&str] = &[
            "1",
            "2.5",
            "10",
            "",
            "abc",
            "1700000000.0000000000000000000000000000001",
            "1700000000.0000000000000000000000000000002x",
        ];
        (
            values(TIMES),
            values(&["a.exe", "b.exe"]),
            values(&["pastebin.com", "x.pastebin.com", "example.com"]),
            values(&["h1", "h2", "h3", "h4"]),
        )
            .prop_map(|(time, image, query, host)| Keyed::new(vec![time, image, query.clone(), host, query]))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Events counted through the memo give the groups, counters and
        /// errors (and where they fell) of the same events counted one by
        /// one; and the memo does answer.
        #[test]
        fn the_memo_counts_as_offering_each_event_does(
            events in proptest::collection::vec(keyed(), 1..80),
            max_groups in 1usize..8,
            pattern in proptest::sample::select(vec!["*pastebin*", "*paste*.com", "x.*"]),
        ) {
            let matcher = PatternSet::new(&[pattern]).unwrap();
            let grouping = Grouping {
                fields: 3,
                coalesce: vec![(2, b"none".to_vec())],
            };
            let mut memo = Engine::new(&matcher, by_slot(3), max_groups, &grouping);
            let mut plain = Engine::new(&matcher, by_slot(3), max_groups, &grouping);
            let mut failed = false;
            for (row, e) in events.iter().enumerate() {
                let at = Origin { row: row as u64, offset: 7 * row as u64 };
                let unkeyed = Keyed { unkeyed: true, ..e.clone() };
                let (a, b) = (memo.offer(e, at), plain.offer(&unkeyed, at));
                prop_assert_eq!(&a, &b, "row {}", row);
                if a.is_err() {
                    failed = true;
                    break;
                }
            }
            if !failed {
                prop_assert_eq!(memo.settle(), plain.settle());
                let rows = |engine: &Engine<'_>| -> Vec<GroupRow> {
                    engine.stats().sorted().iter().map(|g| {
                        (g.values().map(<[u8]>::to_vec).collect(), g.count(), g.first().to_vec(), g.last().to_vec())
                    }).collect()
                };
                prop_assert_eq!(rows(&memo), rows(&plain));
            }
            prop_assert_eq!(memo.counters(), plain.counters());
        }
    }

    /// Events that differ only in `_time` are answered by the memo after
    /// the first, and counted the same.
    #[test]
    fn repeated_events_are_answered_by_the_memo() {
        let matcher = PatternSet::new(&["*pastebin*"]).unwrap();
        let grouping = Grouping::plain(3);
        let mut engine = Engine::new(&matcher, by_slot(3), 10, &grouping);
        let row = |t: &str, host: &str| {
            let v = |s: &str| vec![s.as_bytes().to_vec()];
            Keyed::new(vec![
                v(t),
                v("a.exe"),
                v("x.pastebin.com"),
                v(host),
                v("x.pastebin.com"),
            ])
        };
        for (t, host) in [("5", "h1"), ("3", "h1"), ("9", "h2"), ("1", "h1"), ("", "h1")] {
            engine.offer(&row(t, host), Origin::default()).unwrap();
        }
        assert_eq!(engine.memo.answered(), 3, "h1 three times after its first");
        engine.settle().unwrap();
        let groups = engine.stats().sorted();
        let got: Vec<_> = groups
            .iter()
            .map(|g| (g.field(2), g.count(), g.first(), g.last()))
            .collect();
        assert_eq!(
            got,
            vec![
                (&b"h1"[..], 4, &b"1"[..], &b"5"[..]),
                (&b"h2"[..], 1, &b"9"[..], &b"9"[..])
            ]
        );
        assert_eq!(engine.counters().events_matched, 5);
    }
}
