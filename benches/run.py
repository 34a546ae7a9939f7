#!/usr/bin/env python3
"""`make bench`: is abusedweb ever the slow part of a search?

Generates request streams as splunkd sends them (benches/genstream.rs),
checks that abusedweb and the splunklib peer (benches/peers/abusedweb_peer.py)
give the same result rows, then times, alternating the contenders round by
round and quoting medians:

* `cat STREAM > /dev/null`: the cost of just moving the bytes;
* `abusedweb < STREAM > /dev/null`;
* `cat STREAM | cat > /dev/null`: the pipe floor, the bytes moved through a
  pipe as splunkd feeds a command;
* `cat STREAM | abusedweb > /dev/null`: abusedweb fed by that pipe;
* the splunklib peer on the same stream (10^5 and 10^6 events only: at 10^7
  events it would run for minutes per round).

Wall time is measured around each child (around the whole pipeline for the
piped ones); CPU time and peak RSS come from GNU time (both processes' CPU,
the reading process's peak RSS for a pipeline). Results go
to stdout, benches/out/results.json and benches/RESULTS.md (the hand-written
analysis between the `analysis` markers of the old RESULTS.md is kept).
Then a callgrind profile of abusedweb and the criterion micro benchmarks.

Python 3 standard library only; run with the system python3. The peer runs in
a venv under target/bench-venv with splunk-sdk from PyPI.

Environment: KEEP=1 keeps the generated streams in benches/data/. On a busy
machine, `nice -n -10 python3 benches/run.py` (as root) keeps other jobs from
stretching the medians.
Options: --quick (10^5 events only, 2 rounds), --no-peer, --no-profile,
--no-micro, --rounds N.
"""

import argparse
import csv
import io
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHES = ROOT / "benches"
DATA = BENCHES / "data"
OUT = BENCHES / "out"
RESULTS_MD = BENCHES / "RESULTS.md"
VENV = ROOT / "target" / "bench-venv"
PEER = BENCHES / "peers" / "abusedweb_peer.py"
BUILT_ABUSEDWEB = ROOT / "target" / "release" / "abusedweb"
BUILT_GENSTREAM = ROOT / "target" / "release" / "examples" / "genstream"
# The run uses private copies: a cargo build elsewhere in the tree during a
# run must not swap the binary between two scenarios.
BIN = ROOT / "target" / "bench-bin"
ABUSEDWEB = BIN / "abusedweb"
GENSTREAM = BIN / "genstream"
PROFILED_ABUSEDWEB = BIN / "abusedweb-symbols"
PROFILE_DIR = ROOT / "target" / "bench-profile"
SPLUNK_SDK = "splunk-sdk==2.1.1"  # newest release PyPI serves for this Python
CHUNK_ROWS = 50_000
BYTES_PER_EVENT = 200  # upper estimate from genstream's output, for the disk check

ANALYSIS_BEGIN = "<!-- analysis:begin (kept across runs; edit by hand) -->"
ANALYSIS_END = "<!-- analysis:end -->"

# Issue 10's targets.
TARGET_CAT_RATIO = 3.0  # abusedweb < STREAM vs cat STREAM, 10^6 and 10^7 events, 1% and 20% match
TARGET_PIPE_RATIO = 1.5  # cat STREAM | abusedweb vs cat STREAM | cat, the same streams
TARGET_PEER_SPEEDUP = 100.0  # events/s vs the splunklib peer, 10^6 events, 1% match
TARGET_PEER_SPEEDUP_HIGH = 50.0  # the same with 10^5 distinct groups (the "high" profile), 20% match
TARGET_RSS_GROWTH = 0.10
TARGET_RSS_10K_GROUPS_MB = 64.0

# The profile before issue 10's work, to compare the run's own profile with:
# callgrind of the previous release, 1,660 M instructions for 10^6 events at
# 1% match (realistic groups) at commit 190873f.
BEFORE_INSTR_PER_EVENT = 1_660
BEFORE_COMMIT = "190873f"

PIPE_FLOOR = "cat | cat"
PIPED = "cat | abusedweb"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def sh(argv, **kw):
    log("$ " + " ".join(str(a) for a in argv))
    return subprocess.run([str(a) for a in argv], check=True, **kw)


def out_text(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


# ---------------------------------------------------------------- setup


def machine_line():
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} CPUs ({cpu}), {mem_gib:.0f} GiB RAM, Linux {platform.release()}, "
        f"{out_text(['rustc', '--version'])}, Python {platform.python_version()}, {SPLUNK_SDK}, "
        f"{out_text(['cat', '--version']).splitlines()[0] if out_text(['cat', '--version']) != '?' else 'cat'}"
    )


