"""Measure livewatch's full pipeline against the local feed farm, next to a raw baseline.

    python -m bench.run --feeds 1000                     # cold, warm and "10% changed" cycles
    python -m bench.run --feeds 10000 --sustain 120 --no-raw   # + a sustained hold

A cycle polls every feed once (fetch, parse, diff, Redis commit, stream) and then drains the
stream through a worker (match, deliver to the farm's webhook receiver). The raw baseline
fetches the same URLs with aiohttp (conditional GET from an in-memory ETag map) and parses them
with the same parsers (`monitor.sources.parse_document`), nothing else. CPU is this process's
user+system time (parsing threads included); the farm and redis-server run in their own
processes. Detection latency is "post added to the farm → webhook received" for the posts
that carry the watched phrase; internal latency is "event committed → webhook received".

`--sustain S` then polls every feed once per `--interval` (spread evenly over it in a fixed
shuffled order, as the scheduler's jitter does; `--in-order` polls them by index) for S
seconds while the farm gains posts at `--rate` of polls, with a worker consuming alongside,
and prints CPU share, polls/s, lateness and detection latency.
Log lines are rendered as the service renders them (JSON at INFO) and discarded.
`--profile FILE` writes a cProfile of the livewatch cycles and the hold (event-loop thread) to
FILE.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import redis.asyncio as aioredis

from monitor.config.loader import parse_config
from monitor.config.models import Config, FeedSettings
from monitor.fetch.client import Fetcher
from monitor.ops.embedded import EmbeddedRedis, free_port
from monitor.ops.logs import configure_logging
from monitor.ops.runtime import connect_redis
from monitor.poll.poller import Poller
from monitor.poll.role import make_state
from monitor.sources import parse_document
from monitor.sources.sandbox import parsing_processes, use_processes
from tests.service import run_until_empty
from workers.channels import ChannelSet
from workers.consume.consumer import Consumer


@dataclass
class Figures:
    """One measured cycle."""

    name: str
    wall: float
    cpu: float
    polls: int
    statuses: dict[str, int]

    def row(self) -> str:
        return (f"{self.name:<28} wall {self.wall:7.2f} s   cpu {self.cpu:7.2f} s   "
                f"{self.polls / self.wall:8.0f} polls/s   {self.statuses}")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _cpu_all() -> float:
    """This process's CPU and its parsing processes' (alive: not in RUSAGE_CHILDREN yet)."""
    return _cpu() + sum(_process_cpu(pid) for pid in parsing_processes())


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (nearest rank); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


class Profiler:
    """cProfile of the measured livewatch cycles, when asked for."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.profile = cProfile.Profile() if path else None

    @contextlib.contextmanager
    def on(self, enabled: bool = True) -> Any:
        if self.profile is None or not enabled:
            yield
            return
        self.profile.enable()
        try:
            yield
        finally:
            self.profile.disable()

    def save(self) -> None:
        if self.profile is not None and self.path:
            self.profile.dump_stats(self.path)
            print(f"profile written to {self.path} (python -m pstats {self.path})")


async def measure(name: str, action: Callable[[], Awaitable[dict[str, int]]], polls: int,
                  profiler: Profiler | None = None) -> Figures:
    wall, cpu = time.perf_counter(), _cpu()
    with profiler.on() if profiler else contextlib.nullcontext():
        statuses = await action()
    return Figures(name, time.perf_counter() - wall, _cpu() - cpu, polls, statuses)


def make_config(base: str, feeds: int, redis_url: str) -> Config:
    lines = [f'redis: {{url: "{redis_url}"}}',
             "defaults: {interval: 30s, timeout: 20s, max_concurrency: 100}",
             "state: {stream_maxlen: 1000000}", "feeds:"]
    lines += [f'  - {{name: f{i}, url: "{base}/feed/{i}"}}' for i in range(feeds)]
    lines += ["rules:", '  - {name: coalition, any: ["coalition of the willing"], '
              "channels: [farm]}", "channels:",
              f'  - {{name: farm, type: webhook, url: "{base}/hook"}}']
    return parse_config("\n".join(lines), "<bench>")


