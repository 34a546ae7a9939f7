//! The scan front-end's command line, the loop feeding the engine, and the
//! three output formats.

use super::{read, record};
use crate::command::lists::Lists;
use crate::command::options::Options;
use crate::engine::{Engine, EventError, Origin};
use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use read::{Item, Unread};
use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// Output format of the result rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// An aligned text table, firstTime/lastTime in ISO 8601 UTC.
    Table,
    /// CSV, exactly the command's result body (epoch-seconds times).
    Csv,
    /// One JSON object per row (epoch-seconds times, as the command gives them).
    Jsonl,
}

/// `abusedweb scan`'s command line.
#[derive(Debug, Parser)]
#[command(
    name = "abusedweb scan",
    about = "Run ESCU's Windows Abused Web Services detection (T1102) over Sysmon logs: \
             EVTX, JSON (lines, Sigma, Winlogbeat) and XmlWinEventLog files, gzip or not",
    version
)]
pub struct Cli {
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Space-separated Splunk wildcards (one argument), replacing the list, as `patterns=`.
    #[arg(long)]
    pub patterns: Option<String>,
    /// A pattern list of the app's lookup (escu_v1, escu_v13, extended, or your own), as `list=`.
    #[arg(long)]
    pub list: Option<String>,
    /// Which ESCU search to reproduce (4 or 13), as `escu_version=`.
    #[arg(long, value_parser = ["4", "13"])]
    pub escu_version: Option<String>,
    /// Exit with status 1 when any row matched.
    #[arg(long)]
    pub fail_on_match: bool,
    /// No warnings or summary on stderr (errors still).
    #[arg(long, short)]
    pub quiet: bool,
    /// Files or folders (read recursively); each file's format is told from its content.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

/// Run `abusedweb scan` with `args` (the program name first, `scan` second)
/// and return the exit status: 0, 1 (`--fail-on-match` and a match), 2
/// (usage error or unreadable input).
pub fn main(args: Vec<OsString>) -> i32 {
    let args = std::iter::once(OsString::from("abusedweb scan")).chain(args.into_iter().skip(2));
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    let stdout = std::io::stdout();
    // stderr unlocked: the progress bar writes to it from the reading threads
    // while `run` waits for them.
    run(&cli, &mut stdout.lock(), &mut std::io::stderr())
}

/// The command's options from the scan flags, through the command's own
/// parser (the same validation and messages).
pub fn options(cli: &Cli) -> Result<Options, crate::error::Error> {
    let mut args = Vec::new();
    if let Some(p) = &cli.patterns {
        args.push(format!("patterns={p}"));
    }
    if let Some(l) = &cli.list {
        args.push(format!("list={l}"));
    }
    if let Some(v) = &cli.escu_version {
        args.push(format!("escu_version={v}"));
    }
    let mut opts = Options::parse(&args)?;
    if opts.needs_lists() {
        opts.apply_lists(&Lists::load()?)?;
    }
    Ok(opts)
}

/// Every file under `paths` (folders recursively, in name order); a folder
/// that cannot be listed is an error on `err` and a skipped entry.
fn files(paths: &[PathBuf], err: &mut dyn Write, skipped: &mut Vec<(String, String)>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut entries: Vec<PathBuf> = match std::fs::read_dir(p) {
                Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
                Err(e) => {
                    let _ = writeln!(err, "abusedweb scan: {}: {e}", p.display());
                    skipped.push((p.display().to_string(), format!("folder not readable: {e}")));
                    continue;
                }
            };
            entries.sort();
            out.extend(files(&entries, err, skipped));
        } else {
            out.push(p.clone());
        }
    }
    out
}

