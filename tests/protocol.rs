//! Drives the real `abusedweb` binary over pipes with the test-side splunkd and
//! checks the wire contract of docs/behaviour.md, section by section.
//!
//! Every happy-path test also asserts (via `assert_success`): exit 0, empty
//! stderr, one reply per request, the exact getinfo reply, non-final replies
//! exactly `{"finished":false}` with B = 0, a final reply with `inspector`,
//! splunkd-style result CSV, and that neither the session key nor the search
//! text appears on stdout/stderr. Every error-path test asserts (via
//! `assert_fatal`) the single error reply, its inspector ERROR message, exit
//! code 1, nothing after it, and no leaked secrets.

mod common;

use common::*;

// ---------------------------------------------------------------------------
// getinfo
// ---------------------------------------------------------------------------

#[test]
fn getinfo_only_then_eof_exits_zero() {
    let out = run(&[], &Vec::<Vec<u8>>::new());
    assert_success(&out, &[], 0);
    assert_eq!(out.replies.len(), 1);
    // The exact reply of behaviour.md 1 (key order is free, the content is not).
    let r = &out.replies[0];
    assert_eq!(
        r.meta,
        serde_json::json!({
            "type": "reporting",
            "required_fields": ["_time","Image","QueryName","QueryStatus","process_name","QueryResults","Computer"]
        })
    );
}

#[test]
fn eof_before_any_request_exits_zero_silently() {
    let out = run_raw(bin(), b"");
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert!(out.stdout.is_empty(), "{}", out.describe());
    assert!(out.stderr.is_empty(), "{}", out.describe());
}

#[test]
fn eof_between_execute_requests_exits_zero_without_a_final_reply() {
    // splunkd cancelling: stdin closes at a chunk boundary before finished:true.
    let ev = basic_events();
    let out = run_chunks(
        bin(),
        &[
            getinfo(&[]).chunk(),
            execute_chunk(false, &body(&ev[..2])),
            execute_chunk(false, &body(&ev[2..])),
        ],
    );
    let ctx = out.describe();
    assert_eq!(out.code(), Some(0), "{ctx}");
    assert_eq!(out.replies.len(), 3, "{ctx}");
    assert!(out.trailing.is_empty(), "{ctx}");
    assert!(out.stderr.is_empty(), "{ctx}");
    for r in &out.replies[1..] {
        assert_eq!(r.meta_raw, b"{\"finished\":false}", "{ctx}");
        assert_eq!(r.b, 0);
    }
    assert_no_secrets(&out);
}

#[test]
fn getinfo_reply_declares_reporting_type() {
    let out = run(&[], &Vec::<Vec<u8>>::new());
    assert_eq!(out.replies[0].meta["type"], "reporting");
    assert!(out.replies[0].meta.get("finished").is_none());
    assert!(out.replies[0].meta.get("error").is_none());
}

#[test]
fn getinfo_field_option_appends_field_to_required_fields() {
    let args = ["field=query"];
    let out = run(&args, &Vec::<Vec<u8>>::new());
    assert_success(&out, &args, 0);
    let fields = out.replies[0].meta["required_fields"].as_array().unwrap().clone();
    assert_eq!(fields.len(), 8);
    assert_eq!(fields[7], "query");
}

#[test]
fn getinfo_field_option_already_listed_is_not_repeated() {
    for f in ["QueryName", "Image", "_time"] {
        let arg = format!("field={f}");
        let args = [arg.as_str()];
        let out = run(&args, &Vec::<Vec<u8>>::new());
        assert_success(&out, &args, 0);
        assert_eq!(
            out.replies[0].meta["required_fields"].as_array().unwrap().len(),
            7,
            "field={f}"
        );
    }
}

#[test]
fn getinfo_accepts_every_valid_option_together() {
    let args = [
        "patterns=*pastebin* *discord*",
        "field=QueryName",
        "max_groups=10",
        "max_chunk_bytes=100000",
    ];
    let out = run(&args, &Vec::<Vec<u8>>::new());
    assert_success(&out, &args, 0);
}

#[test]
fn getinfo_probe_with_pretty_printed_6x_style_metadata() {
    // splunkd 6.3 pretty-printed its metadata with spaces; still one JSON object.
    let meta = b"{\n  \"action\": \"getinfo\",\n  \"preview\": false,\n  \"searchinfo\": {\"args\": [], \"raw_args\": [], \"session_key\": \"SeSsIoNkEy_d0NotLeak_9f2c7a1e4b\", \"splunk_version\": \"20150522\"}\n}";
    let out = run_chunks(bin(), &[chunk(meta, b"")]);
    assert_success(&out, &[], 0);
}

// ---------------------------------------------------------------------------
// execute: chunking
// ---------------------------------------------------------------------------

const SVCHOST: &str = r"C:\Windows\System32\svchost.exe";

fn basic_events() -> Vec<Event> {
    vec![
        dns(PS, "pastebin.com", "1700000010"),
        dns(PS, "pastebin.com", "1700000005"),
        dns(PS, "www.microsoft.com", "1700000001"),
        dns(SVCHOST, "cdn.discordapp.com", "1700000003"),
        dns(SVCHOST, "login.live.com", "1700000004"),
    ]
}

fn basic_expected() -> Vec<Vec<Vec<u8>>> {
    // `...\WindowsPowerShell\...` sorts before `...\svchost.exe` ('W' < 's').
    vec![
        dns_row(PS, "pastebin.com", 2, "1700000005", "1700000010"),
        dns_row(SVCHOST, "cdn.discordapp.com", 1, "1700000003", "1700000003"),
    ]
}

#[test]
fn one_final_chunk_with_all_rows() {
    let rows = run_ok(&[], &[body(&basic_events())]);
    assert_rows(&rows, &basic_expected());
}

#[test]
fn many_chunks_are_aggregated() {
    let bodies: Vec<Vec<u8>> = basic_events()
        .into_iter()
        .map(|e| body(std::slice::from_ref(&e)))
        .collect();
    assert_eq!(bodies.len(), 5);
    let rows = run_ok(&[], &bodies);
    assert_rows(&rows, &basic_expected());
}

#[test]
fn header_only_and_empty_chunks_in_between() {
    let ev = basic_events();
    let bodies = vec![
        header_only(),
        body(&ev[..2]),
        Vec::new(),
        header_only(),
        body(&ev[2..]),
        Vec::new(),
    ];
    // Last one is an empty (B = 0) final chunk.
    let rows = run_ok(&[], &bodies);
    assert_rows(&rows, &basic_expected());
}

#[test]
fn final_chunk_header_only() {
    let rows = run_ok(&[], &[body(&basic_events()), header_only()]);
    assert_rows(&rows, &basic_expected());
}

