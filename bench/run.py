"""Measure livewatch's full pipeline against the local feed farm, next to a raw baseline.

    python -m bench.run --feeds 1000            # cold, warm and "10% changed" cycles

A cycle polls every feed once (fetch, parse, diff, Redis commit, stream) and then drains the
stream through a worker (match, deliver to the farm's webhook receiver). The raw baseline
fetches and parses the same URLs with httpx + feedparser/the same parsers and nothing else.
CPU is this process's user+system time (parsing threads included); the farm and redis-server
run in their own processes.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis

from monitor.config_loader import parse_config
from monitor.embedded import EmbeddedRedis, free_port
from monitor.fetch import Fetcher
from monitor.logs import configure_logging
from monitor.poller import Poller
from monitor.service import make_state
from monitor.settings import Config
from monitor.sources import parse_document
from workers.channels import build_channel
from workers.consumer import Consumer


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


async def measure(name: str, action: Callable[[], Awaitable[dict[str, int]]],
                  polls: int) -> Figures:
    wall, cpu = time.perf_counter(), _cpu()
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
    """livewatch's poller and worker, in this process, against one Redis."""

    def __init__(self, config: Config, client: aioredis.Redis, fetcher: Fetcher,
                 http: httpx.AsyncClient) -> None:
        self.config = config
        self.poller = Poller(config, make_state(config, client), fetcher)
        channels = {c.name: build_channel(c, http) for c in config.channels}
        self.consumer = Consumer(config, client, channels, name="bench")
        self.gate = asyncio.Semaphore(config.defaults.max_concurrency)

    async def cycle(self) -> dict[str, int]:
        async def one(feed: Any) -> str:
            async with self.gate:
                return (await self.poller.poll(feed)).status

        statuses = await asyncio.gather(*(one(feed) for feed in self.config.feeds))
        await self.consumer.run_until_empty()
        counts: dict[str, int] = {}
        for status in statuses:
            counts[status] = counts.get(status, 0) + 1
        return counts


class Baseline:
    """Fetch and parse the same URLs with nothing else: no state, no matching, no delivery.
    Conditional GET is done with an in-memory ETag map, as a minimal poller would."""

    def __init__(self, config: Config, http: httpx.AsyncClient) -> None:
        self.urls = [feed.url for feed in config.feeds]
        self.http = http
        self.etags: dict[str, str] = {}
        self.gate = asyncio.Semaphore(config.defaults.max_concurrency)

    async def cycle(self) -> dict[str, int]:
        async def one(url: str) -> str:
            async with self.gate:
                headers = {"If-None-Match": self.etags[url]} if url in self.etags else {}
                response = await self.http.get(url, headers=headers)
            if response.status_code == 304:
                return "not_modified"
            self.etags[url] = response.headers.get("ETag", "")
            await asyncio.to_thread(parse_document, "auto", response.content, url,
                                    response.headers.get("Content-Type"))
            return "parsed"

        counts: dict[str, int] = {}
        for status in await asyncio.gather(*(one(url) for url in self.urls)):
            counts[status] = counts.get(status, 0) + 1
        return counts


def run(feeds: int, changed: float) -> None:
    """Start the farm (a subprocess) and a private redis-server, then measure."""
    port = free_port()
    farm = subprocess.Popen([sys.executable, "-m", "bench.farm", "--feeds", str(feeds),
                             "--port", str(port)], cwd=Path(__file__).resolve().parent.parent)
    try:
        with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(tmp, appendonly=False) as rs:
            asyncio.run(_run(f"http://127.0.0.1:{port}", feeds, changed, rs))
    finally:
        farm.terminate()
        farm.wait()


async def _run(base: str, feeds: int, changed: float, rs: EmbeddedRedis) -> None:
    async with httpx.AsyncClient(timeout=10) as control:
        deadline = time.monotonic() + 60
        while True:
            try:
                await control.get(f"{base}/_stats")
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
        config = make_config(base, feeds, rs.url)
        client: aioredis.Redis = aioredis.from_url(rs.url, decode_responses=True)
        limits = httpx.Limits(max_connections=config.defaults.max_concurrency)
        async with Fetcher(user_agent="livewatch-bench", max_concurrency=100) as fetcher, \
                httpx.AsyncClient(limits=limits) as http:
            pipeline, baseline = Pipeline(config, client, fetcher, http), Baseline(config, http)
            k = max(1, int(feeds * changed))
            results = [
                await measure("livewatch cold (baseline)", pipeline.cycle, feeds),
                await measure("livewatch warm (all 304)", pipeline.cycle, feeds)]
            await control.post(f"{base}/_add", params={"k": k})
            results.append(await measure(f"livewatch {changed:.0%} changed", pipeline.cycle,
                                         feeds))
            raw = [await measure("raw cold", baseline.cycle, feeds),
                   await measure("raw warm", baseline.cycle, feeds)]
            await control.post(f"{base}/_add", params={"k": k})
            raw.append(await measure(f"raw {changed:.0%} changed", baseline.cycle, feeds))
            stats = (await control.get(f"{base}/_stats")).json()
        memory = await client.info("memory")
        await client.aclose()
    truth_first = [t for t in stats["truth"][:k] if t["phrase"]]
    print(f"feeds: {feeds}, entries per feed: 50, changed per cycle: {k}")
    for figures in results + raw:
        print(figures.row())
    for ours, theirs in zip(results, raw, strict=True):
        print(f"ratio {ours.name.removeprefix('livewatch '):<20} "
              f"wall {ours.wall / theirs.wall:5.2f}x   cpu {ours.cpu / theirs.cpu:5.2f}x")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB; "
          f"redis used_memory {memory['used_memory'] / 1024 / 1024:.1f} MB "
          f"({memory['used_memory'] / (feeds * 50):.0f} B per feed-entry)")
    print(f"alerts received {len(stats['alerts'])} (expected {len(truth_first)}), "
          f"duplicates {stats['duplicates']}")


def main() -> None:
    configure_logging("console", "WARNING")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--changed", type=float, default=0.1)
    args = parser.parse_args()
    run(args.feeds, args.changed)


if __name__ == "__main__":
    main()
