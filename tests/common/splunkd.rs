//! A test-side splunkd: drives a chunked (SCP v2) custom search command over
//! pipes the way splunkd does, byte by byte.
//!
//! This file deliberately shares **no code** with the crate under test (`src/`):
//! it is an independent implementation of the splunkd side of the protocol,
//! written from `shared/docs/scp2.md` and the real captures, so that a bug in
//! the command's framing or CSV handling cannot be mirrored by the driver.
//!
//! It depends on `std`, `csv` and `serde_json` only, and never names the
//! binary itself: callers pass the path (integration tests use
//! `common::bin()`, `examples/demo.rs` finds the release build).
//! `examples/demo.rs` includes it with
//! `#[path = "../tests/common/splunkd.rs"] mod splunkd;`.
//! When `$ABUSEDWEB_TEST_RUNNER` is set, every program is started through that
//! wrapper (`$ABUSEDWEB_TEST_RUNNER <program>`), e.g. `qemu-aarch64-static` for
//! the aarch64 build or `scripts/wine.sh` for the Windows one.
//!
//! What it provides:
//!
//! * request encoding: [`GetInfo`] (a getinfo metadata object shaped like the
//!   8.x captures), [`execute_chunk`], [`chunk`] (any metadata/body pair);
//! * a CSV body encoder in splunkd's style: [`Event`], [`encode_events`],
//!   [`quote_field`], [`encode_mv`];
//! * a strict reply reader: [`Reply`], [`parse_stream`] (exact `chunked 1.0,M,B\n`
//!   header, exactly `M` then `B` bytes, metadata parsed with serde_json, body
//!   with the csv crate into a byte-exact [`Table`]);
//! * two ways to run the command:
//!   [`run_chunks`] / [`run_conversation`] talk in lock-step like splunkd (one
//!   request, wait for its reply, next request; stop at the first reply with
//!   `finished:true`), while [`run_raw`] writes arbitrary bytes, closes stdin
//!   and collects everything. Both write from a separate thread, so a command
//!   that stops reading cannot deadlock the caller, and both kill the process
//!   and panic after [`DEFAULT_TIMEOUT`].
#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long one command process may take in total before it is killed and the
/// caller panics.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// Longest reply header line accepted (`chunked 1.0,` + two 20-digit numbers + LF).
const MAX_HEADER_LEN: usize = 64;

// ---------------------------------------------------------------------------
// Request encoding
// ---------------------------------------------------------------------------

/// Frames one chunk: `chunked 1.0,<M>,<B>\n` + metadata + body, lengths in bytes.
pub fn chunk(metadata: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = format!("chunked 1.0,{},{}\n", metadata.len(), body.len()).into_bytes();
    out.extend_from_slice(metadata);
    out.extend_from_slice(body);
    out
}

/// An execute request exactly as splunkd 8.x writes it:
/// `{"action":"execute","finished":<bool>}` followed by the CSV body.
pub fn execute_chunk(finished: bool, body: &[u8]) -> Vec<u8> {
    chunk(execute_metadata(finished).as_bytes(), body)
}

/// The compact metadata of an execute request.
pub fn execute_metadata(finished: bool) -> String {
    format!("{{\"action\":\"execute\",\"finished\":{finished}}}")
}

