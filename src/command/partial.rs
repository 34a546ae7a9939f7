//! Partial rows: what a map phase sends its reduce phase.
//!
//! One row per group of the events one map request matched: the by-values of
//! the ESCU version the search runs (under their event names, e.g. `Computer`
//! and `dvc`, after `coalesce`), the count, and the minimum and maximum
//! `_time` in their original text. The three aggregate columns
//! carry the command's name so that no event field is mistaken for them; a
//! row is a partial row exactly when its count column is non-empty.
//!
//! splunkd re-encodes these rows between the phases (its quoting, `__mv_`
//! columns, its own column order), and a partial row could be forged by a
//! search that writes these columns itself, so the reduce trusts nothing: a
//! partial row must have one value in every by-field and the count, a count
//! of at least 1, and a consistent time range, and must not also carry event
//! columns; an event row must not carry a partial column. Anything else is
//! an error naming the row, never a silently wrong count.

use crate::codec::body::{Field, Row};
use crate::engine::aggregate::{parse_number, MAX_KEY_FIELDS};
use std::borrow::Cow;

/// The count column of a partial row.
pub const COUNT: &str = "abusedweb_count";
/// The minimum `_time` of a partial row's group, original text.
pub const FIRST_TIME: &str = "abusedweb_first_time";
/// The maximum `_time` of a partial row's group, original text.
pub const LAST_TIME: &str = "abusedweb_last_time";

/// The three aggregate columns of a partial row, after its by-fields.
pub const AGGREGATE_COLUMNS: [&str; 3] = [COUNT, FIRST_TIME, LAST_TIME];

/// The columns of a map phase's reply, in order: `by` then the aggregates.
pub fn partial_columns(by: &[&'static str]) -> Vec<&'static str> {
    by.iter().copied().chain(AGGREGATE_COLUMNS).collect()
}

/// Where the reduce's decoder finds each column a partial row involves.
#[derive(Debug, Clone)]
pub struct Slots {
    /// The by-fields, in `stats … by` order, with their names.
    pub by: Vec<(usize, &'static str)>,
    /// [`COUNT`].
    pub count: usize,
    /// [`FIRST_TIME`].
    pub first: usize,
    /// [`LAST_TIME`].
    pub last: usize,
    /// Columns only an event has (`_time`, a match field that is not a
    /// by-field), with their names.
    pub event_only: Vec<(usize, String)>,
    /// The partial columns as a [`Row::columns_present`] mask.
    mask: u64,
}

impl Slots {
    /// Slots for the three partial columns at `count`, `count + 1`, `count + 2`.
    pub fn new(by: Vec<(usize, &'static str)>, count: usize, event_only: Vec<(usize, String)>) -> Self {
        let mask = [count, count + 1, count + 2]
            .iter()
            .fold(0, |m, &i| m | (1u64 << i.min(63)));
        Slots {
            by,
            count,
            first: count + 1,
            last: count + 2,
            event_only,
            mask,
        }
    }
}

/// A group's minimum and maximum `_time`, in their original text.
pub type TimeTexts<'r> = (Cow<'r, [u8]>, Cow<'r, [u8]>);

/// A validated partial row.
#[derive(Debug)]
pub struct Partial<'r> {
    /// The group's by-values (the first `Slots::by.len()`).
    pub key: [Cow<'r, [u8]>; MAX_KEY_FIELDS],
    /// Memberships the map counted.
    pub count: u64,
    /// Minimum and maximum `_time`, when any event of the group had one.
    pub times: Option<TimeTexts<'r>>,
}

/// What is wrong with a row: the column to blame and why.
pub type Problem = (String, String);

fn problem(column: &str, detail: impl Into<String>) -> Problem {
    (column.to_string(), detail.into())
}

/// A count as a map phase writes it: decimal digits, no sign, no leading
/// zero, at least 1, fitting 64 bits.
fn parse_count(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 20 || text[0] == b'0' || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// Is `row` a partial row? `Ok(None)` for an event, the validated partial
/// aggregate for a partial row, or what is wrong with it.
pub fn read<'r>(row: &Row<'r>, slots: &Slots) -> Result<Option<Partial<'r>>, Problem> {
    // Fast path for chunks of events (every chunk without a map phase): no
    // partial column in the header at all.
    if row.columns_present() & slots.mask == 0 {
        return Ok(None);
    }
    let count = match row.field(slots.count) {
        Field::Absent => {
            for (slot, name) in [(slots.first, FIRST_TIME), (slots.last, LAST_TIME)] {
                if row.field(slot) != Field::Absent {
                    return Err(problem(
                        name,
                        format!("an event row (no {COUNT}) carries the partial-row column {name}"),
                    ));
                }
            }
            return Ok(None);
        }
        Field::Multi(_) => return Err(problem(COUNT, "a partial row's count has several values")),
        Field::Single(text) => parse_count(&text).ok_or_else(|| {
            problem(
                COUNT,
                format!(
                    "a partial row's count must be a whole number from 1 to 2^64-1, got \"{}\"",
                    crate::error::excerpt(&text, 24)
                ),
            )
        })?,
    };
    for (slot, name) in &slots.event_only {
        if row.field(*slot) != Field::Absent {
            return Err(problem(
                name,
                format!("a partial row (with {COUNT}) also carries the event column {name}"),
            ));
        }
    }
    let mut key: [Cow<'r, [u8]>; MAX_KEY_FIELDS] = Default::default();
    for (i, (slot, name)) in slots.by.iter().enumerate() {
        key[i] = match row.field(*slot) {
            Field::Single(v) => v,
            Field::Absent => return Err(problem(name, "a partial row lacks this by-field")),
            Field::Multi(_) => return Err(problem(name, "a partial row has several values in this by-field")),
        };
    }
    let times = match (row.field(slots.first), row.field(slots.last)) {
        (Field::Absent, Field::Absent) => None,
        (Field::Single(first), Field::Single(last)) => {
            let ordered = match (parse_number(&first), parse_number(&last)) {
                (Some(a), Some(b)) => a <= b,
                (None, None) => first <= last,
                _ => false,
            };
            if !ordered {
                return Err(problem(
                    FIRST_TIME,
                    format!(
                        "a partial row's time range is impossible: {FIRST_TIME} \"{}\" and {LAST_TIME} \"{}\" \
                         (both numbers or both texts, first not after last)",
                        crate::error::excerpt(&first, 24),
                        crate::error::excerpt(&last, 24)
                    ),
                ));
            }
            Some((first, last))
        }
        (Field::Multi(_), _) => return Err(problem(FIRST_TIME, "a partial row's time has several values")),
        (_, Field::Multi(_)) => return Err(problem(LAST_TIME, "a partial row's time has several values")),
        (Field::Absent, _) => {
            return Err(problem(
                FIRST_TIME,
                format!("a partial row has {LAST_TIME} but no {FIRST_TIME}"),
            ))
        }
        (_, Field::Absent) => {
            return Err(problem(
                LAST_TIME,
                format!("a partial row has {FIRST_TIME} but no {LAST_TIME}"),
            ))
        }
    };
    Ok(Some(Partial { key, count, times }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        assert_eq!(parse_count(b"1"), Some(1));
        assert_eq!(parse_count(b"18446744073709551615"), Some(u64::MAX));
        for bad in [
            &b""[..],
            b"0",
            b"-1",
            b"+1",
            b"01",
            b"1.0",
            b"1e3",
            b" 1",
            b"18446744073709551616",
        ] {
            assert_eq!(parse_count(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }
}
