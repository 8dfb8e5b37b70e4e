"""`livewatch run --processes 1` against `--processes 2` on the same workload: the bench farm's
feeds on 127.0.0.1 (RSS, Atom and live-blog pages), polled at a short interval while posts are
added to many of them, the service a real subprocess with its embedded Redis.

    python -m bench.processes                          # 2,000 feeds every 5 s, 40 s measured
    python -m bench.processes --feeds 3000 --interval 5 --rate 60 --measure 90 --modes 1,2,3
    python -m bench.processes --feeds 10000 --interval 30 --burst 200 --measure 120 \
        --warmup 600                                 # a story breaking everywhere at once

For each mode: a fresh data directory and farm, the service started, warm-up until every feed
was fetched twice (the cold round of baselines is over), then `--measure` seconds with
`--rate` posts a second (every other one with the watched phrase), then up to 15 s for the
last alerts. Printed per mode: polls per second (fetches the farm answered in the window; the
target is feeds / interval), CPU share (user+system seconds of the service's processes over
the window, its parsing processes included and its redis-server not, / wall / cores), polls
per CPU-second, commit → webhook latency (webhook received − the alert's `detected_at`) and
post → webhook latency p50/p99, and the alerts against the farm's ground truth. The farm's
own CPU (this process) is printed too: on a small machine it competes with the service.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

from bench.farm import Farm, serving
from monitor.ops.embedded import free_port

REPO = Path(__file__).resolve().parent.parent
_TICK = os.sysconf("SC_CLK_TCK")


class CountingFarm(Farm):
    """The bench farm, also counting every fetch per feed, with its time."""

    def __init__(self, feeds: int, posts: int) -> None:
        super().__init__(feeds, posts)
        self.per_feed = [0] * feeds
        self.stamps: list[float] = []

    async def feed(self, request: web.Request) -> web.Response:
        self.per_feed[int(request.match_info["index"])] += 1
        self.stamps.append(time.time())
        return await super().feed(request)


def config_yaml(base: str, feeds: int, interval: float, data_dir: Path, ops: int) -> str:
    lines = [f'redis: {{url: embedded, data_dir: "{data_dir}"}}',
             f'http: {{listen: "127.0.0.1:{ops}"}}',
             f"defaults: {{interval: {interval}s, timeout: 20s, max_concurrency: 100}}",
             "state: {stream_maxlen: 1000000}", "feeds:"]
    lines += [f'  - {{name: f{i}, url: "{base}/feed/{i}"}}' for i in range(feeds)]
    lines += ["rules:", '  - {name: coalition, any: ["coalition of the willing"], '
              "channels: [farm]}", "channels:",
              f'  - {{name: farm, type: webhook, url: "{base}/hook"}}',
              "workers: {claim_idle: 10s, delivery_lease: 10s}"]
    return "\n".join(lines) + "\n"


def _tree(root: int) -> dict[int, tuple[str, float]]:
    """`root` and its live descendants: pid -> (command, user+system CPU seconds)."""
    stats: dict[int, tuple[int, str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        command = text[text.index("(") + 1:text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        stats[int(entry.name)] = (int(fields[1]), command,
                                  (int(fields[11]) + int(fields[12])) / _TICK)
    out = {root: stats[root][1:]} if root in stats else {}
    frontier = {root}
    while frontier:
        frontier = {pid for pid, (parent, _, _) in stats.items()
                    if parent in frontier and pid not in out}
        out.update({pid: stats[pid][1:] for pid in frontier})
    return out


class CpuMeter:
    """CPU seconds of a process tree, sampled (a process that exits keeps its last sample)."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.seen: dict[int, tuple[str, float]] = {}

    def sample(self) -> None:
        self.seen.update(_tree(self.root))

    def totals(self) -> tuple[float, float]:
        """(livewatch processes, redis-server) CPU seconds so far."""
        service = sum(cpu for command, cpu in self.seen.values() if "redis" not in command)
        redis = sum(cpu for command, cpu in self.seen.values() if "redis" in command)
        return service, redis


