"""The delivery outbox (issue 4) on a real redis-server with real receivers: a local webhook
receiver that fails on command and an aiosmtpd server that answers 451 before it accepts.

Workers run in process here (burst mode, `run_until_idle`); tests/outbox/test_delivery_crash.py
kills worker processes and Redis itself. Retry schedules are compressed to milliseconds.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from aiosmtpd.controller import Controller
from servers import Received, WebhookReceiver
from service import wait_until

from monitor.config.loader import parse_config
from monitor.config.models import Config
from monitor.core import keys
from monitor.core.models import Entry, Event
from monitor.ops.embedded import free_port
from workers.channels import ChannelSet
from workers.consume.consumer import Consumer
from workers.outbox import deliveries
from workers.render.alert import alert_id

FEED_URL = "https://news.example.org/live/summit"
FAST = "retry_schedule: [50ms, 100ms, 200ms], retry_jitter: 0"


def make_config(hook: WebhookReceiver, *, workers: str = FAST, hook_extra: str = "",
                extra_channels: str = "", operator: str = "[]", severity: str = "normal",
                channels: str = "[hook]") -> Config:
    return parse_config(f"""
feeds: [{{name: summit, url: "{FEED_URL}"}}]
rules:
  - {{name: coalition, any: ["coalition of the willing"], channels: {channels}}}
  - {{name: flash, any: ["breaking"], channels: {channels}, severity: {severity}}}