class Pipeline:
    """livewatch's poller and worker, in this process, against one Redis (through the
    service's own client: a blocking pool of `max_concurrency` + 100 connections)."""

    def __init__(self, config: Config, client: aioredis.Redis, fetcher: Fetcher,
                 channels: ChannelSet) -> None:
        self.config = config
        self.poller = Poller(config, make_state(config, client), fetcher)
        self.consumer = Consumer(config, client, channels.update(config.channels), name="bench")
        self.gate = asyncio.Semaphore(config.defaults.max_concurrency)

    async def poll(self, feed: FeedSettings) -> str:
        async with self.gate:
            return (await self.poller.poll(feed)).status

    async def cycle(self) -> dict[str, int]:
        statuses = await asyncio.gather(*(self.poll(feed) for feed in self.config.feeds))
        await run_until_empty(self.consumer)
        return _count(statuses)


class Baseline:
    """Fetch and parse the same URLs with nothing else: no state, no matching, no delivery.
    aiohttp (the cheapest client measured), conditional GET with an in-memory ETag map, as a
    minimal poller would, and the same parsers in a thread."""

    def __init__(self, config: Config, session: aiohttp.ClientSession) -> None:
        self.urls = [feed.url for feed in config.feeds]
        self.session = session
        self.etags: dict[str, str] = {}
        self.gate = asyncio.Semaphore(config.defaults.max_concurrency)

    async def cycle(self) -> dict[str, int]:
        async def one(url: str) -> str:
            async with self.gate:
                headers = {"If-None-Match": self.etags[url]} if url in self.etags else {}
                async with self.session.get(url, headers=headers) as response:
                    body = await response.read()
                    if response.status == 304:
                        return "not_modified"
                    self.etags[url] = response.headers.get("ETag", "")
                    content_type = response.headers.get("Content-Type")
            await asyncio.to_thread(parse_document, "auto", body, url, content_type)
            return "parsed"

        return _count(await asyncio.gather(*(one(url) for url in self.urls)))


