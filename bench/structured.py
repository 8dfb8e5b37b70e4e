"""Structured data readers compared on real pages: livewatch's own microdata/RDFa reader (on
the selectolax tree the page is parsed into anyway) against extruct (lxml), when installed.

    .venv/bin/python -m bench.structured [--root ../shared/realworld] [--runs 5]
    PYTHONPATH=/tmp/extruct .venv/bin/python -m bench.structured   # after
    .venv/bin/pip install --target /tmp/extruct extruct            # to compare

Prints per page the items and LiveBlogPosting updates each finds and its median CPU time
(extruct parses the page itself, so its time includes a parse; ours is shown with and
without the selectolax parse). Touches no network.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from selectolax.lexbor import LexborHTMLParser

from monitor.sources.base import html_tree
from monitor.sources.jsonld import typed_nodes
from monitor.sources.microdata import microdata_items, rdfa_items


def _median(func: Callable[[], Any], runs: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(runs):
        start = time.process_time()
        result = func()
        times.append(time.process_time() - start)
    return statistics.median(times) * 1e3, result


def _own(tree: LexborHTMLParser) -> list[Any]:
    return [*microdata_items(tree), *rdfa_items(tree)]


def _updates(items: list[Any]) -> int:
    blogs = [n for item in items for n in typed_nodes(item, "LiveBlogPosting")]
    count = 0
    for blog in blogs:
        value = blog.get("liveBlogUpdate")
        count += len(value) if isinstance(value, list) else int(value is not None)
    return count


def main() -> None:
    """One line per page and reader."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared" / "realworld")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    try:
        import extruct  # type: ignore[import-untyped, import-not-found, unused-ignore]
    except ImportError:
        extruct = None
        print("extruct is not installed: only livewatch's reader is measured")
    pages = sorted(args.root.glob("*/*.html")) if args.root.is_dir() else []
    for path in pages:
        body = path.read_bytes()
        parse_ms, tree = _median(partial(html_tree, body, None, 5000), args.runs)
        own_ms, own = _median(partial(_own, tree), args.runs)
        print(f"{path.name:40s} own      {len(own):4d} items {_updates(own):4d} updates "
              f"{own_ms:6.1f} ms (+ {parse_ms:.1f} ms parse)")
        if extruct is not None:
            text = body.decode("utf-8", errors="replace")
            ext_ms, found = _median(partial(
                extruct.extract, text, base_url="https://example.org/",
                syntaxes=["microdata", "rdfa"], uniform=True), args.runs)
            items = [*found.get("microdata", []), *found.get("rdfa", [])]
            print(f"{'':40s} extruct  {len(items):4d} items {_updates(items):4d} updates "
                  f"{ext_ms:6.1f} ms (its own lxml parse included)")


if __name__ == "__main__":
    main()
