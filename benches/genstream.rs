//! Writes realistic SCP v2 request streams for `| abusedweb`, the way splunkd
//! sends them to a reporting command: one getinfo chunk (8.x style searchinfo,
//! with the command's `args`), then execute chunks of at most 50,000 rows,
//! `finished:false` on all but the last.
//!
//! The bodies carry exactly the command's required fields
//! (`_time,Image,QueryName,QueryStatus,process_name,QueryResults,Computer`)
//! followed by one `__mv_` column per field, quoted as splunkd quotes (bare
//! only when empty or ASCII alphanumeric), LF line ends.
//!
//! The events are Sysmon EventCode 22 (DNS query) results as the Sysmon TA
//! extracts them. A given fraction (`--match-rate`) of events queries one of
//! the abused web services; each of those belongs to one of a fixed pool of
//! `(Image, QueryName, QueryStatus, process_name, QueryResults, Computer)`
//! tuples (`--groups`), so the number of result rows is bounded by the pool
//! and does not grow with the number of events, as on a real network where a
//! host's processes keep querying the same few services. The first matching
//! events visit every tuple of the pool once, so a stream with enough matches
//! yields exactly the pool size in groups (plus none: a few events lack a
//! by-field and are dropped, others repeat a QueryName as a duplicate
//! multivalue, as the Sysmon TA's double extraction does; both map onto the
//! same tuples).
//!
//! `--patterns K` (K > 6) passes `patterns=` with the six ESCU patterns plus
//! K - 6 synthetic domain patterns under `.abused.invalid`, a name no event
//! ever queries: the result rows of such a stream are those of the same
//! stream with the default patterns, only the matcher's work grows.
//!
//! Everything is deterministic for a given `--seed`: the same arguments give
//! the same bytes, and streams that differ only in `--patterns` carry the same
//! events.
//!
//! ```text
//! cargo run --release --example genstream -- --events 1000000 --match-rate 0.01 \
//!     --groups-profile realistic --out benches/data/e6-m1.scp
//! ```

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

/// splunkd's default `maxresultrows`: rows per execute chunk.
const CHUNK_ROWS: u64 = 50_000;

/// The six patterns of the ESCU search (the `""*textbin*""` slip read as `*textbin*`).
const DEFAULT_PATTERNS: [&str; 6] = [
    "*pastebin*",
    "*textbin*",
    "*ngrok.io*",
    "*discord*",
    "*duckdns.org*",
    "*pasteio.com*",
];

const FIELDS: [&str; 7] = [
    "_time",
    "Image",
    "QueryName",
    "QueryStatus",
    "process_name",
    "QueryResults",
    "Computer",
];

/// Processes seen issuing DNS queries on a Windows fleet.
const IMAGES: [&str; 30] = [
    r"C:\Windows\System32\svchost.exe",
    r"C:\Program Files\Google\Chrome\Application\chrome.exe",
    r"C:\Program Files (x86)\Microsoft\Edge\Application\msedge.exe",
    r"C:\Program Files\Mozilla Firefox\firefox.exe",
    r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
    r"C:\Windows\System32\cmd.exe",
    r"C:\Users\jdoe\AppData\Local\Discord\app-1.0.9013\Discord.exe",
    r"C:\Users\jdoe\AppData\Local\Microsoft\Teams\current\Teams.exe",
    r"C:\Program Files\Microsoft Office\root\Office16\OUTLOOK.EXE",
    r"C:\Program Files\Microsoft Office\root\Office16\WINWORD.EXE",
    r"C:\Windows\explorer.exe",
    r"C:\Windows\System32\backgroundTaskHost.exe",
    r"C:\Windows\System32\taskhostw.exe",
    r"C:\Windows\System32\wermgr.exe",
    r"C:\Windows\System32\curl.exe",
    r"C:\Windows\System32\wscript.exe",
    r"C:\Windows\System32\mshta.exe",
    r"C:\Windows\System32\rundll32.exe",
    r"C:\ProgramData\Microsoft\Windows Defender\Platform\4.18.24090.11-0\MsMpEng.exe",
    r"C:\Program Files\Microsoft OneDrive\OneDrive.exe",
    r"C:\Program Files\Zoom\bin\Zoom.exe",
    r"C:\Program Files\Slack\slack.exe",
    r"C:\Program Files\Python311\python.exe",
    r"C:\Program Files\nodejs\node.exe",
    r"C:\Users\Public\Downloads\update.exe",
    r"C:\Users\jdoe\AppData\Local\Temp\RarSFX0\svhost.exe",
    r"C:\Windows\Tasks\ngrok.exe",
    r"C:\Windows\System32\msiexec.exe",
    r"C:\Program Files\PowerShell\7\pwsh.exe",
    "<unknown process>",
];

