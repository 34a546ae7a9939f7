#!/usr/bin/env python3
"""Regenerates examples/data/sysmon_eid22_sample.csv (embedded by examples/demo.rs).

Provenance
----------
* Rows with source="real:<file>" are REAL Sysmon EventID 22 (DNS query) records
  from shared/fixtures/sysmon-events/ (see the README there for where each file
  comes from and its licence): Image, QueryName, QueryStatus, QueryResults and
  Computer are copied verbatim (XmlWinEventLog values as Splunk would extract
  them, JSON values as decoded by the dataset); process_name is the basename
  after the last backslash (the Sysmon TA's rule for EventCode 22) and _time is
  the record's UtcTime as epoch seconds with its milliseconds.
  None of the real records matches the six ESCU patterns (no public dataset
  has one), hence:
* Rows with source="synthetic:demo" are MADE UP for the demo, to exercise the
  detection: pastebin.com by powershell.exe (addresses as quoted in a public
  HTB Stuxbot write-up), cdn.discordapp.com, an ngrok.io tunnel, a duckdns.org
  host, upper-case PASTEBIN.COM, a multivalue QueryName, a QueryResults with
  `;` and quotes, an Image path with a comma.

The CSV is written in splunkd's style: the ordinary fields, then one
`__mv_<field>` column per field in the same order; a value is bare iff it is
empty or only ASCII letters/digits, else quoted with `"` doubled; multivalues
are the values joined by LF plus `$v1$;$v2$` (with `$` doubled) in `__mv_`.

Usage: python3 examples/data/gen_sysmon_eid22_sample.py [FIXTURES_DIR]
(default FIXTURES_DIR: ../shared/fixtures/sysmon-events relative to the repo).
Deterministic: same fixtures, same bytes.
"""

import calendar
import json
import os
import re
import sys
from datetime import datetime

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(HERE, "sysmon_eid22_sample.csv")
FIELDS = ["_time", "Image", "QueryName", "QueryStatus", "process_name",
          "QueryResults", "Computer", "source"]


def epoch(utc_time):
    """'2020-10-22 05:54:21.525' -> '1603346061.525' (keeps the digits given)."""
    whole, _, frac = utc_time.partition(".")
    secs = calendar.timegm(datetime.strptime(whole, "%Y-%m-%d %H:%M:%S").timetuple())
    return f"{secs}.{frac}" if frac else str(secs)


def basename(image):
    return image.rsplit("\\", 1)[-1]


def event(utc, image, query, status, results, computer, source):
    return {
        "_time": [epoch(utc)], "Image": [image],
        "QueryName": query if isinstance(query, list) else [query],
        "QueryStatus": [str(status)], "process_name": [basename(image)],
        "QueryResults": [results], "Computer": [computer], "source": [source],
    }


def from_xml_log(path, rel):
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if "<EventID>22</EventID>" not in line or "Microsoft-Windows-Sysmon" not in line:
                continue
            data = dict(re.findall(r"<Data Name='([^']*)'>(.*?)</Data>", line))
            computer = re.search(r"<Computer>(.*?)</Computer>", line).group(1)
            out.append(event(data["UtcTime"], data["Image"], data["QueryName"],
                             data["QueryStatus"], data["QueryResults"], computer,
                             "real:" + rel))
    return out


def from_json_lines(path, rel, keep):
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            if d.get("EventID") != 22 or "Sysmon" not in d.get("SourceName", ""):
                continue
            out.append(event(d["UtcTime"], d["Image"], d["QueryName"], d["QueryStatus"],
                             d["QueryResults"], d["Hostname"], "real:" + rel))
    return keep(out)


def every(step, limit):
    return lambda evs: evs[::step][:limit]


