//! `distributed=true` on the wire (docs/behaviour.md "Map/reduce"): the
//! reduce's getinfo answer and its preop, the preop's values surviving
//! splunkd's tokeniser into the map processes, the map's per-request partial
//! rows and metrics, the reduce merging partial rows and raw events, and every
//! forged or mangled partial row refused with the chunk, row and column named.

mod common;
#[path = "common/mapreduce.rs"]
mod mapreduce;
#[path = "../fuzz/reply_check.rs"]
mod reply_check;

use common::*;
use mapreduce::*;
use serde_json::json;

const DEFAULT_PREOP: &str = "abusedweb phase=\"map\" list=\"escu_v1\" escu_version=\"4\" \
     field=\"QueryName\" max_groups=\"1000000\" max_chunk_bytes=\"1073741824\"";

#[test]
fn without_distributed_the_getinfo_answer_is_unchanged() {
    for args in [&[][..], &["distributed=false"][..], &["distributed=F"][..]] {
        let out = run(args, &[]);
        assert_eq!(
            out.replies[0].meta,
            json!({"type": "reporting", "required_fields": REQUIRED_FIELDS}),
            "{args:?}"
        );
    }
}

#[test]
fn the_reduce_asks_for_the_map_phase_and_the_partial_columns() {
    assert_eq!(reduce_preop(&["distributed=true"]), DEFAULT_PREOP);
    assert_eq!(reduce_preop(&["distributed=YES"]), DEFAULT_PREOP);
    let preop = reduce_preop(&["field=query", "max_groups=50", "distributed=1", "max_chunk_bytes=4096"]);
    assert_eq!(
        preop,
        "abusedweb phase=\"map\" list=\"escu_v1\" escu_version=\"4\" \
         field=\"query\" max_groups=\"50\" max_chunk_bytes=\"4096\""
    );
    let t = tokenise(&preop).unwrap();
    assert_eq!(t.args[0], "phase=map");
    assert_eq!(t.raw_args[0], "phase=\"map\"");
}

/// Patterns with quotes, `=`, backslashes, `%`, commas, brackets, `|`, `$`
/// and non-ASCII, separated by blanks: the map process, started from the
/// tokenised preop, matches exactly what the single process matches.
#[test]
fn awkward_option_values_round_trip_into_the_map() {
    let patterns = concat!(
        r#"*a"b* *c=d* *e\f* *100%* *x,y* *[z]|$w* "#,
        "*j\u{fc}rgen* ",
        r#"*q"*"#
    );
    let preop = reduce_preop(&[&format!("patterns={patterns}"), "field=tag::query", "distributed=true"]);
    let t = tokenise(&preop).unwrap();
    assert!(
        t.raw_args.iter().all(|a| !a[..a.len() - 1]
            .split_once("=\"")
            .unwrap()
            .1
            .contains(['"', '\\', ',', '|', '[', '$'])),
        "preop values hold only safe bytes: {preop}"
    );
    let names = [
        "a\"b.com",
        "c=d",
        "e\\f",
        "100%",
        "x,y",
        "[z]|$w",
        "j\u{fc}rgen.de",
        "q\"end",
        // near misses
        "ab",
        "cd",
        "e/f",
        "100",
        "xy",
        "[z]$w",
        "jurgen",
        "q",
    ];
    let events: Vec<Event> = names
        .iter()
        .enumerate()
        .map(|(i, q)| dns(PS, "unused", &format!("{}", 1_700_000_000 + i)).set("tag::query", q))
        .collect();
    let mut columns: Vec<&str> = REQUIRED_FIELDS.to_vec();
    columns.push("tag::query");
    let body = encode_events(&columns, &events);
    let (tables, meta) = run_map(&preop, std::slice::from_ref(&body));
    let matched = &meta["inspector"]["metric.abusedweb.match"];
    assert_eq!(matched[2], 16, "{meta}");
    assert_eq!(matched[3], 8, "every awkward pattern matched its own name only: {meta}");
    // One group (same six by-values) with the 8 matches, times of the first 8 events.
    assert_eq!(tables.len(), 1);
    assert_eq!(
        tables[0].rows_lossy(),
        [[
            PS,
            "unused",
            "0",
            "powershell.exe",
            "::ffff:104.20.67.143;",
            "WIN-1",
            "8",
            "1700000000",
            "1700000007"
        ]]
    );
    // The same through the single process.
    let single = run_ok(&[&format!("patterns={patterns}"), "field=tag::query"], &[body]);
    assert_eq!(show(&single)[0][6..], ["8", "1700000000", "1700000007"]);
}

