"""Where a quiet poll's CPU goes: each part alone, in CPU microseconds per call.

    python -m bench.pollparts [--calls 3000]

Measured in this process (user+system time, so the kernel's share of each socket write and
read counts), one part at a time, against a private redis-server and the feed farm in its own
process: a bare aiohttp conditional GET answered 304; livewatch's `Fetcher.fetch` of the same;
the quiet poll's plan script (goodpoll.lua + quiet.lua, the arguments of a 304) through
redis-py with hiredis, coredis and valkey-glide (when installed); one `poll` log line
rendered as the service renders it (JSON); the poll metrics; an APScheduler run of a no-op
job.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis
import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bench.scaleout import REPO
from monitor.core import keys
from monitor.fetch.client import Fetcher
from monitor.ops import metrics
from monitor.ops.embedded import EmbeddedRedis, free_port
from monitor.ops.logs import configure_logging
from monitor.poll.decide import Plan
from monitor.poll.lease import Keep, Lease
from monitor.poll.poller import PollOutcome
from monitor.poll.state import _QUIET_LUA, FeedState


async def per_call(name: str, calls: int, action: Callable[[], Awaitable[Any]]) -> float:
    for _ in range(min(100, calls)):  # warm: connections, scripts loaded
        await action()
    started = time.process_time()
    for _ in range(calls):
        await action()
    cost = (time.process_time() - started) / calls * 1e6
    print(f"{name:<48} {cost:8.1f} us", flush=True)
    return cost


def _farm(port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "bench.farm", "--feeds", "10", "--port",
                             str(port)], cwd=REPO, stdout=subprocess.DEVNULL)


async def run(calls: int) -> None:
    port = free_port()
    farm = _farm(port)
    url = f"http://127.0.0.1:{port}/feed/0"
    try:
        with tempfile.TemporaryDirectory() as tmp, \
                EmbeddedRedis(Path(tmp) / "redis", appendonly=False) as server:
            async with aiohttp.ClientSession() as session:
                etag = await _etag(session, url)

                async def raw() -> None:
                    async with session.get(url, headers={"If-None-Match": etag}) as response:
                        await response.read()

                await per_call("bare aiohttp conditional GET (304)", calls, raw)
            async with Fetcher(user_agent="bench", max_concurrency=10) as fetcher:
                await per_call("Fetcher.fetch (304)", calls,
                               lambda: fetcher.fetch(url, timeout=10, max_body=1 << 20,
                                                     etag=etag))
            await _scripts(server.url, calls)
            await _logs_and_metrics(calls)
            await _scheduler(calls)
    finally:
        farm.terminate()
        farm.wait()


async def _etag(session: aiohttp.ClientSession, url: str) -> str:
    for _ in range(100):
        try:
            async with session.get(url) as response:
                await response.read()
                return response.headers["ETag"]
        except aiohttp.ClientConnectionError:
            await asyncio.sleep(0.05)
    raise RuntimeError("the farm did not start")


def _quiet_args(lease: Lease) -> tuple[list[str], list[Any]]:
    """The keys and arguments `FeedState.apply` sends for a 304 with the lease kept."""
    feed = "f0"
    script_keys = [keys.meta(feed), keys.fence(feed), keys.health(feed), keys.lease(feed),
                   keys.lease_wanted(feed)]
    args: list[Any] = ["0", "", "", str(lease.fence), time.time(), "not_modified", lease.value,
                       40000, 20000, time.time() + 10]
    return script_keys, [str(a) for a in args]


async def _scripts(url: str, calls: int) -> None:
    client = aioredis.from_url(url, decode_responses=True)
    await client.set(keys.fence("f0"), 7)
    lease = Lease("f0", "bench", 7)
    plan = Plan("not_modified")
    keep = Keep(40.0, 20.0, time.time() + 10)
    alone = FeedState(client, max_entries=500, stream_maxlen=10000, quiet_batch=0)
    await per_call("FeedState.apply, quiet, alone (redis-py + hiredis)", calls,
                   lambda: alone.apply("f0", "u", plan, lease=lease, keep=keep))
    batched = FeedState(client, max_entries=500, stream_maxlen=10000, quiet_batch=0.005)

    async def ten() -> None:  # ten polls' quiet plans meeting in one batch
        await asyncio.gather(*(batched.apply("f0", "u", plan, lease=lease, keep=keep)
                               for _ in range(10)))

    cost = await per_call("  ten quiet plans batched in one round trip", calls // 10, ten)
    print(f"{'  ... per quiet plan':<48} {cost / 10:8.1f} us", flush=True)
    script_keys, args = _quiet_args(lease)
    script = client.register_script(_QUIET_LUA)
    await per_call("  the script alone: redis-py + hiredis", calls,
                   lambda: script(keys=script_keys, args=args))
    await client.aclose()
    try:
        import coredis
    except ImportError:
        print("  coredis: not installed (pip install coredis)")
    else:
        host, port = url.removeprefix("redis://").split("/")[0].split(":")
        core = coredis.Redis(host=host, port=int(port), decode_responses=True)
        async with core:
            core_script = core.register_script(_QUIET_LUA)
            await per_call("  the script alone: coredis", calls,
                           lambda: core_script(keys=script_keys, args=args))
    try:
        from glide import GlideClient, GlideClientConfiguration, NodeAddress, Script
    except ImportError:
        print("  valkey-glide: not installed (pip install valkey-glide)")
    else:
        host, port = url.removeprefix("redis://").split("/")[0].split(":")
        glide = await GlideClient.create(GlideClientConfiguration([NodeAddress(host,
                                                                               int(port))]))
        glide_script = Script(_QUIET_LUA)
        await per_call("  the script alone: valkey-glide", calls,
                       lambda: glide.invoke_script(glide_script, keys=script_keys,
                                                   args=args))
        await glide.close()


async def _logs_and_metrics(calls: int) -> None:
    configure_logging("json", "INFO", stream=io.StringIO())
    log = structlog.get_logger("livewatch.poll")
    outcome = PollOutcome("f0", "not_modified")

    async def line() -> None:
        log.info("poll", kind=None, entries=0, new=0, updated=0, feed="f0",
                 status="not_modified", elapsed_ms=1.2)

    async def observe() -> None:
        metrics.observe_poll(outcome)

    await per_call("one poll log line (JSON, INFO)", calls, line)
    await per_call("poll metrics (metrics.observe_poll)", calls, observe)


async def _scheduler(calls: int) -> None:
    """CPU per run of APScheduler jobs: `calls` no-op jobs due every second, for 3 s."""
    scheduler = AsyncIOScheduler(timezone=UTC)
    runs = 0

    async def job() -> None:
        nonlocal runs
        runs += 1

    for i in range(calls):
        scheduler.add_job(job, IntervalTrigger(seconds=1, jitter=0.5), id=str(i),
                          max_instances=1, coalesce=True, misfire_grace_time=1,
                          next_run_time=datetime.now(UTC))
    started, cpu = time.monotonic(), time.process_time()
    scheduler.start()
    await asyncio.sleep(3)
    scheduler.shutdown(wait=False)
    print(f"{'APScheduler: one run of a no-op job':<48} "
          f"{(time.process_time() - cpu) / max(runs, 1) * 1e6:8.1f} us "
          f"({runs} runs in {time.monotonic() - started:.1f} s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3000)
    asyncio.run(run(parser.parse_args().calls))


if __name__ == "__main__":
    main()
