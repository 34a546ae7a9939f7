//! The Splunk app's .conf files, parsed the way splunkd reads them, checked against
//! each other, against the crate, against docs/behaviour.md and against ESCU's
//! generated stanza for "Windows Abused Web Services" (../shared/docs/escu/).
//!
//! These read the sources under default/ and app/; tests/installed_app.rs checks
//! that the tarball ships exactly these files.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

const STANZA: &str = "abusedweb - Windows Abused Web Services - Rule";
const ESCU_STANZA: &str = "ESCU - Windows Abused Web Services - Rule";
const SEARCH: &str = "`sysmon` EventCode=22 | abusedweb | `security_content_ctime(firstTime)` \
                      | `security_content_ctime(lastTime)` | `windows_abused_web_services_filter`";
const DRILLDOWN_SUFFIX: &str = " | search  dest = \"$dest$\"";

/// Keys whose value we deliberately do not take from ESCU, and why.
const DIFFERS_FROM_ESCU: &[(&str, &str)] = &[
    // The whole point: `| abusedweb` replaces QueryName IN (...) | stats | rename.
    ("search", "runs | abusedweb"),
    // Drilldown 1 re-runs the detection search, so it must be ours too.
    (
        "action.notable.param.drilldown_searches",
        "drilldown 1 runs | abusedweb",
    ),
    // Follows the stanza name, which must not collide with ESCU's own stanza.
    ("action.correlationsearch.label", "own name"),
];

// ---------------------------------------------------------------------------
// A small .conf parser: [stanza] headers, `key = value`, `#` comment lines,
// trailing-backslash continuations (the newline is kept in the value, as splunkd
// does). Settings before any stanza go to a stanza named IMPLICIT.

const IMPLICIT: &str = "(settings before any stanza)";

#[derive(Debug)]
struct Stanza {
    name: String,
    entries: Vec<(String, String)>,
}

impl Stanza {
    fn get(&self, key: &str) -> Option<&str> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn want(&self, key: &str) -> &str {
        self.get(key)
            .unwrap_or_else(|| panic!("[{}] has no `{key}`", self.name))
    }

    fn keys(&self) -> Vec<&str> {
        self.entries.iter().map(|(k, _)| k.as_str()).collect()
    }
}

#[derive(Debug)]
struct Conf {
    path: PathBuf,
    stanzas: Vec<Stanza>,
}

impl Conf {
    fn stanza(&self, name: &str) -> &Stanza {
        self.stanzas
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{} has no [{name}]", self.path.display()))
    }
}

fn parse_conf(path: &Path, text: &str) -> Conf {
    let mut stanzas = vec![Stanza {
        name: IMPLICIT.to_string(),
        entries: vec![],
    }];
    let mut lines = text.lines().enumerate();
    while let Some((n, first)) = lines.next() {
        let mut line = first.to_string();
        while line.ends_with('\\') {
            line.pop();
            match lines.next() {
                Some((_, more)) => {
                    line.push('\n');
                    line.push_str(more);
                }
                None => panic!("{}:{}: continuation at end of file", path.display(), n + 1),
            }
        }
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if t.starts_with('[') {
            assert!(t.ends_with(']'), "{}:{}: bad stanza header", path.display(), n + 1);
            let name = t[1..t.len() - 1].to_string();
            assert!(
                stanzas.iter().all(|s| s.name != name),
                "{}:{}: stanza [{name}] appears twice",
                path.display(),
                n + 1
            );
            stanzas.push(Stanza { name, entries: vec![] });
            continue;
        }
        let (key, value) = t.split_once('=').unwrap_or_else(|| {
            panic!(
                "{}:{}: neither a stanza nor `key = value`: {t:?}",
                path.display(),
                n + 1
            )
        });
        let (key, value) = (key.trim().to_string(), value.trim().to_string());
        let stanza = stanzas.last_mut().unwrap();
        assert!(
            stanza.get(&key).is_none(),
            "{}:{}: `{key}` set twice in [{}]",
            path.display(),
            n + 1,
            stanza.name
        );
        stanza.entries.push((key, value));
    }
    if stanzas[0].entries.is_empty() {
        stanzas.remove(0);
    }
    Conf {
        path: path.to_path_buf(),
        stanzas,
    }
}

