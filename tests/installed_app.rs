//! The app as a Splunk admin installs it: dist/abusedweb-<version>.tar.gz extracted
//! into an empty etc/apps, the program found the way splunkd finds it, and the
//! Search Command Protocol v2 exchange of docs/behaviour.md run against that file.
//! What must work is the installed command, not the cargo build.
//!
//! Needs the tarball: `make package` (scripts/package.sh) writes it.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const APP: &str = "abusedweb";
const TIMEOUT: Duration = Duration::from_secs(30);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tarball() -> PathBuf {
    let path = root().join(format!("dist/{APP}-{}.tar.gz", env!("CARGO_PKG_VERSION")));
    assert!(path.is_file(), "{} not found: run `make package` first", path.display());
    path
}

/// $SPLUNK_HOME/etc/apps with the tarball extracted into it (once per test run).
fn apps_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let tarball = tarball();
        let home = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("installed_app");
        let _ = fs::remove_dir_all(&home);
        let apps = home.join("etc/apps");
        fs::create_dir_all(&apps).unwrap();
        let status = Command::new("tar")
            .arg("-xzf")
            .arg(&tarball)
            .arg("-C")
            .arg(&apps)
            .status()
            .expect("run tar");
        assert!(status.success(), "tar -xzf {} failed", tarball.display());
        apps
    })
}

/// splunkd's folder name for this host, as commands.conf.spec lists them.
fn splunk_platform() -> Option<&'static str> {
    match (std::env::consts::OS, std::env::consts::ARCH) {
        ("linux", "x86_64") => Some("linux_x86_64"),
        ("linux", "x86") => Some("linux_x86"),
        ("windows", "x86_64") => Some("windows_x86_64"),
        ("windows", "x86") => Some("windows_x86"),
        ("macos", "x86_64") => Some("darwin_x86_64"),
        _ => None,
    }
}

/// `filename` of [abusedweb] in the installed default/commands.conf.
fn command_filename(app: &Path) -> String {
    let conf = fs::read_to_string(app.join("default/commands.conf")).unwrap();
    let mut in_stanza = false;
    for line in conf.lines().map(str::trim) {
        if line.starts_with('[') {
            in_stanza = line == "[abusedweb]";
        } else if let (true, Some((k, v))) = (in_stanza, line.split_once('=')) {
            if k.trim() == "filename" {
                return v.trim().to_string();
            }
        }
    }
    panic!("commands.conf: [abusedweb] has no filename");
}

/// The program splunkd runs for a chunked command: <app>/<PLATFORM>/bin/<filename>,
/// else <app>/bin/<filename>.
fn installed_program() -> PathBuf {
    let app = apps_dir().join(APP);
    let filename = command_filename(&app);
    let mut candidates = vec![];
    if let Some(platform) = splunk_platform() {
        candidates.push(app.join(platform).join("bin").join(&filename));
    }
    candidates.push(app.join("bin").join(&filename));
    candidates
        .iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("splunkd would find no program: tried {candidates:?}"))
        .clone()
}

// ---------------------------------------------------------------------------
// Minimal SCP v2 framing: `chunked 1.0,<M>,<B>\n<M bytes JSON><B bytes CSV>`.

enum Event {
    Chunk(Value, String),
    Eof,
    Broken(String),
}

fn read_chunk(r: &mut impl BufRead) -> Event {
    let mut header = String::new();
    match r.read_line(&mut header) {
        Ok(0) => return Event::Eof,
        Ok(_) => {}
        Err(e) => return Event::Broken(e.to_string()),
    }
    let lens = header
        .strip_prefix("chunked 1.0,")
        .and_then(|h| h.strip_suffix('\n'))
        .and_then(|h| h.split_once(','))
        .and_then(|(m, b)| Some((m.parse::<usize>().ok()?, b.parse::<usize>().ok()?)));
    let Some((m, b)) = lens else {
        return Event::Broken(format!("bad chunk header {header:?}"));
    };
    let mut buf = vec![0; m + b];
    if let Err(e) = r.read_exact(&mut buf) {
        return Event::Broken(format!("chunk shorter than {header:?}: {e}"));
    }
    let meta = match serde_json::from_slice(&buf[..m]) {
        Ok(v) => v,
        Err(e) => return Event::Broken(format!("metadata is not JSON: {e}")),
    };
    Event::Chunk(meta, String::from_utf8(buf[m..].to_vec()).expect("UTF-8 body"))
}