channels:
  - {{name: hook, type: webhook, url: "{hook.url('/hook')}"{hook_extra}}}
  - {{name: ops, type: webhook, url: "{hook.url('/ops')}"}}
{extra_channels}
operator: {{channels: {operator}}}
workers: {{{workers}}}
""")


def make_event(entry_id: str, text: str = "A coalition of the willing meets.") -> Event:
    entry = Entry(id=entry_id, url=f"{FEED_URL}#{entry_id}", title=f"Post {entry_id}", text=text)
    return Event(kind="new", feed="summit", feed_url=FEED_URL, entry=entry,
                 version=entry.version, detected_at=time.time())


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(follow_redirects=False) as client:
        yield client


@pytest.fixture
def worker(redis_client: aioredis.Redis, http: httpx.AsyncClient) -> Callable[[Config], Consumer]:
    def make(config: Config) -> Consumer:
        return Consumer(config, redis_client, ChannelSet(http).update(config.channels), name="w1")
    return make


class Script:
    """A webhook responder: `answer(request)` gives (status, headers); every call is logged."""

    def __init__(self, answer: Callable[[Received], tuple[int, dict[str, str]]]) -> None:
        self.answer = answer
        self.calls: list[tuple[float, str, str, int]] = []  # (time, path, webhook-id, status)
        self.lock = threading.Lock()

    def __call__(self, request: Received) -> tuple[int, dict[str, str]]:
        status, headers = self.answer(request)
        with self.lock:
            self.calls.append((time.monotonic(), request.path, request.headers["webhook-id"],
                               status))
        return status, headers

    def accepted(self, path: str = "/hook") -> Counter[str]:
        with self.lock:
            return Counter(i for _, p, i, s in self.calls if p == path and 200 <= s < 300)

    def count(self, path: str = "/hook") -> int:
        with self.lock:
            return sum(1 for _, p, _, _ in self.calls if p == path)


async def handle_all(consumer: Consumer, events: list[Event]) -> None:
    for event in events:
        await consumer.handle(event)


async def test_receiver_failing_then_recovering_gets_every_alert_exactly_once(
        redis_client: aioredis.Redis, webhook_receiver: WebhookReceiver,
        worker: Callable[[Config], Consumer]) -> None:
    healthy = threading.Event()
    script = Script(lambda _: (200, {}) if healthy.is_set() else (500, {}))
    webhook_receiver.responder = script
    consumer = worker(make_config(webhook_receiver))
    events = [make_event(f"e{n}") for n in range(30)]
    stop = asyncio.Event()
    sender = asyncio.create_task(consumer.outbox.run(stop))
    try:
        await handle_all(consumer, events)
        def failed_twice_each() -> bool:
            with script.lock:
                failures = Counter(i for _, _, i, status in script.calls if status == 500)
            return len(failures) == 30 and min(failures.values()) >= 2

        await wait_until(lambda: _true(failed_twice_each()), what="each alert failed twice")
        assert not script.accepted()
        recovered = time.monotonic()
        healthy.set()
        await wait_until(lambda: _true(len(script.accepted()) == 30), what="all accepted")
    finally:
        stop.set()
        await sender
    accepted = script.accepted()
    expected = {alert_id("summit", e.entry.id, "coalition", "hook", e.entry.version)
                for e in events}
    assert set(accepted) == expected and set(accepted.values()) == {1}  # each exactly once
    last = max(t for t, _, _, s in script.calls if s == 200)
    assert last - recovered < 1.0  # within the schedule's longest wait (200 ms) plus slack
    records = await deliveries.recent(redis_client, 100)
    assert {r.state for r in records} == {"delivered"} and len(records) == 30
    assert all(r.attempts >= 3 for r in records)  # two failures, then the success


async def _true(value: bool) -> bool:
    return value


async def test_retry_after_is_honoured(redis_client: aioredis.Redis,
                                       webhook_receiver: WebhookReceiver,
                                       worker: Callable[[Config], Consumer]) -> None:
    script = Script(lambda _: (429, {"Retry-After": "1"}) if not script.calls else (200, {}))
    webhook_receiver.responder = script
    consumer = worker(make_config(webhook_receiver, workers="retry_schedule: [10ms]"))
    await consumer.handle(make_event("e1"))
    await consumer.outbox.run_until_idle(timeout=5)
    (first, _, ident, status), (second, _, again, ok) = script.calls
    assert (status, ok, ident) == (429, 200, again)
    assert second - first >= 1.0  # the server's 1 s, not the schedule's 10 ms


async def test_gone_disables_the_channel_and_tells_the_operator(
        redis_client: aioredis.Redis, webhook_receiver: WebhookReceiver,
        worker: Callable[[Config], Consumer]) -> None:
    gone = threading.Event()
    gone.set()
    script = Script(lambda r: (410, {}) if r.path == "/hook" and gone.is_set() else (200, {}))
    webhook_receiver.responder = script
    consumer = worker(make_config(webhook_receiver, operator="[ops]"))
    await consumer.handle(make_event("e1"))
    await consumer.outbox.run_until_idle(timeout=5)
    await consumer.handle(make_event("e2"))
    await consumer.outbox.run_until_idle(timeout=5)
    assert script.count("/hook") == 1  # the second alert was not even tried
    (notice,) = [r.json() for r in webhook_receiver.received if r.path == "/ops"]
    assert notice["type"] == "notice" and notice["kind"] == "channel_disabled"
    assert "hook" in notice["message"] and "410" in notice["message"]
    dead = await deliveries.dead(redis_client)
    assert len(dead) == 2 and {d.channel for d in dead} == {"hook"}
    assert any("disabled" in (d.last_error or "") for d in dead)
    assert "hook" in await deliveries.disabled_channels(redis_client)

    # Changing the channel's settings (a new URL) re-enables it by itself.
    fixed = make_config(webhook_receiver, operator="[ops]", hook_extra=", timeout: 9s")
    consumer.outbox.reconfigure(fixed, consumer.outbox.channels)
    await consumer.outbox.reenable_fixed()
    assert await deliveries.disabled_channels(redis_client) == {}
    consumer.outbox.reconfigure(consumer.config, consumer.outbox.channels)
    await consumer.outbox._disable("hook", "HTTP 410 again")

    # The operator fixes the endpoint, re-enables the channel and re-sends the dead letters.
    gone.clear()
    assert await deliveries.enable(redis_client, "hook")
    assert await deliveries.requeue(redis_client, [d.id for d in dead]) == 2
    await consumer.outbox.run_until_idle(timeout=5)
    assert len(script.accepted("/hook")) == 2
    assert await deliveries.dead(redis_client) == []


async def test_permanent_error_dead_letters_and_requeue_resends(
        redis_client: aioredis.Redis, webhook_receiver: WebhookReceiver,
        worker: Callable[[Config], Consumer]) -> None:
    broken = threading.Event()
    broken.set()
    script = Script(lambda _: (400, {}) if broken.is_set() else (200, {}))
    webhook_receiver.responder = script
    consumer = worker(make_config(webhook_receiver))
    await consumer.handle(make_event("e1"))
    await consumer.outbox.run_until_idle(timeout=5)
    (dead,) = await deliveries.dead(redis_client)
    assert dead.attempts == 1 and dead.last_error and "HTTP 400" in dead.last_error
    assert await deliveries.requeue(redis_client, ["lw_not_there"]) == 0
    broken.clear()
    assert await deliveries.requeue(redis_client, [dead.id]) == 1
    assert await deliveries.requeue(redis_client, [dead.id]) == 0  # queued now, not dead
    await consumer.outbox.run_until_idle(timeout=5)
    assert list(script.accepted().values()) == [1]
    (record,) = await deliveries.recent(redis_client)
    assert record.state == "delivered"


async def test_digest_batches_and_urgent_rules_skip_it(
        redis_client: aioredis.Redis, webhook_receiver: WebhookReceiver,
        worker: Callable[[Config], Consumer]) -> None:
    consumer = worker(make_config(webhook_receiver, hook_extra=", digest: 400ms",
                                  severity="urgent"))
    started = time.monotonic()
    await handle_all(consumer, [make_event(f"e{n}") for n in range(3)])
    await consumer.handle(make_event("u1", "breaking: the talks collapse"))
    await consumer.outbox.drain()
    (urgent,) = webhook_receiver.bodies()  # at once, not held
    assert urgent["type"] == "alert" and urgent["rule"] == "flash"
    await consumer.outbox.run_until_idle(timeout=5)
    bodies = webhook_receiver.bodies()
    assert len(bodies) == 2 and time.monotonic() - started >= 0.4
    digest = bodies[1]
    assert digest["type"] == "digest" and digest["channel"] == "hook"
    assert [a["entry"]["id"] for a in digest["alerts"]] == ["e0", "e1", "e2"]
    assert "digest" in digest["reason"]
    assert webhook_receiver.received[1].headers["webhook-id"] == digest["id"]
    states = {r.id: r.state for r in await deliveries.recent(redis_client, 10)}
    assert sorted(states.values()) == ["delivered", "delivered", "digested", "digested",
                                       "digested"]


async def test_rate_limit_spills_the_excess_into_a_digest(
        redis_client: aioredis.Redis, webhook_receiver: WebhookReceiver,
        worker: Callable[[Config], Consumer]) -> None:
    consumer = worker(make_config(webhook_receiver, hook_extra=", rate_limit: 2/2s"))
    await handle_all(consumer, [make_event(f"e{n}") for n in range(5)])
    await consumer.outbox.drain()
    assert [b["type"] for b in webhook_receiver.bodies()] == ["alert", "alert"]
    await consumer.outbox.run_until_idle(timeout=5)
    bodies = webhook_receiver.bodies()
    assert [b["type"] for b in bodies] == ["alert", "alert", "digest"]
    assert len(bodies[2]["alerts"]) == 3 and "rate limit 2/2s" in bodies[2]["reason"]
    sent = {b["entry"]["id"] for b in bodies[:2]} | {a["entry"]["id"] for a in bodies[2]["alerts"]}
    assert sent == {f"e{n}" for n in range(5)}  # nothing dropped


async def test_quiet_hours_defer_to_a_digest_at_their_end(
        redis_client: aioredis.Redis, webhook_receiver: WebhookReceiver,
        worker: Callable[[Config], Consumer]) -> None:
    now = datetime(2026, 11, 26, 23, 30, tzinfo=UTC)  # 00:30 in Paris: inside 22:00-07:00
    config = make_config(webhook_receiver, hook_extra=(
        ", quiet_hours: {start: '22:00', end: '07:00', timezone: Europe/Paris}"))
    consumer = worker(config)
    clock = [now.timestamp()]
    consumer.outbox.clock = lambda: clock[0]
    await handle_all(consumer, [make_event("e1"), make_event("e2")])
    await consumer.outbox.step()
    await consumer.outbox.drain()
    assert webhook_receiver.received == []
    hold = await redis_client.hgetall(keys.hold("hook"))
    end = datetime(2026, 11, 27, 6, 0, tzinfo=UTC).timestamp()  # 07:00 Paris (UTC+1)
    assert float(hold["due"]) == end
    clock[0] = end - 1  # still quiet: nothing goes out
    await consumer.outbox.step()
    await consumer.outbox.drain()
    assert webhook_receiver.received == []
    clock[0] = end + 1
    await consumer.outbox.step()
    await consumer.outbox.drain()
    await consumer.outbox.step()
    await consumer.outbox.drain()
    (digest,) = webhook_receiver.bodies()
    assert digest["type"] == "digest" and len(digest["alerts"]) == 2
    assert "quiet hours 22:00-07:00 Europe/Paris" in digest["reason"]


class _FlakySmtp:
    """An aiosmtpd handler answering 451 to the first `failures` messages, then accepting."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.failures > 0:
            self.failures -= 1
            return "451 4.3.0 Try again later"
        self.messages.append(envelope.content)
        return "250 OK"