def build(with_profile):
    """Build, then copy the binaries, all from the same state of the tree."""
    sh(["cargo", "build", "--release", "--bin", "abusedweb", "--example", "genstream"], cwd=ROOT)
    BIN.mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUILT_ABUSEDWEB, ABUSEDWEB)
    shutil.copy2(BUILT_GENSTREAM, GENSTREAM)
    if with_profile:
        # The release profile strips symbols; the profile wants them (and line tables).
        env = dict(os.environ, CARGO_PROFILE_RELEASE_STRIP="none", CARGO_PROFILE_RELEASE_DEBUG="line-tables-only")
        sh(["cargo", "build", "--release", "--bin", "abusedweb", "--target-dir", PROFILE_DIR], cwd=ROOT, env=env)
        shutil.copy2(PROFILE_DIR / "release" / "abusedweb", PROFILED_ABUSEDWEB)


def peer_python():
    py = VENV / "bin" / "python"
    if not py.exists():
        sh([sys.executable, "-m", "venv", VENV])
    probe = subprocess.run([py, "-c", "import splunklib, importlib.metadata as m; print(m.version('splunk-sdk'))"],
                           capture_output=True, text=True)
    if probe.returncode != 0 or probe.stdout.strip() != SPLUNK_SDK.split("==")[1]:
        sh([py, "-m", "pip", "install", "--quiet", SPLUNK_SDK])
    return py


# ---------------------------------------------------------------- streams


class Stream:
    """One generated request stream and what genstream said about it."""

    def __init__(self, events, rate, profile="realistic", groups=None, patterns=6):
        self.events, self.rate, self.profile, self.groups, self.patterns = events, rate, profile, groups, patterns
        g = f"g{groups}" if groups else profile
        self.name = f"e{events}-m{round(rate * 100)}-{g}-p{patterns}"
        self.path = DATA / f"{self.name}.scp"
        self.info = None

    def label(self):
        g = f"{self.groups} groups" if self.groups else self.profile
        p = f", {self.patterns} patterns" if self.patterns != 6 else ""
        return f"{fmt_events(self.events)} events, {self.rate:.0%} match, {g}{p}"

    def generate(self):
        DATA.mkdir(parents=True, exist_ok=True)
        sidecar = self.path.with_suffix(".json")
        argv = [GENSTREAM, "--events", self.events, "--match-rate", self.rate, "--patterns", self.patterns,
                "--groups-profile", self.profile, "--out", self.path]
        if self.groups:
            argv += ["--groups", self.groups]
        if self.path.exists() and sidecar.exists():
            self.info = json.loads(sidecar.read_text())
            if self.info.get("argv") == [str(a) for a in argv[1:]]:
                return
        need = self.events * BYTES_PER_EVENT
        free = shutil.disk_usage(DATA).free
        if free < need + (2 << 30):
            raise NoRoom(f"{self.name}: needs ~{need / 1e9:.1f} GB, {free / 1e9:.1f} GB free")
        res = sh(argv, capture_output=True, text=True)
        self.info = json.loads(res.stdout)
        self.info["argv"] = [str(a) for a in argv[1:]]
        sidecar.write_text(json.dumps(self.info))

    def remove(self):
        if os.environ.get("KEEP") != "1":
            for p in (self.path, self.path.with_suffix(".json")):
                p.unlink(missing_ok=True)

    @property
    def size(self):
        return self.info["bytes"]

    @property
    def requests(self):
        return 1 + -(-self.events // CHUNK_ROWS)


class NoRoom(Exception):
    pass


# ---------------------------------------------------------------- replies

HEADER = re.compile(rb"chunked\s+1\.0\s*,\s*(\d+)\s*,\s*(\d+)\s*\n")


def read_chunks(data):
    """Split a reply stream into (metadata dict, body bytes) chunks."""
    chunks, pos = [], 0
    while pos < len(data):
        nl = data.find(b"\n", pos)
        m = HEADER.fullmatch(data, pos, nl + 1) if nl >= 0 else None
        if not m:
            raise ValueError(f"bad chunk header at byte {pos}: {data[pos:pos + 40]!r}")
        mlen, blen = int(m.group(1)), int(m.group(2))
        start = nl + 1
        if start + mlen + blen > len(data):
            raise ValueError(f"truncated chunk at byte {pos}")
        meta = json.loads(data[start:start + mlen]) if mlen else {}
        chunks.append((meta, data[start + mlen:start + mlen + blen]))
        pos = start + mlen + blen
    return chunks


def result_rows(data, requests):
    """Check a whole reply stream and return (header, rows) of its result.

    One reply per request, `finished:false` on all but the last, no error;
    `__mv_` columns (splunklib writes one per field) are dropped.
    """
    chunks = read_chunks(data)
    if len(chunks) != requests:
        raise ValueError(f"{len(chunks)} replies to {requests} requests")
    for meta, _ in chunks:
        if "error" in meta:
            raise ValueError(f"error reply: {meta['error']}")
    if any(meta.get("finished") for meta, _ in chunks[1:-1]) or chunks[-1][0].get("finished") is not True:
        raise ValueError("finished flags do not mirror the requests")
    body = chunks[-1][1].decode("utf-8")
    if not body:
        return [], []
    table = list(csv.reader(io.StringIO(body, newline="")))
    keep = [i for i, name in enumerate(table[0]) if not name.startswith("__mv_")]
    return [table[0][i] for i in keep], [[r[i] for i in keep] for r in table[1:]]


def first_difference(a, b):
    ha, ra = a
    hb, rb = b
    if ha != hb:
        return f"headers differ: {ha} vs {hb}"
    if len(ra) != len(rb):
        return f"{len(ra)} rows vs {len(rb)} rows"
    for i, (x, y) in enumerate(zip(ra, rb)):
        if x != y:
            return f"row {i + 1}: {x} vs {y}"
    return None


# ---------------------------------------------------------------- measuring


GNU_TIME = shutil.which("time", path="/usr/bin:/bin")


def run_child(argv, stdin_path=None, stdout_path=None):
    """Run argv to completion; return (wall seconds, peak RSS bytes, cpu seconds).

    A child forked from this Python process starts life with Python's pages
    mapped, and Linux folds that high-water mark into the child's ru_maxrss
    (exec records the old mm's peak). So the child is started by GNU time,
    a process of ~2 MB, whose own wait4() rusage of it is what we report.
    Without GNU time we fall back to our own wait4 and say that RSS is a floor.
    """
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    stdout = open(stdout_path, "wb") if stdout_path else subprocess.DEVNULL
    err_path, rusage_path = OUT / "stderr.txt", OUT / "rusage.txt"
    with open(err_path, "wb") as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(under_time(argv, rusage_path), stdin=stdin, stdout=stdout, stderr=err)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
    for f in (stdin, stdout):
        if f is not subprocess.DEVNULL:
            f.close()
    rss, cpu = child_usage(argv, status, ru, err_path, rusage_path)
    return wall, rss, cpu


def under_time(argv, rusage_path):
    full = [str(a) for a in argv]
    return [GNU_TIME, "-f", "%M %U %S", "-o", str(rusage_path)] + full if GNU_TIME else full


def child_usage(argv, status, ru, err_path, rusage_path):
    """(peak RSS bytes, cpu seconds) of a child run under_time, which exited with `status`."""
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"{argv[0]} exited {code}: {err_path.read_text(errors='replace')[-2000:]}")
    if GNU_TIME:
        maxrss_kib, user, system = rusage_path.read_text().split()[-3:]
        return int(maxrss_kib) * 1024, float(user) + float(system)
    return ru.ru_maxrss * 1024, ru.ru_utime + ru.ru_stime


