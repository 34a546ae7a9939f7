#!/usr/bin/env python3
"""Copy the licence texts of everything compiled into the shipped programs.

Usage: licenses.py SYSROOT OUT_DIR PROGRAM... -- METADATA_JSON...

PROGRAM: the app-relative path of each shipped program (for the index).
METADATA_JSON: `cargo metadata --format-version 1 --filter-platform <target>`,
one per target the programs are built for. The crates compiled in must be the
same for every target (they are: no dependency here is target-specific); if one
ever differs, this stops rather than write an index that is wrong for a program.
Starting from the root package, it follows normal dependencies only (build
scripts and dev-dependencies are not linked into the programs) and copies each
crate's LICENSE*/LICENCE*/COPYING*/COPYRIGHT*/NOTICE*/UNLICENSE files into
OUT_DIR/<crate>-<version>/. A crate without any is an error: we would be
shipping code whose licence we cannot show.

The Rust standard library is linked statically too. Its notices come with the
toolchain as SYSROOT/share/doc/rust/COPYRIGHT-library.html, written out as plain
text to OUT_DIR/rust-std/COPYRIGHT-library.txt. That file covers neither the C
runtime of the Linux programs, musl's libc.a (the musl targets'
lib/self-contained/libc.a), for which OUT_DIR/musl/COPYRIGHT.txt carries musl's
MIT notice built from the toolchain's licenses/MIT.txt, nor, for a `.exe`
program, the mingw-w64 runtime (CRT, libmingwex, winpthreads) and GCC's libgcc
linked into it by Debian's mingw-w64 toolchain: OUT_DIR/mingw-w64/ gets the
Debian copyright files of those packages, which carry the full licence texts
(mingw-w64: ZPL-2.1 and others; libgcc: GPL-3 with the GCC Runtime Library
Exception).

OUT_DIR/README.txt indexes what was copied. Output depends only on the inputs,
so two runs give the same bytes.
"""

import html
import html.parser
import json
import re
import shutil
import sys
from pathlib import Path

LICENCE_NAME = re.compile(r"^(LICEN[CS]E|COPYING|COPYRIGHT|NOTICE|UNLICENSE)", re.IGNORECASE)


def normal_deps(meta, into_macros=True):
    """Package ids reachable from the root through normal dependencies.

    into_macros=False stops at proc-macro crates: what is left is linked into the binary.
    """
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    packages = {p["id"]: p for p in meta["packages"]}
    root = meta["resolve"]["root"]
    seen, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if not into_macros and pid != root and is_proc_macro(packages[pid]):
            continue
        for dep in nodes[pid]["deps"]:
            if any(k["kind"] is None for k in dep["dep_kinds"]) and dep["pkg"] not in seen:
                seen.add(dep["pkg"])
                todo.append(dep["pkg"])
    seen.discard(root)
    return seen


def is_proc_macro(pkg):
    return any("proc-macro" in t["kind"] for t in pkg["targets"])


class _Text(html.parser.HTMLParser):
    """HTML to plain text: keep text, break lines at block elements."""

    BLOCK = {"p", "br", "div", "li", "h1", "h2", "h3", "h4", "pre", "tr", "hr", "section"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out, self.skip = [], 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "head"):
            self.skip += 1
        elif tag in self.BLOCK:
            self.out.append("\n")

    def handle_endtag(self, tag):
        if tag in ("script", "style", "head"):
            self.skip -= 1
        elif tag in self.BLOCK:
            self.out.append("\n")

    def handle_data(self, data):
        if not self.skip:
            self.out.append(data)


def html_to_text(src):
    parser = _Text()
    parser.feed(src)
    parser.close()
    text = html.unescape("".join(parser.out))
    lines = [line.rstrip() for line in text.splitlines()]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")
    return text + "\n"


# Debian's copyright files for the mingw-w64 runtime and GCC's runtime libraries.
MINGW_NOTICES = {
    "mingw-w64-runtime.txt": Path("/usr/share/doc/mingw-w64-x86-64-dev/copyright"),
    "libgcc.txt": Path("/usr/share/doc/gcc-mingw-w64-base/copyright"),
}


def crate_names(meta):
    packages = {p["id"]: p for p in meta["packages"]}
    return sorted((packages[i]["name"], packages[i]["version"]) for i in normal_deps(meta))


