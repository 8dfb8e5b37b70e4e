"""Delivery survives crashes (issue 4): a worker process SIGKILLed in the middle of a burst,
and redis-server itself killed and restarted from its append-only file.

Real worker processes (`livewatch worker`), a real redis-server, a local webhook receiver that
counts alerts by `webhook-id`. Events are XADDed as a poller writes them.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from servers import Received, WebhookReceiver
from service import Service, wait_until

from monitor.core import keys
from monitor.core.models import Entry, Event
from monitor.ops.embedded import EmbeddedRedis

pytestmark = pytest.mark.slow

FEED_URL = "https://news.example.org/live/summit"
CONCURRENCY = 8


def config_yaml(redis_url: str, hook: WebhookReceiver) -> str:
    return f"""
redis: {{url: "{redis_url}"}}
feeds: [{{name: summit, url: "{FEED_URL}"}}]
rules: [{{name: coalition, any: ["coalition of the willing"], channels: [hook]}}]
channels: [{{name: hook, type: webhook, url: "{hook.url('/alerts')}"}}]
workers: {{concurrency: {CONCURRENCY}, claim_idle: 1s, delivery_lease: 1s,
           retry_schedule: [100ms], shutdown_timeout: 1s}}
"""


def start_worker(tmp_path: Path, redis_url: str, hook: WebhookReceiver, delay: float,
                 running: list[Service]) -> tuple[Service, Tally]:
    """A `livewatch worker` sending to `hook`, whose alerts a `Tally` with `delay` accepts."""
    tally = Tally(delay)
    hook.responder = tally
    cfg = tmp_path / "livewatch.yaml"
    cfg.write_text(config_yaml(redis_url, hook))
    return worker(cfg, tmp_path / "worker.log", running), tally


def worker(cfg: Path, log: Path, running: list[Service]) -> Service:
    """A started `livewatch worker` (stopped by the `running` fixture)."""
    service = Service(["worker", "--config", str(cfg)], log)
    running.append(service)
    service.start()
    return service


def event(n: int) -> Event:
    entry = Entry(id=f"p{n}", url=f"{FEED_URL}#p{n}", title=f"Post {n}",
                  text=f"Update {n}: a coalition of the willing is discussed.")
    return Event(kind="new", feed="summit", feed_url=FEED_URL, entry=entry,
                 version=entry.version, detected_at=time.time())


class Tally:
    """Accepts every alert after `delay` seconds and counts them by webhook-id."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.ids: Counter[str] = Counter()
        self.lock = threading.Lock()

    def __call__(self, request: Received) -> tuple[int, dict[str, str]]:
        time.sleep(self.delay)  # the receiver's own pace, so a burst is in flight
        with self.lock:
            self.ids[request.headers["webhook-id"]] += 1
        return 200, {}

    def distinct(self) -> int:
        with self.lock:
            return len(self.ids)

    def duplicates(self) -> int:
        with self.lock:
            return sum(self.ids.values()) - len(self.ids)


async def publish(client: aioredis.Redis, numbers: range) -> None:
    async with client.pipeline(transaction=False) as pipe:
        for n in numbers:
            pipe.xadd(keys.EVENTS_STREAM, {"event": event(n).encode()})
        await pipe.execute()


async def test_worker_killed_mid_burst_delivers_every_alert(
        redis_server: EmbeddedRedis, redis_client: aioredis.Redis,
        webhook_receiver: WebhookReceiver, tmp_path: Path, running: list[Service]) -> None:
    first, tally = start_worker(tmp_path, redis_server.url, webhook_receiver, 0.02, running)
    await publish(redis_client, range(200))

    async def some_sent() -> bool:
        return tally.distinct() >= 40

    await wait_until(some_sent, what="part of the burst delivered", service=first)
    first.kill()  # SIGKILL: no shutdown, sends in flight are cut off
    cut_at = tally.distinct()
    assert cut_at < 200

    second = worker(tmp_path / "livewatch.yaml", tmp_path / "second.log", running)

    async def all_sent() -> bool:
        return tally.distinct() == 200

    await wait_until(all_sent, timeout=60, what="every alert delivered", service=second)
    # The documented window: a send accepted by the receiver but not yet recorded when the
    # worker died is sent again (same webhook-id). At most one per send in flight.
    assert tally.duplicates() <= CONCURRENCY

    async def all_recorded() -> bool:  # the last sends are recorded just after they land
        return await redis_client.zcard(keys.OUTBOX_DUE) == 0

    await wait_until(all_recorded, what="every delivery recorded", service=second)
    assert tally.duplicates() <= CONCURRENCY