#[test]
fn final_chunk_empty_body() {
    let rows = run_ok(&[], &[body(&basic_events()), Vec::new()]);
    assert_rows(&rows, &basic_expected());
}

#[test]
fn final_chunk_carries_data() {
    let ev = basic_events();
    let rows = run_ok(&[], &[body(&ev[..3]), body(&ev[3..])]);
    assert_rows(&rows, &basic_expected());
}

#[test]
fn only_empty_chunks_give_no_rows() {
    let out = run(&[], &[Vec::new(), header_only(), Vec::new()]);
    let table = assert_success(&out, &[], 3);
    assert!(table.rows.is_empty());
    assert_eq!(out.replies[3].b, 0);
}

#[test]
fn zero_matches_final_reply_has_no_body() {
    let events = vec![
        dns(PS, "www.microsoft.com", "1"),
        dns(PS, "ngrok.i0", "2"),
        dns(PS, "pasteio.co", "3"),
    ];
    let out = run(&[], &[body(&events), body(&events)]);
    assert_success(&out, &[], 2);
    assert_eq!(out.replies[2].b, 0, "zero result rows -> B = 0");
    assert!(out.replies[2].body.is_empty());
}

#[test]
fn header_line_without_trailing_newline() {
    let mut b = header_only();
    b.pop();
    let rows = run_ok(&[], &[b, body(&basic_events())]);
    assert_rows(&rows, &basic_expected());
}

#[test]
fn last_row_without_trailing_newline() {
    let mut b = body(&basic_events());
    assert_eq!(b.pop(), Some(b'\n'));
    let rows = run_ok(&[], &[b]);
    assert_rows(&rows, &basic_expected());
}

#[test]
fn pipelined_requests_give_the_same_answer() {
    // Everything written at once (not lock-step): same replies.
    let ev = basic_events();
    let mut input = getinfo(&[]).chunk();
    input.extend(execute_chunk(false, &body(&ev[..2])));
    input.extend(execute_chunk(false, &header_only()));
    input.extend(execute_chunk(true, &body(&ev[2..])));
    let out = run_raw(bin(), &input);
    let table = assert_success(&out, &[], 3);
    assert_rows(&table.rows, &basic_expected());
}

#[test]
fn exits_after_final_reply_without_reading_further() {
    let mut input = getinfo(&[]).chunk();
    input.extend(execute_chunk(true, &body(&basic_events())));
    input.extend(b"chunked 1.0,garbage that must never be read\n");
    input.extend(execute_chunk(true, &body(&basic_events())));
    let out = run_raw(bin(), &input);
    let table = assert_success(&out, &[], 1);
    assert_rows(&table.rows, &basic_expected());
}

#[test]
fn large_chunk_is_read_completely() {
    // ~3 MB in one request: the command must loop partial reads.
    let mut events = Vec::new();
    for i in 0..20_000u32 {
        let q = if i % 4 == 0 { "pastebin.com" } else { "example.org" };
        let img = format!(r"C:\Users\u{}\AppData\Local\Temp\tool{}.exe", i % 3, i % 5);
        events.push(dns(&img, q, &format!("{}", 1_700_000_000 + i)));
    }
    let b = body(&events);
    assert!(b.len() > 2_000_000);
    let rows = run_ok(&[], &[b.clone(), b]);
    // Groups: (i%3, i%5) pairs with i%4 == 0 -> all 15 combinations appear.
    assert_eq!(rows.len(), 15);
    let total: usize = rows
        .iter()
        .map(|r| std::str::from_utf8(&r[6]).unwrap().parse::<usize>().unwrap())
        .sum();
    assert_eq!(total, 2 * 5_000);
}

// ---------------------------------------------------------------------------
// multivalue
// ---------------------------------------------------------------------------

#[test]
fn multivalue_by_fields_form_the_cartesian_product() {
    let a = dns(PS, "x", "100")
        .set_mv("QueryName", &["pastebin.com", "evil.example"])
        .set_mv("QueryResults", &["r1", "r2"]);
    let b = dns(PS, "x", "200")
        .set_mv("QueryName", &["pastebin.com", "pastebin.com"])
        .set("QueryResults", "r1");
    let rows = run_ok(&[], &[body(&[a, b])]);
    let r = |q: &str, res: &str, n: &str, f: &str, l: &str| row(&[PS, q, "0", "powershell.exe", res, "WIN-1", n, f, l]);
    assert_rows(
        &rows,
        &[
            // the non-matching value of a matching event still forms groups
            r("evil.example", "r1", "1", "100", "100"),
            r("evil.example", "r2", "1", "100", "100"),
            // duplicates are counted twice
            r("pastebin.com", "r1", "3", "100", "200"),
            r("pastebin.com", "r2", "1", "100", "100"),
        ],
    );
}

#[test]
fn multivalue_computer_gives_one_group_per_dest() {
    let e = dns(PS, "cdn.discordapp.com", "5").set_mv("Computer", &["WIN-2", "WIN-1"]);
    let rows = run_ok(&[], &[body(&[e])]);
    let r = |d: &str| {
        row(&[
            PS,
            "cdn.discordapp.com",
            "0",
            "powershell.exe",
            "::ffff:104.20.67.143;",
            d,
            "1",
            "5",
            "5",
        ])
    };
    assert_rows(&rows, &[r("WIN-1"), r("WIN-2")]);
}

#[test]
fn empty_elements_inside_a_multivalue_are_skipped() {
    let e = dns(PS, "x", "7").set_mv("QueryName", &["", "discord.gg", ""]);
    let rows = run_ok(&[], &[body(&[e])]);
    assert_rows(&rows, &[dns_row(PS, "discord.gg", 1, "7", "7")]);
}

#[test]
fn multivalue_with_only_empty_elements_is_absent() {
    let e = dns(PS, "pastebin.com", "7").set_mv("QueryStatus", &["", ""]);
    let out = run(&[], &[body(&[e])]);
    assert_success(&out, &[], 1);
    assert_eq!(out.replies[1].b, 0);
}

#[test]
fn non_matching_multivalue_event_is_ignored() {
    let e = dns(PS, "x", "7").set_mv("QueryName", &["a.example", "b.example"]);
    let out = run(&[], &[body(&[e])]);
    assert_success(&out, &[], 1);
    assert_eq!(out.replies[1].b, 0);
}

