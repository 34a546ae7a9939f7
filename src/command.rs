//! The `abusedweb` command: the getinfo answer and the execute loop.
//!
//! Data flows one way: [`chunk`](crate::chunk) frames → [`metadata`](crate::metadata)
//! requests → [`body`](crate::body) rows → [`wildcard`](crate::wildcard) match →
//! [`aggregate`](crate::aggregate) groups → one reply per request. The loop is
//! strictly lock-step: each request is read completely, then answered once.

use crate::aggregate::{Stats, Time, KEY_FIELDS};
use crate::body::{Decoder, Field, Row};
use crate::chunk::{write_chunk, ChunkReader};
use crate::error::{Error, Position};
use crate::metadata::{self, Action, Metrics};
use crate::options::Options;
use std::io::{BufReader, Read, Write};
use std::ops::Range;
use std::time::Instant;

/// The ESCU search's `by` fields, in output order (`Computer` is written as `dest`).
pub const BY_FIELDS: [&str; KEY_FIELDS] = [
    "Image",
    "QueryName",
    "QueryStatus",
    "process_name",
    "QueryResults",
    "Computer",
];

/// Result columns, in order.
pub const RESULT_COLUMNS: [&str; 9] = [
    "Image",
    "QueryName",
    "QueryStatus",
    "process_name",
    "QueryResults",
    "dest",
    "count",
    "firstTime",
    "lastTime",
];

/// Most group memberships one event may produce through the cartesian product
/// of its multivalue by-fields; beyond it the event is refused, so one crafted
/// event cannot keep the command busy forever.
pub const MAX_COMBINATIONS_PER_EVENT: u64 = 1_000_000;

/// Fields the command asks splunkd for: `_time`, the by-fields and the match field.
pub fn required_fields(opts: &Options) -> Vec<&str> {
    let mut fields = vec!["_time"];
    fields.extend(BY_FIELDS);
    if !fields.contains(&opts.field.as_str()) {
        fields.push(&opts.field);
    }
    fields
}

/// Serve one splunkd conversation and return the process exit code: 0 after
/// a final reply or a clean end of input, 1 after a fatal error (which has
/// been answered with an error reply).
pub fn run<R: Read, W: Write>(input: R, output: &mut W) -> i32 {
    match serve(input, output) {
        Ok(()) => 0,
        Err(e) => {
            // If the pipe itself is broken there is no one left to tell.
            let _ = write_chunk(output, &metadata::error_reply(&e.to_string()), b"");
            1
        }
    }
}

fn serve<R: Read, W: Write>(input: R, output: &mut W) -> Result<(), Error> {
    let mut reader = ChunkReader::new(BufReader::with_capacity(64 * 1024, input));
    let mut meta = Vec::new();

    let Some((request, body_len, at)) = next_request(&mut reader, &mut meta)? else {
        return Ok(());
    };
    if request.action != Action::Getinfo {
        return Err(Error::Metadata {
            at,
            detail: "the first request must be getinfo, but it is execute".into(),
        });
    }
    if body_len != 0 {
        return Err(Error::Metadata {
            at,
            detail: format!("a getinfo request must not carry a body, but this one declares {body_len} bytes"),
        });
    }
    let opts = Options::parse(&request.args)?;
    let fields = required_fields(&opts);
    write_chunk(output, &metadata::getinfo_reply(&fields), b"")?;

    let mut search = Search::new(&opts, &fields);
    loop {
        let Some((request, body_len, at)) = next_request(&mut reader, &mut meta)? else {
            return Ok(());
        };
        if request.action != Action::Execute {
            return Err(Error::Metadata {
                at,
                detail: "a second getinfo request arrived; only execute requests may follow the first".into(),
            });
        }
        if body_len > opts.max_chunk_bytes {
            return Err(Error::Limit(format!(
                "chunk {} declares a body of {body_len} bytes, more than max_chunk_bytes={}",
                at.chunk, opts.max_chunk_bytes
            )));
        }
        let body_offset = reader.position().offset;
        let mut body = reader.body(body_len);
        search.consume(&mut body, at.chunk, body_offset)?;
        body.skip_rest().map_err(|e| Error::Framing {
            at,
            detail: e.to_string(),
        })?;
        if request.finished {
            let (meta, body) = search.finish();
            write_chunk(output, &meta, &body)?;
            return Ok(());
        }
        write_chunk(output, metadata::progress_reply(), b"")?;
    }
}