/// Scan `cli.paths` and write the result to `out`, warnings to `err`.
pub fn run(cli: &Cli, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let opts = match options(cli) {
        Ok(o) => o,
        Err(e) => {
            let _ = writeln!(err, "abusedweb scan: {e}");
            return 2;
        }
    };
    let fields = crate::command::required_fields(&opts);
    let match_slot = fields
        .iter()
        .position(|f| *f == opts.field)
        .expect("required_fields lists the match field");
    let grouping = opts.profile.grouping();
    // Files and folders not read, and why: listed at the end.
    let mut skipped: Vec<(String, String)> = Vec::new();
    let paths = files(&cli.paths, err, &mut skipped);
    let mut unreadable = !skipped.is_empty();
    let sizes: Vec<u64> = paths
        .iter()
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .collect();
    // Files are read in parallel, each worker with its own engine; the
    // workers' groups are then merged as the command merges a map phase's
    // partial rows (counts add, time extremes compete), so the rows do not
    // depend on how files were shared out. Messages are written afterwards,
    // in file order.
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let workers = cores.min(paths.len()).max(1);
    // Fewer files than cores (one large file is the usual case): each
    // worker's file is read on its share of the cores (EVTX chunks, runs of
    // JSON lines, objects or XML events; `read::read_file`).
    let threads = cores / workers;
    // A bar on stderr, only for a person watching it: the bytes read (of
    // the files as they are on disk, compressed or not) over their total.
    let progress = if !cli.quiet && std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(sizes.iter().sum());
        if let Ok(style) =
            ProgressStyle::with_template("{bar:30} {bytes}/{total_bytes} read, {bytes_per_sec}, {elapsed} {wide_msg}")
        {
            bar.set_style(style);
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let worker = || {
        let mut engine = Engine::new(&opts.matcher, match_slot, opts.max_groups, &grouping);
        let mut reports = Vec::new();
        let mut records = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(path) = paths.get(i) else { break };
            let done = Arc::new(AtomicU64::new(0));
            let told: read::Progress = {
                let (done, bar) = (Arc::clone(&done), progress.clone());
                Arc::new(move |n| {
                    done.fetch_add(n, Ordering::Relaxed);
                    bar.inc(n);
                })
            };
            let (report, n) = read_one(path, &mut engine, &fields, cli.quiet, told, threads);
            if report.fatal.is_some() {
                stop.store(true, Ordering::Relaxed);
            }
            records += n;
            reports.push((i, report));
            // what the reader did not read of the file (a file skipped, a
            // stop at an error) counts as done
            progress.inc(sizes[i].saturating_sub(done.load(Ordering::Relaxed)));
        }
        (engine, reports, records)
    };
    let results: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers).map(|_| scope.spawn(worker)).collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .expect("a worker panics only through a reader, which is caught")
            })
            .collect()
    });
    progress.finish_and_clear();
    let mut engine = Engine::new(&opts.matcher, match_slot, opts.max_groups, &grouping);
    let mut reports: Vec<(usize, Report)> = Vec::new();
    let mut records = 0u64;
    let mut matched = 0u64;
    let mut fatal: Option<String> = None;
    for (part, part_reports, n) in results {
        records += n;
        matched += part.counters().events_matched;
        reports.extend(part_reports);
        for g in part.stats().sorted() {
            let key: Vec<&[u8]> = (0..grouping.fields).map(|i| g.field(i)).collect();
            let first = Some(g.first()).filter(|t| !t.is_empty());
            let last = Some(g.last()).filter(|t| !t.is_empty());
            if let Err(e) = engine.merge(&key, g.count(), first, last, Origin::default()) {
                let m = match e {
                    EventError::Limit(cap) => cap.message,
                    other => format!("{other:?}"),
                };
                fatal.get_or_insert(m);
                break;
            }
        }
    }
    reports.sort_by_key(|(i, _)| *i);
    for (_, report) in &reports {
        for line in &report.lines {
            let _ = writeln!(err, "{line}");
        }
        unreadable |= report.unreadable;
        if fatal.is_none() {
            fatal.clone_from(&report.fatal);
        }
    }
    for (i, report) in &reports {
        if let Some(why) = &report.skipped {
            skipped.push((paths[*i].display().to_string(), why.clone()));
        }
    }
    if let Some(m) = &fatal {
        let _ = writeln!(err, "abusedweb scan: {m}");
        if !cli.quiet {
            write_skipped(&skipped, err);
        }
        return 2;
    }
    let profile = &opts.profile;
    let labels = opts
        .categories
        .as_deref()
        .map(|c| (&opts.matcher, &opts.patterns[..], c, profile.query_name));
    let columns = profile.result_columns(labels.is_some());
    let mut csv = Vec::new();
    let rows = crate::command::write_groups(engine.stats(), &columns, profile.times_before_count, labels, &mut csv);
    let written = match cli.format {
        OutputFormat::Csv => out.write_all(&csv),
        OutputFormat::Table => write_table(&csv, &columns, out),
        OutputFormat::Jsonl => write_jsonl(&csv, out),
    };
    match written.and_then(|()| out.flush()) {
        // `abusedweb scan … | head`: the reader has what it wanted
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => {
            let _ = writeln!(err, "abusedweb scan: writing the result: {e}");
            return 2;
        }
        Ok(()) => {}
    }
    if !cli.quiet {
        let _ = writeln!(
            err,
            "abusedweb scan: {records} DNS-query records, {matched} matched, {rows} rows"
        );
        write_skipped(&skipped, err);
    }
    if unreadable {
        2
    } else if cli.fail_on_match && rows > 0 {
        1
    } else {
        0
    }
}

