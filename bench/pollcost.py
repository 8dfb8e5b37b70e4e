"""CPU per poll of `livewatch run` against a bare aiohttp conditional GET on the same timing.

    python -m bench.pollcost [--feeds 1000] [--interval 10] [--warm 30] [--window 40]

One run, on the local feed farm: `python -m monitor run` (pollers and worker in one process,
JSON logs at INFO) polls `--feeds` feeds every `--interval`, and beside it a raw replayer
process (`--raw`: aiohttp, an in-memory ETag map, each feed at a random phase, once per
interval, on the same 100 ms grid as livewatch's scheduler, or with `--raw-timing random`
not; the body read, nothing parsed) fetches the same URLs on the same timing. After the
first polls (baselines) pass, two windows are measured: every answer a 304, then 10% of the
feeds changing per interval. For each, it prints both processes' CPU (user+system, /proc)
per fetch the farm answered them, the ratio, and the Redis round trips per livewatch poll
(top-level commands seen by MONITOR on the private redis-server, by command; the worker's
blocking reads are included).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web

from bench.farm import Farm, serving
from bench.scaleout import REPO, Role, config_yaml
from monitor.ops.embedded import EmbeddedRedis
from monitor.poll.scheduler import SLOT

RAW_AGENT = "raw-conditional-get"


class AgentFarm(Farm):
    """The bench farm, counting fetches by User-Agent."""

    def __init__(self, feeds: int) -> None:
        super().__init__(feeds)
        self.by_agent: dict[str, int] = {}

    async def feed(self, request: web.Request) -> web.Response:
        agent = RAW_AGENT if request.headers.get("User-Agent") == RAW_AGENT else "livewatch"
        self.by_agent[agent] = self.by_agent.get(agent, 0) + 1
        return await super().feed(request)


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def raw(base: str, feeds: int, interval: float, grid: bool) -> None:
    """The raw replayer: each feed once per `interval` at a random phase, conditional GET;
    with `grid`, on livewatch's 100 ms grid (monitor.poll.scheduler.SLOT)."""
    etags: dict[int, str] = {}
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    connector = aiohttp.TCPConnector(limit=100)
    async with aiohttp.ClientSession(connector=connector,
                                     headers={"User-Agent": RAW_AGENT}) as session:
        async def one(index: int) -> None:
            headers = {"If-None-Match": etags[index]} if index in etags else {}
            async with session.get(f"{base}/feed/{index}", headers=headers) as response:
                await response.read()
                if response.status == 200 and "ETag" in response.headers:
                    etags[index] = response.headers["ETag"]

        async def feed(index: int) -> None:
            due = time.time() + random.uniform(0, interval)
            while not stop.is_set():
                at = math.ceil(due / SLOT) * SLOT if grid else due
                await asyncio.sleep(max(0.0, at - time.time()))
                with contextlib.suppress(aiohttp.ClientError):
                    await one(index)
                due += interval

        tasks = [asyncio.create_task(feed(i)) for i in range(feeds)]
        await stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _replayer(base: str, feeds: int, interval: float,
              timing: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "bench.pollcost", "--raw", "--base", base,
                             "--feeds", str(feeds), "--interval", str(interval),
                             "--raw-timing", timing], cwd=REPO)


async def run(feeds: int, interval: float, warm: float, window: float, timing: str) -> None:
    farm = AgentFarm(feeds)
    async with serving(farm, backlog=2048) as base:
        with tempfile.TemporaryDirectory() as tmp, \
                EmbeddedRedis(Path(tmp) / "redis", appendonly=False) as redis_server:
            config = Path(tmp) / "livewatch.yaml"
            config.write_text(config_yaml(base, feeds, redis_server.url, interval))
            service = Role("run", config, Path(tmp), 0)
            replayer = _replayer(base, feeds, interval, timing)
            client = aioredis.from_url(redis_server.url, decode_responses=True)
            try:
                await asyncio.sleep(warm)
                for name, changing in (("all 304", 0), ("10% changing", feeds // 10)):
                    await _window(name, farm, service, replayer.pid, client, base,
                                  window, interval, changing)
            finally:
                service.stop(signal.SIGTERM)
                replayer.send_signal(signal.SIGTERM)
                replayer.wait(30)
                await client.aclose()


async def _window(name: str, farm: AgentFarm, service: Role, raw_pid: int,
                  client: aioredis.Redis, base: str, window: float, interval: float,
                  changing: int) -> None:
    calls: dict[str, float] = {}

    async def watch() -> None:
        """Top-level commands by name, a pipeline (commands of one client in one read:
        consecutive, within 0.2 ms) counted as one round trip, shared by its commands."""
        run: list[str] = []
        last: tuple[str, float] = ("", 0.0)
        async with client.monitor() as monitor:
            while True:
                command = await monitor.next_command()
                if command.get("client_type") == "lua":
                    continue
                peer = f"{command.get('client_address')}:{command.get('client_port')}"
                at = float(command["time"])
                if run and (peer != last[0] or at - last[1] > 0.0002):
                    for name in run:
                        calls[name] = calls.get(name, 0.0) + 1 / len(run)
                    run = []
                run.append(str(command["command"]).split(" ", 1)[0].lower())
                last = (peer, at)

    async def change() -> None:  # `changing` feeds gain a post per interval, spread over it
        async with aiohttp.ClientSession() as session:
            while True:
                for _ in range(10):
                    await session.post(f"{base}/_add", params={"k": str(changing // 10)})
                    await asyncio.sleep(interval / 10)

    changer = asyncio.create_task(change()) if changing else None
    if changer:
        await asyncio.sleep(interval)  # let the change rate settle
    service.sample_cpu()
    ours, theirs = service.cpu, _cpu(raw_pid)
    fetched = dict(farm.by_agent)
    watcher = asyncio.create_task(watch())
    await asyncio.sleep(window)
    watcher.cancel()
    service.sample_cpu()
    ours, theirs = service.cpu - ours, _cpu(raw_pid) - theirs
    polls = farm.by_agent.get("livewatch", 0) - fetched.get("livewatch", 0)
    raws = farm.by_agent.get(RAW_AGENT, 0) - fetched.get(RAW_AGENT, 0)
    if changer:
        changer.cancel()
    per_poll, per_raw = ours / max(polls, 1) * 1000, theirs / max(raws, 1) * 1000
    print(f"{name:>13}: livewatch {polls} polls, {per_poll:.3f} ms CPU per poll; raw "
          f"{raws} GETs, {per_raw:.3f} ms; ratio {per_poll / max(per_raw, 1e-9):.2f}x; "
          f"Redis round trips per poll {sum(calls.values()) / max(polls, 1):.2f} (" +
          ", ".join(f"{n} {c / max(polls, 1):.2f}" for n, c in
                    sorted(calls.items(), key=lambda kv: -kv[1])) + ")", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--warm", type=float, default=30.0)
    parser.add_argument("--window", type=float, default=40.0)
    parser.add_argument("--raw-timing", choices=("grid", "random"), default="grid",
                        help="the replayer on livewatch's 100 ms grid (default) or at random "
                             "phases")
    parser.add_argument("--raw", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw:
        asyncio.run(raw(args.base, args.feeds, args.interval, args.raw_timing == "grid"))
    else:
        asyncio.run(run(args.feeds, args.interval, args.warm, args.window, args.raw_timing))


if __name__ == "__main__":
    main()