def run_pipe(writer, reader):
    """Run `writer | reader > /dev/null`, as splunkd feeds a command through a
    pipe; return (wall seconds of the whole pipeline, peak RSS bytes of the
    reader, cpu seconds of both)."""
    r, w = os.pipe()
    paths = [(OUT / f"stderr-{i}.txt", OUT / f"rusage-{i}.txt") for i in (1, 2)]
    with open(paths[0][0], "wb") as err1, open(paths[1][0], "wb") as err2:
        t0 = time.perf_counter()
        p1 = subprocess.Popen(under_time(writer, paths[0][1]), stdin=subprocess.DEVNULL, stdout=w, stderr=err1)
        p2 = subprocess.Popen(under_time(reader, paths[1][1]), stdin=r, stdout=subprocess.DEVNULL, stderr=err2)
        # Only the two children may hold the pipe, or the reader never sees its end.
        os.close(r)
        os.close(w)
        _, status1, ru1 = os.wait4(p1.pid, 0)
        _, status2, ru2 = os.wait4(p2.pid, 0)
        wall = time.perf_counter() - t0
    _, cpu1 = child_usage(writer, status1, ru1, *paths[0])
    rss, cpu2 = child_usage(reader, status2, ru2, *paths[1])
    return wall, rss, cpu1 + cpu2


def contenders(stream, py, with_peer):
    """(name, argv, file for its stdin, fed the file through `cat STREAM |`?)"""
    c = [("cat", ["cat", stream.path], None, False), ("abusedweb", [ABUSEDWEB], stream.path, False),
         (PIPE_FLOOR, ["cat"], stream.path, True), (PIPED, [ABUSEDWEB], stream.path, True)]
    if with_peer:
        c.append(("splunklib peer", [py, PEER], stream.path, False))
    return c


def time_stream(stream, py, rounds, with_peer):
    """Alternate the contenders A B C A B C ...; return per-contender medians."""
    samples = {name: [] for name, _, _, _ in contenders(stream, py, with_peer)}
    for r in range(rounds):
        for name, argv, stdin, piped in contenders(stream, py, with_peer):
            samples[name].append(run_pipe(["cat", stdin], argv) if piped else run_child(argv, stdin))
        walls = ", ".join(f"{n} {s[-1][0]:.3f}s" for n, s in samples.items())
        log(f"  round {r + 1}/{rounds}: {walls}")
    out = {}
    for name, s in samples.items():
        wall = statistics.median(x[0] for x in s)
        out[name] = {
            "wall": wall,
            "walls": [x[0] for x in s],
            "rss": max(x[1] for x in s),
            "cpu": statistics.median(x[2] for x in s),
            "events_per_s": stream.events / wall,
            "mb_per_s": stream.size / wall / 1e6,
        }
    return out


