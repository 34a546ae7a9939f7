//! Hostile input, faults and limits (issue 5): nothing crashes, hangs, leaks
//! or is silently lost.
//!
//! * a table of malformed protocol input, each case with the exact error text
//!   the user sees, through the real binary;
//! * the limits (`max_groups`, `max_chunk_bytes`, the metadata cap, a 10 GB
//!   declared body, a 100 MB field) and the peak memory they allow, measured
//!   as the child's maximum RSS (`/usr/bin/time -f %M`, or Python's
//!   `getrusage(RUSAGE_CHILDREN)` where GNU time is missing);
//! * thousands of random mutations of real captures, in-process, and a few
//!   hundred through the binary under a timeout;
//! * panics become error replies; regression inputs found by the fuzzers;
//! * secrets (session key, search text) never reach stdout or stderr; the
//!   command opens no file and no socket (source scan, plus `strace` when the
//!   machine has it).
//!
//! Every reply stream is held to `fuzz/reply_check.rs`, the contract the
//! `request_stream` fuzz target checks too.

#[path = "../fuzz/reply_check.rs"]
mod reply_check;

use reply_check::{check_conversation, error_text, parse_replies, Reply};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// Building requests

const SESSION_KEY: &str = "SeSsIoN_hostile_7d1f0e9a2b4c";
const SEARCH_MARK: &str = "SeArCh_hostile_3a9b27c5";

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_abusedweb")
}

fn chunk(meta: impl AsRef<[u8]>, body: impl AsRef<[u8]>) -> Vec<u8> {
    let (meta, body) = (meta.as_ref(), body.as_ref());
    let mut v = format!("chunked 1.0,{},{}\n", meta.len(), body.len()).into_bytes();
    v.extend_from_slice(meta);
    v.extend_from_slice(body);
    v
}

/// A getinfo request as splunkd sends it, carrying both secrets.
fn getinfo_meta(args: &[&str]) -> String {
    json!({
        "action": "getinfo",
        "preview": false,
        "streaming_command_will_restart": false,
        "searchinfo": {
            "args": args,
            "raw_args": args,
            "session_key": SESSION_KEY,
            "search": format!("search index=sysmon \"{SEARCH_MARK}\" | abusedweb {}", args.join(" ")),
            "dispatch_dir": "/opt/splunk/var/run/splunk/dispatch/1700000000.1",
            "splunkd_uri": "https://127.0.0.1:8089",
            "app": "search",
            "username": "admin",
        }
    })
    .to_string()
}

fn getinfo(args: &[&str]) -> Vec<u8> {
    chunk(getinfo_meta(args), "")
}

const MORE: &str = r#"{"action":"execute","finished":false}"#;
const LAST: &str = r#"{"action":"execute","finished":true}"#;

const FIELDS: [&str; 7] = [
    "_time",
    "Image",
    "QueryName",
    "QueryStatus",
    "process_name",
    "QueryResults",
    "Computer",
];

/// One CSV value in splunkd's style.
fn csv_value(v: &[u8]) -> Vec<u8> {
    if v.iter().all(u8::is_ascii_alphanumeric) {
        return v.to_vec();
    }
    let mut out = vec![b'"'];
    for &b in v {
        out.push(b);
        if b == b'"' {
            out.push(b'"');
        }
    }
    out.push(b'"');
    out
}

fn csv_row(values: &[&[u8]]) -> Vec<u8> {
    let mut out = values.iter().map(|v| csv_value(v)).collect::<Vec<_>>().join(&b","[..]);
    out.push(b'\n');
    out
}

/// A body with the seven fields (single values, no `__mv_` columns).
fn events(rows: &[[String; 7]]) -> Vec<u8> {
    let header: Vec<&[u8]> = FIELDS.iter().map(|f| f.as_bytes()).collect();
    let mut body = csv_row(&header);
    for r in rows {
        let values: Vec<&[u8]> = r.iter().map(|v| v.as_bytes()).collect();
        body.extend(csv_row(&values));
    }
    body
}

fn event(time: &str, query: &str, host: &str) -> [String; 7] {
    [
        time,
        "C:\\Windows\\p.exe",
        query,
        "0",
        "p.exe",
        "type:  5 ::ffff:1.2.3.4;",
        host,
    ]
    .map(str::to_string)
}

/// A normal conversation with three matching groups over two chunks.
fn happy_stream(args: &[&str]) -> Vec<u8> {
    let a = events(&[
        event("1700000000", "pastebin.com", "h1"),
        event("1700000001", "example.com", "h1"),
    ]);
    let b = events(&[
        event("1700000002", "x.ngrok.io", "h2"),
        event("1700000003", "cdn.discordapp.com", "h3"),
    ]);
    [getinfo(args), chunk(MORE, a), chunk(LAST, b)].concat()
}

// ---------------------------------------------------------------------------
// Running the binary

struct Run {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    timed_out: bool,
    elapsed: Duration,
}

