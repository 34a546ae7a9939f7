//! The CSV body codec: splunkd's result rows in, our result rows out.
//!
//! Decoding streams one chunk body through a fixed window and tokenises it
//! record by record, looking fields up by name in each chunk's own header
//! (scp2.md §18.4). No per-row allocation happens and memory does not grow
//! with the chunk size: the window only grows when a single record is larger
//! than it. A field's values are: the decoded `__mv_<field>` list when that
//! column is non-empty, else the plain column when non-empty, else none (an
//! empty value is an absent value in Splunk).
//!
//! Why not the `csv` crate here: its byte-at-a-time state machine was 55% of
//! the command's time. The tokeniser below jumps from delimiter to delimiter
//! with `memchr` (quoted cell: to the next quote; bare cell: to the next comma,
//! LF or quote) and is about twice as fast on splunkd's bodies, where nearly
//! every value is quoted. It accepts strict RFC 4180 — exactly what splunkd
//! writes — and names the row and byte of anything else. The `csv` crate stays
//! as the independent oracle the tests compare against.
//!
//! Encoding writes values the way splunkd does: bare only when empty or made
//! of ASCII letters and digits, otherwise quoted with quotes doubled. That
//! also protects values with leading or trailing blanks (scp2.md §18.3).

use crate::codec::ahead::{self, Ahead, Body, Filled, Hits, Shared};
use crate::codec::{multivalue, skim};
use crate::engine::memo::{MemoKey, MAX_SPANS};
use crate::engine::prefilter::Prefilter;
use crate::engine::Event;
pub use crate::engine::Field;
use crate::error::Error;
use arrayvec::ArrayVec;
use std::borrow::Cow;
use std::io::{self, Read};
use std::sync::Mutex;

/// How many body bytes one window takes; a record larger than this grows it.
/// 256 KiB: the three windows in flight (two with the reader thread, one
/// with the decoder) then fit in one core's L2 cache next to the rest;
/// with 1 MiB windows a run took 1.05-1.1x as long (paired runs, 1% and 20%
/// match; 128 KiB was slower again, and four windows ahead no better).
/// The fuzzers' inputs are at most 64 KiB, so under them (`cfg(fuzzing)`)
/// a window is 1 KiB: a body of more than one window is read ahead and
/// handed over window by window, as a real chunk's megabytes are. (With
/// 1 MiB windows the fuzzers reached a third fewer branches; with 256 bytes
/// they ran 3x slower than with 1 KiB.)
pub const WINDOW: usize = if cfg!(fuzzing) { 1024 } else { 1 << 18 };

/// The room before them for the end of the window before: far more than a
/// row of splunkd's, so a row is seldom copied twice.
const HEADROOM: usize = WINDOW / 8;

/// The fields one chunk's header provides, resolved to column indexes.
#[derive(Debug, Default, Clone)]
struct Columns {
    plain: Vec<Option<usize>>,
    mv: Vec<Option<usize>>,
    count: usize,
    /// Bit `i` set when wanted field `i` has a column (fields from 64 on
    /// always count as present).
    present: u64,
    /// The columns of a row's memo key ([`Row::memo_key`]), in runs of
    /// neighbours (first and last column); `None` when not asked for
    /// ([`Decoder::remember_rows_but`]) or in too many runs.
    runs: Option<ArrayVec<(usize, usize), MAX_SPANS>>,
    /// Which header the runs were read from: a new number for each header
    /// that places the wanted fields differently.
    layout: u64,
}

/// Decodes chunk bodies for a fixed list of wanted field names.
pub struct Decoder {
    wanted: Vec<Vec<u8>>,
    mv_names: Vec<Vec<u8>>,
    columns: Columns,
    window: Vec<u8>,
    ends: Vec<usize>,
    /// With a prefilter, rows holding none of its literals are only skimmed.
    prefilter: Option<Prefilter>,
    /// Wanted fields whose column in a chunk's header turns skimming off.
    skim_unless: u64,
    /// Rows of the last body passed over by the skimmer.
    skipped: u64,
    /// Windows for the worker reading ahead, kept from one body to the next.
    spare: Vec<Vec<u8>>,
    /// The window's size between bodies ([`WINDOW`]; smaller in tests, to
    /// cross its edges often).
    window_size: usize,
    /// The room kept at the front of each window for the record carried
    /// over from the window before ([`HEADROOM`]); a longer one is gathered
    /// by copying.
    headroom: usize,
    /// How much of each window the worker searched in the last body.
    searched_eighths: usize,
    /// Tests hold the split of the work at `searched_eighths`.
    pinned: bool,
    /// Tests keep the worker from taking the body before the decoder made
    /// this many reads of its own ([`Shared::hold_worker`]).
    hold_worker: usize,
    /// Tests wait for the worker instead ([`Shared::wait_for_worker`]).
    patient: bool,
    /// The wanted field whose cell is looked at for the prefilter's hits
    /// ([`Row::holds_literal`]).
    literal_field: Option<usize>,
    /// Keeps this thread off the body reader's CPU while the search lasts
    /// ([`crate::placement::Apart`]).
    apart: crate::placement::Apart,
    /// The wanted field whose plain column is left out of rows' memo keys
    /// (`_time`), when they are asked for ([`Self::remember_rows_but`]).
    memo_except: Option<usize>,
}

/// The current row of a chunk body, handed to the caller's closure.
pub struct Row<'r> {
    data: &'r [u8],
    start: usize,
    ends: &'r [usize],
    columns: &'r Columns,
    /// The wanted field whose cell the reader's list of the prefilter's
    /// hits covers, and whether a literal starts in its single value.
    literal: Option<(usize, bool)>,
    /// 1-based data row number within the chunk.
    pub number: u64,
    /// Byte offset of the row within the body.
    pub offset: u64,
}

impl<'r> Row<'r> {
    /// The raw bytes of cell `column` (quotes included) and whether they
    /// hold doubled quotes.
    #[inline]
    fn raw_cell(&self, column: usize) -> (&'r [u8], bool) {
        let (from, end) = self.cell_span(column);
        (&self.data[from..end], has_doubled_quotes(self.ends[column]))
    }

    /// Where cell `column` lies in the window: its raw bytes' start and end.
    #[inline]
    fn cell_span(&self, column: usize) -> (usize, usize) {
        let from = if column == 0 {
            self.start
        } else {
            cell_end(self.ends[column - 1]) + 1
        };
        (from, cell_end(self.ends[column]))
    }

    /// Where field `i` is single-valued (no `__mv_` value) and the
    /// worker's list covers its cell, whether it listed a hit inside the
    /// cell: what [`Self::holds_literal`] answers.
    fn literal_in(&self, i: usize, hits: &Hits) -> Option<bool> {
        if let Some(mv) = self.columns.mv[i] {
            if !is_empty_value(self.raw_cell(mv).0) {
                return None;
            }
        }
        let (from, end) = self.cell_span(self.columns.plain[i]?);
        hits.listed_within(from, end)
    }

    /// Which wanted fields this chunk's header has a column (plain or
    /// `__mv_`) for: bit `i` for field `i`; fields from 63 on share bit 63,
    /// set when any of them may be present. The same for every row of a
    /// chunk: one test tells a kind of chunk apart without reading a field.
    #[inline]
    pub fn columns_present(&self) -> u64 {
        self.columns.present
    }

    /// Where wanted field `i` is single-valued and the reader thread's list
    /// of the prefilter's hits covers its cell, whether one of the literals
    /// starts inside its value (the list holds every such start); `None`
    /// where not known, and for any field but the one
    /// [`Decoder::look_for_literals_in`] names.
    #[inline]
    pub fn holds_literal(&self, i: usize) -> Option<bool> {
        self.literal.filter(|&(f, _)| f == i).map(|(_, holds)| holds)
    }

    /// The row's memo key ([`MemoKey`]), when the decoder was asked for
    /// them ([`Decoder::remember_rows_but`]): the raw bytes of the cells of
    /// every wanted column but `_time`'s, in runs of neighbouring columns
    /// (the commas between them included). Rows with equal keys under one
    /// header hold the same bytes in every wanted cell but `_time`'s, so
    /// every field but `_time` reads the same.
    #[inline]
    pub fn memo_key(&self) -> Option<MemoKey<'r>> {
        let runs = self.columns.runs.as_ref()?;
        let spans = runs
            .iter()
            .map(|&(first, last)| &self.data[self.cell_span(first).0..self.cell_span(last).1])
            .collect();
        Some(MemoKey {
            layout: self.columns.layout,
            spans,
        })
    }

    /// The wanted field at index `i` (in the order given to [`Decoder::new`]).
    ///
    /// Most `__mv_` cells are empty and most values unquoted or quoted
    /// without doubled quotes: those are told from the raw bytes, without
    /// building a value to look at.
    pub fn field(&self, i: usize) -> Field<'r> {
        if let Some(c) = self.columns.mv[i] {
            let (raw, doubled) = self.raw_cell(c);
            if !is_empty_value(raw) {
                return Field::Multi(unquote(raw, doubled));
            }
        }
        match self.columns.plain[i] {
            Some(c) => {
                let (raw, doubled) = self.raw_cell(c);
                if is_empty_value(raw) {
                    Field::Absent
                } else {
                    Field::Single(unquote(raw, doubled))
                }
            }
            None => Field::Absent,
        }
    }
}

