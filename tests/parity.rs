//! Parity: the binary's result equals a deliberately simple reference of the
//! SPL semantics (detection.md section 9, behaviour.md "Semantics") on
//! proptest-generated datasets.
//!
//! The reference below shares no code with `src/` and is written for clarity,
//! not speed: a recursive wildcard matcher over ASCII-lowercased bytes,
//! a BTreeMap keyed by the six by-values (so rows come out sorted), and a
//! literal reading of the min/max rules for `_time`.
//!
//! Datasets: events with random subsets of the seven fields (plus `query` and
//! `host` noise), multivalue fields (with `$`, `;`, `"`, `,`, `\n` inside
//! values and empty elements), case variants and near-miss domains, numeric
//! and non-numeric `_time`; the rows are split over 1..=7 execute chunks
//! (some header-only, some B = 0), each with its own column order, sometimes
//! CRLF line ends and sometimes a missing by-field column.

mod common;
#[path = "common/mapreduce.rs"]
mod mapreduce;

use std::collections::BTreeMap;

use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};

// ---------------------------------------------------------------------------
// Reference semantics
// ---------------------------------------------------------------------------

/// The six patterns of the ESCU search (`""*textbin*""` read as `*textbin*`).
const DEFAULT_PATTERNS: [&str; 6] = [
    "*pastebin*",
    "*textbin*",
    "*ngrok.io*",
    "*discord*",
    "*duckdns.org*",
    "*pasteio.com*",
];

fn ascii_lower(b: &[u8]) -> Vec<u8> {
    b.iter().map(|c| c.to_ascii_lowercase()).collect()
}

/// Splunk wildcard: `*` matches any run of bytes (newlines too), every other
/// byte matches itself. Both sides are already lower-cased.
fn wildcard(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|i| wildcard(rest, &text[i..])),
        Some((c, rest)) => text.first() == Some(c) && wildcard(rest, &text[1..]),
    }
}

/// The non-empty values of a field (empty elements are skipped; absent = none).
fn values<'a>(event: &'a Event, field: &str) -> Vec<&'a [u8]> {
    event
        .get(field)
        .iter()
        .map(Vec::as_slice)
        .filter(|v| !v.is_empty())
        .collect()
}

/// A decimal number: optional `-`, digits, optionally `.` and digits.
fn decimal(text: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(text).ok()?;
    let unsigned = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = match unsigned.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (unsigned, None),
    };
    let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    if digits(int) && frac.is_none_or(digits) {
        s.parse().ok()
    } else {
        None
    }
}

#[derive(Default)]
struct Aggregate {
    count: usize,
    numeric_min: Option<(f64, Vec<u8>)>,
    numeric_max: Option<(f64, Vec<u8>)>,
    text_min: Option<Vec<u8>>,
    text_max: Option<Vec<u8>>,
}

impl Aggregate {
    fn add(&mut self, time: Option<&[u8]>) {
        self.count += 1;
        let Some(t) = time else { return };
        match decimal(t) {
            Some(x) => {
                // on numeric ties the byte-wise smallest text stays
                if self
                    .numeric_min
                    .as_ref()
                    .is_none_or(|(m, mt)| x < *m || (x == *m && t < &mt[..]))
                {
                    self.numeric_min = Some((x, t.to_vec()));
                }
                if self
                    .numeric_max
                    .as_ref()
                    .is_none_or(|(m, mt)| x > *m || (x == *m && t < &mt[..]))
                {
                    self.numeric_max = Some((x, t.to_vec()));
                }
            }
            None => {
                if self.text_min.as_deref().is_none_or(|m| t < m) {
                    self.text_min = Some(t.to_vec());
                }
                if self.text_max.as_deref().is_none_or(|m| t > m) {
                    self.text_max = Some(t.to_vec());
                }
            }
        }
    }

    fn first_last(&self) -> (Vec<u8>, Vec<u8>) {
        match (&self.numeric_min, &self.numeric_max) {
            (Some((_, lo)), Some((_, hi))) => (lo.clone(), hi.clone()),
            _ => (
                self.text_min.clone().unwrap_or_default(),
                self.text_max.clone().unwrap_or_default(),
            ),
        }
    }
}

