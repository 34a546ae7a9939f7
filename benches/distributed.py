#!/usr/bin/env python3
"""`make bench`, distributed part: what `distributed=true` saves.

For 10^6 events at 1% and 20% match (genstream's realistic profile), the
events are spread over 4 simulated indexers (the stream's execute chunks dealt
round-robin, as splunkd hands each indexer its own events). Each indexer runs
the map phase the reduce asks for (its `streaming_preop`, tokenised as splunkd
tokenises it) over its chunks; the maps' partial rows are re-encoded the way
splunkd hands results to the next phase (`__mv_` column per field, quoting)
and fed to the reduce. Reported side by side with the search-head-only run
(`distributed=false`, the whole stream into one process):

* rows and bytes entering the map phase (what the indexers would otherwise
  ship to the search head) against rows and bytes leaving it;
* each map process's time (the indexers run in parallel, so the slowest is
  what a search waits for) and the reduce's time, against the search-head-only
  process's time, medians over alternating rounds;
* the result rows of both, checked equal before anything is timed.

Writes benches/out/distributed.json and the section between the
`distributed` markers of benches/RESULTS.md. Standard library only; reuses
run.py's builder, stream generator and child timer.
Options: --quick (10^5 events, 2 rounds), --rounds N.
"""

import csv
import io
import json
import statistics

import run as bench

INDEXERS = 4
BEGIN = "<!-- distributed:begin (written by benches/distributed.py) -->"
END = "<!-- distributed:end -->"


def chunk(meta, body=b""):
    m = json.dumps(meta, separators=(",", ":")).encode()
    return b"chunked 1.0,%d,%d\n" % (len(m), len(body)) + m + body


def tokenise(line):
    """splunkd's split of a command line: blanks outside quotes end a token;
    `args` lose the quotes, `raw_args` keep them."""
    args, raw, cur, quoted = [], [], None, False
    for c in line:
        if c.isspace() and not quoted:
            if cur is not None:
                args.append(cur[0])
                raw.append(cur[1])
                cur = None
            continue
        cur = cur or ["", ""]
        cur[1] += c
        if c == '"':
            quoted = not quoted
        else:
            cur[0] += c
    if cur is not None:
        args.append(cur[0])
        raw.append(cur[1])
    return args[1:], raw[1:]


def getinfo(args, raw_args, sid):
    return chunk({"action": "getinfo", "preview": False, "streaming_command_will_restart": False,
                  "searchinfo": {"args": args, "raw_args": raw_args, "sid": sid, "app": "search",
                                 "owner": "admin", "username": "admin", "session_key": "k",
                                 "splunkd_uri": "https://127.0.0.1:8089", "splunk_version": "9.1.0",
                                 "search": "litsearch", "command": "abusedweb", "maxresultrows": 50000,
                                 "earliest_time": "0", "latest_time": "0", "dispatch_dir": "/tmp"}})


def execute_stream(head, bodies):
    out = [head]
    for i, body in enumerate(bodies):
        out.append(chunk({"action": "execute", "finished": i + 1 == len(bodies)}, body))
    return b"".join(out)


def splunkd_csv(header, rows):
    """Rows as splunkd writes results: every column then its `__mv_` twin,
    values bare only when empty or ASCII alphanumeric, LF line ends."""
    def cell(v):
        return v if v == "" or (v.isascii() and v.isalnum()) else '"' + v.replace('"', '""') + '"'
    cols = list(header) + ["__mv_" + h for h in header]
    lines = [",".join(cell(c) for c in cols)]
    for r in rows:
        lines.append(",".join([cell(v) for v in r] + [""] * len(header)))
    return ("\n".join(lines) + "\n").encode()


def preop():
    """The reduce's streaming_preop for `distributed=true`."""
    out = bench.DATA / "dist-getinfo.out"
    path = bench.DATA / "dist-getinfo.in"
    path.write_bytes(getinfo(["distributed=true"], ["distributed=true"], "1.1"))
    bench.run_child([bench.ABUSEDWEB], path, out)
    (meta, _), = bench.read_chunks(out.read_bytes())
    return meta["streaming_preop"]


