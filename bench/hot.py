"""Hot live blogs: detection latency of a live blog posting every minute, with `min_interval`.

    python -m bench.hot --blogs 20 --minutes 5 --interval 30 --min-interval 5

One `livewatch run` process (pollers and workers) on its own redis-server polls `--blogs`
live blogs of the local farm (RSS, Atom and JSON-LD pages in turn); each blog posts every
`--every` seconds at its own phase, every post carrying the watched phrase. Prints detection
latency (post added -> webhook received) p50/p99: after each blog's first detected post (the
steady state of a live blog, hot from then on) and for first posts (polled at the interval),
with fetches per blog per minute; run with `--min-interval 0` for the same run without hot
polling.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path

from bench.farm import Farm, serving
from bench.scaleout import Role, _alerted
from monitor.ops.embedded import EmbeddedRedis


def config_yaml(base: str, blogs: int, redis_url: str, interval: float,
                min_interval: float) -> str:
    hot = f", min_interval: {min_interval}s, hot_for: 10m" if min_interval else ""
    lines = [f'redis: {{url: "{redis_url}"}}',
             f"defaults: {{interval: {interval}s, timeout: 10s{hot}}}", "feeds:"]
    lines += [f'  - {{name: f{i}, url: "{base}/feed/{i}"}}' for i in range(blogs)]
    lines += ["rules:", '  - {name: coalition, any: ["coalition of the willing"], '
              "channels: [farm]}", "channels:",
              f'  - {{name: farm, type: webhook, url: "{base}/hook"}}']
    return "\n".join(lines) + "\n"


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


async def run(blogs: int, minutes: float, every: float, interval: float,
              min_interval: float) -> None:
    farm = Farm(blogs, posts=20)
    rng = random.Random(7)
    async with serving(farm) as base:
        with tempfile.TemporaryDirectory() as tmp, \
                EmbeddedRedis(Path(tmp) / "redis", appendonly=False) as redis_server:
            config = Path(tmp) / "livewatch.yaml"
            config.write_text(config_yaml(base, blogs, redis_server.url, interval,
                                          min_interval))
            role = Role("run", config, Path(tmp), 0)
            try:
                start = time.time() + interval + 5  # every blog baselined by then
                due = {i: start + rng.uniform(0, every) for i in range(blogs)}
                end = start + minutes * 60
                fetches_before = 0
                while time.time() < end:
                    now = time.time()
                    if not fetches_before and now >= start:
                        fetches_before = farm.fetches
                    for index, when in due.items():
                        if now >= when:
                            farm.next_post += 1
                            farm.feeds[index].add(farm.next_post, phrase=True)
                            farm.truth.append({"feed": index, "post": farm.next_post,
                                               "phrase": True, "at": time.time()})
                            due[index] = when + every
                    await asyncio.sleep(0.02)
                fetches = farm.fetches - fetches_before
                truth = farm.truth
                for _second in range(int(interval) + 30):  # the last posts' alerts
                    if len(_alerted(farm, truth)) == len(truth):
                        break
                    await asyncio.sleep(1)
            finally:
                role.stop()
                role.sample_cpu()
    report(farm, blogs, minutes, fetches, interval, min_interval, every, role.cpu)


def report(farm: Farm, blogs: int, minutes: float, fetches: int, interval: float,
           min_interval: float, every: float, cpu: float) -> None:
    posted = {(t["feed"], t["post"]): t["at"] for t in farm.truth}
    arrived: dict[tuple[int, int], float] = {}
    for alert in farm.alerts.values():
        post = alert["entry"].rpartition("p")[2]
        key = (int(alert["feed"].removeprefix("f")), int(post) if post.isdigit() else -1)
        if key in posted:
            arrived[key] = min(arrived.get(key, alert["at"]), alert["at"])
    first: list[float] = []
    steady: list[float] = []
    seen: set[int] = set()
    for key in sorted(posted, key=posted.__getitem__):
        if key not in arrived:
            continue
        (steady if key[0] in seen else first).append(arrived[key] - posted[key])
        seen.add(key[0])
    missed = len(posted) - len(arrived)
    print(f"{blogs} blogs posting every {every:g} s for {minutes:g} min, interval "
          f"{interval:g} s, min_interval {min_interval or '-'}")
    print(f"posts {len(posted)}: alerted {len(arrived)}, missed {missed}, "
          f"duplicates {farm.duplicates}")
    for name, values in (("steady (hot)", steady), ("first posts", first)):
        if values:
            print(f"detection {name:<13} n={len(values):4d}  p50 {statistics.median(values):5.2f} s"
                  f"  p99 {_percentile(values, 0.99):5.2f} s  max {max(values):5.2f} s")
    print(f"fetches per blog per minute {fetches / blogs / minutes:.1f}   "
          f"livewatch cpu {cpu:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blogs", type=int, default=20)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--every", type=float, default=60.0)
    parser.add_argument("--interval", type=float, default=30.0)
    parser.add_argument("--min-interval", type=float, default=5.0)
    args = parser.parse_args()
    asyncio.run(run(args.blogs, args.minutes, args.every, args.interval, args.min_interval))


if __name__ == "__main__":
    main()
