#!/usr/bin/env python3
"""`make bench`, pattern-list part: do thousands of patterns cost what six do?

The same 10^6 Sysmon DNS events (genstream's realistic profile, 1% and 20%
match) through the command with

* the six ESCU v1-v4 patterns (the default list, `escu_v1`);
* `list=escu_v13`, ESCU v13's 35 patterns (labels on every result row);
* `list=extended`, the app's categorised list (about 120 patterns, labels on
  every result row);
* `patterns=` with 100,000 patterns (the six plus 99,994 synthetic domains no
  event queries, so the result rows equal the six-pattern ones);

timed side by side, alternating round by round, medians of whole processes.
Writes benches/out/lists.json and the section between the `lists` markers of
benches/RESULTS.md. Standard library only; reuses run.py's helpers.
Options: --quick (10^5 events, 2 rounds), --rounds N, --no-build.
"""

import json
import statistics

import run as bench

BEGIN = "<!-- lists:begin (written by benches/lists.py) -->"
END = "<!-- lists:end -->"
TARGET = 1.20  # at most 20% slower than the six patterns


def with_args(stream_path, out_path, args):
    """The stream with its getinfo's args (and raw_args) replaced."""
    data = stream_path.read_bytes()
    nl = data.index(b"\n")
    m = bench.HEADER.fullmatch(data, 0, nl + 1)
    mlen = int(m.group(1))
    meta = json.loads(data[nl + 1:nl + 1 + mlen])
    meta["searchinfo"]["args"] = args
    meta["searchinfo"]["raw_args"] = args
    new = json.dumps(meta, separators=(",", ":")).encode()
    head = b"chunked 1.0,%d,0\n" % len(new)
    out_path.write_bytes(head + new + data[nl + 1 + mlen:])


def scenario(events, rate, rounds):
    six = bench.Stream(events, rate)
    six.generate()
    many = bench.Stream(events, rate, patterns=100_000)
    many.generate()
    v13 = bench.DATA / f"lists-escu_v13-{events}-{rate}.scp"
    with_args(six.path, v13, ["list=escu_v13"])
    extended = bench.DATA / f"lists-extended-{events}-{rate}.scp"
    with_args(six.path, extended, ["list=extended"])
    contenders = [("six patterns (escu_v1)", six.path), ("list=escu_v13", v13), ("list=extended", extended),
                  ("100,000 patterns", many.path)]
    # Result rows: the six and the 100,000 give the same rows (the extra
    # patterns name domains no event queries); extended labels its rows.
    rows = {}
    for name, path in contenders:
        out = bench.DATA / "lists.out"
        bench.run_child([bench.ABUSEDWEB], path, out)
        chunks = bench.read_chunks(out.read_bytes())
        if any("error" in m for m, _ in chunks):
            raise RuntimeError(f"{name}: {chunks[-1][0]}")
        rows[name] = bench.result_rows(out.read_bytes(), len(chunks))
        out.unlink()
    diff = bench.first_difference(rows["six patterns (escu_v1)"], rows["100,000 patterns"])
    if diff:
        raise RuntimeError(f"100,000 patterns changed the result rows: {diff}")
    times = {name: [] for name, _ in contenders}
    cpu = {name: [] for name, _ in contenders}
    for _ in range(rounds):
        for name, path in contenders:
            wall, _, c = bench.run_child([bench.ABUSEDWEB], path)
            times[name].append(wall)
            cpu[name].append(c)
    med = {k: statistics.median(v) for k, v in times.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    result = {
        "label": six.label(), "events": events, "rate": rate, "rounds": rounds,
        "wall": med, "cpu": med_cpu, "rows": {k: len(v[1]) for k, v in rows.items()},
    }
    for s in (six, many):
        s.remove()
    v13.unlink(missing_ok=True)
    extended.unlink(missing_ok=True)
    return result


def table(results):
    lines = ["| stream | contender | result rows | wall (median) | events/s | vs six patterns | target |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        base = r["wall"]["six patterns (escu_v1)"]
        for name, wall in r["wall"].items():
            ratio = wall / base
            verdict = "—" if name.startswith("six") else ("met" if ratio <= TARGET else "missed")
            lines.append(f"| {r['label']} | {name} | {r['rows'][name]} | {wall * 1e3:.0f} ms | "
                         f"{bench.fmt_rate(r['events'] / wall)} | {ratio:.2f}x | {verdict} |")
    return "\n".join(lines)


def report(results, commit, when):
    return bench.write_section(
        BEGIN, END,
        "Pattern lists: thousands of patterns at the cost of six",
        f"Measured {when} at `{commit}` by `benches/lists.py` ({bench.machine_line()}). The same events "
        "through the six ESCU v1-v4 patterns, ESCU v13's 35, the app's `extended` list, and 100,000 patterns (the six plus "
        "99,994 synthetic domains no event queries, whose result rows are checked equal to the six's), "
        f"alternating round by round; medians of whole processes. Target: at most {TARGET:.2f}x the six.",
        table(results),
    )


def main():
    events, rounds, commit, when = bench.side_run(__doc__)
    results = []
    for rate in (0.01, 0.20):
        bench.log(f"== lists: {events} events, {rate:.0%} match")
        results.append(scenario(events, rate, rounds))
    (bench.OUT / "lists.json").write_text(json.dumps({"commit": commit, "when": when, "results": results}, indent=1))
    print(report(results, commit, when))


if __name__ == "__main__":
    main()