/// Percent-encodes like splunkd does for `searchinfo.search`: every byte other
/// than ASCII letters, digits and `-_.~` becomes `%XX` (upper-case hex).
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The getinfo request, with the keys of the splunkd 8.x captures (section 5 of
/// scp2.md): `action`, `preview`, `streaming_command_will_restart`, `searchinfo{..}`.
///
/// `search` holds the *decoded* search text; it is percent-encoded on the wire.
/// `earliest_time`/`latest_time` are strings of epoch seconds as splunkd sends
/// them; `maxresultrows` is a JSON integer as in every 8.x capture.
#[derive(Clone, Debug)]
pub struct GetInfo {
    pub preview: bool,
    pub streaming_command_will_restart: bool,
    /// Command arguments after splunkd's tokenising (quotes removed).
    pub args: Vec<String>,
    /// The same tokens with their original quoting.
    pub raw_args: Vec<String>,
    pub dispatch_dir: String,
    pub sid: String,
    pub app: String,
    pub owner: String,
    pub username: String,
    pub session_key: String,
    pub splunkd_uri: String,
    pub splunk_version: String,
    /// Decoded search string (percent-encoded when written).
    pub search: String,
    pub command: String,
    pub maxresultrows: u64,
    pub earliest_time: String,
    pub latest_time: String,
}

impl Default for GetInfo {
    fn default() -> Self {
        GetInfo::with_args(&[])
    }
}

impl GetInfo {
    /// A getinfo for `| abusedweb <args>`, as a search head running 8.2.1
    /// would send it. `raw_args` quote any argument value containing a space.
    pub fn with_args(args: &[&str]) -> Self {
        let raw_args: Vec<String> = args.iter().map(|a| raw_arg(a)).collect();
        let search = format!(
            "search index=main sourcetype=XmlWinEventLog EventCode=22 | abusedweb {}",
            raw_args.join(" ")
        )
        .trim_end()
        .to_string();
        GetInfo {
            preview: false,
            streaming_command_will_restart: false,
            args: args.iter().map(|a| a.to_string()).collect(),
            raw_args,
            dispatch_dir: "/opt/splunk/var/run/splunk/dispatch/1700000000.42".to_string(),
            sid: "1700000000.42".to_string(),
            app: "search".to_string(),
            owner: "admin".to_string(),
            username: "admin".to_string(),
            session_key: "nwACeZbFjwt_VBxvPKiz^7lBwIEVXciKk7hqSDS9PR3LbGGNuohOm4Xp".to_string(),
            splunkd_uri: "https://127.0.0.1:8089".to_string(),
            splunk_version: "8.2.1".to_string(),
            search,
            command: "abusedweb".to_string(),
            maxresultrows: 50000,
            earliest_time: "1699996400".to_string(),
            latest_time: "1700000000".to_string(),
        }
    }

    /// Compact JSON metadata, keys in the order splunkd 8.2.1 writes them.
    pub fn metadata(&self) -> String {
        let s = |v: &str| serde_json::to_string(v).expect("string encodes");
        let list = |v: &[String]| serde_json::to_string(v).expect("list encodes");
        format!(
            concat!(
                "{{\"action\":\"getinfo\",\"preview\":{},\"streaming_command_will_restart\":{},",
                "\"searchinfo\":{{\"args\":{},\"raw_args\":{},\"dispatch_dir\":{},\"sid\":{},",
                "\"app\":{},\"owner\":{},\"username\":{},\"session_key\":{},\"splunkd_uri\":{},",
                "\"splunk_version\":{},\"search\":{},\"command\":{},\"maxresultrows\":{},",
                "\"earliest_time\":{},\"latest_time\":{}}}}}"
            ),
            self.preview,
            self.streaming_command_will_restart,
            list(&self.args),
            list(&self.raw_args),
            s(&self.dispatch_dir),
            s(&self.sid),
            s(&self.app),
            s(&self.owner),
            s(&self.username),
            s(&self.session_key),
            s(&self.splunkd_uri),
            s(&self.splunk_version),
            s(&percent_encode(&self.search)),
            s(&self.command),
            self.maxresultrows,
            s(&self.earliest_time),
            s(&self.latest_time),
        )
    }

    /// The whole getinfo request chunk (B = 0).
    pub fn chunk(&self) -> Vec<u8> {
        chunk(self.metadata().as_bytes(), b"")
    }
}

/// `name=value with space` -> `name="value with space"` (what `raw_args` keeps).
fn raw_arg(arg: &str) -> String {
    match arg.split_once('=') {
        Some((name, value)) if value.contains(' ') || value.is_empty() => {
            format!("{name}=\"{value}\"")
        }
        _ => arg.to_string(),
    }
}

// ---------------------------------------------------------------------------
// CSV bodies in splunkd's style
// ---------------------------------------------------------------------------

/// Appends one CSV field in splunkd's quoting style: bare iff empty or only
/// ASCII letters/digits, otherwise wrapped in `"` with embedded `"` doubled.
pub fn quote_field(field: &[u8], out: &mut Vec<u8>) {
    if field.iter().all(|b| b.is_ascii_alphanumeric()) {
        out.extend_from_slice(field);
        return;
    }
    out.push(b'"');
    for &b in field {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// Encodes a multivalue for a `__mv_<f>` column: `$v1$;$v2$`, every `$` inside a
/// value doubled. (An empty list gives an empty string.)
pub fn encode_mv<V: AsRef<[u8]>>(values: &[V]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(b';');
        }
        out.push(b'$');
        for &b in v.as_ref() {
            if b == b'$' {
                out.push(b'$');
            }
            out.push(b);
        }
        out.push(b'$');
    }
    out
}

/// Encodes header + rows with [`quote_field`], each record followed by `line_end`.
pub fn encode_rows<H: AsRef<[u8]>, F: AsRef<[u8]>>(header: &[H], rows: &[Vec<F>], line_end: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let record = |fields: &mut dyn Iterator<Item = &[u8]>, out: &mut Vec<u8>| {
        for (i, f) in fields.enumerate() {
            if i > 0 {
                out.push(b',');
            }
            quote_field(f, out);
        }
        out.extend_from_slice(line_end);
    };
    record(&mut header.iter().map(|h| h.as_ref()), &mut out);
    for row in rows {
        record(&mut row.iter().map(|f| f.as_ref()), &mut out);
    }
    out
}

/// One search result as splunkd holds it: field name -> list of values
/// (empty list = field absent, one value = single, more = multivalue).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Event {
    pub fields: Vec<(String, Vec<Vec<u8>>)>,
}

