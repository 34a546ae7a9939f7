//! Shared helpers for the integration tests: the test-side splunkd
//! ([`splunkd`]) plus assertions of the wire contract in `docs/behaviour.md`.
#![allow(dead_code)]

pub mod splunkd;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::{json, Value};
pub use splunkd::*;

/// The binary under test: `$ABUSEDWEB_TEST_BIN` when set (e.g. the aarch64 or
/// Windows release build, which `make cross-test` runs under an emulator named
/// by `$ABUSEDWEB_TEST_RUNNER`, see [`splunkd`]), else the cargo-built one.
pub fn bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| match std::env::var_os("ABUSEDWEB_TEST_BIN") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_abusedweb")),
    })
}

/// required_fields of the getinfo reply, in order (behaviour.md 1).
pub const REQUIRED_FIELDS: [&str; 7] = [
    "_time",
    "Image",
    "QueryName",
    "QueryStatus",
    "process_name",
    "QueryResults",
    "Computer",
];

/// The six by-fields, in `stats ... by` order.
pub const BY_FIELDS: [&str; 6] = [
    "Image",
    "QueryName",
    "QueryStatus",
    "process_name",
    "QueryResults",
    "Computer",
];

/// Result columns of the final reply, in order.
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

/// Sent as `searchinfo.session_key` in every test; must never be echoed.
pub const SECRET_SESSION_KEY: &str = "SeSsIoNkEy_d0NotLeak_9f2c7a1e4b";
/// Put into `searchinfo.search` in every test; must never be echoed.
pub const SECRET_SEARCH_MARK: &str = "SeArChTeXt_d0NotLeak_5e81d3";

/// The getinfo every test sends: default 8.2.1 shape, with the two secrets.
pub fn getinfo(args: &[&str]) -> GetInfo {
    let mut gi = GetInfo::with_args(args);
    gi.session_key = SECRET_SESSION_KEY.to_string();
    gi.search = format!(
        "search index=sysmon \"{SECRET_SEARCH_MARK}\" EventCode=22 | abusedweb {}",
        gi.raw_args.join(" ")
    );
    gi
}

/// required_fields expected for these args: the seven, plus `field=`'s field
/// when not already listed.
pub fn expected_required(args: &[&str]) -> Vec<String> {
    let mut fields: Vec<String> = REQUIRED_FIELDS.iter().map(|s| s.to_string()).collect();
    for a in args {
        if let Some(f) = a.strip_prefix("field=") {
            if !fields.iter().any(|x| x == f) {
                fields.push(f.to_string());
            }
        }
    }
    fields
}

/// Runs getinfo (with `args`) + one execute per body (last finished:true).
pub fn run(args: &[&str], bodies: &[Vec<u8>]) -> Outcome {
    run_conversation(bin(), &getinfo(args), bodies)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Neither the session key nor the search text may appear on stdout/stderr.
pub fn assert_no_secrets(out: &Outcome) {
    let encoded_mark = percent_encode(SECRET_SEARCH_MARK);
    for (name, stream) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        for secret in [SECRET_SESSION_KEY, SECRET_SEARCH_MARK, encoded_mark.as_str()] {
            assert!(
                !contains(stream, secret.as_bytes()),
                "{name} leaks {secret:?}: {}",
                out.describe()
            );
        }
    }
}

/// Checks the getinfo reply: `{"type":"reporting","required_fields":[...]}`, B = 0.
pub fn assert_getinfo_reply(reply: &Reply, args: &[&str]) {
    let expected = json!({"type": "reporting", "required_fields": expected_required(args)});
    assert_eq!(
        reply.meta,
        expected,
        "getinfo reply metadata {:?}",
        String::from_utf8_lossy(&reply.meta_raw)
    );
    assert_eq!(reply.b, 0, "getinfo reply must have no body");
}

/// Checks a result body: header = [`RESULT_COLUMNS`], LF line ends, every
/// data field in splunkd's quoting style (bare iff empty or ASCII alnum).
/// The header line is compared by name (its quoting is not asserted).
pub fn assert_result_body_style(body: &[u8]) -> Table {
    let table = parse_csv(body).unwrap_or_else(|e| panic!("result body not CSV: {e}"));
    assert_eq!(
        table.header_names(),
        RESULT_COLUMNS,
        "result header, body {:?}",
        String::from_utf8_lossy(body)
    );
    let nl = body.iter().position(|&b| b == b'\n').expect("header line ends with LF");
    assert!(
        nl == 0 || body[nl - 1] != b'\r',
        "header line must end with LF, not CRLF"
    );
    let reencoded = encode_rows(&table.header, &table.rows, b"\n");
    let re_nl = reencoded.iter().position(|&b| b == b'\n').unwrap();
    assert_eq!(
        String::from_utf8_lossy(&body[nl + 1..]),
        String::from_utf8_lossy(&reencoded[re_nl + 1..]),
        "data rows must be written in splunkd's quoting style with LF line ends"
    );
    assert_eq!(&body[nl + 1..], &reencoded[re_nl + 1..], "byte-exact rows");
    table
}

