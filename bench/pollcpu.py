"""CPU per poll of a real `livewatch poller` process in steady state (every poll a 304).

    python -m bench.pollcpu [--feeds 2000] [--warm 45] [--window 60]

Starts the feed farm and a private redis-server, runs `python -m monitor poller` (scheduler,
leases, JSON logs at INFO) on `--feeds` feeds every 30 s, lets the first polls (baselines)
pass for `--warm` seconds, then prints the process's CPU over `--window` seconds divided by
the polls the farm answered meanwhile. Unlike `bench.run`, this includes the scheduler, the per-feed
lease and polls spread over the interval as in service.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import tempfile
from pathlib import Path

from bench.farm import Farm, serving
from bench.scaleout import Role, config_yaml
from monitor.ops.embedded import EmbeddedRedis


async def run(feeds: int, warm: float, window: float) -> None:
    farm = Farm(feeds)
    async with serving(farm) as base:
        with tempfile.TemporaryDirectory() as tmp, \
                EmbeddedRedis(Path(tmp) / "redis", appendonly=False) as redis_server:
            config = Path(tmp) / "livewatch.yaml"
            config.write_text(config_yaml(base, feeds, redis_server.url, 30.0))
            poller = Role("poller", config, Path(tmp), 0)
            try:
                await asyncio.sleep(warm)
                poller.sample_cpu()
                cpu, polls = poller.cpu, farm.fetches
                await asyncio.sleep(window)
                poller.sample_cpu()
                cpu, polls = poller.cpu - cpu, farm.fetches - polls
            finally:
                poller.stop(signal.SIGTERM)
    print(f"{feeds} feeds every 30 s: {polls} polls in {window:g} s, {cpu:.2f} s CPU, "
          f"{cpu / max(polls, 1) * 1000:.2f} ms per poll")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=2000)
    parser.add_argument("--warm", type=float, default=45.0)
    parser.add_argument("--window", type=float, default=60.0)
    args = parser.parse_args()
    asyncio.run(run(args.feeds, args.warm, args.window))


if __name__ == "__main__":
    main()
