#!/usr/bin/env python3
"""`make bench`, file part: how fast does `abusedweb scan` read exported logs?

Two large generated inputs, each timed side by side with its floor,
alternating round by round, medians of whole processes (wall, CPU, peak RSS
through run.py's GNU time helper):

* EVTX: the chunks of the shared fixtures' five .evtx files (real Sysmon
  records, a DNS query in each file) replicated into one file of ~200 MB
  (~20 MB with --quick) behind the UACME sample's file header. Writing EVTX
  ourselves would need a binary-XML writer; real chunks copied whole are
  what a parser meets. Contenders: `abusedweb scan` and the evtx crate's own
  `evtx_dump -t <cores> -o jsonl` (the parser scan uses, rendering every
  record to JSON as scan does, on every core as scan renders one file's
  chunks), the parsing floor; `evtx_dump -t 1` is shown too. `evtx_dump` is installed
  with `cargo install --root target/bench-tools evtx` when missing.
* XmlWinEventLog: ~200 MB (~20 MB) of generated events as a forwarder ships
  them with renderXml (70% Sysmon EventID 22, 1% of those matching ESCU's
  patterns, the rest other Sysmon events), an event a line; and the same
  all on one line, as `wevtutil qe /f:xml` writes them. Contenders:
  `abusedweb scan` and `cat` (moving the bytes).
* JSON: the same events in the evtx crate's layout, one a line (JSON lines)
  and pretty-printed as `jq` prints them; against `cat`.

Before timing, scan's count of DNS-query records and matches is checked
against what the generator made (XML) or against evtx_dump's own rendering
(EVTX). Records/s count every record of the file (the parser's work), MB/s
the file's bytes. Writes benches/out/scan.json and the section between the
`scan` markers of benches/RESULTS.md. Standard library only; reuses run.py.
Options: --quick (~20 MB inputs, 2 rounds), --rounds N, --no-build.
"""

import json
import os
import random
import shutil
import statistics
import subprocess
from pathlib import Path

import run as bench

BEGIN = "<!-- scan:begin (written by benches/scan.py) -->"
END = "<!-- scan:end -->"
FIXTURES = bench.ROOT.parent / "shared" / "fixtures" / "sysmon-events"
TOOLS = bench.ROOT / "target" / "bench-tools"
EVTX_DUMP = TOOLS / "bin" / "evtx_dump"
EVTX_HEADER, EVTX_CHUNK = 4096, 65536
PATTERNS = ["pastebin.com", "textbin.net", "abc.ngrok.io", "cdn.discordapp.com", "x.duckdns.org", "pasteio.com"]


def evtx_dump():
    """The evtx crate's evtx_dump, installed under target/bench-tools if missing."""
    if not EVTX_DUMP.exists():
        bench.sh(["cargo", "install", "--locked", "--root", TOOLS, "evtx"])
    version = bench.out_text([str(EVTX_DUMP), "--version"])
    return version