async def test_redis_killed_and_restarted_from_aof_loses_nothing(
        webhook_receiver: WebhookReceiver, tmp_path: Path, running: list[Service]) -> None:
    server = EmbeddedRedis(tmp_path / "redis", appendonly=True, appendfsync="always")
    server.start()
    try:
        service, tally = start_worker(tmp_path, server.url, webhook_receiver, 0.05, running)
        client: aioredis.Redis = aioredis.from_url(server.url, decode_responses=True)
        try:
            await publish(client, range(100))

            async def some_sent() -> bool:
                return tally.distinct() >= 20

            await wait_until(some_sent, what="part of the first batch", service=service)
        finally:
            await client.aclose()
        server.kill()  # a crash: only what the AOF holds survives
        assert tally.distinct() < 100  # killed mid-run, with alerts still to send
        server.start()
        client = aioredis.from_url(server.url, decode_responses=True)
        try:
            await publish(client, range(100, 150))

            async def all_sent() -> bool:
                return tally.distinct() == 150

            await wait_until(all_sent, timeout=60, what="every alert after the restart",
                             service=service)
            assert tally.duplicates() <= CONCURRENCY
        finally:
            await client.aclose()
    finally:
        server.stop()


class Gate:
    """Holds the first alert until `release`, then answers it 503; accepts the others."""

    def __init__(self) -> None:
        self.holding = threading.Event()
        self.released = threading.Event()
        self.accepted: list[float] = []  # monotonic times of 200 answers
        self.held_id = ""

    def __call__(self, request: Received) -> tuple[int, dict[str, str]]:
        if not self.holding.is_set():
            self.held_id = request.headers["webhook-id"]
            self.holding.set()
            self.released.wait(30)
            return 503, {}
        self.accepted.append(time.monotonic())
        return 200, {}


async def test_delivery_in_flight_when_redis_dies_is_sent_once_redis_answers(
        webhook_receiver: WebhookReceiver, tmp_path: Path, running: list[Service]) -> None:
    """The sender keeps the delivery it holds while Redis is down (no traceback), and sends it
    within seconds of Redis answering, not after its 60 s lease."""
    server = EmbeddedRedis(tmp_path / "redis", appendonly=True, appendfsync="always")
    server.start()
    gate = Gate()
    webhook_receiver.responder = gate
    cfg = tmp_path / "livewatch.yaml"
    cfg.write_text(config_yaml(server.url, webhook_receiver)
                   .replace("delivery_lease: 1s", "delivery_lease: 60s"))
    service = worker(cfg, tmp_path / "worker.log", running)
    try:
        client: aioredis.Redis = aioredis.from_url(server.url, decode_responses=True)
        try:
            await publish(client, range(1))
        finally:
            await client.aclose()
        assert await asyncio.to_thread(gate.holding.wait, 30), "no delivery arrived"
        server.kill()  # the send in flight fails (503) while Redis is gone
        gate.released.set()

        async def failed_attempt_logged() -> bool:  # the 503, met with Redis gone
            return gate.held_id in service.logs()

        await wait_until(failed_attempt_logged, what="the worker logging the delivery's "
                         "failed attempt while Redis is gone", service=service)
        server.start()
        back = time.monotonic()

        async def delivered() -> bool:
            return bool(gate.accepted)

        await wait_until(delivered, timeout=30, what="the delivery after Redis came back",
                         service=service)
        assert gate.accepted[0] - back < 5.0
        assert "Traceback" not in service.logs()
    finally:
        server.stop()
