//! The `abusedweb` command: the getinfo answer and the execute loop.
//!
//! Data flows one way: [frames](crate::protocol::chunk) → [requests](crate::protocol::metadata)
//! → [CSV rows](crate::codec::body) → the [engine](crate::engine)
//! (match, group, merge) → one reply per request. The loop is strictly
//! lock-step: each request is read completely, then answered once.
//!
//! A process plays one of two phases, chosen by its arguments:
//! * [`reduce`]: the reporting command the user typed. It reads raw events
//!   and partial rows alike, and answers with the result rows once splunkd
//!   says `finished`. With `distributed=true` its getinfo answer also asks
//!   splunkd to run the map phase first (`streaming_preop`, scp2.md §10).
//! * [`map`]: that preop, run by splunkd on each indexer as a streaming
//!   command. It answers every request with one [`partial`] row per group of
//!   that request's matching events.

pub mod lists;
pub mod map;
pub mod options;
pub mod partial;
pub mod profile;
pub mod reduce;

use crate::codec::body::{self, Row};
use crate::engine::aggregate::{Group, GroupId, Stats, MAX_KEY_FIELDS};
use crate::engine::wildcard::PatternSet;
use crate::engine::{CapReached, Engine, EventError, Origin};
use crate::error::{Error, Position};
use crate::placement;
use crate::protocol::chunk::{write_chunk, ChunkReader};
use crate::protocol::metadata::{self, Action};
use arrayvec::ArrayVec;
use options::{Options, Phase};
use std::io::{self, BufReader, Read, Write};

/// The ESCU v1-v4 search's `by` fields, in input order (`Computer` is written as `dest`).
pub const BY_FIELDS: &[&str] = profile::V4.by_inputs;

/// Result columns of the default search (ESCU v1-v4), in order.
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

/// Event fields the command asks splunkd for, in engine slot order: `_time`,
/// the ESCU version's by-fields and the match field.
pub fn required_fields(opts: &Options) -> Vec<&str> {
    let mut fields = vec!["_time"];
    fields.extend(opts.profile.by_inputs);
    if !fields.contains(&opts.field.as_str()) {
        fields.push(&opts.field);
    }
    fields
}

/// What a phase does with each request's body and how it answers.
trait PhaseRun {
    /// Take in one request body.
    fn consume(&mut self, body: &mut (dyn Read + Send), chunk: u64, offset: u64) -> Result<(), Error>;
    /// Write the reply to the request just consumed, one chunk, to `out`.
    fn reply(&mut self, finished: bool, out: &mut dyn Write) -> io::Result<()>;
}

/// Serve one splunkd conversation and return the process exit code: 0 after
/// a final reply or a clean end of input, 1 after a fatal error (which has
/// been answered with an error reply).
pub fn run<R: Read + Send, W: Write>(input: R, output: &mut W) -> i32 {
    match serve(input, output) {
        Ok(()) => 0,
        Err(e) => {
            // If the pipe itself is broken there is no one left to tell.
            let _ = write_chunk(output, &metadata::error_reply(&e.to_string()), b"");
            1
        }
    }
}

fn serve<R: Read + Send, W: Write>(input: R, output: &mut W) -> Result<(), Error> {
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
    let mut opts = Options::parse(&request.args)?;
    if opts.needs_lists() {
        opts.apply_lists(&lists::Lists::load()?)?;
    }
    let grouping = opts.profile.grouping();
    let mut phase: Box<dyn PhaseRun + '_> = match opts.phase {
        Phase::Map => {
            let fields = required_fields(&opts);
            write_chunk(output, &metadata::map_getinfo_reply(&fields), b"")?;
            Box::new(map::Map::new(&opts))
        }
        Phase::Reduce => {
            let fields = reduce::required_fields(&opts);
            let preop = opts.distributed.then(|| opts.map_preop());
            write_chunk(output, &metadata::getinfo_reply(&fields, preop.as_deref()), b"")?;
            Box::new(reduce::Reduce::new(&opts, &grouping))
        }
    };

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
        phase.consume(&mut body, at.chunk, body_offset)?;
        body.skip_rest().map_err(|e| Error::Framing {
            at,
            detail: e.to_string(),
        })?;
        phase.reply(request.finished, output)?;
        if request.finished {
            return Ok(());
        }
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