/// The installed program, driven like splunkd drives it.
struct Splunkd {
    child: Child,
    stdin: Option<ChildStdin>,
    replies: Receiver<Event>,
    stderr: thread::JoinHandle<String>,
}

impl Splunkd {
    fn start() -> Splunkd {
        let program = installed_program();
        let mut child = Command::new(&program)
            .current_dir(apps_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, replies) = mpsc::channel();
        thread::spawn(move || loop {
            let event = read_chunk(&mut stdout);
            let last = !matches!(event, Event::Chunk(..));
            if tx.send(event).is_err() || last {
                break;
            }
        });
        let mut err = child.stderr.take().unwrap();
        let stderr = thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        Splunkd {
            stdin: child.stdin.take(),
            child,
            replies,
            stderr,
        }
    }

    fn send(&mut self, meta: &Value, body: &str) {
        let meta = meta.to_string();
        let chunk = format!("chunked 1.0,{},{}\n{meta}{body}", meta.len(), body.len());
        let stdin = self.stdin.as_mut().expect("stdin still open");
        if let Err(e) = stdin.write_all(chunk.as_bytes()).and_then(|_| stdin.flush()) {
            let status = self.child.wait().unwrap();
            panic!("the program stopped reading requests ({e}); it exited with {status}");
        }
    }

    fn next(&mut self) -> Event {
        match self.replies.recv_timeout(TIMEOUT) {
            Ok(event) => event,
            Err(_) => {
                let _ = self.child.kill();
                panic!("no reply within {TIMEOUT:?}");
            }
        }
    }

    fn reply(&mut self) -> (Value, String) {
        match self.next() {
            Event::Chunk(meta, body) => (meta, body),
            Event::Eof => panic!("the program closed stdout instead of replying"),
            Event::Broken(e) => panic!("unreadable reply: {e}"),
        }
    }

    /// Close stdin, expect stdout to end with no more bytes; exit status and stderr.
    fn finish(mut self) -> (ExitStatus, String) {
        drop(self.stdin.take());
        match self.next() {
            Event::Eof => {}
            Event::Chunk(meta, _) => panic!("unexpected extra reply {meta}"),
            Event::Broken(e) => panic!("unexpected extra output: {e}"),
        }
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if start.elapsed() > TIMEOUT {
                let _ = self.child.kill();
                panic!("the program did not exit within {TIMEOUT:?}");
            }
            thread::sleep(Duration::from_millis(10));
        };
        (status, self.stderr.join().unwrap())
    }
}

fn getinfo(args: &[&str]) -> Value {
    json!({
        "action": "getinfo",
        "preview": false,
        "streaming_command_will_restart": false,
        "searchinfo": {
            "args": args,
            "raw_args": args,
            "dispatch_dir": apps_dir().join("../../var/run/splunk/dispatch/1700000000.1"),
            "sid": "1700000000.1",
            "app": "search",
            "owner": "admin",
            "username": "admin",
            "session_key": "test-session-key",
            "splunkd_uri": "https://127.0.0.1:8089",
            "splunk_version": "9.2.1",
            "search": "search%20%60sysmon%60%20EventCode%3D22%20%7C%20abusedweb",
            "command": "abusedweb",
            "maxresultrows": 50000,
            "earliest_time": "0",
            "latest_time": "0"
        }
    })
}

fn execute(finished: bool) -> Value {
    json!({"action": "execute", "finished": finished})
}

/// Sysmon EventCode 22 rows as splunkd sends them: CSV with a header, every field
/// quoted, a `__mv_` column beside a field (empty: single-valued).
fn sysmon_csv(rows: &[[&str; 7]]) -> String {
    let mut out = String::from(
        "_time,EventCode,Image,QueryName,__mv_QueryName,QueryStatus,process_name,QueryResults,Computer\r\n",
    );
    for [time, image, query, status, process, results, computer] in rows {
        let fields = [*time, "22", image, query, "", status, process, results, computer];
        let quoted: Vec<String> = fields
            .iter()
            .map(|f| format!("\"{}\"", f.replace('"', "\"\"")))
            .collect();
        out.push_str(&quoted.join(","));
        out.push_str("\r\n");
    }
    out
}

