//! Criterion micro benchmarks of abusedweb's inner loops, on bodies from the
//! same generator as `make bench` (benches/genstream.rs):
//!
//! * `body_scan`: decoding one 50,000-row execute body with the crate's
//!   [`Decoder`], next to two floors that are not abusedweb: splitting rows
//!   only (memchr for line ends plus a quote count), and searching the whole
//!   body for the six patterns at once (Aho-Corasick, ASCII case-insensitive)
//!   the way ripgrep searches a buffer before it looks for lines. Together
//!   they bound what a scan that parses only candidate rows could reach;
//! * `matcher`: [`PatternSet::is_match`] over the QueryName values of a
//!   chunk, for 6 to 100,000 patterns;
//! * `aggregation`: [`Stats::add`] for the memberships of 10^6 events at 20%
//!   match, into a fresh table (every group inserted once) and into a full one
//!   (lookups only, the steady state), for 800 (realistic) and 100,000 groups,
//!   and the result rows of those groups sorted, measured and written;
//! * `end_to_end`: [`command::run`] over a whole 10^5-event request stream.
//!
//! `cargo bench --bench micro`; `benches/run.py` runs it and copies the
//! medians into RESULTS.md.

use abusedweb::codec::body::Decoder;
use abusedweb::command;
use abusedweb::engine::aggregate::{Stats, Time};

/// By-fields of the default (ESCU v1-v4) search.
const KEY_FIELDS: usize = 6;
use abusedweb::engine::wildcard::PatternSet;
use aho_corasick::{AhoCorasick, AhoCorasickKind};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;

#[allow(dead_code)]
#[path = "genstream.rs"]
mod genstream;

/// `_time`, then the six by-fields, as the command asks for them.
const FIELDS: [&str; 7] = [
    "_time",
    "Image",
    "QueryName",
    "QueryStatus",
    "process_name",
    "QueryResults",
    "Computer",
];
const QUERY_NAME: usize = 2;

fn stream(args: &genstream::Args) -> Vec<u8> {
    let mut out = Vec::new();
    genstream::generate(args, &mut out).expect("writing to memory");
    out
}

/// The bodies of a request stream's execute chunks.
fn bodies(mut s: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while !s.is_empty() {
        let nl = s.iter().position(|&b| b == b'\n').expect("chunk header line");
        let header = std::str::from_utf8(&s[..nl]).expect("ASCII header");
        let lens: Vec<usize> = header["chunked 1.0,".len()..]
            .split(',')
            .map(|n| n.parse().expect("length"))
            .collect();
        let body_start = nl + 1 + lens[0];
        if lens[1] > 0 {
            out.push(&s[body_start..body_start + lens[1]]);
        }
        s = &s[body_start + lens[1]..];
    }
    out
}

/// Every value of every wanted field of every row of `body`.
fn rows(body: &[u8]) -> Vec<Vec<Vec<Vec<u8>>>> {
    let mut decoder = Decoder::new(&FIELDS);
    let mut rows = Vec::new();
    decoder
        .decode(body, 2, 0, |row| {
            rows.push(
                (0..FIELDS.len())
                    .map(|i| {
                        row.field(i)
                            .values()
                            .map(|v| v.expect("valid __mv_").into_owned())
                            .collect()
                    })
                    .collect(),
            );
            Ok(())
        })
        .expect("generated bodies decode");
    rows
}

/// Floor for a body scan: find each row's end with memchr, skipping line
/// ends inside quotes by counting the quotes before them. Returns the rows.
fn split_rows(body: &[u8]) -> usize {
    let mut rows = 0;
    let mut start = 0;
    let mut quotes = 0usize;
    for nl in memchr::memchr_iter(b'\n', body) {
        quotes += memchr::memchr_iter(b'"', &body[start..nl]).count();
        start = nl;
        if quotes.is_multiple_of(2) {
            rows += 1;
        }
    }
    rows
}

/// Every ASCII case variant of the first `n` bytes of each literal.
fn case_variant_prefixes(literals: &[String], n: usize) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for l in literals {
        let prefix = &l.as_bytes()[..n.min(l.len())];
        let mut variants: Vec<Vec<u8>> = vec![Vec::new()];
        for &b in prefix {
            let cases = if b.is_ascii_alphabetic() {
                vec![b.to_ascii_lowercase(), b.to_ascii_uppercase()]
            } else {
                vec![b]
            };
            variants = variants
                .iter()
                .flat_map(|v| cases.iter().map(move |&c| [v.as_slice(), &[c]].concat()))
                .collect();
        }
        for v in variants {
            if !out.contains(&v) {
                out.push(v);
            }
        }
    }
    out
}