/// Say where an event's problem was: the chunk, row and byte offset.
fn locate(e: EventError, row: &Row<'_>, chunk: u64, base: u64, mv_columns: &[String]) -> Error {
    match e {
        EventError::BrokenMultivalue { slot, at } => Error::Body {
            chunk,
            row: row.number,
            offset: base + row.offset,
            column: Some(mv_columns[slot].clone()),
            detail: format!("the multivalue encoding is broken at byte {at} of the value"),
        },
        EventError::Limit(cap) => cap_error(cap, chunk, base),
    }
}

/// Say where a cap was reached: the chunk, and the row and byte offset of
/// the event whose membership reached it (the row being read, or one a few
/// rows before it, whose memberships were still staged).
fn cap_error(cap: CapReached, chunk: u64, base: u64) -> Error {
    Error::Limit(format!(
        "chunk {chunk}, row {} (byte offset {}): {}",
        cap.at.row,
        base + cap.at.offset,
        cap.message
    ))
}

/// Where a row came from, for the engine to hand back with a cap.
fn origin(row: &Row<'_>) -> Origin {
    Origin {
        row: row.number,
        offset: row.offset,
    }
}

/// Count the memberships a body's last rows left staged, then say how the
/// body went: a cap one of them reached came before whatever else stopped
/// the decoding (that was at a later row), so it is the error.
fn settle(engine: &mut Engine<'_>, decoded: Result<u64, Error>, chunk: u64, base: u64) -> Result<u64, Error> {
    engine.settle().map_err(|cap| cap_error(cap, chunk, base))?;
    decoded
}

/// The labels of a labelled result: the matcher, the patterns and their
/// categories (list order), and the by-field whose value they label.
pub type Labels<'a> = (&'a PatternSet, &'a [String], &'a [String], usize);

/// Bytes the body writer gathers before handing them to the output (under
/// the fuzzers, 64, so that their replies are written in several blocks).
const WRITE_BLOCK: usize = if cfg!(fuzzing) { 64 } else { 64 * 1024 };

/// From this many groups on, a reply is sorted while it is measured, and
/// written by two threads: each row costs a few hundred nanoseconds to
/// measure and to format (its cells quoted, its key met at random in
/// memory), starting a thread about a hundred microseconds. Under the
/// fuzzers, 4 groups, so that their replies take this way too.
const PARALLEL_ROWS: usize = if cfg!(fuzzing) { 4 } else { 4096 };

/// Rows formatted in one piece by one of the two writing threads: about
/// 100-200 KiB of output, so the two threads' pieces stay small. Under the
/// fuzzers, 2.
const SEGMENT_ROWS: usize = if cfg!(fuzzing) { 2 } else { 1024 };

/// The rows of a group table, sorted and measured before any is written, so
/// that a reply can announce its body's length in its chunk header and then
/// stream the rows out, never holding the whole body in memory.
///
/// A header of `columns`, then one row per group in `stats … by` order: the
/// by-values, then count, first and last `_time` (`times_first`: first, last,
/// count), then, with labels, the category and the pattern of the first
/// pattern in list order that matches the group's by-value of the labelled
/// field (both empty when none does: the event matched through another of
/// its values). With no group there is no row and no header.
pub struct GroupRows<'a> {
    stats: &'a Stats,
    columns: &'a [&'a str],
    times_first: bool,
    labels: Option<Labels<'a>>,
    /// With labels, each group's label (its pattern's index, or `u32::MAX`
    /// for none), by [`Group::index`].
    label_of: Vec<u32>,
    order: Vec<GroupId>,
    len: u64,
}

