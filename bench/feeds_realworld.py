"""The two feed parsing paths on real published feeds: where they disagree, and their speed.

    .venv/bin/python -m bench.feeds_realworld [DIR] [--runs 5]

For each feed file in DIR (default ../shared/realworld/feed; the files are not in the
repository) prints whether the fast path (`monitor.sources.fastfeed`) takes it, the entries,
those with empty text on each path (fast/feedparser), per field the entries that differ
between the fast path and the feedparser path (`parse_feed(fast=False)`), and the median
parse time of each path on one core (`parse_feed` as the service calls it, and feedparser
alone). A JSON Feed has one path: it is read under `kind: auto`. Reads files from disk only.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from monitor.core.errors import ParseError
from monitor.core.models import Entry
from monitor.sources import parse_document
from monitor.sources.fastfeed import fast_feed
from monitor.sources.feeds import parse_feed

URL = "https://example.org/feed"
#: The compared fields, as the report names them, and the `Entry` attribute of each.
FIELDS = {"id": "id", "title": "title", "link": "url", "text": "text",
          "published": "published", "updated": "updated", "author": "author"}


def main() -> None:
    """Print one line per feed file."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dir", type=Path, nargs="?",
                        default=Path(__file__).resolve().parents[2] / "shared" / "realworld"
                        / "feed")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if not args.dir.is_dir():
        print(f"{args.dir} is absent: nothing to measure")
        return
    print(f"{'feed':36s} {'fast':8s} {'entries':>7s} {'empty':>7s}  {'differing fields':42s} "
          f"{'fast ms':>7s}  {'feedparser ms':>13s}")
    for path in sorted(p for p in args.dir.iterdir() if p.is_file()):
        print(_report(path.name, path.read_bytes(), args.runs))


def _report(name: str, body: bytes, runs: int) -> str:
    if name.endswith(".json"):
        try:
            entries = parse_document("auto", body, URL, None).entries
        except ParseError as e:
            return f"{name:36s} ParseError under auto: {e}"
        took = _median(lambda: parse_document("auto", body, URL, None), runs)
        return (f"{name:36s} {'(json)':8s} {len(entries):7d} {_empty(entries):7d}  "
                f"{'one path':42s} {took:7.2f}")
    try:
        reference = parse_feed(body, URL, None, fast=False)[1]
    except ParseError as e:
        return f"{name:36s} ParseError: {e}"
    fast = fast_feed(body, URL, None, 1000)
    differing = _differences(fast[1], reference) if fast is not None else {}
    shown = " ".join(f"{field}={count}" for field, count in differing.items() if count)
    fast_ms = _median(lambda: parse_feed(body, URL, None), runs)
    slow_ms = _median(lambda: parse_feed(body, URL, None, fast=False), runs)
    empty = f"{_empty(fast[1]) if fast is not None else '-'}/{_empty(reference)}"
    return (f"{name:36s} {'taken' if fast is not None else 'declined':8s} "
            f"{len(reference):7d} {empty:>7s}  {shown or 'none':42s} "
            f"{fast_ms:7.2f}  {slow_ms:13.2f}")


def _differences(fast: list[Entry], reference: list[Entry]) -> dict[str, int]:
    """Per field, the entries whose value differs (a missing entry differs in every field)."""
    counts = dict.fromkeys(FIELDS, abs(len(fast) - len(reference)))
    for ours, theirs in zip(fast, reference, strict=False):
        for field, attr in FIELDS.items():
            counts[field] += getattr(ours, attr) != getattr(theirs, attr)
    return counts


def _empty(entries: list[Entry]) -> int:
    return sum(1 for entry in entries if not entry.text)


def _median(parse: Callable[[], object], runs: int) -> float:
    """Median process time of `parse`, in milliseconds."""
    times = []
    for _ in range(runs):
        start = time.process_time()
        parse()
        times.append(time.process_time() - start)
    return statistics.median(times) * 1e3


if __name__ == "__main__":
    main()