/// `QueryName IN (patterns) | stats count min(_time) max(_time) by <six> |
/// rename Computer as dest`, over the events in arrival order.
fn reference(events: &[Event], patterns: &[String], field: &str) -> Vec<Vec<Vec<u8>>> {
    let patterns: Vec<Vec<u8>> = patterns.iter().map(|p| ascii_lower(p.as_bytes())).collect();
    let mut groups: BTreeMap<Vec<Vec<u8>>, Aggregate> = BTreeMap::new();
    for event in events {
        let matches = values(event, field)
            .iter()
            .any(|v| patterns.iter().any(|p| wildcard(p, &ascii_lower(v))));
        if !matches {
            continue;
        }
        let by: Vec<Vec<&[u8]>> = BY_FIELDS.iter().map(|f| values(event, f)).collect();
        if by.iter().any(Vec::is_empty) {
            continue;
        }
        let time = values(event, "_time").first().copied();
        // cartesian product over the by-fields, duplicates included
        let mut keys: Vec<Vec<Vec<u8>>> = vec![Vec::new()];
        for vals in &by {
            keys = keys
                .iter()
                .flat_map(|k| {
                    vals.iter().map(move |v| {
                        let mut k = k.clone();
                        k.push(v.to_vec());
                        k
                    })
                })
                .collect();
        }
        for key in keys {
            groups.entry(key).or_default().add(time);
        }
    }
    groups
        .into_iter()
        .map(|(mut key, agg)| {
            let (first, last) = agg.first_last();
            key.push(agg.count.to_string().into_bytes());
            key.push(first);
            key.push(last);
            key
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------

const IMAGES: &[&[u8]] = &[
    br"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
    br"C:\Windows\System32\svchost.exe",
    br"c:\windows\system32\SVCHOST.EXE",
    br#"C:\Users\bob\AppData\Local\Temp\x,y "z".exe"#,
    b" C:\\lead\\space.exe ",
    "C:\\Users\\J\u{fc}rgen\\a.exe".as_bytes(),
    b"C:\\bad\\\xff\xfe.exe",
    b"<unknown process>",
    br"C:\Users\x\Downloads\DiscordSetup.exe",
];

const QUERIES: &[&[u8]] = &[
    b"pastebin.com",
    b"PASTEBIN.COM",
    b"pastebin.co",
    b"pastebinx",
    b"DISCORD.gg",
    b"cdn.discordapp.com",
    b"disc0rd.gg",
    b"ngrok.i0",
    b"abc.ngrok.io",
    b"NGROK.IO",
    b"duckdns.org.evil",
    b"duckdns.or",
    b"aatextbinzz",
    b"textbi.n",
    b"pasteio.com",
    b"pasteio.co",
    b"www.microsoft.com",
    b"a$b;c\"d,e.pastebin",
    b"line\nbreak.pastebin",
    b"$",
    b";",
    b" pastebin.com ",
    b"x.ngrok.io\r\n",
    b"paste bin",
    b"\xffpastebin\xfe",
    b"$$discord$;",
];

const STATUSES: &[&[u8]] = &[b"0", b"9003", b"9502", b" 0"];

const PROCESS_NAMES: &[&[u8]] = &[
    b"powershell.exe",
    b"svchost.exe",
    b"SVCHOST.EXE",
    b"x,y \"z\".exe",
    b"<unknown process>",
];

const RESULTS: &[&[u8]] = &[
    b"-",
    b"type:  5 cdn.discordapp.com;::ffff:162.159.130.233;",
    b"::ffff:104.20.67.143;",
    b"a$$b;\"c\"",
    b"multi\nline;",
];

const COMPUTERS: &[&[u8]] = &[
    b"WIN-1",
    b"win-1",
    b"host,with,comma",
    b" ",
    b"DC01.corp.local",
    b"PASTEBIN-PC",
];

const TIMES: &[&[u8]] = &[
    b"1700000000",
    b"1700000000.500",
    b"1700000000.5",
    b"1699999999.25",
    b"-1",
    b"900",
    b"10000",
    b"2023-09-05T16:46:33.808",
    b"2023-09-05T09:00:00.000",
    b"abc",
];

/// A value list for a field: absent, empty, one value, or a multivalue that may
/// contain empty elements (`allow_empty`) and duplicates.
fn field_values(pool: &'static [&'static [u8]], allow_empty: bool) -> BoxedStrategy<Vec<Vec<u8>>> {
    // Biased towards the first element so that events collide into shared
    // groups (counts > 1, min/max over several times, ties).
    let one = prop_oneof![
        3 => Just(pool[0].to_vec()),
        4 => proptest::sample::select(pool).prop_map(|v| v.to_vec()),
    ];
    let element = if allow_empty {
        prop_oneof![6 => one.clone(), 1 => Just(Vec::new())].boxed()
    } else {
        one.clone().boxed()
    };
    prop_oneof![
        1 => Just(Vec::new()),
        1 => Just(vec![Vec::new()]),
        24 => one.prop_map(|v| vec![v]),
        5 => proptest::collection::vec(element, 2..4),
    ]
    .boxed()
}

fn event() -> impl Strategy<Value = Event> {
    (
        prop_oneof![1 => Just(None), 8 => proptest::sample::select(TIMES).prop_map(Some)],
        field_values(IMAGES, true),
        field_values(QUERIES, true),
        field_values(STATUSES, true),
        field_values(PROCESS_NAMES, true),
        field_values(RESULTS, true),
        field_values(COMPUTERS, true),
        field_values(QUERIES, false),
        prop_oneof![Just(None), Just(Some(b"pastebin.com".as_slice()))],
    )
        .prop_map(|(time, image, query, status, pname, results, computer, alt, host)| {
            let mut e = Event::new();
            if let Some(t) = time {
                e = e.set("_time", t);
            }
            for (f, v) in [
                ("Image", image),
                ("QueryName", query),
                ("QueryStatus", status),
                ("process_name", pname),
                ("QueryResults", results),
                ("Computer", computer),
                ("query", alt),
            ] {
                if !v.is_empty() {
                    e = e.set_mv(f, &v);
                }
            }
            if let Some(h) = host {
                e = e.set("host", h);
            }
            e
        })
}

/// How one execute chunk is laid out.
#[derive(Clone, Debug)]
struct ChunkPlan {
    /// Events taken from the queue (the last chunk takes the rest).
    take: usize,
    /// Sort keys giving this chunk's column order.
    order: Vec<u32>,
    /// Index into BY_FIELDS of a column left out of this chunk (its events lose that field).
    drop: Option<usize>,
    /// An empty chunk is sent with B = 0 instead of a header line.
    empty_b0: bool,
    crlf: bool,
}

fn chunk_plan() -> impl Strategy<Value = ChunkPlan> {
    (
        0usize..8,
        proptest::collection::vec(any::<u32>(), 9),
        prop_oneof![8 => Just(None), 1 => (0usize..6).prop_map(Some)],
        any::<bool>(),
        prop_oneof![4 => Just(false), 1 => Just(true)],
    )
        .prop_map(|(take, order, drop, empty_b0, crlf)| ChunkPlan {
            take,
            order,
            drop,
            empty_b0,
            crlf,
        })
}

#[derive(Clone, Debug)]
struct Case {
    events: Vec<Event>,
    plans: Vec<ChunkPlan>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        proptest::collection::vec(event(), 1..40),
        proptest::collection::vec(chunk_plan(), 1..8),
    )
        .prop_map(|(events, plans)| Case { events, plans })
}

const LITERALS: &[&str] = &[
    "pastebin",
    "PASTEBIN",
    "pastebin.co",
    "paste",
    "bin",
    "discord",
    "DISCORD.gg",
    "ngrok.io",
    ".io",
    "textbin",
    "duckdns.org",
    "com",
    "$",
    ";",
    "j\u{fc}rgen",
    "x.",
    // fragments of the other pools, for `field=Image` / `field=Computer`
    "powershell",
    "SVCHOST.exe",
    "\\system32\\",
    "win-",
    "corp.local",
    "<unknown",
];

/// A wildcard pattern with at least one literal byte (so it never matches an
/// empty value): optional leading `*`, 1-2 literals joined by `*` or nothing,
/// optional trailing `*`.
fn pattern() -> impl Strategy<Value = String> {
    // mostly "contains" shapes (`*x*`), which match often enough to matter
    let mostly = || prop_oneof![3 => Just(true), 1 => Just(false)];
    (
        mostly(),
        proptest::collection::vec(proptest::sample::select(LITERALS), 1..3),
        mostly(),
        mostly(),
    )
        .prop_map(|(lead, lits, join_star, trail)| {
            let mut p = String::new();
            if lead {
                p.push('*');
            }
            p.push_str(&lits.join(if join_star { "*" } else { "" }));
            if trail {
                p.push('*');
            }
            p
        })
        // patterns are space-separated
        .prop_filter("no spaces", |p| !p.contains(' '))
}

fn patterns() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(pattern(), 1..5)
}