#[test]
fn dollar_signs_and_semicolons_in_multivalues_are_decoded() {
    let e = dns(PS, "x", "9").set_mv("QueryName", &["a$b;c.pastebin.com", "$$", "$", ";", "\"q\",x"]);
    let rows = run_ok(&[], &[body(&[e])]);
    let mut expected: Vec<Vec<Vec<u8>>> = ["a$b;c.pastebin.com", "$$", "$", ";", "\"q\",x"]
        .iter()
        .map(|q| dns_row(PS, q, 1, "9", "9"))
        .collect();
    expected.sort();
    assert_rows(&rows, &expected);
}

/// Builds a body from explicit cells for the seven fields (+ their `__mv_`).
fn raw_body(rows: &[[&[u8]; 14]]) -> Vec<u8> {
    let mut header: Vec<String> = REQUIRED_FIELDS.iter().map(|s| s.to_string()).collect();
    header.extend(REQUIRED_FIELDS.iter().map(|f| format!("__mv_{f}")));
    let rows: Vec<Vec<&[u8]>> = rows.iter().map(|r| r.to_vec()).collect();
    encode_rows(&header, &rows, b"\n")
}

#[test]
fn mv_column_with_a_single_element() {
    let e: [&[u8]; 14] = [
        b"3",
        PS.as_bytes(),
        b"pastebin.com",
        b"0",
        b"powershell.exe",
        b"-",
        b"W",
        b"",
        b"",
        b"$pastebin.com$",
        b"",
        b"",
        b"",
        b"",
    ];
    let rows = run_ok(&[], &[raw_body(&[e])]);
    assert_rows(
        &rows,
        &[row(&[
            PS,
            "pastebin.com",
            "0",
            "powershell.exe",
            "-",
            "W",
            "1",
            "3",
            "3",
        ])],
    );
}

#[test]
fn mv_column_wins_over_the_plain_column() {
    let e: [&[u8]; 14] = [
        b"3",
        PS.as_bytes(),
        b"plain.example",
        b"0",
        b"powershell.exe",
        b"-",
        b"W",
        b"",
        b"",
        b"$pastebin.com$;$other.example$",
        b"",
        b"",
        b"",
        b"",
    ];
    let rows = run_ok(&[], &[raw_body(&[e])]);
    let r = |q: &str| row(&[PS, q, "0", "powershell.exe", "-", "W", "1", "3", "3"]);
    assert_rows(&rows, &[r("other.example"), r("pastebin.com")]);
}

#[test]
fn single_value_with_newline_is_one_value() {
    // plain column holds a newline, __mv_ empty -> ONE value containing LF.
    let q = "pastebin.com\nsecond line";
    let rows = run_ok(&[], &[body(&[dns(PS, q, "1")])]);
    assert_rows(&rows, &[dns_row(PS, q, 1, "1", "1")]);
}

// ---------------------------------------------------------------------------
// values: quoting, bytes, blanks
// ---------------------------------------------------------------------------

#[test]
fn quotes_commas_newlines_and_blanks_come_back_exactly() {
    let image = r#"C:\Program Files\My "Quoted", App\app,v2.exe"#;
    let e = Event::new()
        .set("_time", "1700000000")
        .set("Image", image)
        .set("QueryName", "pastebin.com")
        .set("QueryStatus", "0\r\n1")
        .set("process_name", "app,v2.exe")
        .set("QueryResults", "type:  5 a;\"b\",c;$x$;\n::ffff:1.2.3.4;")
        .set("Computer", "  WIN 1  ");
    let rows = run_ok(&[], &[body(&[e])]);
    assert_rows(
        &rows,
        &[row(&[
            image,
            "pastebin.com",
            "0\r\n1",
            "app,v2.exe",
            "type:  5 a;\"b\",c;$x$;\n::ffff:1.2.3.4;",
            "  WIN 1  ",
            "1",
            "1700000000",
            "1700000000",
        ])],
    );
}

#[test]
fn blanks_are_part_of_the_value() {
    let a = dns(PS, "pastebin.com", "1").set("Computer", "WIN-1");
    let b = dns(PS, "pastebin.com", "2").set("Computer", "WIN-1 ");
    let c = dns(PS, "pastebin.com", "3").set("Computer", " ");
    let rows = run_ok(&[], &[body(&[a, b, c])]);
    let r = |d: &str, t: &str| {
        row(&[
            PS,
            "pastebin.com",
            "0",
            "powershell.exe",
            "::ffff:104.20.67.143;",
            d,
            "1",
            t,
            t,
        ])
    };
    assert_rows(&rows, &[r(" ", "3"), r("WIN-1", "1"), r("WIN-1 ", "2")]);
}

#[test]
fn group_values_are_case_sensitive() {
    let a = dns(PS, "pastebin.com", "1");
    let b = dns(PS, "PASTEBIN.COM", "2");
    let c = dns(PS, "pastebin.com", "3");
    let rows = run_ok(&[], &[body(&[a, b, c])]);
    assert_rows(
        &rows,
        &[
            dns_row(PS, "PASTEBIN.COM", 1, "2", "2"),
            dns_row(PS, "pastebin.com", 2, "1", "3"),
        ],
    );
}

#[test]
fn non_ascii_and_invalid_utf8_bytes_are_kept_exactly() {
    let image: &[u8] = "C:\\Users\\Jürgen\\AppData\\Local\\Temp\\ทt.exe".as_bytes();
    let query: &[u8] = b"pastebin.com\xff\xfe.\xc3";
    let computer: &[u8] = b"WIN-\xe9\x80";
    let results: &[u8] = "ทt;\u{1F600};".as_bytes();
    let e = Event::new()
        .set("_time", "1")
        .set("Image", image)
        .set("QueryName", query)
        .set("QueryStatus", "0")
        .set("process_name", b"\xff.exe")
        .set("QueryResults", results)
        .set("Computer", computer);
    let rows = run_ok(&[], &[body(&[e])]);
    let expected: Vec<Vec<u8>> = vec![
        image.to_vec(),
        query.to_vec(),
        b"0".to_vec(),
        b"\xff.exe".to_vec(),
        results.to_vec(),
        computer.to_vec(),
        b"1".to_vec(),
        b"1".to_vec(),
        b"1".to_vec(),
    ];
    assert_rows(&rows, &[expected]);
}

#[test]
fn non_ascii_letters_are_not_case_folded() {
    let args = ["patterns=*jürgen*"];
    let a = dns(PS, "JÜRGEN.example", "1");
    let b = dns(PS, "JüRGEN.example", "2");
    let rows = run_ok(&args, &[body(&[a, b])]);
    assert_rows(&rows, &[dns_row(PS, "JüRGEN.example", 1, "2", "2")]);
}