/// The list of the files and folders not read (or not to the end), and why.
fn write_skipped(skipped: &[(String, String)], err: &mut dyn Write) {
    if skipped.is_empty() {
        return;
    }
    let n = skipped.len();
    let _ = writeln!(
        err,
        "abusedweb scan: {n} {} skipped:",
        if n == 1 { "file" } else { "files" }
    );
    for (name, why) in skipped {
        let _ = writeln!(err, "  {name}: {why}");
    }
}

/// Most warnings written for one file; the rest are counted.
pub const MAX_WARNINGS_PER_FILE: usize = 100;

/// What reading one file left to say.
#[derive(Debug, Default)]
struct Report {
    /// Lines for stderr (warnings, a skip, an error), in order.
    lines: Vec<String>,
    /// The file could not be opened or read.
    unreadable: bool,
    /// An engine limit was reached: the scan stops.
    fatal: Option<String>,
    /// The file was not read (or not to the end): why, for the list at the end.
    skipped: Option<String>,
}

/// Read the file at `path` into `engine`; returns what to say and the
/// number of DNS-query records read.
fn read_one(
    path: &Path,
    engine: &mut Engine<'_>,
    fields: &[&str],
    quiet: bool,
    progress: read::Progress,
    threads: usize,
) -> (Report, u64) {
    let name = path.display().to_string();
    let mut report = Report::default();
    let mut warnings = 0usize;
    let mut records = 0u64;
    let mut warn = |lines: &mut Vec<String>, w: &str| {
        warnings += 1;
        if !quiet && warnings <= MAX_WARNINGS_PER_FILE {
            lines.push(format!("abusedweb scan: warning: {name}: {w}"));
        }
    };
    // The engine's slots, and the derived values' buffer, for every record.
    let layout = record::Layout::new(fields);
    let mut scratch = Vec::new();
    let mut each = |item: Item<'_>| match item {
        Item::Record(s) => {
            if report.fatal.is_some() {
                return;
            }
            records += 1;
            let slotted = record::Slotted::new(&s, &layout, &mut scratch);
            let origin = Origin {
                row: records,
                offset: 0,
            };
            match engine.offer(&slotted, origin) {
                Ok(()) => {}
                Err(EventError::Limit(cap)) => report.fatal = Some(cap.message),
                // A cap an earlier record's staged membership reaches came
                // first, and stops the file there.
                Err(EventError::BrokenMultivalue { slot, at }) => match engine.settle() {
                    Ok(()) => warn(
                        &mut report.lines,
                        &format!("field {} broken at byte {at}", fields[slot]),
                    ),
                    Err(cap) => report.fatal = Some(cap.message),
                },
            }
        }
        Item::Warning(w) => {
            if let Err(cap) = engine.settle() {
                report.fatal.get_or_insert(cap.message);
            }
            warn(&mut report.lines, &w)
        }
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        read::read_file(path, &mut each, progress, threads)
    }));
    match result {
        Ok(Ok(_)) => {}
        Ok(Err(Unread::Io(e))) => {
            report.lines.push(format!("abusedweb scan: {name}: {e}"));
            report.skipped = Some(format!("not readable: {e}"));
            report.unreadable = true;
        }
        Ok(Err(Unread::Skipped(why))) => report.skipped = Some(why),
        Err(_) => {
            report.lines.push(format!(
                "abusedweb scan: warning: {name}: the reader failed (a bug); the rest of this file is skipped"
            ));
            report.skipped = Some("read in part: the reader failed (a bug)".into());
        }
    }
    // The file's last records' memberships, staged in the engine.
    if let Err(cap) = engine.settle() {
        report.fatal.get_or_insert(cap.message);
    }
    if !quiet && warnings > MAX_WARNINGS_PER_FILE {
        report.lines.push(format!(
            "abusedweb scan: warning: {name}: {} more warnings not shown",
            warnings - MAX_WARNINGS_PER_FILE
        ));
    }
    (report, records)
}

/// The command's CSV result body as rows of text.
fn csv_rows(csv: &[u8]) -> Vec<Vec<String>> {
    let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(csv);
    reader
        .byte_records()
        .filter_map(Result::ok)
        .map(|r| r.iter().map(|f| String::from_utf8_lossy(f).into_owned()).collect())
        .collect()
}