def _count(statuses: Sequence[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for status in statuses:
        counts[status] = counts.get(status, 0) + 1
    return counts


@dataclass
class Options:
    feeds: int
    changed: float
    raw: bool
    sustain: float
    interval: float
    rate: float
    profile: str | None
    in_order: bool = False
    farm_pid: int = 0
    burst: int = 0
    parse_processes: int = 0


def _process_cpu(pid: int) -> float:
    """User + system CPU seconds of another process (Linux /proc); 0 if unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(options: Options) -> None:
    """Start the farm (a subprocess) and a private redis-server, then measure."""
    port = free_port()
    farm = subprocess.Popen([sys.executable, "-m", "bench.farm", "--feeds",
                             str(options.feeds), "--port", str(port)],
                            cwd=Path(__file__).resolve().parent.parent)
    try:
        with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(tmp, appendonly=False) as rs:
            options.farm_pid = farm.pid
            asyncio.run(_run(f"http://127.0.0.1:{port}", options, rs))
    finally:
        farm.terminate()
        farm.wait()


async def _wait_for_farm(control: httpx.AsyncClient, base: str) -> None:
    deadline = time.monotonic() + 120
    while True:
        try:
            await control.get(f"{base}/_stats")
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def _run(base: str, options: Options, rs: EmbeddedRedis) -> None:
    feeds = options.feeds
    use_processes(options.parse_processes)
    profiler = Profiler(options.profile)
    async with httpx.AsyncClient(timeout=60) as control:
        await _wait_for_farm(control, base)
        config = make_config(base, feeds, rs.url)
        limits = httpx.Limits(max_connections=config.defaults.max_concurrency)
        async with connect_redis(config) as client, \
                Fetcher(user_agent="livewatch-bench", max_concurrency=100) as fetcher, \
                httpx.AsyncClient(limits=limits) as http, ChannelSet(http) as channels, \
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:
            pipeline = Pipeline(config, client, fetcher, channels)
            baseline = Baseline(config, session)
            k = max(1, int(feeds * options.changed))
            results = [
                await measure("livewatch cold (baseline)", pipeline.cycle, feeds, profiler),
                await measure("livewatch warm (all 304)", pipeline.cycle, feeds, profiler)]
            added = (await control.post(f"{base}/_add", params={"k": k})).json()
            results.append(await measure(f"livewatch {options.changed:.0%} changed",
                                         pipeline.cycle, feeds, profiler))
            stats = (await control.get(f"{base}/_stats")).json()
            cycle_latency = _latencies(added, stats)
            memory = await client.info("memory")
            raw: list[Figures] = []
            if options.raw:
                raw = [await measure("raw cold", baseline.cycle, feeds),
                       await measure("raw warm", baseline.cycle, feeds)]
                await control.post(f"{base}/_add", params={"k": k})
                raw.append(await measure(f"raw {options.changed:.0%} changed", baseline.cycle,
                                         feeds))
            print(f"feeds: {feeds}, entries per feed: 50, changed per cycle: {k}")
            for figures in results + raw:
                print(figures.row())
            for ours, theirs in zip(results, raw, strict=False):
                print(f"ratio {ours.name.removeprefix('livewatch '):<20} "
                      f"wall {ours.wall / theirs.wall:5.2f}x   cpu {ours.cpu / theirs.cpu:5.2f}x")
            print(f"peak RSS {_peak_rss_mb():.0f} MB; redis used_memory "
                  f"{memory['used_memory'] / 1024 / 1024:.1f} MB "
                  f"({memory['used_memory'] / (feeds * 50):.0f} B per feed-entry)")
            _print_latency("changed cycle", cycle_latency)
            if options.sustain:
                with profiler.on():
                    await sustain(pipeline, control, base, options)
    profiler.save()


def _latencies(added: list[dict[str, Any]], stats: dict[str, Any]
               ) -> tuple[list[float], list[float], int]:
    """(post added → webhook, committed → webhook, missed) for the added posts with the
    phrase; duplicates are counted by the farm."""
    by_entry = {(a["feed"], a["entry"]): a for a in stats["alerts"]}
    detection, internal, missed = [], [], 0
    for truth in added:
        if not truth["phrase"]:
            continue
        feed, post = truth["feed"], truth["post"]
        keys = [(f"f{feed}", entry) for entry in (  # rss, atom, live-blog ids (bench.farm)
            f"f{feed}-p{post}", f"urn:f{feed}:p{post}", f"http://example.org/live/{feed}#p{post}")]
        alert = next((by_entry[key] for key in keys if key in by_entry), None)
        if alert is None:
            missed += 1
            continue
        detection.append(alert["at"] - truth["at"])
        if alert.get("detected_at"):
            detected = datetime.fromisoformat(alert["detected_at"]).timestamp()
            internal.append(alert["at"] - detected)
    return detection, internal, missed


def _print_latency(what: str, latency: tuple[list[float], list[float], int]) -> None:
    detection, internal, missed = latency
    print(f"{what}: {len(detection)} alerts, {missed} missed; detection latency (post added → "
          f"webhook) p50 {percentile(detection, 50):.2f} s p99 {percentile(detection, 99):.2f} "
          f"s; internal (committed → webhook) p50 {percentile(internal, 50) * 1000:.0f} ms "
          f"p99 {percentile(internal, 99) * 1000:.0f} ms")


async def sustain(pipeline: Pipeline, control: httpx.AsyncClient, base: str,
                  options: Options) -> None:
    """Poll every feed once per interval, spread evenly, for `options.sustain` seconds."""
    feeds, interval = pipeline.config.feeds, options.interval
    # The farm adds posts to consecutive feeds (f17, f18, ...); polling in that order would
    # poll every second's changed feeds back to back, a burst the scheduler's per-feed jitter
    # does not make. A fixed shuffle spreads them as the scheduler does (`--in-order` keeps
    # the burst, to measure it).
    order = list(feeds)
    if not options.in_order:
        random.Random(6).shuffle(order)
    stop = asyncio.Event()
    worker = asyncio.create_task(pipeline.consumer.run(stop, block=0.2))
    lateness: list[float] = []
    statuses: list[str] = []
    added: list[dict[str, Any]] = []
    in_flight: set[asyncio.Task[None]] = set()

    async def poll(feed: FeedSettings, due: float) -> None:
        async with pipeline.gate:
            lateness.append(time.monotonic() - due)
            statuses.append((await pipeline.poller.poll(feed)).status)

    async def changes(until: float) -> None:
        if options.burst:  # K consecutive feeds gain a post in the same second, each interval
            while time.monotonic() < until:
                await asyncio.sleep(interval)
                added.extend((await control.post(f"{base}/_add",
                                                 params={"k": options.burst})).json())
            return
        per_second = len(feeds) * options.rate / interval
        owed = 0.0
        while time.monotonic() < until:
            await asyncio.sleep(1.0)
            owed += per_second
            if owed >= 1:
                added.extend((await control.post(f"{base}/_add",
                                                 params={"k": int(owed)})).json())
                owed -= int(owed)

    lags: list[float] = []

    async def ticker() -> None:  # how late the event loop runs a 10 ms timer
        while not stop.is_set():
            then = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - then - 0.01)

    start = time.monotonic()
    until = start + options.sustain
    lag_task = asyncio.create_task(ticker())
    adder = asyncio.create_task(changes(until - interval))  # the last posts get a poll too
    wall, cpu, farm_cpu = time.perf_counter(), _cpu_all(), _process_cpu(options.farm_pid)
    rounds = 0
    while time.monotonic() < until:
        base_time = start + rounds * interval
        for i, feed in enumerate(order):
            due = base_time + interval * i / len(order)
            if due >= until:
                break
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(poll(feed, due))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        rounds += 1
    await adder
    if in_flight:
        await asyncio.wait(in_flight)
    await asyncio.sleep(3)  # the worker delivers the last events
    wall, cpu = time.perf_counter() - wall, _cpu_all() - cpu
    farm_cpu = _process_cpu(options.farm_pid) - farm_cpu
    stop.set()
    await worker
    await lag_task
    stats = (await control.get(f"{base}/_stats")).json()
    print(f"sustained {options.sustain:.0f} s, {len(feeds)} feeds every {interval:.0f} s, "
          f"{len(added)} posts added: {len(statuses)} polls ({len(statuses) / wall:.0f}/s), "
          f"CPU {cpu:.1f} s = {cpu / wall:.0%} of one core, peak RSS {_peak_rss_mb():.0f} MB, "
          f"{_count(statuses)}; the farm used {farm_cpu / wall:.0%} of one core")
    print(f"  lateness (poll started − due) p50 {percentile(lateness, 50):.2f} s p99 "
          f"{percentile(lateness, 99):.2f} s max {max(lateness, default=0):.2f} s; "
          f"event-loop lag p50 {percentile(lags, 50) * 1000:.0f} ms p99 "
          f"{percentile(lags, 99) * 1000:.0f} ms max {max(lags, default=0) * 1000:.0f} ms "
          f"(stalls over 50 ms: {sum(lag for lag in lags if lag > 0.05):.1f} s in all); "
          f"duplicates {stats['duplicates']}")
    _print_latency("  sustained", _latencies(added, stats))


def main() -> None:
    # As a service logs (JSON lines at INFO: one per poll and per delivery), into /dev/null.
    configure_logging("json", "INFO", stream=open(os.devnull, "w"))  # noqa: SIM115
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--changed", type=float, default=0.1)
    parser.add_argument("--no-raw", dest="raw", action="store_false",
                        help="skip the raw baseline")
    parser.add_argument("--sustain", type=float, default=0.0, help="seconds to hold")
    parser.add_argument("--interval", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=0.05,
                        help="share of polls that find a new post (sustained)")
    parser.add_argument("--profile", default=None, help="cProfile output file")
    parser.add_argument("--burst", type=int, default=0,
                        help="hold: instead of --rate, K consecutive feeds gain a post at once "
                             "every interval (with --in-order they are polled back to back)")
    parser.add_argument("--parse-processes", type=int, default=0,
                        help="parse in N processes, as the service does (0: threads)")
    parser.add_argument("--in-order", action="store_true",
                        help="hold: poll feeds in index order, so each second's changed feeds "
                             "are polled back to back (a burst)")
    args = parser.parse_args()
    run(Options(args.feeds, args.changed, args.raw, args.sustain, args.interval, args.rate,
                args.profile, args.in_order, burst=args.burst,
                parse_processes=args.parse_processes))


if __name__ == "__main__":
    main()