#[test]
fn metadata_lengths_are_bytes_and_json_escapes_are_decoded() {
    // splunklib-style ASCII-only JSON (`\u00fc`) and raw UTF-8 must mean the same.
    let events = [dns(PS, "J\u{fc}RGEN.example", "1"), dns(PS, "jurgen.example", "2")];
    let mut escaped = getinfo(&["patterns=*j\u{fc}rgen*"]);
    escaped.owner = "\u{0e17}t".to_string();
    let meta = escaped.metadata().replace('\u{fc}', "\\u00fc");
    // one escaped non-ASCII letter, and raw multibyte UTF-8 elsewhere (M counts bytes)
    assert!(meta.contains("\\u00fc") && meta.len() > meta.chars().count());
    let out = run_chunks(
        bin(),
        &[chunk(meta.as_bytes(), b""), execute_chunk(true, &body(&events))],
    );
    let table = assert_success(&out, &["patterns=*j\u{fc}rgen*"], 1);
    assert_rows(&table.rows, &[dns_row(PS, "J\u{fc}RGEN.example", 1, "1", "1")]);
}

// ---------------------------------------------------------------------------
// missing columns, column order, line ends
// ---------------------------------------------------------------------------

#[test]
fn missing_queryname_column_matches_nothing() {
    let cols = [
        "_time",
        "Image",
        "QueryStatus",
        "process_name",
        "QueryResults",
        "Computer",
    ];
    let events = basic_events();
    let out = run(&[], &[encode_events(&cols, &events), encode_events(&cols, &events)]);
    assert_success(&out, &[], 2);
    assert_eq!(out.replies[2].b, 0);
}

#[test]
fn missing_by_field_column_drops_those_events() {
    let without_status = [
        "_time",
        "Image",
        "QueryName",
        "process_name",
        "QueryResults",
        "Computer",
    ];
    let ev = basic_events();
    let rows = run_ok(&[], &[encode_events(&without_status, &ev), body(&ev[..1])]);
    assert_rows(&rows, &[dns_row(PS, "pastebin.com", 1, "1700000010", "1700000010")]);
}

#[test]
fn missing_time_column_still_counts() {
    let cols = [
        "Image",
        "QueryName",
        "QueryStatus",
        "process_name",
        "QueryResults",
        "Computer",
    ];
    let rows = run_ok(&[], &[encode_events(&cols, &basic_events())]);
    assert_rows(
        &rows,
        &[
            dns_row(PS, "pastebin.com", 2, "", ""),
            dns_row(SVCHOST, "cdn.discordapp.com", 1, "", ""),
        ],
    );
}

#[test]
fn empty_by_field_drops_the_event() {
    let mut events = Vec::new();
    for f in BY_FIELDS {
        events.push(dns(PS, "pastebin.com", "1").set(f, ""));
    }
    events.push(dns(PS, "pastebin.com", "2"));
    let rows = run_ok(&[], &[body(&events)]);
    assert_rows(&rows, &[dns_row(PS, "pastebin.com", 1, "2", "2")]);
}

#[test]
fn columns_in_a_different_order_per_chunk() {
    let ev = basic_events();
    let reversed: Vec<&str> = REQUIRED_FIELDS.iter().rev().copied().collect();
    let shuffled = [
        "QueryResults",
        "_time",
        "Computer",
        "QueryName",
        "process_name",
        "Image",
        "QueryStatus",
    ];
    let rows = run_ok(
        &[],
        &[
            encode_events(&reversed, &ev[..2]),
            encode_events(&shuffled, &ev[2..4]),
            body(&ev[4..]),
        ],
    );
    assert_rows(&rows, &basic_expected());
}

#[test]
fn extra_columns_are_ignored() {
    let cols = [
        "_raw",
        "_time",
        "host",
        "Image",
        "QueryName",
        "QueryStatus",
        "process_name",
        "QueryResults",
        "Computer",
        "_chunked_idx",
        "tag::eventtype",
    ];
    let events: Vec<Event> = basic_events()
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            e.set(
                "_raw",
                "<Event xmlns='x'><Data Name='QueryName'>pastebin.com</Data></Event>",
            )
            .set("host", "pastebin.com")
            .set("_chunked_idx", i.to_string())
            .set_mv("tag::eventtype", &["dns", "network"])
        })
        .collect();
    let rows = run_ok(&[], &[encode_events(&cols, &events)]);
    assert_rows(&rows, &basic_expected());
}

#[test]
fn bodies_without_mv_columns() {
    let style = CsvStyle {
        line_end: b"\n",
        mv_columns: false,
    };
    let rows = run_ok(&[], &[encode_events_with(&REQUIRED_FIELDS, &basic_events(), &style)]);
    assert_rows(&rows, &basic_expected());
}

#[test]
fn crlf_bodies() {
    let style = CsvStyle {
        line_end: b"\r\n",
        mv_columns: true,
    };
    let mut ev = basic_events();
    ev.push(dns(PS, "x", "1700000020").set_mv("QueryName", &["pastebin.com", "a.example"]));
    let ev2 = basic_events();
    let rows = run_ok(
        &[],
        &[
            encode_events_with(&REQUIRED_FIELDS, &ev, &style),
            encode_events_with(&REQUIRED_FIELDS, &[], &style),
            encode_events_with(&REQUIRED_FIELDS, &ev2, &style),
        ],
    );
    assert_rows(
        &rows,
        &[
            dns_row(PS, "a.example", 1, "1700000020", "1700000020"),
            dns_row(PS, "pastebin.com", 5, "1700000005", "1700000020"),
            dns_row(SVCHOST, "cdn.discordapp.com", 2, "1700000003", "1700000003"),
        ],
    );
}

// ---------------------------------------------------------------------------
// firstTime / lastTime
// ---------------------------------------------------------------------------

fn times_of(times: &[&str]) -> (String, String) {
    let events: Vec<Event> = times
        .iter()
        .map(|t| {
            if t.is_empty() {
                let mut e = dns(PS, "pastebin.com", "");
                e.fields.retain(|(f, _)| f != "_time");
                e
            } else {
                dns(PS, "pastebin.com", t)
            }
        })
        .collect();
    let rows = run_ok(&[], &[body(&events)]);
    assert_eq!(rows.len(), 1, "one group expected: {:?}", show(&rows));
    assert_eq!(rows[0][6], times.len().to_string().into_bytes(), "count");
    (
        String::from_utf8(rows[0][7].clone()).unwrap(),
        String::from_utf8(rows[0][8].clone()).unwrap(),
    )
}

#[test]
fn times_numeric_min_max_keep_original_text() {
    assert_eq!(
        times_of(&["1700000000.500", "1699999999", "1700000001.250", "1700000000.5"]),
        ("1699999999".into(), "1700000001.250".into())
    );
    assert_eq!(
        times_of(&["1700000000.500", "1700000000.1"]),
        ("1700000000.1".into(), "1700000000.500".into())
    );
}

