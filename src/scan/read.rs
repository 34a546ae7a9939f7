//! Reading one input file: its format detected from its content (gzip,
//! then EVTX, JSON or XmlWinEventLog), each record turned into a
//! [`Sysmon`] record or a warning naming the file and the record.

use super::record::{self, Sysmon};
use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, Read, Seek};
use std::path::Path;

/// The most bytes one JSON object or XML event may span; a longer one is
/// skipped with a warning, so a file without line ends cannot fill memory.
pub const MAX_RECORD_BYTES: usize = 16 << 20;

/// Bytes of an EVTX file header block, and of each chunk after it.
const EVTX_HEADER_BLOCK: usize = 4096;
const EVTX_CHUNK: usize = 65536;

/// What reading a file gives: each record or warning, as it is found.
pub enum Item {
    /// A Sysmon EventID 22 record.
    Record(Sysmon),
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
    /// Its content is none of the formats: listed as skipped.
    Unknown,
}

/// Read the file at `path`, calling `each` for every record and warning.
/// Returns the detected format.
pub fn read_file(path: &Path, each: &mut dyn FnMut(Item)) -> Result<Format, Unread> {
    let file = File::open(path).map_err(Unread::Io)?;
    let mut input: Box<dyn BufRead> = Box::new(BufReader::with_capacity(1 << 16, file));
    let head = input.fill_buf().map_err(Unread::Io)?;
    let compressed = head.starts_with(&[0x1f, 0x8b]);
    if compressed {
        input = Box::new(BufReader::with_capacity(
            1 << 16,
            flate2::read::MultiGzDecoder::new(input),
        ));
    }
    let head = input.fill_buf().map_err(Unread::Io)?;
    if head.starts_with(b"ElfFile\0") {
        // A plain file is parsed in place (chunk by chunk, memory bounded by
        // a chunk); a compressed one is decompressed into memory first, as
        // the parser seeks.
        let result = if compressed {
            let mut bytes = Vec::new();
            input.read_to_end(&mut bytes).map(|_| bytes).and_then(|bytes| {
                let len = bytes.len() as u64;
                read_evtx(Cursor::new(bytes), len, each)
            })
        } else {
            drop(input);
            File::open(path).and_then(|f| {
                let len = f.metadata()?.len();
                read_evtx(BufReader::with_capacity(1 << 16, f), len, each)
            })
        };
        stopped(result, each);
        return Ok(Format::Evtx);
    }
    let first = head
        .iter()
        .copied()
        .find(|b| ![b' ', b'\t', b'\r', b'\n', 0xef, 0xbb, 0xbf].contains(b));
    match first {
        Some(b'{') | Some(b'[') => {
            stopped(read_json(input, each), each);
            Ok(Format::Json)
        }
        Some(b'<') => {
            stopped(read_xml(input, each), each);
            Ok(Format::Xml)
        }
        _ => Err(Unread::Unknown),
    }
}

/// A read error once the format is known (a gzip stream cut short, an
/// I/O error mid-file) ends the file with a warning; what was read counts.
fn stopped(result: std::io::Result<()>, each: &mut dyn FnMut(Item)) {
    if let Err(e) = result {
        each(Item::Warning(format!(
            "reading stopped early: {e}; the records before count"
        )));
    }
}

/// EVTX through the `evtx` crate's JSON rendering (the layout of Sigma's
/// JSON files, `Event.System`/`Event.EventData`). A damaged chunk or record
/// is a warning; the parser goes on with the next.
fn read_evtx<T: Read + Seek + Send + 'static>(source: T, len: u64, each: &mut dyn FnMut(Item)) -> std::io::Result<()> {
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    let settings = evtx::ParserSettings::new().num_threads(1);
    let mut parser = match evtx::EvtxParser::from_read_seek(source) {
        Ok(p) => p.with_configuration(settings),
        Err(e) => {
            each(Item::Warning(format!("EVTX file header: {e}")));
            return Ok(());
        }
    };
    // The evtx parser skips chunks cut short or missing without a word; say so.
    let whole = len.saturating_sub(EVTX_HEADER_BLOCK) / EVTX_CHUNK;
    let partial = len.saturating_sub(EVTX_HEADER_BLOCK) % EVTX_CHUNK;
    let listed = usize::from(parser.header().chunk_count);
    if partial != 0 || whole < listed {
        each(Item::Warning(format!(
            "EVTX file truncated: its header lists {listed} chunks of 65536 bytes, it holds {whole} whole ones{}; \
             the records beyond are not read",
            if partial != 0 {
                format!(" and {partial} bytes of chunk {whole}")
            } else {
                String::new()
            }
        )));
    }
    let mut last_good: Option<u64> = None;
    for r in parser.records_json_value() {
        match r {
            Ok(r) => {
                last_good = Some(r.event_record_id);
                match record::from_json(&r.data) {
                    Ok(Some(s)) => each(Item::Record(s)),
                    Ok(None) => {}
                    Err(p) => each(Item::Warning(format!("EVTX record {}: {p}", r.event_record_id))),
                }
            }
            Err(e) => {
                let after = match last_good {
                    Some(id) => format!("after record {id}"),
                    None => "before any record".to_string(),
                };
                each(Item::Warning(format!("EVTX, {after}: {e}; reading goes on")));
            }
        }
    }
    Ok(())
}

