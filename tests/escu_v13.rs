//! `escu_version=13` against a deliberately simple reference of ESCU v13's
//! search (../shared/docs/detection.md section 9, rules 6-10), over
//! property-generated events carrying the Sysmon add-on's CIM fields as
//! section 6 derives them: multivalue `answer` split from QueryResults,
//! `answer`/`answer_count` sometimes absent (they become `none`/`0`),
//! `user_id` or `dvc` sometimes absent (the event is dropped), `query`
//! multivalue when QueryName is; random chunking. Shares no code with src/.

mod common;
#[path = "common/mapreduce.rs"]
mod mapreduce;

use std::collections::BTreeMap;

use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};
use serde_json::json;

/// Upstream's 35 patterns, verbatim and in order (detection.md section 9).
const V13_PATTERNS: [&str; 35] = [
    "*//objects.githubusercontent.com*",
    "*anonfiles.com*",
    "*.argotunnel.com*",
    "*cdn.discordapp.com*",
    "*ddns.net*",
    "*dl.dropboxusercontent.com*",
    "*duckdns.org*",
    "*ghostbin.co*",
    "*glitch.me*",
    "*gofile.io*",
    "*hastebin.com*",
    "*mediafire.com*",
    "*mega.nz*",
    "*ngrok.io*",
    "*onrender.com*",
    "*pages.dev*",
    "*paste.ee*",
    "*pastebin.com*",
    "*pastebin.pl*",
    "*pasteio.com*",
    "*pastetext.net*",
    "*privatlab.com*",
    "*privatlab.net*",
    "*send.exploit.in*",
    "*sendspace.com*",
    "*storage.googleapis.com*",
    "*storjshare.io*",
    "*supabase.co*",
    "*temp.sh*",
    "*textbin*",
    "*transfer.sh*",
    "*trycloudflare.com*",
    "*ufile.io*",
    "*w3spaces.com*",
    "*workers.dev*",
];

/// The 17 by-fields as the input names them (`dvc`, renamed `dest`).
const INPUTS: [&str; 17] = [
    "answer",
    "answer_count",
    "dvc",
    "process_exec",
    "process_guid",
    "process_name",
    "query",
    "query_count",
    "reply_code_id",
    "signature",
    "signature_id",
    "src",
    "user_id",
    "vendor_product",
    "QueryName",
    "QueryResults",
    "QueryStatus",
];

fn columns() -> Vec<String> {
    let mut c: Vec<String> = INPUTS.iter().map(|s| s.to_string()).collect();
    c[2] = "dest".into();
    c.extend(["firstTime", "lastTime", "count"].map(String::from));
    c
}

fn glob(p: &[u8], t: &[u8]) -> bool {
    match p.split_first() {
        None => t.is_empty(),
        Some((b'*', rest)) => (0..=t.len()).any(|i| glob(rest, &t[i..])),
        Some((c, rest)) => t.first().is_some_and(|x| x.eq_ignore_ascii_case(c)) && glob(rest, &t[1..]),
    }
}

fn number(t: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(t).ok()?;
    let body = s.strip_prefix('-').unwrap_or(s);
    let ok = !body.is_empty()
        && body.split('.').count() <= 2
        && body
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    ok.then(|| s.parse().ok()).flatten()
}

/// Rules 6-10, literally.
fn reference(events: &[Event]) -> Vec<Vec<Vec<u8>>> {
    // group key -> (count, every _time value of its memberships)
    type Groups = BTreeMap<Vec<Vec<u8>>, (usize, Vec<Vec<u8>>)>;
    let mut groups = Groups::new();
    for e in events {
        let vals = |f: &str| -> Vec<Vec<u8>> { e.get(f).iter().filter(|v| !v.is_empty()).cloned().collect() };
        if !vals("QueryName")
            .iter()
            .any(|q| V13_PATTERNS.iter().any(|p| glob(p.as_bytes(), q)))
        {
            continue;
        }
        let mut by: Vec<Vec<Vec<u8>>> = INPUTS.iter().map(|f| vals(f)).collect();
        if by[0].is_empty() {
            by[0] = vec![b"none".to_vec()];
        }
        if by[1].is_empty() {
            by[1] = vec![b"0".to_vec()];
        }
        if by.iter().any(Vec::is_empty) {
            continue;
        }
        let mut keys: Vec<Vec<Vec<u8>>> = vec![vec![]];
        for values in &by {
            keys = keys
                .iter()
                .flat_map(|k| values.iter().map(move |v| [k.clone(), vec![v.clone()]].concat()))
                .collect();
        }
        for key in keys {
            let g = groups.entry(key).or_default();
            g.0 += 1;
            g.1.extend(vals("_time"));
        }
    }
    groups
        .into_iter()
        .map(|(mut key, (count, times))| {
            let nums: Vec<(f64, &Vec<u8>)> = times.iter().filter_map(|t| number(t).map(|n| (n, t))).collect();
            let pick =
                |less: bool| -> Vec<u8> {
                    if nums.is_empty() {
                        let it = times.iter();
                        return if less { it.min() } else { it.max() }.cloned().unwrap_or_default();
                    }
                    let best = nums.iter().map(|(n, _)| *n).fold(
                        if less { f64::INFINITY } else { f64::NEG_INFINITY },
                        |a, b| if less { a.min(b) } else { a.max(b) },
                    );
                    nums.iter()
                        .filter(|(n, _)| *n == best)
                        .map(|(_, t)| (*t).clone())
                        .min()
                        .unwrap()
                };
            key.push(pick(true));
            key.push(pick(false));
            key.push(count.to_string().into_bytes());
            key
        })
        .collect()
}

