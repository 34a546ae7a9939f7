//! splunkd's side of a distributed search (scp2.md §10), for the tests: read
//! the reduce's `streaming_preop`, tokenise it as splunkd tokenises a command
//! line, start one map process per simulated indexer with those arguments,
//! and hand the maps' output to the reduce re-encoded the way splunkd
//! re-encodes results between phases (its quoting, `__mv_` columns, its own
//! column order, its own chunking).
//!
//! Like `splunkd.rs` it shares no code with `src/`. Include it with
//! `#[path = "common/mapreduce.rs"] mod mapreduce;` after `mod common;`.
#![allow(dead_code)]

use crate::common::*;
use serde_json::json;

/// A command line split as splunkd splits one for `searchinfo`: tokens end at
/// blanks outside double quotes; `args` drop the quotes (a backslash inside
/// quotes escapes the next character), `raw_args` keep every byte
/// (`phase="map"` → `phase=map` and `phase="map"`, as in the sum captures).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tokenised {
    /// The command name (first token).
    pub command: String,
    /// Arguments with quotes stripped.
    pub args: Vec<String>,
    /// Arguments as written.
    pub raw_args: Vec<String>,
}

/// Tokenise `line`; an unbalanced quote is an error.
pub fn tokenise(line: &str) -> Result<Tokenised, String> {
    let mut args: Vec<String> = Vec::new();
    let mut raw: Vec<String> = Vec::new();
    let mut cur: Option<(String, String)> = None;
    let mut quoted = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if !quoted && c.is_whitespace() {
            if let Some((a, r)) = cur.take() {
                args.push(a);
                raw.push(r);
            }
            continue;
        }
        let (a, r) = cur.get_or_insert_with(Default::default);
        match c {
            '"' => {
                quoted = !quoted;
                r.push(c);
            }
            '\\' if quoted => {
                let next = chars.next().ok_or("a backslash ends the line")?;
                r.push(c);
                r.push(next);
                a.push(next);
            }
            _ => {
                a.push(c);
                r.push(c);
            }
        }
    }
    if quoted {
        return Err(format!("unbalanced quote in {line:?}"));
    }
    if let Some((a, r)) = cur {
        args.push(a);
        raw.push(r);
    }
    if args.is_empty() {
        return Err("empty command line".into());
    }
    let command = args.remove(0);
    raw.remove(0);
    Ok(Tokenised {
        command,
        args,
        raw_args: raw,
    })
}

/// The getinfo splunkd sends a map process on an indexer: the preop's tokens,
/// a `remote_` sid and a `litsearch` search string.
pub fn map_getinfo(preop: &str) -> GetInfo {
    let t = tokenise(preop).unwrap_or_else(|e| panic!("preop {preop:?}: {e}"));
    assert_eq!(t.command, "abusedweb", "the preop runs this command: {preop}");
    let args: Vec<&str> = t.args.iter().map(String::as_str).collect();
    let mut gi = getinfo(&args);
    gi.raw_args = t.raw_args;
    gi.sid = format!("remote_sh01_{}", gi.sid);
    gi.search = format!("litsearch index=sysmon EventCode=22 | {preop}");
    gi
}

/// The reduce's getinfo answer for `args`: checks its shape and returns the
/// `streaming_preop` it asks for.
pub fn reduce_preop(args: &[&str]) -> String {
    reduce_preop_with(args, &BY_FIELDS)
}

/// Event fields a search with these by-fields asks for: `_time`, `by`, and
/// `field=`'s field when not among them.
fn required_with(args: &[&str], by: &[&str]) -> Vec<String> {
    let mut fields: Vec<String> = ["_time"].iter().chain(by).map(|s| s.to_string()).collect();
    for a in args {
        if let Some(f) = a.strip_prefix("field=") {
            if !fields.iter().any(|x| x == f) {
                fields.push(f.to_string());
            }
        }
    }
    fields
}

/// [`reduce_preop`] for a search grouping by `by` (e.g. ESCU v13's fields).
pub fn reduce_preop_with(args: &[&str], by: &[&str]) -> String {
    let out = run_conversation(bin(), &getinfo(args), &[] as &[&[u8]]);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let reply = &out.replies[0];
    assert_eq!(reply.meta["type"], "reporting", "{}", out.describe());
    let mut required = required_with(args, by);
    required.extend(AGGREGATE_COLUMNS.iter().map(|c| c.to_string()));
    assert_eq!(reply.meta["required_fields"], json!(required), "{}", out.describe());
    reply.meta["streaming_preop"]
        .as_str()
        .unwrap_or_else(|| panic!("no streaming_preop: {}", out.describe()))
        .to_string()
}

/// The three aggregate columns a partial row adds to the by-fields.
pub const AGGREGATE_COLUMNS: [&str; 3] = ["abusedweb_count", "abusedweb_first_time", "abusedweb_last_time"];