impl Event for Row<'_> {
    fn field(&self, slot: usize) -> Field<'_> {
        Row::field(self, slot)
    }

    fn holds_literal(&self, slot: usize) -> Option<bool> {
        Row::holds_literal(self, slot)
    }

    fn memo_key(&self) -> Option<MemoKey<'_>> {
        Row::memo_key(self)
    }
}

/// The tokeniser records each cell's end shifted left by one, with the low
/// bit set when the quoted cell holds doubled quotes; so reading a value never
/// searches it again.
fn cell_end(entry: usize) -> usize {
    entry >> 1
}

fn has_doubled_quotes(entry: usize) -> bool {
    entry & 1 == 1
}

/// Whether a raw cell holds the empty value: no bytes, or only the two
/// quotes of `""` (what [`unquote`] would make of it, without making it).
#[inline]
fn is_empty_value(raw: &[u8]) -> bool {
    raw.is_empty() || raw == b"\"\""
}

/// The value of a raw cell: quotes removed and doubled quotes undone. Borrows
/// unless the value itself contains a quote (`doubled`).
#[inline]
fn unquote(raw: &[u8], doubled: bool) -> Cow<'_, [u8]> {
    if raw.first() != Some(&b'"') {
        return Cow::Borrowed(raw);
    }
    let inner = &raw[1..raw.len() - 1];
    if !doubled {
        return Cow::Borrowed(inner);
    }
    Cow::Owned(undouble(inner))
}

/// The inside of a quoted cell with its doubled quotes undone: the rare
/// case, kept out of line.
#[cold]
fn undouble(inner: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(inner.len());
    let mut rest = inner;
    while let Some(i) = memchr::memchr(b'"', rest) {
        out.extend_from_slice(&rest[..=i]);
        rest = &rest[i + 2..];
    }
    out.extend_from_slice(rest);
    out
}

/// What tokenising from a record start found.
#[derive(Debug, PartialEq, Eq)]
enum Scan {
    /// A whole record; `ends` holds each cell's end and the next record starts at `next`.
    Record { next: usize },
    /// The window ends inside the record and more input may follow.
    NeedMore,
    /// Not RFC 4180: what is wrong and the byte (window index) where.
    Invalid { at: usize, what: &'static str },
}

/// Tokenise one record of `data` starting at `start`, recording the end of
/// every cell in `ends` (a quoted cell's end includes its closing quote; a
/// record's CR before LF is left out), encoded as [`cell_end`] and
/// [`has_doubled_quotes`] read them. `eof` says no more bytes follow `data`.
fn scan_record(data: &[u8], start: usize, eof: bool, ends: &mut Vec<usize>) -> Scan {
    ends.clear();
    // Most records are plain: cut from the skimmer's block classes.
    if let Some(next) = skim::cells(data, start, |end| ends.push(end << 1)) {
        return Scan::Record { next };
    }
    scan_bytes(data, start, eof, ends)
}

/// [`scan_record`] a byte at a time: every record the block classes leave,
/// and the one that words each error.
fn scan_bytes(data: &[u8], start: usize, eof: bool, ends: &mut Vec<usize>) -> Scan {
    ends.clear();
    let mut i = start;
    loop {
        if data.get(i) == Some(&b'"') {
            let open = i;
            let mut doubled = false;
            i += 1;
            loop {
                match memchr::memchr(b'"', &data[i..]) {
                    Some(j) if data.get(i + j + 1) == Some(&b'"') => {
                        doubled = true;
                        i += j + 2;
                    }
                    Some(j) if i + j + 1 == data.len() && !eof => return Scan::NeedMore,
                    Some(j) => {
                        i += j + 1;
                        break;
                    }
                    None if eof => {
                        return Scan::Invalid {
                            at: open,
                            what: "a quoted value is never closed",
                        }
                    }
                    None => return Scan::NeedMore,
                }
            }
            ends.push(i << 1 | usize::from(doubled));
            match data.get(i) {
                Some(b',') => i += 1,
                Some(b'\n') => return Scan::Record { next: i + 1 },
                Some(b'\r') if data.get(i + 1) == Some(&b'\n') => return Scan::Record { next: i + 2 },
                Some(b'\r') if i + 1 == data.len() => {
                    return if eof {
                        Scan::Record { next: i + 1 }
                    } else {
                        Scan::NeedMore
                    };
                }
                None if eof => return Scan::Record { next: i },
                None => return Scan::NeedMore,
                Some(_) => {
                    return Scan::Invalid {
                        at: i,
                        what: "a closing quote is followed by something other than a comma or a line end",
                    }
                }
            }
        } else if data.get(i) == Some(&b',') {
            // An empty cell (most `__mv_` columns): no search needed.
            ends.push(i << 1);
            i += 1;
        } else {
            match memchr::memchr3(b',', b'\n', b'"', &data[i..]) {
                Some(j) => {
                    let k = i + j;
                    match data[k] {
                        b',' => {
                            ends.push(k << 1);
                            i = k + 1;
                        }
                        b'\n' => {
                            ends.push((if k > i && data[k - 1] == b'\r' { k - 1 } else { k }) << 1);
                            return Scan::Record { next: k + 1 };
                        }
                        _ => {
                            return Scan::Invalid {
                                at: k,
                                what: "a double quote inside an unquoted value",
                            }
                        }
                    }
                }
                None if eof => {
                    let end = if data.len() > i && data[data.len() - 1] == b'\r' {
                        data.len() - 1
                    } else {
                        data.len()
                    };
                    ends.push(end << 1);
                    return Scan::Record { next: data.len() };
                }
                None => return Scan::NeedMore,
            }
        }
    }
}

/// Where one body's bytes come from, for the whole of [`Decoder::decode`].
struct Input<'scope, 'env, R> {
    /// Where the worker reading ahead runs: `None` when its thread could
    /// not be started, and the decoder reads the whole body itself.
    scope: Option<&'scope rayon_core::Scope<'env>>,
    body: &'env Mutex<Body<R>>,
    prefilter: Option<&'env Prefilter>,
    /// What the decoder and the worker tell each other.
    shared: &'env Shared,
}

impl Decoder {
    /// A decoder that extracts `wanted` fields (plus their `__mv_` columns).
    pub fn new<S: AsRef<[u8]>>(wanted: &[S]) -> Self {
        let wanted: Vec<Vec<u8>> = wanted.iter().map(|w| w.as_ref().to_vec()).collect();
        let mv_names = wanted.iter().map(|w| [b"__mv_", &w[..]].concat()).collect();
        Decoder {
            wanted,
            mv_names,
            columns: Columns::default(),
            window: Vec::new(),
            ends: Vec::new(),
            prefilter: None,
            skim_unless: 0,
            skipped: 0,
            spare: Vec::new(),
            window_size: WINDOW,
            headroom: HEADROOM,
            searched_eighths: 8,
            pinned: false,
            hold_worker: 0,
            patient: false,
            literal_field: None,
            apart: crate::placement::Apart::new(),
            memo_except: None,
        }
    }

    /// Give rows a memo key ([`Row::memo_key`]): every wanted column's cell
    /// (`__mv_` ones too) but the plain cell of wanted field `i`, `_time`,
    /// the one field that tells otherwise equal events apart.
    pub fn remember_rows_but(&mut self, i: usize) {
        self.memo_except = Some(i);
    }

    /// The bodies are read: this thread (and the threads it starts, which
    /// inherit its CPU mask) may run on any CPU again, however recently it
    /// was kept off the body reader's ([`crate::placement::Apart`]).
    pub fn let_go(&mut self) {
        self.apart = crate::placement::Apart::new();
    }

    /// Tell rows whose field `i` holds the start of a prefilter literal, and
    /// rows whose field `i` holds none ([`Row::holds_literal`]): the matched
    /// field, so that a matcher for which a literal decides need not search
    /// its value again.
    pub fn look_for_literals_in(&mut self, i: usize) {
        self.literal_field = Some(i);
    }