/// Everyday DNS traffic; none of these contains an abused-service pattern.
const BENIGN: [&str; 40] = [
    "www.google.com",
    "clients4.google.com",
    "update.googleapis.com",
    "login.microsoftonline.com",
    "outlook.office365.com",
    "teams.microsoft.com",
    "settings-win.data.microsoft.com",
    "v10.events.data.microsoft.com",
    "ctldl.windowsupdate.com",
    "fe3cr.delivery.mp.microsoft.com",
    "wpad.corp.example.com",
    "dc01.corp.example.com",
    "fileserver.corp.example.com",
    "_ldap._tcp.dc._msdcs.corp.example.com",
    "www.bing.com",
    "edge.microsoft.com",
    "go.microsoft.com",
    "officeclient.microsoft.com",
    "slack.com",
    "edgeapi.slack.com",
    "zoom.us",
    "github.com",
    "api.github.com",
    "objects.githubusercontent.com",
    "pypi.org",
    "files.pythonhosted.org",
    "registry.npmjs.org",
    "www.youtube.com",
    "i.ytimg.com",
    "fonts.gstatic.com",
    "ocsp.digicert.com",
    "crl3.digicert.com",
    "time.windows.com",
    "dns.msftncsi.com",
    "www.msftconnecttest.com",
    "onedrive.live.com",
    "wdcp.microsoft.com",
    "smartscreen-prod.microsoft.com",
    "ecs.office.com",
    "nexus.officeapps.live.com",
];

/// Service domains queried by matching events; `{}` is filled with a random
/// label where the service hands out per-user subdomains.
const ABUSED: [&str; 16] = [
    "pastebin.com",
    "Pastebin.com",
    "pastebin.pl",
    "textbin.net",
    "cdn.discordapp.com",
    "discord.com",
    "gateway.discord.gg",
    "media.discordapp.net",
    "discordapp.com",
    "{}.ngrok.io",
    "{}.eu.ngrok.io",
    "tcp.{}.ngrok.io",
    "{}.duckdns.org",
    "{}.DuckDNS.org",
    "pasteio.com",
    "www.pasteio.com",
];

/// What to generate (the command line, also used by `benches/micro.rs`).
pub struct Args {
    pub events: u64,
    pub match_rate: f64,
    /// Size of the pool of result groups the matching events fall into.
    pub groups: usize,
    /// Number of distinct Computers the pool spreads over.
    pub hosts: usize,
    pub patterns: usize,
    pub seed: u64,
    pub out: String,
}

impl Args {
    /// The realistic profile: 800 groups over 400 hosts, 6 patterns. A day of
    /// this detection on a fleet yields a few hundred rows; 800 is also few
    /// enough that 10^5 events at 1% match (about 1,000 matching) visit every
    /// group, so streams of every size give the same result rows count and
    /// memory can be compared across sizes.
    pub fn realistic(events: u64, match_rate: f64) -> Self {
        Args {
            events,
            match_rate,
            groups: 800,
            hosts: 400,
            patterns: 6,
            seed: 1,
            out: String::new(),
        }
    }
}

fn usage() -> &'static str {
    "usage: genstream --events N [--match-rate F] [--groups-profile realistic|high] [--groups N]\n\
     \x20                [--patterns K] [--seed S] --out FILE\n\
     \x20 --events N            number of events (rows) to send\n\
     \x20 --match-rate F        fraction of events querying an abused service (default 0.01)\n\
     \x20 --groups-profile P    realistic: 800 groups over 400 hosts and 30 processes (default);\n\
     \x20                       high: 100,000 groups over 5,000 hosts\n\
     \x20 --groups N            size of the group pool, overriding the profile's\n\
     \x20 --patterns K          number of patterns (6 = the ESCU defaults, no argument sent)\n\
     \x20 --seed S              PRNG seed (default 1)\n\
     \x20 --out FILE            where to write the stream"
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args::realistic(0, 0.01);
    let mut groups_override = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = || format!("bad value for {flag}: {value}");
        let count = || value.replace('_', "").parse::<u64>().map_err(|_| bad());
        match flag.as_str() {
            "--events" => args.events = count()?,
            "--match-rate" => args.match_rate = value.parse().map_err(|_| bad())?,
            "--groups" => groups_override = Some(count()? as usize),
            "--groups-profile" => match value.as_str() {
                "realistic" => (args.groups, args.hosts) = (800, 400),
                "high" => (args.groups, args.hosts) = (100_000, 5_000),
                _ => return Err(bad()),
            },
            "--patterns" => args.patterns = count()? as usize,
            "--seed" => args.seed = count()?,
            "--out" => args.out = value,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if let Some(g) = groups_override {
        args.groups = g;
        // Enough hosts that the tuples stay plausible: about five groups per host.
        args.hosts = (g / 5).clamp(10, 20_000);
    }
    if args.events == 0 || args.out.is_empty() {
        return Err("--events and --out are required".into());
    }
    if !(0.0..=1.0).contains(&args.match_rate) {
        return Err("--match-rate must be within 0..1".into());
    }
    if args.groups == 0 || args.patterns < 6 {
        return Err("--groups must be > 0 and --patterns >= 6".into());
    }
    Ok(args)
}

