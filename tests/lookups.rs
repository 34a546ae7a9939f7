//! The pattern lists as an admin meets them: the program placed in an app
//! folder (`<app>/bin/abusedweb`) beside `lookups/`, as splunkd runs it.
//! Each list loads; each category of `extended` matches its own examples;
//! an admin's `abused_web_services_local.csv` changes the results; a broken
//! lookup stops the search with the file, the row and the fix; the shipped
//! rows are the program's own version's, whatever file an upgrade left.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh `<app>` with the program in `bin/` and the shipped lookup, plus a
/// local file when given; returns the program's path there.
fn app(name: &str, local: Option<&str>, default: Option<&str>) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("lookups-apps")
        .join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("bin")).unwrap();
    fs::create_dir_all(dir.join("lookups")).unwrap();
    let program = dir.join("bin").join(bin().file_name().unwrap());
    // A hard link, not a copy: a copy's open write handle, inherited by a
    // process another test thread starts meanwhile, makes exec fail (ETXTBSY).
    if fs::hard_link(bin(), &program).is_err() {
        fs::copy(bin(), &program).unwrap();
    }
    let shipped = fs::read_to_string(repo().join("lookups/abused_web_services.csv")).unwrap();
    fs::write(dir.join("lookups/abused_web_services.csv"), default.unwrap_or(&shipped)).unwrap();
    if let Some(text) = local {
        fs::write(dir.join("lookups/abused_web_services_local.csv"), text).unwrap();
    }
    program
}

fn search(program: &Path, args: &[&str], queries: &[&str]) -> Outcome {
    let events: Vec<Event> = queries
        .iter()
        .enumerate()
        .map(|(i, q)| dns(PS, q, &format!("{}", 1_700_000_000 + i)))
        .collect();
    run_conversation(program, &getinfo(args), &[body(&events)])
}

/// (QueryName, category, matched_pattern) of each result row.
fn labels(out: &Outcome) -> Vec<(String, String, String)> {
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let last = out.last().unwrap();
    if last.b == 0 {
        return Vec::new();
    }
    let t = last.table();
    let col = |n: &str| {
        t.column(n)
            .unwrap_or_else(|| panic!("no column {n}: {:?}", t.header_names()))
    };
    let (q, c, p) = (col("QueryName"), col("category"), col("matched_pattern"));
    t.rows_lossy()
        .into_iter()
        .map(|r| (r[q].clone(), r[c].clone(), r[p].clone()))
        .collect()
}

fn query_names(out: &Outcome) -> Vec<String> {
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let last = out.last().unwrap();
    if last.b == 0 {
        return Vec::new();
    }
    let t = last.table();
    let q = t.column("QueryName").unwrap();
    t.rows_lossy().into_iter().map(|r| r[q].clone()).collect()
}

#[test]
fn each_category_of_extended_matches_its_own_examples() {
    let program = app("categories", None, None);
    let examples = [
        ("paste", "pastebin.com"),
        ("paste", "rentry.co"),
        ("chat", "cdn.discordapp.com"),
        ("chat", "api.telegram.org"),
        ("tunnel", "abc.ngrok.io"),
        ("tunnel", "x.trycloudflare.com"),
        ("dynamic dns", "evil.duckdns.org"),
        ("dynamic dns", "c2.ddns.net"),
        ("wildcard dns", "10.0.0.1.nip.io"),
        ("wildcard dns", "1-2-3-4.sslip.io"),
        ("file sharing", "transfer.sh"),
        ("file sharing", "store1.gofile.io"),
        ("cloud hosting", "raw.githubusercontent.com"),
        ("cloud hosting", "evil.workers.dev"),
        ("request catcher", "webhook.site"),
        ("request catcher", "abc.oast.fun"),
    ];
    let queries: Vec<&str> = examples.iter().map(|(_, q)| *q).chain(["www.microsoft.com"]).collect();
    let got = labels(&search(&program, &["list=extended"], &queries));
    for (category, query) in examples {
        let row = got
            .iter()
            .find(|(q, _, _)| q == query)
            .unwrap_or_else(|| panic!("{query} ({category}) did not match extended: {got:?}"));
        assert_eq!(row.1, category, "{query}: {row:?}");
        assert!(
            row.2.starts_with('*') || row.2.ends_with('*'),
            "{query}: matched_pattern {:?} is a wildcard",
            row.2
        );
    }
    assert!(!got.iter().any(|(q, _, _)| q == "www.microsoft.com"));
}