async def test_email_451_then_accepted_is_sent_once(
        redis_client: aioredis.Redis, webhook_receiver: WebhookReceiver,
        worker: Callable[[Config], Consumer]) -> None:
    handler = _FlakySmtp(failures=2)
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        config = make_config(webhook_receiver, channels="[desk]", extra_channels=f"""
  - name: desk
    type: email
    to: ["desk@example.org"]
    from: "livewatch@example.org"
    smtp: {{host: 127.0.0.1, port: {port}, starttls: false, timeout: 3s}}""")
        consumer = worker(config)
        await consumer.handle(make_event("e1"))
        await consumer.outbox.run_until_idle(timeout=5)
    finally:
        controller.stop()
    assert handler.failures == 0 and len(handler.messages) == 1
    (record,) = await deliveries.recent(redis_client)
    assert (record.state, record.attempts) == ("delivered", 3)
    assert record.last_error is not None and "451" in record.last_error


async def test_requeued_event_queues_nothing_twice(
        redis_client: aioredis.Redis, webhook_receiver: WebhookReceiver,
        worker: Callable[[Config], Consumer]) -> None:
    consumer = worker(make_config(webhook_receiver))
    event = make_event("e1")
    for _ in range(3):  # handled again after a crash, a re-claim or a replay
        await consumer.handle(event)
        await consumer.outbox.run_until_idle(timeout=5)
    assert len(webhook_receiver.received) == 1
    assert await redis_client.zcard(keys.OUTBOX_RECENT) == 1


