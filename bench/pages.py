"""Parse time and entries of real published pages and feeds under `kind: auto`.

    .venv/bin/python -m bench.pages [--root ../shared/realworld] [--runs 7]

Reads the documents under `--root` when it exists (they are not in the repository), prints per
document the median and worst parse time on one core, cold (no memo) and warm (with the entry
versions of the previous parse and the updates read lately, as the poller parses a changed
page: `monitor.core.versionmemo`, `monitor.sources.liveblog`),
the detected kind and strategy (or the ParseError), the entries and their text size. Touches
no network.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from monitor.core.errors import ParseError
from monitor.sources import parse_document
from monitor.sources.liveblog import forget_drafts


def main() -> None:
    """Print one line per document."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared" / "realworld")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    if not args.root.is_dir():
        print(f"{args.root} is absent: nothing to measure")
        return
    for path in sorted(p for p in args.root.glob("*/*") if p.suffix != ".md"):
        body = path.read_bytes()
        cold: list[float] = []
        warm: list[float] = []
        outcome = ""
        versions: dict[int, str] | None = None
        for run in range(2 * args.runs):
            if not run % 2:
                forget_drafts()
            start = time.process_time()
            try:
                doc = parse_document("auto", body, "https://example.org/page", None,
                                     versions=versions if run % 2 else None)
                versions = doc.versions
                outcome = (f"{doc.kind:9s} {doc.strategy or '-':15s} {len(doc.entries):4d} "
                           f"entries {sum(len(e.text) for e in doc.entries):7d} chars")
            except ParseError as exc:
                outcome = f"ParseError: {str(exc)[:60]}"
            (warm if run % 2 else cold).append(time.process_time() - start)
        print(f"{path.parent.name}/{path.name:40s} {len(body) / 1e3:5.0f} KB "
              f"cold {statistics.median(cold) * 1e3:5.1f}/{max(cold) * 1e3:5.1f} ms  "
              f"warm {statistics.median(warm) * 1e3:5.1f}/{max(warm) * 1e3:5.1f} ms  {outcome}")

if __name__ == "__main__":
    main()
