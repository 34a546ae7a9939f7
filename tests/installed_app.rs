//! The app as a Splunk admin installs it: each tarball (dist/abusedweb-<version>.tar.gz,
//! the Splunk Cloud package, and dist/abusedweb-<version>-onprem.tar.gz) extracted
//! into an empty etc/apps, the program found the way splunkd finds it for every
//! platform the package serves, its headers checked, and the Search Command Protocol
//! v2 exchange of docs/behaviour.md run against each program: natively, under
//! qemu-user for the other Linux architecture, under Wine for the Windows program.
//! What must work is the installed command, not the cargo build.
//!
//! Needs the tarballs: `make package` (scripts/package.sh) writes them and installs
//! qemu-user-static and wine64.

use std::collections::BTreeSet;
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

#[derive(Clone, Copy, Debug, PartialEq)]
enum Package {
    /// dist/abusedweb-<version>.tar.gz: Linux x86_64 + aarch64, the x86_64
    /// program kept out of the knowledge bundle.
    Main,
    /// dist/abusedweb-<version>-onprem.tar.gz: also the Windows program, nothing
    /// kept out of the bundle.
    OnPrem,
}

impl Package {
    fn tarball_name(self) -> String {
        match self {
            Package::Main => format!("{APP}-{}.tar.gz", env!("CARGO_PKG_VERSION")),
            Package::OnPrem => format!("{APP}-{}-onprem.tar.gz", env!("CARGO_PKG_VERSION")),
        }
    }

    fn tarball(self) -> PathBuf {
        let path = root().join("dist").join(self.tarball_name());
        assert!(path.is_file(), "{} not found: run `make package` first", path.display());
        path
    }

