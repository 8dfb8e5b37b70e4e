"""Scale-out benchmark: separate `livewatch poller` and `livewatch worker` processes sharing one
Redis and the local feed farm, with posts added throughout and one poller SIGKILLed (and
replaced) half-way.

    python -m bench.scaleout --feeds 2000 --minutes 5        # 2 pollers + 2 workers, 30 s
    python -m bench.scaleout --feeds 2000 --minutes 5 --cluster   # on a 3-master cluster

Prints fetches per feed per interval (all pollers together: ~1 means each feed is polled once
per interval, ~2 would be once per poller), the share of polls closer than half an interval to
the previous one, the longest gap, alerts against the farm's ground truth (missed,
duplicates by `webhook-id`, unexpected), detection latency, and each process's CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

from bench.farm import Farm, serving
from monitor.ops.embedded import EmbeddedRedis, LocalCluster

REPO = Path(__file__).resolve().parent.parent
_POST = re.compile(r"p(\d+)$")


class CountingFarm(Farm):
    """The bench farm, also keeping every fetch's time per feed."""

    def __init__(self, feeds: int) -> None:
        super().__init__(feeds)
        self.times: list[list[float]] = [[] for _ in range(feeds)]

    async def feed(self, request: web.Request) -> web.Response:
        self.times[int(request.match_info["index"])].append(time.time())
        return await super().feed(request)


def config_yaml(base: str, feeds: int, redis_url: str, interval: float,
                cluster: bool = False) -> str:
    lines = [f'redis: {{url: "{redis_url}", cluster: true}}' if cluster else
             f'redis: {{url: "{redis_url}"}}',
             f"defaults: {{interval: {interval}s, timeout: 20s, max_concurrency: 100}}",
             "state: {stream_maxlen: 1000000}", "feeds:"]
    lines += [f'  - {{name: f{i}, url: "{base}/feed/{i}"}}' for i in range(feeds)]
    lines += ["rules:", '  - {name: coalition, any: ["coalition of the willing"], '
              "channels: [farm]}", "channels:",
              f'  - {{name: farm, type: webhook, url: "{base}/hook"}}',
              "workers: {claim_idle: 10s, delivery_lease: 10s}"]
    return "\n".join(lines) + "\n"