def make_evtx(path, target_bytes):
    """Real chunks replicated into one file of about target_bytes."""
    files = sorted((FIXTURES / "evtx").glob("*.evtx"))
    header = (FIXTURES / "evtx" / "evtx_attack_samples_Sysmon_UACME_64.evtx").read_bytes()[:EVTX_HEADER]
    chunks = []
    for f in files:
        data = f.read_bytes()
        body = data[EVTX_HEADER:]
        for i in range(0, len(body) - EVTX_CHUNK + 1, EVTX_CHUNK):
            c = body[i:i + EVTX_CHUNK]
            if c.startswith(b"ElfChnk\0"):
                chunks.append(c)
    unit = b"".join(chunks)
    copies = max(1, target_bytes // len(unit))
    with open(path, "wb") as out:
        out.write(header)
        for _ in range(copies):
            out.write(unit)
    return {"copies": copies, "chunks": copies * len(chunks), "files": len(files)}


XML_DNS = ("<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System><Provider "
           "Name='Microsoft-Windows-Sysmon' Guid='{{5770385F-C22A-43E0-BF4C-06F5698FFBD9}}'/><EventID>22</EventID>"
           "<Version>5</Version><Level>4</Level><Task>22</Task><Opcode>0</Opcode><Keywords>0x8000000000000000</Keywords>"
           "<TimeCreated SystemTime='{iso}'/><EventRecordID>{rid}</EventRecordID><Correlation/><Execution "
           "ProcessID='2956' ThreadID='4108'/><Channel>Microsoft-Windows-Sysmon/Operational</Channel><Computer>{host}"
           "</Computer><Security UserID='S-1-5-18'/></System><EventData><Data Name='RuleName'>-</Data><Data "
           "Name='UtcTime'>{utc}</Data><Data Name='ProcessGuid'>{{{guid}}}</Data><Data Name='ProcessId'>{pid}</Data>"
           "<Data Name='QueryName'>{query}</Data><Data Name='QueryStatus'>0</Data><Data Name='QueryResults'>"
           "type:  5 {query}.cdn.example.net;::ffff:104.20.{a}.{b};</Data><Data Name='Image'>{image}</Data>"
           "<Data Name='User'>NT AUTHORITY\\SYSTEM</Data></EventData></Event>\n")
XML_OTHER = ("<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System><Provider "
             "Name='Microsoft-Windows-Sysmon' Guid='{{5770385F-C22A-43E0-BF4C-06F5698FFBD9}}'/><EventID>3</EventID>"
             "<Version>5</Version><Level>4</Level><Task>3</Task><Opcode>0</Opcode><Keywords>0x8000000000000000</Keywords>"
             "<TimeCreated SystemTime='{iso}'/><EventRecordID>{rid}</EventRecordID><Correlation/><Execution "
             "ProcessID='2956' ThreadID='4108'/><Channel>Microsoft-Windows-Sysmon/Operational</Channel><Computer>{host}"
             "</Computer><Security UserID='S-1-5-18'/></System><EventData><Data Name='RuleName'>-</Data><Data "
             "Name='UtcTime'>{utc}</Data><Data Name='ProcessGuid'>{{{guid}}}</Data><Data Name='Image'>{image}</Data>"
             "<Data Name='Protocol'>tcp</Data><Data Name='SourceIp'>10.0.{a}.{b}</Data><Data Name='DestinationIp'>"
             "104.20.{b}.{a}</Data><Data Name='DestinationPort'>443</Data></EventData></Event>\n")
IMAGES = [r"C:\Windows\System32\svchost.exe", r"C:\Program Files\Google\Chrome\Application\chrome.exe",
          r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe", r"C:\Users\bob\AppData\Local\Discord\Discord.exe",
          "&lt;unknown process&gt;"]


def generated_events(target_bytes):
    """Generated Sysmon events of about target_bytes as XmlWinEventLog: yields
    (XML text, fields, DNS query or None)."""
    rnd = random.Random(11)
    hosts = [f"WS-{i:03d}.corp.example" for i in range(40)]
    events = size = 0
    while size < target_bytes:
        events += 1
        t = 1700000000 + events
        h, m, s = t // 3600 % 24, t // 60 % 60, t % 60
        fields = dict(iso=f"2023-11-15T{h:02d}:{m:02d}:{s:02d}.{events % 1000:03d}Z", rid=events,
                      utc=f"2023-11-15 {h:02d}:{m:02d}:{s:02d}.{events % 1000:03d}", host=rnd.choice(hosts),
                      guid=f"{rnd.randrange(16**8):08X}-6A2B-6512-0B00-000000000F00", pid=rnd.randrange(9999),
                      image=rnd.choice(IMAGES), a=rnd.randrange(256), b=rnd.randrange(256))
        query = None
        if rnd.random() < 0.70:
            if rnd.random() < 0.01:
                query = rnd.choice(PATTERNS)
            else:
                query = f"host{rnd.randrange(5000)}.example{rnd.randrange(50)}.com"
            text = XML_DNS.format(query=query, **fields)
        else:
            text = XML_OTHER.format(**fields)
        size += len(text)
        yield text, fields, query


def make_xml(path, target_bytes, one_line=False):
    """XmlWinEventLog of about target_bytes, an event a line or (one_line, as
    `wevtutil qe /f:xml` writes them) all on one line; the counts made."""
    events = dns = matched = 0
    with open(path, "w", newline="") as out:
        for text, _, query in generated_events(target_bytes):
            events += 1
            if query is not None:
                dns += 1
                matched += query in PATTERNS
            out.write(text.rstrip("\n") if one_line else text)
    return {"events": events, "dns": dns, "matched": matched}


def json_event(fields, query):
    """The event as the evtx crate renders it to JSON (Sigma's layout)."""
    system = {"Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}}, "EventID": 22 if query else 3,
              "EventRecordID": fields["rid"], "Channel": "Microsoft-Windows-Sysmon/Operational",
              "Computer": fields["host"], "Security": {"#attributes": {"UserID": "S-1-5-18"}}}
    data = {"RuleName": "-", "UtcTime": fields["utc"], "ProcessGuid": "{" + fields["guid"] + "}",
            "ProcessId": fields["pid"], "Image": fields["image"].replace("&lt;", "<").replace("&gt;", ">")}
    if query:
        data.update(QueryName=query, QueryStatus="0",
                    QueryResults=f"type:  5 {query}.cdn.example.net;::ffff:104.20.{fields['a']}.{fields['b']};")
    return {"Event": {"System": system, "EventData": data}}


def make_json(path, target_bytes, pretty):
    """The same events as JSON, one a line or pretty-printed as `jq` prints
    them (two-space indent, about 30 lines an event); the counts made."""
    events = dns = matched = size = 0
    with open(path, "w", newline="") as out:
        # The XML text is longer than the JSON: generate past the target.
        for _, fields, query in generated_events(target_bytes * 3):
            if size >= target_bytes:
                break
            events += 1
            if query is not None:
                dns += 1
                matched += query in PATTERNS
            text = json.dumps(json_event(fields, query), indent=2 if pretty else None) + "\n"
            out.write(text)
            size += len(text)
    return {"events": events, "dns": dns, "matched": matched}


def scan_counts(path, extra=()):
    """(DNS-query records, matched) from scan's summary line."""
    bench.run_child([bench.ABUSEDWEB, "scan", "--format", "csv", *extra, path])
    err = (bench.OUT / "stderr.txt").read_text()
    for line in err.splitlines():
        if "DNS-query records" in line:
            parts = line.split()
            return int(parts[2]), int(parts[5])
    raise RuntimeError(f"no summary from scan: {err[-2000:]}")


def evtx_reference(path):
    """Every record and the Sysmon EventID 22 ones, as evtx_dump renders them."""
    res = subprocess.run([str(EVTX_DUMP), "-t", "1", "-o", "jsonl", str(path)], capture_output=True, check=True)
    records = dns = 0
    for line in res.stdout.splitlines():
        records += 1
        ev = json.loads(line)["Event"]
        sysm = ev["System"]
        eid = sysm["EventID"]["#text"] if isinstance(sysm["EventID"], dict) else sysm["EventID"]
        if str(eid) == "22" and "Sysmon" in sysm.get("Provider", {}).get("#attributes", {}).get("Name", ""):
            dns += 1
    return records, dns


def timed(contenders, rounds):
    samples = {name: [] for name, _ in contenders}
    for r in range(rounds):
        for name, argv in contenders:
            samples[name].append(bench.run_child(argv))
        bench.log(f"  round {r + 1}/{rounds}: " + ", ".join(f"{n} {s[-1][0]:.2f}s" for n, s in samples.items()))
    return {name: {"wall": statistics.median(x[0] for x in s), "cpu": statistics.median(x[2] for x in s),
                   "rss": max(x[1] for x in s), "walls": [x[0] for x in s]} for name, s in samples.items()}


def scenario_evtx(target, rounds):
    path = bench.DATA / "scan-large.evtx"
    made = make_evtx(path, target)
    size = path.stat().st_size
    records, dns = evtx_reference(path)
    got, _ = scan_counts(path, ["--patterns", "*"])
    if got != dns:
        raise SystemExit(f"EVTX: scan read {got} DNS-query records, evtx_dump renders {dns}")
    bench.log(f"  EVTX {size / 1e6:.0f} MB, {records:,} records, {dns} DNS queries (scan agrees)")
    contenders = [("abusedweb scan", [bench.ABUSEDWEB, "scan", "-q", "--format", "csv", path]),
                  ("evtx_dump -t 1 -o jsonl", [EVTX_DUMP, "-t", "1", "-o", "jsonl", path]),
                  (f"evtx_dump -t {os.cpu_count()} -o jsonl", [EVTX_DUMP, "-t", str(os.cpu_count()), "-o", "jsonl", path])]
    t = timed(contenders, rounds)
    path.unlink()
    return {"input": f"EVTX, {made['files']} fixtures' {made['chunks']:,} chunks", "size": size, "records": records,
            "dns": dns, "timing": t, "floor": f"evtx_dump -t {os.cpu_count()} -o jsonl"}


def scenario_generated(name, label, make, target, rounds):
    """A generated input (XML or JSON) against `cat`, its counts checked."""
    path = bench.DATA / name
    made = make(path, target)
    size = path.stat().st_size
    got = scan_counts(path)
    if got != (made["dns"], made["matched"]):
        raise SystemExit(f"{label}: scan counts {got}, the generator made {made['dns']} DNS queries, "
                         f"{made['matched']} matching")
    bench.log(f"  {label} {size / 1e6:.0f} MB, {made['events']:,} events, {made['dns']:,} DNS queries, "
              f"{made['matched']} matching (scan agrees)")
    contenders = [("abusedweb scan", [bench.ABUSEDWEB, "scan", "-q", "--format", "csv", path]),
                  ("cat", ["cat", path])]
    t = timed(contenders, rounds)
    path.unlink()
    return {"input": f"{label}, generated", "size": size, "records": made["events"], "dns": made["dns"],
            "timing": t, "floor": "cat"}


def table(results):
    lines = ["| input | contender | median wall | CPU (user+sys) | records/s | MB/s | peak RSS (MiB) | vs floor |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        floor = r["timing"][r["floor"]]["wall"]
        for name, m in r["timing"].items():
            lines.append(
                f"| {r['input']} ({r['size'] / 1e6:.0f} MB, {r['records']:,} records, {r['dns']:,} DNS) | {name} | "
                f"{m['wall'] * 1e3:,.0f} ms | {m['cpu'] * 1e3:,.0f} ms | {bench.fmt_rate(r['records'] / m['wall'])} | "
                f"{r['size'] / m['wall'] / 1e6:,.0f} | {bench.mb(m['rss'])} | {m['wall'] / floor:.2f}x |")
    return "\n".join(lines)


def report(results, commit, when, tool):
    return bench.write_section(
        BEGIN, END,
        "`abusedweb scan`: EVTX, XmlWinEventLog and JSON throughput",
        f"Measured {when} at `{commit}` by `benches/scan.py` ({bench.machine_line()}; {tool}). "
        "EVTX: the real chunks of the shared fixtures' five .evtx files replicated into one large file (generating "
        "EVTX would need a binary-XML writer); the floor is the evtx crate's own `evtx_dump` rendering every record "
        "to JSON lines with a thread a core, as scan renders one file's chunks on every core (one thread shown "
        "too). XmlWinEventLog: "
        "generated Sysmon events (70% EventID 22, 1% of those matching), an event a line, or all on one line as "
        "`wevtutil qe /f:xml` writes them; JSON: the same events in the evtx crate's layout, one a line, or "
        "pretty-printed as `jq` prints them (about 30 lines an event); the floor `cat`. Each input is checked "
        "first: scan's DNS-query count equals evtx_dump's / the generator's. One file each, parsed on every "
        "core. "
        "Medians of whole processes, alternating round by round; records/s counts every record of the file.",
        table(results),
    )


def main():
    events, rounds, commit, when = bench.side_run(__doc__)
    quick = events < 10**6
    target = (20 if quick else 200) * 10**6
    tool = evtx_dump()
    results = []
    bench.log(f"== scan: EVTX ~{target / 1e6:.0f} MB")
    results.append(scenario_evtx(target, rounds))
    generated = [
        ("scan-large.xml", "XmlWinEventLog", make_xml),
        ("scan-one-line.xml", "XmlWinEventLog on one line", lambda p, t: make_xml(p, t, one_line=True)),
        ("scan-large.jsonl", "JSON lines", lambda p, t: make_json(p, t, pretty=False)),
        ("scan-pretty.json", "JSON pretty-printed", lambda p, t: make_json(p, t, pretty=True)),
    ]
    for name, label, make in generated:
        bench.log(f"== scan: {label} ~{target / 1e6:.0f} MB")
        results.append(scenario_generated(name, label, make, target, rounds))
    (bench.OUT / "scan.json").write_text(json.dumps({"commit": commit, "when": when, "tool": tool,
                                                     "results": results}, indent=1))
    print(report(results, commit, when, tool))


if __name__ == "__main__":
    if not shutil.which("cargo"):
        raise SystemExit("cargo not found")
    main()
