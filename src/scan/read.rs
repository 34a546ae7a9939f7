//! Reading one input file: its format detected from its content (gzip,
//! then EVTX, JSON or XmlWinEventLog), each record turned into a
//! [`Sysmon`] record or a warning naming the file and the record.

use super::json;
use super::ordered;
use super::pretty;
use super::record::{self, Sysmon};
use super::runs;
use super::xml;
use memchr::memmem::Finder;
use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, Read};
use std::path::Path;
use std::sync::Arc;

/// The most bytes one JSON object or XML event may span; a longer one is
/// skipped with a warning, so a file without line ends cannot fill memory.
pub const MAX_RECORD_BYTES: usize = 16 << 20;

/// Bytes of an EVTX file header block, and of each chunk after it.
const EVTX_HEADER_BLOCK: usize = 4096;
const EVTX_CHUNK: usize = 65536;

/// What reading a file gives: each record or warning, as it is found.
pub enum Item<'a> {
    /// A Sysmon EventID 22 record, borrowing from the text it was read
    /// from: handed over while that text is at hand.
    Record(Sysmon<'a>),
    /// A record (or part of the file) that could not be read, or a doubtful
    /// value; the text names the record (line, event or EVTX record).
    Warning(String),
}

/// The formats `scan` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Windows `.evtx` (`ElfFile\0`).
    Evtx,
    /// JSON lines, a pretty-printed object, or an array of objects.
    Json,
    /// XmlWinEventLog: `<Event …>…</Event>`, one or many.
    Xml,
}

/// Why a file was not read at all.
#[derive(Debug)]
pub enum Unread {
    /// It could not be opened or read: exit status 2.
    Io(std::io::Error),
    /// It holds nothing, or its content is none of the formats: listed as
    /// skipped, with the reason.
    Skipped(String),
}

/// Told the number of bytes just read from an input file (before any
/// decompression), for a progress bar; never more than the file's size in
/// all.
pub type Progress = Arc<dyn Fn(u64) + Send + Sync>;

/// A reader reporting the bytes read through it to a [`Progress`], at most
/// `left` in all.
struct Counted<R> {
    inner: R,
    progress: Progress,
    left: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let told = (n as u64).min(self.left);
        if told > 0 {
            self.left -= told;
            (self.progress)(told);
        }
        Ok(n)
    }
}