// ---------------------------------------------------------------------------
// Running a case
// ---------------------------------------------------------------------------

/// Builds the execute bodies of a case and the events as the command sees
/// them (a dropped column removes that field from the chunk's events).
fn layout(case: &Case) -> (Vec<Vec<u8>>, Vec<Event>) {
    let mut queue = case.events.clone();
    queue.reverse();
    let mut bodies = Vec::new();
    let mut seen = Vec::new();
    for (i, plan) in case.plans.iter().enumerate() {
        let n = if i + 1 == case.plans.len() {
            queue.len()
        } else {
            plan.take.min(queue.len())
        };
        let mut events: Vec<Event> = (0..n).map(|_| queue.pop().unwrap()).collect();
        let mut columns: Vec<String> = REQUIRED_FIELDS
            .iter()
            .map(|s| s.to_string())
            .chain(["query".to_string(), "host".to_string()])
            .collect();
        if let Some(d) = plan.drop {
            let dropped = BY_FIELDS[d];
            columns.retain(|c| c != dropped);
            for e in &mut events {
                e.fields.retain(|(f, _)| f != dropped);
            }
        }
        let mut keyed: Vec<(u32, String)> = columns.into_iter().zip(&plan.order).map(|(c, k)| (*k, c)).collect();
        keyed.sort();
        let columns: Vec<String> = keyed.into_iter().map(|(_, c)| c).collect();
        let style = CsvStyle {
            line_end: if plan.crlf { b"\r\n" } else { b"\n" },
            mv_columns: true,
        };
        let body = if events.is_empty() && plan.empty_b0 {
            Vec::new()
        } else {
            encode_events_with(&columns, &events, &style)
        };
        bodies.push(body);
        seen.extend(events);
    }
    (bodies, seen)
}