    /// Hand `each_row` only the rows where `prefilter` finds a literal; the
    /// other rows are skimmed ([`skim`]): counted and checked, but not
    /// tokenised. Not in a chunk whose header has a column for one of the
    /// wanted fields `unless` lists (bit `i` for field `i`, `i` < 63): the
    /// caller's rows that must be read whatever they hold.
    pub fn skim_with(&mut self, prefilter: Prefilter, unless: u64) {
        self.prefilter = Some(prefilter);
        self.skim_unless = unless;
    }

    /// How many rows of the last body [`decode`](Self::decode) passed over
    /// without calling `each_row` (all of them with no prefilter literal).
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Decode one chunk body, calling `each_row` for every data row.
    ///
    /// `chunk` and `base_offset` (the body's offset in the request stream)
    /// only serve error messages. Returns the number of data rows. Errors
    /// from the closure are passed through unchanged. A body longer than one
    /// window is read ahead on a second thread ([`ahead`]).
    pub fn decode<R, F>(&mut self, body: R, chunk: u64, base_offset: u64, mut each_row: F) -> Result<u64, Error>
    where
        R: Read + Send,
        F: FnMut(&Row<'_>) -> Result<(), Error>,
    {
        let prefilter = self.prefilter.take();
        let shared = Shared::new(self.searched_eighths, self.pinned)
            .hold_worker(self.hold_worker)
            .wait_for_worker(self.patient);
        let body = Mutex::new(Body::new(body));
        let input = Input {
            scope: None,
            body: &body,
            prefilter: prefilter.as_ref(),
            shared: &shared,
        };
        let result = match ahead::pool() {
            Some(pool) => pool.in_place_scope(|scope| {
                let decoded = self.decode_from(
                    Input {
                        scope: Some(scope),
                        ..input
                    },
                    chunk,
                    base_offset,
                    &mut each_row,
                );
                // Before the scope waits for the worker: a held one stops waiting.
                shared.body_done();
                decoded
            }),
            None => self.decode_from(input, chunk, base_offset, &mut each_row),
        };
        self.prefilter = prefilter;
        self.searched_eighths = shared.eighths();
        result
    }

    fn decode_from<'scope, 'env, R, F>(
        &mut self,
        input: Input<'scope, 'env, R>,
        chunk: u64,
        base_offset: u64,
        each_row: &mut F,
    ) -> Result<u64, Error>
    where
        R: Read + Send,
        F: FnMut(&Row<'_>) -> Result<(), Error>,
    {
        if self.window.len() < self.window_len() {
            self.window.resize(self.window_len(), 0);
        }
        let err = |row: u64, offset: u64, column: Option<String>, detail: String| Error::Body {
            chunk,
            row,
            offset: base_offset.wrapping_add(offset),
            column,
            detail,
        };
        let mut filled = 0; // valid bytes in the window
        let mut pos = 0; // start of the next record in the window
                         // Body offset of window[0], modulo 2^64: after a hand-over from the
                         // worker, window[0] may lie before the body's start.
        let mut window_offset = 0u64;
        let mut eof = false;
        let mut rows = 0u64;
        let mut have_header = false;
        let mut failed_read: Option<io::Error> = None;
        self.skipped = 0;
        let mut skimming = false;
        // The prefilter's answers for this window.
        let mut hits = Hits::default();
        let mut ahead: Option<Ahead<'scope>> = None;
        let mut first_fill = true;
        // The first read did not reach the body's end: read the rest ahead,
        // from when the header has told the worker what to look for.
        let mut read_ahead = false;
        loop {
            while skimming && pos < filled {
                // Where the worker skimmed from this row, its answer is the
                // skim's; elsewhere skim here, up to where its answers start.
                let mut refused = false;
                if let Some(run) = hits.run_at(pos) {
                    rows += run.rows;
                    self.skipped += run.rows;
                    pos = run.next;
                    refused = run.refused;
                }
                if refused || pos == filled {
                    break;
                }
                let prefilter = input.prefilter.expect("skimming needs a prefilter");
                let bound = hits.next_run(pos).unwrap_or(filled);
                let window = &self.window[..filled];
                let s = skim::skim(&window[..bound], pos, self.columns.count, |from| {
                    hits.next(prefilter, window, from)
                });
                rows += s.rows;
                self.skipped += s.rows;
                pos = s.next;
                if pos != bound || bound == filled {
                    break;
                }
            }
            let scan = if pos == filled {
                if eof {
                    break;
                }
                Scan::NeedMore
            } else {
                scan_record(&self.window[..filled], pos, eof, &mut self.ends)
            };
            match scan {
                Scan::Record { next } => {
                    let record_offset = window_offset.wrapping_add(pos as u64);
                    let empty_line = self.ends.len() == 1 && cell_end(self.ends[0]) == pos;
                    if empty_line {
                        // Blank lines carry no record (as in the csv crate).
                    } else if !have_header {
                        self.resolve_columns(pos);
                        have_header = true;
                        skimming = input.prefilter.is_some() && self.columns.present & self.skim_unless == 0;
                        input.shared.header_read(skimming, self.columns.count);
                        if std::mem::take(&mut read_ahead) {
                            ahead = self.start_ahead(&input);
                        }
                    } else {
                        rows += 1;
                        if self.ends.len() != self.columns.count {
                            return Err(err(
                                rows,
                                record_offset,
                                None,
                                format!(
                                    "the row has {} fields but the header has {}",
                                    self.ends.len(),
                                    self.columns.count
                                ),
                            ));
                        }
                        let mut row = Row {
                            data: &self.window[..filled],
                            start: pos,
                            ends: &self.ends,
                            literal: None,
                            columns: &self.columns,
                            number: rows,
                            offset: record_offset,
                        };
                        row.literal = self
                            .literal_field
                            .filter(|_| skimming)
                            .and_then(|i| Some((i, row.literal_in(i, &hits)?)));
                        each_row(&row)?;
                    }
                    pos = next;
                }
                Scan::NeedMore => {
                    if let Some(e) = failed_read.take() {
                        return Err(err(
                            rows + 1,
                            window_offset.wrapping_add(filled as u64),
                            None,
                            e.to_string(),
                        ));
                    }
                    if std::mem::take(&mut read_ahead) {
                        // A header longer than the first read.
                        ahead = self.start_ahead(&input);
                    }
                    let Some(worker) = &ahead else {
                        hits.forget();
                        // The first read stops at the worker's headroom: a
                        // body that ends there needs no thread, and a longer
                        // one is read (and searched) ahead almost entirely.
                        let upto = if first_fill { self.headroom } else { self.window.len() };
                        self.read_here(
                            input.body,
                            upto,
                            (&mut pos, &mut filled, &mut window_offset),
                            &mut eof,
                            &mut failed_read,
                        );
                        read_ahead = first_fill && !eof && failed_read.is_none();
                        first_fill = false;
                        continue;
                    };
                    let next = match worker.ready() {
                        Some(f) => Ok(f),
                        None => match Body::while_starting(input.body, input.shared) {
                            // The worker is still starting: read on here
                            // rather than wait for it.
                            Some(mut body) => {
                                hits.forget();
                                // As much again as the first read.
                                let upto = filled - pos + self.headroom;
                                self.read_into(
                                    &mut body,
                                    upto,
                                    (&mut pos, &mut filled, &mut window_offset),
                                    &mut eof,
                                    &mut failed_read,
                                );
                                continue;
                            }
                            None => worker.next(),
                        },
                    };
                    let f = match next {
                        Ok(f) => f,
                        Err(e) => {
                            failed_read = Some(e);
                            continue;
                        }
                    };
                    let tail = filled - pos;
                    if tail <= f.start {
                        // The usual case: the unfinished record moves into
                        // the headroom of the next window.
                        let Filled {
                            mut buf,
                            start,
                            end,
                            hits: found,
                            ended,
                        } = f;
                        let at = start - tail;
                        buf[at..start].copy_from_slice(&self.window[pos..filled]);
                        window_offset = window_offset.wrapping_add(pos as u64).wrapping_sub(at as u64);
                        let done = std::mem::replace(&mut self.window, buf);
                        let old_hits = std::mem::replace(&mut hits, found);
                        worker.give_back(self.standard(done), old_hits);
                        pos = at;
                        filled = end;
                        Self::ended(ended, &mut eof, &mut failed_read);
                    } else {
                        // A record longer than the headroom: gather it in
                        // this window, grown as when reading here.
                        hits.forget();
                        self.make_room(&mut pos, &mut filled, &mut window_offset);
                        let mut next = Some(f);
                        loop {
                            let f = match next.take().map_or_else(|| worker.next(), Ok) {
                                Ok(f) => f,
                                Err(e) => {
                                    failed_read = Some(e);
                                    break;
                                }
                            };
                            let bytes = &f.buf[f.start..f.end];
                            if filled + bytes.len() > self.window.len() {
                                self.window.resize(filled + bytes.len(), 0);
                            }
                            self.window[filled..filled + bytes.len()].copy_from_slice(bytes);
                            filled += bytes.len();
                            Self::ended(f.ended, &mut eof, &mut failed_read);
                            worker.give_back(f.buf, f.hits);
                            if eof || failed_read.is_some() || filled >= self.window.len() {
                                break;
                            }
                        }
                    }
                }
                Scan::Invalid { at, what } => {
                    let row = if have_header { rows + 1 } else { 0 };
                    return Err(err(row, window_offset.wrapping_add(at as u64), None, what.to_string()));
                }
            }
        }
        if let Some(worker) = ahead {
            self.spare = worker.finish();
        }
        if self.window.len() > self.window_len() {
            // One huge record grew the window; give the memory back.
            self.window.truncate(self.window_len());
            self.window.shrink_to_fit();
        }
        Ok(rows)
    }

    /// Keep the unfinished record: move it to the window's front, and double
    /// the window if it fills it.
    fn make_room(&mut self, pos: &mut usize, filled: &mut usize, window_offset: &mut u64) {
        self.window.copy_within(*pos..*filled, 0);
        *filled -= *pos;
        *window_offset = window_offset.wrapping_add(*pos as u64);
        *pos = 0;
        if *filled == self.window.len() {
            let bigger = self.window.len() * 2;
            self.window.resize(bigger, 0);
        }
    }

    /// Read more of the body on this thread, after the unfinished record,
    /// up to window byte `upto` (at least one byte).
    fn read_here<R: Read>(
        &mut self,
        body: &Mutex<Body<R>>,
        upto: usize,
        at: (&mut usize, &mut usize, &mut u64),
        eof: &mut bool,
        failed_read: &mut Option<io::Error>,
    ) {
        let mut body = body.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.read_into(&mut body, upto, at, eof, failed_read);
    }

    /// [`Self::read_here`] from a reader already held.
    fn read_into<R: Read>(
        &mut self,
        body: &mut Body<R>,
        upto: usize,
        (pos, filled, window_offset): (&mut usize, &mut usize, &mut u64),
        eof: &mut bool,
        failed_read: &mut Option<io::Error>,
    ) {
        self.make_room(pos, filled, window_offset);
        let upto = upto.max(*filled + 1).min(self.window.len());
        // Fill the whole window before scanning again: the unfinished record
        // is rescanned from its start, so rescanning after every short read
        // (64 KiB from a pipe) made one large record cost quadratic time.
        // Filled, a record is rescanned only when the window doubles. A read
        // error waits until the rows already read are done, so it names the
        // row it happened in.
        let (end, ended) = body.fill(&mut self.window[..upto], *filled);
        *filled = end;
        Self::ended(ended, eof, failed_read);
    }

    /// Start the worker for the rest of the body; `None` (read here) when
    /// the thread cannot start.
    fn start_ahead<'scope, 'env, R: Read + Send>(&mut self, input: &Input<'scope, 'env, R>) -> Option<Ahead<'scope>> {
        let scope = input.scope?;
        if let Some(cpu) = ahead::worker_cpu() {
            self.apart.keep_off(cpu);
        }
        let mut windows = std::mem::take(&mut self.spare);
        windows.resize_with(ahead::WINDOWS_AHEAD, || vec![0; self.window_len()]);
        Some(Ahead::start(
            scope,
            input.body,
            input.prefilter,
            input.shared,
            windows,
            self.headroom,
        ))
    }

    /// A window's length: the room for the record carried over from the
    /// window before, then the body's next bytes.
    fn window_len(&self) -> usize {
        self.headroom + self.window_size
    }

    /// A window the size the worker fills, made from `w`.
    fn standard(&self, mut w: Vec<u8>) -> Vec<u8> {
        if w.len() != self.window_len() {
            w.truncate(self.window_len());
            w.shrink_to_fit();
            w.resize(self.window_len(), 0);
        }
        w
    }

    /// Note how a window from the worker ended.
    fn ended(ended: Option<io::Result<()>>, eof: &mut bool, failed_read: &mut Option<io::Error>) {
        match ended {
            None => {}
            Some(Ok(())) => *eof = true,
            Some(Err(e)) => *failed_read = Some(e),
        }
    }

    fn resolve_columns(&mut self, start: usize) {
        let mut header: Vec<Cow<'_, [u8]>> = Vec::with_capacity(self.ends.len());
        let mut from = start;
        for &entry in &self.ends {
            header.push(unquote(&self.window[from..cell_end(entry)], has_doubled_quotes(entry)));
            from = cell_end(entry) + 1;
        }
        let find = |name: &[u8]| header.iter().position(|h| h.as_ref() == name);
        let plain: Vec<Option<usize>> = self.wanted.iter().map(|w| find(w)).collect();
        let mv: Vec<Option<usize>> = self.mv_names.iter().map(|w| find(w)).collect();
        // Memo keys read under the last header mean the same under this one
        // only if every wanted field has the same columns.
        let moved = plain != self.columns.plain || mv != self.columns.mv;
        self.columns.plain = plain;
        self.columns.mv = mv;
        self.columns.present = (0..self.wanted.len())
            .filter(|&i| i >= 64 || self.columns.plain[i].is_some() || self.columns.mv[i].is_some())
            .fold(0u64, |mask, i| mask | 1u64.checked_shl(i as u32).unwrap_or(0));
        if self.wanted.len() > 64 {
            self.columns.present |= 1 << 63;
        }
        self.columns.count = header.len();
        let runs = self.memo_except.and_then(|except| {
            let mut keyed: Vec<usize> = (self.columns.plain.iter().enumerate())
                .filter(|&(i, _)| i != except)
                .filter_map(|(_, c)| *c)
                .chain(self.columns.mv.iter().filter_map(|c| *c))
                .collect();
            keyed.sort_unstable();
            keyed.dedup();
            let mut runs = ArrayVec::new();
            for c in keyed {
                match runs.last_mut() {
                    Some((_, last)) if *last + 1 == c => *last = c,
                    _ => runs.try_push((c, c)).ok()?,
                }
            }
            Some(runs)
        });
        if moved || runs != self.columns.runs {
            self.columns.runs = runs;
            self.columns.layout += 1;
        }
    }

    /// The name of the `__mv_` column of wanted field `i`, for error messages.
    pub fn mv_column_name(&self, i: usize) -> String {
        String::from_utf8_lossy(&self.mv_names[i]).into_owned()
    }
}

/// How [`write_value`] writes a value: bare, quoted, or quoted with its
/// quotes doubled. A reply measures its rows with it before writing them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quoting {
    /// Only ASCII letters and digits: written bare.
    bare: bool,
    /// Holds a `"`, to be doubled inside the quotes.
    quotes: bool,
}

impl Quoting {
    /// Classify `value` sixteen bytes at a time, the last sixteen overlapping
    /// the ones before, so that each step is a few vector instructions (cells
    /// are mostly 5 to 60 bytes long); a value shorter than sixteen bytes a
    /// byte at a time (padding a copy of it made the vector load wait for the
    /// copy's stores).
    pub fn of(value: &[u8]) -> Self {
        let (mut other, mut quotes) = (false, false);
        let mut rest = value;
        while let Some((block, tail)) = rest.split_first_chunk::<16>() {
            let (o, q) = classify(block);
            if q {
                // A quote settles both answers (and leaving the loop keeps
                // LLVM from vectorising across blocks, byte by byte).
                return Quoting {
                    bare: false,
                    quotes: true,
                };
            }
            other |= o;
            rest = tail;
        }
        match value.last_chunk::<16>() {
            Some(last) if !rest.is_empty() => {
                let (o, q) = classify(last);
                (other, quotes) = (other | o, q);
            }
            // A short value (or none left over: `rest` is empty): eight
            // bytes at a time in a `u64`, from 4 bytes on two overlapping
            // loads (a byte seen twice changes no answer).
            _ => {
                let word = match rest.len() {
                    8.. => Some((u64_at(rest, 0), u64_at(rest, rest.len() - 8))),
                    4..8 => {
                        let (head, tail) = (u32_at(rest, 0), u32_at(rest, rest.len() - 4));
                        let both = u64::from(head) | u64::from(tail) << 32;
                        Some((both, both))
                    }
                    _ => None,
                };
                match word {
                    Some((head, tail)) => {
                        let (o, q) = (classify_word(head), classify_word(tail));
                        (other, quotes) = (other | o.0 | q.0, o.1 | q.1);
                    }
                    None => {
                        for &b in rest {
                            other |= !b.is_ascii_alphanumeric();
                            quotes |= b == b'"';
                        }
                    }
                }
            }
        }
        Quoting { bare: !other, quotes }
    }