const QUERIES: &[&str] = &[
    "cdn.discordapp.com",
    "CDN.DiscordApp.com",
    "discord.gg",
    "x.trycloudflare.com",
    "abc.ngrok.io",
    "pastebin.com",
    "pastebin.co",
    "raw.objects.githubusercontent.com",
    "tunnel.argotunnel.com",
    "www.microsoft.com",
    "aatextbinzz",
];
const RESULTS: &[&str] = &[
    "type:  5 cdn.discordapp.com;::ffff:162.159.130.233;",
    "::ffff:104.20.67.143;::ffff:172.67.34.170;",
    "-",
];

/// An event as the add-on extracts it (section 6), with optional fields dropped.
fn event() -> impl Strategy<Value = Event> {
    (
        proptest::collection::vec(proptest::sample::select(QUERIES), 1..3),
        proptest::sample::select(RESULTS),
        proptest::sample::select(
            &[
                "C:\\Windows\\System32\\svchost.exe",
                "C:\\Users\\a\\x.exe",
                "<unknown process>",
            ][..],
        ),
        proptest::sample::select(&["WIN-1", "DC01.corp.local"][..]),
        proptest::sample::select(&["0", "9003"][..]),
        prop_oneof![
            Just(None),
            Just(Some("1700000000")),
            Just(Some("1700000000.50")),
            Just(Some("1700000000.5")),
            Just(Some("900"))
        ],
        proptest::collection::vec(any::<bool>(), 4),
    )
        .prop_map(|(queries, results, image, host, status, time, drop)| {
            let basename = image.rsplit('\\').next().unwrap().to_string();
            let answers: Vec<String> = results
                .split(';')
                .filter(|a| !a.is_empty() && *a != "-")
                .map(|a| a.rsplit(' ').next().unwrap().to_string())
                .collect();
            let mut e = Event::new()
                .set_mv("QueryName", &queries)
                .set_mv("query", &queries)
                .set("query_count", queries.len().to_string())
                .set("QueryResults", results)
                .set("QueryStatus", status)
                .set("reply_code_id", status)
                .set("process_name", &basename)
                .set("process_exec", &basename)
                .set("process_guid", "{6a2c3f28-4b1e-6553-d800-000000000d00}")
                .set("signature", "DNSEvent (DNS query)")
                .set("signature_id", "22")
                .set("src", host)
                .set("vendor_product", "Microsoft Sysmon")
                .set("Image", image)
                // a stray `dest` must not be read: v13 renames dvc
                .set("dest", "not-the-dest");
            if let Some(t) = time {
                e = e.set("_time", t);
            }
            if !answers.is_empty() && !drop[0] {
                e = e
                    .set_mv("answer", &answers)
                    .set("answer_count", answers.len().to_string());
            }
            if !drop[1] || !drop[2] {
                e = e.set("dvc", host);
            }
            if !drop[3] || !drop[2] {
                e = e.set("user_id", "S-1-5-18");
            }
            e
        })
}

fn all_columns() -> Vec<String> {
    let mut c: Vec<String> = INPUTS.iter().map(|s| s.to_string()).collect();
    c.extend(["_time", "Image", "dest"].map(String::from));
    c
}

fn run_v13(bodies: &[Vec<u8>], extra: &[&str]) -> (Vec<String>, Vec<Vec<Vec<u8>>>, serde_json::Value) {
    let mut args = vec!["escu_version=13"];
    args.extend(extra);
    let out = run(&args, bodies);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert!(out.stderr.is_empty(), "{}", out.describe());
    let last = out.replies.last().unwrap();
    assert_eq!(last.finished(), Some(true), "{}", out.describe());
    let t = if last.b == 0 { Table::default() } else { last.table() };
    (t.header_names(), t.rows, out.replies[0].meta.clone())
}