impl<'a> GroupRows<'a> {
    /// Label the groups of `stats` and count the bytes their rows take (a
    /// walk in memory order), then sort them.
    pub fn new(stats: &'a Stats, columns: &'a [&'a str], times_first: bool, labels: Option<Labels<'a>>) -> Self {
        let mut rows = GroupRows {
            stats,
            columns,
            times_first,
            labels,
            label_of: Vec::new(),
            order: Vec::new(),
            len: 0,
        };
        if stats.groups() == 0 {
            return rows;
        }
        // Sorting and measuring read the groups independently: with many,
        // one thread sorts while this one measures.
        let order = std::thread::scope(|scope| {
            let sorter = (stats.groups() >= PARALLEL_ROWS)
                .then(|| placement::spawn_scoped(scope, std::thread::Builder::new(), || stats.order()).ok())
                .flatten();
            rows.measure();
            match sorter {
                Some(sorter) => sorter.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                None => stats.order(),
            }
        });
        rows.order = order;
        rows
    }

    /// Label the groups (a walk in memory order) and count the bytes of
    /// the header and all rows.
    fn measure(&mut self) {
        let mut len = row_len(self.columns.iter().map(|c| c.as_bytes()));
        for g in self.stats.unordered() {
            let label = self
                .labels
                .and_then(|(matcher, _, _, field)| matcher.first_match(g.field(field)));
            if self.labels.is_some() {
                self.label_of.push(label.map_or(u32::MAX, |i| i as u32));
            }
            self.cells(&g, label, |cells| len += row_len(cells.iter().copied()));
        }
        self.len = len as u64;
    }

    /// Rows to write (not counting the header).
    pub fn rows(&self) -> usize {
        self.order.len()
    }

    /// Bytes [`Self::write`] writes.
    pub fn body_len(&self) -> u64 {
        self.len
    }

    /// Write the header and the rows to `out`, in blocks of about 64 KiB.
    ///
    /// With many rows a second thread formats every other segment of
    /// [`SEGMENT_ROWS`] rows, at most two segments ahead, while this one
    /// formats the others and writes all in order: the same bytes, in half
    /// the time, never more than a few segments held.
    pub fn write<W: Write + ?Sized>(&self, out: &mut W) -> std::io::Result<()> {
        if self.order.is_empty() {
            return Ok(());
        }
        let mut block = Vec::with_capacity(WRITE_BLOCK + 4096);
        body::write_row(&mut block, self.columns.iter().map(|c| c.as_bytes()));
        if self.order.len() < PARALLEL_ROWS {
            self.format(&self.order, &mut block, Some(out))?;
            return out.write_all(&block);
        }
        std::thread::scope(|scope| {
            let (formatted, ready) = std::sync::mpsc::sync_channel::<Vec<u8>>(1);
            let (spare, spares) = std::sync::mpsc::sync_channel::<Vec<u8>>(2);
            let helper = placement::spawn_scoped(scope, std::thread::Builder::new(), move || {
                for segment in self.order.chunks(SEGMENT_ROWS).skip(1).step_by(2) {
                    let mut piece = spares.try_recv().unwrap_or_default();
                    piece.clear();
                    self.format::<io::Sink>(segment, &mut piece, None)
                        .expect("formatting into memory cannot fail");
                    if formatted.send(piece).is_err() {
                        break;
                    }
                }
            });
            let ours = helper.is_ok();
            for (k, segment) in self.order.chunks(SEGMENT_ROWS).enumerate() {
                if k % 2 == 0 || !ours {
                    self.format(segment, &mut block, Some(&mut *out))?;
                    continue;
                }
                let Ok(piece) = ready.recv() else {
                    // The helper stopped (it cannot fail short of a panic,
                    // which the scope passes on): format the rest here.
                    self.format(segment, &mut block, Some(&mut *out))?;
                    continue;
                };
                out.write_all(&block)?;
                block.clear();
                out.write_all(&piece)?;
                let _ = spare.try_send(piece);
            }
            out.write_all(&block)
        })
    }

    /// Append the rows of the groups `ids` to `block`, handing it to `out`
    /// whenever it holds [`WRITE_BLOCK`] bytes (with no `out`, the caller
    /// writes the piece whole).
    fn format<W: Write + ?Sized>(
        &self,
        ids: &[GroupId],
        block: &mut Vec<u8>,
        mut out: Option<&mut W>,
    ) -> io::Result<()> {
        // Sorted order meets the groups at random places: ask for each
        // group's key record 16 rows ahead, and for its tally 8 rows ahead
        // (its index is in the record, loaded by then).
        for (i, &id) in ids.iter().enumerate() {
            if let Some(&ahead) = ids.get(i + 16) {
                self.stats.prefetch_record(ahead);
            }
            if let Some(&ahead) = ids.get(i + 8) {
                self.stats.prefetch_tally(ahead);
            }
            let g = self.stats.get(id);
            let label = match self.label_of.get(g.index()) {
                Some(&i) if i != u32::MAX => Some(i as usize),
                _ => None,
            };
            self.cells(&g, label, |cells| body::write_row(block, cells.iter().copied()));
            if let Some(out) = out.as_deref_mut().filter(|_| block.len() >= WRITE_BLOCK) {
                out.write_all(block)?;
                block.clear();
            }
        }
        Ok(())
    }

    /// Call `f` with the cells of the row of `g`, labelled with pattern `label`.
    fn cells(&self, g: &Group<'_>, label: Option<usize>, f: impl FnOnce(&[&[u8]])) {
        let mut count = [0u8; 20];
        let count = fmt_u64(g.count(), &mut count);
        let mut cells: ArrayVec<&[u8], { MAX_KEY_FIELDS + 5 }> = g.values().collect();
        if self.times_first {
            cells.extend([g.first(), g.last(), count]);
        } else {
            cells.extend([count, g.first(), g.last()]);
        }
        if let Some((_, patterns, categories, _)) = self.labels {
            match label {
                Some(i) => cells.extend([categories[i].as_bytes(), patterns[i].as_bytes()]),
                None => cells.extend([&b""[..], b""]),
            }
        }
        f(&cells)
    }
}

/// Write the groups of `stats` to `out` as [`GroupRows`] describes. Serves
/// the reduce's result and the map's partial rows. Returns the number of rows
/// written; with no group nothing is written.
pub fn write_groups(
    stats: &Stats,
    columns: &[&str],
    times_first: bool,
    labels: Option<(&PatternSet, &[String], &[String], usize)>,
    out: &mut Vec<u8>,
) -> usize {
    let rows = GroupRows::new(stats, columns, times_first, labels);
    out.reserve(rows.body_len() as usize);
    rows.write(out).expect("writing to memory cannot fail");
    rows.rows()
}

/// [`write_groups`] for the default search's result (tests and benches).
pub fn write_results(stats: &Stats, columns: &[&str], out: &mut Vec<u8>) -> usize {
    write_groups(stats, columns, false, None, out)
}

/// Bytes [`body::write_row`] writes for `values`.
fn row_len<'v>(values: impl IntoIterator<Item = &'v [u8]>) -> usize {
    values.into_iter().map(|v| value_len(v) + 1).sum()
}