    /// Bytes [`write_value`] writes for `value`, classified as `self`.
    pub fn len(self, value: &[u8]) -> usize {
        match (self.bare, self.quotes) {
            (true, _) => value.len(),
            (false, false) => value.len() + 2,
            (false, true) => value.len() + 2 + memchr::memchr_iter(b'"', value).count(),
        }
    }
}

/// Whether 16 bytes hold a byte other than an ASCII letter or digit, and a `"`.
#[inline(always)]
fn classify(block: &[u8; 16]) -> (bool, bool) {
    // One bit a byte, as a movemask makes: OR-ing bytes together instead
    // made LLVM unroll the lanes into hundreds of scalar instructions.
    let (mut other, mut quotes) = (0u16, 0u16);
    for (i, &b) in block.iter().enumerate() {
        let letter = (b | 0x20).wrapping_sub(b'a') < 26;
        let digit = b.wrapping_sub(b'0') < 10;
        other |= u16::from(!(letter | digit)) << i;
        quotes |= u16::from(b == b'"') << i;
    }
    (other != 0, quotes != 0)
}

/// The eight bytes of `bytes` at `at`, little-endian.
#[inline(always)]
fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// The four bytes of `bytes` at `at`, little-endian.
#[inline(always)]
fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

/// [`classify`] for the eight bytes of `word`, in its bits (SWAR): most
/// cells of a reply are short (a status, a process name, a time, a count),
/// where the byte loop cost eight instructions a byte.
#[inline(always)]
fn classify_word(word: u64) -> (bool, bool) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Each byte's low seven bits with its top bit set: subtracting a byte
    // value up to 0x80 borrows from no neighbour, and leaves the top bit
    // set exactly where the low bits are at least that value.
    let at_least = |x: u64, c: u8| (x | HIGH).wrapping_sub(ONES * u64::from(c)) & HIGH;
    let low = word & !HIGH;
    let digit = at_least(low, b'0') & !at_least(low, b'9' + 1);
    let folded = low | (ONES * 0x20);
    let letter = at_least(folded, b'a') & !at_least(folded, b'z' + 1);
    // Non-ASCII bytes (top bit set) are never letters or digits.
    let other = (!(digit | letter) | word) & HIGH;
    // A zero byte of `word ^ "` exactly where a quote is (the classic test
    // is exact on whether any byte is zero).
    let x = word ^ (ONES * u64::from(b'"'));
    let quote = x.wrapping_sub(ONES) & !x & HIGH;
    (other != 0, quote != 0)
}