/// SplitMix64: small, fast, and good enough to pick test values.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        (((self.next() >> 32) * n as u64) >> 32) as usize
    }
    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Index in `0..n`, skewed so that low indexes are picked far more often
    /// (a few chatty hosts and services, a long tail).
    fn skewed(&mut self, n: usize) -> usize {
        let u = self.unit();
        ((u * u * u) * n as f64) as usize % n
    }
    /// A lowercase label of `len` letters from `g..z` and digits, the shape of
    /// tunnel and dynamic-DNS subdomains.
    fn label(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"0123456789ghjkmpqrvwxyz";
        (0..len).map(|_| ALPHABET[self.below(ALPHABET.len())] as char).collect()
    }
}

/// One group of the detection's result: the by-fields of a matching event.
struct Group {
    image: usize,
    query: String,
    status: &'static str,
    results: String,
    host: usize,
}

fn ip(rng: &mut Rng) -> String {
    format!(
        "::ffff:{}.{}.{}.{}",
        [104, 172, 162, 3, 18, 52][rng.below(6)],
        rng.below(256),
        rng.below(256),
        1 + rng.below(254)
    )
}

/// `QueryResults` as Sysmon writes it: `type:  5 <cname>;<ip>;<ip>;` or `-`.
fn query_results(rng: &mut Rng, query: &str, status: &str) -> String {
    if status != "0" {
        return "-".into();
    }
    let mut s = String::new();
    if rng.below(3) == 0 {
        s.push_str(&format!("type:  5 {}.cdn.cloudflare.net;", query.to_ascii_lowercase()));
    }
    for _ in 0..1 + rng.below(3) {
        s.push_str(&ip(rng));
        s.push(';');
    }
    s
}

fn status(rng: &mut Rng) -> &'static str {
    match rng.below(100) {
        0..=89 => "0",
        90..=96 => "9003",
        _ => "9501",
    }
}

fn host_name(i: usize) -> String {
    if i % 50 == 49 {
        format!("SRV-{:04}.corp.example.com", i / 50)
    } else {
        format!("WKS-{:04}.corp.example.com", i)
    }
}

/// The pool of distinct result groups the matching events fall into.
fn group_pool(rng: &mut Rng, n: usize, hosts: usize) -> Vec<Group> {
    let mut seen = HashSet::with_capacity(n);
    let mut pool = Vec::with_capacity(n);
    // Each service gets a few subdomains, reused across hosts as a tunnel or
    // DDNS name is in a real campaign.
    let labels: Vec<String> = (0..64).map(|_| rng.label(12)).collect();
    while pool.len() < n {
        let template = ABUSED[rng.skewed(ABUSED.len())];
        let query = template.replace("{}", &labels[rng.skewed(labels.len())]);
        let status = status(rng);
        let g = Group {
            image: rng.skewed(IMAGES.len()),
            results: query_results(rng, &query, status),
            query,
            status,
            host: rng.below(hosts),
        };
        let key = (g.image, g.query.clone(), g.status, g.results.clone(), g.host);
        if seen.insert(key) {
            pool.push(g);
        }
    }
    pool
}