#[test]
fn times_compare_numerically_not_lexicographically() {
    assert_eq!(times_of(&["900", "10000", "1000"]), ("900".into(), "10000".into()));
    assert_eq!(times_of(&["-5", "10", "9"]), ("-5".into(), "10".into()));
}

#[test]
fn times_ties_keep_the_smallest_text_whatever_the_order() {
    // Order-independent, so a distributed search gives the same text however
    // the events were spread over the indexers.
    for order in [
        ["1700000000.5", "1700000000.500", "1700000000.50"],
        ["1700000000.500", "1700000000.50", "1700000000.5"],
        ["1700000000.50", "1700000000.5", "1700000000.500"],
    ] {
        assert_eq!(times_of(&order), ("1700000000.5".into(), "1700000000.5".into()));
    }
}

#[test]
fn times_non_numeric_ignored_when_a_numeric_value_exists() {
    assert_eq!(
        times_of(&["abc", "1700000000", "zzz", "1600000000", "2023-09-05T16:46:33.808"]),
        ("1600000000".into(), "1700000000".into())
    );
}

#[test]
fn times_only_non_numeric_are_compared_lexicographically() {
    assert_eq!(
        times_of(&[
            "2023-09-05T16:46:33.808",
            "2023-09-05T09:00:00.000",
            "2023-10-01T00:00:00.000"
        ]),
        ("2023-09-05T09:00:00.000".into(), "2023-10-01T00:00:00.000".into())
    );
}

#[test]
fn times_events_without_time_still_count() {
    assert_eq!(times_of(&["", "5", ""]), ("5".into(), "5".into()));
    assert_eq!(times_of(&["", ""]), ("".into(), "".into()));
}

// ---------------------------------------------------------------------------
// matching and patterns
// ---------------------------------------------------------------------------

/// Runs `args` over events named by QueryName; returns the matched QueryNames
/// (one group per event is guaranteed by distinct names).
fn matched(args: &[&str], names: &[&str]) -> Vec<String> {
    let events: Vec<Event> = names.iter().map(|q| dns(PS, q, "1")).collect();
    let rows = run_ok(args, &[body(&events)]);
    rows.iter().map(|r| String::from_utf8(r[1].clone()).unwrap()).collect()
}