/// Append one CSV value in splunkd's quoting style.
pub fn write_value(out: &mut Vec<u8>, value: &[u8]) {
    let quoting = Quoting::of(value);
    if quoting.bare {
        out.extend_from_slice(value);
        return;
    }
    out.push(b'"');
    if quoting.quotes {
        let mut rest = value;
        while let Some(i) = memchr::memchr(b'"', rest) {
            out.extend_from_slice(&rest[..=i]);
            out.push(b'"');
            rest = &rest[i + 1..];
        }
        out.extend_from_slice(rest);
    } else {
        out.extend_from_slice(value);
    }
    out.push(b'"');
}

/// Append one CSV row (values separated by commas, LF-terminated).
pub fn write_row<'v>(out: &mut Vec<u8>, values: impl IntoIterator<Item = &'v [u8]>) {
    for (i, v) in values.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_value(out, v);
    }
    out.push(b'\n');
}

/// Encode records as splunkd does: header of `fields` followed by one
/// `__mv_` column per field; each row given as one value list per field.
/// Used to write test and benchmark input, and to round-trip captures.
pub fn encode_records(fields: &[&[u8]], rows: &[Vec<Vec<Vec<u8>>>], out: &mut Vec<u8>) {
    let mut header: Vec<Vec<u8>> = fields.iter().map(|f| f.to_vec()).collect();
    header.extend(fields.iter().map(|f| [b"__mv_", *f].concat()));
    write_row(out, header.iter().map(Vec::as_slice));
    let mut cells: Vec<Vec<u8>> = Vec::new();
    for row in rows {
        cells.clear();
        for values in row {
            cells.push(values.join(&b'\n'));
        }
        for values in row {
            let mut mv = Vec::new();
            if values.len() > 1 {
                multivalue::encode(values.iter().map(Vec::as_slice), &mut mv);
            }
            cells.push(mv);
        }
        write_row(out, cells.iter().map(Vec::as_slice));
    }
}

