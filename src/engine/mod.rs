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
pub mod prefetch;
pub mod prefilter;
pub mod wildcard;

use crate::codec::multivalue;
pub use aggregate::{CapReached, Origin};
use aggregate::{Stats, Time, MAX_KEY_FIELDS};
use arrayvec::ArrayVec;
use std::borrow::Cow;
use std::ops::Range;
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
    pub fn offer<E: Event + ?Sized>(&mut self, event: &E, at: Origin) -> Result<(), EventError> {
        self.counters.events_read += 1;
        let matched = match event.holds_literal(self.match_slot) {
            Some(holds) if self.literal_decides => holds,
            _ => self.matches(event)?,
        };
        if !matched {
            return Ok(());
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
            match event.field(TIME_SLOT) {
                Field::Absent => return self.stats.stage(&key, &[], at).map_err(EventError::Limit),
                Field::Single(t) => return self.stats.stage(&key, &[Time::new(&t)], at).map_err(EventError::Limit),
                Field::Multi(_) => {}
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
        result
    }

    /// Does any value of the event's match field match?
    fn matches<E: Event + ?Sized>(&self, event: &E) -> Result<bool, EventError> {
        Ok(match event.field(self.match_slot) {
            Field::Absent => false,
            Field::Single(value) => self.matcher.is_match(&value),
            multi => {
                for value in multi.values() {
                    let value = value.map_err(|at| EventError::BrokenMultivalue {
                        slot: self.match_slot,
                        at,
                    })?;
                    if self.matcher.is_match(&value) {
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
}
