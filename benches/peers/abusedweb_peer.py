#!/usr/bin/env python3
"""The ESCU "Windows Abused Web Services" detection as a splunklib reporting command.

This is how a Splunk developer would write `| abusedweb` without the Rust
crate: the splunk-sdk's `ReportingCommand`, a regular expression for the
wildcards and a dict for the `stats count min(_time) max(_time) by ...`.
The benchmark (benches/run.py) times it against the native command on the
same request streams, after checking that both give the same result rows.

Semantics (shared/docs/detection.md section 9, docs/behaviour.md):

* an event matches when any value of QueryName (or of the `field=` field)
  matches any pattern: Splunk wildcards, `*` = any run of characters,
  everything else literal, ASCII case-insensitive;
* it is dropped when a by-field is absent or empty; multivalue by-fields give
  one group per value (cartesian product), duplicates counted again, empty
  elements skipped;
* count, firstTime = min(_time), lastTime = max(_time) compared as numbers
  (as text only for a group without any numeric `_time`), written as the
  original text; rows sorted by the six by-values.

Usage (splunkd, or the benchmark): `abusedweb_peer.py < request-stream`.
"""

import itertools
import math
import re
import sys

from splunklib.searchcommands import Configuration, Option, ReportingCommand, dispatch, validators

DEFAULT_PATTERNS = "*pastebin* *textbin* *ngrok.io* *discord* *duckdns.org* *pasteio.com*"
BY_FIELDS = ("Image", "QueryName", "QueryStatus", "process_name", "QueryResults", "Computer")
OUTPUT_NAMES = ("Image", "QueryName", "QueryStatus", "process_name", "QueryResults", "dest")
# A `_time` that is a decimal number (`1700000000.500`, `-3`, `1e9`); `inf`/`nan` are text.
NUMBER_CHARS = re.compile(r"[0-9.+\-eE]*[0-9][0-9.+\-eE]*\Z")


def number(text):
    if not NUMBER_CHARS.match(text):
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def wildcard_regex(patterns):
    """One compiled regex for a list of Splunk wildcards.

    re.ASCII | re.IGNORECASE folds only ASCII letters, as Splunk does;
    re.DOTALL lets `*` run over the newlines of multiline values.
    """
    alternatives = (".*".join(re.escape(part) for part in p.split("*")) for p in patterns)
    return re.compile("(?:%s)\\Z" % "|".join(alternatives), re.ASCII | re.IGNORECASE | re.DOTALL)


def values(record, name):
    """The values of a field: splunklib hands a multivalue field as a list."""
    value = record.get(name)
    if isinstance(value, list):
        return [v for v in value if v]
    return [value] if value else []


# splunk-sdk 2.1.1 (the newest PyPI serves here) announces a map phase,
# `streaming_preop: abusedweb phase="map"`, for every ReportingCommand; 3.x
# does so only when map() is overridden. Nothing here runs that phase: the
# benchmark feeds the reduce phase the events directly, as splunkd does for a
# reporting command without preop.
@Configuration(
    required_fields=["_time", "Image", "QueryName", "QueryStatus", "process_name", "QueryResults", "Computer"],
    requires_preop=False,
)
class AbusedWebCommand(ReportingCommand):
    """Counts DNS queries to abused web services by process, query, status, results and host."""

    patterns = Option(
        doc="**Syntax:** patterns=<wildcard> <wildcard> ... (space-separated)",
        require=False,
        default=DEFAULT_PATTERNS,
    )
    field = Option(
        doc="**Syntax:** field=<fieldname>: match this field instead of QueryName",
        require=False,
        default="QueryName",
        validate=validators.Fieldname(),
    )

    def prepare(self):
        super().prepare()
        self._matcher = wildcard_regex(self.patterns.split())
        # (by-values) -> [count, numeric min, numeric max, text min, text max];
        # the numeric slots hold (value, original text).
        self._groups = {}

    def reduce(self, records):
        groups = self._groups
        match = self._matcher.match
        field = self.field
        for record in records:
            if not any(match(v) for v in values(record, field)):
                continue
            by_values = [values(record, name) for name in BY_FIELDS]
            if not all(by_values):
                continue
            times = [(t, number(t)) for t in values(record, "_time")]
            for key in itertools.product(*by_values):
                group = groups.get(key)
                if group is None:
                    group = groups[key] = [0, None, None, None, None]
                group[0] += 1
                for text, value in times:
                    if value is not None:
                        if group[1] is None or value < group[1][0]:
                            group[1] = (value, text)
                        if group[2] is None or value > group[2][0]:
                            group[2] = (value, text)
                    else:
                        if group[3] is None or text < group[3]:
                            group[3] = text
                        if group[4] is None or text > group[4]:
                            group[4] = text

        # splunklib calls reduce() once per execute chunk and sends what it
        # yields as that chunk's reply (search_command.py, _execute_v2), so a
        # reduce() that yields its dict every time would answer each chunk with
        # partial groups. The least hacky hook is the public `metadata`
        # property: splunklib merges each execute request's metadata into it
        # before calling reduce(), so `metadata.finished` says whether this is
        # the last chunk. Keep the groups on the instance until then.
        if not getattr(self.metadata, "finished", False):
            return

        # Python compares str by code point, which is UTF-8 byte order.
        for key in sorted(groups):
            count, nmin, nmax, tmin, tmax = groups[key]
            row = dict(zip(OUTPUT_NAMES, key))
            row["count"] = count
            row["firstTime"] = nmin[1] if nmin is not None else tmin
            row["lastTime"] = nmax[1] if nmax is not None else tmax
            yield row


if __name__ == "__main__":
    dispatch(AbusedWebCommand, sys.argv, sys.stdin, sys.stdout, __name__)