/// One record of `data` from `start` as the tokeniser sees it at the end of
/// the input: where the next starts, its field count, and whether it is a
/// blank line; `None` when it is not RFC 4180. For the skimmer's tests.
#[cfg(test)]
pub(super) fn tokenise_for_tests(data: &[u8], start: usize) -> Option<(usize, usize, bool)> {
    let mut ends = Vec::new();
    match scan_record(data, start, true, &mut ends) {
        Scan::Record { next } => Some((next, ends.len(), ends.len() == 1 && cell_end(ends[0]) == start)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(body: &[u8], wanted: &[&str]) -> Result<Vec<Vec<Vec<Vec<u8>>>>, Error> {
        let mut d = Decoder::new(wanted);
        let mut out = Vec::new();
        d.decode(body, 2, 100, |row| {
            let mut fields = Vec::new();
            for i in 0..wanted.len() {
                let vals: Vec<Vec<u8>> = row.field(i).values().map(|v| v.unwrap().into_owned()).collect();
                fields.push(vals);
            }
            out.push(fields);
            Ok(())
        })?;
        Ok(out)
    }

    /// A row as [`equal_memo_keys_read_the_same`] keeps it: its layout,
    /// its key's spans, and every wanted field but `_time` (slot 0).
    type Keyed = (u64, Vec<Vec<u8>>, Vec<Vec<Vec<u8>>>);

    fn keyed_rows(decoder: &mut Decoder, body: &[u8], fields: usize, out: &mut Vec<Keyed>) {
        decoder
            .decode(body, 1, 0, |row| {
                let key = row.memo_key().expect("asked for");
                let values = (1..fields)
                    .map(|i| row.field(i).values().map(|v| v.unwrap().into_owned()).collect())
                    .collect();
                out.push((key.layout, key.spans.iter().map(|s| s.to_vec()).collect(), values));
                Ok(())
            })
            .unwrap();
    }

    proptest::proptest! {
        /// Rows with equal memo keys under one decoder read the same in
        /// every wanted field but `_time`, however the headers order,
        /// leave out or add columns; and rows whose wanted cells but
        /// `_time`'s are the same bytes have equal keys.
        #[test]
        fn equal_memo_keys_read_the_same(
            headers in proptest::collection::vec(
                proptest::strategy::Strategy::prop_shuffle(proptest::sample::subsequence(
                    vec!["_time", "a", "b", "extra", "__mv_a", "__mv__time", "__mv_b"],
                    2..=7,
                )),
                1..4,
            ),
            rows in proptest::collection::vec(proptest::collection::vec(0usize..6, 7), 1..40),
        ) {
            use proptest::prop_assert_eq;
            const CELLS: [&str; 6] = ["x", "\"x\"", "\"x,y\"", "\"q\"\"q\"", "", "\"$p$;$q$\""];
            let wanted = ["_time", "a", "b"];
            let mut decoder = Decoder::new(&wanted);
            decoder.remember_rows_but(0);
            let mut seen = Vec::new();
            let mut cells_of = Vec::new();
            for header in &headers {
                let mut body = header.join(",").into_bytes();
                body.push(b'\n');
                for row in &rows {
                    let cells: Vec<&str> = header
                        .iter()
                        .map(|c| match *c {
                            // `_time` and unwanted columns differ from row to row.
                            "_time" | "extra" => CELLS[(row[0] + cells_of.len()) % 5],
                            "a" => CELLS[row[1]],
                            "b" => CELLS[row[2]],
                            "__mv_a" => ["", "\"$x$;$y$\""][row[3] % 2],
                            "__mv__time" => ["", "\"$1$;$2$\""][row[4] % 2],
                            _ => ["", "\"$x$;$x$\""][row[5] % 2],
                        })
                        .collect();
                    body.extend_from_slice(cells.join(",").as_bytes());
                    body.push(b'\n');
                    let wanted_cells: Vec<(&str, &str)> = header
                        .iter()
                        .zip(&cells)
                        .filter(|(c, _)| !matches!(**c, "_time" | "extra"))
                        .map(|(c, v)| (*c, *v))
                        .collect();
                    cells_of.push(wanted_cells);
                }
                keyed_rows(&mut decoder, &body, wanted.len(), &mut seen);
            }
            prop_assert_eq!(seen.len(), cells_of.len());
            for i in 0..seen.len() {
                for j in 0..i {
                    let (a, b) = (&seen[i], &seen[j]);
                    if (a.0, &a.1) == (b.0, &b.1) {
                        prop_assert_eq!(&a.2, &b.2, "rows {} and {}", j, i);
                    }
                    if a.0 == b.0 && cells_of[i] == cells_of[j] {
                        prop_assert_eq!(&a.1, &b.1, "rows {} and {}", j, i);
                    }
                }
            }
            // A header placing the wanted fields anew is a new layout.
            for (i, h) in headers.iter().enumerate().skip(1) {
                let place = |h: &Vec<&str>| -> Vec<Option<usize>> {
                    ["_time", "a", "b", "__mv__time", "__mv_a", "__mv_b"].iter().map(|c| h.iter().position(|x| x == c)).collect()
                };
                let (now, before) = (seen[i * rows.len()].0, seen[(i - 1) * rows.len()].0);
                prop_assert_eq!(now == before, place(h) == place(&headers[i - 1]));
            }
        }
    }

    #[test]
    fn quoting_finds_any_byte_at_any_place() {
        // One byte of each kind at each place of values of 0 to 40 bytes
        // (inside the first block, the padding, the overlapping last block),
        // checked against the plain byte-by-byte rule and what is written.
        for len in 0..=40 {
            for at in 0..len.max(1) {
                for special in 0..=255u8 {
                    let mut value = vec![b'q'; len];
                    if len > 0 {
                        value[at] = special;
                    }
                    let quoted = if value.iter().all(u8::is_ascii_alphanumeric) {
                        value.clone()
                    } else {
                        let inner = value.iter().flat_map(|&b| if b == b'"' { vec![b, b] } else { vec![b] });
                        [vec![b'"'], inner.collect(), vec![b'"']].concat()
                    };
                    let mut out = Vec::new();
                    write_value(&mut out, &value);
                    assert_eq!(out, quoted, "{value:?}");
                    assert_eq!(Quoting::of(&value).len(&value), out.len(), "{value:?}");
                }
            }
        }
    }

    #[test]
    fn decodes_quotes_newlines_multivalue_and_invalid_utf8() {
        let body = b"\"_time\",QueryName,\"__mv__time\",\"__mv_QueryName\"\n\
            \"1.5\",\"a,\"\"b\"\"\nc\",,\n\
            2,\"x\ny\",,\"$x$;$y$$$\"\r\n\
            3,\"\xff\",,\n";
        let rows = collect(body, &["_time", "QueryName", "missing"]).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0][1], vec![b"a,\"b\"\nc".to_vec()]);
        assert_eq!(rows[1][1], vec![b"x".to_vec(), b"y$".to_vec()]);
        assert_eq!(rows[2][1], vec![b"\xff".to_vec()]);
        assert!(rows.iter().all(|r| r[2].is_empty()));
    }

    /// A reader that hands out one byte per call, so every record straddles
    /// window refills.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0.is_empty() || buf.is_empty() {
                return Ok(0);
            }
            buf[0] = self.0[0];
            self.0 = &self.0[1..];
            Ok(1)
        }
    }

    fn collect_from<R: Read + Send>(body: R, wanted: &[&str]) -> Result<Vec<Vec<Vec<Vec<u8>>>>, Error> {
        let mut d = Decoder::new(wanted);
        let mut out = Vec::new();
        d.decode(body, 2, 100, |row| {
            out.push(
                (0..wanted.len())
                    .map(|i| row.field(i).values().map(|v| v.unwrap().into_owned()).collect())
                    .collect(),
            );
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn byte_at_a_time_input_decodes_the_same() {
        let body =
            b"\"_time\",QueryName,\"__mv_QueryName\"\r\n1,\"a\"\"\r\nb\"\"\",\r\n\r\n2,\"x\",\"$p$;$q$\"\r\n3,y,";
        let whole = collect(body, &["_time", "QueryName"]).unwrap();
        let trickled = collect_from(Trickle(body), &["_time", "QueryName"]).unwrap();
        assert_eq!(whole, trickled);
        assert_eq!(whole.len(), 3);
        assert_eq!(whole[0][1], vec![b"a\"\r\nb\"".to_vec()]);
        assert_eq!(whole[1][1], vec![b"p".to_vec(), b"q".to_vec()]);
        assert_eq!(whole[2][1], vec![b"y".to_vec()]);
    }

    #[test]
    fn records_larger_than_the_window_grow_it_then_give_it_back() {
        let big = vec![b'x'; WINDOW * 3 + 17];
        let mut body = b"QueryName\n\"".to_vec();
        body.extend_from_slice(&big);
        body.extend_from_slice(b"\"\nsmall\n");
        let mut d = Decoder::new(&["QueryName"]);
        let mut lens = Vec::new();
        d.decode(&body[..], 1, 0, |row| {
            lens.push(row.field(0).values().next().unwrap().unwrap().len());
            Ok(())
        })
        .unwrap();
        assert_eq!(lens, [big.len(), 5]);
        assert_eq!(d.window.len(), WINDOW + HEADROOM);
    }

    /// A read that fails part-way names the same row and byte whether the
    /// body is read here or ahead on the worker, and the rows before it are
    /// all handed over first.
    #[test]
    fn a_failed_read_names_the_same_row_read_here_or_ahead() {
        struct FailsAfter<'a>(&'a [u8]);
        impl Read for FailsAfter<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0.is_empty() {
                    return Err(io::Error::other("the pipe broke"));
                }
                let n = buf.len().min(self.0.len()).min(5);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let body: Vec<u8> = std::iter::once(&b"f0,f1\n"[..])
            .chain(std::iter::repeat_n(&b"\"pastebin.com\",x\n"[..], 40))
            .chain(std::iter::once(&b"\"half"[..]))
            .flatten()
            .copied()
            .collect();
        let run = |window: usize| {
            let mut d = Decoder::new(&["f0"]);
            d.window_size = window;
            d.headroom = window / 2;
            d.skim_with(Prefilter::new(&[b"pastebin".to_vec()]).expect("a prefilter"), 0);
            let mut handed = 0;
            let e = d.decode(FailsAfter(&body), 3, 100, |_| {
                handed += 1;
                Ok(())
            });
            (e.expect_err("the read fails").to_string(), handed)
        };
        let here = run(1 << 16);
        assert!(
            here.0.contains("row 41") && here.0.contains("the pipe broke"),
            "{}",
            here.0
        );
        assert_eq!(here.1, 40);
        for window in [16, 64, 100] {
            assert_eq!(run(window), here, "window {window}");
        }
    }

    #[test]
    fn strict_rfc4180_errors_name_row_and_byte() {
        let cases: &[(&[u8], &str)] = &[
            (
                b"a,b\n1,x\"y\n",
                "row 1 (byte offset 107): a double quote inside an unquoted value",
            ),
            (
                b"a,b\n1,\"x\"y\n",
                "row 1 (byte offset 109): a closing quote is followed by something other",
            ),
            (
                b"a,b\n1,2\n3,\"4\n",
                "row 2 (byte offset 110): a quoted value is never closed",
            ),
            (b"a,\"b\n", "row 0 (byte offset 102): a quoted value is never closed"),
        ];
        for (body, want) in cases {
            let e = collect(body, &["a"]).unwrap_err().to_string();
            assert!(e.contains(want), "{e} should contain {want}");
        }
    }

    proptest::proptest! {
        /// Against the csv crate as oracle: any table of values, written in
        /// splunkd's style with LF or CRLF line ends, decodes to the same cells.
        #[test]
        fn agrees_with_the_csv_crate(
            rows in proptest::collection::vec(
                proptest::collection::vec(
                    proptest::collection::vec(proptest::prop_oneof![
                        proptest::strategy::Just(b'"'), proptest::strategy::Just(b','),
                        proptest::strategy::Just(b'\n'), proptest::strategy::Just(b'\r'),
                        proptest::strategy::Just(b'$'), proptest::strategy::Just(b'a'),
                        proptest::strategy::Just(b' '), proptest::num::u8::ANY,
                    ], 0..6),
                    3),
                0..12),
            crlf in proptest::bool::ANY,
        ) {
            let mut body = b"f0,f1,f2\n".to_vec();
            for row in &rows {
                write_row(&mut body, row.iter().map(Vec::as_slice));
                if crlf {
                    body.pop();
                    body.extend_from_slice(b"\r\n");
                }
            }
            let mut oracle = Vec::new();
            let mut r = csv::ReaderBuilder::new().has_headers(true).from_reader(&body[..]);
            let mut rec = csv::ByteRecord::new();
            while r.read_byte_record(&mut rec).unwrap() {
                oracle.push(rec.iter().map(|c| if c.is_empty() { vec![] } else { vec![c.to_vec()] }).collect::<Vec<_>>());
            }
            // The csv crate skips a record that is one empty bare cell (an empty line).
            let ours: Vec<_> = collect(&body, &["f0", "f1", "f2"]).unwrap();
            let expected: Vec<_> = rows
                .iter()
                .map(|r| r.iter().map(|c| if c.is_empty() { vec![] } else { vec![c.clone()] }).collect::<Vec<_>>())
                .collect();
            proptest::prop_assert_eq!(&ours, &expected);
            proptest::prop_assert_eq!(&oracle, &expected);
        }
    }

    proptest::proptest! {
        /// Any bytes from any start, at the end of the input or not: where
        /// the block tokeniser cuts a record, the byte tokeniser cuts the
        /// same cells and starts the next record at the same byte.
        #[test]
        fn records_cut_from_block_classes_are_the_byte_tokenisers(
            data in proptest::collection::vec(proptest::sample::select(b"\",\n\rab".to_vec()), 0..300),
            start in 0usize..300,
            eof in proptest::bool::ANY,
        ) {
            let start = start.min(data.len());
            let mut ends = Vec::new();
            let bytes = scan_bytes(&data, start, eof, &mut ends);
            // (The classifiers agree, or the helper panics.)
            if let Some((next, cells)) = skim::tests::cells_every_way(&data, start).swap_remove(0) {
                let cells: Vec<usize> = cells.iter().map(|&e| e << 1).collect();
                proptest::prop_assert_eq!(&bytes, &Scan::Record { next });
                proptest::prop_assert_eq!(&ends, &cells);
            }
        }

        /// Plain records, quoted or not, with LFs and commas inside quotes,
        /// are all cut from the block classes.
        #[test]
        fn plain_records_are_cut_from_block_classes(
            cells in proptest::collection::vec("[ab,\n]{0,70}", 1..8),
            quote in proptest::collection::vec(proptest::bool::ANY, 8),
            lead in 0usize..64,
        ) {
            let mut data = vec![b'x'; lead];
            data.push(b'\n');
            let start = data.len();
            for (i, c) in cells.iter().enumerate() {
                if i > 0 { data.push(b','); }
                let quoted = quote[i] || c.contains(',') || c.contains('\n');
                if quoted { data.push(b'"'); }
                data.extend_from_slice(c.as_bytes());
                if quoted { data.push(b'"'); }
            }
            data.extend_from_slice(b"\nab");
            let mut ends = Vec::new();
            let next = skim::cells(&data, start, |e| ends.push(e));
            proptest::prop_assert_eq!(next, Some(data.len() - 2));
            proptest::prop_assert_eq!(ends.len(), cells.len());
        }
    }

    /// A row as handed to `each_row`: number, offset and every field's values.
    type Seen = (u64, u64, Vec<Vec<Vec<u8>>>);

    thread_local! {
        /// Rows [`decode_rows`] saw vouched for ([`Row::holds_literal`]).
        static VOUCHED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
        /// Rows [`decode_rows`] saw vouched against: no literal in the value.
        static REFUSED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }

    /// Decode `body` read `step` bytes at a time through windows of
    /// `window` bytes after `headroom`, with or without skimming for
    /// `literals`, the work split between the threads as the decoder
    /// adapts it, or held at `eighths` (16: the worker searches and skims
    /// whole windows).
    fn decode_rows(
        body: &[u8],
        step: usize,
        (window, headroom): (usize, usize),
        literals: Option<&[Vec<u8>]>,
        (eighths, hold): (Option<usize>, usize),
    ) -> (Result<u64, String>, Vec<Seen>, u64) {
        struct Steps<'a>(&'a [u8], usize);
        impl Read for Steps<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = self.1.min(buf.len()).min(self.0.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let wanted = ["f0", "f1", "f2"];
        let mut d = Decoder::new(&wanted);
        d.window_size = window;
        d.headroom = headroom;
        if let Some(e) = eighths {
            d.searched_eighths = e;
            d.pinned = true;
        }
        d.hold_worker = hold;
        // Where the worker searches and skims whole windows, the tests
        // count on its lists (vouched-for literals): wait for it.
        d.patient = hold == 0 && eighths == Some(16);
        if let Some(l) = literals {
            d.skim_with(Prefilter::new(l).expect("a prefilter"), 0);
            d.look_for_literals_in(1);
        }
        let mut seen = Vec::new();
        let result = d.decode(Steps(body, step), 1, 0, |row| {
            let holds = |v: &[u8]| {
                literals
                    .unwrap_or_default()
                    .iter()
                    .any(|l| v.windows(l.len()).any(|w| w.eq_ignore_ascii_case(l)))
            };
            match (row.holds_literal(1), row.field(1)) {
                (None, _) => {}
                // Vouched for: single-valued, and a literal starts in it
                // (the bodies' literals hold no byte that ends a cell).
                (Some(true), Field::Single(v)) => {
                    assert!(
                        holds(&v),
                        "row {} vouched for without a literal in {:?}",
                        row.number,
                        String::from_utf8_lossy(&v)
                    );
                    VOUCHED.with(|n| n.set(n.get() + 1));
                }
                // Vouched against: no literal in the value, if any.
                (Some(false), Field::Single(v)) => {
                    assert!(
                        !holds(&v),
                        "row {} vouched against with a literal in {:?}",
                        row.number,
                        String::from_utf8_lossy(&v)
                    );
                    REFUSED.with(|n| n.set(n.get() + 1));
                }
                (Some(false), Field::Absent) => REFUSED.with(|n| n.set(n.get() + 1)),
                (Some(answer), other) => panic!("row {} vouched {answer} with {other:?}", row.number),
            }
            let fields = (0..wanted.len())
                .map(|i| {
                    row.field(i)
                        .values()
                        .map(|v| v.map(|v| v.into_owned()).unwrap_or_default())
                        .collect()
                })
                .collect();
            seen.push((row.number, row.offset, fields));
            Ok(())
        });
        (result.map_err(|e| e.to_string()), seen, d.skipped())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// The candidate scan against the full tokeniser: any body (well
        /// formed or not), read in any steps through any window (so also
        /// ahead, on the worker thread, past the first), gives the
        /// same row count and the same error, and hands over exactly the
        /// rows the tokeniser gives, less only rows none of whose values
        /// holds a literal.
        #[test]
        fn skimming_hands_over_every_row_that_can_match(
            cells in proptest::collection::vec(proptest::prop_oneof![
                1 => proptest::strategy::Just(&b"pastebin"[..]), 1 => proptest::strategy::Just(&b"PasTEbin.com"[..]),
                1 => proptest::strategy::Just(&b"pasteb"[..]), 1 => proptest::strategy::Just(&b"x.Ngrok.io"[..]),
                // Mostly cells without a literal, so stretches get skimmed.
                12 => proptest::strategy::Just(&b"a"[..]), 2 => proptest::strategy::Just(&b""[..]),
                1 => proptest::strategy::Just(&b"\"q\"\"\""[..]), 1 => proptest::strategy::Just(&b"\"a,\nb\r\n\""[..]),
                1 => proptest::strategy::Just(&b"ok.io"[..]),
            ], 0..90),
            seps in proptest::collection::vec(proptest::prop_oneof![
                8 => proptest::strategy::Just(&b","[..]), 3 => proptest::strategy::Just(&b"\n"[..]),
                1 => proptest::strategy::Just(&b"\r\n"[..]), 1 => proptest::strategy::Just(&b"\""[..]),
                1 => proptest::strategy::Just(&b""[..]), 1 => proptest::strategy::Just(&b"\n\n"[..]),
            ], 90),
            step in 1usize..300,
            window in 8usize..400,
            headroom in 0usize..120,
            regular in proptest::bool::ANY,
            eighths in proptest::prop_oneof![
                proptest::strategy::Just(None), proptest::strategy::Just(Some(2)), proptest::strategy::Just(Some(16)),
            ],
            // The decoder reads on while the worker starts: as the thread's
            // start allows, for so many reads, or for the whole body.
            hold in proptest::prop_oneof![
                proptest::strategy::Just(0), 1usize..4, proptest::strategy::Just(usize::MAX),
            ],
            shared in proptest::bool::ANY,
        ) {
            let mut body = b"f0,\"f1\",f2\n".to_vec();
            for (i, (cell, sep)) in cells.iter().zip(&seps).enumerate() {
                body.extend_from_slice(cell);
                // Regular bodies have rows of three fields (as splunkd's
                // do, so long stretches are skimmed, here and ahead), with
                // the odd stray quote, CR or blank line.
                let sep = match *sep {
                    b"," | b"\n" if regular => [&b","[..], b",", b"\n"][i % 3],
                    sep => sep,
                };
                body.extend_from_slice(sep);
            }
            let mut literals = vec![b"pastebin".to_vec(), b"ngrok.io".to_vec()];
            if shared {
                // Twenty more literals no cell holds: a list too long for a
                // bucket each, whose eight buckets are shared where the CPU
                // has the wide search (elsewhere the two literals alone serve).
                let rare = b"qjzkvyhx";
                let more = (0..20).map(|i| vec![rare[i % 8], rare[(i / 8 + 1 + i) % 8], rare[(i + 3) % 8]]);
                let long: Vec<Vec<u8>> = literals.iter().cloned().chain(more).collect();
                if let Some(p) = Prefilter::new(&long) {
                    proptest::prop_assert!(p.shares_buckets());
                    literals = long;
                }
            }
            // The reference reads the whole body in one window, on one thread.
            let (all_result, all, _) = decode_rows(&body, step, (1 << 16, 0), None, (None, 0));
            let (small_result, small, _) = decode_rows(&body, step, (window, headroom), None, (None, hold));
            proptest::prop_assert_eq!(&small_result, &all_result);
            proptest::prop_assert_eq!(&small, &all);
            let (result, seen, skipped) = decode_rows(&body, step, (window, headroom), Some(&literals), (eighths, hold));
            proptest::prop_assert_eq!(&result, &all_result);
            let holds = |fields: &Vec<Vec<Vec<u8>>>| fields.iter().flatten().any(|v| {
                literals.iter().any(|l| v.windows(l.len()).any(|w| w.eq_ignore_ascii_case(l)))
            });
            let mut handed = seen.iter().peekable();
            for row in &all {
                if handed.peek() == Some(&row) {
                    handed.next();
                } else {
                    proptest::prop_assert!(!holds(&row.2), "a row that can match was skipped: {:?}", row);
                }
            }
            proptest::prop_assert!(handed.next().is_none(), "a row the tokeniser never gave was handed over");
            if let Ok(rows) = result {
                proptest::prop_assert_eq!(rows, seen.len() as u64 + skipped);
            }
        }
    }

    /// Long bodies, where the worker skims most rows ahead (each window's
    /// rows from its first row start on, found from the quote parity of all
    /// the body before): the rows handed over and the row count are those of
    /// the tokeniser, through quoted commas, LFs and doubled quotes that
    /// straddle windows; and a stray quote that breaks a row is the same
    /// error as without skimming.
    #[test]
    fn rows_skimmed_ahead_count_as_the_tokeniser_counts_them() {
        let literals = [b"pastebin".to_vec(), b"ngrok.io".to_vec()];
        for broken_at in [None, Some(7_777)] {
            let mut body = b"f0,f1,f2\n".to_vec();
            for i in 0..20_000u32 {
                let value = match i % 5 {
                    0 => "\"a,\nb\"".to_string(),
                    1 => "\"say \"\"hi\"\"\"".to_string(),
                    2 => format!("x{i}"),
                    3 => String::new(),
                    _ => "\"q\"".to_string(),
                };
                let host = if i % 331 == 0 {
                    "h.pastebin.com"
                } else {
                    "h.example.com"
                };
                let stray = if broken_at == Some(i) { "\"" } else { "" };
                // Now and then a literal in another field: such rows are
                // tokenised, and their f1 vouched against.
                let last = if i % 97 == 5 {
                    "ngrok.io".to_string()
                } else {
                    i.to_string()
                };
                body.extend_from_slice(format!("{value},{host}{stray},\"{last}\"\n").as_bytes());
            }
            let (all_result, all, _) = decode_rows(&body, 1 << 20, (1 << 22, 0), None, (None, 0));
            // The decoder reads on while the worker starts, as the thread's
            // start allows, or for 3 reads first.
            for ((step, window, headroom), eighths, hold) in
                [(4096, 4096, 512), (1000, 8192, 64), (1 << 16, 1 << 14, 1 << 11)]
                    .into_iter()
                    .flat_map(|w| [(w, None, 0), (w, Some(12), 3), (w, Some(16), 0)])
            {
                VOUCHED.with(|n| n.set(0));
                REFUSED.with(|n| n.set(0));
                let (result, seen, skipped) =
                    decode_rows(&body, step, (window, headroom), Some(&literals), (eighths, hold));
                assert_eq!(result, all_result, "window {window}");
                let vouched = VOUCHED.with(|n| n.get());
                let wanted: Vec<_> = all
                    .iter()
                    .filter(|r| r.2[1][0].starts_with(b"h.pastebin"))
                    .cloned()
                    .collect();
                let handed: Vec<_> = seen
                    .iter()
                    .filter(|r| r.2[1][0].starts_with(b"h.pastebin"))
                    .cloned()
                    .collect();
                assert_eq!(handed, wanted, "window {window}");
                // Where the worker searches whole windows, its list vouches
                // for the rows of all but the first (and checks the rest).
                if eighths == Some(16) && result.is_ok() {
                    let most = handed.len() as u64 * 3 / 4;
                    assert!(
                        vouched >= most,
                        "window {window}: {vouched} of {} vouched for",
                        handed.len()
                    );
                    // And against the rows tokenised for a literal elsewhere.
                    let elsewhere = seen.iter().filter(|r| !r.2[1][0].starts_with(b"h.pastebin")).count();
                    let refused = REFUSED.with(|n| n.get());
                    assert!(elsewhere >= 200, "{elsewhere} rows with a literal elsewhere");
                    assert!(
                        refused >= elsewhere as u64 * 3 / 4,
                        "window {window}: {refused} of {elsewhere} vouched against"
                    );
                }
                if let Ok(rows) = result {
                    assert_eq!(rows, 20_000);
                    assert_eq!(rows, seen.len() as u64 + skipped, "window {window}");
                    assert!(skipped > 19_000, "only {skipped} rows skimmed");
                }
            }
            assert_eq!(all_result.is_err(), broken_at.is_some());
        }
    }

    /// A row is vouched for only where its field is single-valued: not
    /// where the `__mv_` cell has values, whatever the plain cell holds.
    #[test]
    fn multivalue_fields_are_not_vouched_for() {
        let mut body = b"f0,f1,__mv_f1\n".to_vec();
        for i in 0..3000 {
            let mv = if i % 2 == 0 { "" } else { "$pastebin.com$;$x$" };
            body.extend_from_slice(format!("{i},pastebin.com,{mv}\n").as_bytes());
        }
        let mut d = Decoder::new(&["f0", "f1"]);
        (d.window_size, d.headroom) = (4096, 512);
        (d.searched_eighths, d.pinned, d.patient) = (16, true, true);
        d.skim_with(Prefilter::new(&[b"pastebin".to_vec()]).expect("a prefilter"), 0);
        d.look_for_literals_in(1);
        let mut vouched = [0u64; 2];
        let rows = d
            .decode(&body[..], 1, 0, |row| {
                let single = matches!(row.field(1), Field::Single(_));
                assert!(row.holds_literal(1).is_none() || single, "row {}", row.number);
                assert_eq!(row.holds_literal(0), None, "row {}", row.number);
                vouched[usize::from(single)] += u64::from(row.holds_literal(1) == Some(true));
                Ok(())
            })
            .expect("a well-formed body");
        assert_eq!(rows, 3000);
        assert_eq!(vouched[0], 0);
        assert!(vouched[1] > 1000, "{vouched:?}");
    }

    #[test]
    fn empty_and_header_only_bodies_have_no_rows() {
        assert!(collect(b"", &["a"]).unwrap().is_empty());
        assert!(collect(b"a,b\n", &["a"]).unwrap().is_empty());
        assert!(collect(b"a,b", &["a"]).unwrap().is_empty());
    }

    #[test]
    fn ragged_rows_and_open_quotes_are_errors_with_positions() {
        let e = collect(b"a,b\n1,2\n3\n", &["a"]).unwrap_err().to_string();
        assert!(e.contains("chunk 2, row 2"), "{e}");
        assert!(e.contains("1 fields but the header has 2"), "{e}");
        let e = collect(b"a,b\n1,\"2\n", &["a"]).unwrap_err().to_string();
        assert!(e.contains("never closed"), "{e}");
    }

    #[test]
    fn writes_values_like_splunkd() {
        let mut out = Vec::new();
        write_row(
            &mut out,
            [&b"abc123"[..], b"", b"_time", b" x ", b"a\"b", b"\xe0\xb8\x97"],
        );
        assert_eq!(out, b"abc123,,\"_time\",\" x \",\"a\"\"b\",\"\xe0\xb8\x97\"\n");
    }

    #[test]
    fn encode_then_decode_round_trips() {
        let rows = vec![
            vec![vec![b"1".to_vec()], vec![b"a".to_vec(), b"$b;".to_vec()]],
            vec![vec![], vec![b"q\"\n,".to_vec()]],
        ];
        let mut body = Vec::new();
        encode_records(&[b"_time", b"QueryName"], &rows, &mut body);
        let back = collect(&body, &["_time", "QueryName"]).unwrap();
        assert_eq!(back, rows);
    }
}