/// Bytes [`body::write_value`] writes for `value`: bare when it is only ASCII
/// letters and digits, otherwise quoted with its quotes doubled.
fn value_len(value: &[u8]) -> usize {
    body::Quoting::of(value).len(value)
}

/// `n` in decimal, written into `buf` without allocating.
fn fmt_u64(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::body::encode_records;

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
    fn value_len_is_what_write_value_writes() {
        for v in [
            &b""[..],
            b"abc09",
            b"a b",
            b"\"",
            b"\"\"x\"",
            b"a,b\nc\r",
            b"\0\xff\xe0\xb8\x81",
            b"C:\\Windows\\x.exe",
        ] {
            let mut out = Vec::new();
            body::write_value(&mut out, v);
            assert_eq!(value_len(v), out.len(), "{v:?}");
        }
    }

    /// The labels of the reply tests: one pattern and its category, and the
    /// result columns with the two label columns.
    fn paste_labels() -> (PatternSet, Vec<String>, Vec<String>, Vec<&'static str>) {
        let matcher = PatternSet::new(&["*paste*".to_string()]).unwrap();
        let cols = RESULT_COLUMNS
            .iter()
            .copied()
            .chain(["category", "matched_pattern"])
            .collect();
        (
            matcher,
            vec!["*paste*".to_string()],
            vec!["paste sites".to_string()],
            cols,
        )
    }

    #[test]
    fn group_rows_announce_the_bytes_they_write() {
        let mut stats = Stats::new(100, 6);
        let key = |q: &'static str| -> [&'static [u8]; 6] { [b"C:\\p.exe", q.as_bytes(), b"0", b"p", b"\"q\"", b"h"] };
        stats
            .add(&key("pastebin.com"), &[crate::engine::aggregate::Time::new(b"1.5")])
            .unwrap();
        stats.add(&key("a\"b"), &[]).unwrap();
        stats
            .add(&key("zz"), &[crate::engine::aggregate::Time::new(b"x,y")])
            .unwrap();
        let (matcher, patterns, categories, cols) = paste_labels();
        for (labels, times_first) in [
            (None, false),
            (Some((&matcher, &patterns[..], &categories[..], 1)), true),
        ] {
            let cols = if labels.is_some() {
                &cols[..]
            } else {
                &RESULT_COLUMNS[..]
            };
            let rows = GroupRows::new(&stats, cols, times_first, labels);
            let mut out = Vec::new();
            rows.write(&mut out).unwrap();
            assert_eq!(out.len() as u64, rows.body_len());
            assert_eq!(rows.rows(), 3);
            let mut chunk = Vec::new();
            crate::protocol::chunk::write_chunk_streamed(&mut chunk, b"{}", rows.body_len(), |o| rows.write(o))
                .unwrap();
            assert!(chunk.ends_with(&out));
        }
        let e = crate::protocol::chunk::write_chunk_streamed(&mut Vec::new(), b"{}", 5, |o| o.write_all(b"four"));
        assert!(e.unwrap_err().to_string().contains("announced 5 bytes but wrote 4"));
    }

    /// Many rows are sorted while measured and written by two threads: the
    /// bytes are those one thread writes, labels included, and a writer
    /// that fails at any point stops the reply with its error.
    #[test]
    fn many_rows_written_by_two_threads_are_written_as_by_one() {
        let mut stats = Stats::new(1 << 20, 6);
        let mut next = crate::engine::aggregate::xorshift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..3 * PARALLEL_ROWS + 77 {
            let (a, b) = (next(40), next(5000));
            let query = if b % 7 == 0 {
                format!("{b}.pastebin.com")
            } else {
                format!("q{b}, \"x\"")
            };
            let image = format!("C:\\p{a}.exe");
            let time = next(100_000).to_string();
            let key: [&[u8]; 6] = [image.as_bytes(), query.as_bytes(), b"0", b"p", b"", b"h"];
            stats
                .add(&key, &[crate::engine::aggregate::Time::new(time.as_bytes())])
                .unwrap();
        }
        assert!(stats.groups() > 2 * PARALLEL_ROWS, "{} groups", stats.groups());
        let (matcher, patterns, categories, labelled) = paste_labels();
        for (cols, labels) in [
            (&RESULT_COLUMNS[..], None),
            (&labelled[..], Some((&matcher, &patterns[..], &categories[..], 1))),
        ] {
            let rows = GroupRows::new(&stats, cols, false, labels);
            assert_eq!(rows.order.len(), stats.groups());
            let mut two = Vec::new();
            rows.write(&mut two).unwrap();
            let mut one = Vec::new();
            body::write_row(&mut one, cols.iter().map(|c| c.as_bytes()));
            rows.format::<Vec<u8>>(&rows.order, &mut one, None).unwrap();
            assert!(one == two, "the two threads' rows differ from one thread's");
            assert_eq!(two.len() as u64, rows.body_len());
            let sorted: Vec<Vec<u8>> = stats
                .sorted()
                .iter()
                .map(|g| g.values().collect::<Vec<_>>().concat())
                .collect();
            let ordered: Vec<Vec<u8>> = rows
                .order
                .iter()
                .map(|&id| stats.get(id).values().collect::<Vec<_>>().concat())
                .collect();
            assert!(sorted == ordered);

            struct Fails(usize);
            impl Write for Fails {
                fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                    if b.len() > self.0 {
                        return Err(io::Error::other("the pipe is closed"));
                    }
                    self.0 -= b.len();
                    Ok(b.len())
                }
                fn flush(&mut self) -> io::Result<()> {
                    Ok(())
                }
            }
            for room in [0, WRITE_BLOCK + 1, two.len() / 2, two.len() - 1] {
                let e = rows.write(&mut Fails(room)).unwrap_err();
                assert_eq!(e.to_string(), "the pipe is closed");
            }
            rows.write(&mut Fails(two.len())).unwrap();
        }
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