#[test]
fn max_groups_reaches_the_map() {
    let preop = reduce_preop(&["max_groups=2", "distributed=true"]);
    let events = [
        dns(PS, "a.pastebin.com", "1"),
        dns(PS, "b.pastebin.com", "2"),
        dns(PS, "c.pastebin.com", "3"),
    ];
    let out = run_conversation(bin(), &map_getinfo(&preop), &[body(&events)]);
    assert_fatal(&out, &["max_groups=2", "chunk 2, row 3"]);
}

#[test]
fn the_map_answers_each_request_with_that_requests_groups() {
    let a = [
        dns(PS, "x.pastebin.com", "5"),
        dns(PS, "x.pastebin.com", "3"),
        dns(PS, "example.com", "1"),
    ];
    let b = [dns(PS, "x.pastebin.com", "9")];
    let (tables, meta) = run_map(DEFAULT_PREOP, &[body(&a), header_only(), body(&b), Vec::new()]);
    assert_eq!(tables.len(), 2, "the empty requests get empty bodies");
    assert_eq!(show(&tables[0].rows)[0][6..], ["2", "3", "5"]);
    assert_eq!(show(&tables[1].rows)[0][6..], ["1", "9", "9"]);
    assert_eq!(
        meta["inspector"]["metric.abusedweb.map"].as_array().unwrap()[1..],
        [json!(4), json!(4), json!(2)]
    );
    assert_eq!(
        meta["inspector"]["metric.abusedweb.match"].as_array().unwrap()[1..],
        [json!(4), json!(4), json!(3)]
    );
}

#[test]
fn the_map_mirrors_finished_and_keeps_metrics_for_the_last_reply() {
    let gi = map_getinfo(DEFAULT_PREOP);
    let out = run_conversation(bin(), &gi, &[body(&[dns(PS, "pastebin.com", "1")]), body(&[])]);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert_eq!(out.replies[1].meta, json!({"finished": false}));
    assert!(
        out.replies[1].b > 0,
        "partial rows go out with the request that brought the events"
    );
    assert_eq!(out.replies[2].finished(), Some(true));
    assert!(out.replies[2].meta["inspector"].is_object());
    assert_eq!(out.replies[2].b, 0);
}

/// Raw events and partial rows in one body, in any order: one code path.
#[test]
fn the_reduce_merges_partial_rows_and_raw_events_together() {
    let mut columns: Vec<&str> = REQUIRED_FIELDS.to_vec();
    columns.extend(AGGREGATE_COLUMNS);
    let partial = |q: &str, count: &str, first: &str, last: &str| {
        Event::new()
            .set("Image", PS)
            .set("QueryName", q)
            .set("QueryStatus", "0")
            .set("process_name", "powershell.exe")
            .set("QueryResults", "::ffff:104.20.67.143;")
            .set("Computer", "WIN-1")
            .set("abusedweb_count", count)
            .set("abusedweb_first_time", first)
            .set("abusedweb_last_time", last)
    };
    let rows = [
        dns(PS, "pastebin.com", "1700000005"),
        partial("pastebin.com", "3", "1700000001.50", "1700000009"),
        partial("pastebin.com", "2", "1700000001.5", "1700000002"),
        dns(PS, "example.com", "1700000000"),
        partial("discord.gg", "1", "", ""),
        dns(PS, "discord.gg", ""),
    ];
    let out = run(&["distributed=true"], &[encode_events(&columns, &rows)]);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let last = out.replies.last().unwrap();
    let inspector = &last.meta["inspector"];
    assert_eq!(
        inspector["metric.abusedweb.merge"].as_array().unwrap()[2..],
        [json!(3), json!(2)]
    );
    assert_eq!(inspector["metric.abusedweb.match"][2], 3, "raw events read");
    assert_eq!(
        inspector["messages"],
        json!([[
            "INFO",
            "abusedweb merged 3 partial rows from its map phase and 3 raw events into 2 result rows"
        ]])
    );
    assert_rows(
        &assert_result_body_style(&last.body).rows,
        &[
            dns_row(PS, "discord.gg", 2, "", ""),
            dns_row(PS, "pastebin.com", 6, "1700000001.5", "1700000009"),
        ],
    );
}

