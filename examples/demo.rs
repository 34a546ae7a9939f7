//! `make demo`: runs the release `abusedweb` binary exactly as splunkd would and
//! prints the detection table it returns.
//!
//! Input: `examples/data/sysmon_eid22_sample.csv`, embedded at compile time, in
//! splunkd's CSV style (the seven fields the command asks for, a `source`
//! field, and the `__mv_` block). Rows whose `source` starts with `real:` are
//! real Sysmon EventID 22 records from `shared/fixtures/sysmon-events/`; rows
//! with `source=synthetic:demo` are made up so that the detection has
//! something to find (no public dataset holds a real match). See
//! `examples/data/gen_sysmon_eid22_sample.py` for the exact provenance.
//!
//! The conversation is driven by the test-side splunkd shared with the
//! integration tests (`tests/common/splunkd.rs`): one getinfo, then the events
//! split over several execute chunks, the last with `finished:true`.
//!
//! Usage: `cargo run --release --example demo [-- PATH_TO_ABUSEDWEB]`
//! (default: `target/release/abusedweb`). Exits non-zero when the command
//! fails (non-zero exit, an error reply, output on stderr, bad framing).

#[path = "../tests/common/splunkd.rs"]
mod splunkd;

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::Value;

/// The sample events (see the module comment for provenance).
const SAMPLE: &str = include_str!("data/sysmon_eid22_sample.csv");

/// How many execute requests the events are spread over.
const CHUNKS: usize = 4;

/// Widest cell printed; longer values are cut with `…`.
const MAX_CELL: usize = 60;

fn locate_binary() -> PathBuf {
    if let Some(arg) = std::env::args_os().nth(1) {
        return PathBuf::from(arg);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("release").join("abusedweb")
}

/// One display cell: newlines shown as `⏎`, other control bytes as `·`, cut to MAX_CELL.
fn cell(bytes: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| match c {
            '\n' => '⏎',
            c if c.is_control() => '·',
            c => c,
        })
        .collect();
    if text.chars().count() > MAX_CELL {
        let cut: String = text.chars().take(MAX_CELL - 1).collect();
        format!("{cut}…")
    } else {
        text
    }
}

fn print_table(header: &[String], rows: &[Vec<String>]) {
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        println!("  {}", padded.join("  ").trim_end());
    };
    line(header);
    line(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>());
    for r in rows {
        line(r);
    }
}

fn main() -> ExitCode {
    let binary = locate_binary();
    if !binary.is_file() {
        eprintln!(
            "demo: {} not found; build it first (`cargo build --release`) or pass its path",
            binary.display()
        );
        return ExitCode::from(2);
    }

    // The embedded events, split into CHUNKS execute bodies (each with the header).
    let input = match splunkd::parse_csv(SAMPLE.as_bytes()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("demo: embedded sample is not valid CSV: {e}");
            return ExitCode::from(2);
        }
    };
    let source = input.column("source").expect("sample has a source column");
    let synthetic = input
        .rows
        .iter()
        .filter(|r| r[source].starts_with(b"synthetic:"))
        .count();
    let per_chunk = input.rows.len().div_ceil(CHUNKS);
    let bodies: Vec<Vec<u8>> = input
        .rows
        .chunks(per_chunk)
        .map(|rows| splunkd::encode_rows(&input.header, rows, b"\n"))
        .collect();

    println!(
        "abusedweb demo: {} Sysmon EventID 22 events ({} real from shared/fixtures/sysmon-events, {} synthetic)",
        input.rows.len(),
        input.rows.len() - synthetic,
        synthetic
    );
    println!("binary: {}", binary.display());

    // Talk to it as splunkd does: getinfo, then the execute requests in lock-step.
    let mut getinfo = splunkd::GetInfo::with_args(&[]);
    getinfo.session_key = "demo-session-key-not-a-real-token".to_string();
    let out = splunkd::run_conversation(&binary, &getinfo, &bodies);

    println!("\nconversation:");
    let mut requests = vec![format!("getinfo (M={})", getinfo.metadata().len())];
    for (i, b) in bodies.iter().enumerate() {
        let finished = i + 1 == bodies.len();
        requests.push(format!("execute finished:{finished} (B={})", b.len()));
    }
    for (i, request) in requests.iter().enumerate() {
        let reply = match out.replies.get(i) {
            Some(r) => format!(
                "{} (B={})",
                String::from_utf8_lossy(&r.meta_raw)
                    .chars()
                    .take(110)
                    .collect::<String>(),
                r.b
            ),
            None => "(no reply)".to_string(),
        };
        println!("  -> {request}\n  <- {reply}");
    }

    let mut failed = Vec::new();
    if out.code() != Some(0) {
        failed.push(format!("exit status {:?}", out.status));
    }
    if !out.stderr.is_empty() {
        failed.push(format!("stderr: {}", out.stderr_text().trim_end()));
    }
    if let Some(e) = &out.framing_error {
        failed.push(format!("bad reply framing: {e}"));
    }
    if !out.trailing.is_empty() {
        failed.push(format!("{} unexpected bytes after the last reply", out.trailing.len()));
    }
    let last = out.replies.last();
    match last {
        Some(r) if r.error().is_some() => failed.push(format!("error reply: {}", r.error().unwrap())),
        Some(r) if r.finished() == Some(true) && out.replies.len() == bodies.len() + 1 => {}
        _ => failed.push(format!(
            "expected {} replies ending with finished:true, got {}",
            bodies.len() + 1,
            out.replies.len()
        )),
    }

    if let Some(r) = last.filter(|r| r.finished() == Some(true) && r.error().is_none()) {
        let result = r.table();
        println!(
            "\ndetections ({} rows, `stats count min(_time) max(_time) by ...`):",
            result.rows.len()
        );
        if result.rows.is_empty() {
            println!("  (none)");
        } else {
            let rows: Vec<Vec<String>> = result
                .rows
                .iter()
                .map(|row| row.iter().map(|c| cell(c)).collect())
                .collect();
            print_table(&result.header_names(), &rows);
        }
        if let Some(Value::Object(inspector)) = r.meta.get("inspector") {
            println!("\ninspector:");
            for (key, value) in inspector {
                match value.as_array().map(Vec::as_slice) {
                    Some([elapsed, invocations, input, output]) if key.starts_with("metric.") => {
                        println!(
                            "  {key}: elapsed {elapsed} s, invocations {invocations}, input {input}, output {output}"
                        )
                    }
                    _ => println!("  {key}: {value}"),
                }
            }
        }
    }

    if let Some(r) = last.filter(|r| r.finished() == Some(true) && r.error().is_none()) {
        if let Err(e) = distributed(&binary, &bodies, &r.table()) {
            failed.push(format!("distributed=true: {e}"));
        }
    }

    if failed.is_empty() {
        println!("\nok: exit 0, nothing on stderr, one reply per request");
        ExitCode::SUCCESS
    } else {
        eprintln!("\ndemo FAILED:");
        for f in &failed {
            eprintln!("  - {f}");
        }
        ExitCode::FAILURE
    }
}