impl Event {
    pub fn new() -> Self {
        Event::default()
    }

    /// Sets a single value (replacing any earlier value of that field).
    pub fn set(self, field: &str, value: impl AsRef<[u8]>) -> Self {
        self.set_mv(field, &[value.as_ref()])
    }

    /// Sets a list of values (multivalue when more than one).
    pub fn set_mv<V: AsRef<[u8]>>(mut self, field: &str, values: &[V]) -> Self {
        let values: Vec<Vec<u8>> = values.iter().map(|v| v.as_ref().to_vec()).collect();
        match self.fields.iter_mut().find(|(f, _)| f == field) {
            Some(slot) => slot.1 = values,
            None => self.fields.push((field.to_string(), values)),
        }
        self
    }

    /// The values of a field (empty when absent).
    pub fn get(&self, field: &str) -> &[Vec<u8>] {
        self.fields
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, v)| v.as_slice())
            .unwrap_or(&[])
    }

    /// Field names in insertion order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|(f, _)| f.as_str())
    }

    /// The (plain, `__mv_`) cell pair splunkd writes for this field.
    pub fn cells(&self, field: &str) -> (Vec<u8>, Vec<u8>) {
        let values = self.get(field);
        match values.len() {
            0 => (Vec::new(), Vec::new()),
            1 => (values[0].clone(), Vec::new()),
            _ => (values.join(&b'\n'), encode_mv(values)),
        }
    }
}

/// How [`encode_events_with`] lays out a body.
#[derive(Clone, Debug)]
pub struct CsvStyle {
    /// Record terminator: `b"\n"` (every capture) or `b"\r\n"`.
    pub line_end: &'static [u8],
    /// Write the `__mv_<f>` column block (splunkd always does).
    pub mv_columns: bool,
}

impl Default for CsvStyle {
    fn default() -> Self {
        CsvStyle {
            line_end: b"\n",
            mv_columns: true,
        }
    }
}

/// Encodes events under the given ordinary columns in splunkd's style: the
/// columns, then `__mv_<f>` for each in the same order; LF line ends. A field
/// with several values is written as the values joined by `\n` plus its
/// `$v1$;$v2$` encoding; single values leave `__mv_` empty.
/// With no events the result is the header line alone.
pub fn encode_events<C: AsRef<str>>(columns: &[C], events: &[Event]) -> Vec<u8> {
    encode_events_with(columns, events, &CsvStyle::default())
}