def settle(stream):
    """Put the stream in a fresh page cache before it is checked and timed.

    On this kind of VM a compile (or any job that churns memory) leaves the
    page cache slow to read for minutes: `cat` of a 186 MB stream was seen
    taking 30 ms instead of 10, and abusedweb 150 ms instead of 60, until
    the cache was dropped, memory compacted and the file read again. Where
    the kernel lets us (root), do just that; elsewhere only read the stream
    once. Every contender reads the same cached file afterwards, so this
    changes the noise, not the comparison. Returns what was done."""
    done = "read once"
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3")
        Path("/proc/sys/vm/compact_memory").write_text("1")
        done = "page cache dropped, memory compacted, read once"
    except OSError:
        pass
    with open(stream.path, "rb") as f:
        while f.read(1 << 20):
            pass
    return done


def check_stream(stream, py, with_peer, reference=None):
    """abusedweb's rows, checked against the peer (or a reference result) and
    against genstream's count of memberships."""
    OUT.mkdir(parents=True, exist_ok=True)
    reply = OUT / "reply.scp"
    run_child([ABUSEDWEB], stream.path, reply)
    ours = result_rows(reply.read_bytes(), stream.requests)
    total = sum(int(r[ours[0].index("count")]) for r in ours[1]) if ours[1] else 0
    if total != stream.info["memberships"]:
        raise SystemExit(f"{stream.name}: abusedweb counts {total} memberships, "
                         f"the generator made {stream.info['memberships']}")
    against = []
    if with_peer:
        run_child([py, PEER], stream.path, reply)
        diff = first_difference(ours, result_rows(reply.read_bytes(), stream.requests))
        if diff:
            raise SystemExit(f"{stream.name}: abusedweb and the splunklib peer differ: {diff}")
        against.append("peer")
    if reference is not None:
        diff = first_difference(ours, reference)
        if diff:
            raise SystemExit(f"{stream.name}: abusedweb differs from the same events with 6 patterns: {diff}")
        against.append("6-pattern result")
    reply.unlink()
    log(f"  check: {len(ours[1])} groups, {total} memberships"
        + (f", same rows as the {' and '.join(against)}" if against else ""))
    return ours


# ---------------------------------------------------------------- profile