#[test]
fn parser_handles_continuations_comments_and_spacing() {
    let text = "# header\n[a]\nk = v \\\n  more\n# c\nx=y\n\n[b b]\nempty =\n";
    let c = parse_conf(Path::new("t.conf"), text);
    assert_eq!(c.stanzas.len(), 2);
    assert_eq!(c.stanza("a").want("k"), "v \n  more");
    assert_eq!(c.stanza("a").want("x"), "y");
    assert_eq!(c.stanza("b b").want("empty"), "");
}

// ---------------------------------------------------------------------------

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn conf(rel: &str) -> Conf {
    let path = root().join(rel);
    parse_conf(&path, &read(&path))
}

/// ../shared/docs, the research notes ESCU's stanza and macros were saved in.
fn shared_docs() -> PathBuf {
    let dir = std::env::var_os("ABUSEDWEB_SHARED_DOCS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/docs"));
    assert!(
        dir.join("escu").is_dir(),
        "{}/escu not found: the ESCU reference files live in shared/docs beside the \
         repository (or set ABUSEDWEB_SHARED_DOCS)",
        dir.display()
    );
    dir
}

fn escu_stanza() -> Stanza {
    let path = shared_docs().join("escu/stanza_v4_cc505.conf");
    let mut c = parse_conf(&path, &read(&path));
    assert_eq!(c.stanzas.len(), 1);
    c.stanzas.pop().unwrap()
}