/// The same events with `distributed=true`: the reduce names its map phase
/// (`streaming_preop`); two simulated indexers run it, each over half of the
/// execute requests; their partial rows, re-encoded as splunkd hands results
/// on, go to the reduce, which must return the same detection rows.
fn distributed(binary: &std::path::Path, bodies: &[Vec<u8>], expected: &splunkd::Table) -> Result<(), String> {
    let getinfo = splunkd::GetInfo::with_args(&["distributed=true"]);
    let probe = splunkd::run_conversation(binary, &getinfo, &[] as &[&[u8]]);
    let preop = probe
        .replies
        .first()
        .and_then(|r| r.meta.get("streaming_preop"))
        .and_then(Value::as_str)
        .ok_or("the reduce's getinfo answer names no streaming_preop")?
        .to_string();
    // splunkd's tokenising: blanks outside quotes separate, quotes are dropped.
    let (mut args, mut quoted) = (vec![String::new()], false);
    for c in preop.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted => args.push(String::new()),
            c => args.last_mut().unwrap().push(c),
        }
    }
    args.remove(0);
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    println!("\ndistributed=true: the reduce asks splunkd to run `{preop}` on the indexers");

    let mut partial = splunkd::Table::default();
    let (mut bytes_in, mut bytes_out) = (0, 0);
    for (i, share) in [&bodies[..bodies.len() / 2], &bodies[bodies.len() / 2..]]
        .iter()
        .enumerate()
    {
        let out = splunkd::run_conversation(binary, &splunkd::GetInfo::with_args(&arg_refs), share);
        if out.code() != Some(0) || out.replies.len() != share.len() + 1 {
            return Err(format!("map on indexer {}: {}", i + 1, out.describe()));
        }
        bytes_in += share.iter().map(Vec::len).sum::<usize>();
        for r in &out.replies[1..] {
            bytes_out += r.body.len();
            if r.b > 0 {
                let t = r.table();
                partial.header = t.header;
                partial.rows.extend(t.rows);
            }
        }
    }
    let mut header = partial.header.clone();
    header.extend(partial.header.iter().map(|h| [&b"__mv_"[..], h].concat()));
    let rows: Vec<Vec<Vec<u8>>> = partial
        .rows
        .iter()
        .map(|r| r.iter().cloned().chain(r.iter().map(|_| Vec::new())).collect())
        .collect();
    let reduce_body = splunkd::encode_rows(&header, &rows, b"\n");
    let out = splunkd::run_conversation(binary, &getinfo, &[reduce_body]);
    let result = match out.replies.last() {
        Some(r) if out.code() == Some(0) && r.finished() == Some(true) && r.error().is_none() => r.table(),
        _ => return Err(format!("reduce: {}", out.describe())),
    };
    println!(
        "  2 simulated indexers: {bytes_in} bytes of events into the map phase, {} partial rows ({bytes_out} bytes) out",
        partial.rows.len()
    );
    if result != *expected {
        return Err("the reduce's rows differ from the search-head-only rows".into());
    }
    println!(
        "  the reduce merged them into the same {} detection rows",
        result.rows.len()
    );
    Ok(())
}