fn config() -> Config {
    Config {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(64),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn escu_v13_equals_the_reference(events in proptest::collection::vec(event(), 1..30), cuts in proptest::collection::vec(0usize..30, 0..4)) {
        let mut cuts = cuts;
        cuts.push(events.len());
        cuts.sort();
        let mut bodies = Vec::new();
        let mut from = 0;
        for c in cuts {
            let c = c.min(events.len());
            if c >= from {
                bodies.push(encode_events(&all_columns(), &events[from..c]));
                from = c;
            }
        }
        let (header, rows, _) = run_v13(&bodies, &[]);
        let expected = reference(&events);
        if !expected.is_empty() {
            prop_assert_eq!(header, columns());
        }
        prop_assert!(rows == expected, "binary {:#?}\nreference {:#?}", show(&rows), show(&expected));
    }
}

#[test]
fn v13_asks_for_the_cim_fields_and_never_for_dest() {
    let out = run(&["escu_version=13"], &[]);
    let want: Vec<&str> = ["_time"].into_iter().chain(INPUTS).collect();
    assert_eq!(
        out.replies[0].meta,
        json!({"type": "reporting", "required_fields": want})
    );
}

#[test]
fn v13_coalesces_answer_and_answer_count_and_drops_events_without_dvc() {
    let base = || {
        let mut e = Event::new().set("_time", "5");
        for f in INPUTS {
            e = e.set(f, format!("v-{f}"));
        }
        e.set("QueryName", "cdn.discordapp.com")
            .set("query", "cdn.discordapp.com")
    };
    let events = [
        base()
            .set_mv("answer", &[] as &[&str])
            .set_mv("answer_count", &[] as &[&str]),
        base().set_mv("answer", &["", ""]),
        base().set_mv("dvc", &[] as &[&str]),
        base().set_mv("user_id", &[] as &[&str]),
        base().set("QueryName", "discord.gg").set("query", "discord.gg"),
    ];
    let (header, rows, _) = run_v13(&[encode_events(&all_columns(), &events)], &[]);
    assert_eq!(header, columns());
    let answers: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| {
            let s = |i: usize| String::from_utf8_lossy(&r[i]).into_owned();
            (s(0), s(1), s(19))
        })
        .collect();
    assert_eq!(
        answers,
        [
            ("none".into(), "0".into(), "1".into()),
            ("none".into(), "v-answer_count".into(), "1".into())
        ]
    );
    assert_eq!(rows[0][2], b"v-dvc", "dest is dvc's value");
}

#[test]
fn v13_distributed_gives_the_same_rows() {
    let events: Vec<Event> = (0..40)
        .map(|i| {
            let mut e = Event::new().set("_time", format!("{}", 1_700_000_000 + i));
            for f in INPUTS {
                e = e.set(f, format!("{f}-{}", i % 3));
            }
            let q = ["cdn.discordapp.com", "x.ngrok.io", "example.com"][i % 3];
            let e = e.set("QueryName", q).set("query", q);
            if i % 5 == 0 {
                e.set_mv("answer", &[] as &[&str])
            } else {
                e
            }
        })
        .collect();
    let body = encode_events(&all_columns(), &events);
    let (_, single, _) = run_v13(std::slice::from_ref(&body), &[]);
    let preop = mapreduce::reduce_preop_with(&["escu_version=13", "distributed=true"], &INPUTS);
    assert!(
        preop.contains("escu_version=\"13\"") && preop.contains("list=\"escu_v13\""),
        "{preop}"
    );
    let (tables, _) = mapreduce::run_map_with(&preop, &[body], &INPUTS);
    let how = mapreduce::Reencode {
        column_order: vec![3, 1, 2],
        row_order: vec![2, 1],
        chunk_rows: vec![3],
        crlf: false,
    };
    let reduce_bodies = mapreduce::reencode_with(&tables, &how, &INPUTS);
    let (_, merged, _) = run_v13(&reduce_bodies, &["distributed=true"]);
    assert!(!single.is_empty());
    assert_rows(&merged, &single);
}

#[test]
fn another_list_labels_rows_with_category_and_matched_pattern() {
    let q = ["cdn.discordapp.com", "x.ngrok.io"];
    let events: Vec<Event> = q
        .iter()
        .map(|q| {
            let mut e = Event::new().set("_time", "1");
            for f in INPUTS {
                e = e.set(f, "v");
            }
            e.set("QueryName", *q).set("query", *q)
        })
        .collect();
    let (header, rows, _) = run_v13(&[encode_events(&all_columns(), &events)], &["list=extended"]);
    assert_eq!(
        header[17..],
        ["firstTime", "lastTime", "count", "category", "matched_pattern"]
    );
    let labels: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                String::from_utf8_lossy(&r[20]).into_owned(),
                String::from_utf8_lossy(&r[21]).into_owned(),
            )
        })
        .collect();
    assert_eq!(labels[0], ("chat".to_string(), "*cdn.discordapp.com*".to_string()));
    assert_eq!(labels[1].0, "tunnel");
}
