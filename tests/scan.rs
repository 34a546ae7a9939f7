//! `abusedweb scan`: the built program over every file of the shared Sysmon
//! fixtures (EVTX, JSON, XmlWinEventLog), over files the tests write, and
//! against the Splunk command path (the same events give the same rows).

mod common;

use common::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn scan(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_abusedweb"))
        .arg("scan")
        .args(args)
        .output()
        .expect("the program runs")
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/sysmon-events")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The fixtures README's EventID 22 counts, file by file.
const EID22: [(&str, u64); 15] = [
    ("evtx/sigma_dns_query_win_ligolo_ng.evtx", 1),
    ("evtx/sigma_dns_query_win_remote_access_anydesk.evtx", 1),
    ("evtx/sigma_dns_query_win_wildcard_dns_nip_io.evtx", 1),
    ("evtx/evtx_attack_samples_Sysmon_UACME_64.evtx", 1),
    ("evtx/evtx_to_mitre_PSexec_as_system_execution.evtx", 1),
    ("json/sigma_dns_query_win_ligolo_ng.json", 1),
    ("json/sigma_dns_query_win_remote_access_anydesk.json", 1),
    ("json/sigma_dns_query_win_wildcard_dns_nip_io.json", 1),
    ("json/otrf_psh_cmstp_execution_bypassuac_2020-10-22.json", 205),
    ("json/otrf_cmd_bitsadmin_download_psh_script_2020-10-23.json", 3),
    ("json/otrf_metasploit_sharpdump_lsass_memory_dump_EID22_only.json", 441),
    ("xmlwineventlog/security_content_sysmon_eventid_22_example.log", 1),
    ("xmlwineventlog/converted_from_evtx_sysmon_mixed.log", 5),
    // the README's last rows, counted again through the two folders
    ("json", 652),
    ("evtx", 5),
];

fn jsonl_rows(o: &Output) -> Vec<serde_json::Value> {
    String::from_utf8(o.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

#[test]
fn every_fixture_file_gives_the_readme_eid22_count() {
    let dir = fixtures();
    // every file of the folder is in the table
    let mut listed = 0;
    for sub in ["evtx", "json", "xmlwineventlog"] {
        for e in std::fs::read_dir(dir.join(sub)).unwrap() {
            let name = format!("{sub}/{}", e.unwrap().file_name().to_string_lossy());
            assert!(EID22.iter().any(|(f, _)| *f == name), "{name} has no count here");
            listed += 1;
        }
    }
    assert_eq!(listed, 13);
    for (file, eid22) in EID22 {
        let path = dir.join(file);
        let out = scan(&["--patterns", "*", "--format", "jsonl", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{file}: {}", stderr(&out));
        let rows = jsonl_rows(&out);
        let counted: u64 = rows
            .iter()
            .map(|r| r["count"].as_u64().expect("count is a number"))
            .sum();
        assert_eq!(counted, eid22, "{file}");
        assert!(
            stderr(&out).contains(&format!("{eid22} DNS-query records, {eid22} matched")),
            "{file}: {}",
            stderr(&out)
        );
        for r in &rows {
            let o = r.as_object().unwrap();
            let keys: Vec<&str> = o.keys().map(String::as_str).collect();
            assert_eq!(keys.len(), 9, "{file}: {keys:?}");
            for c in RESULT_COLUMNS {
                assert!(o.contains_key(c), "{file}: {c} missing in {r}");
            }
            let first = r["firstTime"].as_str().unwrap();
            assert!(first.parse::<f64>().is_ok(), "{file}: epoch time {first}");
            assert!(r["process_name"].as_str().unwrap().ends_with(".exe") || r["Image"] == "<unknown process>");
        }
        // the six patterns: no real match in any fixture (README)
        let out = scan(&["--fail-on-match", "-q", "--format", "csv", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{file}");
        assert!(out.stdout.is_empty(), "{file}");
    }
}

#[test]
fn v13_fields_from_an_evtx_record() {
    let path = fixtures().join("evtx/sigma_dns_query_win_remote_access_anydesk.evtx");
    let out = scan(&[
        "--escu-version",
        "13",
        "--patterns",
        "*anydesk*",
        "--format",
        "jsonl",
        path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = jsonl_rows(&out);
    // one row per answer: a CNAME and ten addresses
    assert_eq!(rows.len(), 11);
    let r = &rows[0];
    assert_eq!(r["answer_count"], "11");
    assert_eq!(r["dest"], "SigmaCatchVm");
    assert_eq!(r["src"], "SigmaCatchVm");
    assert_eq!(r["signature"], "DNSEvent (DNS query)");
    assert_eq!(r["signature_id"], "22");
    assert_eq!(r["vendor_product"], "Microsoft Sysmon");
    assert_eq!(r["user_id"], "S-1-5-18");
    assert_eq!(r["process_exec"], "AnyDesk.exe");
    assert!(rows.iter().any(|r| r["answer"] == "boot-relays.net.anydesk.com"));
}

fn xml_event(query: &str, image: &str, time: &str) -> String {
    format!(
        "<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System><Provider Name='Microsoft-Windows-Sysmon' \
         Guid='{{5770385F-C22A-43E0-BF4C-06F5698FFBD9}}'/><EventID>22</EventID><Computer>WIN-1</Computer>\
         <Security UserID='S-1-5-18'/></System><EventData><Data Name='RuleName'>-</Data><Data Name='UtcTime'>{time}</Data>\
         <Data Name='ProcessGuid'>{{1}}</Data><Data Name='QueryName'>{query}</Data><Data Name='QueryStatus'>0</Data>\
         <Data Name='QueryResults'>::ffff:104.20.67.143;</Data><Data Name='Image'>{image}</Data></EventData></Event>"
    )
}

fn temp(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("scan");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn a_generated_xml_file_matches_and_gives_the_command_rows() {
    let events = [
        ("pastebin.com", PS, "2023-11-14 22:13:20.123"),
        ("www.example.org", PS, "2023-11-14 22:13:21.000"),
        ("PASTEBIN.com", PS, "2023-11-14 22:13:19.5"),
        ("cdn.discordapp.com", r"C:\Users\a\chat.exe", "2024-02-29 00:00:00"),
    ];
    let path = temp("generated.xml");
    let mut f = std::fs::File::create(&path).unwrap();
    for (q, i, t) in events {
        writeln!(f, "{}", xml_event(q, i, t)).unwrap();
    }
    drop(f);
    let out = scan(&["--format", "csv", "--fail-on-match", path.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a match with --fail-on-match: {}",
        stderr(&out)
    );
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(&out.stdout[..]);
    let scanned: Vec<Vec<Vec<u8>>> = reader
        .byte_records()
        .map(|r| r.unwrap().iter().map(<[u8]>::to_vec).collect())
        .collect();
    assert_eq!(show(&scanned[..1])[0], RESULT_COLUMNS);
    assert_eq!(scanned.len(), 4, "{:?}", show(&scanned));
    // the same events through the Splunk command
    let epoch = ["1700000000.123", "1700000001.000", "1699999999.5", "1709164800"];
    let protocol: Vec<Event> = events.iter().zip(epoch).map(|((q, i, _), t)| dns(i, q, t)).collect();
    let rows = run_ok(&[], &[body(&protocol)]);
    assert_rows(&scanned[1..], &rows);
    assert_rows(
        &scanned[1..2],
        &[dns_row(
            r"C:\Users\a\chat.exe",
            "cdn.discordapp.com",
            1,
            "1709164800",
            "1709164800",
        )],
    );
    // the table: ISO 8601 UTC times
    let out = scan(&[path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("2023-11-14T22:13:20.123Z"), "{text}");
    assert!(text.contains("2024-02-29T00:00:00Z"), "{text}");
    assert_eq!(text.lines().count(), 4, "{text}");
    // gzip-compressed, the same rows
    let gz = temp("generated.xml.gz");
    let mut enc = flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), flate2::Compression::fast());
    enc.write_all(&std::fs::read(&path).unwrap()).unwrap();
    enc.finish().unwrap();
    let out2 = scan(&["--format", "csv", gz.to_str().unwrap()]);
    let out1 = scan(&["--format", "csv", path.to_str().unwrap()]);
    assert_eq!(out2.stdout, out1.stdout);
}

#[test]
fn a_generated_json_lines_file_with_a_bad_line_warns_and_reads_the_rest() {
    let path = temp("generated.jsonl");
    let good = |q: &str| {
        serde_json::json!({"EventID": 22, "SourceName": "Microsoft-Windows-Sysmon", "Hostname": "WIN-1",
            "UtcTime": "2023-11-14 22:13:20.123", "QueryName": q, "QueryStatus": "0",
            "QueryResults": "::ffff:104.20.67.143;", "Image": PS})
        .to_string()
    };
    let text = [
        good("a.ngrok.io"),
        "{\"EventID\": 22, \"QueryName\": ".to_string(),
        r#"{"EventID": 22, "SourceName": "Microsoft-Windows-Sysmon", "QueryName": {"x": 1}}"#.to_string(),
        good("b.duckdns.org"),
        r#"{"EventID": 1, "SourceName": "Microsoft-Windows-Sysmon", "QueryName": "pastebin.com"}"#.to_string(),
    ]
    .join("\n");
    std::fs::write(&path, text).unwrap();
    let out = scan(&["--format", "jsonl", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("generated.jsonl: line 2"), "{err}");
    assert!(err.contains("generated.jsonl: line 3: field QueryName"), "{err}");
    let rows = jsonl_rows(&out);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["QueryName"], "a.ngrok.io");
    assert_eq!(rows[0]["dest"], "WIN-1");
    assert_eq!(rows[0]["firstTime"], "1700000000.123");
}

#[test]
fn a_truncated_or_corrupted_file_warns_and_never_panics() {
    let evtx = std::fs::read(fixtures().join("evtx/evtx_attack_samples_Sysmon_UACME_64.evtx")).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated.evtx", evtx[..evtx.len() / 2].to_vec()),
        ("header_only.evtx", evtx[..4096].to_vec()),
        ("corrupt_chunk.evtx", {
            let mut v = evtx.clone();
            for b in v[4096 + 512..4096 + 4096].iter_mut() {
                *b ^= 0x5a;
            }
            v
        }),
        ("broken_entity.xml", {
            let mut v =
                xml_event("pastebin.com", "&lt;unknown process&gt; &bogus;", "2023-11-14 22:13:20").into_bytes();
            v.extend_from_slice(b"\n<Event><System><EventID>22</Even");
            v
        }),
        ("truncated.gz", {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(xml_event("pastebin.com", PS, "2023-11-14 22:13:20").as_bytes())
                .unwrap();
            let v = enc.finish().unwrap();
            v[..v.len() - 6].to_vec()
        }),
    ];
    for (name, bytes) in cases {
        let path = temp(name);
        std::fs::write(&path, &bytes).unwrap();
        let out = scan(&["--patterns", "*", "--format", "jsonl", path.to_str().unwrap()]);
        let err = stderr(&out);
        assert!(!err.contains("panicked") && !err.contains("a bug"), "{name}: {err}");
        assert!(
            err.contains(&format!("{name}:")),
            "{name}: a warning naming the file: {err}"
        );
        match name {
            "broken_entity.xml" => {
                assert_eq!(out.status.code(), Some(0), "{name}: {err}");
                assert!(err.contains("event 1") && err.contains("broken XML entity"), "{err}");
                assert!(err.contains("cut short"), "{err}");
                let rows = jsonl_rows(&out);
                assert_eq!(rows.len(), 1);
                assert_eq!(rows[0]["Image"], "<unknown process> &bogus;");
                assert_eq!(rows[0]["process_name"], "<unknown process> &bogus;");
            }
            "truncated.gz" => {
                assert_eq!(out.status.code(), Some(0), "{name}: {err}");
                assert!(err.contains("reading stopped early"), "{err}");
            }
            _ => assert_eq!(out.status.code(), Some(0), "{name}: {err}"),
        }
    }
}

#[test]
fn usage_errors_and_unreadable_inputs_exit_2() {
    let ok = fixtures().join("xmlwineventlog/security_content_sysmon_eventid_22_example.log");
    let out = scan(&["/nonexistent/abusedweb-scan-input", ok.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("/nonexistent/abusedweb-scan-input"));
    assert_eq!(scan(&[]).status.code(), Some(2));
    assert_eq!(scan(&["--format", "xml", ok.to_str().unwrap()]).status.code(), Some(2));
    assert_eq!(
        scan(&["--escu-version", "5", ok.to_str().unwrap()]).status.code(),
        Some(2)
    );
    let out = scan(&["--list", "no_such_list", ok.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no_such_list"), "{}", stderr(&out));
    let out = scan(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("--fail-on-match"));
}

#[test]
fn files_read_in_parallel_give_the_same_rows_in_any_order() {
    let dir = fixtures();
    let mut files: Vec<String> = EID22[..13]
        .iter()
        .map(|(f, _)| dir.join(f).to_str().unwrap().to_string())
        .collect();
    let run = |files: &[String]| {
        let mut args = vec!["--patterns", "*", "--format", "csv", "-q"];
        args.extend(files.iter().map(String::as_str));
        let out = scan(&args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        out.stdout
    };
    let forward = run(&files);
    files.reverse();
    assert_eq!(run(&files), forward);
    // the folder, read recursively: the README file is skipped, the rows are the same
    let out = scan(&["--patterns", "*", "--format", "csv", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, forward);
    let err = stderr(&out);
    assert!(err.contains("skipped") && err.contains("README.md"), "{err}");
    assert!(err.contains("663 DNS-query records, 663 matched"), "{err}");
}

/// With stderr a terminal the progress bar is drawn from the reading threads;
/// it must neither hang the scan (it once did: `run` held stderr's lock) nor
/// reach stdout. Needs util-linux `script` for the terminal; skipped without.
#[test]
fn the_progress_bar_on_a_terminal_does_not_hang_the_scan() {
    let dir = fixtures();
    let out_file = temp("progress.csv");
    let cmd = format!(
        "'{}' scan --patterns '*' --format csv '{}' > '{}'",
        env!("CARGO_BIN_EXE_abusedweb"),
        dir.display(),
        out_file.display()
    );
    let Ok(mut child) = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
    else {
        eprintln!("no `script` here: skipped");
        return;
    };
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > std::time::Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("scan with stderr on a terminal did not finish in 60 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(status.success());
    let mut terminal = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut terminal).unwrap();
    // the bar counts bytes: every drawing shows the fixtures' total size
    let total: u64 = walk(&dir).iter().map(|p| std::fs::metadata(p).unwrap().len()).sum();
    let total = indicatif::HumanBytes(total).to_string();
    let drawn: Vec<&str> = terminal
        .split(['\r', '\n'])
        .filter_map(|l| l.split_once(" read, ").map(|(a, _)| a))
        .collect();
    assert!(!drawn.is_empty(), "no bar drawn: {terminal:?}");
    for d in &drawn {
        assert!(d.ends_with(&format!("/{total}")), "{d:?} is not over {total}");
    }
    assert!(terminal.contains("663 DNS-query records"), "{terminal:?}");
    let csv = std::fs::read(&out_file).unwrap();
    assert_eq!(csv.iter().filter(|b| **b == b'\n').count(), 233);
}

#[test]
fn a_gzip_compressed_evtx_file_gives_the_same_rows() {
    let plain = fixtures().join("evtx/evtx_attack_samples_Sysmon_UACME_64.evtx");
    let gz = temp("uacme.evtx.gz");
    let mut enc = flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), flate2::Compression::fast());
    enc.write_all(&std::fs::read(&plain).unwrap()).unwrap();
    enc.finish().unwrap();
    let a = scan(&["--patterns", "*", "--format", "csv", plain.to_str().unwrap()]);
    let b = scan(&["--patterns", "*", "--format", "csv", gz.to_str().unwrap()]);
    assert_eq!(a.status.code(), Some(0));
    assert_eq!(b.status.code(), Some(0), "{}", stderr(&b));
    assert_eq!(a.stdout, b.stdout);
    assert_eq!(a.stdout.iter().filter(|c| **c == b'\n').count(), 2);
}

/// Every file under `dir`, recursively.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// A flat (OTRF) DNS-query object with `over` merged in (a `null` in `over`
/// removes the key).
fn otrf(over: serde_json::Value) -> serde_json::Value {
    let mut v = serde_json::json!({"EventID": 22, "SourceName": "Microsoft-Windows-Sysmon", "Hostname": "WIN-1",
        "UtcTime": "2023-11-14 22:13:20.123", "QueryName": "ok.pastebin.com", "QueryStatus": "0",
        "QueryResults": "::ffff:104.20.67.143;", "Image": PS});
    for (k, x) in over.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

/// JSON with values of the wrong type, in JSON lines, in an array and in
/// the evtx and Winlogbeat layouts: each is a warning naming the file and
/// the record; the records around still count; never a panic.
#[test]
fn json_values_of_the_wrong_type_warn_and_the_rest_is_read() {
    use serde_json::json;
    // (record, what the warning says, is it counted)
    let cases: Vec<(serde_json::Value, &str, bool)> = vec![
        (
            otrf(json!({"QueryName": ["a.pastebin.com", "b"]})),
            "field QueryName is an array",
            false,
        ),
        (
            otrf(json!({"QueryName": {"x": 1}})),
            "field QueryName is an object",
            false,
        ),
        (otrf(json!({"QueryName": true})), "field QueryName is a boolean", false),
        (
            otrf(json!({"Image": 42})),
            "field Image is a number (42), read as its text",
            true,
        ),
        (otrf(json!({"Hostname": 7.5})), "field Computer is a number (7.5)", true),
        (otrf(json!({"UtcTime": 1700000000})), "field UtcTime is a number", true),
        (
            otrf(json!({"QueryResults": {"a": "b"}})),
            "field QueryResults is an object",
            false,
        ),
        (otrf(json!({"EventID": [22]})), "field EventID is an array", false),
        (
            otrf(json!({"EventID": {"id": 22}})),
            "field EventID is an object",
            false,
        ),
        (
            otrf(json!({"SourceName": ["Sysmon"]})),
            "field Provider is an array",
            false,
        ),
        (
            otrf(json!({"UserID": {"sid": "S-1-5-18"}})),
            "field UserID is an object",
            false,
        ),
        (
            otrf(json!({"ProcessGuid": false})),
            "field ProcessGuid is a boolean",
            false,
        ),
        (
            json!({"Event": {"System": {"EventID": 22, "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}},
            "Computer": ["h1", "h2"]}, "EventData": {"QueryName": "x.ngrok.io"}}}),
            "field Computer is an array",
            false,
        ),
        (
            json!({"winlog": {"event_id": "22", "provider_name": "Microsoft-Windows-Sysmon",
            "event_data": {"QueryName": 12345, "Image": PS}}}),
            "field QueryName is a number (12345)",
            true,
        ),
        (json!([1, 2, 3]), "not a JSON object", false),
        (json!("a string"), "not a JSON object", false),
        (json!(null), "not a JSON object", false),
        (json!(22), "not a JSON object", false),
    ];
    // records that are fine however their types go: EventID as a string or a
    // number, QueryStatus a number (the evtx crate writes it so), null for an
    // absent value (Winlogbeat and evtx write empty elements so)
    let fine = [
        otrf(json!({"EventID": "22"})),
        otrf(json!({"EventID": " 22 "})),
        otrf(json!({"QueryStatus": 0})),
        otrf(json!({"QueryResults": null})),
        otrf(json!({"EventID": 1, "QueryName": ["not", "a", "dns", "query"]})),
    ];
    // records counted: the cases read with a warning, and a fine record after
    // each case (fine[0..4] in turn; fine[4], not a DNS query, is last)
    let records = cases.iter().filter(|c| c.2).count() + cases.len();
    assert_eq!(records, 22);
    // in the rows: stats drops a record lacking a by-field, here those with
    // QueryResults null (every fourth fine record) and the Winlogbeat one
    // (no computer_name)
    let in_rows = records - cases.len() / 4 - 1;
    let mut lines: Vec<String> = Vec::new();
    for (i, (v, _, _)) in cases.iter().enumerate() {
        lines.push(v.to_string());
        lines.push(fine[i % 4].to_string());
    }
    lines.push(fine[4].to_string());
    let fine_lines = cases.len();
    // JSON lines: line 2k+1 is case k
    let jsonl = temp("wrong_types.jsonl");
    std::fs::write(&jsonl, lines.join("\n")).unwrap();
    // an array, pretty-printed: element 2k+1 is case k
    let array = temp("wrong_types_array.json");
    let values: Vec<serde_json::Value> = lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    std::fs::write(&array, serde_json::to_string_pretty(&values).unwrap()).unwrap();
    let gz = temp("wrong_types_array.json.gz");
    std::fs::write(&gz, gzip(&std::fs::read(&array).unwrap())).unwrap();
    for (path, place) in [(&jsonl, "line"), (&array, "array element"), (&gz, "array element")] {
        let out = scan(&["--patterns", "*", "--format", "jsonl", path.to_str().unwrap()]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(0), "{err}");
        assert!(!err.contains("panicked") && !err.contains("a bug"), "{err}");
        let name = path.file_name().unwrap().to_str().unwrap();
        for (k, (_, says, _)) in cases.iter().enumerate() {
            let record = format!("{name}: {place} {}", 2 * k + 1);
            let line = err
                .lines()
                .find(|l| l.contains(&format!("{record}:")) || l.contains(&format!("{record} (")))
                .unwrap_or_else(|| panic!("no warning for case {k} ({record}): {err}"));
            assert!(line.contains(says), "case {k}: {line}");
        }
        // no warning about the good records
        for k in 0..fine_lines {
            let record = format!("{place} {}", 2 * k + 2);
            assert!(
                !err.lines()
                    .any(|l| l.contains(&format!("{record}:")) || l.contains(&format!("{record} ("))),
                "{record}: {err}"
            );
        }
        let rows = jsonl_rows(&out);
        let total: u64 = rows.iter().map(|r| r["count"].as_u64().unwrap()).sum();
        assert_eq!(total as usize, in_rows, "{name}: {rows:?}");
        assert!(err.contains(&format!("{records} DNS-query records")), "{err}");
        // the number read as text
        assert!(rows.iter().any(|r| r["Image"] == "42"), "{rows:?}");
    }
}

/// A JSON array with an element that does not parse: that element is a
/// warning, the ones after it are read; a cut-short array says so.
#[test]
fn a_broken_element_of_a_json_array_is_skipped_and_the_rest_read() {
    let good = otrf(serde_json::json!({})).to_string();
    let text = format!("[\n{good},\n{{\"EventID\": 22, \"QueryName\": tru}},\n{good},\n,\n{good},\n{{\"EventID\": 22,");
    let path = temp("broken_array.json");
    std::fs::write(&path, text).unwrap();
    let out = scan(&["--format", "jsonl", path.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("broken_array.json: array element 2 (line 3): not JSON"),
        "{err}"
    );
    assert!(
        err.contains("broken_array.json: array element 4 (line 5): missing"),
        "{err}"
    );
    assert!(
        err.contains("broken_array.json: array element 6 (line 7): cut short"),
        "{err}"
    );
    let rows = jsonl_rows(&out);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["count"], 3);
}

/// Peak RSS in KiB of `abusedweb scan ARGS`, from GNU time; `None` without it.
fn peak_rss_kib(args: &[&str]) -> Option<u64> {
    let time = Path::new("/usr/bin/time");
    if !time.exists() {
        eprintln!("no /usr/bin/time here: the memory bound is not checked");
        return None;
    }
    let report = temp("rusage.txt");
    let out = Command::new(time)
        .args([
            "-f",
            "%M",
            "-o",
            report.to_str().unwrap(),
            env!("CARGO_BIN_EXE_abusedweb"),
            "scan",
        ])
        .args(args)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = std::fs::read_to_string(&report).unwrap();
    Some(text.trim().lines().last().unwrap().parse().unwrap())
}

/// Memory bounded by the groups, not by the file: a gzip-compressed JSON
/// array and a gzip-compressed EVTX file, each decompressing to more than
/// the bound, are read with a peak RSS under it (the reader once held both
/// whole: 430 MB for this array).
#[test]
fn large_gzip_json_arrays_and_evtx_files_are_streamed() {
    const BOUND_KIB: u64 = 32 << 10;
    // ~35 MB of JSON array, two groups
    let one = otrf(serde_json::json!({"Pad": "x".repeat(200)})).to_string();
    let other = otrf(serde_json::json!({"QueryName": "b.ngrok.io"})).to_string();
    let n = 150_000usize;
    let path = temp("large_array.json.gz");
    {
        let mut enc = flate2::write::GzEncoder::new(std::fs::File::create(&path).unwrap(), flate2::Compression::fast());
        let mut plain = 1u64;
        enc.write_all(b"[\n").unwrap();
        for i in 0..n {
            let l = if i % 1000 == 0 { &other } else { &one };
            enc.write_all(l.as_bytes()).unwrap();
            enc.write_all(if i + 1 == n { b"\n]\n" } else { b",\n" }).unwrap();
            plain += l.len() as u64 + 2;
        }
        enc.finish().unwrap();
        assert!(plain > (BOUND_KIB << 10), "the array must be larger than the bound");
    }
    let out = scan(&["--format", "jsonl", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = jsonl_rows(&out);
    assert_eq!(rows.len(), 2);
    let total: u64 = rows.iter().map(|r| r["count"].as_u64().unwrap()).sum();
    assert_eq!(total, n as u64);
    if let Some(kib) = peak_rss_kib(&["-q", "--format", "csv", path.to_str().unwrap()]) {
        assert!(kib < BOUND_KIB, "peak RSS {kib} KiB over a {BOUND_KIB} KiB bound");
    }
    // EVTX: the fixture's chunks replicated into a ~36 MB file (the header's
    // chunk count is then too small: chunks beyond it are read, as evtx does)
    let evtx = std::fs::read(fixtures().join("evtx/evtx_attack_samples_Sysmon_UACME_64.evtx")).unwrap();
    let (head, chunks) = evtx.split_at(4096);
    let copies = 32;
    let path = temp("large.evtx.gz");
    {
        let mut enc = flate2::write::GzEncoder::new(std::fs::File::create(&path).unwrap(), flate2::Compression::fast());
        enc.write_all(head).unwrap();
        for _ in 0..copies {
            enc.write_all(chunks).unwrap();
        }
        enc.finish().unwrap();
        assert!((chunks.len() * copies) as u64 > (BOUND_KIB << 10));
    }
    let out = scan(&["--patterns", "*", "--format", "jsonl", path.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("warning"), "{err}");
    let rows = jsonl_rows(&out);
    let total: u64 = rows.iter().map(|r| r["count"].as_u64().unwrap()).sum();
    assert_eq!(total, copies as u64, "the fixture's one DNS query, once a copy");
    if let Some(kib) = peak_rss_kib(&["-q", "--patterns", "*", "--format", "csv", path.to_str().unwrap()]) {
        assert!(kib < BOUND_KIB, "peak RSS {kib} KiB over a {BOUND_KIB} KiB bound");
    }
}

/// At the end of a scan, the files not read and why, on stderr; not with
/// --quiet. The rows are those of the files that were read.
#[test]
fn the_files_skipped_are_listed_at_the_end_with_why() {
    let dir = temp("skipped");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("a_empty.log"), b"").unwrap();
    std::fs::write(dir.join("b_binary.bin"), [0u8, 1, 2, 3, 0xff]).unwrap();
    std::fs::write(dir.join("c_blank.txt"), b"   \n\n").unwrap();
    std::fs::write(dir.join("d_empty.gz"), gzip(b"")).unwrap();
    std::fs::write(dir.join("sub/e_notes.txt.gz"), gzip(b"incident notes")).unwrap();
    std::fs::write(
        dir.join("f_events.xml"),
        xml_event("pastebin.com", PS, "2023-11-14 22:13:20"),
    )
    .unwrap();
    let out = scan(&["--format", "csv", dir.to_str().unwrap(), "/nonexistent/abusedweb-skip"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "an unreadable path: {err}");
    assert_eq!(
        out.stdout.iter().filter(|b| **b == b'\n').count(),
        2,
        "the XML file's row"
    );
    let list: Vec<&str> = err
        .lines()
        .skip_while(|l| !l.starts_with("abusedweb scan: 6 files skipped:"))
        .collect();
    let d = dir.display();
    assert_eq!(
        list[1..],
        [
            format!("  {d}/a_empty.log: empty"),
            format!("  {d}/b_binary.bin: not EVTX, JSON or XmlWinEventLog (it starts with \"\\0\\u{{1}}\\u{{2}}\\u{{3}}\u{fffd}\")"),
            format!("  {d}/c_blank.txt: only blank space in its first 5 bytes"),
            format!("  {d}/d_empty.gz: empty once decompressed"),
            format!("  {d}/sub/e_notes.txt.gz: not EVTX, JSON or XmlWinEventLog (it starts with \"incident notes\", decompressed)"),
            "  /nonexistent/abusedweb-skip: not readable: No such file or directory (os error 2)".to_string(),
        ],
        "{err}"
    );
    // after the summary line, the last thing said
    assert!(
        err.lines().rev().nth(7).unwrap().contains("1 DNS-query records"),
        "{err}"
    );
    let quiet = scan(&["-q", "--format", "csv", dir.to_str().unwrap()]);
    assert_eq!(quiet.status.code(), Some(0));
    assert!(quiet.stderr.is_empty(), "{}", stderr(&quiet));
    assert_eq!(quiet.stdout, out.stdout);
}

/// An EVTX file's chunks rendered by several threads give the records and
/// warnings one thread gives, in the same order: a file of the fixtures'
/// chunks, with a corrupted chunk, a chunk of zeros, records that are not
/// DNS queries, a header that lists too few chunks and a last chunk cut
/// short.
#[test]
fn evtx_chunks_rendered_by_several_threads_read_as_by_one() {
    use abusedweb::scan::read::{read_input, Item};
    const HEADER: usize = 4096;
    const CHUNK: usize = 65536;
    let mut file = Vec::new();
    let mut chunks = 0;
    for name in [
        "evtx_attack_samples_Sysmon_UACME_64.evtx",
        "sigma_dns_query_win_ligolo_ng.evtx",
        "evtx_to_mitre_PSexec_as_system_execution.evtx",
        "sigma_dns_query_win_remote_access_anydesk.evtx",
        "sigma_dns_query_win_wildcard_dns_nip_io.evtx",
    ] {
        let evtx = std::fs::read(fixtures().join("evtx").join(name)).unwrap();
        if file.is_empty() {
            file.extend_from_slice(&evtx[..HEADER]);
        }
        for chunk in evtx[HEADER..].chunks_exact(CHUNK) {
            file.extend_from_slice(chunk);
            chunks += 1;
            if chunks == 3 {
                // a damaged copy of the chunk just written
                let mut bad = chunk.to_vec();
                for b in &mut bad[512..4096] {
                    *b ^= 0x5a;
                }
                file.extend_from_slice(&bad);
                file.extend_from_slice(&[0u8; CHUNK]);
            }
        }
    }
    file.extend_from_within(HEADER..HEADER + 1000);
    let read = |threads: usize| {
        let mut items = Vec::new();
        let format = read_input(
            Box::new(std::io::Cursor::new(file.clone())),
            &mut |item| match item {
                Item::Warning(w) => items.push(format!("warning: {w}")),
                Item::Record(r) => items.push(format!("{r:?}")),
            },
            threads,
        );
        assert!(format.is_ok());
        items
    };
    let one = read(1);
    let records = one.iter().filter(|i| !i.starts_with("warning: ")).count();
    let warnings = one.len() - records;
    assert!(records >= 5, "{records} records");
    assert!(warnings >= 2, "{one:#?}");
    assert!(one.last().unwrap().contains("EVTX file truncated: chunk"), "{one:#?}");
    for threads in [2, 3, 8] {
        assert_eq!(read(threads), one, "{threads} threads");
    }
}