/// JSON: an array of objects, or a sequence of objects (one a line, or
/// pretty-printed over many lines). A line that cannot start or continue an
/// object is a warning naming its line; reading goes on at the next line.
fn read_json(mut input: Box<dyn BufRead>, each: &mut dyn FnMut(Item)) -> std::io::Result<()> {
    let head = input.fill_buf()?;
    if head.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        let mut bytes = Vec::new();
        input.read_to_end(&mut bytes)?;
        match serde_json::from_slice::<Vec<serde_json::Value>>(&bytes) {
            Ok(values) => {
                for (i, v) in values.iter().enumerate() {
                    json_record(v, &format!("array element {}", i + 1), each);
                }
            }
            Err(e) => each(Item::Warning(format!("JSON array: {e}"))),
        }
        return Ok(());
    }
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
        let parsed = serde_json::from_slice::<serde_json::Value>(&pending);
        // JSON lines (the first object fits its line): every line stands alone.
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
                json_record(&v, &format!("line {start_line}"), each);
                pending.clear();
            }
            Err(e) if e.is_eof() && pending.len() <= MAX_RECORD_BYTES => {}
            Err(e) => {
                each(Item::Warning(format!("line {start_line}: not a JSON object: {e}")));
                pending.clear();
                // An object cut short swallowed the lines after it: start
                // again at this line, on its own.
                if start_line != number && !line.iter().all(u8::is_ascii_whitespace) {
                    start_line = number;
                    match serde_json::from_slice::<serde_json::Value>(&line) {
                        Ok(v) => json_record(&v, &format!("line {start_line}"), each),
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

fn json_record(v: &serde_json::Value, place: &str, each: &mut dyn FnMut(Item)) {
    if !v.is_object() {
        each(Item::Warning(format!("{place}: not a JSON object")));
        return;
    }
    match record::from_json(v) {
        Ok(Some(s)) => each(Item::Record(s)),
        Ok(None) => {}
        Err(p) => each(Item::Warning(format!("{place}: {p}"))),
    }
}

/// XmlWinEventLog: every `<Event …>…</Event>`, however the lines fall.
/// Text that is not valid UTF-8 is read with replacement characters and a
/// warning.
fn read_xml(mut input: Box<dyn BufRead>, each: &mut dyn FnMut(Item)) -> std::io::Result<()> {
    let mut pending: Vec<u8> = Vec::new();
    let mut line_no = 0u64;
    let mut start_line = 1u64;
    let mut event_no = 0u64;
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
        while let Some(end) = memchr::memmem::find(&pending, b"</Event>") {
            let end = end + b"</Event>".len();
            let text = &pending[..end];
            match memchr::memmem::find(text, b"<Event") {
                Some(start) => {
                    event_no += 1;
                    let place = format!("event {event_no} (line {start_line})");
                    let xml = String::from_utf8_lossy(&text[start..]);
                    if matches!(xml, std::borrow::Cow::Owned(_)) {
                        each(Item::Warning(format!(
                            "{place}: not UTF-8, read with replacement characters"
                        )));
                    }
                    let (s, problems) = record::from_xml(&xml);
                    for p in problems {
                        each(Item::Warning(format!("{place}: {p}")));
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
        } else if pending.len() > MAX_RECORD_BYTES {
            each(Item::Warning(format!(
                "line {start_line}: no </Event> within {MAX_RECORD_BYTES} bytes, skipped"
            )));
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