def synthetic():
    s = "synthetic:demo"
    ps = r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe"
    return [
        event("2024-11-13 10:15:02.117", ps, "pastebin.com", 0,
              "::ffff:104.20.67.143;::ffff:172.67.34.170;::ffff:104.20.68.143;",
              "WORKSTATION5", s),
        event("2024-11-13 10:47:40.001", ps, "pastebin.com", 0,
              "::ffff:104.20.67.143;::ffff:172.67.34.170;::ffff:104.20.68.143;",
              "WORKSTATION5", s),
        event("2024-11-13 10:16:11.530",
              r"C:\Users\alice\AppData\Local\Temp\upd.exe", "cdn.discordapp.com", 0,
              "type:  5 cdn.discordapp.com;::ffff:162.159.130.233;::ffff:162.159.129.233;",
              "WORKSTATION5", s),
        event("2024-11-13 10:20:45.902", r"C:\Users\Public\svchost32.exe",
              "7eac-81-2-3-4.eu.ngrok.io", 0, "::ffff:3.125.102.39;", "MKT01.pandalab.com", s),
        event("2024-11-13 10:22:13.250", r"C:\Windows\System32\rundll32.exe",
              "c2-lab.duckdns.org", 0, "::ffff:198.51.100.7;", "MKT01.pandalab.com", s),
        event("2024-11-13 10:31:07.044", r"C:\Windows\System32\wscript.exe",
              "PASTEBIN.COM", 0, "::ffff:104.20.68.143;", "WORKSTATION5", s),
        event("2024-11-13 10:33:59.610", r"C:\Windows\System32\cmd.exe",
              ["raw.githubusercontent.com", "textbin.net"], 0,
              "type:  5 github.map.fastly.net;::ffff:151.101.248.133;", "WORKSTATION5", s),
        event("2024-11-13 10:40:00.000", r"C:\Users\bob\Downloads\invoice,final.exe",
              "paste.pasteio.com", 0,
              'type:  16 "v=spf1 include:_spf.example ~all";"token=a;b";', "WIN-DC-299", s),
        event("2024-11-13 10:41:30.300", r"C:\Users\bob\Downloads\invoice,final.exe",
              "discord.com", 9003, "-", "WIN-DC-299", s),
    ]


def quote(v):
    if re.fullmatch(rb"[A-Za-z0-9]*", v.encode("utf-8")):
        return v
    return '"' + v.replace('"', '""') + '"'


def cells(values):
    if not values:
        return "", ""
    if len(values) == 1:
        return values[0], ""
    return "\n".join(values), ";".join("$" + v.replace("$", "$$") + "$" for v in values)


def main():
    fixtures = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        REPO, "..", "shared", "fixtures", "sysmon-events")
    events = []
    for name in ["xmlwineventlog/security_content_sysmon_eventid_22_example.log",
                 "xmlwineventlog/converted_from_evtx_sysmon_mixed.log"]:
        events += from_xml_log(os.path.join(fixtures, name), name)
    for name, keep in [
        ("json/otrf_cmd_bitsadmin_download_psh_script_2020-10-23.json", every(1, 3)),
        ("json/otrf_psh_cmstp_execution_bypassuac_2020-10-22.json", every(9, 23)),
        ("json/otrf_metasploit_sharpdump_lsass_memory_dump_EID22_only.json", every(17, 26)),
    ]:
        events += from_json_lines(os.path.join(fixtures, name), name, keep)
    real = len(events)
    # Interleave the synthetic events so they land in different execute chunks.
    for i, e in enumerate(synthetic()):
        events.insert(min(len(events), 4 + i * (real // 9)), e)

    header = FIELDS + ["__mv_" + f for f in FIELDS]
    lines = [",".join(quote(h) for h in header)]
    for e in events:
        pairs = [cells(e[f]) for f in FIELDS]
        lines.append(",".join(quote(c) for c in [p for p, _ in pairs] + [m for _, m in pairs]))
    with open(OUT, "w", encoding="utf-8", newline="") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {OUT}: {real} real + {len(events) - real} synthetic events")


if __name__ == "__main__":
    main()