/// [`encode_events`] with an explicit [`CsvStyle`].
pub fn encode_events_with<C: AsRef<str>>(columns: &[C], events: &[Event], style: &CsvStyle) -> Vec<u8> {
    let mut header: Vec<Vec<u8>> = columns.iter().map(|c| c.as_ref().as_bytes().to_vec()).collect();
    if style.mv_columns {
        header.extend(columns.iter().map(|c| format!("__mv_{}", c.as_ref()).into_bytes()));
    }
    let rows: Vec<Vec<Vec<u8>>> = events
        .iter()
        .map(|e| {
            let cells: Vec<(Vec<u8>, Vec<u8>)> = columns.iter().map(|c| e.cells(c.as_ref())).collect();
            let mut row: Vec<Vec<u8>> = cells.iter().map(|(p, _)| p.clone()).collect();
            if style.mv_columns {
                row.extend(cells.into_iter().map(|(_, m)| m));
            }
            row
        })
        .collect();
    encode_rows(&header, &rows, style.line_end)
}

// ---------------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------------

/// A CSV body parsed byte-exactly: header record and data records.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Table {
    pub header: Vec<Vec<u8>>,
    pub rows: Vec<Vec<Vec<u8>>>,
}

impl Table {
    /// Header names as (lossy) strings.
    pub fn header_names(&self) -> Vec<String> {
        self.header
            .iter()
            .map(|h| String::from_utf8_lossy(h).into_owned())
            .collect()
    }

    /// Index of a column by name.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name.as_bytes())
    }

    /// Rows as lossy strings, for readable assertions and printing.
    pub fn rows_lossy(&self) -> Vec<Vec<String>> {
        self.rows
            .iter()
            .map(|r| r.iter().map(|f| String::from_utf8_lossy(f).into_owned()).collect())
            .collect()
    }
}

/// Parses a CSV body (RFC 4180, LF or CRLF) into a [`Table`]; every record
/// must have as many fields as the header. An empty body gives an empty table.
pub fn parse_csv(body: &[u8]) -> Result<Table, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(false)
        .from_reader(body);
    let mut table = Table::default();
    for (i, record) in reader.byte_records().enumerate() {
        let record = record.map_err(|e| format!("CSV body record {i}: {e}"))?;
        let fields: Vec<Vec<u8>> = record.iter().map(|f| f.to_vec()).collect();
        if i == 0 {
            table.header = fields;
        } else {
            table.rows.push(fields);
        }
    }
    Ok(table)
}

/// One chunk read from the command's stdout.
#[derive(Clone, Debug)]
pub struct Reply {
    /// Declared metadata length.
    pub m: usize,
    /// Declared body length.
    pub b: usize,
    /// The metadata bytes exactly as written.
    pub meta_raw: Vec<u8>,
    /// The metadata parsed (always a JSON object).
    pub meta: Value,
    /// The body bytes exactly as written.
    pub body: Vec<u8>,
}

impl Reply {
    /// `finished` of the metadata, when present and boolean.
    pub fn finished(&self) -> Option<bool> {
        self.meta.get("finished").and_then(Value::as_bool)
    }

    /// The `error` text, when present.
    pub fn error(&self) -> Option<&str> {
        self.meta.get("error").and_then(Value::as_str)
    }