@dataclass
class Result:
    """One mode's figures."""

    processes: int
    window: float
    polls: int
    cpu: float
    redis_cpu: float
    farm_cpu: float
    internal: list[float]
    detection: list[float]
    #: (upper bound, turns) of the poll-start lateness histogram over the window
    lateness: list[tuple[float, float]]
    phrase_posts: int
    alerted: int
    duplicates: int

    def rows(self, cores: int, target: float) -> list[str]:
        share = self.cpu / self.window / cores
        return [
            f"--processes {self.processes}: {self.polls / self.window:7.1f} polls/s "
            f"(target {target:.0f}), CPU {share:6.1%} of {cores} cores "
            f"({self.cpu:.1f} s; redis-server {self.redis_cpu:.1f} s, farm "
            f"{self.farm_cpu:.1f} s), "
            f"{self.polls / max(self.cpu, 1e-9):6.0f} polls per CPU-second",
            f"    commit -> webhook p50 {percentile(self.internal, 50) * 1000:6.0f} ms  "
            f"p99 {percentile(self.internal, 99) * 1000:6.0f} ms;  post -> webhook p50 "
            f"{percentile(self.detection, 50):5.2f} s  p99 {percentile(self.detection, 99):5.2f} s",
            f"    polls started late (turn start - scheduled): {_late(self.lateness)}",
            f"    phrase posts {self.phrase_posts}: alerted {self.alerted}, missed "
            f"{self.phrase_posts - self.alerted}, duplicate webhook-ids {self.duplicates}",
        ]


_BUCKET = "livewatch_poll_start_lateness_seconds_bucket"


async def lateness_buckets(control: httpx.AsyncClient, url: str) -> dict[float, float]:
    """The poll-start lateness histogram's cumulative buckets, summed over the processes."""
    text = (await control.get(url)).text
    out: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith(_BUCKET):
            labels, value = line.rsplit(" ", 1)
            bound = labels.split('le="', 1)[1].split('"', 1)[0]
            key = float("inf") if bound == "+Inf" else float(bound)
            out[key] = out.get(key, 0.0) + float(value)
    return out


def _late(buckets: list[tuple[float, float]]) -> str:
    """Turns, the share started within 1 s, and the bucket holding the 99th percentile."""
    total = buckets[-1][1] if buckets else 0
    if not total:
        return "no turns measured"
    within = next((n for bound, n in buckets if bound >= 1.0), total) / total
    p99 = next(bound for bound, n in buckets if n >= 0.99 * total)
    return (f"{total:.0f} turns, {within:.2%} within 1 s, p99 <= {p99:g} s "
            f"(histogram bucket)")


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank); NaN for none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def _entry_keys(feed: int, post: int) -> list[tuple[str, str]]:
    """The entry ids bench.farm gives one post (rss, atom, live blog)."""
    return [(f"f{feed}", entry) for entry in (
        f"f{feed}-p{post}", f"urn:f{feed}:p{post}", f"http://example.org/live/{feed}#p{post}")]