def test_give_up_after_bounds_the_schedule() -> None:
    from workers.outbox.policy import retry_delay

    config = parse_config("workers: {retry_schedule: [5s, 5m], retry_jitter: 0}")
    assert [retry_delay(config.workers, n, None) for n in (1, 2, 3, 9)] == [5, 300, 300, 300]
    assert retry_delay(config.workers, 1, 120.0) == 120.0  # Retry-After lengthens a wait
    assert retry_delay(config.workers, 2, 1.0) == 300.0  # ...never shortens it


@pytest.mark.parametrize(("local", "inside"), [
    ("21:59", False), ("22:00", True), ("23:59", True), ("00:00", True), ("06:59", True),
    ("07:00", False), ("12:00", False)])
def test_quiet_hours_span_midnight(local: str, inside: bool) -> None:
    from workers.outbox.policy import quiet_until

    config = parse_config("""
channels: [{name: c, type: webhook, url: "http://127.0.0.1:1/",
            quiet_hours: {start: "22:00", end: "07:00", timezone: "America/New_York"}}]""")
    quiet = config.channels[0].quiet_hours
    hour, minute = map(int, local.split(":"))
    day = datetime(2026, 7, 1, hour, minute, tzinfo=UTC) + timedelta(hours=4)  # EDT = UTC-4
    until = quiet_until(quiet, day.timestamp())
    assert (until is not None) == inside
    if until is not None:
        end = datetime.fromtimestamp(until, UTC) - timedelta(hours=4)
        assert (end.hour, end.minute) == (7, 0) and 0 < until - day.timestamp() <= 9 * 3600


async def test_a_burst_larger_than_the_slots_is_sent_once_each(
        redis_client: aioredis.Redis, webhook_receiver: WebhookReceiver,
        worker: Callable[[Config], Consumer]) -> None:
    """More alerts than send slots: the excess waits queued (not claimed), so no lease runs out
    while a delivery waits for a slot and nothing is sent twice."""
    def slow(_: Received) -> tuple[int, dict[str, str]]:
        time.sleep(0.05)
        return 200, {}

    script = Script(slow)
    webhook_receiver.responder = script
    consumer = worker(make_config(webhook_receiver,
                                  workers="concurrency: 2, delivery_lease: 300ms, " + FAST))
    stop = asyncio.Event()
    sender = asyncio.create_task(consumer.outbox.run(stop))
    try:
        await handle_all(consumer, [make_event(f"e{n}") for n in range(20)])
        await wait_until(lambda: _true(len(script.accepted()) == 20), what="all 20 accepted")
    finally:
        stop.set()
        await sender
    assert set(script.accepted().values()) == {1}