fn parse_csv(body: &str) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(body.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

const POWERSHELL: &str = r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe";

// ---------------------------------------------------------------------------

#[test]
fn tarball_is_one_app_folder_holding_the_repositorys_files() {
    let apps = apps_dir();
    let top: Vec<_> = fs::read_dir(apps).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(top, [APP], "the tarball must hold exactly one folder, {APP}/");
    let app = apps.join(APP);

    // The shipped confs and docs are the repository's, byte for byte.
    for (shipped, source) in [("default", "default"), ("metadata", "app/metadata"), ("bin", "bin")] {
        let names = |d: &Path| -> Vec<_> {
            let mut v: Vec<_> = fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name()).collect();
            v.sort();
            v
        };
        assert_eq!(names(&app.join(shipped)), names(&root().join(source)), "{shipped}/");
        for name in names(&root().join(source)) {
            assert_eq!(
                fs::read(app.join(shipped).join(&name)).unwrap(),
                fs::read(root().join(source).join(&name)).unwrap(),
                "{shipped}/{} differs from {source}/ (stale tarball? run `make package`)",
                name.to_string_lossy()
            );
        }
    }
    for file in ["app.manifest", "README.md", "LICENSE"] {
        assert_eq!(
            fs::read(app.join(file)).ok(),
            fs::read(root().join("app").join(file)).ok(),
            "{file} (stale tarball? run `make package`)"
        );
    }
    assert!(app.join("licenses/README.txt").is_file());
    assert!(!app.join("local").exists(), "an app must not ship local/");

    // AppInspect's hygiene: no dot-files, 0755 dirs, 0644 files, exec only under bin/.
    let mut todo = vec![app.clone()];
    while let Some(dir) = todo.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(&app).unwrap().to_path_buf();
            assert!(
                !rel.file_name().unwrap().to_string_lossy().starts_with('.'),
                "dot-file {rel:?}"
            );
            let mode = fs::symlink_metadata(&path).unwrap().permissions().mode() & 0o7777;
            let ft = fs::symlink_metadata(&path).unwrap().file_type();
            assert!(!ft.is_symlink(), "symlink {rel:?}");
            if ft.is_dir() {
                assert_eq!(mode, 0o755, "{rel:?} mode {mode:o}");
                todo.push(path);
            } else if rel == Path::new("linux_x86_64/bin/abusedweb") {
                assert_eq!(mode, 0o755, "{rel:?} mode {mode:o}");
            } else {
                assert_eq!(mode, 0o644, "{rel:?} mode {mode:o}");
            }
        }
    }
}

#[test]
fn splunkd_finds_the_shipped_executable() {
    let program = installed_program();
    let app = apps_dir().join(APP);
    if splunk_platform() == Some("linux_x86_64") {
        assert_eq!(program, app.join("linux_x86_64/bin/abusedweb"));
    }
    let mode = fs::metadata(&program).unwrap().permissions().mode();
    assert_eq!(mode & 0o111, 0o111, "{} is not executable", program.display());
}