def main():
    args = sys.argv[1:]
    if "--" not in args or args.index("--") < 3 or args[-1] == "--":
        sys.exit("usage: licenses.py SYSROOT OUT_DIR PROGRAM... -- METADATA_JSON...")
    sep = args.index("--")
    sysroot, out, programs = Path(args[0]), Path(args[1]), args[2:sep]
    metas = []
    for path in args[sep + 1:]:
        with open(path) as f:
            metas.append(json.load(f))
    if len(metas) != len(programs):
        sys.exit("licenses.py: give one METADATA_JSON per PROGRAM, in the same order")
    # The crates of each program (its target's `cargo metadata`); the union is
    # listed, each crate with the programs it is in when not in all of them
    # (rustix, for one, is compiled into the Linux programs only).
    packages, crates_of, linked = {}, [], set()
    for meta in metas:
        by_id = {p["id"]: p for p in meta["packages"]}
        in_binary = normal_deps(meta, into_macros=False)
        keys = set()
        for pid in normal_deps(meta):
            key = (by_id[pid]["name"], by_id[pid]["version"])
            packages.setdefault(key, by_id[pid])
            keys.add(key)
            if pid in in_binary:
                linked.add(key)
        crates_of.append(keys)
    out.mkdir(parents=True, exist_ok=True)
    elf = [p for p in programs if not p.endswith(".exe")]
    exe = [p for p in programs if p.endswith(".exe")]

    index, missing = [], []
    for key in sorted(set().union(*crates_of)):
        pkg = packages[key]
        crate_dir = Path(pkg["manifest_path"]).parent
        files = sorted(p for p in crate_dir.iterdir() if p.is_file() and LICENCE_NAME.match(p.name))
        if not files:
            missing.append(f"{pkg['name']} {pkg['version']} ({crate_dir})")
            continue
        dest = out / f"{pkg['name']}-{pkg['version']}"
        dest.mkdir()
        for src in files:
            shutil.copyfile(src, dest / src.name)
        # Proc-macros (and their dependencies) run inside the compiler: the
        # code they generate is compiled in, their own code is not. Listed anyway.
        note = ""
        if is_proc_macro(pkg):
            note = " [proc-macro: runs at build time, the code it generates is compiled in]"
        elif key not in linked:
            note = " [build time only: used by a proc-macro]"
        where = [prog for prog, keys in zip(programs, crates_of) if key in keys]
        if len(where) < len(programs):
            note += f" [only in {', '.join(where)}]"
        index.append(
            f"{pkg['name']}-{pkg['version']}: {pkg.get('license') or 'see files'}"
            f" ({', '.join(p.name for p in files)}){note}"
        )
    if missing:
        sys.exit("licenses.py: no licence file found for:\n  " + "\n  ".join(missing))

    notice = sysroot / "share" / "doc" / "rust" / "COPYRIGHT-library.html"
    if not notice.is_file():
        sys.exit(f"licenses.py: {notice} not found (the rustc component ships it)")
    (out / "rust-std").mkdir()
    (out / "rust-std" / "COPYRIGHT-library.txt").write_text(html_to_text(notice.read_text()))
    index.append("rust-std: the Rust standard library, linked statically (COPYRIGHT-library.txt)")

    mit = (sysroot / "share" / "doc" / "rust" / "licenses" / "MIT.txt").read_text()
    if "<year> <copyright holders>" not in mit:
        sys.exit("licenses.py: the toolchain's licenses/MIT.txt is not the expected template")
    if elf:
        (out / "musl").mkdir()
        (out / "musl" / "COPYRIGHT.txt").write_text(
            "musl libc (https://musl.libc.org/) is linked statically into\n"
            + "".join(f"{p}\n" for p in elf)
            + "from the Rust toolchain's *-unknown-linux-musl targets. musl is distributed\n"
            "under the MIT licence; contributors are listed in the COPYRIGHT file of its\n"
            "source tree. Its math library code (src/math/*, src/complex/*) is Copyright\n"
            "(C) 1993,2004 Sun Microsystems, 2003-2011 David Schultz, 2003-2009 Steven G.\n"
            "Kargl, 2003-2009 Bruce D. Evans, 2008 Stephen L. Moshier or 2017-2018 Arm\n"
            "Limited, as labelled in each file, under permissive terms.\n\n"
            + mit.replace("<year> <copyright holders>", "2005-2020 Rich Felker, et al.")
        )
        index.append("musl: musl libc, linked statically into the Linux programs (COPYRIGHT.txt, MIT)")
    if exe:
        (out / "mingw-w64").mkdir()
        for name, src in MINGW_NOTICES.items():
            if not src.is_file():
                sys.exit(f"licenses.py: {src} not found (Debian: gcc-mingw-w64-x86-64-posix installs it)")
            shutil.copyfile(src, out / "mingw-w64" / name)
        index.append(
            "mingw-w64: the mingw-w64 C runtime, libmingwex and winpthreads (mingw-w64-runtime.txt:\n"
            "  ZPL-2.1 and others) and GCC's libgcc/libgcc_eh (libgcc.txt: GPL-3 with the GCC\n"
            f"  Runtime Library Exception), linked statically into {', '.join(exe)}"
        )

    (out / "README.txt").write_text(
        "Third-party code compiled into (or used to build) the programs of this app:\n"
        + "".join(f"  {p}\n" for p in programs)
        + "with the licence texts each ships (one folder per crate, <name>-<version>).\n"
        "Each crate is compiled into every program unless its line names the ones it is in.\n\n"
        + "\n".join(index)
        + "\n"
    )


if __name__ == "__main__":
    main()