/// Each forged or mangled partial row: its exact place and reason.
#[test]
fn malformed_partial_rows_are_refused_naming_chunk_row_and_column() {
    let base = || {
        Event::new()
            .set("Image", PS)
            .set("QueryName", "pastebin.com")
            .set("QueryStatus", "0")
            .set("process_name", "powershell.exe")
            .set("QueryResults", "-")
            .set("Computer", "WIN-1")
            .set("abusedweb_count", "2")
            .set("abusedweb_first_time", "10")
            .set("abusedweb_last_time", "20")
    };
    let cases: Vec<(&str, Event, &str, &str)> = vec![
        (
            "negative count",
            base().set("abusedweb_count", "-1"),
            "abusedweb_count",
            "whole number from 1 to 2^64-1, got \"-1\"",
        ),
        (
            "zero count",
            base().set("abusedweb_count", "0"),
            "abusedweb_count",
            "got \"0\"",
        ),
        (
            "leading zero",
            base().set("abusedweb_count", "02"),
            "abusedweb_count",
            "got \"02\"",
        ),
        (
            "non-numeric count",
            base().set("abusedweb_count", "many"),
            "abusedweb_count",
            "got \"many\"",
        ),
        (
            "fractional count",
            base().set("abusedweb_count", "1.5"),
            "abusedweb_count",
            "got \"1.5\"",
        ),
        (
            "count past 2^64",
            base().set("abusedweb_count", "18446744073709551616"),
            "abusedweb_count",
            "2^64-1",
        ),
        (
            "multivalue count",
            base().set_mv("abusedweb_count", &["1", "2"]),
            "abusedweb_count",
            "several values",
        ),
        (
            "time beside partial",
            base().set("_time", "15"),
            "_time",
            "also carries the event column _time",
        ),
        (
            "first after last",
            base().set("abusedweb_first_time", "30"),
            "abusedweb_first_time",
            "impossible",
        ),
        (
            "number and text",
            base().set("abusedweb_last_time", "2024-01-01"),
            "abusedweb_first_time",
            "impossible",
        ),
        (
            "first without last",
            base().set_mv("abusedweb_last_time", &[] as &[&str]),
            "abusedweb_last_time",
            "has abusedweb_first_time but no abusedweb_last_time",
        ),
        (
            "missing by-field",
            base().set_mv("Computer", &[] as &[&str]),
            "Computer",
            "lacks this by-field",
        ),
        (
            "multivalue by-field",
            base().set_mv("QueryName", &["a", "b"]),
            "QueryName",
            "several values in this by-field",
        ),
        (
            "event with partial time",
            dns(PS, "pastebin.com", "5").set("abusedweb_first_time", "5"),
            "abusedweb_first_time",
            "an event row (no abusedweb_count) carries",
        ),
    ];
    let mut columns: Vec<&str> = REQUIRED_FIELDS.to_vec();
    columns.extend(AGGREGATE_COLUMNS);
    for (name, bad, column, why) in cases {
        let rows = [dns(PS, "pastebin.com", "1"), base(), bad];
        for args in [&["distributed=true"][..], &[][..]] {
            let ok = body(&[dns(PS, "x.pastebin.com", "1")]);
            let out = run(args, &[ok, encode_events(&columns, &rows)]);
            eprintln!("case: {name}, args {args:?}");
            assert_fatal(
                &out,
                &[
                    "bad CSV body in chunk 3, row 3 (byte offset ",
                    &format!("column {column}: "),
                    why,
                ],
            );
        }
    }
}

#[test]
fn counts_that_overflow_when_added_are_refused() {
    let mut columns: Vec<&str> = BY_FIELDS.to_vec();
    columns.push("abusedweb_count");
    let row = |n: &str| {
        dns(PS, "pastebin.com", "1")
            .set_mv("_time", &[] as &[&str])
            .set("abusedweb_count", n)
    };
    let rows = [row("18446744073709551615"), row("1")];
    let out = run(&["distributed=true"], &[encode_events(&columns, &rows)]);
    assert_fatal(&out, &["chunk 2, row 2", "overflows"]);
}

#[test]
fn a_forged_map_option_is_an_option_error() {
    let out = run_conversation(bin(), &getinfo(&["phase=map", "patterns=%zz"]), &[] as &[&[u8]]);
    assert_fatal(&out, &["option patterns in the map phase", "percent-encoding"]);
}

/// The request_stream fuzz seeds for the new paths pass the contract both
/// phases are held to.
#[test]
fn fuzz_seeds_for_map_and_reduce_meet_the_reply_contract() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/request_stream");
    for name in ["selector_map", "selector_reduce_partial_rows"] {
        let data = std::fs::read(dir.join(name)).unwrap();
        let input = reply_check::request_stream_input(&data);
        let mut out = Vec::new();
        let code = abusedweb::command::run(&input[..], &mut out);
        let replies = reply_check::check_conversation(&out, code).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(code, 0, "{name}: {:?}", String::from_utf8_lossy(&out));
        assert_eq!(replies.len(), 3, "{name}");
    }
}