fn sorted(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[test]
fn default_patterns_and_near_misses() {
    let names = [
        "pastebin.com",
        "pastebin.co",
        "pastebinx",
        "PASTEBIN.COM",
        "www.PasteBin.com",
        "aatextbinzz",
        "textbi.n",
        "4ngrok.io",
        "ngrok.i0",
        "NGROK.IO",
        "ngrok.io.evil",
        "cdn.discordapp.com",
        "DISCORD.gg",
        "disc0rd.gg",
        "duckdns.org.evil",
        "x.DuckDNS.org",
        "duckdns.or",
        "pasteio.com",
        "PASTEIO.COM.evil",
        "pasteio.co",
        "paste bin",
        "paste.ee",
        "www.microsoft.com",
    ];
    assert_eq!(
        matched(&[], &names),
        sorted(&[
            "pastebin.com",
            "pastebin.co",
            "pastebinx",
            "PASTEBIN.COM",
            "www.PasteBin.com",
            "aatextbinzz",
            "4ngrok.io",
            "NGROK.IO",
            "ngrok.io.evil",
            "cdn.discordapp.com",
            "DISCORD.gg",
            "duckdns.org.evil",
            "x.DuckDNS.org",
            "pasteio.com",
            "PASTEIO.COM.evil",
        ])
    );
}

#[test]
fn pattern_prefix_shape() {
    assert_eq!(
        matched(
            &["patterns=pastebin*"],
            &["pastebin.com", "PASTEBIN.COM", "www.pastebin.com", "pastebin", "pasteb"]
        ),
        sorted(&["pastebin.com", "PASTEBIN.COM", "pastebin"])
    );
}

#[test]
fn pattern_suffix_shape() {
    assert_eq!(
        matched(
            &["patterns=*.ngrok.io"],
            &[
                "abc.ngrok.io",
                "ABC.NGROK.IO",
                "ngrok.io",
                "abc.ngrok.io.evil",
                ".ngrok.io"
            ]
        ),
        sorted(&["abc.ngrok.io", "ABC.NGROK.IO", ".ngrok.io"])
    );
}

#[test]
fn pattern_exact_shape() {
    assert_eq!(
        matched(
            &["patterns=discord.gg"],
            &[
                "discord.gg",
                "DISCORD.GG",
                "Discord.Gg",
                "xdiscord.gg",
                "discord.ggx",
                "discordxgg"
            ]
        ),
        sorted(&["discord.gg", "DISCORD.GG", "Discord.Gg"])
    );
}

#[test]
fn pattern_middle_star_shape() {
    assert_eq!(
        matched(
            &["patterns=cdn.*.com"],
            &[
                "cdn.discordapp.com",
                "CDN.X.COM",
                "cdn..com",
                "cdn.discordapp.co",
                "xcdn.a.com",
                "cdn.a.com.b"
            ]
        ),
        sorted(&["cdn.discordapp.com", "CDN.X.COM", "cdn..com"])
    );
}

#[test]
fn pattern_several_stars_and_upper_case_pattern() {
    assert_eq!(
        matched(
            &["patterns=*PASTE*BIN*"],
            &["pastebin.com", "a.paste.x.bin", "PaStEbIn", "binpaste", "past.ebin"]
        ),
        sorted(&["pastebin.com", "a.paste.x.bin", "PaStEbIn"])
    );
}

#[test]
fn pattern_list_is_space_separated_and_replaces_the_defaults() {
    assert_eq!(
        matched(
            &["patterns=a.example *.b.example"],
            &["a.example", "x.b.example", "pastebin.com", "b.example"]
        ),
        sorted(&["a.example", "x.b.example"])
    );
}

#[test]
fn pattern_other_characters_are_literal() {
    assert_eq!(
        matched(
            &["patterns=paste?bin.com"],
            &["paste?bin.com", "pastexbin.com", "pastebin.com"]
        ),
        sorted(&["paste?bin.com"])
    );
    assert_eq!(
        matched(&["patterns=*[a-z].com"], &["x[a-z].com", "b.com"]),
        sorted(&["x[a-z].com"])
    );
    assert_eq!(
        matched(&[r"patterns=*\.com"], &[r"x\.com", "x.com"]),
        sorted(&[r"x\.com"])
    );
}

#[test]
fn pattern_star_matches_newlines() {
    assert_eq!(
        matched(&["patterns=*evil*"], &["first\nevil\nlast", "good"]),
        sorted(&["first\nevil\nlast"])
    );
}

#[test]
fn pattern_lone_star_matches_every_non_empty_value() {
    assert_eq!(
        matched(&["patterns=*"], &["a", "b.example"]),
        sorted(&["a", "b.example"])
    );
}

#[test]
fn field_option_matches_another_field() {
    let args = ["field=query"];
    let a = dns(PS, "group.one", "1").set("query", "pastebin.com");
    let b = dns(PS, "group.two", "2").set("query", "microsoft.com");
    let c = dns(PS, "pastebin.com", "3"); // no `query`: never matches
    let d = dns(PS, "group.four", "4").set_mv("query", &["x", "DISCORD.gg"]);
    let cols: Vec<String> = expected_required(&args);
    let rows = run_ok(&args, &[encode_events(&cols, &[a, b, c, d])]);
    assert_rows(
        &rows,
        &[
            dns_row(PS, "group.four", 1, "4", "4"),
            dns_row(PS, "group.one", 1, "1", "1"),
        ],
    );
}

#[test]
fn field_option_with_a_by_field_and_patterns() {
    let args = ["field=Image", "patterns=*powershell.exe"];
    let a = dns(PS, "anything.example", "1");
    let b = dns(SVCHOST, "pastebin.com", "2");
    let rows = run_ok(&args, &[body(&[a, b])]);
    assert_rows(&rows, &[dns_row(PS, "anything.example", 1, "1", "1")]);
}

#[test]
fn field_option_column_missing_matches_nothing() {
    let args = ["field=query"];
    let out = run(&args, &[body(&basic_events())]);
    assert_success(&out, &args, 1);
    assert_eq!(out.replies[1].b, 0);
}

// ---------------------------------------------------------------------------
// limits
// ---------------------------------------------------------------------------

fn three_groups() -> Vec<Event> {
    vec![
        dns(PS, "a.pastebin.com", "1"),
        dns(PS, "b.pastebin.com", "2"),
        dns(PS, "a.pastebin.com", "3"),
        dns(PS, "c.pastebin.com", "4"),
    ]
}

#[test]
fn max_groups_reached_exactly_is_fine() {
    let rows = run_ok(&["max_groups=3"], &[body(&three_groups()), body(&three_groups())]);
    assert_eq!(rows.len(), 3);
}

#[test]
fn max_groups_exceeded_is_fatal() {
    run_fatal(&["max_groups=2"], &[body(&three_groups())], &["max_groups", "chunk 2"]);
}

#[test]
fn max_groups_exceeded_in_a_non_final_chunk_fails_at_that_chunk() {
    let out = run(
        &["max_groups=2"],
        &[body(&three_groups()[..2]), body(&three_groups()), header_only()],
    );
    assert_fatal(&out, &["max_groups", "chunk 3"]);
    assert_eq!(out.replies.len(), 3, "getinfo, finished:false, error");
}

/// A body of a few KB (the option accepts caps from 1024 bytes up).
fn big_body() -> Vec<u8> {
    let events: Vec<Event> = (0..20).flat_map(|_| basic_events()).collect();
    let b = body(&events);
    assert!(b.len() > 4096);
    b
}

fn big_expected() -> Vec<Vec<Vec<u8>>> {
    vec![
        dns_row(PS, "pastebin.com", 40, "1700000005", "1700000010"),
        dns_row(SVCHOST, "cdn.discordapp.com", 20, "1700000003", "1700000003"),
    ]
}

#[test]
fn max_chunk_bytes_at_the_limit_is_fine() {
    let b = big_body();
    let arg = format!("max_chunk_bytes={}", b.len());
    let rows = run_ok(&[&arg], &[header_only(), b]);
    assert_rows(&rows, &big_expected());
}

#[test]
fn max_chunk_bytes_exceeded_is_fatal() {
    let b = big_body();
    let arg = format!("max_chunk_bytes={}", b.len() - 1);
    let out = run(&[&arg], &[header_only(), b.clone(), b]);
    assert_fatal(&out, &["max_chunk_bytes", "chunk 3"]);
    assert_eq!(out.replies.len(), 3);
}

#[test]
fn max_chunk_bytes_exceeded_with_a_huge_declared_body() {
    // The command must refuse without needing the (never sent) 10 GB body.
    let mut input = getinfo(&["max_chunk_bytes=4096"]).chunk();
    input.extend(b"chunked 1.0,36,10000000000\n{\"action\":\"execute\",\"finished\":true}");
    input.extend(vec![b'x'; 5000]);
    let out = run_raw(bin(), &input);
    assert_fatal(&out, &["max_chunk_bytes", "chunk 2"]);
}

// ---------------------------------------------------------------------------
// fatal errors: framing
// ---------------------------------------------------------------------------

fn with_getinfo(rest: &[u8]) -> Vec<u8> {
    let mut input = getinfo(&[]).chunk();
    input.extend_from_slice(rest);
    input
}

#[test]
fn err_bad_header_garbage() {
    let out = run_raw(bin(), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_fatal(&out, &["chunk 1", "byte"]);
    assert_eq!(out.replies.len(), 1);
}

#[test]
fn err_bad_header_wrong_version() {
    let out = run_raw(
        bin(),
        &with_getinfo(b"chunked 2.0,36,0\n{\"action\":\"execute\",\"finished\":true}"),
    );
    assert_fatal(&out, &["chunk 2", "byte"]);
}

#[test]
fn err_bad_header_non_numeric_length() {
    let out = run_raw(
        bin(),
        &with_getinfo(b"chunked 1.0,thirty,0\n{\"action\":\"execute\",\"finished\":true}"),
    );
    assert_fatal(&out, &["chunk 2", "byte"]);
}

#[test]
fn err_bad_header_negative_length() {
    let out = run_raw(bin(), b"chunked 1.0,-5,0\n{}");
    assert_fatal(&out, &["chunk 1", "byte"]);
}

#[test]
fn err_bad_header_missing_body_length() {
    let out = run_raw(
        bin(),
        &with_getinfo(b"chunked 1.0,36\n{\"action\":\"execute\",\"finished\":true}"),
    );
    assert_fatal(&out, &["chunk 2", "byte"]);
}

#[test]
fn err_partial_header_then_eof() {
    let out = run_raw(bin(), &with_getinfo(b"chunked 1.0,36"));
    assert_fatal(&out, &["chunk 2", "byte"]);
}

#[test]
fn err_truncated_metadata() {
    let meta = getinfo(&[]).metadata();
    let mut input = format!("chunked 1.0,{},0\n", meta.len()).into_bytes();
    input.extend_from_slice(&meta.as_bytes()[..meta.len() / 2]);
    let out = run_raw(bin(), &input);
    assert_fatal(&out, &["chunk 1", "byte"]);
    assert_eq!(out.replies.len(), 1);
}

#[test]
fn err_truncated_body() {
    let b = body(&basic_events());
    let mut input = with_getinfo(&execute_chunk(false, &header_only()));
    let full = execute_chunk(true, &b);
    input.extend_from_slice(&full[..full.len() - 10]);
    let out = run_raw(bin(), &input);
    assert_fatal(&out, &["chunk 3", "byte"]);
    assert_eq!(out.replies.len(), 3);
}

#[test]
fn err_invalid_json_in_getinfo() {
    let out = run_chunks(bin(), &[chunk(b"{\"action\":\"getinfo\",", b"")]);
    assert_fatal(&out, &["chunk 1"]);
}

#[test]
fn err_invalid_json_in_execute() {
    let out = run_chunks(
        bin(),
        &[getinfo(&[]).chunk(), chunk(b"{action:execute}", &header_only())],
    );
    assert_fatal(&out, &["chunk 2"]);
}

#[test]
fn err_metadata_not_an_object() {
    let out = run_chunks(bin(), &[chunk(b"[\"getinfo\"]", b"")]);
    assert_fatal(&out, &["chunk 1"]);
    let out = run_chunks(bin(), &[getinfo(&[]).chunk(), chunk(b"\"execute\"", b"")]);
    assert_fatal(&out, &["chunk 2"]);
}

#[test]
fn err_empty_metadata() {
    let out = run_chunks(bin(), &[getinfo(&[]).chunk(), chunk(b"", &header_only())]);
    assert_fatal(&out, &["chunk 2"]);
}

#[test]
fn err_unknown_action() {
    let out = run_chunks(
        bin(),
        &[
            getinfo(&[]).chunk(),
            chunk(b"{\"action\":\"cancel\",\"finished\":true}", b""),
        ],
    );
    assert_fatal(&out, &["chunk 2", "action"]);
}

#[test]
fn err_execute_before_getinfo() {
    let out = run_chunks(bin(), &[execute_chunk(true, &body(&basic_events()))]);
    assert_fatal(&out, &["chunk 1", "getinfo"]);
    assert_eq!(out.replies.len(), 1);
}

#[test]
fn err_second_getinfo() {
    let out = run_chunks(bin(), &[getinfo(&[]).chunk(), getinfo(&[]).chunk()]);
    assert_fatal(&out, &["chunk 2", "getinfo"]);
    assert_eq!(out.replies.len(), 2);
}

#[test]
fn err_second_getinfo_after_execute() {
    let out = run_chunks(
        bin(),
        &[
            getinfo(&[]).chunk(),
            execute_chunk(false, &header_only()),
            getinfo(&[]).chunk(),
        ],
    );
    assert_fatal(&out, &["chunk 3", "getinfo"]);
}

#[test]
fn err_body_on_getinfo() {
    let out = run_chunks(bin(), &[chunk(getinfo(&[]).metadata().as_bytes(), &header_only())]);
    assert_fatal(&out, &["chunk 1"]);
}

// ---------------------------------------------------------------------------
// fatal errors: CSV
// ---------------------------------------------------------------------------

#[test]
fn err_ragged_row_too_few_fields() {
    let mut b = body(&basic_events()[..1]);
    b.extend(b"1,2,3\n");
    let out = run(&[], &[header_only(), b]);
    assert_fatal(&out, &["chunk 3", "row 2", "byte"]);
}

#[test]
fn err_ragged_row_too_many_fields() {
    let mut b = header_only();
    b.extend(b"1,2,3,4,5,6,7,8,9,10,11,12,13,14,15\n");
    let out = run(&[], &[b]);
    assert_fatal(&out, &["chunk 2", "row 1", "byte"]);
}

#[test]
fn err_unterminated_quote() {
    let mut b = body(&basic_events()[..2]);
    b.extend(b"1,\"C:\\never closed,pastebin.com,0,x.exe,-,W,,,,,,,\n");
    let out = run(&[], &[b]);
    assert_fatal(&out, &["chunk 2", "row 3", "byte"]);
}

#[test]
fn err_unterminated_quote_in_the_last_field() {
    // Right number of fields, but the last one opens a quote that never closes:
    // a lenient CSV reader would silently take `never closed` as the value.
    // (no `__mv_` block, so the last field is the plain Computer column)
    let style = CsvStyle {
        line_end: b"\n",
        mv_columns: false,
    };
    let mut b = encode_events_with(&REQUIRED_FIELDS, &basic_events()[..1], &style);
    b.extend(b"1,x,pastebin.com,0,x.exe,-,\"never closed\n");
    let out = run(&[], &[b]);
    assert_fatal(&out, &["chunk 2", "row 2", "quote"]);
}

#[test]
fn err_header_offset_is_the_offset_in_the_input_stream() {
    let gi = getinfo(&[]).chunk();
    let first = execute_chunk(false, &header_only());
    let mut input = gi.clone();
    input.extend(&first);
    input.extend(b"chunked 1.0,x,0\n");
    let out = run_raw(bin(), &input);
    let e = assert_fatal(&out, &["chunk 3", "byte"]);
    let offset = (gi.len() + first.len()).to_string();
    assert!(e.contains(&offset), "{e:?} should give byte offset {offset}");
}

fn bad_mv(mv: &[u8]) -> String {
    let good: [&[u8]; 14] = [
        b"3",
        PS.as_bytes(),
        b"pastebin.com",
        b"0",
        b"powershell.exe",
        b"-",
        b"W",
        b"",
        b"",
        b"",
        b"",
        b"",
        b"",
        b"",
    ];
    let mut bad = good;
    bad[9] = mv; // __mv_QueryName
    let out = run(&[], &[raw_body(&[good, bad])]);
    let e = assert_fatal(&out, &["chunk 2", "row 2", "byte"]);
    // The column may be given by name or by (1-based) number.
    assert!(
        e.contains("__mv_QueryName") || e.contains("column 10"),
        "{e:?} should name the column __mv_QueryName"
    );
    e
}

#[test]
fn err_bad_mv_value_unterminated() {
    bad_mv(b"$pastebin.com");
}

#[test]
fn err_bad_mv_value_no_leading_dollar() {
    bad_mv(b"pastebin.com");
}

#[test]
fn err_bad_mv_value_junk_after_element() {
    bad_mv(b"$a$b$");
}

#[test]
fn err_bad_mv_value_trailing_separator() {
    bad_mv(b"$a$;");
}

#[test]
fn err_csv_error_after_good_chunks_reports_the_chunk() {
    let mut b = header_only();
    b.extend(b"oops\n");
    let ev = basic_events();
    let out = run(&[], &[body(&ev[..2]), body(&ev[2..]), b, header_only()]);
    assert_fatal(&out, &["chunk 4", "row 1"]);
    assert_eq!(out.replies.len(), 4, "getinfo, 2x finished:false, error");
    for r in &out.replies[1..3] {
        assert_eq!(r.meta_raw, b"{\"finished\":false}");
    }
}

// ---------------------------------------------------------------------------
// fatal errors: options
// ---------------------------------------------------------------------------

fn option_error(args: &[&str], needles: &[&str]) -> String {
    let out = run(args, &[body(&basic_events())]);
    let e = assert_fatal(&out, needles);
    assert_eq!(out.replies.len(), 1, "the getinfo reply is the error");
    e
}

const VALID_OPTIONS: [&str; 4] = ["patterns", "field", "max_groups", "max_chunk_bytes"];

#[test]
fn err_unknown_option_names_it_and_lists_the_valid_ones() {
    let e = option_error(&["colour=blue"], &["colour"]);
    for o in VALID_OPTIONS {
        assert!(e.contains(o), "{e:?} should list {o}");
    }
}

#[test]
fn err_positional_argument() {
    let e = option_error(&["pastebin"], &["pastebin"]);
    for o in VALID_OPTIONS {
        assert!(e.contains(o), "{e:?} should list {o}");
    }
}

#[test]
fn err_bad_value_max_groups() {
    option_error(&["max_groups=lots"], &["max_groups"]);
    option_error(&["max_groups=-3"], &["max_groups"]);
    option_error(&["max_groups=99999999999999999999999999"], &["max_groups"]);
}

#[test]
fn err_bad_value_max_chunk_bytes() {
    option_error(&["max_chunk_bytes=1GB"], &["max_chunk_bytes"]);
    option_error(&["max_chunk_bytes="], &["max_chunk_bytes"]);
}

#[test]
fn err_option_error_with_other_valid_options() {
    option_error(&["patterns=*a*", "max_groups=ten", "field=QueryName"], &["max_groups"]);
}

// ---------------------------------------------------------------------------
// secrets
// ---------------------------------------------------------------------------

#[test]
fn secrets_are_not_echoed_on_error_paths() {
    // assert_fatal/assert_success check this everywhere; here the secrets are
    // also put where a careless error message might quote them.
    let mut gi = getinfo(&["bogus=1"]);
    gi.args.push(format!("x={SECRET_SEARCH_MARK}"));
    let out = run_chunks(bin(), &[gi.chunk()]);
    assert_eq!(out.code(), Some(1));
    assert!(!String::from_utf8_lossy(&out.stdout).contains(SECRET_SESSION_KEY));
    assert!(!String::from_utf8_lossy(&out.stderr).contains(SECRET_SESSION_KEY));

    // getinfo metadata broken after the session key: the error must not quote it.
    let meta = getinfo(&[]).metadata();
    let cut = meta.find(SECRET_SESSION_KEY).unwrap() + SECRET_SESSION_KEY.len() + 2;
    let out = run_chunks(bin(), &[chunk(&meta.as_bytes()[..cut], b"")]);
    assert_fatal(&out, &["chunk 1"]);
}

// ---------------------------------------------------------------------------
// replaying real splunkd traffic through the binary
// ---------------------------------------------------------------------------

#[test]
fn replay_splunk_8_0_3_multibyte_capture() {
    // 10 chunks captured from splunkd 8.0.3 (getinfo re-serialised by splunklib:
    // times as floats), 40 682 rows of `_time,teststring` with a Thai letter:
    // no QueryName, so nothing matches, but every byte must be framed right.
    use std::io::Read;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/scp2-recordings/splunk-sdk-python/tests/unit/data/custom_search/multibyte_input.gz");
    let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut input = Vec::new();
    flate2::read::GzDecoder::new(&raw[..]).read_to_end(&mut input).unwrap();
    let out = run_raw(bin(), &input);
    let ctx = out.describe();
    assert_eq!(out.code(), Some(0), "{ctx}");
    assert!(out.stderr.is_empty(), "{ctx}");
    assert!(out.trailing.is_empty(), "{ctx}");
    assert_eq!(out.replies.len(), 10, "{ctx}");
    assert_getinfo_reply(&out.replies[0], &[]);
    for r in &out.replies[1..9] {
        assert_eq!(r.meta_raw, b"{\"finished\":false}", "{ctx}");
    }
    assert_eq!(out.replies[9].finished(), Some(true), "{ctx}");
    assert_eq!(out.replies[9].b, 0, "{ctx}");
    // the capture's own session key is not echoed either
    let key = b"nwACeZbFjwt_VBxvPKiz";
    assert!(!out.stdout.windows(key.len()).any(|w| w == key));
}

// ---------------------------------------------------------------------------
// choices recorded in behaviour.md "Choices where the evidence is silent"
// ---------------------------------------------------------------------------

#[test]
fn stray_line_ends_between_chunks_are_skipped() {
    let ev = basic_events();
    let mut input = getinfo(&[]).chunk();
    input.extend(b"\n");
    input.extend(execute_chunk(false, &body(&ev[..2])));
    input.extend(b"\r\n");
    input.extend(execute_chunk(true, &body(&ev[2..])));
    let out = run_raw(bin(), &input);
    let table = assert_success(&out, &[], 2);
    assert_rows(&table.rows, &basic_expected());
}

#[test]
fn times_exponent_is_numeric_inf_and_nan_are_text() {
    assert_eq!(times_of(&["1e9", "900", "10000"]), ("900".into(), "1e9".into()));
    assert_eq!(times_of(&["inf", "nan", "5", "-1.5"]), ("-1.5".into(), "5".into()));
    assert_eq!(times_of(&["inf", "nan", "NaN"]), ("NaN".into(), "nan".into()));
}

#[test]
fn err_cartesian_explosion_names_the_row() {
    // 11 values in each of the six by-fields: 11^6 = 1 771 561 combinations.
    let vals: Vec<String> = (0..11).map(|i| format!("pastebin{i}.com")).collect();
    let mut e = dns(PS, "x", "1");
    for f in BY_FIELDS {
        e = e.set_mv(f, &vals);
    }
    let out = run(&[], &[body(&[dns(PS, "pastebin.com", "1"), e])]);
    assert_fatal(&out, &["chunk 2", "row 2"]);
}