#[test]
fn every_list_loads_and_the_defaults_keep_todays_columns() {
    let program = app("lists", None, None);
    for list in ["escu_v1", "escu_v13", "extended"] {
        let out = search(&program, &[&format!("list={list}")], &["pastebin.com"]);
        assert_eq!(out.code(), Some(0), "{list}: {}", out.describe());
    }
    // The default list and escu_v1 by name give today's nine columns.
    for args in [&[][..], &["list=escu_v1"][..]] {
        let out = search(&program, args, &["pastebin.com"]);
        assert_eq!(out.last().unwrap().table().header_names(), RESULT_COLUMNS, "{args:?}");
    }
    // escu_v13 drops the broad *discord* of v1-v4 for *cdn.discordapp.com*.
    let got = query_names(&search(
        &program,
        &["list=escu_v13"],
        &["discord.gg", "cdn.discordapp.com"],
    ));
    assert_eq!(got, ["cdn.discordapp.com"]);
}

#[test]
fn an_admins_local_lookup_changes_the_results() {
    let queries = ["pastebin.com", "discord.gg", "evil.example.net"];
    let shipped = app("shipped", None, None);
    assert_eq!(
        query_names(&search(&shipped, &[], &queries)),
        ["discord.gg", "pastebin.com"]
    );

    let local = "pattern,category,lists,reference,note,disabled\n\
                 *discord*,chat,escu_v1,our SOC,Discord is allowed here,1\n\
                 *.example.net,file sharing,escu_v1 ours,our SOC,seen in an incident,\n";
    let edited = app("edited", Some(local), None);
    assert_eq!(
        query_names(&search(&edited, &[], &queries)),
        ["evil.example.net", "pastebin.com"]
    );
    // A list of the admin's own, made by the local file alone.
    let got = labels(&search(&edited, &["list=ours"], &queries));
    assert_eq!(
        got,
        [("evil.example.net".into(), "file sharing".into(), "*.example.net".into())]
    );
    // patterns= still overrides any list.
    assert_eq!(
        query_names(&search(&edited, &["patterns=*discord*"], &queries)),
        ["discord.gg"]
    );
}

#[test]
fn a_broken_lookup_names_the_file_the_row_and_the_fix() {
    let cases = [
        (
            Some("pattern,category,lists,reference,note\n*a*,paste,escu_v1,r\n"),
            None,
            &[][..],
            &["abused_web_services_local.csv, row 1: it has 4 values, the header 5"][..],
        ),
        (
            Some("pattern,category,lists,reference,note\n*pastebin*,,escu_v1,r,\n"),
            None,
            &[],
            &["abused_web_services_local.csv, row 1: the pattern *pastebin* has no category"],
        ),
        (
            None,
            None,
            &["list=nope"],
            &["unknown pattern list \"nope\": the lookups define escu_v13, extended, escu_v1"],
        ),
    ];
    for (i, (local, default, args, needles)) in cases.into_iter().enumerate() {
        let program = app(&format!("broken{i}"), local, default);
        let out = search(&program, args, &["pastebin.com"]);
        assert_fatal(&out, needles);
    }
}

/// The shipped rows are built into the program: an older or edited
/// `abused_web_services.csv` on disk (as an upgrade on a search head cluster
/// or Splunk Cloud may leave it) does not change what the program matches.
#[test]
fn the_shipped_rows_are_the_programs_own_whatever_the_file_on_disk_says() {
    let stale = "pattern,category,lists,reference,note\n*example.org*,paste,escu_v1,old version,\n";
    let program = app("stale", None, Some(stale));
    assert_eq!(
        query_names(&search(&program, &[], &["pastebin.com", "example.org"])),
        ["pastebin.com"]
    );
}

#[test]
fn an_unreadable_lookup_is_an_error_naming_it() {
    let program = app("unreadable", None, None);
    let local = program
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("lookups/abused_web_services_local.csv");
    fs::create_dir_all(&local).unwrap(); // a folder where the file should be cannot be read
    let out = search(&program, &[], &["pastebin.com"]);
    assert_fatal(
        &out,
        &["cannot read the pattern lookup", "abused_web_services_local.csv"],
    );
}