def _own_cpu() -> float:
    """This process's CPU seconds (the farm, and the sampling of /proc)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _start(processes: int, config: Path, logs: Path) -> subprocess.Popen[bytes]:
    with logs.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "monitor", "run", "--processes", str(processes),
             "--config", str(config), "--log-format", "json", "--log-level", "INFO"],
            stdout=out, stderr=subprocess.STDOUT, cwd=REPO)


def _stop(service: subprocess.Popen[bytes]) -> None:
    service.send_signal(signal.SIGTERM)
    try:
        service.wait(60)
    except subprocess.TimeoutExpired:
        service.kill()
        service.wait()


async def measure(processes: int, options: argparse.Namespace, tmp: Path) -> Result:
    """Run the service with `--processes N` on a fresh farm; return its figures."""
    farm = CountingFarm(options.feeds, options.posts)
    async with serving(farm) as base:
        data = tmp / f"data-{processes}"
        config = tmp / f"livewatch-{processes}.yaml"
        ops = free_port()
        metrics_url = f"http://127.0.0.1:{ops}/metrics"
        config.write_text(config_yaml(base, options.feeds, options.interval, data, ops))
        logs = (options.logs or tmp) / f"processes-{processes}.log"
        logs.parent.mkdir(parents=True, exist_ok=True)
        service = _start(processes, config, logs)
        meter = CpuMeter(service.pid)
        try:
            warm_by = time.monotonic() + options.warmup
            while min(farm.per_feed) < 2:
                if time.monotonic() > warm_by:
                    raise SystemExit(f"--processes {processes}: not warm within "
                                     f"{options.warmup:g} s (see {logs})")
                if service.poll() is not None:
                    raise SystemExit(f"the service exited ({service.returncode}); see {logs}")
                meter.sample()
                await asyncio.sleep(0.5)
            meter.sample()
            cpu_start, redis_start = meter.totals()
            farm_start = _own_cpu()
            started = time.time()
            first_post = len(farm.truth)
            async with httpx.AsyncClient(timeout=10) as control:
                late_start = await lateness_buckets(control, metrics_url)
                tick = 0
                while time.time() - started < options.measure:
                    due = not options.burst or tick % max(round(options.interval), 1) == 0
                    if due:  # steady: `rate` every second; --burst: K at once per interval
                        await control.post(f"{base}/_add",
                                           params={"k": options.burst or options.rate})
                    meter.sample()
                    tick += 1
                    await asyncio.sleep(1.0)
                late_end = await lateness_buckets(control, metrics_url)
            meter.sample()
            ended = time.time()
            cpu_end, redis_end = meter.totals()
            farm_cpu = _own_cpu() - farm_start
            polls = sum(1 for stamp in farm.stamps if started <= stamp < ended)
            truth = [t for t in farm.truth[first_post:] if t["phrase"]]
            for _tick in range(30):  # up to 15 s for the last alerts
                if len(_found(farm, truth)) == len(truth):
                    break
                await asyncio.sleep(0.5)
        finally:
            _stop(service)
    found = _found(farm, truth)
    internal = [a["at"] - datetime.fromisoformat(a["detected_at"]).timestamp()
                for a in found.values() if a.get("detected_at")]
    posted = {(t["feed"], t["post"]): t["at"] for t in truth}
    detection = [alert["at"] - posted[key] for key, alert in found.items()]
    lateness = sorted((bound, n - late_start.get(bound, 0.0)) for bound, n in late_end.items())
    return Result(processes, ended - started, polls, cpu_end - cpu_start,
                  redis_end - redis_start, farm_cpu, internal, detection, lateness, len(truth),
                  len(found), farm.duplicates)


def _found(farm: Farm, truth: list[dict[str, Any]]) -> dict[tuple[int, int], dict[str, Any]]:
    """The alerts of the posts in `truth`, by (feed, post)."""
    by_entry = {(a["feed"], a["entry"]): a for a in farm.alerts.values()}
    out = {}
    for t in truth:
        alert = next((by_entry[key] for key in _entry_keys(t["feed"], t["post"])
                      if key in by_entry), None)
        if alert is not None:
            out[(t["feed"], t["post"])] = alert
    return out


async def run(options: argparse.Namespace) -> None:
    cores = len(os.sched_getaffinity(0))
    modes = [int(m) for m in options.modes.split(",")]
    print(f"{options.feeds} feeds every {options.interval:g} s ({options.posts} posts each), "
          + (f"{options.burst} posts at once every interval" if options.burst else
             f"{options.rate} posts/s added") + f" for {options.measure:g} s; {cores} cores "
          f"(farm, Redis and the service share them)", flush=True)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for processes in modes:
            result = await measure(processes, options, Path(tmp))
            results.append(result)
            for row in result.rows(cores, options.feeds / options.interval):
                print(row, flush=True)
            shutil.rmtree(Path(tmp) / f"data-{processes}", ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--feeds", type=int, default=2000)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--posts", type=int, default=20, help="posts per feed at the start")
    parser.add_argument("--rate", type=int, default=40, help="posts added per second")
    parser.add_argument("--burst", type=int, default=0,
                        help="instead of --rate: this many posts at once, once per interval")
    parser.add_argument("--measure", type=float, default=40.0, help="seconds measured per mode")
    parser.add_argument("--warmup", type=float, default=90.0,
                        help="longest wait for the cold round of baselines")
    parser.add_argument("--modes", default="1,2", help="--processes values to compare")
    parser.add_argument("--logs", type=Path, help="keep the service's JSON logs here")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