/// Run `cmd` with `input` on stdin; kill it after `timeout`. stdin is written
/// from a thread and write errors are ignored: the command may stop reading.
fn run_command(mut cmd: Command, input: Vec<u8>, timeout: Duration) -> Run {
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let mut err = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > timeout {
            timed_out = true;
            let _ = child.kill();
            break child.wait().expect("wait after kill");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let elapsed = started.elapsed();
    let _ = writer.join();
    Run {
        code: status.code(),
        stdout: reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
        timed_out,
        elapsed,
    }
}

fn run_bin(input: Vec<u8>) -> Run {
    run_command(Command::new(bin()), input, Duration::from_secs(60))
}

fn no_secrets(run: &Run, what: &str) {
    for stream in [&run.stdout, &run.stderr] {
        let text = String::from_utf8_lossy(stream);
        assert!(!text.contains(SESSION_KEY), "{what}: the session key leaked");
        assert!(!text.contains(SEARCH_MARK), "{what}: the search text leaked");
    }
}

/// Run the binary, expect exit 1 with exactly one error reply carrying
/// `expected` as its last chunk, nothing after it, and nothing on stderr.
fn expect_error(name: &str, input: Vec<u8>, expected: &str) -> Vec<Reply> {
    let run = run_bin(input);
    assert!(!run.timed_out, "{name}: timed out");
    assert_eq!(
        run.code,
        Some(1),
        "{name}: exit code; stdout {:?}",
        String::from_utf8_lossy(&run.stdout)
    );
    assert!(
        run.stderr.is_empty(),
        "{name}: stderr {:?}",
        String::from_utf8_lossy(&run.stderr)
    );
    let replies = check_conversation(&run.stdout, 1).unwrap_or_else(|e| panic!("{name}: {e}"));
    let last = replies.last().unwrap();
    assert_eq!(error_text(last), Some(expected), "{name}");
    assert_eq!(last.meta["finished"], true, "{name}");
    assert_eq!(
        last.meta["inspector"]["messages"],
        json!([["ERROR", expected]]),
        "{name}"
    );
    no_secrets(&run, name);
    replies
}

fn expect_success(name: &str, input: Vec<u8>) -> Vec<Reply> {
    let run = run_bin(input);
    assert!(!run.timed_out, "{name}: timed out");
    assert_eq!(
        run.code,
        Some(0),
        "{name}: stdout {:?}",
        String::from_utf8_lossy(&run.stdout)
    );
    assert!(run.stderr.is_empty(), "{name}: stderr not empty");
    no_secrets(&run, name);
    check_conversation(&run.stdout, 0).unwrap_or_else(|e| panic!("{name}: {e}"))
}

// ---------------------------------------------------------------------------
// The malformed-input table

const HEADER_FORM: &str = "expected a header `chunked 1.0,<metadata length>,<body length>`, found";
const VALID_OPTIONS: &str = "Valid options: patterns=<wildcard> <wildcard> ..., field=<field name>, \
                             max_groups=<integer 1..100000000>, max_chunk_bytes=<integer 1024..17179869184>, \
                             list=<list name>, escu_version=4|13, distributed=<bool>, phase=map|reduce";

struct Case {
    name: &'static str,
    input: Vec<u8>,
    error: String,
}

fn malformed_cases() -> Vec<Case> {
    let gi = getinfo(&[]);
    let g = gi.len();
    let after = |rest: &[u8]| [gi.clone(), rest.to_vec()].concat();
    // Offset of a body in `gi + chunk(meta, body)`.
    let body_at =
        |meta: &str, body_len: usize| g + format!("chunked 1.0,{},{body_len}\n", meta.len()).len() + meta.len();
    let ok_row = events(&[event("1", "pastebin.com", "h")]);
    let mut cases = vec![
        Case {
            name: "header is not `chunked 1.0,M,B`",
            input: b"hello splunkd\n".to_vec(),
            error: format!("malformed request at chunk 1 (byte offset 0): {HEADER_FORM} 13 bytes that do not start with \"chunked\""),
        },
        Case {
            name: "wrong protocol version",
            input: b"chunked 2.0,2,0\n{}".to_vec(),
            error: format!("malformed request at chunk 1 (byte offset 0): {HEADER_FORM} \"chunked 2.0,2,0\""),
        },
        Case {
            name: "header of the second chunk is garbage",
            input: after(b"GET / HTTP/1.1\r\n"),
            error: format!("malformed request at chunk 2 (byte offset {g}): {HEADER_FORM} 15 bytes that do not start with \"chunked\""),
        },
        Case {
            name: "header without LF at end of stream",
            input: after(b"chunked 1.0,37,0"),
            error: format!(
                "malformed request at chunk 2 (byte offset {g}): the stream ended inside a chunk header \
                 (no LF after \"chunked 1.0,37,0\")"
            ),
        },
        Case {
            name: "header line without LF for 256 bytes",
            input: vec![b'x'; 1000],
            error: "malformed request at chunk 1 (byte offset 0): no LF within the first 256 bytes of a chunk header \
                    (256 bytes that do not start with \"chunked\")"
                .into(),
        },
        Case {
            name: "non-digit metadata length",
            input: b"chunked 1.0,1a,0\n".to_vec(),
            error: format!("malformed request at chunk 1 (byte offset 0): {HEADER_FORM} \"chunked 1.0,1a,0\""),
        },
        Case {
            name: "negative body length",
            input: after(b"chunked 1.0,2,-5\n{}"),
            error: format!("malformed request at chunk 2 (byte offset {g}): {HEADER_FORM} \"chunked 1.0,2,-5\""),
        },
        Case {
            name: "missing body length",
            input: b"chunked 1.0,2\n{}".to_vec(),
            error: format!("malformed request at chunk 1 (byte offset 0): {HEADER_FORM} \"chunked 1.0,2\""),
        },
        Case {
            name: "metadata length overflows 64 bits",
            input: b"chunked 1.0,99999999999999999999,0\n".to_vec(),
            error: "malformed request at chunk 1 (byte offset 0): the metadata length does not fit in 64 bits".into(),
        },
        Case {
            name: "body length overflows 64 bits",
            input: after(b"chunked 1.0,2,18446744073709551616\n{}"),
            error: format!("malformed request at chunk 2 (byte offset {g}): the body length does not fit in 64 bits"),
        },
        Case {
            name: "metadata length beyond the 64 MiB cap",
            input: b"chunked 1.0,99999999999,0\n{}".to_vec(),
            error: "malformed request at chunk 1 (byte offset 26): metadata length 99999999999 exceeds the limit of \
                    67108864 bytes"
                .into(),
        },
        Case {
            name: "truncated metadata",
            input: after(b"chunked 1.0,100,0\n{\"action\":"),
            error: format!(
                "malformed request at chunk 2 (byte offset {}): truncated metadata: the header declared 100 bytes but \
                 the stream ended after 10",
                g + 18 + 10
            ),
        },
        Case {
            name: "truncated body",
            input: {
                let full = chunk(LAST, &ok_row);
                after(&full[..full.len() - 5])
            },
            error: format!(
                "bad CSV body in chunk 2, row 1 (byte offset {}): truncated body: the header declared {} bytes but \
                 the stream ended after {}",
                body_at(LAST, ok_row.len()) + ok_row.len() - 5,
                ok_row.len(),
                ok_row.len() - 5
            ),
        },
        Case {
            name: "empty metadata",
            input: chunk("", ""),
            error: "bad request metadata in chunk 1 (byte offset 0): the request has no metadata (length 0)".into(),
        },
        Case {
            name: "invalid JSON",
            input: after(&chunk("{nope}", "")),
            error: format!(
                "bad request metadata in chunk 2 (byte offset {g}): the metadata is not valid JSON (syntax error at \
                 line 1 column 2)"
            ),
        },
        Case {
            name: "JSON that ends early",
            input: chunk(r#"{"action":"getinfo","#, ""),
            error: "bad request metadata in chunk 1 (byte offset 0): the metadata is not valid JSON (it ends early at \
                    line 1 column 20)"
                .into(),
        },
        Case {
            name: "invalid UTF-8 inside a key the command skips (fuzz finding)",
            input: chunk(
                &b"{\"action\":\"getinfo\",\"x\":{\"session_ke\xff\":\"KEY\"}}"[..],
                "",
            ),
            error: "bad request metadata in chunk 1 (byte offset 0): the metadata is not valid UTF-8 (at byte 36)"
                .into(),
        },
        Case {
            name: "JSON nested 10,000 deep",
            input: chunk(format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)), ""),
            error: "bad request metadata in chunk 1 (byte offset 0): the metadata is JSON an array where an object \
                    was expected"
                .into(),
        },
        Case {
            name: "JSON nested 100,000 deep inside searchinfo.args",
            input: chunk(
                format!(
                    "{{\"action\":\"getinfo\",\"searchinfo\":{{\"args\":[{}{}]}}}}",
                    "[".repeat(100_000),
                    "]".repeat(100_000)
                ),
                "",
            ),
            error: "bad request metadata in chunk 1 (byte offset 0): searchinfo.args[0] is an array where a string \
                    was expected"
                .into(),
        },
        Case {
            name: "metadata that is not UTF-8, even in a key the command skips",
            input: chunk(&b"{\"action\":\"getinfo\",\"x\":\"\xff\"}"[..], ""),
            error: "bad request metadata in chunk 1 (byte offset 0): the metadata is not valid UTF-8 (at byte 25)"
                .into(),
        },
        Case {
            name: "JSON that is not an object",
            input: after(&chunk("[1,2]", "")),
            error: format!(
                "bad request metadata in chunk 2 (byte offset {g}): the metadata is JSON an array where an object \
                 was expected"
            ),
        },
        Case {
            name: "JSON string",
            input: chunk(format!("\"{SESSION_KEY}\""), ""),
            error: "bad request metadata in chunk 1 (byte offset 0): the metadata is JSON a string where an object \
                    was expected"
                .into(),
        },
        Case {
            name: "no action",
            input: chunk(r#"{"finished":true}"#, ""),
            error: "bad request metadata in chunk 1 (byte offset 0): the metadata has no \"action\"".into(),
        },
        Case {
            name: "unknown action",
            input: after(&chunk(r#"{"action":"explode","finished":true}"#, "")),
            error: format!(
                "bad request metadata in chunk 2 (byte offset {g}): unknown action \"explode\" (expected \"getinfo\" \
                 or \"execute\")"
            ),
        },
        Case {
            name: "finished is not a boolean",
            input: after(&chunk(
                format!(r#"{{"action":"execute","finished":"{SESSION_KEY}"}}"#),
                "",
            )),
            error: format!(
                "bad request metadata in chunk 2 (byte offset {g}): \"finished\" is a string where a boolean was \
                 expected"
            ),
        },
        Case {
            name: "searchinfo.args is not an array",
            input: chunk(
                format!(r#"{{"action":"getinfo","searchinfo":{{"args":"{SEARCH_MARK}"}}}}"#),
                "",
            ),
            error: "bad request metadata in chunk 1 (byte offset 0): \"searchinfo.args\" is a string where an array \
                    was expected"
                .into(),
        },
        Case {
            name: "execute before getinfo",
            input: chunk(LAST, &ok_row),
            error: "bad request metadata in chunk 1 (byte offset 0): the first request must be getinfo, but it is \
                    execute"
                .into(),
        },
        Case {
            name: "a second getinfo",
            input: after(&gi),
            error: format!(
                "bad request metadata in chunk 2 (byte offset {g}): a second getinfo request arrived; only execute \
                 requests may follow the first"
            ),
        },
        Case {
            name: "a second getinfo after execute",
            input: [gi.clone(), chunk(MORE, &ok_row), gi.clone()].concat(),
            error: format!(
                "bad request metadata in chunk 3 (byte offset {}): a second getinfo request arrived; only execute \
                 requests may follow the first",
                g + chunk(MORE, &ok_row).len()
            ),
        },
        Case {
            name: "a body on getinfo",
            input: chunk(getinfo_meta(&[]), "_time\n1\n"),
            error: "bad request metadata in chunk 1 (byte offset 0): a getinfo request must not carry a body, but \
                    this one declares 8 bytes"
                .into(),
        },
        Case {
            name: "ragged CSV row (too few fields)",
            input: after(&chunk(LAST, "a,b\n1,2\n3\n")),
            error: format!(
                "bad CSV body in chunk 2, row 2 (byte offset {}): the row has 1 fields but the header has 2",
                body_at(LAST, 10) + 8
            ),
        },
        Case {
            name: "ragged CSV row (too many fields)",
            input: after(&chunk(LAST, "a,b\n1,2,3\n")),
            error: format!(
                "bad CSV body in chunk 2, row 1 (byte offset {}): the row has 3 fields but the header has 2",
                body_at(LAST, 10) + 4
            ),
        },
        Case {
            name: "unterminated quote",
            input: after(&chunk(LAST, "a,b\n1,\"2\n3,4\n")),
            error: format!(
                "bad CSV body in chunk 2, row 1 (byte offset {}): a quoted value is never closed",
                body_at(LAST, 13) + 6
            ),
        },
        Case {
            name: "__mv_ value that does not decode",
            input: {
                let body = "_time,QueryName,__mv_QueryName\n1,x,\"$pastebin.com$;$b\"\n";
                after(&chunk(LAST, body))
            },
            error: format!(
                "bad CSV body in chunk 2, row 1 (byte offset {}), column __mv_QueryName: the multivalue encoding is \
                 broken at byte 17 of the value",
                body_at(LAST, 56) + 31
            ),
        },
        Case {
            name: "unknown option",
            input: getinfo(&["colour=blue"]),
            error: format!("unknown option \"colour\". {VALID_OPTIONS}"),
        },
        Case {
            name: "positional argument",
            input: getinfo(&["pastebin"]),
            error: format!("unexpected argument \"pastebin\": every argument must be name=value. {VALID_OPTIONS}"),
        },
        Case {
            name: "field name with a path separator",
            input: getinfo(&["field=../../etc/passwd"]),
            error: format!("invalid value for option field: \"../../etc/passwd\" is not a field name. {VALID_OPTIONS}"),
        },
    ];
    // Lengths in a chunk header of a 10 GB body: refused by max_chunk_bytes
    // (default 1 GiB) before a byte of it is read.
    let ten_gb = 10u64 << 30;
    cases.push(Case {
        name: "10 GB declared body, default max_chunk_bytes",
        input: after(
            &[
                format!("chunked 1.0,{},{ten_gb}\n{LAST}", LAST.len()).as_bytes(),
                &ok_row,
            ]
            .concat(),
        ),
        error: format!("chunk 2 declares a body of {ten_gb} bytes, more than max_chunk_bytes=1073741824"),
    });
    cases
}

#[test]
fn malformed_input_gets_the_exact_error() {
    let mut failures = Vec::new();
    for case in malformed_cases() {
        let outcome = std::panic::catch_unwind(|| expect_error(case.name, case.input.clone(), &case.error));
        if outcome.is_err() {
            let run = run_bin(case.input.clone());
            let got = parse_replies(&run.stdout)
                .ok()
                .and_then(|r| r.last().map(|l| l.meta["error"].clone()))
                .unwrap_or(Value::Null);
            failures.push(format!("{}:\n  want {:?}\n  got  {got}", case.name, case.error));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_repeated_key_is_refused_naming_the_key() {
    // Found by the metadata fuzzer (tests/data/regressions/metadata-duplicate-args):
    // JSON leaves repeated keys to the reader; the command refuses them. (The
    // column is not pinned: for `args` it counts from the start of
    // `searchinfo`, not of the metadata.)
    for (meta, want) in [
        (
            r#"{"action":"getinfo","searchinfo":{"args":["field=x"],"args":[]}}"#,
            "bad request metadata in chunk 1 (byte offset 0): \"searchinfo\" is malformed: duplicate field `args` at \
             line 1 column ",
        ),
        (
            r#"{"action":"getinfo","action":"execute"}"#,
            "bad request metadata in chunk 1 (byte offset 0): the metadata object is malformed: duplicate field \
             `action` at line 1 column ",
        ),
    ] {
        let run = run_bin(chunk(meta, ""));
        assert_eq!(run.code, Some(1));
        assert!(run.stderr.is_empty());
        let replies = check_conversation(&run.stdout, 1).unwrap();
        let text = error_text(replies.last().unwrap()).unwrap();
        assert!(text.starts_with(want), "{text}");
    }
}

#[test]
fn deep_nesting_in_an_ignored_key_is_harmless() {
    // Keys the command does not read are skipped without recursion: a
    // million nested arrays cost no stack.
    let depth = 1_000_000;
    let meta = format!(
        r#"{{"action":"getinfo","searchinfo":{{"args":[]}},"x":{}{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let replies = expect_success("deep nesting", chunk(meta, ""));
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].meta["type"], "reporting");
}

#[test]
fn a_body_without_the_queryname_column_matches_nothing() {
    let body = "_time,Image,QueryStatus,process_name,QueryResults,Computer\n1,i,0,p,r,h\n";
    let replies = expect_success("no QueryName column", [getinfo(&[]), chunk(LAST, body)].concat());
    let last = replies.last().unwrap();
    assert_eq!(last.meta["finished"], true);
    assert!(last.body.is_empty(), "no result rows");
    assert_eq!(
        last.meta["inspector"]["metric.abusedweb.match"][2], 1,
        "the row was read"
    );
    assert_eq!(
        last.meta["inspector"]["metric.abusedweb.match"][3], 0,
        "and matched nothing"
    );
}

#[test]
fn the_happy_path_keeps_its_shape_and_secrets() {
    let replies = expect_success("happy", happy_stream(&[]));
    assert_eq!(replies.len(), 3);
    let rows = String::from_utf8(replies[2].body.clone()).unwrap();
    assert_eq!(rows.lines().count(), 4, "{rows}");
}

// ---------------------------------------------------------------------------
// Limits

/// `n` events in distinct groups (distinct Computer), all matching.
fn distinct_groups(n: usize) -> Vec<u8> {
    let mut body = csv_row(&FIELDS.map(str::as_bytes));
    for i in 0..n {
        body.extend(format!("{i},i,pastebin.com,0,p,r,host{i}\n").as_bytes());
    }
    body
}

/// Expect `max_groups=cap` to stop `body` (rows of [`distinct_groups`],
/// then perhaps others) at its row `cap + 1`, naming that row and its byte
/// offset in the request stream.
fn expect_cap_at_row(name: &str, cap: usize, body: &[u8]) {
    let option = format!("max_groups={cap}");
    let header_len = csv_row(&FIELDS.map(str::as_bytes)).len();
    let row_offset = header_len
        + (0..cap)
            .map(|i| format!("{i},i,pastebin.com,0,p,r,host{i}\n").len())
            .sum::<usize>();
    let at = getinfo(&[&option]).len() + format!("chunked 1.0,{},{}\n", LAST.len(), body.len()).len() + LAST.len();
    expect_error(
        name,
        [getinfo(&[&option]), chunk(LAST, body)].concat(),
        &format!(
            "chunk 2, row {} (byte offset {}): more than {cap} distinct groups ({option}): narrow the search or \
             raise max_groups",
            cap + 1,
            at + row_offset
        ),
    );
}

#[test]
fn max_groups_breach_names_the_option() {
    let body = distinct_groups(5);
    expect_cap_at_row("max_groups", 3, &body);
    // Exactly at the cap is fine.
    let replies = expect_success(
        "max_groups reached",
        [getinfo(&["max_groups=5"]), chunk(LAST, &body)].concat(),
    );
    assert_eq!(
        replies.last().unwrap().meta["inspector"]["metric.abusedweb.stats"][3],
        5
    );
}

/// Past 4,096 groups memberships are counted a few rows after they are
/// read, so that lookups overlap: a cap reached at row 4,101 is still the
/// error when a later row of the same body is broken, and names its row.
#[test]
fn a_cap_comes_before_a_broken_row_after_it() {
    let mut body = distinct_groups(4_105);
    body.extend(b"9,i,pastebin.com,0,p,r,\"unclosed\n");
    expect_cap_at_row("max_groups before a broken row", 4_100, &body);
}

#[test]
fn max_chunk_bytes_breach_is_refused_before_reading_the_body() {
    let body = distinct_groups(100);
    assert!(body.len() > 1024);
    let input = [getinfo(&["max_chunk_bytes=1024"]), chunk(LAST, &body)].concat();
    expect_error(
        "max_chunk_bytes",
        input,
        &format!(
            "chunk 2 declares a body of {} bytes, more than max_chunk_bytes=1024",
            body.len()
        ),
    );
}

/// Run the binary under a max-RSS probe; returns (run, peak RSS in KiB).
fn run_measured(input: Vec<u8>, timeout: Duration) -> (Run, u64) {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "hostile-rss-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_file(&out);
    let cmd = if Path::new("/usr/bin/time").exists() {
        let mut c = Command::new("/usr/bin/time");
        c.arg("-f").arg("%M").arg("-o").arg(&out).arg(bin());
        c
    } else {
        let mut c = Command::new("python3");
        c.arg("-c")
            .arg(
                "import resource,subprocess,sys\n\
                 code = subprocess.call(sys.argv[2:])\n\
                 open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n\
                 sys.exit(code)",
            )
            .arg(&out)
            .arg(bin());
        c
    };
    let run = run_command(cmd, input, timeout);
    if run.timed_out {
        return (run, 0);
    }
    let text = std::fs::read_to_string(&out).expect("max RSS written by the probe");
    let _ = std::fs::remove_file(&out);
    // GNU time puts "Command exited with non-zero status N" before %M.
    let kib = text.lines().last().unwrap().trim().parse().expect("max RSS in KiB");
    (run, kib)
}

const MIB: u64 = 1024;

#[test]
fn a_10_gb_declared_body_costs_only_what_arrives() {
    let ok_row = events(&[event("1", "pastebin.com", "h")]);
    let ten_gb = 10u64 << 30;
    // With max_chunk_bytes at its highest (16 GiB) the declared size passes the
    // cap, the body streams, and the stream ends after the real bytes.
    let gi = getinfo(&["max_chunk_bytes=17179869184"]);
    let head = format!("chunked 1.0,{},{ten_gb}\n{LAST}", LAST.len());
    let at = gi.len() + head.len();
    let input = [gi, head.into_bytes(), ok_row.clone()].concat();
    let (run, kib) = run_measured(input, Duration::from_secs(30));
    assert!(!run.timed_out, "a 10 GB declared body with a few bytes took over 30 s");
    assert_eq!(run.code, Some(1));
    let replies = check_conversation(&run.stdout, 1).unwrap();
    assert_eq!(
        error_text(replies.last().unwrap()),
        Some(
            format!(
                "bad CSV body in chunk 2, row 2 (byte offset {}): truncated body: the header declared {ten_gb} bytes \
                 but the stream ended after {}",
                at + ok_row.len(),
                ok_row.len()
            )
            .as_str()
        )
    );
    eprintln!("peak RSS, 10 GB declared body: {kib} KiB");
    assert!(kib < 32 * MIB, "peak RSS {kib} KiB for a body that declared 10 GB");
}

#[test]
fn a_100_mb_field_still_works_in_bounded_memory() {
    const FIELD: usize = 100 << 20;
    let mut query = b"c2.pastebin.com/".to_vec();
    query.resize(FIELD, b'a');
    let mut body = csv_row(&FIELDS.map(str::as_bytes));
    body.extend(b"1,i,");
    body.extend(&query);
    body.extend(b",0,p,r,h\n");
    let input = [getinfo(&[]), chunk(LAST, &body)].concat();
    drop(body);
    let (run, kib) = run_measured(input, Duration::from_secs(60));
    // Linear work is ~1 s even in a debug build; a decoder that rescans a
    // growing record after every pipe read (64 KiB) is quadratic: minutes.
    assert!(
        !run.timed_out,
        "a 100 MB field through a pipe took over 60 s: quadratic rescanning?"
    );
    assert_eq!(
        run.code,
        Some(0),
        "{:?}",
        String::from_utf8_lossy(&run.stdout[..run.stdout.len().min(500)])
    );
    assert!(run.stderr.is_empty());
    let replies = check_conversation(&run.stdout, 0).unwrap();
    let result = &replies.last().unwrap().body;
    let mut expected = reply_check::RESULT_HEADER.to_vec();
    expected.extend(b"i,\"");
    expected.extend(&query);
    expected.extend(b"\",0,p,r,h,1,1,1\n");
    assert!(result == &expected, "the 100 MB value comes back whole");
    eprintln!("peak RSS, one 100 MB field: {kib} KiB");
    // Held at once: the CSV record, the decoded value, the group's key, the
    // result body and its frame: a handful of copies, never more.
    assert!(
        kib < 8 * (FIELD as u64 / 1024),
        "peak RSS {kib} KiB for a 100 MiB field"
    );
}

#[test]
fn a_large_chunk_streams_in_constant_memory() {
    // 64 MiB of rows in one chunk, 10 groups: memory must not follow the body.
    let mut body = csv_row(&FIELDS.map(str::as_bytes));
    let mut i = 0u64;
    while body.len() < 64 << 20 {
        body.extend(
            format!(
                "{i},\"C:\\Program Files\\x.exe\",{}.pastebin.com,0,\"x.exe\",\"type:  5 ::ffff:10.0.0.{}\",h{}\n",
                i % 10,
                i % 250,
                i % 10
            )
            .as_bytes(),
        );
        i += 1;
    }
    let input = [getinfo(&[]), chunk(LAST, &body)].concat();
    let (run, kib) = run_measured(input, Duration::from_secs(120));
    assert!(!run.timed_out, "64 MiB in one chunk took over 120 s");
    assert_eq!(run.code, Some(0));
    let replies = check_conversation(&run.stdout, 0).unwrap();
    assert_eq!(
        replies.last().unwrap().meta["inspector"]["metric.abusedweb.match"][2],
        i
    );
    eprintln!("peak RSS, one 64 MiB chunk of {i} rows: {kib} KiB");
    assert!(kib < 32 * MIB, "peak RSS {kib} KiB for a 64 MiB chunk");
}

#[test]
fn the_group_cap_bounds_memory() {
    // 400,000 distinct groups offered, 20,000 allowed: the search stops at the
    // cap, and memory is what 20,000 groups need, not 400,000.
    let body = distinct_groups(400_000);
    let input = [getinfo(&["max_groups=20000"]), chunk(LAST, &body)].concat();
    let (capped, capped_kib) = run_measured(input, Duration::from_secs(120));
    assert!(!capped.timed_out);
    assert_eq!(capped.code, Some(1));
    let replies = check_conversation(&capped.stdout, 1).unwrap();
    assert!(error_text(replies.last().unwrap())
        .unwrap()
        .contains("(max_groups=20000)"));
    let input = [getinfo(&["max_groups=400000"]), chunk(LAST, &body)].concat();
    let (full, full_kib) = run_measured(input, Duration::from_secs(120));
    assert!(!full.timed_out);
    assert_eq!(full.code, Some(0));
    eprintln!("peak RSS, 400,000 groups offered: {capped_kib} KiB with max_groups=20000, {full_kib} KiB uncapped");
    assert!(capped_kib < 40 * MIB, "peak RSS {capped_kib} KiB with 20,000 groups");
    assert!(capped_kib * 3 < full_kib, "the cap makes the difference");
}

#[test]
fn long_time_values_do_not_escape_the_group_bytes_cap() {
    // Each group keeps the text of its first and last `_time`. One event whose
    // multivalue Image gives 600 groups and whose `_time` is 1 MiB of text
    // would keep 1.2 GiB of copies (and write them all back) if that text were
    // not counted against the 512 MiB the group table may hold. A real
    // `_time` is a number; a long one can only come from the search itself.
    let images: Vec<String> = (0..600).map(|i| format!("i{i}")).collect();
    let mv: String = images.iter().map(|v| format!("${v}$")).collect::<Vec<_>>().join(";");
    let time = "T".repeat(1 << 20);
    let mut header: Vec<&[u8]> = FIELDS.iter().map(|f| f.as_bytes()).collect();
    header.push(b"__mv_Image");
    let mut body = csv_row(&header);
    body.extend(csv_row(&[
        time.as_bytes(),
        b"x",
        b"pastebin.com",
        b"0",
        b"p",
        b"r",
        b"h",
        mv.as_bytes(),
    ]));
    let input = [getinfo(&[]), chunk(LAST, &body)].concat();
    let (run, kib) = run_measured(input, Duration::from_secs(120));
    assert!(!run.timed_out, "600 groups with a 1 MiB _time took over 120 s");
    eprintln!(
        "peak RSS, 600 groups sharing a 1 MiB _time: {kib} KiB, exit {:?}",
        run.code
    );
    if run.code == Some(1) {
        let replies = check_conversation(&run.stdout, 1).unwrap();
        let text = error_text(replies.last().unwrap()).unwrap();
        assert!(text.contains("512 MiB"), "{text}");
    } else {
        check_conversation(&run.stdout, run.code.unwrap_or(-1)).unwrap();
    }
    assert!(
        kib < 1536 * MIB,
        "peak RSS {kib} KiB: the time texts escaped the group-bytes cap"
    );
}

// ---------------------------------------------------------------------------
// Mutation robustness

/// splitmix64: a small deterministic PRNG, so every failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn recordings() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/scp2-recordings")
}

fn read_capture(rel: &str) -> Option<Vec<u8>> {
    let raw = std::fs::read(recordings().join(rel)).ok()?;
    if rel.ends_with(".gz") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..]).read_to_end(&mut out).ok()?;
        Some(out)
    } else {
        Some(raw)
    }
}

/// (start, end, is_execute) of each well-formed chunk, strictly from the start.
fn split_chunks(stream: &[u8]) -> Vec<(usize, usize, bool)> {
    let mut found = Vec::new();
    let mut pos = 0;
    loop {
        while pos < stream.len() && matches!(stream[pos], b'\r' | b'\n') {
            pos += 1;
        }
        let Some(eol) = stream[pos..].iter().position(|&b| b == b'\n') else {
            return found;
        };
        let line = String::from_utf8_lossy(&stream[pos..pos + eol]).into_owned();
        let Some((m, b)) = line.strip_prefix("chunked 1.0,").and_then(|l| l.split_once(',')) else {
            return found;
        };
        let (Ok(m), Ok(b)) = (m.trim().parse::<usize>(), b.trim().parse::<usize>()) else {
            return found;
        };
        let meta_start = pos + eol + 1;
        let Some(end) = meta_start.checked_add(m).and_then(|e| e.checked_add(b)) else {
            return found;
        };
        if end > stream.len() {
            return found;
        }
        let execute = String::from_utf8_lossy(&stream[meta_start..meta_start + m]).contains("\"execute\"");
        found.push((pos, end, execute));
        pos = end;
    }
}

/// The longest prefix of whole chunks within `cap` bytes.
fn cut(stream: &[u8], cap: usize) -> Vec<u8> {
    let end = split_chunks(stream)
        .iter()
        .map(|c| c.1)
        .take_while(|&e| e <= cap)
        .last()
        .unwrap_or(cap.min(stream.len()));
    stream[..end].to_vec()
}

/// Streams to mutate: real captures (whole, and their execute chunks behind
/// our getinfo so mutations reach the bodies) and synthetic conversations.
fn mutation_bases() -> Vec<Vec<u8>> {
    let mut bases = vec![
        happy_stream(&[]),
        happy_stream(&["max_groups=2", "patterns=*a* *.io"]),
        [
            getinfo(&["field=Computer", "patterns=*"]),
            chunk(
                MORE,
                "_time,Image,QueryName,QueryStatus,process_name,QueryResults,Computer,__mv_QueryName,__mv_Computer\n\
                 1,i,\"a\nb\",0,p,r,\"h1\nh2\",\"$a$;$b$$$\",\"$h1$;$h2$\"\n2,\"x,\"\"y\"\"\",q,0,p,r,h,,\n",
            ),
            chunk(LAST, ""),
        ]
        .concat(),
    ];
    let captures = [
        (
            "splunk-sdk-python/tests/unit/data/custom_search/multibyte_input.gz",
            "teststring",
        ),
        (
            "splunk-sdk-python/tests/searchcommands/recordings/scpv2/Splunk-6.3/countmatches.input.gz",
            "text",
        ),
        (
            "splunk-sdk-python/tests/searchcommands/recordings/scpv2/Splunk-6.3/sum.reduce.input.gz",
            "total",
        ),
        (
            "splunk-sdk-python/tests/searchcommands/recordings/scpv2/Splunk-6.3/generatehello.input.gz",
            "QueryName",
        ),
    ];
    for (rel, field) in captures {
        let Some(stream) = read_capture(rel) else {
            continue;
        };
        bases.push(cut(&stream, 64 << 10));
        // Execute chunks small enough to keep mutation runs fast.
        let executes: Vec<u8> = split_chunks(&stream)
            .iter()
            .filter(|c| c.2 && c.1 - c.0 <= 16 << 10)
            .flat_map(|c| stream[c.0..c.1].to_vec())
            .collect();
        if executes.is_empty() {
            continue;
        }
        let field_arg = format!("field={field}");
        let mut transplanted = getinfo(&[&field_arg, "patterns=*t* *0*"]);
        transplanted.extend(cut(&executes, 48 << 10));
        bases.push(transplanted);
    }
    bases
}

fn mutate(rng: &mut Rng, bases: &[Vec<u8>]) -> Vec<u8> {
    let mut data = bases[rng.below(bases.len())].clone();
    if rng.below(3) != 0 {
        // Two inputs in three keep their framing: edits inside one chunk's
        // metadata or body, with the header's lengths rewritten to match,
        // so they reach the JSON, CSV and aggregation code.
        for _ in 0..1 + rng.below(3) {
            data = reframed_edit(rng, &data);
        }
        return data;
    }
    // The rest get raw edits, which mostly break the framing: one edit, or
    // two to four; half of them land in the last two thirds (the bodies).
    let edits = if rng.below(2) == 0 { 1 } else { 2 + rng.below(3) };
    for _ in 0..edits {
        let len = data.len();
        let at = if rng.below(2) == 0 {
            rng.below(len + 1)
        } else {
            len / 3 + rng.below(len - len / 3 + 1)
        };
        match rng.below(10) {
            0 if len > 0 => {
                let i = at.min(len - 1);
                data[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = at.min(len - 1);
                data[i] = rng.next() as u8;
            }
            2 => data.truncate(at),
            3 => {
                let end = (at + 1 + rng.below(64)).min(len);
                data.drain(at.min(end)..end);
            }
            4 => {
                let junk: Vec<u8> = (0..1 + rng.below(16)).map(|_| rng.next() as u8).collect();
                data.splice(at..at, junk);
            }
            5 => {
                let other = &bases[rng.below(bases.len())];
                let from = rng.below(other.len());
                let to = (from + 1 + rng.below(512)).min(other.len());
                data.splice(at..at, other[from..to].iter().copied());
            }
            6 if len > 0 => {
                let from = rng.below(len);
                let to = (from + 1 + rng.below(256)).min(len);
                let copy = data[from..to].to_vec();
                data.splice(at..at, copy);
            }
            7 => {
                // Length edit: rewrite M or B of one header.
                let headers: Vec<(usize, usize)> = split_chunks(&data).iter().map(|c| (c.0, c.1)).collect();
                if let Some(&(start, _)) = headers.get(rng.below(headers.len().max(1))) {
                    let eol = start + data[start..].iter().position(|&b| b == b'\n').unwrap();
                    let line = String::from_utf8_lossy(&data[start..eol]).into_owned();
                    let mut parts: Vec<String> = line.split(',').map(str::to_string).collect();
                    let which = 1 + rng.below(2);
                    let old: u64 = parts[which].trim().parse().unwrap_or(0);
                    parts[which] = match rng.below(7) {
                        0 => "0".into(),
                        1 => old.saturating_sub(1 + rng.below(8) as u64).to_string(),
                        2 => old.saturating_add(1 + rng.below(8) as u64).to_string(),
                        3 => (10u64 << 30).to_string(),
                        4 => u64::MAX.to_string(),
                        5 => "184467440737095516160".into(),
                        _ => (rng.next() % 100_000).to_string(),
                    };
                    data.splice(start..eol, parts.join(",").into_bytes());
                }
            }
            8 => {
                let s: &[u8] = [&b"\n"[..], b"\r\n", b"\"", b"$", b";", b",", b"$$", b"\0"][rng.below(8)];
                data.splice(at..at, s.iter().copied());
            }
            _ => {
                // Swap two whole chunks.
                let cs = split_chunks(&data);
                if cs.len() >= 2 {
                    let i = rng.below(cs.len() - 1);
                    let (a, b) = (cs[i], cs[i + 1]);
                    let mut swapped = data[..a.0].to_vec();
                    swapped.extend_from_slice(&data[b.0..b.1]);
                    swapped.extend_from_slice(&data[a.0..a.1]);
                    swapped.extend_from_slice(&data[b.1..]);
                    data = swapped;
                }
            }
        }
    }
    data
}

/// A secret in the error text of a mutated stream's replies. Result rows are
/// not checked: a mutation that breaks the framing can turn getinfo metadata
/// into body rows, and rows go back to the user who ran the search.
/// A header error quotes what stands where a header should only when it starts
/// like a header (`a_misframed_header_does_not_echo_the_session_key`).
fn secret_in_error(out: &[u8]) -> Option<String> {
    let replies = parse_replies(out).ok()?;
    let text = error_text(replies.last()?)?;
    let leaked = text.contains(SESSION_KEY) || text.contains(SEARCH_MARK);
    leaked.then(|| text.to_string())
}

/// Edit the metadata or body of one chunk and fix its header's lengths.
fn reframed_edit(rng: &mut Rng, data: &[u8]) -> Vec<u8> {
    let chunks = split_chunks(data);
    if chunks.is_empty() {
        return data.to_vec();
    }
    // Mostly chunks that carry a body.
    let with_body: Vec<_> = chunks.iter().filter(|c| c.2).copied().collect();
    let pool = if with_body.is_empty() || rng.below(4) == 0 {
        &chunks
    } else {
        &with_body
    };
    let (start, end, _) = pool[rng.below(pool.len())];
    let eol = start + data[start..].iter().position(|&b| b == b'\n').unwrap();
    let line = String::from_utf8_lossy(&data[start..eol]).into_owned();
    let m: usize = line.split(',').nth(1).unwrap().trim().parse().unwrap();
    let mut meta = data[eol + 1..eol + 1 + m].to_vec();
    let mut body = data[eol + 1 + m..end].to_vec();
    // Bodies mostly; metadata now and then.
    let part = if rng.below(4) == 0 || body.is_empty() {
        &mut meta
    } else {
        &mut body
    };
    let len = part.len();
    let at = rng.below(len + 1);
    match rng.below(6) {
        0 if len > 0 => part[at.min(len - 1)] ^= 1 << rng.below(8),
        1 => {
            let s: &[u8] = [&b"\n"[..], b"\r\n", b"\"", b"$", b";", b",", b"$$", b"\0", b"\"\""][rng.below(9)];
            part.splice(at..at, s.iter().copied());
        }
        2 => {
            let end = (at + 1 + rng.below(32)).min(len);
            part.drain(at.min(end)..end);
        }
        3 if len > 0 => {
            // Repeat a line (an event) many times.
            let from = part[..at.min(len - 1)]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            let to = part[from..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(len, |i| from + i + 1);
            let line = part[from..to].to_vec();
            for _ in 0..1 + rng.below(50) {
                part.splice(to..to, line.iter().copied());
            }
        }
        4 => {
            let word: &[u8] = [&b"pastebin"[..], b"ngrok.io", b"__mv_", b"QueryName", b"1e308", b"-"][rng.below(6)];
            part.splice(at..at, word.iter().copied());
        }
        _ => part.truncate(at),
    }
    let mut out = data[..start].to_vec();
    out.extend(chunk(&meta, &body));
    out.extend_from_slice(&data[end..]);
    out
}

fn save_failure(tag: &str, input: &[u8]) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("hostile-failure-{tag}"));
    std::fs::write(&path, input).unwrap();
    path
}

#[test]
fn thousands_of_mutations_in_process() {
    let bases = mutation_bases();
    assert!(bases.len() >= 3);
    let mut rng = Rng(0x5eed_ab05_ed0e_b001);
    let (mut errors, mut clean) = (0, 0);
    let mut kinds = std::collections::BTreeMap::new();
    for i in 0..4000 {
        let input = mutate(&mut rng, &bases);
        let started = Instant::now();
        let mut out = Vec::new();
        let code = abusedweb::guard::run_guarded(&mut out, |o| abusedweb::command::run(&input[..], o));
        let elapsed = started.elapsed();
        if let Err(e) = check_conversation(&out, code) {
            panic!(
                "mutation {i}: {e}; input saved to {}",
                save_failure(&format!("lib-{i}"), &input).display()
            );
        }
        assert!(
            elapsed < Duration::from_secs(10),
            "mutation {i} took {elapsed:?}; input saved to {}",
            save_failure(&format!("slow-{i}"), &input).display()
        );
        if let Some(leak) = secret_in_error(&out) {
            panic!(
                "mutation {i} leaked a secret: {leak}; input saved to {}",
                save_failure(&format!("lib-{i}"), &input).display()
            );
        }
        if code == 0 {
            clean += 1;
        } else {
            errors += 1;
            let replies = parse_replies(&out).unwrap();
            let text = error_text(replies.last().unwrap()).unwrap();
            let kind = [
                "malformed request",
                "bad request metadata",
                "bad CSV body",
                "Valid options",
            ]
            .into_iter()
            .find(|k| text.contains(k))
            .unwrap_or("limit");
            *kinds.entry(kind).or_insert(0) += 1;
        }
    }
    eprintln!("4000 mutations in-process: {clean} clean conversations, {errors} error replies {kinds:?}");
    assert!(clean > 400 && errors > 1000, "mutations should reach both outcomes");
    assert!(
        kinds.len() >= 5,
        "mutations should reach every kind of error: {kinds:?}"
    );
}

#[test]
fn hundreds_of_mutations_through_the_binary() {
    let bases = mutation_bases();
    let mut rng = Rng(0xb1a5_7ed0_0dd5_0001);
    for i in 0..300 {
        let input = mutate(&mut rng, &bases);
        let run = run_command(Command::new(bin()), input.clone(), Duration::from_secs(20));
        let saved = || save_failure(&format!("bin-{i}"), &input);
        assert!(
            !run.timed_out,
            "mutation {i} hung; input saved to {}",
            saved().display()
        );
        let code = run
            .code
            .unwrap_or_else(|| panic!("mutation {i} ended by a signal; input saved to {}", saved().display()));
        if let Err(e) = check_conversation(&run.stdout, code) {
            panic!("mutation {i}: {e}; input saved to {}", saved().display());
        }
        assert!(run.stderr.is_empty(), "mutation {i} wrote to stderr");
        assert!(run.elapsed < Duration::from_secs(20));
        if let Some(leak) = secret_in_error(&run.stdout) {
            panic!(
                "mutation {i} leaked a secret: {leak}; input saved to {}",
                saved().display()
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Regression inputs found by fuzzing (tests/data/regressions/)

#[test]
fn fuzz_regressions_stay_fixed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/regressions");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("tests/data/regressions") {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        // Each input goes to the command as its fuzz target used it.
        let Some(target) = name.split('-').next().filter(|_| name != "README.md") else {
            continue;
        };
        let data = std::fs::read(&path).unwrap();
        if target == "scan_file" {
            scan_file_reads_alike(&name, &data);
            seen += 1;
            continue;
        }
        let rest = data.get(1..).unwrap_or_default().to_vec();
        let input = match target {
            "request_stream" => reply_check::request_stream_input(&data),
            "metadata" => chunk(&data, ""),
            "chunk_reader" => rest,
            "csv_body" => [getinfo(&[]), chunk(LAST, &rest)].concat(),
            "options" => {
                let text = String::from_utf8_lossy(&data).into_owned();
                let args: Vec<&str> = text.split('\0').next().unwrap().split('\n').collect();
                getinfo(&args)
            }
            other => panic!("{name}: unknown fuzz target {other}"),
        };
        let mut out = Vec::new();
        let code = abusedweb::guard::run_guarded(&mut out, |o| abusedweb::command::run(&input[..], o));
        check_conversation(&out, code).unwrap_or_else(|e| panic!("{name}: {e}"));
        let run = run_bin(input);
        assert_eq!(run.code, Some(code), "{name}: the binary agrees with the library");
        assert_eq!(run.stdout.len(), out.len(), "{name}");
        seen += 1;
    }
    eprintln!("{seen} fuzz regression input(s) replayed");
}

/// A `scan_file` input, as that target reads it: read by one thread and
/// with three, the same items (records and warnings) in the same order.
fn scan_file_reads_alike(name: &str, data: &[u8]) {
    use abusedweb::scan::read::{read_input, Item};
    let read = |threads: usize| {
        let mut items = Vec::new();
        let read = read_input(
            Box::new(std::io::Cursor::new(data.to_vec())),
            &mut |item| {
                items.push(match item {
                    Item::Warning(w) => w,
                    Item::Record(r) => format!("{r:?}"),
                })
            },
            threads,
        );
        (read.is_ok(), items)
    };
    assert_eq!(read(3), read(1), "{name}: the threads changed what was read");
}

// ---------------------------------------------------------------------------
// Panics

#[test]
fn a_panic_mid_conversation_becomes_a_final_error_reply() {
    // No input reaches a panic (the fuzzers look for one); this proves the
    // last line of defence the binary's main() installs: replies already
    // written stay whole, the panic becomes an error reply with
    // finished:true, the exit code is non-zero, the payload never shows.
    let previous = std::panic::take_hook();
    abusedweb::guard::install_quiet_hook();
    let mut out = Vec::new();
    let code = abusedweb::guard::run_guarded(&mut out, |o| {
        abusedweb::protocol::chunk::write_chunk(o, br#"{"type":"reporting","required_fields":["_time"]}"#, b"")
            .unwrap();
        abusedweb::protocol::chunk::write_chunk(o, br#"{"finished":false}"#, b"").unwrap();
        let args: Vec<&str> = Vec::new();
        // A panic whose message carries the secret.
        args.get(7).map_or_else(|| panic!("{SESSION_KEY}"), |_| 0)
    });
    std::panic::set_hook(previous);
    assert_eq!(code, 2);
    let replies = parse_replies(&out).unwrap();
    assert_eq!(replies.len(), 3);
    let text = error_text(&replies[2]).expect("an error reply");
    assert!(
        text.starts_with("internal error in abusedweb (a bug, please report it): panic at tests/hostile.rs:"),
        "{text}"
    );
    assert!(!String::from_utf8_lossy(&out).contains(SESSION_KEY));
    // check_conversation refuses exit code 2: a panic is a bug even when caught.
    assert!(check_conversation(&out, code).is_err());
}

// ---------------------------------------------------------------------------
// Secrets, files, network

#[test]
fn secrets_never_reach_stdout_or_stderr() {
    // Happy path, option error, a body error, and metadata errors around
    // fields holding the secrets.
    let runs = [
        happy_stream(&[]),
        happy_stream(&["max_groups=1"]),
        getinfo(&["colour=blue"]),
        [getinfo(&[]), chunk(LAST, "a,b\n1\n")].concat(),
        chunk(
            format!(r#"{{"action":"{SESSION_KEY}","searchinfo":{{"session_key":"{SESSION_KEY}"}}}}"#),
            "",
        ),
        chunk(
            format!(r#"{{"action":"getinfo","searchinfo":{{"args":[1],"search":"{SEARCH_MARK}"}}}}"#),
            "",
        ),
    ];
    for (i, input) in runs.into_iter().enumerate() {
        let run = run_bin(input);
        assert!(!run.timed_out);
        assert!(run.stderr.is_empty(), "run {i}: stderr");
        let stdout = String::from_utf8_lossy(&run.stdout);
        // An unknown action is quoted, but cut to 20 characters: a session key
        // put there by mistake does not come back whole.
        assert!(
            !stdout.contains(SESSION_KEY) && !stdout.contains(SEARCH_MARK),
            "run {i}: {stdout}"
        );
        no_secrets(&run, &format!("run {i}"));
    }
}

/// Names in src/ that would open files, sockets or processes, or read the
/// environment. The command needs none of them: it talks over stdin/stdout.
const FORBIDDEN: [&str; 14] = [
    "std::fs",
    "std::net",
    "File::",
    "OpenOptions",
    "TcpStream",
    "TcpListener",
    "UdpSocket",
    "UnixStream",
    "process::Command",
    "Command::new",
    "env::var",
    "env::args",
    "std::env",
    "include_bytes!(\"/",
];

#[test]
fn the_source_opens_no_files_sockets_or_processes() {
    // Every .rs file under src/, its layer folders included.
    let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    let mut files = Vec::new();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    let mut checked = 0;
    for path in files {
        if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            // One module reads files: the pattern lookups, found from the
            // program's own path (SECURITY.md). It may name the file API and
            // current_exe, nothing else of the list.
            let lookups = path.ends_with("src/command/lists.rs");
            // `abusedweb scan` (src/scan/) reads the files its user names on
            // its command line, and reads that command line; never the Splunk
            // command path (SECURITY.md).
            let scan = path.components().any(|c| c.as_os_str() == "scan")
                && path.parent().is_some_and(|p| p.ends_with("src/scan"));
            for word in FORBIDDEN {
                if lookups && ["std::fs", "File::", "std::env"].contains(&word) {
                    continue;
                }
                if scan && ["std::fs", "File::", "std::env", "env::args"].contains(&word) {
                    continue;
                }
                assert!(!text.contains(word), "{} uses {word}", path.display());
            }
            if lookups {
                let env_uses: Vec<&str> = text
                    .match_indices("std::env::")
                    .map(|(i, _)| &text[i..i + 22])
                    .collect();
                assert_eq!(
                    env_uses,
                    ["std::env::current_exe("],
                    "lists.rs may only ask for its own path"
                );
                assert_eq!(
                    text.matches("File::open(").count(),
                    1,
                    "lists.rs opens files in one place"
                );
                for name in ["\"abused_web_services.csv\"", "\"abused_web_services_local.csv\""] {
                    assert!(text.contains(name), "lists.rs names {name}");
                }
            }
            if scan {
                let env_uses: Vec<&str> = text
                    .match_indices("std::env::")
                    .map(|(i, _)| &text[i..i + 18])
                    .collect();
                assert!(
                    env_uses.iter().all(|u| *u == "std::env::args_os("),
                    "src/scan may only read its command line: {env_uses:?}"
                );
            }
            // The SIMD classification of the skimmer (intrinsics on blocks it
            // is handed), the SIMD fingerprint search and the prefetch hint
            // are the only unsafe code (SECURITY.md); the hint is one block.
            let simd = path.ends_with("src/codec/skim.rs") || path.ends_with("src/engine/fingerprints.rs");
            let hint = path.ends_with("src/engine/prefetch.rs");
            assert!(
                simd || hint || !text.contains("unsafe"),
                "{} has unsafe code (SECURITY.md allows it in src/codec/skim.rs, src/engine/fingerprints.rs \
                 and src/engine/prefetch.rs only)",
                path.display()
            );
            if hint {
                assert_eq!(text.matches("unsafe {").count(), 1, "one prefetch instruction");
            }
            checked += 1;
        }
    }
    assert!(checked >= 10);
    // Nor does any dependency bring in a network or process crate.
    let manifest = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    let deps = manifest
        .split("[dependencies]")
        .nth(1)
        .unwrap()
        .split("\n[")
        .next()
        .unwrap();
    for bad in ["reqwest", "hyper", "tokio", "ureq", "curl", "socket2", "mio"] {
        assert!(!deps.contains(bad), "dependency {bad}");
    }
}

/// Paths the dynamic loader and libc may touch before main() for a
/// dynamically linked build (the shipped static musl binary needs none of
/// them); `/proc/self/maps` is read by glibc when Rust's runtime asks for the
/// main thread's stack bounds.
/// Files the program may touch under strace: the loader's, its own path, and
/// the two pattern lookups (looked for in up to four ancestors of its folder).
fn loader_path(path: &str) -> bool {
    path.ends_with("/lookups/abused_web_services.csv")
        || path.ends_with("/lookups/abused_web_services_local.csv")
        || path == "/proc/self/exe"
        || path.starts_with("/etc/ld.so.")
        || ["/lib/", "/lib64/", "/usr/lib/", "/usr/lib64/"]
            .iter()
            .any(|dir| path.starts_with(dir) && path.contains(".so"))
        || path == "/proc/self/maps"
}

#[test]
fn a_misframed_header_does_not_echo_the_session_key() {
    // A stream cut inside the getinfo metadata (one byte lost in front of
    // it): what stands where the header should is the session key.
    let meta = getinfo_meta(&[]);
    let at = meta.find(SESSION_KEY).unwrap();
    let input = meta.as_bytes()[at..].to_vec();
    let run = run_bin(input);
    assert_eq!(run.code, Some(1));
    let replies = check_conversation(&run.stdout, 1).unwrap();
    let text = error_text(replies.last().unwrap()).unwrap();
    assert!(!text.contains(SESSION_KEY), "{text}");
    assert!(!text.contains(&SESSION_KEY[..12]), "not even a part of it: {text}");
}

#[test]
fn under_strace_no_file_beyond_the_loader_and_no_socket() {
    if !Path::new("/usr/bin/strace").exists() {
        eprintln!("SKIPPED: /usr/bin/strace is not installed; the source scan above still holds");
        return;
    }
    for (name, input) in [
        ("happy", happy_stream(&[])),
        ("error", [getinfo(&[]), chunk(LAST, "a,b\n1\n")].concat()),
        ("field option", happy_stream(&["field=../../../../etc/passwd"])),
    ] {
        let trace = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("hostile-strace-{name}"));
        let mut cmd = Command::new("/usr/bin/strace");
        // A clean environment: the binary needs none, and cargo's
        // LD_LIBRARY_PATH would only add failed library look-ups.
        cmd.env_clear()
            .args(["-f", "-qq", "-e", "trace=%file,%network", "-o"])
            .arg(&trace)
            .arg(bin());
        let run = run_command(cmd, input, Duration::from_secs(60));
        let Ok(text) = std::fs::read_to_string(&trace) else {
            eprintln!("SKIPPED: strace produced no trace (ptrace not permitted?)");
            return;
        };
        if text.contains("PTRACE_TRACEME") || text.contains("Operation not permitted") && text.lines().count() < 3 {
            eprintln!("SKIPPED: strace cannot trace here: {text}");
            return;
        }
        assert!(run.code.is_some(), "{name}: exit status");
        let mut opened = Vec::new();
        for line in text.lines() {
            let call = line.split_whitespace().nth(1).unwrap_or("");
            let call = call.split('(').next().unwrap_or("");
            if ["socket", "connect", "bind", "sendto", "sendmsg", "accept", "listen"].contains(&call) {
                panic!("{name}: network syscall: {line}");
            }
            if call == "execve" {
                assert!(line.contains(bin()), "{name}: executes something else: {line}");
                continue;
            }
            // The path is the first quoted argument.
            if let Some(path) = line.split('"').nth(1).filter(|p| !p.is_empty()) {
                opened.push(path.to_string());
                assert!(
                    loader_path(path),
                    "{name}: opened {path:?} beyond the loader's files: {line}"
                );
            }
        }
        eprintln!("{name}: files touched under strace: {opened:?}");
        let _ = std::fs::remove_file(&trace);
    }
}