    /// The body parsed as CSV (panics with a clear message when it is not CSV).
    pub fn table(&self) -> Table {
        parse_csv(&self.body).unwrap_or_else(|e| {
            panic!(
                "reply body is not valid CSV: {e}\nbody: {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// Outcome of trying to read one chunk from a buffer.
enum Parsed {
    /// A complete chunk and the number of bytes it used.
    Chunk(Reply, usize),
    /// More bytes are needed.
    Incomplete,
}

/// Parses a decimal length strictly: ASCII digits only, no sign, no leading zero
/// (except `0` itself), fits in usize.
fn parse_len(digits: &[u8]) -> Option<usize> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) || (digits.len() > 1 && digits[0] == b'0') {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Reads one reply chunk at the start of `buf`, strictly:
/// exactly `chunked 1.0,<M>,<B>\n`, then M bytes of JSON object, then B bytes.
fn parse_one(buf: &[u8]) -> Result<Parsed, String> {
    const PREFIX: &[u8] = b"chunked 1.0,";
    let check = buf.len().min(PREFIX.len());
    if buf[..check] != PREFIX[..check] {
        return Err(format!(
            "reply does not start with `chunked 1.0,`: {:?}",
            String::from_utf8_lossy(&buf[..buf.len().min(80)])
        ));
    }
    let Some(nl) = buf.iter().take(MAX_HEADER_LEN).position(|&b| b == b'\n') else {
        if buf.len() >= MAX_HEADER_LEN {
            return Err(format!(
                "reply header line longer than {MAX_HEADER_LEN} bytes: {:?}",
                String::from_utf8_lossy(&buf[..MAX_HEADER_LEN])
            ));
        }
        return Ok(Parsed::Incomplete);
    };
    let line = &buf[PREFIX.len()..nl];
    let mut parts = line.split(|&b| b == b',');
    let (Some(m), Some(b), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!(
            "malformed reply header {:?}",
            String::from_utf8_lossy(&buf[..=nl])
        ));
    };
    let (Some(m), Some(b)) = (parse_len(m), parse_len(b)) else {
        return Err(format!(
            "malformed lengths in reply header {:?}",
            String::from_utf8_lossy(&buf[..=nl])
        ));
    };
    let start = nl + 1;
    if buf.len() < start + m + b {
        return Ok(Parsed::Incomplete);
    }
    let meta_raw = buf[start..start + m].to_vec();
    let body = buf[start + m..start + m + b].to_vec();
    let meta: Value = serde_json::from_slice(&meta_raw).map_err(|e| {
        format!(
            "reply metadata is not JSON ({e}): {:?}",
            String::from_utf8_lossy(&meta_raw)
        )
    })?;
    if !meta.is_object() {
        return Err(format!("reply metadata is not a JSON object: {meta}"));
    }
    Ok(Parsed::Chunk(
        Reply {
            m,
            b,
            meta_raw,
            meta,
            body,
        },
        start + m + b,
    ))
}

/// Splits a complete stdout capture into reply chunks. Returns the chunks and
/// the bytes after the last complete chunk (a truncated chunk stays there);
/// malformed framing is an error.
pub fn parse_stream(buf: &[u8]) -> Result<(Vec<Reply>, Vec<u8>), String> {
    match split_replies(buf) {
        (replies, rest, None) => Ok((replies, rest)),
        (_, _, Some(e)) => Err(e),
    }
}

/// Like [`parse_stream`] but keeps the chunks before a framing error: returns
/// (complete chunks, bytes from the first unparsed one, the framing error if any).
pub fn split_replies(mut buf: &[u8]) -> (Vec<Reply>, Vec<u8>, Option<String>) {
    let mut replies = Vec::new();
    while !buf.is_empty() {
        match parse_one(buf) {
            Ok(Parsed::Chunk(reply, used)) => {
                replies.push(reply);
                buf = &buf[used..];
            }
            Ok(Parsed::Incomplete) => break,
            Err(e) => return (replies, buf.to_vec(), Some(e)),
        }
    }
    (replies, buf.to_vec(), None)
}

// ---------------------------------------------------------------------------
// Running the command
// ---------------------------------------------------------------------------

/// Everything one process run produced.
#[derive(Debug)]
pub struct Outcome {
    /// Replies in order (in lock-step mode: one per request answered).
    pub replies: Vec<Reply>,
    /// How many request chunks were sent (lock-step mode) or 0 (raw mode).
    pub requests_sent: usize,
    /// All stdout bytes, exactly.
    pub stdout: Vec<u8>,
    /// stdout bytes after the last complete reply (should be empty).
    pub trailing: Vec<u8>,
    /// Set when stdout after the lock-step part (or in raw mode) was not valid
    /// framing; `trailing` then starts at the offending bytes.
    pub framing_error: Option<String>,
    /// All stderr bytes.
    pub stderr: Vec<u8>,
    /// Exit status of the process.
    pub status: ExitStatus,
}

impl Outcome {
    /// The exit code (`None` when killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// The last reply, if any.
    pub fn last(&self) -> Option<&Reply> {
        self.replies.last()
    }

    /// stderr as lossy text, for failure messages.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// A one-paragraph description for assertion messages.
    pub fn describe(&self) -> String {
        let metas: Vec<String> = self
            .replies
            .iter()
            .map(|r| format!("[M={} B={}] {}", r.m, r.b, String::from_utf8_lossy(&r.meta_raw)))
            .collect();
        format!(
            "exit={:?} requests_sent={} replies={:#?} trailing={:?} framing_error={:?} stderr={:?}",
            self.status.code(),
            self.requests_sent,
            metas,
            String::from_utf8_lossy(&self.trailing),
            self.framing_error,
            self.stderr_text()
        )
    }
}

/// A running command with reader/writer threads around its pipes.
struct Process {
    child: Child,
    /// Sends bytes to the writer thread; dropping it closes the child's stdin.
    to_stdin: Option<Sender<Vec<u8>>>,
    writer: Option<JoinHandle<()>>,
    /// Pieces of stdout as they arrive; disconnected at EOF.
    from_stdout: Receiver<Vec<u8>>,
    stdout_eof: bool,
    /// stderr bytes as they arrive (shared with the reader thread, so a
    /// failure report can show them without waiting for that thread).
    stderr: Arc<Mutex<Vec<u8>>>,
    stderr_reader: Option<JoinHandle<()>>,
    deadline: Instant,
    /// Every stdout byte received so far.
    stdout: Vec<u8>,
    /// Offset in `stdout` of the first byte not yet parsed into a reply.
    parsed: usize,
    program: PathBuf,
}

impl Process {
    fn spawn(program: &Path, timeout: Duration) -> Process {
        let mut command = match std::env::var_os("ABUSEDWEB_TEST_RUNNER") {
            Some(runner) if !runner.is_empty() => {
                let mut c = Command::new(runner);
                c.arg(program);
                c
            }
            _ => Command::new(program),
        };
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let mut stdin = child.stdin.take().expect("stdin piped");
        let mut stdout = child.stdout.take().expect("stdout piped");
        let mut stderr = child.stderr.take().expect("stderr piped");

        let (to_stdin, writer_rx) = mpsc::channel::<Vec<u8>>();
        let writer = thread::spawn(move || {
            // Writes until the channel closes; a broken pipe (the command exited
            // or stopped reading and exited) just ends the writing.
            for bytes in writer_rx {
                if stdin.write_all(&bytes).and_then(|_| stdin.flush()).is_err() {
                    break;
                }
            }
            drop(stdin);
        });

        let (stdout_tx, from_stdout) = mpsc::channel::<Vec<u8>>();
        thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match stdout.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if stdout_tx.send(buf[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                }
            }
        });

        let stderr_buf = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&stderr_buf);
        let stderr_reader = thread::spawn(move || {
            let mut buf = vec![0u8; 8192];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&buf[..n]);
            }
        });

