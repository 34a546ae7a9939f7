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
    assert!(terminal.contains("14/14 files"), "{terminal:?}");
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