/// ESCU's macros, saved as `grep -n -A` output ("706:[name]", "707-key = value", "--").
fn escu_macros() -> Conf {
    let path = shared_docs().join("escu/macros_excerpt_cc505.conf");
    let text: String = read(&path)
        .lines()
        .filter(|l| *l != "--")
        .map(|l| {
            let digits = l.find(|c: char| !c.is_ascii_digit()).unwrap_or(0);
            match l[digits..].chars().next() {
                Some(':') | Some('-') if digits > 0 => &l[digits + 1..],
                _ => l,
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    parse_conf(&path, &text)
}

fn semver(v: &str) -> (u64, u64, u64) {
    let p: Vec<u64> = v
        .split('.')
        .map(|x| x.parse().unwrap_or_else(|_| panic!("{v} is not semver")))
        .collect();
    assert_eq!(p.len(), 3, "{v} is not MAJOR.MINOR.PATCH");
    (p[0], p[1], p[2])
}

/// Backticked macro calls in a search, as macros.conf names them: `f(a,b)` -> `f(2)`.
fn macro_calls(search: &str) -> BTreeSet<String> {
    search
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|call| match call.split_once('(') {
            Some((name, args)) => {
                let n = args.trim_end_matches(')').split(',').count();
                format!("{name}({n})")
            }
            None => call.to_string(),
        })
        .collect()
}

// ---------------------------------------------------------------------------

#[test]
fn every_shipped_conf_parses_and_opens_with_a_comment() {
    let mut files: Vec<PathBuf> = fs::read_dir(root().join("default"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.push(root().join("app/metadata/default.meta"));
    files.sort();
    let mut names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "app.conf",
            "commands.conf",
            "default.meta",
            "distsearch.conf",
            "macros.conf",
            "savedsearches.conf",
            "searchbnf.conf"
        ]
    );
    for path in &files {
        let text = read(path);
        assert!(
            text.starts_with("# "),
            "{} must open with a `#` comment saying what it is for",
            path.display()
        );
        assert!(text.ends_with('\n'), "{}: no final newline", path.display());
        let c = parse_conf(path, &text);
        assert!(
            c.stanzas.iter().all(|s| s.name != IMPLICIT),
            "{}: settings outside any stanza",
            path.display()
        );
    }
}

#[test]
fn app_conf_identity_and_versions_follow_the_crate() {
    let app = conf("default/app.conf");
    let version = env!("CARGO_PKG_VERSION");
    let (major, minor, patch) = semver(version);

    assert_eq!(app.stanza("package").want("id"), "abusedweb");
    assert_eq!(app.stanza("package").want("check_for_updates"), "false");
    assert_eq!(app.stanza("id").want("name"), "abusedweb");
    assert_eq!(app.stanza("id").want("version"), version);
    assert_eq!(app.stanza("launcher").want("version"), version);
    assert!(!app.stanza("launcher").want("author").is_empty());
    assert!(!app.stanza("launcher").want("description").is_empty());
    assert_eq!(
        app.stanza("install").want("build"),
        (major * 1_000_000 + minor * 1000 + patch).to_string(),
        "[install] build must be MAJOR*1000000 + MINOR*1000 + PATCH so it rises with the version"
    );
    let label = app.stanza("ui").want("label");
    assert!(
        (5..=80).contains(&label.len()),
        "AppInspect wants a 5-80 character label"
    );
    assert_eq!(app.stanza("ui").want("is_visible"), "false");
    assert!(
        app.stanza("install").get("install_source_checksum").is_none(),
        "AppInspect rejects install_source_checksum"
    );

    let manifest: Value = serde_json::from_str(&read(&root().join("app/app.manifest"))).unwrap();
    assert_eq!(manifest["info"]["id"]["name"], "abusedweb");
    assert_eq!(manifest["info"]["id"]["version"], version);
    assert_eq!(manifest["info"]["title"], label);
    assert_eq!(manifest["info"]["license"]["name"], "Apache-2.0");
}

#[test]
fn commands_conf_declares_a_chunked_command_with_v2_settings_only() {
    let commands = conf("default/commands.conf");
    assert_eq!(commands.stanzas.len(), 1);
    let cmd = commands.stanza("abusedweb");
    assert_eq!(cmd.want("chunked"), "true");
    assert_eq!(cmd.want("filename"), "abusedweb");
    // With chunked = true splunkd honours only these (commands.conf.spec).
    let allowed = [
        "chunked",
        "filename",
        "is_risky",
        "maxwait",
        "maxchunksize",
        "run_in_preview",
    ];
    for key in cmd.keys() {
        assert!(
            allowed.contains(&key) || key.starts_with("command.arg."),
            "`{key}` means nothing for a chunked command"
        );
    }
}

#[test]
fn metadata_exports_everything_and_lets_admin_and_sc_admin_write() {
    let meta = conf("app/metadata/default.meta");
    let all = meta.stanza("");
    assert_eq!(all.want("export"), "system");
    let access: String = all.want("access").split_whitespace().collect();
    assert_eq!(access, "read:[*],write:[admin,sc_admin]");
}

#[test]
fn macros_are_escus() {
    let ours = conf("default/macros.conf");
    let escu = escu_macros();
    let names = |c: &Conf| -> Vec<String> { c.stanzas.iter().map(|s| s.name.clone()).collect() };
    let mut want = names(&escu);
    want.sort();
    let mut got = names(&ours);
    got.sort();
    assert_eq!(got, want);
    for s in &escu.stanzas {
        assert_eq!(
            ours.stanza(&s.name).entries,
            s.entries,
            "[{}] differs from ESCU's",
            s.name
        );
    }
}

#[test]
fn saved_search_uses_only_macros_that_exist() {
    let saved = conf("default/savedsearches.conf");
    let rule = saved.stanza(STANZA);
    let macros = conf("default/macros.conf");
    let defined: BTreeSet<String> = macros.stanzas.iter().map(|s| s.name.clone()).collect();

    let drill: Value = serde_json::from_str(rule.want("action.notable.param.drilldown_searches")).unwrap();
    let mut searches = vec![rule.want("search").to_string()];
    for d in drill.as_array().unwrap() {
        searches.push(d["search"].as_str().unwrap().to_string());
    }
    let mut used = BTreeSet::new();
    for s in &searches {
        used.extend(macro_calls(s));
    }
    // The risk drilldown's macros come from ESCU/ES too; all three are ours.
    assert_eq!(
        used.iter().cloned().collect::<Vec<_>>(),
        [
            "security_content_ctime(1)",
            "sysmon",
            "windows_abused_web_services_filter"
        ]
    );
    for m in &used {
        assert!(defined.contains(m), "macro `{m}` is used but not in macros.conf");
    }
}

#[test]
fn saved_search_is_escus_stanza_running_abusedweb() {
    let saved = conf("default/savedsearches.conf");
    assert_eq!(saved.stanzas.len(), 1);
    let ours = saved.stanza(STANZA);
    let escu = escu_stanza();
    assert_eq!(escu.name, ESCU_STANZA);
    assert_ne!(ours.name, escu.name, "must not collide with ESCU's own stanza");

    // Every ESCU key, nothing more, in ESCU's order.
    assert_eq!(ours.keys(), escu.keys());

    let differs: BTreeMap<&str, &str> = DIFFERS_FROM_ESCU.iter().copied().collect();
    for (key, value) in &escu.entries {
        if !differs.contains_key(key.as_str()) {
            assert_eq!(ours.want(key), value, "`{key}` differs from ESCU's");
        }
    }

    // The deliberate differences, exactly.
    assert_eq!(ours.want("action.correlationsearch.label"), STANZA);
    assert_eq!(ours.want("search"), SEARCH);
    let ours_dd: Value = serde_json::from_str(ours.want("action.notable.param.drilldown_searches")).unwrap();
    let escu_dd: Value = serde_json::from_str(escu.want("action.notable.param.drilldown_searches")).unwrap();
    let (ours_dd, escu_dd) = (ours_dd.as_array().unwrap(), escu_dd.as_array().unwrap());
    assert_eq!(ours_dd.len(), 2);
    assert_eq!(escu_dd.len(), 2);
    // ESCU's drilldown 1 is its search plus a dest filter: ours is ours plus the same filter.
    assert_eq!(
        escu_dd[0]["search"].as_str().unwrap(),
        format!("{}{DRILLDOWN_SUFFIX}", escu.want("search"))
    );
    assert_eq!(
        ours_dd[0]["search"].as_str().unwrap(),
        format!("{SEARCH}{DRILLDOWN_SUFFIX}")
    );
    for key in ["name", "earliest_offset", "latest_offset"] {
        assert_eq!(ours_dd[0][key], escu_dd[0][key], "drilldown 1 `{key}`");
    }
    assert_eq!(
        ours_dd[0].as_object().unwrap().len(),
        escu_dd[0].as_object().unwrap().len()
    );
    // The risk drilldown does not involve the detection search.
    assert_eq!(ours_dd[1], escu_dd[1]);
}

#[test]
fn saved_search_carries_the_detection_contract() {
    // Spelled out, although the ESCU comparison already implies it: these are what
    // the issue promises admins, and must survive an ESCU refresh of the reference.
    let saved = conf("default/savedsearches.conf");
    let s = saved.stanza(STANZA);
    for (key, value) in [
        ("disabled", "true"),
        ("enableSched", "1"),
        ("cron_schedule", "0 * * * *"),
        ("dispatch.earliest_time", "-70m@m"),
        ("dispatch.latest_time", "-10m@m"),
        ("schedule_window", "auto"),
        ("action.correlationsearch.enabled", "1"),
        ("action.notable", "1"),
        ("action.notable.param.rule_title", "Windows Abused Web Services"),
        ("action.notable.param.security_domain", "endpoint"),
        ("action.notable.param.severity", "low"),
        ("action.notable.param.nes_fields", "user,dest"),
        ("action.risk", "1"),
        (
            "action.risk.param._risk_message",
            "a network connection on known abused web services from $dest$",
        ),
    ] {
        assert_eq!(s.want(key), value, "`{key}`");
    }
    assert!(s
        .want("action.notable.param.rule_description")
        .starts_with("The following analytic"));

    let risk: Value = serde_json::from_str(s.want("action.risk.param._risk")).unwrap();
    assert!(risk
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["risk_object_field"] == "dest" && r["risk_object_type"] == "system" && r["risk_score"] == 36));
    assert!(risk
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["threat_object_field"] == "process_name"));

    let ann: Value = serde_json::from_str(s.want("action.correlationsearch.annotations")).unwrap();
    assert_eq!(ann["mitre_attack"], serde_json::json!(["T1102"]));
    assert_eq!(ann["cis20"], serde_json::json!(["CIS 10"]));
    assert_eq!(ann["nist"], serde_json::json!(["DE.CM"]));
    assert_eq!(ann["analytic_story"], serde_json::json!(["CISA AA24-241A", "NjRAT"]));

    // AppInspect (cloud): scheduled searches bound in time, not real-time, no scripts.
    assert!(!s.want("dispatch.earliest_time").starts_with("rt"));
    assert!(s.get("action.script.filename").is_none());
    assert!(s.get("action.populate_lookup").is_none());
}

