"""Parse time and entries of real published pages and feeds under `kind: auto`.

    .venv/bin/python -m bench.pages [--root ../shared/realworld] [--runs 7]

Reads the documents under `--root` when it exists (they are not in the repository), prints per
document the detected kind (or the ParseError), the entries, their text size and the median
and worst parse time on one core. Touches no network.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from monitor.errors import ParseError
from monitor.sources import parse_document


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
        times: list[float] = []
        outcome = ""
        for _ in range(args.runs):
            start = time.process_time()
            try:
                doc = parse_document("auto", body, "https://example.org/page", None)
                outcome = (f"{doc.kind:9s} {len(doc.entries):4d} entries "
                           f"{sum(len(e.text) for e in doc.entries):7d} chars")
            except ParseError as exc:
                outcome = f"ParseError: {str(exc)[:70]}"
            times.append(time.process_time() - start)
        print(f"{path.parent.name}/{path.name:44s} {len(body) / 1e3:7.0f} KB "
              f"median {statistics.median(times) * 1e3:6.1f} ms  max {max(times) * 1e3:6.1f} ms"
              f"  {outcome}")


if __name__ == "__main__":
    main()