/// Asserts the whole happy-path contract for a conversation run with `args`
/// and `n_exec` execute requests; returns the result table (empty when the
/// final reply has B = 0).
pub fn assert_success(out: &Outcome, args: &[&str], n_exec: usize) -> Table {
    let ctx = out.describe();
    assert_eq!(out.code(), Some(0), "exit status: {ctx}");
    assert!(out.stderr.is_empty(), "stderr must be empty on the happy path: {ctx}");
    assert!(out.trailing.is_empty(), "bytes after the last reply: {ctx}");
    assert!(out.framing_error.is_none(), "framing: {ctx}");
    assert_no_secrets(out);
    assert_eq!(out.replies.len(), 1 + n_exec, "one reply per request: {ctx}");
    assert_getinfo_reply(&out.replies[0], args);
    if n_exec == 0 {
        return Table::default();
    }
    for (i, r) in out.replies[1..n_exec].iter().enumerate() {
        assert_eq!(
            r.meta_raw,
            b"{\"finished\":false}",
            "non-final reply {} must be exactly {{\"finished\":false}}: {ctx}",
            i + 2
        );
        assert_eq!(r.b, 0, "non-final reply {} must have B = 0: {ctx}", i + 2);
    }
    let last = &out.replies[n_exec];
    let obj = last.meta.as_object().expect("object");
    assert_eq!(last.finished(), Some(true), "final reply finished:true: {ctx}");
    assert!(obj.get("error").is_none(), "unexpected error: {ctx}");
    assert!(
        obj.get("inspector").map(Value::is_object).unwrap_or(false),
        "final reply carries an inspector object: {ctx}"
    );
    let keys: BTreeSet<&str> = obj.keys().map(String::as_str).collect();
    assert_eq!(keys, BTreeSet::from(["finished", "inspector"]), "final keys: {ctx}");
    if last.b == 0 {
        return Table::default();
    }
    let table = assert_result_body_style(&last.body);
    assert!(!table.rows.is_empty(), "a final body must not be header-only: {ctx}");
    table
}

/// Runs and asserts success; returns the result rows.
pub fn run_ok(args: &[&str], bodies: &[Vec<u8>]) -> Vec<Vec<Vec<u8>>> {
    let out = run(args, bodies);
    assert_success(&out, args, bodies.len()).rows
}

/// Asserts the fatal-error contract (behaviour.md 4) on an outcome: the last
/// reply is `{"finished":true,"error":T,"inspector":{"messages":[["ERROR",T]]}}`
/// with B = 0, nothing follows it, the exit code is 1, earlier replies were
/// ordinary, secrets are not echoed, and T contains every needle.
/// Returns T.
pub fn assert_fatal(out: &Outcome, needles: &[&str]) -> String {
    let ctx = out.describe();
    assert_eq!(out.code(), Some(1), "exit code 1 on a fatal error: {ctx}");
    assert!(out.trailing.is_empty(), "nothing after the error reply: {ctx}");
    assert!(out.framing_error.is_none(), "framing: {ctx}");
    assert_no_secrets(out);
    let last = out.last().unwrap_or_else(|| panic!("no error reply at all: {ctx}"));
    let error = last
        .error()
        .unwrap_or_else(|| panic!("last reply carries no error: {ctx}"))
        .to_string();
    let expected = json!({
        "finished": true,
        "error": error,
        "inspector": {"messages": [["ERROR", error]]},
    });
    assert_eq!(last.meta, expected, "error reply shape: {ctx}");
    assert_eq!(last.b, 0, "error reply has B = 0: {ctx}");
    assert!(!error.trim().is_empty(), "error text is empty");
    for r in &out.replies[..out.replies.len() - 1] {
        assert!(r.error().is_none(), "only one error reply: {ctx}");
        assert_ne!(r.finished(), Some(true), "a finished reply before the error: {ctx}");
    }
    // Shown with `cargo test -- --nocapture`, handy when reviewing messages.
    eprintln!("fatal error text: {error}");
    for n in needles {
        assert!(error.contains(n), "error text {error:?} should contain {n:?}");
    }
    error
}

/// Runs and asserts a fatal error.
pub fn run_fatal(args: &[&str], bodies: &[Vec<u8>], needles: &[&str]) -> String {
    assert_fatal(&run(args, bodies), needles)
}

/// Basename after the last backslash (how the TA derives process_name).
pub fn basename(image: &str) -> &str {
    image.rsplit('\\').next().unwrap_or(image)
}

/// A Sysmon EID 22 event with all seven fields; process_name derived from Image.
pub fn dns(image: &str, query: &str, time: &str) -> Event {
    Event::new()
        .set("_time", time)
        .set("Image", image)
        .set("QueryName", query)
        .set("QueryStatus", "0")
        .set("process_name", basename(image))
        .set("QueryResults", "::ffff:104.20.67.143;")
        .set("Computer", "WIN-1")
}

/// The usual powershell image.
pub const PS: &str = r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe";

/// A body with the seven required columns (splunkd style).
pub fn body(events: &[Event]) -> Vec<u8> {
    encode_events(&REQUIRED_FIELDS, events)
}

/// A header-only body with the seven required columns.
pub fn header_only() -> Vec<u8> {
    body(&[])
}

/// An expected result row from text cells.
pub fn row(cells: &[&str]) -> Vec<Vec<u8>> {
    cells.iter().map(|c| c.as_bytes().to_vec()).collect()
}

/// The expected row for a [`dns`] event group.
pub fn dns_row(image: &str, query: &str, count: usize, first: &str, last: &str) -> Vec<Vec<u8>> {
    row(&[
        image,
        query,
        "0",
        basename(image),
        "::ffff:104.20.67.143;",
        "WIN-1",
        &count.to_string(),
        first,
        last,
    ])
}

/// Pretty rows for assertion messages.
pub fn show(rows: &[Vec<Vec<u8>>]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| r.iter().map(|f| String::from_utf8_lossy(f).into_owned()).collect())
        .collect()
}

/// Asserts equality of row lists, printing them readably on failure.
#[track_caller]
pub fn assert_rows(actual: &[Vec<Vec<u8>>], expected: &[Vec<Vec<u8>>]) {
    assert!(
        actual == expected,
        "result rows differ\n  actual:   {:#?}\n  expected: {:#?}",
        show(actual),
        show(expected)
    );
}