/// Write `value` the way splunkd does: bare iff empty or only ASCII letters
/// and digits, otherwise in double quotes with quotes doubled.
fn put(out: &mut Vec<u8>, value: &[u8]) {
    if value.iter().all(u8::is_ascii_alphanumeric) {
        out.extend_from_slice(value);
    } else {
        out.push(b'"');
        for &b in value {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    }
}

/// The `__mv_` encoding of a value list: `$v1$;$v2$`, `$` doubled.
fn mv_encode(values: &[&str]) -> String {
    values
        .iter()
        .map(|v| format!("${}$", v.replace('$', "$$")))
        .collect::<Vec<_>>()
        .join(";")
}

fn basename(image: &str) -> &str {
    image.rsplit('\\').next().unwrap_or(image)
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `patterns=` list for `k` patterns: the six ESCU ones, then domains
/// under `.abused.invalid`, mostly `*name*` like the ESCU lists, one in ten a
/// `*.suffix` and one in twenty a `prefix*`, so more than one pattern shape is
/// exercised. No event of this generator matches the extra ones.
pub fn patterns(k: usize, seed: u64) -> Vec<String> {
    // Separate PRNG: the events must not depend on the pattern count.
    let mut rng = Rng(seed ^ 0x5A5A_5A5A);
    let mut all: Vec<String> = DEFAULT_PATTERNS.iter().map(|p| p.to_string()).collect();
    all.extend((0..k.saturating_sub(6)).map(|i| {
        let name = format!("{}-{}.abused.invalid", rng.label(6), i);
        match i % 20 {
            0 => format!("{name}*"),
            1 | 2 => format!("*.{name}"),
            _ => format!("*{name}*"),
        }
    }));
    all
}

fn getinfo(args: &Args) -> Vec<u8> {
    let mut cmd_args: Vec<String> = Vec::new();
    let mut raw_args: Vec<String> = Vec::new();
    if args.patterns > 6 {
        let joined = patterns(args.patterns, args.seed).join(" ");
        cmd_args.push(format!("patterns={joined}"));
        raw_args.push(format!("patterns=\"{joined}\""));
    }
    let search = format!(
        "search sourcetype=XmlWinEventLog source=XmlWinEventLog:Microsoft-Windows-Sysmon/Operational \
         EventCode=22 | abusedweb {}",
        raw_args.join(" ")
    );
    let sid = "1700000000.4242";
    let meta = serde_json::json!({
        "action": "getinfo",
        "preview": false,
        "streaming_command_will_restart": false,
        "searchinfo": {
            "args": cmd_args,
            "raw_args": raw_args,
            "dispatch_dir": format!("/opt/splunk/var/run/splunk/dispatch/{sid}"),
            "sid": sid,
            "app": "search",
            "owner": "admin",
            "username": "admin",
            "session_key": "bench-not-a-real-session-key",
            "splunkd_uri": "https://127.0.0.1:8089",
            "splunk_version": "8.2.1",
            "search": percent_encode(search.trim_end()),
            "command": "abusedweb",
            "maxresultrows": CHUNK_ROWS,
            "earliest_time": "0",
            "latest_time": "0",
        }
    });
    serde_json::to_vec(&meta).expect("JSON of plain values")
}

fn write_chunk(out: &mut impl Write, metadata: &[u8], body: &[u8]) -> io::Result<()> {
    writeln!(out, "chunked 1.0,{},{}", metadata.len(), body.len())?;
    out.write_all(metadata)?;
    out.write_all(body)
}

fn header_line() -> Vec<u8> {
    let mut h = Vec::new();
    let names: Vec<String> = FIELDS
        .iter()
        .map(|f| f.to_string())
        .chain(FIELDS.iter().map(|f| format!("__mv_{f}")))
        .collect();
    for (i, n) in names.iter().enumerate() {
        if i > 0 {
            h.push(b',');
        }
        put(&mut h, n.as_bytes());
    }
    h.push(b'\n');
    h
}

/// What the generator made, for the runner's checks.
pub struct Stats {
    pub matching: u64,
    /// Group memberships the detection must count: one per kept matching
    /// event, two for a duplicated multivalue QueryName.
    pub memberships: u64,
    pub multivalue: u64,
    pub dropped: u64,
}

/// Write the whole request stream for `args` (its `out` is not used here).
pub fn generate(args: &Args, out: &mut impl Write) -> io::Result<Stats> {
    let mut rng = Rng(args.seed);
    let pool = group_pool(&mut rng, args.groups, args.hosts);
    let hosts: Vec<String> = (0..args.hosts.max(400)).map(host_name).collect();
    let names: Vec<&str> = IMAGES.iter().map(|i| basename(i)).collect();
    let mut stats = Stats {
        matching: 0,
        memberships: 0,
        multivalue: 0,
        dropped: 0,
    };

    let meta = getinfo(args);
    write_chunk(out, &meta, b"")?;

    let header = header_line();
    let mut body = Vec::with_capacity(64 << 20);
    // Splunk hands events newest first; Sysmon time has millisecond precision.
    let mut time_ms: u64 = 1_700_000_000_000 + args.events * 10;
    let mut emitted = 0u64;
    let mut match_index = 0usize;
    // Benign events are drawn from a fixed table of plausible results per host.
    let benign_results: Vec<String> = (0..256)
        .map(|_| {
            let mut s = String::new();
            for _ in 0..1 + rng.below(4) {
                s.push_str(&ip(&mut rng));
                s.push(';');
            }
            s
        })
        .collect();
    let threshold = (args.match_rate * (1u64 << 53) as f64) as u64;

    while emitted < args.events {
        let rows = CHUNK_ROWS.min(args.events - emitted);
        body.clear();
        body.extend_from_slice(&header);
        for _ in 0..rows {
            time_ms -= rng.below(20) as u64;
            let time = format!("{}.{:03}", time_ms / 1000, time_ms % 1000);
            let matching = (rng.next() >> 11) < threshold;
            let (image, query, status, results, host) = if matching {
                // Visit every tuple once first, then favour the chatty ones.
                let g = if match_index < pool.len() {
                    &pool[match_index]
                } else {
                    &pool[rng.skewed(pool.len())]
                };
                match_index += 1;
                stats.matching += 1;
                (
                    g.image,
                    g.query.clone(),
                    g.status,
                    g.results.clone(),
                    hosts[g.host].as_str(),
                )
            } else {
                let query = match rng.below(10) {
                    // Content delivery names with per-request labels.
                    0 => format!("{}.cloudfront.net", rng.label(14)),
                    1 => format!("e{}.dscb.akamaiedge.net", rng.below(9999)),
                    _ => BENIGN[rng.skewed(BENIGN.len())].to_string(),
                };
                let status = status(&mut rng);
                let results = if status == "0" {
                    benign_results[rng.below(benign_results.len())].clone()
                } else {
                    "-".to_string()
                };
                (
                    rng.skewed(IMAGES.len()),
                    query,
                    status,
                    results,
                    hosts[rng.below(hosts.len())].as_str(),
                )
            };
            // A few events miss QueryResults (dropped by `stats ... by`).
            let results = if matching && rng.below(200) == 0 {
                stats.dropped += 1;
                String::new()
            } else {
                results
            };
            // The Sysmon TA's two extractions sometimes both fire: QueryName
            // then arrives as the same value twice, a multivalue field.
            let mv = rng.below(100) < 3;
            if matching && !results.is_empty() {
                stats.memberships += if mv { 2 } else { 1 };
            }
            put(&mut body, time.as_bytes());
            body.push(b',');
            put(&mut body, IMAGES[image].as_bytes());
            body.push(b',');
            if mv {
                stats.multivalue += 1;
                put(&mut body, format!("{query}\n{query}").as_bytes());
            } else {
                put(&mut body, query.as_bytes());
            }
            body.push(b',');
            put(&mut body, status.as_bytes());
            body.push(b',');
            put(&mut body, names[image].as_bytes());
            body.push(b',');
            put(&mut body, results.as_bytes());
            body.push(b',');
            put(&mut body, host.as_bytes());
            // __mv_ columns: empty except for the multivalue QueryName.
            body.extend_from_slice(b",,,");
            if mv {
                put(&mut body, mv_encode(&[&query, &query]).as_bytes());
            }
            body.extend_from_slice(b",,,,\n");
        }
        emitted += rows;
        let finished = emitted == args.events;
        let meta = if finished {
            &br#"{"action":"execute","finished":true}"#[..]
        } else {
            &br#"{"action":"execute","finished":false}"#[..]
        };
        write_chunk(out, meta, &body)?;
    }
    Ok(stats)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("genstream: {e}");
            }
            eprintln!("{}", usage());
            return ExitCode::from(2);
        }
    };
    let result = File::create(&args.out).and_then(|f| {
        let mut w = BufWriter::with_capacity(1 << 20, f);
        let stats = generate(&args, &mut w)?;
        w.flush()?;
        let bytes = w.get_ref().metadata()?.len();
        Ok((stats, bytes))
    });
    match result {
        Ok((s, bytes)) => {
            println!(
                "{{\"out\":{:?},\"events\":{},\"bytes\":{},\"matching\":{},\"memberships\":{},\"multivalue\":{},\"dropped\":{},\"group_pool\":{},\"patterns\":{}}}",
                args.out, args.events, bytes, s.matching, s.memberships, s.multivalue, s.dropped, args.groups, args.patterns
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("genstream: {}: {e}", args.out);
            ExitCode::FAILURE
        }
    }
}