        Process {
            child,
            to_stdin: Some(to_stdin),
            writer: Some(writer),
            from_stdout,
            stdout_eof: false,
            stderr: stderr_buf,
            stderr_reader: Some(stderr_reader),
            deadline: Instant::now() + timeout,
            stdout: Vec::new(),
            parsed: 0,
            program: program.to_path_buf(),
        }
    }

    fn send(&mut self, bytes: Vec<u8>) {
        if let Some(tx) = &self.to_stdin {
            // The writer thread may be gone after a broken pipe; that is fine.
            let _ = tx.send(bytes);
        }
    }

    fn close_stdin(&mut self) {
        self.to_stdin = None;
    }

    fn stderr_bytes(&self) -> Vec<u8> {
        self.stderr.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Kills the process and panics with what was seen so far.
    fn fail(&mut self, why: &str) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.close_stdin();
        let stderr = self.stderr_bytes();
        panic!(
            "test-side splunkd, {}: {why} (process killed)\nstdout so far: {:?}\nstderr: {:?}",
            self.program.display(),
            String::from_utf8_lossy(&self.stdout),
            String::from_utf8_lossy(&stderr)
        );
    }

    /// Waits for more stdout; returns false at EOF.
    fn pull(&mut self) -> bool {
        if self.stdout_eof {
            return false;
        }
        let now = Instant::now();
        if now >= self.deadline {
            self.fail("timed out waiting for output");
        }
        match self.from_stdout.recv_timeout(self.deadline - now) {
            Ok(piece) => {
                self.stdout.extend_from_slice(&piece);
                true
            }
            Err(RecvTimeoutError::Disconnected) => {
                self.stdout_eof = true;
                false
            }
            Err(RecvTimeoutError::Timeout) => self.fail("timed out waiting for output"),
        }
    }

    /// Reads the next reply chunk; `None` at EOF before any byte of it.
    /// Malformed framing panics; EOF inside a chunk returns `None` and leaves
    /// the partial bytes as trailing output.
    fn read_reply(&mut self) -> Option<Reply> {
        loop {
            let pending = &self.stdout[self.parsed..];
            if !pending.is_empty() {
                match parse_one(pending) {
                    Ok(Parsed::Chunk(reply, used)) => {
                        self.parsed += used;
                        return Some(reply);
                    }
                    Ok(Parsed::Incomplete) => {}
                    Err(e) => self.fail(&format!("bad reply framing: {e}")),
                }
            }
            if !self.pull() {
                return None;
            }
        }
    }

    /// Closes stdin, drains stdout and stderr, waits for exit (killing and
    /// panicking at the deadline).
    fn finish(mut self, requests_sent: usize, mut replies: Vec<Reply>) -> Outcome {
        self.close_stdin();
        while self.pull() {}
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) => {
                    if Instant::now() >= self.deadline {
                        self.fail("timed out waiting for the process to exit");
                    }
                    thread::sleep(Duration::from_millis(2));
                }
                Err(e) => self.fail(&format!("wait failed: {e}")),
            }
        };
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
        if let Some(r) = self.stderr_reader.take() {
            let _ = r.join();
        }
        let stderr = self.stderr_bytes();
        let (more, trailing, framing_error) = split_replies(&self.stdout[self.parsed..]);
        replies.extend(more);
        Outcome {
            replies,
            requests_sent,
            stdout: std::mem::take(&mut self.stdout),
            trailing,
            framing_error,
            stderr,
            status,
        }
    }
}