    /// $SPLUNK_HOME/etc/apps with the tarball extracted into it (once per test run).
    fn apps_dir(self) -> &'static Path {
        static MAIN: OnceLock<PathBuf> = OnceLock::new();
        static ONPREM: OnceLock<PathBuf> = OnceLock::new();
        let (cell, name) = match self {
            Package::Main => (&MAIN, "main"),
            Package::OnPrem => (&ONPREM, "onprem"),
        };
        cell.get_or_init(|| {
            let tarball = self.tarball();
            let home = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
                .join("installed_app")
                .join(name);
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

    fn app(self) -> PathBuf {
        self.apps_dir().join(APP)
    }

    /// Every program in the package, app-relative.
    fn programs(self) -> Vec<&'static str> {
        match self {
            Package::Main => vec!["bin/abusedweb", "linux_x86_64/bin/abusedweb"],
            Package::OnPrem => vec![
                "bin/abusedweb",
                "linux_x86_64/bin/abusedweb",
                "windows_x86_64/bin/abusedweb.exe",
            ],
        }
    }
}

const PACKAGES: [Package; 2] = [Package::Main, Package::OnPrem];

/// The platform folder names commands.conf.spec lists for `<app>/<PLATFORM>/bin`.
const SPLUNK_PLATFORMS: [&str; 5] = [
    "linux_x86_64",
    "linux_x86",
    "windows_x86_64",
    "windows_x86",
    "darwin_x86_64",
];

/// Names an aarch64 host might use: Splunk documents none, so whatever it is,
/// it is not one of [`SPLUNK_PLATFORMS`] and no such folder is shipped.
const AARCH64_NAMES: [&str; 3] = ["linux_aarch64", "linux_arm64", "linux_arm"];

/// splunkd's folder name for this host (an undocumented one for aarch64).
fn host_platform() -> &'static str {
    match (std::env::consts::OS, std::env::consts::ARCH) {
        ("linux", "x86_64") => "linux_x86_64",
        ("linux", "x86") => "linux_x86",
        ("linux", "aarch64") => "linux_aarch64",
        ("windows", "x86_64") => "windows_x86_64",
        ("windows", "x86") => "windows_x86",
        ("macos", "x86_64") => "darwin_x86_64",
        (os, arch) => panic!("no Splunk platform for {os}/{arch}"),
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

/// The program splunkd runs for a chunked command on a host whose platform
/// folder is `platform`: <app>/<platform>/bin/<filename>, else <app>/bin/<filename>,
/// the filename taken as given (no extension appended: commands.conf.spec appends
/// extensions only when `filename` is not set).
fn resolve(app: &Path, platform: &str, filename: &str) -> Option<PathBuf> {
    [
        app.join(platform).join("bin").join(filename),
        app.join("bin").join(filename),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

/// What a program file is, read from its headers.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Machine {
    /// Static ELF (no PT_INTERP, no DT_NEEDED), e_machine 62.
    LinuxX86_64,
    /// Static ELF, e_machine 183.
    LinuxAarch64,
    /// PE32+ console program, machine 0x8664.
    WindowsX86_64,
}

fn u16_at(d: &[u8], off: usize) -> u16 {
    u16::from_le_bytes(d[off..off + 2].try_into().unwrap())
}
fn u32_at(d: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(d[off..off + 4].try_into().unwrap())
}
fn u64_at(d: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(d[off..off + 8].try_into().unwrap())
}

fn machine(path: &Path) -> Machine {
    let d = fs::read(path).unwrap();
    let what = path.display();
    if d.starts_with(b"\x7fELF") {
        assert_eq!((d[4], d[5]), (2, 1), "{what}: not a 64-bit little-endian ELF");
        let (phoff, phentsize, phnum) = (u64_at(&d, 32) as usize, u16_at(&d, 54) as usize, u16_at(&d, 56));
        for i in 0..phnum as usize {
            let ph = phoff + i * phentsize;
            let p_type = u32_at(&d, ph);
            assert_ne!(p_type, 3, "{what}: PT_INTERP, dynamically linked");
            if p_type == 2 {
                let (off, size) = (u64_at(&d, ph + 8) as usize, u64_at(&d, ph + 32) as usize);
                for entry in (off..off + size).step_by(16) {
                    assert_ne!(u64_at(&d, entry), 1, "{what}: DT_NEEDED, needs a shared library");
                }
            }
        }
        match u16_at(&d, 18) {
            62 => Machine::LinuxX86_64,
            183 => Machine::LinuxAarch64,
            m => panic!("{what}: ELF e_machine {m}"),
        }
    } else if d.starts_with(b"MZ") {
        let pe = u32_at(&d, 0x3c) as usize;
        assert_eq!(&d[pe..pe + 4], b"PE\0\0", "{what}: no PE signature");
        assert_eq!(u16_at(&d, pe + 4), 0x8664, "{what}: PE machine");
        assert_eq!(u16_at(&d, pe + 24), 0x20b, "{what}: not PE32+");
        assert_eq!(u16_at(&d, pe + 24 + 68), 3, "{what}: not a console program");
        Machine::WindowsX86_64
    } else {
        panic!("{what} is neither ELF nor PE")
    }
}

/// How this host runs a program of that machine: directly, or through an emulator.
fn runner(m: Machine) -> Option<PathBuf> {
    let emulator = |name: &str| {
        std::env::var_os("PATH")
            .and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join(name))
                    .find(|p| p.is_file())
            })
            .unwrap_or_else(|| panic!("{name} not found: Debian's qemu-user-static (`make package` installs it)"))
    };
    match (m, std::env::consts::ARCH) {
        (Machine::LinuxX86_64, "x86_64") | (Machine::LinuxAarch64, "aarch64") => None,
        (Machine::LinuxX86_64, _) => Some(emulator("qemu-x86_64-static")),
        (Machine::LinuxAarch64, _) => Some(emulator("qemu-aarch64-static")),
        (Machine::WindowsX86_64, _) => Some(root().join("scripts/wine.sh")),
    }
}