fn check(case: &Case, patterns: Option<&[String]>, field: Option<&str>) -> Result<(), TestCaseError> {
    let mut args: Vec<String> = Vec::new();
    if let Some(p) = patterns {
        args.push(format!("patterns={}", p.join(" ")));
    }
    if let Some(f) = field {
        args.push(format!("field={f}"));
    }
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let (bodies, seen) = layout(case);
    let out = run(&arg_refs, &bodies);
    let table = assert_success(&out, &arg_refs, bodies.len());
    let default: Vec<String> = DEFAULT_PATTERNS.iter().map(|s| s.to_string()).collect();
    let expected = reference(&seen, patterns.unwrap_or(&default), field.unwrap_or("QueryName"));
    prop_assert!(
        table.rows == expected,
        "args {:?}\nbinary:    {:#?}\nreference: {:#?}",
        args,
        show(&table.rows),
        show(&expected)
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// Distributed: map phases on simulated indexers, splunkd's re-encoding, reduce
// ---------------------------------------------------------------------------

/// How a case's events are spread over indexers and phases.
#[derive(Clone, Debug)]
struct Spread {
    /// Indexer of each event (taken modulo the indexer count).
    indexer_of: Vec<u8>,
    indexers: u8,
    /// Events per map request, cycled (each indexer's last request takes the rest).
    map_chunk: Vec<usize>,
    how: mapreduce::Reencode,
}

fn spread() -> impl Strategy<Value = Spread> {
    (
        proptest::collection::vec(any::<u8>(), 40),
        1u8..=8,
        proptest::collection::vec(0usize..12, 1..4),
        proptest::collection::vec(any::<u32>(), 9),
        proptest::collection::vec(any::<u32>(), 1..50),
        proptest::collection::vec(0usize..20, 1..5),
        prop_oneof![4 => Just(false), 1 => Just(true)],
    )
        .prop_map(
            |(indexer_of, indexers, map_chunk, column_order, row_order, chunk_rows, crlf)| Spread {
                indexer_of,
                indexers,
                map_chunk,
                how: mapreduce::Reencode {
                    column_order,
                    row_order,
                    chunk_rows,
                    crlf,
                },
            },
        )
}

/// The same events through one process (`distributed=false`) and through map
/// processes on `spread.indexers` indexers whose output splunkd re-encodes for
/// the reduce (`distributed=true`): the rows must be equal, and equal to the
/// reference.
fn check_distributed(case: &Case, spread: &Spread, args: &[String]) -> Result<(), TestCaseError> {
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let (bodies, seen) = layout(case);
    let single = assert_success(&run(&arg_refs, &bodies), &arg_refs, bodies.len()).rows;

    let mut dist_args = arg_refs.clone();
    dist_args.push("distributed=true");
    let preop = mapreduce::reduce_preop(&dist_args);
    let columns: Vec<String> = REQUIRED_FIELDS
        .iter()
        .map(|s| s.to_string())
        .chain(["query".to_string(), "host".to_string()])
        .collect();
    let mut tables = Vec::new();
    let mut metrics = (0u64, 0u64);
    for idx in 0..spread.indexers {
        let mine: Vec<Event> = seen
            .iter()
            .enumerate()
            .filter(|(i, _)| spread.indexer_of[i % spread.indexer_of.len()] % spread.indexers == idx)
            .map(|(_, e)| e.clone())
            .collect();
        let mut map_bodies = Vec::new();
        let mut rest = &mine[..];
        for (i, n) in spread.map_chunk.iter().cycle().enumerate() {
            let last = rest.len() <= *n || i >= 8;
            let take = if last { rest.len() } else { *n };
            map_bodies.push(encode_events(&columns, &rest[..take]));
            rest = &rest[take..];
            if last {
                break;
            }
        }
        let (t, meta) = mapreduce::run_map(&preop, &map_bodies);
        let m = &meta["inspector"]["metric.abusedweb.map"];
        prop_assert_eq!(m[2].as_u64(), Some(mine.len() as u64), "events in: {}", meta);
        prop_assert_eq!(
            m[3].as_u64(),
            Some(t.iter().map(|t| t.rows.len() as u64).sum::<u64>()),
            "partial rows out: {}",
            meta
        );
        metrics.0 += t.iter().map(|t| t.rows.len() as u64).sum::<u64>();
        tables.extend(t);
        metrics.1 += mine.len() as u64;
    }
    prop_assert_eq!(metrics.1, seen.len() as u64);
    let reduce_bodies = mapreduce::reencode(&tables, &spread.how);
    let out = run_conversation(bin(), &getinfo(&dist_args), &reduce_bodies);
    prop_assert_eq!(out.code(), Some(0), "reduce: {}", out.describe());
    let last = out.replies.last().unwrap();
    prop_assert_eq!(last.finished(), Some(true), "reduce: {}", out.describe());
    prop_assert!(last.error().is_none(), "reduce: {}", out.describe());
    let merge = &last.meta["inspector"]["metric.abusedweb.merge"];
    prop_assert_eq!(merge[2].as_u64(), Some(metrics.0), "partial rows merged: {}", last.meta);
    let raw_events = &last.meta["inspector"]["metric.abusedweb.match"][2];
    prop_assert_eq!(raw_events.as_u64(), Some(0), "raw events: {}", last.meta);
    let distributed = if last.b == 0 {
        Vec::new()
    } else {
        assert_result_body_style(&last.body).rows
    };
    prop_assert!(
        distributed == single,
        "args {:?} over {} indexers\ndistributed: {:#?}\nsingle:      {:#?}",
        args,
        spread.indexers,
        show(&distributed),
        show(&single)
    );
    let default: Vec<String> = DEFAULT_PATTERNS.iter().map(|s| s.to_string()).collect();
    let patterns: Vec<String> = args
        .iter()
        .find_map(|a| a.strip_prefix("patterns="))
        .map(|p| p.split_whitespace().map(str::to_string).collect())
        .unwrap_or(default);
    let field = args
        .iter()
        .find_map(|a| a.strip_prefix("field="))
        .unwrap_or("QueryName");
    prop_assert!(reference(&seen, &patterns, field) == single, "single vs reference");
    Ok(())
}

/// Any subset of the options besides `distributed`, with values that keep the
/// search within its caps.
fn option_args() -> impl Strategy<Value = Vec<String>> {
    (
        prop_oneof![Just(None), patterns().prop_map(Some)],
        prop_oneof![
            Just(None),
            proptest::sample::select(&["query", "Image", "QueryName", "Computer", "host"][..]).prop_map(Some)
        ],
        prop_oneof![Just(None), (500usize..100_000).prop_map(Some)],
        prop_oneof![Just(None), (1_000_000u64..2_000_000).prop_map(Some)],
    )
        .prop_map(|(p, f, g, c)| {
            let mut args = Vec::new();
            if let Some(p) = p {
                args.push(format!("patterns={}", p.join(" ")));
            }
            if let Some(f) = f {
                args.push(format!("field={f}"));
            }
            if let Some(g) = g {
                args.push(format!("max_groups={g}"));
            }
            if let Some(c) = c {
                args.push(format!("max_chunk_bytes={c}"));
            }
            args
        })
}

fn config() -> Config {
    Config {
        // 64 keeps `cargo test` fast; PROPTEST_CASES=5000 for a deeper hunt.
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(64),
        max_shrink_iters: 256,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn parity_default_patterns(case in case()) {
        check(&case, None, None)?;
    }

    #[test]
    fn parity_random_patterns(case in case(), pats in patterns()) {
        check(&case, Some(&pats), None)?;
    }

    #[test]
    fn parity_field_option(
        case in case(),
        pats in prop_oneof![Just(None), patterns().prop_map(Some)],
        field in proptest::sample::select(&["query", "Image", "QueryName", "Computer", "host"][..]),
    ) {
        check(&case, pats.as_deref(), Some(field))?;
    }

    #[test]
    fn distributed_equals_single_process_default_options(case in case(), spread in spread()) {
        check_distributed(&case, &spread, &[])?;
    }

    #[test]
    fn distributed_equals_single_process_any_options(case in case(), spread in spread(), args in option_args()) {
        check_distributed(&case, &spread, &args)?;
    }
}

// ---------------------------------------------------------------------------
// The reference itself, on hand-checked inputs
// ---------------------------------------------------------------------------

#[test]
fn reference_wildcard_shapes() {
    let m = |p: &str, t: &str| wildcard(&ascii_lower(p.as_bytes()), &ascii_lower(t.as_bytes()));
    assert!(m("*pastebin*", "PASTEBIN.COM"));
    assert!(m("pastebin*", "pastebin.com"));
    assert!(!m("pastebin*", "www.pastebin.com"));
    assert!(m("*.ngrok.io", ".ngrok.io"));
    assert!(!m("*.ngrok.io", "ngrok.io"));
    assert!(m("cdn.*.com", "cdn..com"));
    assert!(m("*evil*", "a\nevil\nb"));
    assert!(!m("paste?bin", "pastexbin"));
    assert!(!m("*j\u{fc}rgen*", "J\u{dc}RGEN"));
}

#[test]
fn reference_time_rules() {
    let mut a = Aggregate::default();
    for t in ["abc", "1700000000.500", "900", "1700000000.5", "10000"] {
        a.add(Some(t.as_bytes()));
    }
    a.add(None);
    assert_eq!(a.count, 6);
    // numeric ties keep the byte-wise smallest text, whatever the order
    assert_eq!(a.first_last(), (b"900".to_vec(), b"1700000000.5".to_vec()));
    let mut b = Aggregate::default();
    for t in ["zz", "2023-01-01", "abc"] {
        b.add(Some(t.as_bytes()));
    }
    assert_eq!(b.first_last(), (b"2023-01-01".to_vec(), b"zz".to_vec()));
    assert_eq!(decimal(b"-1"), Some(-1.0));
    assert_eq!(decimal(b"1."), None);
    assert_eq!(decimal(b"1e5"), None);
}

#[test]
fn reference_groups_cartesian_with_duplicates() {
    let e = Event::new()
        .set("_time", "5")
        .set("Image", "I")
        .set_mv("QueryName", &["pastebin.com", "pastebin.com", "", "other"])
        .set("QueryStatus", "0")
        .set("process_name", "p")
        .set_mv("QueryResults", &["r1", "r2"])
        .set("Computer", "C");
    let default: Vec<String> = DEFAULT_PATTERNS.iter().map(|s| s.to_string()).collect();
    let rows = reference(&[e], &default, "QueryName");
    let counts: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| {
            (
                String::from_utf8(r[1].clone()).unwrap(),
                String::from_utf8(r[4].clone()).unwrap(),
                String::from_utf8(r[6].clone()).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        counts,
        vec![
            ("other".into(), "r1".into(), "1".into()),
            ("other".into(), "r2".into(), "1".into()),
            ("pastebin.com".into(), "r1".into(), "2".into()),
            ("pastebin.com".into(), "r2".into(), "2".into()),
        ]
    );
}