/// Talks to the command in lock-step, as splunkd does: sends each request chunk,
/// waits for exactly one reply, and stops sending after the first reply whose
/// metadata has `finished:true` (or when the command closes stdout). Then
/// closes stdin and collects the rest. Any reply bytes arriving after that are
/// parsed into `replies` too (so "nothing after the final reply" is checkable
/// as `replies.len()` and `trailing`).
pub fn run_chunks(program: &Path, requests: &[Vec<u8>]) -> Outcome {
    run_chunks_timeout(program, requests, DEFAULT_TIMEOUT)
}

/// [`run_chunks`] with an explicit timeout.
pub fn run_chunks_timeout(program: &Path, requests: &[Vec<u8>], timeout: Duration) -> Outcome {
    let mut p = Process::spawn(program, timeout);
    let mut replies = Vec::new();
    let mut sent = 0;
    for request in requests {
        p.send(request.clone());
        sent += 1;
        match p.read_reply() {
            Some(reply) => {
                let done = reply.finished() == Some(true);
                replies.push(reply);
                if done {
                    break;
                }
            }
            None => break,
        }
    }
    p.finish(sent, replies)
}

/// A whole conversation: getinfo, then one execute request per body, the last
/// with `finished:true` (all `false` before it). With no bodies only getinfo is
/// sent and stdin is closed after its reply (a splunkd probe process).
pub fn run_conversation<B: AsRef<[u8]>>(program: &Path, getinfo: &GetInfo, bodies: &[B]) -> Outcome {
    let mut requests = vec![getinfo.chunk()];
    for (i, body) in bodies.iter().enumerate() {
        requests.push(execute_chunk(i + 1 == bodies.len(), body.as_ref()));
    }
    run_chunks(program, &requests)
}

/// Raw mode: writes `input` (any bytes) from a separate thread, closes stdin,
/// and collects all stdout/stderr and the exit status. stdout is split into
/// replies as far as its framing allows; the rest is `trailing`.
pub fn run_raw(program: &Path, input: &[u8]) -> Outcome {
    run_raw_timeout(program, input, DEFAULT_TIMEOUT)
}

/// [`run_raw`] with an explicit timeout.
pub fn run_raw_timeout(program: &Path, input: &[u8], timeout: Duration) -> Outcome {
    let mut p = Process::spawn(program, timeout);
    p.send(input.to_vec());
    p.finish(0, Vec::new())
}