/// Columns of the map phase's partial rows, in the order the command writes
/// them: the by-fields under their event names, then the aggregates.
pub fn partial_columns() -> Vec<&'static str> {
    partial_columns_with(&BY_FIELDS)
}

/// [`partial_columns`] for a search grouping by `by`.
pub fn partial_columns_with<'a>(by: &[&'a str]) -> Vec<&'a str> {
    by.iter().copied().chain(AGGREGATE_COLUMNS).collect()
}

/// Runs one map process (one indexer) over `bodies`; checks the streaming
/// getinfo answer and one reply per request, and returns every reply body
/// parsed, plus the final reply's metadata.
pub fn run_map(preop: &str, bodies: &[Vec<u8>]) -> (Vec<Table>, serde_json::Value) {
    run_map_with(preop, bodies, &BY_FIELDS)
}

/// [`run_map`] for a search grouping by `by`.
pub fn run_map_with(preop: &str, bodies: &[Vec<u8>], by: &[&str]) -> (Vec<Table>, serde_json::Value) {
    let gi = map_getinfo(preop);
    let out = run_conversation(bin(), &gi, bodies);
    let ctx = out.describe();
    assert_eq!(out.code(), Some(0), "map: {ctx}");
    assert!(out.stderr.is_empty(), "map stderr: {ctx}");
    assert_no_secrets(&out);
    assert_eq!(out.replies.len(), 1 + bodies.len(), "map answers every request: {ctx}");
    let required = required_with(&gi.args.iter().map(String::as_str).collect::<Vec<_>>(), by);
    assert_eq!(
        out.replies[0].meta,
        json!({"type": "streaming", "required_fields": required}),
        "map getinfo: {ctx}"
    );
    let mut tables = Vec::new();
    for (i, r) in out.replies[1..].iter().enumerate() {
        let last = i + 1 == bodies.len();
        assert_eq!(r.finished(), Some(last), "map mirrors finished: {ctx}");
        if r.b == 0 {
            continue;
        }
        let t = r.table();
        assert_eq!(t.header_names(), partial_columns_with(by), "partial header: {ctx}");
        assert!(!t.rows.is_empty(), "a map reply with a body has rows: {ctx}");
        tables.push(t);
    }
    (tables, out.replies.last().unwrap().meta.clone())
}

/// How splunkd lays out the map output for the reduce.
#[derive(Clone, Debug)]
pub struct Reencode {
    /// Sort keys giving the reduce's column order (one per partial column).
    pub column_order: Vec<u32>,
    /// Sort keys giving the order the rows arrive in (cycled over the rows).
    pub row_order: Vec<u32>,
    /// Rows per reduce chunk (cycled; the rest goes in the last chunk).
    pub chunk_rows: Vec<usize>,
    /// CRLF instead of LF.
    pub crlf: bool,
}

/// The map tables as splunkd hands them to the reduce: all rows in the given
/// order, columns in the given order with their `__mv_` twins, every value in
/// splunkd's quoting, split into chunks.
pub fn reencode(tables: &[Table], how: &Reencode) -> Vec<Vec<u8>> {
    reencode_with(tables, how, &BY_FIELDS)
}

/// [`reencode`] for a search grouping by `by`.
pub fn reencode_with(tables: &[Table], how: &Reencode, by: &[&str]) -> Vec<Vec<u8>> {
    let mut columns: Vec<(u32, &str)> = partial_columns_with(by)
        .into_iter()
        .enumerate()
        .map(|(i, c)| (how.column_order.get(i).copied().unwrap_or(i as u32), c))
        .collect();
    columns.sort();
    let columns: Vec<&str> = columns.into_iter().map(|(_, c)| c).collect();
    let mut events: Vec<(u32, usize, Event)> = Vec::new();
    for t in tables {
        for row in &t.rows {
            let mut e = Event::new();
            for (name, value) in t.header_names().iter().zip(row) {
                if !value.is_empty() {
                    e = e.set(name, value);
                }
            }
            let n = events.len();
            let key = how.row_order.get(n % how.row_order.len().max(1)).copied().unwrap_or(0);
            events.push((key, n, e));
        }
    }
    events.sort_by_key(|(k, n, _)| (*k, *n));
    let events: Vec<Event> = events.into_iter().map(|(_, _, e)| e).collect();
    let style = CsvStyle {
        line_end: if how.crlf { b"\r\n" } else { b"\n" },
        mv_columns: true,
    };
    let mut bodies = Vec::new();
    let mut rest = &events[..];
    let mut i = 0;
    loop {
        let n = how.chunk_rows.get(i).copied().unwrap_or(usize::MAX).min(rest.len());
        i += 1;
        let last = i >= how.chunk_rows.len() || n == rest.len();
        let take = if last { rest.len() } else { n };
        bodies.push(encode_events_with(&columns, &rest[..take], &style));
        rest = &rest[take..];
        if last {
            return bodies;
        }
    }
}