/// The program this host's splunkd would run from the Splunk Cloud package.
fn host_program() -> PathBuf {
    let app = Package::Main.app();
    resolve(&app, host_platform(), &command_filename(&app)).expect("splunkd would find no program on this host")
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
    /// Starts `program` as splunkd would, through this host's emulator if it needs one.
    fn start(program: &Path) -> Splunkd {
        let mut command = match runner(machine(program)) {
            Some(runner) => {
                let mut c = Command::new(runner);
                c.arg(program);
                c
            }
            None => Command::new(program),
        };
        let mut child = command
            .current_dir(env!("CARGO_TARGET_TMPDIR"))
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
            "dispatch_dir": Path::new(env!("CARGO_TARGET_TMPDIR")).join("var/run/splunk/dispatch/1700000000.1"),
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

/// The search of the README's check, over four execute chunks, against `program`.
fn answers_a_search(program: &Path) {
    let mut splunkd = Splunkd::start(program);

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

// ---------------------------------------------------------------------------

fn names(d: &Path) -> Vec<String> {
    let mut v: Vec<_> = fs::read_dir(d)
        .unwrap_or_else(|e| panic!("{}: {e}", d.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Every file of the installed app, app-relative, with `/` separators.
fn files(app: &Path) -> Vec<String> {
    let mut out = vec![];
    let mut todo = vec![app.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.push(path.strip_prefix(app).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn tarballs_are_one_app_folder_holding_the_repositorys_files() {
    for package in PACKAGES {
        let apps = package.apps_dir();
        assert_eq!(
            names(apps),
            [APP],
            "{package:?}: the tarball must hold exactly one folder, {APP}/"
        );
        let app = package.app();

        // The shipped confs and docs are the repository's, byte for byte; the
        // on-prem package takes its distsearch.conf from default-onprem/.
        for (shipped, source) in [("default", "default"), ("metadata", "app/metadata"), ("bin", "bin")] {
            let mut want = names(&root().join(source));
            if shipped == "bin" {
                want.push(APP.to_string());
                want.sort();
            }
            assert_eq!(names(&app.join(shipped)), want, "{package:?}: {shipped}/");
            for name in names(&root().join(source)) {
                let from = if package == Package::OnPrem && shipped == "default" && name == "distsearch.conf" {
                    root().join("default-onprem").join(&name)
                } else {
                    root().join(source).join(&name)
                };
                assert_eq!(
                    fs::read(app.join(shipped).join(&name)).unwrap(),
                    fs::read(&from).unwrap(),
                    "{package:?}: {shipped}/{name} differs from {} (stale tarball? run `make package`)",
                    from.display()
                );
            }
        }
        for file in ["app.manifest", "README.md", "LICENSE"] {
            assert_eq!(
                fs::read(app.join(file)).ok(),
                fs::read(root().join("app").join(file)).ok(),
                "{package:?}: {file} (stale tarball? run `make package`)"
            );
        }
        assert!(!app.join("local").exists(), "an app must not ship local/");

        // The pattern lookup: the repository's CSV, alone. lookups/README.txt stays
        // in the source tree (AppInspect fails any non-CSV file in lookups/), and an
        // admin's abused_web_services_local.csv must never be in a package, or an
        // upgrade would overwrite the admin's copy.
        assert_eq!(
            names(&app.join("lookups")),
            ["abused_web_services.csv"],
            "{package:?}: lookups/"
        );
        assert_eq!(
            fs::read(app.join("lookups/abused_web_services.csv")).unwrap(),
            fs::read(root().join("lookups/abused_web_services.csv")).unwrap(),
            "{package:?}: lookups/abused_web_services.csv (stale tarball? run `make package`)"
        );

        // Licences: the index names every program; the Windows one brings mingw-w64's.
        let index = fs::read_to_string(app.join("licenses/README.txt")).unwrap();
        for program in package.programs() {
            assert!(
                index.contains(program),
                "{package:?}: licenses/README.txt does not name {program}"
            );
        }
        assert!(app.join("licenses/musl/COPYRIGHT.txt").is_file());
        assert_eq!(
            app.join("licenses/mingw-w64").is_dir(),
            package == Package::OnPrem,
            "{package:?}: licenses/mingw-w64/ goes with the Windows program"
        );

        // The programs are exactly these, and the same bytes in both packages.
        let found: Vec<String> = files(&app)
            .into_iter()
            .filter(|f| {
                let head = fs::read(app.join(f)).unwrap();
                head.starts_with(b"\x7fELF") || head.starts_with(b"MZ")
            })
            .collect();
        let mut want: Vec<String> = package.programs().iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(found, want, "{package:?}: programs in the package");
        for program in package.programs() {
            assert_eq!(
                fs::read(app.join(program)).unwrap(),
                fs::read(Package::OnPrem.app().join(program)).unwrap(),
                "{program} differs between the two packages"
            );
        }

        // AppInspect's hygiene: no dot-files, 0755 dirs, 0644 files, exec only for
        // the programs (all under bin/ folders).
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
                } else if package.programs().iter().any(|p| rel == Path::new(p)) {
                    assert_eq!(mode, 0o755, "{rel:?} mode {mode:o}");
                    assert_eq!(rel.parent().unwrap().file_name().unwrap(), "bin", "{rel:?}");
                } else {
                    assert_eq!(mode, 0o644, "{rel:?} mode {mode:o}");
                }
            }
        }
    }
}

#[test]
fn splunkd_finds_the_program_for_each_platform() {
    for package in PACKAGES {
        let app = package.app();
        let filename = command_filename(&app);
        assert_eq!(filename, APP);
        let find = |platform: &str, filename: &str| {
            resolve(&app, platform, filename).map(|p| p.strip_prefix(&app).unwrap().to_path_buf())
        };

        // Linux x86-64: its own folder.
        assert_eq!(
            find("linux_x86_64", &filename),
            Some("linux_x86_64/bin/abusedweb".into())
        );
        assert_eq!(machine(&app.join("linux_x86_64/bin/abusedweb")), Machine::LinuxX86_64);

        // Linux aarch64: no documented folder name, so the fallback bin/.
        for name in AARCH64_NAMES {
            assert!(!SPLUNK_PLATFORMS.contains(&name));
            assert!(!app.join(name).exists(), "{package:?}: ships {name}/");
            assert_eq!(
                find(name, &filename),
                Some("bin/abusedweb".into()),
                "{package:?} {name}"
            );
        }
        assert_eq!(machine(&app.join("bin/abusedweb")), Machine::LinuxAarch64);

        // The only platform folders are ours.
        let platform_dirs: Vec<String> = names(&app).into_iter().filter(|n| n.contains('_')).collect();
        let want: &[&str] = match package {
            Package::Main => &["linux_x86_64"],
            Package::OnPrem => &["linux_x86_64", "windows_x86_64"],
        };
        assert_eq!(platform_dirs, want, "{package:?}: platform folders");
        for dir in &platform_dirs {
            assert!(
                SPLUNK_PLATFORMS.contains(&dir.as_str()),
                "{dir} is not a platform splunkd knows"
            );
        }

        // Windows, as shipped (filename = abusedweb): splunkd appends no extension,
        // so it falls back to bin/abusedweb, the aarch64 program, which Windows
        // cannot run: app/README.md says so.
        assert_eq!(find("windows_x86_64", &filename), Some("bin/abusedweb".into()));
        match package {
            Package::Main => assert!(!app.join("windows_x86_64").exists()),
            Package::OnPrem => {
                // With the documented local/commands.conf override
                // (filename = abusedweb.exe), Windows finds the PE ...
                assert_eq!(
                    find("windows_x86_64", "abusedweb.exe"),
                    Some("windows_x86_64/bin/abusedweb.exe".into())
                );
                assert_eq!(
                    machine(&app.join("windows_x86_64/bin/abusedweb.exe")),
                    Machine::WindowsX86_64
                );
                // ... and a Linux host given the same override finds nothing, which
                // is why the override is only for all-Windows deployments.
                assert_eq!(find("linux_x86_64", "abusedweb.exe"), None);
                assert_eq!(find("linux_aarch64", "abusedweb.exe"), None);
            }
        }
    }

    let program = host_program();
    let mode = fs::metadata(&program).unwrap().permissions().mode();
    assert_eq!(mode & 0o111, 0o111, "{} is not executable", program.display());
}

/// `[replicationDenylist]`/`[replicationBlacklist]` regexes of an installed distsearch.conf.
fn deny_regexes(app: &Path) -> Vec<String> {
    let conf = fs::read_to_string(app.join("default/distsearch.conf")).unwrap();
    let mut stanza = String::new();
    let mut out = vec![];
    for line in conf.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            stanza = name.to_string();
            continue;
        }
        let (_, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("distsearch.conf: {line}"));
        assert!(
            stanza == "replicationDenylist" || stanza == "replicationBlacklist",
            "distsearch.conf: unexpected setting in [{stanza}]: {line}"
        );
        out.push(value.trim().to_string());
    }
    out
}

/// The app's files that the deny regexes keep out of the knowledge bundle, matched
/// as AppInspect (Python `re.match`) and splunkd do against the path below etc/:
/// apps/<app>/..., with / and with \ separators, and as AppInspect names it,
/// apps/<tarball file name>/... (packaging.md 3.3, quirk 3). All three must agree.
fn denied_files(package: Package) -> BTreeSet<String> {
    let app = package.app();
    let regexes = deny_regexes(&app);
    let all = files(&app);
    let script = r#"
import json, re, sys
regexes, files, tarball = json.load(sys.stdin)
out = []
for f in files:
    forms = ["apps/abusedweb/" + f, "apps\\abusedweb\\" + f.replace("/", "\\"), "apps/" + tarball + "/" + f]
    hits = [any(re.match(r, p) for r in regexes) for p in forms]
    if len(set(hits)) != 1:
        sys.exit(f"{f}: denied only in some path forms: {list(zip(forms, hits))}")
    if hits[0]:
        out.append(f)
json.dump(out, sys.stdout)
"#;
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let input = json!([regexes, all, package.tarball_name()]).to_string();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python3 regex check failed");
    serde_json::from_slice::<Vec<String>>(&out.stdout)
        .unwrap()
        .into_iter()
        .collect()
}

#[test]
fn distsearch_conf_replicates_what_the_readme_says() {
    // Splunk Cloud package: exactly the x86_64 program stays out of the bundle,
    // by a regex that does not name the app folder, so the only program
    // replicated to indexers is the aarch64 one.
    let main = Package::Main.app();
    let regexes = deny_regexes(&main);
    assert_eq!(regexes.len(), 1, "{regexes:?}");
    assert!(
        !regexes[0].contains("apps"),
        "the regex must not name the app folder: {}",
        regexes[0]
    );
    assert_eq!(
        denied_files(Package::Main),
        BTreeSet::from(["linux_x86_64/bin/abusedweb".to_string()])
    );
    let replicated: Vec<&str> = Package::Main
        .programs()
        .into_iter()
        .filter(|p| !denied_files(Package::Main).contains(*p))
        .collect();
    assert_eq!(replicated, ["bin/abusedweb"]);
    assert_eq!(machine(&main.join(replicated[0])), Machine::LinuxAarch64);

    // On-prem package: nothing denied, every program replicates.
    assert_eq!(deny_regexes(&Package::OnPrem.app()), Vec::<String>::new());
    assert_eq!(denied_files(Package::OnPrem), BTreeSet::new());
}

#[test]
fn installed_linux_x86_64_program_answers_a_search() {
    for package in PACKAGES {
        answers_a_search(&package.app().join("linux_x86_64/bin/abusedweb"));
    }
}

#[test]
fn installed_linux_aarch64_program_answers_a_search() {
    // Under qemu-user on an x86_64 host.
    for package in PACKAGES {
        answers_a_search(&package.app().join("bin/abusedweb"));
    }
}

#[test]
fn installed_windows_program_answers_a_search() {
    // Under Wine (scripts/wine.sh).
    answers_a_search(&Package::OnPrem.app().join("windows_x86_64/bin/abusedweb.exe"));
}

#[test]
fn installed_command_rejects_an_unknown_option_naming_the_documented_ones() {
    // The options the installed searchbnf.conf offers in the search bar.
    let bnf = fs::read_to_string(Package::Main.app().join("default/searchbnf.conf")).unwrap();
    let syntax = bnf.lines().find_map(|l| l.strip_prefix("syntax = ")).unwrap();
    let options: Vec<&str> = syntax
        .split(|c: char| c.is_whitespace() || c == '(')
        .filter_map(|t| t.split_once("=<").map(|(name, _)| name))
        .collect();
    assert!(options.len() >= 4, "{syntax}");

    let mut splunkd = Splunkd::start(&host_program());
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
    let mut splunkd = Splunkd::start(&host_program());
    splunkd.send(&getinfo(&[]), "");
    let (meta, _) = splunkd.reply();
    assert_eq!(meta["type"], "reporting", "{meta}");
    let (status, stderr) = splunkd.finish();
    assert!(status.success(), "exit status {status}");
    assert_eq!(stderr, "");
}