#[test]
fn installed_command_answers_a_search() {
    let mut splunkd = Splunkd::start();

    splunkd.send(&getinfo(&[]), "");
    let (meta, body) = splunkd.reply();
    assert_eq!(body, "", "getinfo reply has no body");
    assert_eq!(meta["type"], "reporting", "getinfo reply: {meta}");
    assert_eq!(
        meta["required_fields"],
        json!([
            "_time",
            "Image",
            "QueryName",
            "QueryStatus",
            "process_name",
            "QueryResults",
            "Computer"
        ])
    );

    let ps_results = "type:  5 pastebin.com;::ffff:192.0.2.10;::ffff:192.0.2.11;";
    splunkd.send(
        &execute(false),
        &sysmon_csv(&[
            [
                "1700000000.000",
                POWERSHELL,
                "pastebin.com",
                "0",
                "powershell.exe",
                ps_results,
                "WIN-01",
            ],
            [
                "1700000010",
                r"C:\Program Files\Google\Chrome\Application\chrome.exe",
                "www.example.com",
                "0",
                "chrome.exe",
                "::ffff:192.0.2.20;",
                "WIN-01",
            ],
            [
                "1700000050",
                POWERSHELL,
                "pastebin.com",
                "0",
                "powershell.exe",
                ps_results,
                "WIN-01",
            ],
        ]),
    );
    assert_eq!(splunkd.reply(), (json!({"finished": false}), String::new()));

    splunkd.send(
        &execute(false),
        &sysmon_csv(&[
            [
                "1700000200",
                r"C:\Users\bob\AppData\Local\Discord\app-1.0.9\Discord.exe",
                "cdn.DISCORDapp.com",
                "0",
                "Discord.exe",
                "type:  5 cdn.discordapp.com;::ffff:192.0.2.30;",
                "WIN-02",
            ],
            [
                "1700000300",
                r#"C:\Temp\a,"b".exe"#,
                "x1.eu.ngrok.io",
                "9003",
                r#"a,"b".exe"#,
                "-",
                "WIN-02",
            ],
            // No process_name: stats ... by drops it.
            ["1700000400", POWERSHELL, "pastebin.com", "0", "", ps_results, "WIN-01"],
        ]),
    );
    assert_eq!(splunkd.reply(), (json!({"finished": false}), String::new()));

    // splunkd sometimes sends a header-only chunk.
    splunkd.send(&execute(false), &sysmon_csv(&[]));
    assert_eq!(splunkd.reply(), (json!({"finished": false}), String::new()));

    splunkd.send(
        &execute(true),
        &sysmon_csv(&[[
            "1699999990",
            r"C:\Windows\System32\curl.exe",
            "textbin.net",
            "0",
            "curl.exe",
            "-",
            "WIN-03",
        ]]),
    );
    let (meta, body) = splunkd.reply();
    assert_eq!(meta["finished"], true, "final reply: {meta}");
    assert!(meta.get("error").is_none(), "final reply: {meta}");
    assert!(meta["inspector"].is_object(), "final reply: {meta}");
    assert!(!body.contains('\r'), "result lines end with LF");
    let rows = parse_csv(&body);
    let want: Vec<Vec<String>> = [
        vec![
            "Image",
            "QueryName",
            "QueryStatus",
            "process_name",
            "QueryResults",
            "dest",
            "count",
            "firstTime",
            "lastTime",
        ],
        vec![
            r#"C:\Temp\a,"b".exe"#,
            "x1.eu.ngrok.io",
            "9003",
            r#"a,"b".exe"#,
            "-",
            "WIN-02",
            "1",
            "1700000300",
            "1700000300",
        ],
        vec![
            r"C:\Users\bob\AppData\Local\Discord\app-1.0.9\Discord.exe",
            "cdn.DISCORDapp.com",
            "0",
            "Discord.exe",
            "type:  5 cdn.discordapp.com;::ffff:192.0.2.30;",
            "WIN-02",
            "1",
            "1700000200",
            "1700000200",
        ],
        vec![
            POWERSHELL,
            "pastebin.com",
            "0",
            "powershell.exe",
            ps_results,
            "WIN-01",
            "2",
            "1700000000.000",
            "1700000050",
        ],
        vec![
            r"C:\Windows\System32\curl.exe",
            "textbin.net",
            "0",
            "curl.exe",
            "-",
            "WIN-03",
            "1",
            "1699999990",
            "1699999990",
        ],
    ]
    .iter()
    .map(|r| r.iter().map(|s| s.to_string()).collect())
    .collect();
    assert_eq!(rows, want, "result body:\n{body}");

    let (status, stderr) = splunkd.finish();
    assert!(status.success(), "exit status {status}");
    assert_eq!(stderr, "", "nothing on stderr on the happy path");
}

#[test]
fn installed_command_rejects_an_unknown_option_naming_the_documented_ones() {
    // The options the installed searchbnf.conf offers in the search bar.
    let bnf = fs::read_to_string(apps_dir().join(APP).join("default/searchbnf.conf")).unwrap();
    let syntax = bnf.lines().find_map(|l| l.strip_prefix("syntax = ")).unwrap();
    let options: Vec<&str> = syntax
        .split(|c: char| c.is_whitespace() || c == '(')
        .filter_map(|t| t.split_once("=<").map(|(name, _)| name))
        .collect();
    assert_eq!(options.len(), 4, "{syntax}");

    let mut splunkd = Splunkd::start();
    splunkd.send(&getinfo(&["nosuchoption=1"]), "");
    let (meta, body) = splunkd.reply();
    assert_eq!(body, "");
    assert_eq!(meta["finished"], true, "{meta}");
    let error = meta["error"].as_str().unwrap_or_else(|| panic!("no error in {meta}"));
    assert!(error.contains("nosuchoption"), "{error}");
    for option in options {
        assert!(error.contains(option), "the error does not list `{option}`: {error}");
    }
    assert_eq!(meta["inspector"]["messages"][0][0], "ERROR", "{meta}");
    let (status, _) = splunkd.finish();
    assert_eq!(status.code(), Some(1));
}

#[test]
fn installed_command_exits_quietly_when_splunkd_only_probes_it() {
    let mut splunkd = Splunkd::start();
    splunkd.send(&getinfo(&[]), "");
    let (meta, _) = splunkd.reply();
    assert_eq!(meta["type"], "reporting", "{meta}");
    let (status, stderr) = splunkd.finish();
    assert!(status.success(), "exit status {status}");
    assert_eq!(stderr, "");
}