def profile(stream):
    """callgrind on a symbol-carrying build of the release binary; top functions by own cost."""
    if not shutil.which("valgrind"):
        log("valgrind not found (apt-get install valgrind): no profile")
        return None
    outfile = OUT / "callgrind.out"
    sh(["valgrind", "--tool=callgrind", f"--callgrind-out-file={outfile}",
        PROFILED_ABUSEDWEB], stdin=open(stream.path, "rb"),
       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    def annotate(inclusive):
        text = subprocess.run(["callgrind_annotate", "--auto=no", f"--inclusive={inclusive}", "--threshold=99",
                               str(outfile)], capture_output=True, text=True, check=True).stdout
        total, shares = None, {}
        for line in text.splitlines():
            m = re.match(r"\s*([\d,]+)\s+\(\s*([\d.]+)%\)\s+(.*)", line)
            if m and "PROGRAM TOTALS" in m.group(3):
                total = int(m.group(1).replace(",", ""))
            elif m and total is not None:
                # Inlined code is listed once per source file it came from:
                # own costs add up, inclusive ones overlap (keep the largest).
                name, share = simplify_symbol(m.group(3)), float(m.group(2))
                shares[name] = shares.get(name, 0.0) + share if inclusive == "no" else max(shares.get(name, 0), share)
        return total, shares

    total, own = annotate("no")
    _, incl = annotate("yes")
    runtime = re.compile(r"^(main|\(below main\)|0x[0-9a-f]+|__libc_start.*|std::.*|abusedweb::main)$")
    log(f"  callgrind: {total:,} instructions, {total / stream.events:,.0f} per event")
    return {
        "stream": stream.label(),
        "events": stream.events,
        "instructions": total,
        "top": sorted(((p, n) for n, p in own.items()), reverse=True)[:15],
        "inclusive": sorted(((p, n) for n, p in incl.items() if not runtime.match(n) and p >= 2.0), reverse=True)[:12],
    }


def simplify_symbol(s):
    s = re.sub(r"\s*\[[^\]]*\]\s*$", "", s)  # object file
    s = s.split(":", 1)[1] if re.match(r"^[^ ]*\.(rs|c|S|h)?:", s) or s.startswith("???:") else s
    s = re.sub(r"::h[0-9a-f]{16}$", "", s)
    return s.strip()


# ---------------------------------------------------------------- micro


def micro():
    res = subprocess.run(["cargo", "bench", "--bench", "micro"], cwd=ROOT, capture_output=True, text=True)
    (OUT / "micro.txt").write_text(res.stdout + res.stderr)
    if res.returncode != 0:
        log(res.stderr[-3000:])
        return None
    # criterion prints "name  time: [low median high]", or a long name on its
    # own line with "time:" indented below it; "thrpt:" follows when set.
    rows, pending = [], None
    for line in res.stdout.splitlines():
        if re.match(r"^\S", line) and "time:" not in line and not line.startswith(
                ("Benchmarking", "Gnuplot", "Found", "Running", "WARNING")):
            pending = line.strip()
        # Values come as "low unit median unit high unit"; the "change:"
        # block below a result has bare percentages and is skipped.
        m = re.match(r"^(\S.*?)?\s+time:\s+\[(.*?)\]", line)
        if m and len(m.group(2).split()) == 6:
            label = (m.group(1) or "").strip() or pending
            parts = m.group(2).split()
            rows.append([label, f"{parts[2]} {parts[3]}", ""])
            pending = None
        m = re.match(r"^\s+thrpt:\s+\[(.*?)\]", line)
        if m and rows and len(m.group(1).split()) == 6:
            parts = m.group(1).split()
            rows[-1][2] = f"{parts[2]} {parts[3]}"
    return rows


# ---------------------------------------------------------------- report


def fmt_events(n):
    e = len(str(n)) - 1
    return f"10^{e}" if n == 10**e else f"{n:,}"


def fmt_rate(x):
    return f"{x / 1e6:.2f} M" if x >= 1e6 else f"{x / 1e3:.0f} k"


def mb(x):
    return f"{x / 2**20:.1f}"


def main_table(results):
    lines = [
        "| stream | contender | median wall | CPU (user+sys) | events/s | MB/s | peak RSS (MiB) | vs cat "
        "| vs pipe floor | peer / abusedweb |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        t = r["timing"]
        aw = t["abusedweb"]["wall"]
        for name, m in t.items():
            vs_cat = f"{m['wall'] / t['cat']['wall']:.1f}x" if name != "cat" else "1x"
            vs_pipe = f"{m['wall'] / t[PIPE_FLOOR]['wall']:.2f}x" if name in (PIPE_FLOOR, PIPED) else ""
            speed = f"**{m['wall'] / aw:.0f}x**" if name == "splunklib peer" else ""
            lines.append(
                f"| {r['label']} ({r['size'] / 1e6:.0f} MB) | `{name.replace('|', chr(92) + '|')}` | {m['wall'] * 1e3:,.0f} ms | "
                f"{m['cpu'] * 1e3:,.0f} ms | "
                f"{fmt_rate(m['events_per_s'])} | {m['mb_per_s']:,.0f} | {mb(m['rss'])} | {vs_cat} | {vs_pipe} "
                f"| {speed} |")
    return lines


def growth_table(title, key_name, rows):
    if not rows:
        return []  # a --quick run times none of the series
    lines = [
        f"| {key_name} | groups out | abusedweb wall | ns/event | MB/s | abusedweb / cat | piped wall "
        "| piped / pipe floor | peak RSS (MiB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, r in rows:
        t = r["timing"]
        aw, piped = t["abusedweb"], t[PIPED]
        lines.append(f"| {key} | {r['groups']:,} | {aw['wall'] * 1e3:,.0f} ms | {aw['wall'] / r['events'] * 1e9:.0f} | "
                     f"{aw['mb_per_s']:,.0f} | {aw['wall'] / t['cat']['wall']:.1f}x | {piped['wall'] * 1e3:,.0f} ms | "
                     f"{piped['wall'] / t[PIPE_FLOOR]['wall']:.2f}x | {mb(aw['rss'])} |")
    return [f"### {title}", ""] + lines + [""]


def verdict(ok):
    return "met" if ok else "**MISSED**"


def targets(results, by_name):
    """Issue 10's targets, each met or missed with its ratio; a target whose
    streams this run did not time says so. A --quick run (10^5 events only)
    judges the time targets on its 10^5-event streams instead."""
    quick = not any(r["events"] >= 10**6 for r in results)
    sizes = [10**5] if quick else [10**6, 10**7]
    lines = ["| target | stream | measured | verdict |", "|---|---|---|---|"]

    def row(target, stream, measured, ok):
        lines.append(f"| {target} | {stream} | {measured} | {verdict(ok) if ok is not None else 'not measured'} |")

    for events in sizes:
        for rate in (0.01, 0.20):
            s = Stream(events, rate)
            t = by_name[s.name]["timing"] if s.name in by_name else None
            target = f"abusedweb <= {TARGET_CAT_RATIO:g}x `cat` from a file"
            if t:
                x = t["abusedweb"]["wall"] / t["cat"]["wall"]
                row(target, s.label(), f"{x:.1f}x ({t['abusedweb']['wall'] * 1e3:,.0f} vs "
                                       f"{t['cat']['wall'] * 1e3:,.0f} ms)", x <= TARGET_CAT_RATIO)
            else:
                row(target, s.label(), "—", None)
            target = f"`cat \\| abusedweb` <= {TARGET_PIPE_RATIO:g}x the `cat \\| cat` pipe floor"
            if t:
                x = t[PIPED]["wall"] / t[PIPE_FLOOR]["wall"]
                row(target, s.label(), f"{x:.2f}x ({t[PIPED]['wall'] * 1e3:,.0f} vs "
                                       f"{t[PIPE_FLOOR]['wall'] * 1e3:,.0f} ms)", x <= TARGET_PIPE_RATIO)
            else:
                row(target, s.label(), "—", None)
    for s, speedup, what in ((Stream(sizes[0], 0.01), TARGET_PEER_SPEEDUP, ""),
                             (Stream(sizes[0], 0.20, profile="high"), TARGET_PEER_SPEEDUP_HIGH,
                              ", 10^5 distinct groups")):
        r = by_name.get(s.name)
        target = f">= {speedup:.0f}x the splunklib peer's events/s{what}"
        if r and "splunklib peer" in r["timing"]:
            t = r["timing"]
            x = t["splunklib peer"]["wall"] / t["abusedweb"]["wall"]
            row(target, s.label(), f"{x:.0f}x ({r['groups']:,} groups out)", x >= speedup)
        else:
            row(target, s.label(), "—", None)
    for rate in (0.01, 0.20):
        small, big = by_name.get(Stream(10**5, rate).name), by_name.get(Stream(10**7, rate).name)
        for name, how in (("abusedweb", "from a file"), (PIPED, "piped")):
            target = f"peak RSS at 10^7 events within {TARGET_RSS_GROWTH:.0%} of 10^5, {how}"
            stream = f"10^5 and 10^7 events, {rate:.0%} match, realistic"
            if small and big:
                a, b = small["timing"][name]["rss"], big["timing"][name]["rss"]
                row(target, stream, f"{mb(b)} vs {mb(a)} MiB ({b / a - 1:+.1%})", b <= a * (1 + TARGET_RSS_GROWTH))
            else:
                row(target, stream, "—", None)
    s = Stream(10**6, 0.20, groups=10**4)
    g = by_name.get(s.name)
    target = f"peak RSS < {TARGET_RSS_10K_GROUPS_MB:.0f} MB with 10^4 groups"
    if g:
        rss = g["timing"]["abusedweb"]["rss"]
        row(target, s.label(), f"{rss / 1e6:.1f} MB ({g['groups']:,} groups out)",
            rss < TARGET_RSS_10K_GROUPS_MB * 1e6)
    else:
        row(target, s.label(), "—", None)
    if quick:
        lines += ["", "Quick run (`--quick`, 10^5 events only): the time and peer targets, set for 10^6 and 10^7 "
                  "events, are judged here on the 10^5-event streams, where fixed start-up costs weigh more."]
    return lines


def side_run(doc):
    """What every side script of `make bench` starts with: its options
    (--quick, --rounds, --no-build), the folders, the build unless told not
    to, and the commit and time to quote. Returns (events, rounds, commit, when)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="10^5 events, 2 rounds")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--no-build", action="store_true", help="use the binaries run.py copied")
    a = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    DATA.mkdir(parents=True, exist_ok=True)
    if not a.no_build:
        build(False)
    commit = out_text(["git", "-C", str(ROOT), "describe", "--always", "--dirty"])
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return (10**5 if a.quick else 10**6), (2 if a.quick else a.rounds), commit, when


def write_section(begin, end, title, intro, *parts):
    """Write one script's section of RESULTS.md: its markers around a
    heading, an introduction paragraph and the given parts (tables, notes),
    separated by blank lines. Returns the section."""
    body = "\n".join([begin, f"## {title}", "", intro, "", "\n\n".join(parts), end])
    replace_section(begin, end, body)
    return body


def replace_section(begin, end, body):
    """Put `body` (which starts with `begin` and ends with `end`) into
    RESULTS.md in place of the old section between those markers, or at the
    end; the other scripts of `make bench` write their sections this way."""
    md = RESULTS_MD.read_text() if RESULTS_MD.exists() else ""
    if begin in md and end in md:
        md = md[:md.index(begin)] + body + md[md.index(end) + len(end):]
    else:
        md = md.rstrip("\n") + "\n\n" + body + "\n"
    RESULTS_MD.write_text(md)


def kept_analysis():
    if RESULTS_MD.exists():
        text = RESULTS_MD.read_text()
        i, j = text.find(ANALYSIS_BEGIN), text.find(ANALYSIS_END)
        if i >= 0 and j > i:
            return text[i:j + len(ANALYSIS_END)]
    return f"{ANALYSIS_BEGIN}\n\n(no analysis written yet)\n\n{ANALYSIS_END}"


def write_report(results, machine, prof, micro_rows, notes, commit, when):
    by_name = {r["name"]: r for r in results}
    md = [
        "# Benchmark results",
        "",
        "Written by `make bench` (`python3 benches/run.py`); the analysis section is kept across runs.",
        "",
        f"Machine: {machine}.  ",
        f"Commit: `{commit}`, {when}.",
        "",
        "Streams are generated by `benches/genstream.rs`: getinfo, then execute chunks of 50,000 rows as splunkd",
        "sends them to a reporting command (the seven required fields plus `__mv_` columns, splunkd's quoting,",
        "3% multivalue QueryName). Each stream is checked before timing: abusedweb's rows equal the splunklib",
        "peer's (streams up to 10^6 events), or those of the same events with the 6 default patterns (pattern",
        "series), and the counts add up to the memberships the generator made (every stream).",
        "Medians over rounds that alternate the contenders (5 rounds, 3 at 10^7 events): `cat STREAM > /dev/null`,",
        "`abusedweb < STREAM > /dev/null`, `cat STREAM | cat > /dev/null` (the pipe floor: the bytes moved through",
        "a pipe, as splunkd feeds a command), `cat STREAM | abusedweb > /dev/null` and the splunklib peer",
        "(`< STREAM`). The files are in the page cache, so `cat` is the cost of copying the bytes into a process.",
        "Wall time is measured around each child, or around the whole pipeline; peak RSS (largest `ru_maxrss`",
        "over the rounds; of the reading process in a pipeline) and CPU time (10 ms resolution; of both",
        "processes in a pipeline) come from GNU time's wait4, because a child forked from the Python runner",
        "inherits the runner's RSS as a floor of its own `ru_maxrss`.",
        "",
        "## Targets",
        "",
    ]
    md += targets(results, by_name) + [""]
    md += ["## Contenders", ""] + main_table([r for r in results if r["main"]]) + [""]
    md += ["## Cost growth", ""]
    ev = [(fmt_events(r["events"]), r) for r in results
          if r["main"] and r["rate"] == 0.01 and r["profile"] == "realistic"]
    md += growth_table("Events (1% match, realistic groups)", "events", ev)
    ev20 = [(fmt_events(r["events"]), r) for r in results
            if r["main"] and r["rate"] == 0.20 and r["profile"] == "realistic"]
    md += growth_table("Events (20% match, realistic groups)", "events", ev20)
    gr = sorted([r for r in results if r["events"] == 10**6 and r["rate"] == 0.20 and r["patterns"] == 6],
                key=lambda r: r["groups"])
    md += growth_table("Groups (10^6 events, 20% match)", "group pool", [(f"{r['pool']:,}", r) for r in gr])
    pa = sorted([r for r in results if r["events"] == 10**6 and r["rate"] == 0.01 and r["profile"] == "realistic"
                 and not r["groups_opt"]], key=lambda r: r["patterns"])
    md += growth_table("Patterns (10^6 events, 1% match)", "patterns", [(f"{r['patterns']:,}", r) for r in pa])
    if micro_rows:
        md += ["## Micro benchmarks (criterion, `cargo bench --bench micro`)", "",
               "| benchmark | median time | median throughput |", "|---|---:|---:|"]
        md += [f"| {n} | {t} | {thr} |" for n, t, thr in micro_rows] + [""]
    before = (f"before: {BEFORE_INSTR_PER_EVENT:,} instr/event at {BEFORE_COMMIT} (callgrind), "
              f"the previous release's {BEFORE_INSTR_PER_EVENT:,} M instructions for 10^6 events at 1% match")
    if prof:
        events = prof.get("events") or 10**6
        md += ["## Profile", "",
               f"callgrind, {prof['stream']}: {prof['instructions']:,} instructions in total, "
               f"**{prof['instructions'] / events:,.0f} instructions per event** "
               f"({before}). Functions by own (exclusive) instruction count:", "",
               "| share | function |", "|---:|---|"]
        md += [f"| {p:.1f}% | `{f}` |" for p, f in prof["top"]] + [""]
        md += ["Including what they call:", "", "| share | function |", "|---:|---|"]
        md += [f"| {p:.1f}% | `{f}` |" for p, f in prof["inclusive"]] + [""]
    else:
        md += ["## Profile", "", f"Not profiled in this run (`--no-profile`); {before}.", ""]
    if notes:
        md += ["## Notes", ""] + [f"* {n}" for n in notes] + [""]
    md += ["## Where the time goes", "", kept_analysis(), ""]
    # Sections the other scripts of `make bench` write stay until they
    # rewrite them, and so do the notes written by hand between and after
    # them: everything from the first such section on is kept as it was.
    old = RESULTS_MD.read_text() if RESULTS_MD.exists() else ""
    first = re.search(r"<!-- (distributed|lists|scan):begin", old)
    if first:
        md += [old[first.start():].rstrip("\n") + "\n"]
    RESULTS_MD.write_text("\n".join(md))
    log(f"wrote {RESULTS_MD}")
    return md


# ---------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="10^5 events only, 2 rounds (smoke test)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds for streams up to 10^6 events (10^7: 3)")
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--no-micro", action="store_true")
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite RESULTS.md from the last run's benches/out/results.json")
    args = ap.parse_args()

    OUT.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        saved = json.loads((OUT / "results.json").read_text())
        write_report(saved["results"], saved["machine"], saved.get("profile"), saved.get("micro"),
                     saved.get("notes", []), saved.get("commit", "?"), saved.get("when", "?"))
        return
    build(not args.no_profile)
    py = peer_python()
    machine = machine_line()
    commit = out_text(["git", "-C", str(ROOT), "describe", "--always", "--dirty"])
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    log(f"machine: {machine}")

    E5, E6, E7 = 10**5, 10**6, 10**7
    # (stream, main table?, time the peer?)
    plan = []
    sizes = [E5] if args.quick else [E5, E6, E7]
    for events in sizes:
        for rate in (0.01, 0.20):
            plan.append((Stream(events, rate), True))
    plan.append((Stream(E5 if args.quick else E6, 0.20, profile="high"), True))
    if not args.quick:
        for g in (10, 100, 1_000, 10_000):
            plan.append((Stream(E6, 0.20, groups=g), False))
        for k in (100, 1_000, 10_000, 100_000):
            plan.append((Stream(E6, 0.01, patterns=k), False))

    results, notes, six_pattern_rows = [], [], {}
    load_start = os.getloadavg()[0]
    settled = "nothing: no stream was timed"
    for stream, is_main in plan:
        log(f"== {stream.label()}")
        try:
            stream.generate()
        except NoRoom as e:
            notes.append(f"skipped {stream.label()}: not enough free disk ({e})")
            log(f"  skipped: {e}")
            continue
        settled = settle(stream)
        with_peer = not args.no_peer and stream.events <= E6 and stream.patterns == 6
        reference = six_pattern_rows.get((stream.events, stream.rate)) if stream.patterns != 6 else None
        rows = check_stream(stream, py, with_peer, reference)
        if stream.patterns == 6 and stream.profile == "realistic" and not stream.groups:
            six_pattern_rows[(stream.events, stream.rate)] = rows
        rounds = 2 if args.quick else (3 if stream.events >= E7 else args.rounds)
        # Timing the peer on the groups series would add minutes and say nothing new.
        timing = time_stream(stream, py, rounds, with_peer and is_main)
        results.append({
            "name": stream.name, "label": stream.label(), "events": stream.events, "rate": stream.rate,
            "profile": stream.profile, "groups_opt": stream.groups, "patterns": stream.patterns,
            "pool": stream.groups or stream.info["group_pool"], "size": stream.size, "main": is_main,
            "groups": len(rows[1]), "memberships": stream.info["memberships"], "rounds": rounds, "timing": timing,
        })
        t = timing
        line = (f"  abusedweb {t['abusedweb']['wall']:.3f}s = {t['abusedweb']['wall'] / t['cat']['wall']:.1f}x cat, "
                f"{fmt_rate(t['abusedweb']['events_per_s'])} events/s, {t['abusedweb']['mb_per_s']:.0f} MB/s, "
                f"RSS {mb(t['abusedweb']['rss'])} MiB")
        line += (f"; piped {t[PIPED]['wall']:.3f}s = {t[PIPED]['wall'] / t[PIPE_FLOOR]['wall']:.2f}x "
                 f"the pipe floor ({t[PIPE_FLOOR]['wall']:.3f}s)")
        if "splunklib peer" in t:
            line += f"; peer {t['splunklib peer']['wall']:.2f}s = {t['splunklib peer']['wall'] / t['abusedweb']['wall']:.0f}x"
        log(line)
        (OUT / "results.json").write_text(json.dumps({"machine": machine, "results": results}, indent=1))
        # The 10^6 1% stream is profiled below; everything else goes now.
        if not (stream.events == (E5 if args.quick else E6) and stream.rate == 0.01 and stream.patterns == 6
                and not stream.groups and stream.profile == "realistic"):
            stream.remove()
    if not args.no_peer:
        notes.append("The splunklib peer is timed at 10^5 and 10^6 events only: at 10^7 events one run takes "
                     "minutes. It is checked against abusedweb on every stream of up to 10^6 events with the "
                     "default patterns; the pattern series is checked against the 6-pattern result of the same "
                     "events (its extra patterns name `.abused.invalid` domains no event queries).")

    prof = None
    prof_stream = Stream(E5 if args.quick else E6, 0.01)
    if not args.no_profile and prof_stream.path.exists():
        prof_stream.generate()
        prof = profile(prof_stream)
    prof_stream.remove()

    notes.append(f"Before each stream was checked and timed: {settled} (see `settle` in benches/run.py).")
    notes.append("Load average (1 min) at start / end of the timed runs: "
                 f"{load_start:.2f} / {os.getloadavg()[0]:.2f}; other work on this machine inflates medians.")
    # Write once before the micro benchmarks, which take minutes, then again with them.
    md = write_report(results, machine, prof, None, notes, commit, when)
    micro_rows = None if args.no_micro else micro()
    if micro_rows is not None:
        md = write_report(results, machine, prof, micro_rows, notes, commit, when)
    (OUT / "results.json").write_text(json.dumps({"machine": machine, "commit": commit, "when": when, "results": results,
                                                  "profile": prof, "micro": micro_rows, "notes": notes}, indent=1))
    print("\n".join(md[md.index("## Targets"):md.index("## Where the time goes")]))


if __name__ == "__main__":
    main()
