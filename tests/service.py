"""Run `livewatch` as a real subprocess in tests, and wait on Redis conditions."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import redis.asyncio as aioredis

from monitor.config.models import Config
from monitor.core import keys
from monitor.core.models import Event, event_from_stream
from monitor.fetch.client import Fetcher
from monitor.poll.decide import Plan
from monitor.poll.diff import Change
from monitor.poll.poller import Poller
from monitor.poll.role import make_state
from monitor.poll.state import Applied, FeedState
from workers.consume.consumer import Consumer

REPO = Path(__file__).resolve().parent.parent
#: Partitions of the test cluster's layout (`cluster_client`; fewer than the default 16: quicker
#: reads, and still several per master).
CLUSTER_PARTITIONS = 6


def cluster_redis_yaml(url: str) -> str:
    """The `redis:` setting of a service on the test cluster."""
    return f'redis: {{url: "{url}", cluster: true, partitions: {CLUSTER_PARTITIONS}}}'


def livewatch(*args: str, timeout: float = 60,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m monitor ARGS` to completion from the repository root."""
    return subprocess.run([sys.executable, "-m", "monitor", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO, env=env, check=False)


class Service:
    """`python -m monitor <args>` with logs captured to a file."""

    def __init__(self, args: list[str], log_path: Path,
                 env: dict[str, str] | None = None) -> None:
        self.args = args
        self.log_path = log_path
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        env = {**(os.environ if self.env is None else self.env), "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen([sys.executable, "-m", "monitor", *self.args],
                                        stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"service ignored SIGTERM; log:\n{self.logs()}") from None

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


async def wait_until(predicate: Callable[[], Awaitable[bool]], timeout: float = 30.0,
                     what: str = "condition", service: Service | None = None) -> None:
    """Poll `predicate` until true or fail after `timeout` seconds."""
    import asyncio

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.05)
    tail = service.logs()[-4000:] if service else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{tail}")


async def stream_idle(client: aioredis.Redis) -> bool:
    """Every event appended so far (to any partition) was delivered to the group and
    acknowledged."""
    for part in keys.partitions():
        if not await client.exists(part.events):
            continue
        info = await client.xinfo_stream(part.events)
        groups = await client.xinfo_groups(part.events)
        if not groups:
            if info["length"] != 0:
                return False
            continue
        group = groups[0]
        if group["pending"] != 0 or group["last-delivered-id"] != info["last-generated-id"]:
            return False
    return True


async def baselined(client: aioredis.Redis, feed: str) -> bool:
    return await client.hget(keys.meta(feed), "baselined") == "1"


def poller_for(config: Config, client: aioredis.Redis, fetcher: Fetcher) -> Poller:
    """A Poller over real Redis state and a real Fetcher."""
    return Poller(config, make_state(config, client), fetcher)


async def events(client: aioredis.Redis) -> list[Event]:
    """Every event on the entries streams (of every partition), oldest first."""
    found = [(message_id, fields) for part in keys.partitions()
             for message_id, fields in await client.xrange(part.events)]
    found.sort(key=lambda pair: tuple(int(n) for n in pair[0].split("-")))
    return [event_from_stream(f) for _, f in found]


async def commit(state: FeedState, feed: str, feed_url: str, changes: Sequence[Change], *,
                 baseline: bool, etag: str | None = None, last_modified: str | None = None,
                 body_hash: str = "x", fence: int | None = None) -> Applied:
    """Record a diff as a parsed poll's plan would (`FeedState.apply`)."""
    plan = Plan("baseline" if baseline else "changed", validators="replace",
                changes=tuple(changes), baseline=baseline)
    return await state.apply(feed, feed_url, plan, etag=etag, last_modified=last_modified,
                             body_hash=body_hash, fence=fence)


async def record_success(state: FeedState, feed: str, status: str = "ok",
                         kind: str | None = None) -> Applied:
    """Record a good poll: `ok` as a parsed page with nothing new, else a quiet `status`."""
    if status == "ok":
        snapshot = await state.load(feed, fingerprints=False)
        plan = Plan("unchanged", validators="replace", baseline=not snapshot.baselined,
                    kind=kind)
    else:
        plan = Plan("not_modified" if status == "not_modified" else "unchanged", kind=kind)
    return await state.apply(feed, "", plan)


async def run_until_empty(consumer: Consumer) -> None:
    """Burst mode: handle every event and notice readable now (stale pending ones the consumer
    may claim included), then let its outbox send what is due (retries and digests too)."""
    await consumer.ensure_group()
    await consumer.reclaim()
    while await consumer.read(block=None):
        await consumer.drain()
    await consumer.drain()
    await consumer.outbox.run_until_idle()