/// An aligned table of the result rows, times in ISO 8601 UTC.
fn write_table(csv: &[u8], columns: &[&str], out: &mut dyn Write) -> std::io::Result<()> {
    let mut rows = csv_rows(csv);
    if rows.is_empty() {
        rows.push(columns.iter().map(|c| c.to_string()).collect());
    }
    let header = rows[0].clone();
    for row in rows.iter_mut().skip(1) {
        for (cell, name) in row.iter_mut().zip(&header) {
            if name == "firstTime" || name == "lastTime" {
                if let Some(iso) = iso8601(cell) {
                    *cell = iso;
                }
            }
        }
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', widths[i] - cell.chars().count() + 2));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// One JSON object per result row; `count` a number, every other value the
/// command's text.
fn write_jsonl(csv: &[u8], out: &mut dyn Write) -> std::io::Result<()> {
    let rows = csv_rows(csv);
    let Some((header, rows)) = rows.split_first() else {
        return Ok(());
    };
    for row in rows {
        let mut obj = serde_json::Map::new();
        for (name, cell) in header.iter().zip(row) {
            let v = match (name.as_str(), cell.parse::<u64>()) {
                ("count", Ok(n)) => serde_json::Value::from(n),
                _ => serde_json::Value::from(cell.as_str()),
            };
            obj.insert(name.clone(), v);
        }
        writeln!(out, "{}", serde_json::Value::Object(obj))?;
    }
    Ok(())
}

/// Epoch seconds text (`1616588712.840`) as ISO 8601 UTC
/// (`2021-03-24T12:25:12.840Z`), the fraction kept as written.
pub fn iso8601(epoch: &str) -> Option<String> {
    let (secs, frac) = match epoch.split_once('.') {
        Some((s, f)) => (s, Some(f)),
        None => (epoch, None),
    };
    let secs: i64 = secs.parse().ok()?;
    if frac.is_some_and(|f| f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let frac = frac.map(|f| format!(".{f}")).unwrap_or_default();
    Some(format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}{frac}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    ))
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Read a JSON-lines file of `n` matching events of distinct hosts,
    /// then `tail`, with `max_groups` of `cap`: what was reported, and the
    /// groups counted.
    fn read_distinct_hosts(n: usize, tail: &str, cap: usize) -> (Report, usize) {
        // Under the build's folder: src/scan names no other part of the
        // environment than its command line (tests/hostile.rs checks).
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("abusedweb-staged-{}-{n}-{cap}.jsonl", std::process::id()));
        let mut text = String::new();
        for i in 0..n {
            text.push_str(&format!(
                "{{\"EventID\": 22, \"SourceName\": \"Microsoft-Windows-Sysmon\", \"Hostname\": \"host{i}\", \
                 \"UtcTime\": \"2023-11-14 22:13:20.123\", \"QueryName\": \"a.ngrok.io\", \"QueryStatus\": \"0\", \
                 \"QueryResults\": \"-\", \"Image\": \"C:\\\\x.exe\"}}\n"
            ));
        }
        text.push_str(tail);
        std::fs::write(&path, text).unwrap();
        let opts = Options::parse(&[]).unwrap();
        let fields = crate::command::required_fields(&opts);
        let slot = fields.iter().position(|f| *f == opts.field).unwrap();
        let grouping = opts.profile.grouping();
        let mut engine = Engine::new(&opts.matcher, slot, cap, &grouping);
        let (report, _) = read_one(&path, &mut engine, &fields, false, Arc::new(|_| {}), 1);
        std::fs::remove_file(&path).unwrap();
        (report, engine.stats().groups())
    }

    /// Past 4,096 groups the engine counts memberships a few records after
    /// reading them. A cap reached by one of a file's last records is found
    /// when the file ends; one reached before a line the reader warns about
    /// is found before that warning, which is still given, as when each
    /// membership was counted at once.
    #[test]
    fn a_staged_cap_stops_the_file_as_a_cap_counted_at_once() {
        let (report, groups) = read_distinct_hosts(4_105, "", 4_104);
        let fatal = report.fatal.expect("the last record passes the cap");
        assert!(fatal.contains("max_groups=4104"), "{fatal}");
        assert!(report.lines.is_empty(), "{:?}", report.lines);
        assert_eq!(groups, 4_104);

        let (report, groups) = read_distinct_hosts(4_105, "{\"EventID\": 22, \"QueryName\": \n", 4_100);
        let fatal = report.fatal.expect("the cap is reached");
        assert!(fatal.contains("max_groups=4100"), "{fatal}");
        assert_eq!(report.lines.len(), 1, "{:?}", report.lines);
        assert!(
            report.lines[0].contains("line 4106: not a JSON object"),
            "{:?}",
            report.lines
        );
        assert_eq!(groups, 4_100);
    }

    #[test]
    fn iso_round_trip() {
        assert_eq!(iso8601("1616588712.840").unwrap(), "2021-03-24T12:25:12.840Z");
        assert_eq!(iso8601("0").unwrap(), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601("x"), None);
        for s in [
            "2000-02-29 23:59:59.5",
            "2024-12-31 00:00:00",
            "1999-01-01 12:00:00.001",
        ] {
            let e = record::epoch_text(s).unwrap();
            assert_eq!(iso8601(&e).unwrap().replace('T', " ").trim_end_matches('Z'), s);
        }
    }
}
