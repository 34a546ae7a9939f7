#!/usr/bin/env python3
"""Split the real splunkd captures into per-target seed corpora for the fuzzers.

usage: fuzz_seed.py <scp2-recordings dir> <fuzz/corpus dir>

Writes (idempotently, file name = content hash, so re-runs add nothing new):
  request_stream/  whole request streams, cut at a chunk boundary to at most
                   CAP bytes; and the execute chunks alone behind a selector
                   byte (the target then sends one of its own getinfo requests)
  chunk_reader/    a buffer-size byte + request and reply streams (CAP)
  metadata/        every chunk's metadata block
  csv_body/        a mode byte + every chunk body (CAP) and the dispatch_dir CSVs
  options/         every getinfo's args, one per line, NUL, then sample values
Python's pickle capture (TestInternals...input.gz) is not splunkd data and is
skipped. The NDietrich logs are hand-assembled, so their chunks are read
leniently (whatever follows each header, up to the declared lengths).
"""

import gzip
import hashlib
import json
import os
import re
import sys

CAP = 256 * 1024
SMALL_CAP = 64 * 1024
HEADER = re.compile(rb"chunked\s+1\.0\s*,\s*(\d+)\s*,\s*(\d+)\s*\n")


def read(path):
    with open(path, "rb") as f:
        data = f.read()
    return gzip.decompress(data) if path.endswith(".gz") else data


def chunks(stream, lenient=False):
    """Yield (start, end, metadata, body) for each chunk found."""
    pos = 0
    while True:
        if lenient:
            m = HEADER.search(stream, pos)
        else:
            while pos < len(stream) and stream[pos] in b"\r\n":
                pos += 1
            m = HEADER.match(stream, pos)
        if not m:
            return
        mlen, blen = int(m.group(1)), int(m.group(2))
        meta_end = m.end() + mlen
        end = meta_end + blen
        yield m.start(), min(end, len(stream)), stream[m.end():meta_end], stream[meta_end:end]
        pos = end


def cut(stream, cap):
    """The longest prefix ending at a chunk boundary within cap (or the first cap bytes)."""
    if len(stream) <= cap:
        return stream
    best = 0
    for _, end, _, _ in chunks(stream):
        if end <= cap:
            best = end
    return stream[:best] if best else stream[:cap]


class Corpus:
    def __init__(self, root):
        self.root = root
        self.added = {}

    def add(self, target, data):
        if not data:
            return
        d = os.path.join(self.root, target)
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, "seed-" + hashlib.sha1(data).hexdigest())
        if not os.path.exists(path):
            with open(path, "wb") as f:
                f.write(data)
            self.added[target] = self.added.get(target, 0) + 1


def main():
    src, dst = sys.argv[1], sys.argv[2]
    corpus = Corpus(dst)
    for dirpath, _, files in sorted(os.walk(src)):
        for name in sorted(files):
            path = os.path.join(dirpath, name)
            if name.startswith("TestInternals") and name.endswith(".input.gz"):
                continue  # a Python pickle, not splunkd data
            if name.endswith(".csv"):
                corpus.add("csv_body", b"\x00" + read(path)[:SMALL_CAP])
                continue
            is_input = ".input" in name or name == "multibyte_input.gz"
            is_output = name.endswith(".output") or name.endswith(".output.py3")
            lenient = name.endswith(".txt") or name.endswith(".md")
            if not (is_input or is_output or lenient):
                continue
            stream = read(path)
            found = list(chunks(stream, lenient))
            corpus.add("chunk_reader", b"\x00" + cut(stream, SMALL_CAP))
            for _, _, meta, body in found:
                corpus.add("metadata", meta[:SMALL_CAP])
                corpus.add("csv_body", b"\x03" + body[:SMALL_CAP])
                try:
                    info = json.loads(meta)
                    args = info.get("searchinfo", {}).get("args")
                except (ValueError, AttributeError):
                    args = None
                if isinstance(args, list):
                    corpus.add("options", "\n".join(map(str, args)).encode() + b"\0pastebin.com\nx")
            if is_input or lenient:
                corpus.add("request_stream", cut(stream, CAP))
                executes = b"".join(
                    stream[s:e] for s, e, meta, _ in found if b'"execute"' in meta
                )
                if executes:
                    corpus.add("request_stream", b"\x00" + cut(executes, CAP))
                    corpus.add("request_stream", b"\x03" + cut(executes, CAP))
    for target in ("request_stream", "chunk_reader", "metadata", "csv_body", "options"):
        print(f"seeded {target}: {corpus.added.get(target, 0)} new input(s) from the captures")


if __name__ == "__main__":
    main()