class Role:
    """One `python -m monitor ROLE` process with JSON logs in a file."""

    def __init__(self, role: str, config: Path, logs: Path, n: int) -> None:
        self.name = f"{role}{n}"
        self.log = logs / f"{self.name}.log"
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "monitor", role, "--config", str(config),
                 "--log-format", "json", "--log-level", "INFO"],
                stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.cpu = 0.0

    def sample_cpu(self) -> None:
        """Remember the process's user+system CPU seconds (Linux /proc)."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            self.cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            pass

    def stop(self, sig: int = signal.SIGTERM) -> None:
        self.sample_cpu()
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def statuses(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                record = json.loads(line)
                if record.get("event") in ("poll", "poll failed"):
                    counts[record.get("status", "?")] += 1
        return counts


async def run(feeds: int, minutes: float, interval: float, pollers: int, workers: int,
              rate: int, keep_logs: Path | None, cluster: bool = False) -> None:
    farm = CountingFarm(feeds)
    async with serving(farm) as base:
        with tempfile.TemporaryDirectory() as tmp, \
                (LocalCluster(Path(tmp) / "cluster") if cluster else
                 EmbeddedRedis(Path(tmp) / "redis", appendonly=False)) as redis_server:
            config = Path(tmp) / "livewatch.yaml"
            config.write_text(config_yaml(base, feeds, redis_server.url, interval, cluster))
            print(f"redis: {'a 3-master cluster' if cluster else 'one server'}")
            logs = keep_logs or Path(tmp)
            logs.mkdir(parents=True, exist_ok=True)
            roles = [Role("worker", config, logs, n) for n in range(workers)]
            roles += [Role("poller", config, logs, n) for n in range(pollers)]
            started = time.time()
            duration = minutes * 60
            warm = started + interval * 2  # the cold start (baseline of every feed) is over
            killed_at = None
            try:
                async with httpx.AsyncClient(timeout=10) as control:
                    while time.time() - started < duration:
                        await asyncio.sleep(5)
                        if time.time() > warm:
                            await control.post(f"{base}/_add", params={"k": rate})
                        if killed_at is None and time.time() - started >= duration / 2:
                            victim = next(r for r in roles if r.name == "poller0")
                            victim.stop(signal.SIGKILL)
                            killed_at = time.time()
                            roles.append(Role("poller", config, logs, pollers))
                            print(f"{killed_at - started:5.0f} s  SIGKILLed poller0, started "
                                  f"poller{pollers}", flush=True)
                    last_post = time.time()
                    truth = [t for t in farm.truth if t["phrase"]]
                    for _second in range(int(2 * interval) + 30):  # the last posts' alerts
                        if len(_alerted(farm, truth)) == len(truth):
                            break
                        await asyncio.sleep(1)
            finally:
                for role in roles:
                    role.sample_cpu()
                    role.stop()
            report(farm, roles, feeds, interval, started, warm, last_post, killed_at)


def _alerted(farm: Farm, truth: list[dict[str, Any]]) -> set[tuple[int, int]]:
    got = set()
    for alert in farm.alerts.values():
        match = _POST.search(alert["entry"])
        if match:
            got.add((int(alert["feed"].removeprefix("f")), int(match.group(1))))
    return got & {(t["feed"], t["post"]) for t in truth}


def report(farm: CountingFarm, roles: list[Role], feeds: int, interval: float, started: float,
           warm: float, end: float, killed_at: float | None) -> None:
    window = end - warm
    fetches = sum(1 for times in farm.times for t in times if warm <= t < end)
    gaps = [b - a for times in farm.times for a, b in itertools.pairwise(times)
            if warm <= b < end]
    close = sum(1 for g in gaps if g < interval / 2)
    truth = [t for t in farm.truth if t["phrase"]]
    alerted = _alerted(farm, truth)
    missed = len(truth) - len(alerted)
    unexpected = len(farm.alerts) - len(alerted)
    posted = {(t["feed"], t["post"]): t["at"] for t in truth}
    latency = sorted(
        alert["at"] - posted[key] for alert in farm.alerts.values()
        if (m := _POST.search(alert["entry"]))
        and (key := (int(alert["feed"].removeprefix("f")), int(m.group(1)))) in posted)
    print(f"feeds {feeds}, interval {interval:g} s, {len([r for r in roles if 'poller' in r.name])}"
          f" poller processes over the run, measured {window:.0f} s after warm-up")
    print(f"fetches per feed per interval   {fetches / feeds / (window / interval):.3f}"
          f"   (1 = once per interval in all; one per poller would be ~2)")
    print(f"polls < interval/2 after the feed's previous poll   {close} of {len(gaps)}"
          f" ({close / max(len(gaps), 1):.2%})")
    print(f"longest gap between two polls of a feed   {max(gaps, default=0):.1f} s"
          + (f"   (poller0 SIGKILLed at {killed_at - started:.0f} s)" if killed_at else ""))
    print(f"posts with the phrase {len(truth)}: alerted {len(alerted)}, missed {missed}, "
          f"duplicates {farm.duplicates}, unexpected {unexpected}")
    if latency:
        p50 = statistics.median(latency)
        p99 = latency[min(len(latency) - 1, int(len(latency) * 0.99))]
        print(f"detection latency (post added -> webhook received)   p50 {p50:.1f} s   "
              f"p99 {p99:.1f} s")
    for role in roles:
        statuses = dict(role.statuses()) if "poller" in role.name else {}
        print(f"{role.name:<8} cpu {role.cpu:7.1f} s   {statuses}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--feeds", type=int, default=2000)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--interval", type=float, default=30.0)
    parser.add_argument("--pollers", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate", type=int, default=10, help="posts added every 5 s")
    parser.add_argument("--logs", type=Path, help="keep the processes' JSON logs here")
    parser.add_argument("--cluster", action="store_true",
                        help="on a local 3-master Redis Cluster instead of one server")
    args = parser.parse_args()
    asyncio.run(run(args.feeds, args.minutes, args.interval, args.pollers, args.workers,
                    args.rate, args.logs, args.cluster))


if __name__ == "__main__":
    main()