/// Option names docs/behaviour.md lists under "Options": lines "* `name=...".
fn documented_options() -> Vec<String> {
    let doc = read(&root().join("docs/behaviour.md"));
    let section = doc
        .split_once("\nOptions")
        .expect("docs/behaviour.md has an Options section")
        .1;
    let opts: Vec<String> = section
        .lines()
        .filter_map(|l| l.strip_prefix("* `"))
        .filter_map(|l| l.split_once('=').map(|(name, _)| name.to_string()))
        .collect();
    assert!(!opts.is_empty(), "no options found in docs/behaviour.md");
    opts
}

#[test]
fn searchbnf_documents_exactly_the_commands_options() {
    let bnf = conf("default/searchbnf.conf");
    let cmd = bnf.stanza("abusedweb-command");
    for key in ["syntax", "shortdesc", "description", "tags"] {
        assert!(!cmd.want(key).trim().is_empty(), "`{key}` is empty");
    }
    assert_eq!(cmd.want("usage"), "public", "only public commands get autocomplete");

    let syntax = cmd.want("syntax");
    assert!(syntax.starts_with("abusedweb "));
    // Options in the syntax: every `name=<...>` or `name=(a|b)`.
    let in_syntax: Vec<String> = syntax
        .split(|c: char| c.is_whitespace() || c == '(')
        .filter_map(|tok| tok.split_once('=').map(|(name, _)| name.to_string()))
        .filter(|name| !name.is_empty())
        .collect();
    let documented = documented_options();
    assert_eq!(in_syntax, documented, "searchbnf syntax vs docs/behaviour.md Options");
    let description = cmd.want("description");
    for opt in &documented {
        assert!(
            description.contains(&format!("{opt}:")),
            "description does not explain `{opt}`"
        );
    }

    // Each example has its comment, uses the command, and only documented options.
    let mut n = 0;
    while let Some(example) = cmd.get(&format!("example{}", n + 1)) {
        n += 1;
        assert!(
            !cmd.want(&format!("comment{n}")).is_empty(),
            "example{n} has no comment{n}"
        );
        let args = example
            .split_once("| abusedweb")
            .unwrap_or_else(|| panic!("example{n} does not run | abusedweb"))
            .1;
        for tok in args
            .split_whitespace()
            .filter(|t| t.contains('=') && !t.starts_with('*'))
        {
            let name = tok.split('=').next().unwrap();
            assert!(
                documented.iter().any(|o| o == name),
                "example{n} uses unknown option {name}"
            );
        }
    }
    assert!(n >= 2, "want at least two examples");
}

#[test]
fn admin_readme_covers_the_options_and_the_admin_tasks() {
    let readme = read(&root().join("app/README.md"));
    for opt in documented_options() {
        assert!(
            readme.contains(&format!("`{opt}`")),
            "README.md does not mention `{opt}`"
        );
    }
    for topic in [
        "## Install",
        "`sysmon` macro",
        "## Enable the correlation search",
        "windows_abused_web_services_filter",
        "## Upgrade",
        "## Uninstall",
        "## Platforms other than Linux x86-64",
        "cargo build --release --locked",
        STANZA,
    ] {
        assert!(readme.contains(topic), "README.md lacks {topic:?}");
    }
}