/// Read one request's header and metadata; `None` at a clean end of input.
fn next_request<R: std::io::BufRead>(
    reader: &mut ChunkReader<R>,
    meta: &mut Vec<u8>,
) -> Result<Option<(metadata::Request, u64, Position)>, Error> {
    let start = reader.position().offset;
    let Some(header) = reader.next_header()? else {
        return Ok(None);
    };
    let at = Position {
        chunk: reader.position().chunk,
        offset: start,
    };
    reader.read_metadata(header.metadata_len, meta)?;
    let request = metadata::parse_request(meta).map_err(|detail| Error::Metadata { at, detail })?;
    Ok(Some((request, header.body_len, at)))
}

/// The state of one search across execute requests.
struct Search<'o> {
    decoder: Decoder,
    sink: Sink<'o>,
}

/// Everything a row touches, kept apart from the decoder so the decoder can
/// lend out rows while the sink is updated.
struct Sink<'o> {
    opts: &'o Options,
    match_index: usize,
    stats: Stats,
    metrics: Metrics,
    started: Instant,
    /// Decoded values of the current event, and where each one sits.
    scratch: Vec<u8>,
    by_values: [Vec<Range<usize>>; KEY_FIELDS],
    time_values: Vec<Range<usize>>,
    mv_columns: Vec<String>,
}