def scenario(stream, rounds):
    data = stream.path.read_bytes()
    chunks = bench.read_chunks(data)
    bodies = [b for _, b in chunks[1:]]
    indexer_bodies = [bodies[i::INDEXERS] for i in range(INDEXERS)]
    args, raw = tokenise(preop())
    map_paths = []
    for i, mine in enumerate(indexer_bodies):
        p = bench.DATA / f"dist-map{i}.scp"
        p.write_bytes(execute_stream(getinfo(args, raw, f"remote_idx{i}_1.1"), mine))
        map_paths.append(p)

    # One untimed pass: collect the partial rows and the traffic figures.
    partial_header, partial_rows, out_bytes = None, [], 0
    for i, p in enumerate(map_paths):
        out = bench.DATA / f"dist-map{i}.out"
        bench.run_child([bench.ABUSEDWEB], p, out)
        replies = bench.read_chunks(out.read_bytes())
        if len(replies) != 1 + len(indexer_bodies[i]) or any("error" in m for m, _ in replies):
            raise RuntimeError(f"map {i}: {replies[-1][0]}")
        for _, body in replies[1:]:
            out_bytes += len(body)
            if body:
                table = list(csv.reader(io.StringIO(body.decode(), newline="")))
                partial_header = table[0]
                partial_rows += table[1:]
    reduce_bodies = [splunkd_csv(partial_header, partial_rows[i:i + bench.CHUNK_ROWS])
                     for i in range(0, max(len(partial_rows), 1), bench.CHUNK_ROWS)]
    reduce_path = bench.DATA / "dist-reduce.scp"
    reduce_path.write_bytes(execute_stream(getinfo(["distributed=true"], ["distributed=true"], "1.1"), reduce_bodies))
    reduce_out = bench.DATA / "dist-reduce.out"
    bench.run_child([bench.ABUSEDWEB], reduce_path, reduce_out)
    dist = bench.result_rows(reduce_out.read_bytes(), 1 + len(reduce_bodies))
    single_out = bench.DATA / "dist-single.out"
    bench.run_child([bench.ABUSEDWEB], stream.path, single_out)
    single = bench.result_rows(single_out.read_bytes(), len(chunks))
    diff = bench.first_difference(dist, single)
    if diff:
        raise RuntimeError(f"{stream.label()}: distributed and search-head-only results differ: {diff}")

    times = {"single": [], "reduce": [], **{f"map{i}": [] for i in range(INDEXERS)}}
    for _ in range(rounds):
        times["single"].append(bench.run_child([bench.ABUSEDWEB], stream.path)[0])
        for i, p in enumerate(map_paths):
            times[f"map{i}"].append(bench.run_child([bench.ABUSEDWEB], p)[0])
        times["reduce"].append(bench.run_child([bench.ABUSEDWEB], reduce_path)[0])
    med = {k: statistics.median(v) for k, v in times.items()}
    for p in map_paths + [reduce_path, reduce_out, single_out]:
        p.unlink(missing_ok=True)
    for i in range(INDEXERS):
        (bench.DATA / f"dist-map{i}.out").unlink(missing_ok=True)
    return {
        "label": stream.label(), "events": stream.events, "rate": stream.rate, "rounds": rounds,
        "rows_in": stream.events, "bytes_in": sum(len(b) for b in bodies),
        "rows_out": len(partial_rows), "bytes_out": out_bytes,
        "reduce_bytes_in": sum(len(b) for b in reduce_bodies), "result_rows": len(single[1]),
        "single_s": med["single"], "reduce_s": med["reduce"],
        "map_s": [med[f"map{i}"] for i in range(INDEXERS)],
    }


def table(results):
    lines = [
        f"| stream | rows into map / out | bytes into map / out | traffic kept on indexers | search-head-only | "
        f"slowest of {INDEXERS} maps | reduce | reduce vs search-head-only |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        lines.append(
            f"| {r['label']} | {r['rows_in']:,} / {r['rows_out']:,} | "
            f"{r['bytes_in'] / 1e6:.1f} MB / {r['bytes_out'] / 1e3:.1f} kB | "
            f"{r['bytes_in'] / max(r['bytes_out'], 1):,.0f}x less | {r['single_s'] * 1e3:.0f} ms | "
            f"{max(r['map_s']) * 1e3:.0f} ms | {r['reduce_s'] * 1e3:.1f} ms | "
            f"{r['single_s'] / r['reduce_s']:.0f}x faster |")
    return "\n".join(lines)


def report(results, commit, when):
    return bench.write_section(
        BEGIN, END,
        "Distributed search (`distributed=true`)",
        f"Measured {when} at `{commit}` by `benches/distributed.py` ({bench.machine_line()}). Each stream's "
        f"execute chunks are dealt round-robin to {INDEXERS} simulated indexers; each runs the map phase from "
        "the reduce's `streaming_preop`; the partial rows, re-encoded as splunkd re-encodes results, go to the "
        "reduce. Rows and bytes are the CSV bodies entering and leaving the map phase; times are medians of "
        "whole processes over alternating rounds (the maps run one after another here, on indexers they run "
        "at once). The reduce's result rows equal the search-head-only run's, checked before timing.",
        table(results),
        "Reading: the bytes leaving the map phase are what crosses the network from the indexers instead of "
        "the extracted events; the reduce's time is what the search head spends instead of the "
        "search-head-only time; the slowest map is what the indexers add, in parallel, while they search.",
    )


def main():
    events, rounds, commit, when = bench.side_run(__doc__)
    results = []
    for rate in (0.01, 0.20):
        stream = bench.Stream(events, rate)
        bench.log(f"== distributed: {stream.label()}")
        stream.generate()
        r = scenario(stream, rounds)
        bench.log(f"  {r['bytes_in'] / 1e6:.1f} MB into the maps, {r['bytes_out'] / 1e3:.1f} kB out; "
                  f"search-head-only {r['single_s']:.3f}s, slowest map {max(r['map_s']):.3f}s, "
                  f"reduce {r['reduce_s'] * 1e3:.1f} ms")
        results.append(r)
        stream.remove()
    (bench.OUT / "distributed.json").write_text(json.dumps({"commit": commit, "when": when, "results": results},
                                                            indent=1))
    print(report(results, commit, when))


if __name__ == "__main__":
    main()