fn body_scan(c: &mut Criterion) {
    let s = stream(&genstream::Args::realistic(50_000, 0.01));
    let body = bodies(&s)[0];
    let mut g = c.benchmark_group("body_scan");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("decoder, 50k rows, read QueryName", |b| {
        let mut decoder = Decoder::new(&FIELDS);
        b.iter(|| {
            let mut n = 0usize;
            decoder
                .decode(black_box(body), 2, 0, |row| {
                    n += row.field(QUERY_NAME).values().count();
                    Ok(())
                })
                .unwrap();
            n
        })
    });
    g.bench_function("floor: memchr row split + quote count", |b| {
        b.iter(|| split_rows(black_box(body)))
    });
    let literals: Vec<String> = genstream::patterns(6, 1).iter().map(|p| p.replace('*', "")).collect();
    let ac = AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .kind(Some(AhoCorasickKind::DFA))
        .build(&literals)
        .expect("six literals");
    g.bench_function("floor: whole-body Aho-Corasick DFA, 6 literals", |b| {
        b.iter(|| ac.find_iter(black_box(body)).count())
    });
    // SIMD (Teddy) search for every case variant of each literal's first
    // three bytes, each candidate then verified case-insensitively.
    let prefixes = case_variant_prefixes(&literals, 3);
    let teddy = aho_corasick::packed::Searcher::new(prefixes.iter()).expect("Teddy is available on x86_64");
    g.bench_function("floor: whole-body Teddy on case-variant prefixes + verify", |b| {
        b.iter(|| {
            let body = black_box(body);
            teddy
                .find_iter(body)
                .filter(|m| {
                    literals.iter().any(|l| {
                        body.len() - m.start() >= l.len()
                            && body[m.start()..m.start() + l.len()].eq_ignore_ascii_case(l.as_bytes())
                    })
                })
                .count()
        })
    });
    g.finish();
}

fn matcher(c: &mut Criterion) {
    let s = stream(&genstream::Args::realistic(50_000, 0.01));
    let values: Vec<Vec<u8>> = rows(bodies(&s)[0])
        .into_iter()
        .flat_map(|mut r| std::mem::take(&mut r[QUERY_NAME]))
        .collect();
    let mut g = c.benchmark_group("matcher");
    g.throughput(Throughput::Elements(values.len() as u64));
    for k in [6usize, 100, 1_000, 10_000, 100_000] {
        let set = PatternSet::new(&genstream::patterns(k, 1)).expect("patterns compile");
        g.bench_with_input(BenchmarkId::new("QueryName values, patterns", k), &set, |b, set| {
            b.iter(|| values.iter().filter(|v| set.is_match(v)).count())
        });
    }
    g.finish();
}

/// The (key, time) memberships the matching events of `args` produce.
fn memberships(args: &genstream::Args) -> Vec<([Vec<u8>; KEY_FIELDS], Vec<u8>)> {
    let set = PatternSet::new(&genstream::patterns(6, 1)).unwrap();
    let s = stream(args);
    let mut out = Vec::new();
    for body in bodies(&s) {
        for row in rows(body) {
            if !row[QUERY_NAME].iter().any(|v| set.is_match(v)) || row[1..].iter().any(Vec::is_empty) {
                continue;
            }
            // Only QueryName is ever multivalue in these streams.
            for q in &row[QUERY_NAME] {
                let key = std::array::from_fn(|i| {
                    if i + 1 == QUERY_NAME {
                        q.clone()
                    } else {
                        row[i + 1][0].clone()
                    }
                });
                out.push((key, row[0][0].clone()));
            }
        }
    }
    out
}

fn add_all(stats: &mut Stats, members: &[([Vec<u8>; KEY_FIELDS], Vec<u8>)]) {
    for (key, time) in members {
        let key: [&[u8]; KEY_FIELDS] = std::array::from_fn(|i| key[i].as_slice());
        stats.add(&key, &[Time::new(time)]).unwrap();
    }
}

fn aggregation(c: &mut Criterion) {
    let mut g = c.benchmark_group("aggregation");
    g.sample_size(20);
    for (name, pool, hosts) in [("800 groups", 800, 400), ("100k groups", 100_000, 5_000)] {
        let mut args = genstream::Args::realistic(1_000_000, 0.20);
        (args.groups, args.hosts) = (pool, hosts);
        let members = memberships(&args);
        g.throughput(Throughput::Elements(members.len() as u64));
        g.bench_function(BenchmarkId::new("fresh table", name), |b| {
            b.iter(|| {
                let mut stats = Stats::new(1_000_000, KEY_FIELDS);
                add_all(&mut stats, &members);
                stats.groups()
            })
        });
        let mut full = Stats::new(1_000_000, KEY_FIELDS);
        add_all(&mut full, &members);
        g.bench_function(BenchmarkId::new("full table", name), |b| {
            b.iter(|| {
                add_all(&mut full, &members);
                full.groups()
            })
        });
        // The result: sort the groups, measure and write their rows.
        let mut out = Vec::new();
        g.bench_function(BenchmarkId::new("sort and write the rows", name), |b| {
            b.iter(|| {
                out.clear();
                command::write_results(&full, &command::RESULT_COLUMNS, &mut out)
            })
        });
    }
    g.finish();
}

fn end_to_end(c: &mut Criterion) {
    let s = stream(&genstream::Args::realistic(100_000, 0.01));
    let mut g = c.benchmark_group("end_to_end");
    g.sample_size(20);
    g.throughput(Throughput::Bytes(s.len() as u64));
    g.bench_function("command::run, 10^5 events, 1% match", |b| {
        let mut out = Vec::new();
        b.iter(|| {
            out.clear();
            assert_eq!(command::run(black_box(&s[..]), &mut out), 0);
            out.len()
        })
    });
    g.finish();
}

criterion_group!(benches, body_scan, matcher, aggregation, end_to_end);
criterion_main!(benches);