/// Count one group membership; a limit error is told where it happened.
fn add(
    stats: &mut Stats,
    key: &[&[u8]; KEY_FIELDS],
    times: &[Time<'_>],
    row: &Row<'_>,
    chunk: u64,
    base: u64,
) -> Result<(), Error> {
    stats.add(key, times).map_err(|e| match e {
        Error::Limit(m) => Error::Limit(format!(
            "chunk {chunk}, row {} (byte offset {}): {m}",
            row.number,
            base + row.offset
        )),
        other => other,
    })
}

/// The value of a single-valued field.
fn single<'a>(field: &'a Field<'_>) -> Option<&'a [u8]> {
    match field {
        Field::Single(v) => Some(v),
        _ => None,
    }
}

/// Index of `_time` in the decoder's field list; the by-fields follow it.
const TIME_INDEX: usize = 0;

impl<'o> Search<'o> {
    fn new(opts: &'o Options, fields: &[&str]) -> Self {
        let decoder = Decoder::new(fields);
        let mv_columns = (0..fields.len()).map(|i| decoder.mv_column_name(i)).collect();
        let match_index = fields
            .iter()
            .position(|f| *f == opts.field)
            .expect("required_fields lists the match field");
        Search {
            decoder,
            sink: Sink {
                opts,
                match_index,
                stats: Stats::new(opts.max_groups),
                metrics: Metrics::default(),
                started: Instant::now(),
                scratch: Vec::new(),
                by_values: Default::default(),
                time_values: Vec::new(),
                mv_columns,
            },
        }
    }

    fn consume<R: Read>(&mut self, body: R, chunk: u64, offset: u64) -> Result<(), Error> {
        self.sink.metrics.chunks += 1;
        let sink = &mut self.sink;
        self.decoder
            .decode(body, chunk, offset, |row| sink.row(row, chunk, offset))?;
        Ok(())
    }

    fn finish(self) -> (Vec<u8>, Vec<u8>) {
        let mut body = Vec::new();
        let sink = self.sink;
        let mut metrics = sink.metrics;
        metrics.groups = sink.stats.write_results(&RESULT_COLUMNS, &mut body) as u64;
        metrics.memberships = sink.stats.memberships();
        metrics.seconds = sink.started.elapsed().as_secs_f64();
        (metadata::final_reply(&metrics), body)
    }
}

impl Sink<'_> {
    fn mv_error(&self, row: &Row<'_>, field: usize, chunk: u64, base: u64, at: usize) -> Error {
        Error::Body {
            chunk,
            row: row.number,
            offset: base + row.offset,
            column: Some(self.mv_columns[field].clone()),
            detail: format!("the multivalue encoding is broken at byte {at} of the value"),
        }
    }

    /// Decode every value of `field` into the scratch buffer, skipping empty
    /// elements; returns where they sit.
    fn collect(
        &mut self,
        row: &Row<'_>,
        field: usize,
        chunk: u64,
        base: u64,
        into: &mut Vec<Range<usize>>,
    ) -> Result<(), Error> {
        into.clear();
        for value in row.field(field).values() {
            let value = value.map_err(|at| self.mv_error(row, field, chunk, base, at))?;
            if !value.is_empty() {
                let start = self.scratch.len();
                self.scratch.extend_from_slice(&value);
                into.push(start..self.scratch.len());
            }
        }
        Ok(())
    }

    fn row(&mut self, row: &Row<'_>, chunk: u64, base: u64) -> Result<(), Error> {
        self.metrics.events_read += 1;
        let mut matched = false;
        for value in row.field(self.match_index).values() {
            let value = value.map_err(|at| self.mv_error(row, self.match_index, chunk, base, at))?;
            if self.opts.matcher.is_match(&value) {
                matched = true;
                break;
            }
        }
        if !matched {
            return Ok(());
        }
        self.metrics.events_matched += 1;

        // Fast path: every by-field and `_time` single-valued (almost every
        // Sysmon event), so the group key is borrowed straight from the record.
        let fields: [Field<'_>; KEY_FIELDS] = std::array::from_fn(|i| row.field(TIME_INDEX + 1 + i));
        let singles: [Option<&[u8]>; KEY_FIELDS] = std::array::from_fn(|i| single(&fields[i]));
        if singles.iter().all(Option::is_some) {
            let key = singles.map(|v| v.unwrap_or_default());
            match row.field(TIME_INDEX) {
                Field::Absent => return add(&mut self.stats, &key, &[], row, chunk, base),
                Field::Single(t) => return add(&mut self.stats, &key, &[Time::new(&t)], row, chunk, base),
                Field::Multi(_) => {}
            }
        }

        self.scratch.clear();
        let mut by_values = std::mem::take(&mut self.by_values);
        let mut combinations: u64 = 1;
        for (i, ranges) in by_values.iter_mut().enumerate() {
            self.collect(row, TIME_INDEX + 1 + i, chunk, base, ranges)?;
            combinations = combinations.saturating_mul(ranges.len() as u64);
        }
        let mut time_values = std::mem::take(&mut self.time_values);
        self.collect(row, TIME_INDEX, chunk, base, &mut time_values)?;
        let result = self.count(&by_values, &time_values, combinations, row, chunk, base);
        self.by_values = by_values;
        self.time_values = time_values;
        result
    }

    fn count(
        &mut self,
        by_values: &[Vec<Range<usize>>; KEY_FIELDS],
        time_values: &[Range<usize>],
        combinations: u64,
        row: &Row<'_>,
        chunk: u64,
        base: u64,
    ) -> Result<(), Error> {
        if combinations == 0 {
            return Ok(()); // a by-field is absent: `stats … by` drops the event
        }
        if combinations > MAX_COMBINATIONS_PER_EVENT {
            return Err(Error::Limit(format!(
                "chunk {chunk}, row {} (byte offset {}): the event's multivalue by-fields form {combinations} \
                 combinations, more than the limit of {MAX_COMBINATIONS_PER_EVENT}",
                row.number,
                base + row.offset
            )));
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
        let mut index = [0usize; KEY_FIELDS];
        loop {
            let key: [&[u8]; KEY_FIELDS] = std::array::from_fn(|i| &scratch[by_values[i][index[i]].clone()]);
            add(&mut self.stats, &key, times, row, chunk, base)?;
            // Advance the odometer over the value lists, last field fastest.
            let mut k = KEY_FIELDS;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::encode_records;

    fn chunk(meta: &str, body: &[u8]) -> Vec<u8> {
        let mut v = format!("chunked 1.0,{},{}\n", meta.len(), body.len()).into_bytes();
        v.extend_from_slice(meta.as_bytes());
        v.extend_from_slice(body);
        v
    }

    fn replies(mut out: &[u8]) -> Vec<(serde_json::Value, Vec<u8>)> {
        let mut r = ChunkReader::new(&mut out);
        let mut all = Vec::new();
        while let Some(h) = r.next_header().unwrap() {
            let mut meta = Vec::new();
            r.read_metadata(h.metadata_len, &mut meta).unwrap();
            let mut body = Vec::new();
            r.body(h.body_len).read_to_end(&mut body).unwrap();
            all.push((serde_json::from_slice(&meta).unwrap(), body));
        }
        all
    }

    const GETINFO: &str = r#"{"action":"getinfo","searchinfo":{"args":[]}}"#;
    const MORE: &str = r#"{"action":"execute","finished":false}"#;
    const LAST: &str = r#"{"action":"execute","finished":true}"#;

    fn events(rows: &[[&[&str]; 7]]) -> Vec<u8> {
        let fields: Vec<&[u8]> = ["_time"].iter().chain(BY_FIELDS.iter()).map(|f| f.as_bytes()).collect();
        let rows: Vec<Vec<Vec<Vec<u8>>>> = rows
            .iter()
            .map(|r| {
                r.iter()
                    .map(|vals| vals.iter().map(|v| v.as_bytes().to_vec()).collect())
                    .collect()
            })
            .collect();
        let mut body = Vec::new();
        encode_records(&fields, &rows, &mut body);
        body
    }

    #[test]
    fn aggregates_across_chunks_with_cartesian_product() {
        let a = events(&[
            [
                &["10"],
                &["C:\\p.exe"],
                &["pastebin.com", "other.net"],
                &["0"],
                &["p.exe"],
                &["-"],
                &["h1"],
            ],
            [
                &["5"],
                &["C:\\p.exe"],
                &["example.com"],
                &["0"],
                &["p.exe"],
                &["-"],
                &["h1"],
            ],
        ]);
        let b = events(&[[
            &["7"],
            &["C:\\p.exe"],
            &["PASTEBIN.com"],
            &["0"],
            &["p.exe"],
            &["-"],
            &[],
        ]]);
        let c = events(&[[
            &["3"],
            &["C:\\p.exe"],
            &["pastebin.com"],
            &["0"],
            &["p.exe"],
            &["-"],
            &["h1"],
        ]]);
        let mut input = chunk(GETINFO, b"");
        input.extend(chunk(MORE, &a));
        input.extend(chunk(MORE, &b));
        input.extend(chunk(LAST, &c));
        let mut out = Vec::new();
        assert_eq!(run(&input[..], &mut out), 0);
        let r = replies(&out);
        assert_eq!(r.len(), 4);
        assert_eq!(r[0].0["type"], "reporting");
        assert_eq!(r[1].0, serde_json::json!({"finished": false}));
        assert!(r[1].1.is_empty());
        assert_eq!(r[3].0["finished"], true);
        assert_eq!(r[3].0["inspector"]["metric.abusedweb.match"][2], 4);
        let text = String::from_utf8(r[3].1.clone()).unwrap();
        assert_eq!(
            text,
            "Image,QueryName,QueryStatus,\"process_name\",QueryResults,dest,count,firstTime,lastTime\n\
             \"C:\\p.exe\",\"other.net\",0,\"p.exe\",\"-\",h1,1,10,10\n\
             \"C:\\p.exe\",\"pastebin.com\",0,\"p.exe\",\"-\",h1,2,3,10\n"
        );
    }

    #[test]
    fn eof_after_getinfo_is_a_clean_exit() {
        let mut out = Vec::new();
        assert_eq!(run(&chunk(GETINFO, b"")[..], &mut out), 0);
        assert_eq!(replies(&out).len(), 1);
        let mut out = Vec::new();
        assert_eq!(run(&b""[..], &mut out), 0);
        assert!(out.is_empty());
    }

    #[test]
    fn protocol_errors_get_one_error_reply() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (chunk(LAST, b""), "chunk 1"),
            ([chunk(GETINFO, b""), chunk(GETINFO, b"")].concat(), "second getinfo"),
            (chunk(GETINFO, b"x"), "must not carry a body"),
            (
                chunk(r#"{"action":"getinfo","searchinfo":{"args":["bad=1"]}}"#, b""),
                "unknown option \"bad\"",
            ),
            (
                [chunk(GETINFO, b""), chunk(LAST, b"a,b\n1\n")].concat(),
                "chunk 2, row 1",
            ),
        ];
        for (input, want) in cases {
            let mut out = Vec::new();
            assert_eq!(run(&input[..], &mut out), 1);
            let r = replies(&out);
            let last = &r.last().unwrap().0;
            let err = last["error"].as_str().unwrap();
            assert!(err.contains(want), "{err} should contain {want}");
            assert_eq!(last["inspector"]["messages"][0][1], err);
            assert_eq!(last["finished"], true);
        }
    }

    #[test]
    fn combination_bomb_is_refused() {
        let many: Vec<String> = (0..40).map(|i| format!("v{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let body = events(&[[&["1"], &many, &["pastebin.com"], &many, &many, &many, &["h"]]]);
        let input = [chunk(GETINFO, b""), chunk(LAST, &body)].concat();
        let mut out = Vec::new();
        assert_eq!(run(&input[..], &mut out), 1);
        let r = replies(&out);
        assert!(r[1].0["error"].as_str().unwrap().contains("combinations"));
    }
}