/// Read the file at `path`, calling `each` for every record and warning and
/// `progress` with the bytes read. Returns the detected format.
///
/// Memory is bounded by one record (at most [`MAX_RECORD_BYTES`]), or a few
/// 64 KiB EVTX chunks or runs of JSON lines, objects or XML events a thread
/// (at most twice the record bound of text), whatever the size of the file:
/// every format, gzip or not, is read front to back as a stream.
pub fn read_file(
    path: &Path,
    each: &mut dyn FnMut(Item<'_>),
    progress: Progress,
    threads: usize,
) -> Result<Format, Unread> {
    let file = File::open(path).map_err(Unread::Io)?;
    let left = file.metadata().map_or(u64::MAX, |m| m.len());
    let file = Counted {
        inner: file,
        progress,
        left,
    };
    read_input(Box::new(BufReader::with_capacity(1 << 16, file)), each, threads)
}

/// [`read_file`] over any input (the fuzz target's entry). `threads` is how
/// many threads may render an EVTX file's chunks or parse a JSON or XML
/// file's runs of records (1: this one alone); the records and warnings come
/// in the same order however many.
pub fn read_input(
    mut input: Box<dyn BufRead>,
    each: &mut dyn FnMut(Item<'_>),
    threads: usize,
) -> Result<Format, Unread> {
    let head = input.fill_buf().map_err(Unread::Io)?;
    if head.is_empty() {
        return Err(Unread::Skipped("empty".into()));
    }
    let compressed = head.starts_with(&[0x1f, 0x8b]);
    if compressed {
        input = Box::new(BufReader::with_capacity(
            1 << 16,
            flate2::read::MultiGzDecoder::new(input),
        ));
    }
    let head = input.fill_buf().map_err(Unread::Io)?;
    if compressed && head.is_empty() {
        return Err(Unread::Skipped("empty once decompressed".into()));
    }
    if head.starts_with(b"ElfFile\0") {
        stopped(read_evtx(input, each, threads), each);
        return Ok(Format::Evtx);
    }
    let first = head
        .iter()
        .copied()
        .find(|b| ![b' ', b'\t', b'\r', b'\n', 0xef, 0xbb, 0xbf].contains(b));
    match first {
        Some(b'{') => {
            stopped(read_json(input, each, threads), each);
            Ok(Format::Json)
        }
        Some(b'[') => {
            stopped(read_json_array(input, each), each);
            Ok(Format::Json)
        }
        Some(b'<') => {
            stopped(read_xml(input, each, threads), each);
            Ok(Format::Xml)
        }
        None => Err(Unread::Skipped(format!(
            "only blank space in its first {} bytes{}",
            head.len(),
            if compressed { " (decompressed)" } else { "" }
        ))),
        Some(_) => Err(Unread::Skipped(format!(
            "not EVTX, JSON or XmlWinEventLog (it starts with \"{}\"{})",
            crate::error::excerpt(head, 16),
            if compressed { ", decompressed" } else { "" }
        ))),
    }
}

/// A read error once the format is known (a gzip stream cut short, an
/// I/O error mid-file) ends the file with a warning; what was read counts.
fn stopped(result: std::io::Result<()>, each: &mut dyn FnMut(Item<'_>)) {
    if let Err(e) = result {
        each(Item::Warning(format!(
            "reading stopped early: {e}; the records before count"
        )));
    }
}

/// Read into `buf` until it is full or the input ends; the bytes read.
fn read_full(input: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// EVTX, front to back, one 64 KiB chunk at a time through the `evtx`
/// crate's chunk parser and its JSON rendering (the layout of Sigma's JSON
/// files, `Event.System`/`Event.EventData`). No seeking, so a gzip stream is
/// read as it decompresses. A damaged chunk or record is a warning; reading
/// goes on with the next. An all-zero chunk (a dirty file's gap) is passed
/// over, and chunks beyond the header's count are read, as the evtx parser
/// does.
///
/// Rendering is nearly all of the time, and chunks render independently:
/// with `threads` above 1, that many threads render chunks while this one
/// reads the next and takes the rendered ones back in file order, so the
/// records and warnings come as they do from one thread. Memory is at most
/// [`ordered::JOBS_IN_FLIGHT`] jobs of [`EVTX_CHUNKS_A_JOB`] chunks a
/// thread, whatever the file's size.
fn read_evtx(mut input: Box<dyn BufRead>, each: &mut dyn FnMut(Item<'_>), threads: usize) -> std::io::Result<()> {
    let mut header = vec![0u8; EVTX_HEADER_BLOCK];
    let got = read_full(&mut input, &mut header)?;
    if got < EVTX_HEADER_BLOCK {
        each(Item::Warning(format!(
            "EVTX file header cut short ({got} of {EVTX_HEADER_BLOCK} bytes); nothing read"
        )));
        return Ok(());
    }
    let listed = match evtx::EvtxFileHeader::from_stream(&mut Cursor::new(&header)) {
        Ok(h) => Some(u64::from(h.chunk_count)),
        Err(e) => {
            each(Item::Warning(format!(
                "EVTX file header: {e}; the chunks are read all the same"
            )));
            None
        }
    };
    let settings = Arc::new(evtx::ParserSettings::new().num_threads(1));
    // The next chunk into `data` (a buffer kept from chunk to chunk).
    let mut number = 0u64;
    let mut read_chunk = |data: &mut Vec<u8>| -> std::io::Result<Next> {
        data.resize(EVTX_CHUNK, 0);
        let got = read_full(&mut input, data)?;
        if got == 0 {
            return Ok(Next::End);
        }
        if got < EVTX_CHUNK {
            return Ok(Next::CutShort(format!(
                "EVTX file truncated: chunk {number} holds {got} of its 65536 bytes{}; its records are not read",
                listed.map_or(String::new(), |l| format!(" (the header lists {l} chunks)"))
            )));
        }
        number += 1;
        Ok(Next::Chunk)
    };
    let end = read_evtx_chunks(&mut read_chunk, each, threads.min(EVTX_MAX_THREADS), &settings)?;
    // A chunk cut short: a warning, after every record before it.
    if let Next::CutShort(w) = end {
        each(Item::Warning(w));
        return Ok(());
    }
    if let Some(l) = listed.filter(|&l| number < l) {
        each(Item::Warning(format!(
            "EVTX file truncated: its header lists {l} chunks of 65536 bytes, it holds {number}; \
             the records beyond are not read"
        )));
    }
    Ok(())
}

/// What [`read_evtx`] read next.
enum Next {
    /// A whole chunk.
    Chunk,
    /// The end of the input, after whole chunks.
    End,
    /// A chunk cut short by the end of the input: the warning to give.
    CutShort(String),
}

/// Most threads rendering one file's chunks: past a few, this thread
/// (parsing the DNS records' JSON, counting them) sets the pace, and each
/// thread holds chunks in flight.
const EVTX_MAX_THREADS: usize = 8;

/// Chunks a rendering thread takes at a time: a thread woken for each
/// chunk spent a tenth of the time waking and sleeping.
const EVTX_CHUNKS_A_JOB: usize = 4;

/// A job's chunks rendered, and their buffers back for the next chunks.
type Rendering = (Vec<Rendered>, Vec<Vec<u8>>);

/// [`read_evtx`]'s chunks rendered by `threads` threads (or this one), a
/// few at a time, and taken back in file order ([`ordered::in_order`]).
fn read_evtx_chunks(
    read_chunk: &mut dyn FnMut(&mut Vec<u8>) -> std::io::Result<Next>,
    each: &mut dyn FnMut(Item<'_>),
    threads: usize,
    settings: &Arc<evtx::ParserSettings>,
) -> std::io::Result<Next> {
    // Buffers back from rendered chunks, for the next chunks.
    let spare: std::cell::RefCell<Vec<Vec<u8>>> = Default::default();
    let mut end: Option<std::io::Result<Next>> = None;
    let mut this = 0u64;
    let mut next = || {
        let mut chunks = Vec::with_capacity(EVTX_CHUNKS_A_JOB);
        while end.is_none() && chunks.len() < EVTX_CHUNKS_A_JOB {
            let mut data = spare.borrow_mut().pop().unwrap_or_default();
            match read_chunk(&mut data) {
                Ok(Next::Chunk) => chunks.push(data),
                other => end = Some(other),
            }
        }
        let first = this;
        this += chunks.len() as u64;
        (!chunks.is_empty()).then_some((first, chunks))
    };
    let render = |(first, chunks): (u64, Vec<Vec<u8>>)| -> Rendering {
        let mut out = Vec::new();
        let buffers = (first..)
            .zip(chunks)
            .map(|(this, data)| render_chunk(this, data, settings, &mut out))
            .collect();
        (out, buffers)
    };
    // Jobs are a few chunks each, so the count of jobs out bounds memory.
    ordered::in_order(threads, (&|_| 0, usize::MAX), &mut next, &render, &mut |(
        out,
        buffers,
    )| {
        emit_evtx(out, each);
        spare.borrow_mut().extend(buffers);
    });
    end.unwrap_or(Ok(Next::End))
}

/// What one EVTX chunk gave, in order: the compact JSON of each record that
/// may be an EventID 22, and warnings.
enum Rendered {
    Record { id: u64, json: Vec<u8> },
    Warning(String),
}

/// Chunk number `this` rendered into `out`: its records that may be
/// EventID 22, and its warnings. Runs on any thread; nothing here touches
/// the engine. Gives the chunk's buffer back, for the next chunk.
fn render_chunk(this: u64, data: Vec<u8>, settings: &Arc<evtx::ParserSettings>, out: &mut Vec<Rendered>) -> Vec<u8> {
    if data.iter().all(|b| *b == 0) {
        return data;
    }
    let mut chunk = match evtx::EvtxChunkData::new(data, false) {
        Ok(c) => c,
        Err(e) => {
            out.push(Rendered::Warning(format!("EVTX chunk {this}: {e}; reading goes on")));
            return Vec::new();
        }
    };
    chunk.number = Some(this);
    let mut parsed = match chunk.parse(Arc::clone(settings)) {
        Ok(p) => p,
        Err(e) => {
            out.push(Rendered::Warning(format!("EVTX chunk {this}: {e}; reading goes on")));
            return chunk.data;
        }
    };
    let mut last_good: Option<u64> = None;
    for r in parsed.iter() {
        // rendered to compact JSON by the crate's streaming renderer; only
        // a record that may be an EventID 22 is parsed into its fields
        match r.and_then(|r| r.into_json_bytes()) {
            Ok(r) => {
                last_good = Some(r.event_record_id);
                if may_be_event_22(&r.data) {
                    out.push(Rendered::Record {
                        id: r.event_record_id,
                        json: r.data,
                    });
                }
            }
            Err(e) => {
                let after = match last_good {
                    Some(id) => format!("after record {id}"),
                    None => "before any record".to_string(),
                };
                out.push(Rendered::Warning(format!(
                    "EVTX chunk {this}, {after}: {e}; reading goes on"
                )));
            }
        }
    }
    drop(parsed);
    chunk.data
}

/// A chunk's rendered records and warnings, to `each`.
fn emit_evtx(rendered: Vec<Rendered>, each: &mut dyn FnMut(Item<'_>)) {
    for r in rendered {
        let (id, json) = match r {
            Rendered::Warning(w) => {
                each(Item::Warning(w));
                continue;
            }
            Rendered::Record { id, json } => (id, json),
        };
        let v = match json::parse(&json) {
            Ok(v) => v,
            Err(e) => {
                each(Item::Warning(format!(
                    "EVTX record {id}: rendered JSON does not parse: {e}"
                )));
                continue;
            }
        };
        let mut problems = Vec::new();
        match record::from_json(&v, &mut problems) {
            Ok(Some(s)) => each(Item::Record(s)),
            Ok(None) => {}
            Err(p) => each(Item::Warning(format!("EVTX record {id}: {p}"))),
        }
        for p in problems {
            each(Item::Warning(format!("EVTX record {id}: {p}")));
        }
    }
}

/// Can the compact JSON of an EVTX record be an EventID 22? `false` only
/// when every `"EventID":` in it is followed by a number other than 22 (the
/// rendering writes `"EventID":4688` or `"EventID":{"#text":4688,…}`), so
/// the other records are not parsed into a tree; anything else is `true`
/// and [`record::from_json`] decides.
pub fn may_be_event_22(json: &[u8]) -> bool {
    let key = &needles().event_id_key;
    let mut found = false;
    for at in key.find_iter(json) {
        found = true;
        let mut rest = &json[at + key.needle().len()..];
        if let Some(r) = rest.strip_prefix(b"{\"#text\":") {
            rest = r;
        }
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || &rest[..digits] == b"22" {
            return true;
        }
    }
    !found
}

/// The substrings the readers look for in every record, each searcher built
/// once: `memmem::find` builds its searcher at every call.
pub(super) struct Needles {
    /// Where an XmlWinEventLog event ends...
    pub(super) event_end: Finder<'static>,
    /// ...and starts.
    pub(super) event_start: Finder<'static>,
    /// The key of a JSON record's event id ([`may_be_event_22`]).
    event_id_key: Finder<'static>,
}

/// The searchers, built on first use.
pub(super) fn needles() -> &'static Needles {
    static NEEDLES: std::sync::OnceLock<Needles> = std::sync::OnceLock::new();
    NEEDLES.get_or_init(|| Needles {
        event_end: Finder::new(b"</Event>"),
        event_start: Finder::new(b"<Event"),
        event_id_key: Finder::new(b"\"EventID\":"),
    })
}

/// A top-level JSON array (`[{…}, {…}, …]`), one element at a time: the
/// elements are cut out by a scan that follows strings and nesting, and
/// each is parsed on its own, so memory is one element (at most
/// [`MAX_RECORD_BYTES`]) however long the array, and an element that does
/// not parse is a warning naming it while the others are read. Arrays one
/// after the other (`[…][…]`) are read as one.
fn read_json_array(mut input: Box<dyn BufRead>, each: &mut dyn FnMut(Item<'_>)) -> std::io::Result<()> {
    let mut split = ArraySplitter::default();
    loop {
        let buf = input.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        let n = buf.len();
        split.feed(buf, each);
        input.consume(n);
    }
    split.finish(each);
    Ok(())
}

fn json_element(bytes: &[u8], place: &dyn Fn() -> String, each: &mut dyn FnMut(Item<'_>)) {
    match json::parse(bytes) {
        Ok(v) => json_record(&v, place, each),
        Err(e) => each(Item::Warning(format!("{}: not JSON: {e}", place()))),
    }
}

/// Where [`read_json_array`]'s scan is.
#[derive(Default)]
struct ArraySplitter {
    /// Nesting depth: 0 outside the array, 1 between its elements.
    depth: usize,
    in_string: bool,
    escaped: bool,
    /// The bytes of the element being read (empty between elements).
    element: Vec<u8>,
    /// The element is longer than [`MAX_RECORD_BYTES`]: its bytes are dropped.
    oversize: bool,
    /// Elements begun so far (the current one's number).
    number: u64,
    /// The line the current element starts on; the current line.
    start_line: u64,
    line: u64,
    /// Text outside any array was reported already.
    stray: bool,
}

impl ArraySplitter {
    fn place(&self) -> String {
        format!("array element {} (line {})", self.number, self.start_line)
    }

    /// Scan `buf`, each whole element parsed and handed to `each`.
    fn feed(&mut self, buf: &[u8], each: &mut dyn FnMut(Item<'_>)) {
        if self.line == 0 {
            self.line = 1;
        }
        // start of the current element's bytes in `buf`, if it is being read
        let mut seg: Option<usize> = (self.depth > 0 && (!self.element.is_empty() || self.oversize)).then_some(0);
        let mut i = 0;
        while i < buf.len() {
            let b = buf[i];
            if b == b'\n' {
                self.line += 1;
            }
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
                i += 1;
                continue;
            }
            match (self.depth, b) {
                (0, b'[') => self.depth = 1,
                (0, b' ' | b'\t' | b'\r' | b'\n' | 0xef | 0xbb | 0xbf) => {}
                (0, _) => {
                    if !self.stray {
                        self.stray = true;
                        each(Item::Warning(format!(
                            "line {}: text after the JSON array, ignored up to the next `[`",
                            self.line
                        )));
                    }
                }
                (1, b' ' | b'\t' | b'\r' | b'\n') if seg.is_none() => {}
                (1, b',' | b']') => {
                    if let Some(s) = seg.take() {
                        self.take(&buf[s..i]);
                        self.end_element(each);
                    } else if b == b',' {
                        self.number += 1;
                        each(Item::Warning(format!(
                            "array element {} (line {}): missing (two commas)",
                            self.number, self.line
                        )));
                    }
                    if b == b']' {
                        self.depth = 0;
                    }
                }
                (d, _) => {
                    if seg.is_none() {
                        seg = Some(i);
                        self.number += 1;
                        self.start_line = self.line;
                    }
                    match b {
                        b'"' => self.in_string = true,
                        b'{' | b'[' => self.depth += 1,
                        // a closing bracket at the element's own level is
                        // left to the element's parser to refuse
                        b'}' | b']' if d > 1 => self.depth -= 1,
                        _ => {}
                    }
                }
            }
            i += 1;
        }
        if let Some(s) = seg {
            self.take(&buf[s..]);
        }
    }

    fn take(&mut self, bytes: &[u8]) {
        if self.oversize {
            return;
        }
        if self.element.len() + bytes.len() > MAX_RECORD_BYTES {
            self.oversize = true;
            self.element = Vec::new();
        } else {
            self.element.extend_from_slice(bytes);
        }
    }

    fn end_element(&mut self, each: &mut dyn FnMut(Item<'_>)) {
        if self.oversize {
            each(Item::Warning(format!(
                "{}: longer than {MAX_RECORD_BYTES} bytes, skipped",
                self.place()
            )));
        } else {
            json_element(&self.element, &|| self.place(), each);
        }
        self.element.clear();
        self.oversize = false;
        self.depth = 1;
        self.in_string = false;
        self.escaped = false;
    }

    fn finish(&mut self, each: &mut dyn FnMut(Item<'_>)) {
        if !self.element.is_empty() || self.oversize {
            each(Item::Warning(format!(
                "{}: cut short at the end of the file",
                self.place()
            )));
        } else if self.depth > 0 {
            each(Item::Warning(format!(
                "line {}: the JSON array is not closed at the end of the file",
                self.line
            )));
        }
    }
}

/// Lines a pretty-printed object may span before [`read_json`] parses it
/// to learn whether it is broken, then again at each doubling: a Sysmon
/// event spans 30-60 lines, and parsing it at 1, 2, 4, … lines read it
/// nearly three times over. Past a break, at most this many lines (or as
/// many as came before it) are read, then read again from the break; after
/// a broken object the next is parsed at 1, 2, 4, … lines again, so that a
/// file of broken lines is not read this many times over.
pub(super) const FIRST_CHECK_LINES: u64 = 64;

/// Where a JSON text's brackets stand, outside its strings: how
/// [`read_json`] tells, without parsing, that a long object may have closed.
#[derive(Debug, Default)]
pub(super) struct Brackets {
    depth: usize,
    in_string: bool,
    escaped: bool,
}

impl Brackets {
    /// Follow `bytes`, one line (an LF only at its end); whether every
    /// bracket opened so far is closed, or the text is broken (a line end
    /// inside a string): time to parse it.
    pub(super) fn feed(&mut self, bytes: &[u8]) -> bool {
        self.line(bytes, 0).1
    }

    /// [`Self::feed`] the line of `text` that starts at `at`: where the next
    /// line starts (after the LF, or at the end of `text`), and whether it
    /// is time to parse. A string's bytes are passed over by `memchr3`, the
    /// rest a byte at a time.
    #[inline]
    pub(super) fn line(&mut self, text: &[u8], mut at: usize) -> (usize, bool) {
        while at < text.len() {
            if self.in_string {
                if self.escaped {
                    if text[at] == b'\n' {
                        return (at + 1, true);
                    }
                    self.escaped = false;
                    at += 1;
                    continue;
                }
                let Some(i) = memchr::memchr3(b'"', b'\\', b'\n', &text[at..]) else {
                    return (text.len(), false);
                };
                let b = text[at + i];
                at += i + 1;
                match b {
                    b'"' => self.in_string = false,
                    b'\\' => self.escaped = true,
                    // Never inside a JSON string: the object is broken,
                    // and parsing it tells where.
                    _ => return (at, true),
                }
                continue;
            }
            let b = text[at];
            at += 1;
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => self.depth = self.depth.saturating_sub(1),
                b'\n' => return (at, self.depth == 0),
                _ => {}
            }
        }
        (at, self.depth == 0 && !self.in_string)
    }
}

/// Read one line (its LF included) into `line`, keeping at most `max + 1`
/// bytes of it: a longer line is read to its end but not kept, so a file
/// without line ends cannot fill memory. The bytes read (0 at the end of
/// the input) and whether the line was longer than `max`.
fn read_line_bounded(input: &mut dyn BufRead, line: &mut Vec<u8>, max: usize) -> std::io::Result<(usize, bool)> {
    line.clear();
    let mut read = 0;
    loop {
        let buf = match input.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok((read, line.len() > max));
        }
        let (n, done) = match memchr::memchr(b'\n', buf) {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        let room = (max + 1).saturating_sub(line.len());
        line.extend_from_slice(&buf[..n.min(room)]);
        input.consume(n);
        read += n;
        if done {
            return Ok((read, line.len() > max));
        }
    }
}

/// Read past the rest of a line, its LF included, keeping nothing.
fn skip_line(input: &mut dyn BufRead) -> std::io::Result<()> {
    loop {
        let buf = match input.fill_buf() {
            Ok([]) => return Ok(()),
            Ok(buf) => buf,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let (n, done) = match memchr::memchr(b'\n', buf) {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        input.consume(n);
        if done {
            return Ok(());
        }
    }
}

/// JSON: a sequence of objects (one a line, or pretty-printed over many
/// lines). A line that cannot start or continue an object is a warning
/// naming its line; reading goes on at the next line. A line longer than
/// [`MAX_RECORD_BYTES`] is skipped with a warning.
fn read_json(mut input: Box<dyn BufRead>, each: &mut dyn FnMut(Item<'_>), threads: usize) -> std::io::Result<()> {
    let mut pending: Vec<u8> = Vec::new();
    let mut start_line = 0;
    let mut line = Vec::new();
    let mut number = 0u64;
    let mut one_per_line: Option<bool> = None;
    // The pending object's brackets, and the lines it spans.
    let mut brackets = Brackets::default();
    let mut spans = 0u64;
    // Lines to read again before the input's next ones (see below).
    let mut replay: Vec<u8> = Vec::new();
    let mut replayed = 0;
    // Lines were added to `pending` since it was last parsed.
    let mut unparsed = false;
    // The last object parsed was broken: the next is parsed from its first
    // line on, so that a run of broken lines is not read again and again.
    let mut broken = false;
    // Pretty-printed objects were handed to other threads (once a file:
    // handed back at a broken object and over again after it, they were
    // slower than one thread where such objects come every few hundred KB).
    let mut handed_over = false;
    // Reading failed after the text handed back from them.
    let mut failed_after: Option<std::io::Error> = None;
    loop {
        let (n, too_long) = if replayed < replay.len() {
            let rest = &replay[replayed..];
            let n = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
            line.clear();
            // (a line handed back is kept as `read_line_bounded` keeps it)
            line.extend_from_slice(&rest[..n.min(MAX_RECORD_BYTES + 1)]);
            replayed += n;
            (n, n > MAX_RECORD_BYTES)
        } else if let Some(e) = failed_after.take() {
            return Err(e);
        } else {
            read_line_bounded(&mut *input, &mut line, MAX_RECORD_BYTES)?
        };
        if n == 0 {
            if !unparsed {
                break;
            }
        } else {
            number += 1;
        }
        if n == 0 {
            // The lines not parsed yet, parsed at the end, the last of
            // them taken as the line just read.
            let body = pending.strip_suffix(b"\n").unwrap_or(&pending);
            let last = memchr::memrchr(b'\n', body).map_or(0, |i| i + 1);
            line.extend_from_slice(&pending[last..]);
        } else if too_long {
            each(Item::Warning(format!(
                "line {number}: longer than {MAX_RECORD_BYTES} bytes, skipped{}",
                if pending.is_empty() {
                    String::new()
                } else {
                    format!(", and the object begun on line {start_line} with it")
                }
            )));
            pending.clear();
            unparsed = false;
            continue;
        } else {
            if pending.is_empty() {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                start_line = number;
                brackets = Brackets::default();
                spans = 0;
            }
            pending.extend_from_slice(&line);
            spans += 1;
            // JSON lines: every line is parsed, its brackets need no following.
            let closed = one_per_line == Some(true) || brackets.feed(&line);
            // Parsed when it may be whole or broken, not at every line:
            // each parse reads it from its start (a 500 KB object of 50,000
            // lines took 12 s parsed at every line; a Sysmon event of 35
            // lines, 17 times its bytes). Past [`FIRST_CHECK_LINES`], its
            // line count doubling bounds how far past a break it is read
            // before the break is found; a shorter one is parsed when its
            // brackets close.
            let check = spans.is_power_of_two() && (spans >= FIRST_CHECK_LINES || broken);
            if !closed && !check && pending.len() <= MAX_RECORD_BYTES {
                unparsed = true;
                continue;
            }
        }
        unparsed = false;
        let parsed = json::parse(&pending);
        // JSON lines (the first object fits its line): every line stands
        // alone. (A first line left unparsed had open brackets, so it could
        // not parse alone.)
        let lines = *one_per_line.get_or_insert(parsed.is_ok() && spans == 1);
        let parsed = match parsed {
            Err(e) if lines && e.is_eof() => Err(serde_json::Error::io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("object cut short at the end of the line ({e})"),
            ))),
            other => other,
        };
        match parsed {
            Ok(v) => {
                json_record(&v, &|| format!("line {start_line}"), each);
                pending.clear();
                broken = false;
            }
            Err(e) if e.is_eof() && pending.len() <= MAX_RECORD_BYTES => {}
            Err(e) => {
                each(Item::Warning(format!("line {start_line}: not a JSON object: {e}")));
                broken = true;
                // Lines were read past the line the error is on (the object
                // is not parsed at every line): parsing at every line would
                // have stopped at that line, and started again from it (or,
                // when it was the object's first, from the next), so read
                // again from there.
                let on = e.line().max(1);
                let again_from = on.max(2);
                let read_past = if on == 1 { spans >= 2 } else { (on as u64) < spans };
                if !e.is_eof() && read_past {
                    let from = memchr::memchr_iter(b'\n', &pending)
                        .nth(again_from - 2)
                        .map_or(0, |i| i + 1);
                    let mut again = pending[from..].to_vec();
                    again.extend_from_slice(&replay[replayed..]);
                    (replay, replayed) = (again, 0);
                    number = start_line + again_from as u64 - 2;
                    pending.clear();
                    continue;
                }
                pending.clear();
                // An object cut short swallowed the lines after it: start
                // again at this line, on its own.
                if start_line != number && !line.iter().all(u8::is_ascii_whitespace) {
                    start_line = number;
                    match json::parse(&line) {
                        Ok(v) => json_record(&v, &|| format!("line {start_line}"), each),
                        Err(e) if e.is_eof() => {
                            pending.extend_from_slice(&line);
                            brackets = Brackets::default();
                            brackets.feed(&line);
                            spans = 1;
                        }
                        Err(e) => each(Item::Warning(format!("line {start_line}: not a JSON object: {e}"))),
                    }
                }
            }
        }
        if n == 0 {
            break;
        }
        // JSON lines: each line stands alone from here on, so the rest is
        // read a run of lines at a time, on every core.
        if one_per_line == Some(true) {
            debug_assert!(pending.is_empty() && replayed >= replay.len());
            return read_json_lines(input, number, each, threads);
        }
        // Pretty-printed objects, the last one whole: the rest is read on
        // every core, up to the first object this loop must read.
        let between = pending.is_empty() && !broken && replayed >= replay.len();
        if one_per_line == Some(false) && between && !handed_over {
            handed_over = true;
            let Some(back) = pretty::read_objects(&mut *input, number, each, threads)? else {
                return Ok(());
            };
            (replay, replayed, number, failed_after) = (back.text, 0, back.before, back.failed);
        }
    }
    if !pending.is_empty() {
        each(Item::Warning(format!(
            "line {start_line}: JSON object cut short at the end of the file"
        )));
    }
    Ok(())
}

/// One line of a JSON-lines file, line `number`: its record, or why not.
/// (What [`read_json`]'s loop does with a line once it knows the file is
/// JSON lines.)
fn json_line(line: &[u8], number: u64, each: &mut dyn FnMut(Item<'_>)) {
    if line.iter().all(u8::is_ascii_whitespace) {
        return;
    }
    match json::parse(line) {
        Ok(v) => json_record(&v, &|| format!("line {number}"), each),
        Err(e) => {
            let e = if e.is_eof() {
                serde_json::Error::io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("object cut short at the end of the line ({e})"),
                ))
            } else {
                e
            };
            each(Item::Warning(format!("line {number}: not a JSON object: {e}")));
        }
    }
}

/// The lines of `text` (whole lines, the last one's LF optional), the
/// first numbered `before + 1`, each to what [`json_line`] gives it: one
/// [`json::Parser`] goes from line to line, and a line it does not take
/// (broken, more than one value, a value running on past its LF) is
/// parsed alone by [`json_line`], which words every warning.
fn json_lines(text: &[u8], before: u64, each: &mut dyn FnMut(Item<'_>)) {
    let mut parser = json::Parser::new(text);
    let mut number = before;
    let mut start = 0;
    while start < text.len() {
        let end = memchr::memchr(b'\n', &text[start..]).map_or(text.len(), |i| start + i + 1);
        let line = &text[start..end];
        number += 1;
        if line.len() > MAX_RECORD_BYTES {
            each(Item::Warning(too_long(number)));
        } else if !line.iter().all(u8::is_ascii_whitespace) {
            match parser.line(start, end) {
                Some(fields) => json_record(&fields, &|| format!("line {number}"), each),
                None => json_line(line, number, each),
            }
        }
        start = end;
    }
}

/// The warning for JSON line `number`, over [`MAX_RECORD_BYTES`].
fn too_long(number: u64) -> String {
    format!("line {number}: longer than {MAX_RECORD_BYTES} bytes, skipped")
}

/// Bytes of lines [`read_json_lines`] hands a thread at a time (in the
/// unit tests and under the fuzzers a few lines, so that short texts make
/// many jobs).
const JSON_LINES_A_JOB: usize = if cfg!(test) || cfg!(fuzzing) { 300 } else { 256 << 10 };

/// A run of JSON lines for a thread: the number of the line before the
/// first, the lines, and a line after them skipped for its length.
struct LinesJob {
    before: u64,
    /// The lines, `text[..len]`; the buffer is longer, and handed back for
    /// the next job (its bytes past `len` written once, not for every job).
    text: Vec<u8>,
    /// How much of `text` is the job's.
    len: usize,
    too_long: Option<u64>,
}

impl LinesJob {
    /// The job's lines.
    fn text(&self) -> &[u8] {
        &self.text[..self.len]
    }
}

/// A run of JSON lines read: its records packed in one arena, and its
/// warnings, in order; the job's buffer back for the next.
#[derive(Default)]
pub(super) struct LinesRead {
    pub(super) arena: String,
    pub(super) items: Vec<Result<record::Packed, String>>,
    pub(super) text: Vec<u8>,
}

impl LinesRead {
    /// The records and warnings, in order, to `each` on the reading thread
    /// (a record unpacked from the arena it was packed in on its thread).
    pub(super) fn hand_on(&mut self, each: &mut dyn FnMut(Item<'_>)) {
        for item in self.items.drain(..) {
            match item {
                Ok(packed) => each(Item::Record(Sysmon::unpack(&packed, &self.arena))),
                Err(w) => each(Item::Warning(w)),
            }
        }
    }
}

/// The rest of a JSON-lines file after line `number`, every line parsed on
/// its own. With `threads` above 1, runs of lines are parsed on that many
/// threads and their records and warnings taken back in file order
/// ([`ordered::in_order`]): the same items, in the same order, as one
/// thread gives.
fn read_json_lines(
    mut input: Box<dyn BufRead>,
    mut number: u64,
    each: &mut dyn FnMut(Item<'_>),
    threads: usize,
) -> std::io::Result<()> {
    let spare: std::cell::RefCell<Vec<Vec<u8>>> = Default::default();
    let mut failed: Option<std::io::Error> = None;
    let mut ended = false;
    // The start of a line read past a job's last LF, for the next job.
    let mut carry: Vec<u8> = Vec::new();
    // Whole buffers are read, not lines: a job is cut at its last LF.
    let mut next = || {
        if ended {
            return None;
        }
        let mut job = LinesJob {
            before: number,
            text: spare.borrow_mut().pop().unwrap_or_default(),
            len: carry.len(),
            too_long: None,
        };
        if job.text.len() < job.len {
            job.text.resize(job.len, 0);
        }
        job.text[..job.len].copy_from_slice(&carry);
        carry.clear();
        // The job's last LF, looked for in each read as it comes (the
        // carried start of a line holds none).
        let mut last_lf: Option<usize> = None;
        loop {
            let len = job.len;
            if len >= JSON_LINES_A_JOB {
                if let Some(i) = last_lf {
                    carry.extend_from_slice(&job.text[i + 1..len]);
                    job.len = i + 1;
                    break;
                }
                // A line longer than the bound (its start alone is): read
                // to its end, not kept.
                if len > MAX_RECORD_BYTES {
                    job.len = 0;
                    match skip_line(&mut *input) {
                        Ok(()) => job.too_long = Some(number + 1),
                        // cut short by the error: not a line (as below)
                        Err(e) => (failed, ended) = (Some(e), true),
                    }
                    break;
                }
            }
            if job.text.len() < len + runs::READ {
                job.text.resize(len + runs::READ, 0);
            }
            match input.read(&mut job.text[len..len + runs::READ]) {
                Ok(0) => {
                    ended = true;
                    break;
                }
                Ok(n) => {
                    if let Some(i) = memchr::memrchr(b'\n', &job.text[len..len + n]) {
                        last_lf = Some(len + i);
                    }
                    job.len += n;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // The line being read when reading failed is not read:
                    // it was never whole (nor would it be to a reader
                    // taking a line at a time).
                    job.len = last_lf.map_or(0, |i| i + 1);
                    (failed, ended) = (Some(e), true);
                    break;
                }
            }
        }
        let text = job.text();
        // (only the file's last line can lack its LF)
        number += memchr::memchr_iter(b'\n', text).count() as u64
            + u64::from(text.last().is_some_and(|b| *b != b'\n'))
            + u64::from(job.too_long.is_some());
        (job.len > 0 || job.too_long.is_some()).then_some(job)
    };
    let lines = |job: &LinesJob, each: &mut dyn FnMut(Item<'_>)| {
        json_lines(job.text(), job.before, each);
        if let Some(number) = job.too_long {
            each(Item::Warning(too_long(number)));
        }
    };
    // One thread: each run's records handed on as they stand (packed and
    // unpacked, as they cross between threads, they took 1.2 times as long).
    if threads <= 1 {
        while let Some(job) = next() {
            lines(&job, each);
            spare.borrow_mut().push(job.text);
        }
        return failed.map_or(Ok(()), Err);
    }
    let parse = |job: LinesJob| {
        let mut read = LinesRead::default();
        lines(&job, &mut |item: Item<'_>| match item {
            Item::Record(s) => read.items.push(Ok(s.pack(&mut read.arena))),
            Item::Warning(w) => read.items.push(Err(w)),
        });
        read.text = job.text;
        read
    };
    let weight = |job: &LinesJob| job.text.len();
    ordered::in_order(
        threads,
        (&weight, 2 * MAX_RECORD_BYTES),
        &mut next,
        &parse,
        &mut |mut read: LinesRead| {
            read.hand_on(each);
            spare.borrow_mut().push(read.text);
        },
    );
    failed.map_or(Ok(()), Err)
}

/// A parsed JSON object's record (or its warnings) to `each`; `place`
/// names it, and is asked only for a warning.
pub(super) fn json_record(v: &json::Fields<'_>, place: &dyn Fn() -> String, each: &mut dyn FnMut(Item<'_>)) {
    if !v.object {
        each(Item::Warning(format!("{}: not a JSON object", place())));
        return;
    }
    let mut problems = Vec::new();
    match record::from_json(v, &mut problems) {
        Ok(Some(s)) => each(Item::Record(s)),
        Ok(None) => {}
        Err(p) => each(Item::Warning(format!("{}: {p}", place()))),
    }
    for p in problems {
        each(Item::Warning(format!("{}: {p}", place())));
    }
}

/// XmlWinEventLog: every `<Event …>…</Event>`, however the lines fall.
/// Text that is not valid UTF-8 is read with replacement characters and a
/// warning. Read in runs of whole events on `threads` threads
/// ([`xml::read_events`]); text the runs leave (no `</Event>` for a
/// megabyte) is read on by [`read_xml_on`], whose rules the runs follow.
fn read_xml(mut input: Box<dyn BufRead>, each: &mut dyn FnMut(Item<'_>), threads: usize) -> std::io::Result<()> {
    match xml::read_events(&mut *input, each, threads)? {
        None => Ok(()),
        Some(rest) => read_xml_on(input, rest, each),
    }
}

/// [`read_xml`] on one thread, from `rest`: the text read before, and
/// where it stands in the file.
///
/// The input is taken a buffer at a time, not a line at a time: exports
/// such as `wevtutil qe /f:xml` write every event on one line, which read
/// by lines was held whole, and each event cut from its front moved the
/// rest (a 20 MB file took 4.7 s). Here the text waiting for its
/// `</Event>` is the unfinished event alone, searched once, and cut from
/// once per buffer; warnings name the line the event's text starts on.
fn read_xml_on(mut input: Box<dyn BufRead>, rest: xml::Rest, each: &mut dyn FnMut(Item<'_>)) -> std::io::Result<()> {
    let Needles {
        event_end, event_start, ..
    } = needles();
    let mut pending: Vec<u8> = rest.text;
    // How far `</Event>` was looked for in `pending`.
    let mut searched = 0;
    let mut event_no = rest.events;
    // The line a byte of `pending` is on, counted on from the last one
    // asked about (events, and their warnings, come in order): `(0, n)`
    // says `pending[0]` is on line `n`.
    let lines = std::cell::Cell::new((0usize, rest.line));
    let line_at = |pending: &[u8], at: usize| {
        let (mut known, mut line) = lines.get();
        if at < known {
            (known, line) = (0, line - memchr::memchr_iter(b'\n', &pending[..known]).count() as u64);
        }
        line += memchr::memchr_iter(b'\n', &pending[known..at]).count() as u64;
        lines.set((at, line));
        line
    };
    // The line the text from `at` on starts on: that of its first byte
    // that is not a blank.
    let start_line = |pending: &[u8], at: usize| {
        let text = pending
            .iter()
            .skip(at)
            .position(|b| !b.is_ascii_whitespace())
            .map_or(pending.len(), |i| at + i);
        line_at(pending, text)
    };
    loop {
        let buf = input.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        let n = buf.len();
        pending.extend_from_slice(buf);
        input.consume(n);
        let mut from = 0; // the start of the text not yet cut into events
        while let Some(at) = event_end.find(&pending[searched..]) {
            let end = searched + at + event_end.needle().len();
            searched = end;
            let text = &pending[from..end];
            match event_start.find(text) {
                Some(start) => {
                    event_no += 1;
                    // Named only for a warning, not formatted for every event.
                    let place = || format!("event {event_no} (line {})", start_line(&pending, from));
                    // Checked first: valid text (nearly all of it) borrows,
                    // and the check is faster than the lossy reading's.
                    let xml = match std::str::from_utf8(&text[start..]) {
                        Ok(xml) => std::borrow::Cow::Borrowed(xml),
                        Err(_) => {
                            each(Item::Warning(format!(
                                "{}: not UTF-8, read with replacement characters",
                                place()
                            )));
                            String::from_utf8_lossy(&text[start..])
                        }
                    };
                    let (s, problems) = record::from_xml(&xml);
                    for p in problems {
                        each(Item::Warning(format!("{}: {p}", place())));
                    }
                    if let Some(s) = s {
                        each(Item::Record(s));
                    }
                }
                None => each(Item::Warning(format!(
                    "line {}: </Event> without <Event",
                    start_line(&pending, from)
                ))),
            }
            from = end;
        }
        let rest = &pending[from..];
        if rest.iter().all(u8::is_ascii_whitespace) {
            from = pending.len();
        } else if rest.len() > MAX_RECORD_BYTES {
            each(Item::Warning(format!(
                "line {}: no </Event> within {MAX_RECORD_BYTES} bytes, skipped",
                start_line(&pending, from)
            )));
            from = pending.len();
        }
        let line = line_at(&pending, from);
        pending.drain(..from);
        lines.set((0, line));
        // None of what is left holds a `</Event>`; one may begin in its
        // last few bytes.
        searched = pending.len().saturating_sub(event_end.needle().len() - 1);
    }
    if !pending.iter().all(u8::is_ascii_whitespace) {
        each(Item::Warning(format!(
            "line {}: event cut short at the end of the file",
            start_line(&pending, 0)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The XML reader as it was, a line at a time: the oracle the buffered
    /// one must equal on input of lines shorter than its bound.
    fn read_xml_by_lines(mut input: Box<dyn BufRead>, each: &mut dyn FnMut(Item<'_>)) -> std::io::Result<()> {
        let mut pending: Vec<u8> = Vec::new();
        let mut line_no = 0u64;
        let mut start_line = 1u64;
        let mut event_no = 0u64;
        let Needles {
            event_end, event_start, ..
        } = needles();
        loop {
            let before = pending.len();
            let n = input.read_until(b'\n', &mut pending)?;
            if n == 0 {
                break;
            }
            line_no += 1;
            if before == 0 {
                start_line = line_no;
            }
            while let Some(end) = event_end.find(&pending) {
                let end = end + event_end.needle().len();
                let text = &pending[..end];
                match event_start.find(text) {
                    Some(start) => {
                        event_no += 1;
                        let place = || format!("event {event_no} (line {start_line})");
                        let xml = match std::str::from_utf8(&text[start..]) {
                            Ok(xml) => std::borrow::Cow::Borrowed(xml),
                            Err(_) => {
                                each(Item::Warning(format!(
                                    "{}: not UTF-8, read with replacement characters",
                                    place()
                                )));
                                String::from_utf8_lossy(&text[start..])
                            }
                        };
                        let (s, problems) = record::from_xml(&xml);
                        for p in problems {
                            each(Item::Warning(format!("{}: {p}", place())));
                        }
                        if let Some(s) = s {
                            each(Item::Record(s));
                        }
                    }
                    None => each(Item::Warning(format!("line {start_line}: </Event> without <Event"))),
                }
                pending.drain(..end);
                start_line = line_no;
            }
            if pending.iter().all(u8::is_ascii_whitespace) {
                pending.clear();
            }
        }
        if !pending.iter().all(u8::is_ascii_whitespace) {
            each(Item::Warning(format!(
                "line {start_line}: event cut short at the end of the file"
            )));
        }
        Ok(())
    }

    /// The JSON reader as it was, parsing the object at every line it
    /// gained, and reading lines of any length: the oracle the bounded one
    /// must equal on lines within the bound.
    fn read_json_reparsing(mut input: Box<dyn BufRead>, each: &mut dyn FnMut(Item<'_>)) -> std::io::Result<()> {
        let mut pending: Vec<u8> = Vec::new();
        let mut start_line = 0;
        let mut line = Vec::new();
        let mut number = 0u64;
        let mut one_per_line: Option<bool> = None;
        loop {
            line.clear();
            if input.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            number += 1;
            if pending.is_empty() {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                start_line = number;
            }
            pending.extend_from_slice(&line);
            let parsed = json::parse(&pending);
            let lines = *one_per_line.get_or_insert(parsed.is_ok());
            let parsed = match parsed {
                Err(e) if lines && e.is_eof() => Err(serde_json::Error::io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("object cut short at the end of the line ({e})"),
                ))),
                other => other,
            };
            match parsed {
                Ok(v) => {
                    json_record(&v, &|| format!("line {start_line}"), each);
                    pending.clear();
                }
                Err(e) if e.is_eof() && pending.len() <= MAX_RECORD_BYTES => {}
                Err(e) => {
                    each(Item::Warning(format!("line {start_line}: not a JSON object: {e}")));
                    pending.clear();
                    if start_line != number && !line.iter().all(u8::is_ascii_whitespace) {
                        start_line = number;
                        match json::parse(&line) {
                            Ok(v) => json_record(&v, &|| format!("line {start_line}"), each),
                            Err(e) if e.is_eof() => pending.extend_from_slice(&line),
                            Err(e) => each(Item::Warning(format!("line {start_line}: not a JSON object: {e}"))),
                        }
                    }
                }
            }
        }
        if !pending.is_empty() {
            each(Item::Warning(format!(
                "line {start_line}: JSON object cut short at the end of the file"
            )));
        }
        Ok(())
    }

    /// A format's reader.
    type Reader = fn(Box<dyn BufRead>, &mut dyn FnMut(Item<'_>)) -> std::io::Result<()>;

    /// JSON read on this thread alone...
    fn read_json_1(input: Box<dyn BufRead>, each: &mut dyn FnMut(Item<'_>)) -> std::io::Result<()> {
        read_json(input, each, 1)
    }

    /// ...and with JSON lines parsed on three.
    fn read_json_3(input: Box<dyn BufRead>, each: &mut dyn FnMut(Item<'_>)) -> std::io::Result<()> {
        read_json(input, each, 3)
    }

    /// XML read on one thread, in runs...
    fn read_xml_1(input: Box<dyn BufRead>, each: &mut dyn FnMut(Item<'_>)) -> std::io::Result<()> {
        read_xml(input, each, 1)
    }

    /// ...and on three.
    fn read_xml_3(input: Box<dyn BufRead>, each: &mut dyn FnMut(Item<'_>)) -> std::io::Result<()> {
        read_xml(input, each, 3)
    }

    /// ...and by the one-thread reader alone, from the start.
    fn read_xml_alone(input: Box<dyn BufRead>, each: &mut dyn FnMut(Item<'_>)) -> std::io::Result<()> {
        let start = xml::Rest {
            text: Vec::new(),
            line: 1,
            events: 0,
        };
        read_xml_on(input, start, each)
    }

    /// What a reader handed over, as text to compare.
    fn items(read: Reader, data: &[u8], capacity: usize) -> Vec<String> {
        let mut out = Vec::new();
        let input = Box::new(BufReader::with_capacity(capacity, Cursor::new(data.to_vec())));
        read(input, &mut |item| {
            out.push(match item {
                Item::Record(s) => format!("{s:?}"),
                Item::Warning(w) => w,
            })
        })
        .expect("reading from memory");
        out
    }

    proptest! {
        /// Read a buffer at a time, whatever the buffer's size, XML gives
        /// the records and warnings (with their event and line numbers)
        /// that reading it a line at a time gave: by the one-thread reader
        /// alone, and in runs of a few hundred bytes on one thread and on
        /// three (with text long enough without `</Event>` that the runs
        /// leave the rest to the one-thread reader).
        #[test]
        fn xml_read_by_buffers_reads_as_by_lines(
            pieces in prop::collection::vec(prop::sample::select(vec![
                "<Event xmlns='x'><System><Provider Name='Microsoft-Windows-Sysmon'/><EventID>22</EventID>",
                "<Data Name='QueryName'>a.pastebin.com</Data>", "<Data Name='Image'>&bogus;</Data>",
                "</Event>", "<Event>", "</Eve", "nt>", "<Even", "t ", "\n", "\r\n", " ", "\t", "x", "\u{e9}",
                "\u{FFFD}", "<", ">", "</Event>\n", "</Event>\n</Event>",
                "<Data Name='CommandLine'>a command line of some length, padded with words until it runs \
                 to about four hundred bytes, so that three or four of them in a row pass the length after \
                 which text with no end of an event in it is left to the one-thread reader by the runs; the \
                 same words again, to make up the length, as many as it takes</Data>",
            ]), 0..40),
            invalid in prop::option::of(0usize..400),
            capacity in 1usize..64,
        ) {
            let mut data: Vec<u8> = pieces.concat().into_bytes();
            if let Some(at) = invalid {
                let at = at.min(data.len());
                data.insert(at, 0xff);
            }
            let oracle = items(read_xml_by_lines, &data, capacity);
            prop_assert_eq!(&items(read_xml_alone, &data, capacity), &oracle);
            prop_assert_eq!(&items(read_xml_1, &data, capacity), &oracle);
            prop_assert_eq!(&items(read_xml_3, &data, capacity), &oracle);
        }
    }

    proptest! {
        /// JSON objects of any shape, broken or not, one a line or over
        /// several, read as the reader that parsed at every line read them.
        #[test]
        fn json_read_with_brackets_reads_as_reparsing(
            pieces in prop::collection::vec(prop::sample::select(vec![
                "{\"EventID\": 22, \"SourceName\": \"Microsoft-Windows-Sysmon\", \"QueryName\": \"a.pastebin.com\"}",
                "{", "}", "[", "]", "\"EventID\": 22,", "\"QueryName\": \"x{\\\"\",", "\"Image\": 3,", "\"a\": [1, {\"b\": 2}],",
                "\"SourceName\": \"Sysmon\"", ",", "\"", "\\", "x", " ", "\n", "\r\n", "\n\n",
            ]), 0..40),
            capacity in 1usize..64,
        ) {
            let data = pieces.concat().into_bytes();
            let oracle = items(read_json_reparsing, &data, capacity);
            prop_assert_eq!(&items(read_json_1, &data, capacity), &oracle);
            prop_assert_eq!(&items(read_json_3, &data, capacity), &oracle);
        }

    }

    proptest! {
        // Each case parses its objects as often as they have lines, in the
        // oracle: a few cases of a few hundred lines.
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Objects of a few hundred lines (parsed when their brackets close
        /// or their lines double), some broken near their end, read as
        /// before: the same records and warnings at the same lines.
        #[test]
        fn long_json_objects_read_as_reparsing(
            objects in prop::collection::vec((200usize..600, any::<bool>(), prop::option::of("[a-z{}\\[\\]\"]{0,4}")), 1..4),
        ) {
            let mut data = String::new();
            for (keys, dns, noise) in &objects {
                data.push_str("{\n  \"EventID\": ");
                data.push_str(if *dns { "22" } else { "1" });
                data.push_str(",\n  \"SourceName\": \"Microsoft-Windows-Sysmon\",\n");
                for k in 0..*keys {
                    data.push_str(&format!("  \"k{k}\": {{\"v\": [\"}}]\\\"\", {k}]}},\n"));
                }
                if let Some(noise) = noise {
                    // a value that may break the object
                    data.push_str(&format!("  \"n\": {noise},\n"));
                }
                data.push_str("  \"QueryName\": \"q.pastebin.com\"\n}\n");
            }
            let data = data.into_bytes();
            let oracle = items(read_json_reparsing, &data, 1 << 12);
            prop_assert_eq!(&items(read_json_1, &data, 1 << 12), &oracle);
            prop_assert_eq!(&items(read_json_3, &data, 1 << 12), &oracle);
        }
    }

    proptest! {
        /// A JSON-lines file of many runs of lines (records, records with a
        /// value of the wrong type, broken and blank lines, CRLF, a last
        /// line without its LF) parsed on three threads gives the records
        /// and warnings, in order, that one thread and the reader that
        /// parsed at every line give.
        #[test]
        fn json_lines_on_threads_read_as_on_one(
            lines in prop::collection::vec(prop::sample::select(vec![
                "{\"EventID\": 22, \"SourceName\": \"Microsoft-Windows-Sysmon\", \"QueryName\": \"a.pastebin.com\", \"Image\": \"C:\\\\x.exe\"}",
                "{\"EventID\": 22, \"SourceName\": \"Microsoft-Windows-Sysmon\", \"QueryName\": \"b.example.com\", \"Computer\": \"PC\"}",
                "{\"EventID\": 22, \"SourceName\": \"Microsoft-Windows-Sysmon\", \"QueryName\": 5}",
                "{\"EventID\": 1, \"SourceName\": \"Microsoft-Windows-Sysmon\"}",
                "{\"EventID\": 22, \"QueryName\": \"cut", "[1, 2]", "x", "", "   ", "{}",
                // lines one parser going from value to value could misread
                // (json::Parser): two values, text after one, a value going
                // on over the next line, blanks JSON has not, numbers cut
                "{\"EventID\": 22, \"SourceName\": \"Microsoft-Windows-Sysmon\", \"QueryName\": \"c.pastebin.com\"} {\"EventID\": 1}",
                "{\"EventID\": 22, \"SourceName\": \"Microsoft-Windows-Sysmon\", \"QueryName\": \"d.ngrok.io\"} x",
                "{\"EventID\": 22, \"SourceName\": \"Microsoft-Windows-Sysmon\",",
                "\"QueryName\": \"e.pastebin.com\"}",
                " \t{\"EventID\": 22, \"SourceName\": \"Microsoft-Windows-Sysmon\", \"QueryName\": \"f.duckdns.org\", \"Image\": \"C:\\\\a\\u0062.exe\"} \t",
                "\u{c}", "{\"EventID\": 22} \u{c}", "5", "12 ", "\"text\"", "true", "nul", "{\"EventID\": 2", "2}",
            ]), 1..200),
            crlf in any::<bool>(),
            last_lf in any::<bool>(),
        ) {
            let mut data = lines.join(if crlf { "\r\n" } else { "\n" });
            // JSON lines: the first line an object alone
            data.insert_str(0, "{\"EventID\": 22, \"QueryName\": \"first.ngrok.io\"}\n");
            if last_lf {
                data.push('\n');
            }
            let data = data.into_bytes();
            let one = items(read_json_1, &data, 64);
            prop_assert_eq!(&items(read_json_3, &data, 64), &one);
            prop_assert_eq!(&items(read_json_reparsing, &data, 64), &one);
        }
    }

    /// Reading that fails mid-line (a gzip stream cut short, as the fuzz
    /// target found) leaves that line unread on three threads as on one:
    /// the lines (or pretty-printed objects) before it count, and the error
    /// ends the file.
    #[test]
    fn json_cut_by_a_read_error_read_as_on_one_thread() {
        let line =
            "{\"EventID\": 22, \"SourceName\": \"Microsoft-Windows-Sysmon\", \"QueryName\": \"a.pastebin.com\"}\n";
        let pretty = "{\n  \"EventID\": 22,\n  \"SourceName\": \"Microsoft-Windows-Sysmon\",\n  \"QueryName\": \"a.pastebin.com\"\n}\n";
        let cuts =
            |record: &'static str| [0, 1, 5, 40, record.len() - 1, MAX_RECORD_BYTES + 100_000].map(|c| (record, c));
        for (record, cut) in cuts(line).into_iter().chain(cuts(pretty)) {
            let mut data = record.repeat(20).into_bytes();
            if cut > record.len() {
                // a line over the bound, its end never read
                data.resize(data.len() + cut, b'x');
            } else {
                data.extend_from_slice(&record.as_bytes()[..cut]);
            }
            let read = |threads: usize| {
                let mut out = Vec::new();
                let input = Box::new(BufReader::with_capacity(
                    64,
                    Failing(Cursor::new(data.clone()), Vec::new()),
                ));
                let got = read_json(input, &mut |item| out.push(matches!(item, Item::Record(_))), threads);
                (got.map_err(|e| e.to_string()), out)
            };
            let one = read(1);
            assert_eq!(
                one,
                (Err("stream cut short".to_string()), vec![true; 20]),
                "cut at {cut}"
            );
            assert_eq!(read(3), one, "cut at {cut}");
        }
        // Objects after a broken one, handed back with the error right
        // behind the last, and more text after the error: read up to it,
        // not past.
        let mut data = pretty.repeat(20);
        data.push_str("{\n  \"EventID\": tru\n}\n");
        data.push_str(&pretty.repeat(5));
        let read = |reader: Reader| {
            let mut out = Vec::new();
            let failing = Failing(Cursor::new(data.clone().into_bytes()), pretty.repeat(5).into_bytes());
            let got = reader(Box::new(BufReader::with_capacity(64, failing)), &mut |item| {
                out.push(matches!(item, Item::Record(_)))
            });
            (got.map_err(|e| e.to_string()), out)
        };
        // (the broken object is two warnings: its text, then its `}`)
        let records: Vec<bool> = (0..27).map(|i| !(20..22).contains(&i)).collect();
        let one = read(read_json_1);
        assert_eq!(one, (Err("stream cut short".to_string()), records));
        assert_eq!(read(read_json_3), one);
    }

    /// The brackets followed as they were, a byte at a time: the oracle of
    /// [`Brackets::line`].
    fn brackets_by_bytes(b: &mut Brackets, bytes: &[u8]) -> bool {
        for &c in bytes {
            if b.in_string {
                match c {
                    b'\n' => return true,
                    _ if b.escaped => b.escaped = false,
                    b'\\' => b.escaped = true,
                    b'"' => b.in_string = false,
                    _ => {}
                }
                continue;
            }
            match c {
                b'"' => b.in_string = true,
                b'{' | b'[' => b.depth += 1,
                b'}' | b']' => b.depth = b.depth.saturating_sub(1),
                _ => {}
            }
        }
        b.depth == 0 && !b.in_string
    }

    proptest! {
        /// Lines of brackets, quotes and escapes are followed as a byte at
        /// a time follows them: the same answers, and the same state after
        /// each line but one broken inside a string.
        #[test]
        fn brackets_follow_lines_as_byte_by_byte(
            text in prop::collection::vec(prop::sample::select(b"{}[]\"\\\n a:,".to_vec()), 0..300),
        ) {
            let (mut fast, mut slow) = (Brackets::default(), Brackets::default());
            let mut at = 0;
            while at < text.len() {
                let (end, closed) = fast.line(&text, at);
                let line = &text[at..end];
                prop_assert!(line.iter().position(|b| *b == b'\n').is_none_or(|i| i + 1 == line.len()));
                prop_assert_eq!(closed, brackets_by_bytes(&mut slow, line));
                prop_assert!(end > at);
                at = end;
                if !slow.in_string || !line.ends_with(b"\n") {
                    prop_assert_eq!(
                        (fast.depth, fast.in_string, fast.escaped),
                        (slow.depth, slow.in_string, slow.escaped)
                    );
                } else {
                    (fast, slow) = (Brackets::default(), Brackets::default());
                }
            }
        }

        /// Pretty-printed objects, some broken, some not starting a line with
        /// `{`, some longer than 64 lines, between blank and stray lines,
        /// read in runs of a few hundred bytes on one thread and on three:
        /// the records and warnings, at the same lines, of the reader that
        /// parsed at every line.
        #[test]
        fn pretty_json_read_in_runs_reads_as_reparsing(
            objects in prop::collection::vec((
                // (a number and a boolean are read with a warning)
                prop::sample::select(vec!["\"a.pastebin.com\"", "\"b.example.com\"", "\"c\\\"{[.ngrok.io\"", "7", "true"]),
                0usize..70,
                prop::sample::select(vec!["", "\n", "  ", "x", "Record 7", "]", "{", "  {", "\"", "\"cut"]),
                prop::sample::select(vec!["{", " {", "[", "{\"EventID\": 22}"]),
                any::<bool>(),
            ), 1..12),
            crlf in any::<bool>(),
            last_lf in any::<bool>(),
        ) {
            let mut lines: Vec<String> = vec!["{\"EventID\": 1,".into(), "\"a\": 2}".into()];
            for (name, extra, between, open, broken) in &objects {
                lines.push(open.to_string());
                lines.push("  \"Event\": {\"System\": {\"EventID\": 22, \"Computer\": \"PC\",".into());
                lines.push("    \"Provider\": {\"#attributes\": {\"Name\": \"Microsoft-Windows-Sysmon\"}}},".into());
                for k in 0..*extra {
                    lines.push(format!("    \"k{k}\": [\"}}\", {k}],"));
                }
                if *broken {
                    lines.push("    \"bad\": tru,".into());
                }
                lines.push(format!("    \"EventData\": {{\"QueryName\": {name}, \"Image\": \"C:\\\\x.exe\"}}"));
                lines.push("  }".into());
                lines.push("}".into());
                lines.push(between.to_string());
            }
            let mut data = lines.join(if crlf { "\r\n" } else { "\n" });
            if last_lf {
                data.push('\n');
            }
            let data = data.into_bytes();
            let oracle = items(read_json_reparsing, &data, 64);
            prop_assert_eq!(&items(read_json_1, &data, 64), &oracle);
            prop_assert_eq!(&items(read_json_3, &data, 100), &oracle);
        }
    }

    /// Gives its bytes, then an error, then (asked again) the bytes of the
    /// second: what a reader must not read on into.
    struct Failing(Cursor<Vec<u8>>, Vec<u8>);

    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match self.0.read(buf)? {
                0 => {
                    self.0 = Cursor::new(std::mem::take(&mut self.1));
                    Err(std::io::Error::other("stream cut short"))
                }
                n => Ok(n),
            }
        }
    }

    /// A line longer than the bound is skipped, not held: what follows it
    /// is read.
    #[test]
    fn json_lines_longer_than_the_bound_are_skipped() {
        let record =
            "{\"EventID\": 22, \"SourceName\": \"Microsoft-Windows-Sysmon\", \"QueryName\": \"a.pastebin.com\"}\n";
        let mut data = record.as_bytes().to_vec();
        data.extend_from_slice(b"{\"a\": \"");
        data.resize(data.len() + MAX_RECORD_BYTES, b'x');
        data.extend_from_slice(b"\"}\n");
        data.extend_from_slice(record.as_bytes());
        let got = items(read_json_1, &data, 1 << 16);
        assert_eq!(items(read_json_3, &data, 1 << 16), got);
        assert_eq!(
            got.len(),
            3,
            "{:?}",
            got.iter().map(|i| &i[..i.len().min(80)]).collect::<Vec<_>>()
        );
        assert!(got[0].starts_with("Sysmon") && got[2].starts_with("Sysmon"));
        assert_eq!(got[1], format!("line 2: longer than {MAX_RECORD_BYTES} bytes, skipped"));
        let mut line = Vec::new();
        let mut input = Cursor::new(&data[record.len()..]);
        let (n, long) = read_line_bounded(&mut input, &mut line, 100).expect("from memory");
        assert_eq!((n, long, line.len()), (MAX_RECORD_BYTES + 10, true, 101));
        // Far longer than the bound (JSON lines on threads stop keeping it
        // before its end), and last, without its LF.
        let mut data = record.repeat(3).into_bytes();
        data.resize(data.len() + MAX_RECORD_BYTES + 300_000, b'x');
        data.extend_from_slice(b"\n");
        data.extend_from_slice(record.as_bytes());
        data.resize(data.len() + MAX_RECORD_BYTES + 5, b'y');
        let got = items(read_json_1, &data, 1 << 16);
        assert_eq!(items(read_json_3, &data, 1 << 16), got);
        assert_eq!(got.len(), 6);
        assert_eq!(got[3], format!("line 4: longer than {MAX_RECORD_BYTES} bytes, skipped"));
        assert_eq!(got[5], format!("line 6: longer than {MAX_RECORD_BYTES} bytes, skipped"));
        // After pretty-printed objects (read in runs, the long line handed
        // back to the one-thread reader), with or without a `{` first.
        let pretty = "{\n  \"EventID\": 22,\n  \"SourceName\": \"Microsoft-Windows-Sysmon\",\n  \"QueryName\": \"a.pastebin.com\"\n}\n";
        for first in ["", "{\"a\": \""] {
            let mut data = pretty.repeat(3).into_bytes();
            data.extend_from_slice(first.as_bytes());
            data.resize(data.len() + MAX_RECORD_BYTES + 300_000, b'x');
            data.extend_from_slice(b"\n");
            data.extend_from_slice(pretty.as_bytes());
            let got = items(read_json_1, &data, 1 << 16);
            assert_eq!(items(read_json_3, &data, 1 << 16), got);
            assert_eq!(got.len(), 5, "{first}");
            assert!(got.iter().enumerate().all(|(i, g)| (i == 3) != g.starts_with("Sysmon")));
            assert_eq!(
                got[3],
                format!("line 16: longer than {MAX_RECORD_BYTES} bytes, skipped")
            );
        }
    }

    /// Events with no line end between them (as `wevtutil qe /f:xml`
    /// writes them) are each read, numbered in order.
    #[test]
    fn xml_on_one_line_reads_every_event() {
        let event = "<Event><System><Provider Name='Microsoft-Windows-Sysmon'/><EventID>22</EventID></System>\
                     <EventData><Data Name='QueryName'>q.pastebin.com</Data><Data Name='Image'>&bogus;</Data>\
                     </EventData></Event>";
        let data = event.repeat(5000);
        let got = items(read_xml_1, data.as_bytes(), 1 << 16);
        assert_eq!(items(read_xml_3, data.as_bytes(), 1 << 16), got);
        assert_eq!(items(read_xml_alone, data.as_bytes(), 1 << 16), got);
        let records = got.iter().filter(|i| i.starts_with("Sysmon")).count();
        assert_eq!(records, 5000);
        assert!(
            got.contains(&"event 5000 (line 1): broken XML entity \"&bogus;\" kept as written".to_string()),
            "{:?}",
            &got[..3]
        );
    }

    /// Events after text with no `</Event>` for longer than a run may wait
    /// (left to the one-thread reader) keep their numbers and lines; and
    /// reading that fails inside an event over several lines ends the file
    /// after the events before it, without a warning for the cut one: in
    /// runs on one thread and on three as by the one-thread reader alone.
    #[test]
    fn xml_in_runs_reads_as_one_thread_past_long_text_and_read_errors() {
        let event = "<Event>\n<System><Provider Name='Microsoft-Windows-Sysmon'/><EventID>22</EventID></System>\n\
                     <EventData><Data Name='QueryName'>q.pastebin.com</Data><Data Name='Image'>&bogus;</Data>\n\
                     </EventData></Event>\n";
        let mut data = event.repeat(3);
        data.push_str(&"<Data>no end of an event here</Data>\n".repeat(100));
        data.push_str(&event.repeat(3));
        let got = items(read_xml_alone, data.as_bytes(), 64);
        assert_eq!(items(read_xml_1, data.as_bytes(), 64), got);
        assert_eq!(items(read_xml_3, data.as_bytes(), 64), got);
        assert!(
            got.contains(&"event 6 (line 121): broken XML entity \"&bogus;\" kept as written".to_string()),
            "{got:?}"
        );
        // An event longer than the bound: skipped, and the rest read.
        let mut data = event.repeat(2);
        data.push_str("<Event>");
        data.push_str(&"x".repeat(MAX_RECORD_BYTES + 100_000));
        data.push_str(&event.repeat(2));
        let got = items(read_xml_1, data.as_bytes(), 1 << 16);
        assert_eq!(items(read_xml_3, data.as_bytes(), 1 << 16), got);
        assert_eq!(items(read_xml_alone, data.as_bytes(), 1 << 16), got);
        // (the skipped text's end is read with the event after it)
        assert_eq!(got.len(), 4 + 1 + 4, "{got:?}");
        assert_eq!(
            got[4],
            format!("line 9: no </Event> within {MAX_RECORD_BYTES} bytes, skipped")
        );
        assert_eq!(
            got[5],
            "event 3 (line 9): broken XML entity \"&bogus;\" kept as written"
        );
        for cut in [0, 1, 10, event.len() / 2, event.len() - 2] {
            let mut data = event.repeat(20).into_bytes();
            data.extend_from_slice(&event.as_bytes()[..cut]);
            let read = |reader: Reader| {
                let mut out = Vec::new();
                let input = Box::new(BufReader::with_capacity(
                    64,
                    Failing(Cursor::new(data.clone()), Vec::new()),
                ));
                let got = reader(input, &mut |item| {
                    out.push(match item {
                        Item::Record(s) => format!("{s:?}"),
                        Item::Warning(w) => w,
                    })
                });
                (got.map_err(|e| e.to_string()), out)
            };
            let alone = read(read_xml_alone);
            assert_eq!(alone.0, Err("stream cut short".to_string()));
            assert_eq!(alone.1.len(), 40, "cut at {cut}");
            assert_eq!(read(read_xml_1), alone, "cut at {cut}");
            assert_eq!(read(read_xml_3), alone, "cut at {cut}");
        }
    }

    #[test]
    fn event_22_prefilter() {
        assert!(may_be_event_22(br##"{"Event":{"System":{"EventID":22,"Version":5}}}"##));
        assert!(may_be_event_22(
            br##"{"Event":{"System":{"EventID":{"#text":22,"#attributes":{}}}}}"##
        ));
        assert!(!may_be_event_22(br##"{"Event":{"System":{"EventID":1,"Version":5}}}"##));
        assert!(!may_be_event_22(
            br##"{"Event":{"System":{"EventID":{"#text":4688}}}}"##
        ));
        assert!(!may_be_event_22(br##"{"Event":{"System":{"EventID":221}}}"##));
        // anything unusual is left to the parser
        assert!(may_be_event_22(br##"{"Event":{"System":{"EventID":"22"}}}"##));
        assert!(may_be_event_22(br##"{"Event":{"System":{"EventID": 1}}}"##));
        assert!(may_be_event_22(br##"{"Event":{"System":{}}}"##));
        assert!(may_be_event_22(
            br##"{"Event":{"System":{"EventID":1},"EventData":{"EventID":22}}}"##
        ));
    }
}
