"""workers.consume.consumer on a real redis-server with real channels (local webhook receiver,
aiosmtpd).

Events reach the stream the way the poller writes them (FeedState.commit, or Event.encode XADDed
under the `event` field); the consumer runs in burst mode (`service.run_until_empty`). Waits are
conditions with deadlines, never bare sleeps.
"""

from __future__ import annotations

import asyncio
import email
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from conftest import SmtpServer
from servers import Received, WebhookReceiver
from service import commit, run_until_empty, stream_idle, wait_until

from monitor.config.loader import parse_config
from monitor.config.models import Config
from monitor.core import keys
from monitor.core.models import Entry, Event, Notice
from monitor.poll.diff import diff_entries
from monitor.poll.role import make_state
from workers.channels import ChannelSet
from workers.consume.consumer import Consumer
from workers.outbox import deliveries
from workers.render.alert import alert_id

FEED_URL = "https://news.example.org/live/summit"
MATCHING = "Ministers say a coalition of the willing is taking shape."
FAST_RETRIES = "retry_schedule: [10ms, 20ms, 40ms], retry_jitter: 0"


def make_config(hook: WebhookReceiver, *, workers: str = FAST_RETRIES,
                channels: str = "[hook]", smtp_port: int = 1) -> Config:
    return parse_config(f"""
redis: {{url: "redis://127.0.0.1:1/0"}}
feeds:
  - {{name: summit, url: "{FEED_URL}"}}
rules:
  - name: coalition
    any: ["coalition of the willing"]
    none: ["football"]
    channels: {channels}
channels:
  - {{name: hook, type: webhook, url: "{hook.url('/alerts')}", secret: "s3cret"}}
  - name: desk
    type: email
    to: ["desk@example.org"]
    from: "livewatch@example.org"
    smtp: {{host: 127.0.0.1, port: {smtp_port}, starttls: false, timeout: 3s}}
workers: {{{workers}}}
""")


def make_event(text: str = MATCHING, entry_id: str = "e1") -> Event:
    entry = Entry(id=entry_id, url=f"{FEED_URL}#{entry_id}", title="Summit live", text=text)
    return Event(kind="new", feed="summit", feed_url=FEED_URL, entry=entry,
                 version=entry.version, detected_at=1_770_000_000.0)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(follow_redirects=False) as client:
        yield client


ConsumerFactory = Callable[..., Consumer]


@pytest.fixture
def consumer_for(redis_client: aioredis.Redis, http: httpx.AsyncClient) -> ConsumerFactory:
    def make(config: Config, name: str = "worker-1") -> Consumer:
        return Consumer(config, redis_client, ChannelSet(http).update(config.channels), name=name)
    return make


class Counting:
    """A webhook responder answering from a list of statuses (the last one repeats)."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.ids: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, request: Received) -> tuple[int, dict[str, str]]:
        with self.lock:
            self.ids.append(request.headers["webhook-id"])
            status = self.statuses[min(len(self.ids), len(self.statuses)) - 1]
        return status, {}

    @property
    def calls(self) -> int:
        with self.lock:
            return len(self.ids)


async def publish(client: aioredis.Redis, event: Event) -> str:
    return str(await client.xadd(keys.EVENTS_STREAM, {"event": event.encode()}))


async def pending(client: aioredis.Redis) -> int:
    info: Any = await client.xpending(keys.EVENTS_STREAM, keys.CONSUMER_GROUP)
    return int(info["pending"])


async def dead_letters(client: aioredis.Redis) -> list[dict[str, str]]:
    return [fields for _, fields in await client.xrange(keys.DEAD_EVENTS_STREAM)]


async def state_of(client: aioredis.Redis, delivery_id: str) -> str | None:
    return await client.hget(keys.delivery(delivery_id), "state")


async def test_matching_event_from_commit_is_delivered_once_and_acked(
        redis_client: aioredis.Redis, webhook_receiver: WebhookReceiver,
        consumer_for: ConsumerFactory) -> None:
    config = make_config(webhook_receiver)
    consumer = consumer_for(config)
    await consumer.ensure_group()
    state = make_state(config, redis_client)
    await commit(state, "summit", FEED_URL, [], baseline=True, etag=None, last_modified=None,
                       body_hash="h0")
    entry = make_event().entry
    changes = diff_entries({}, [entry], baseline=False)
    result = await commit(state, "summit", FEED_URL, changes, baseline=False, etag=None,
                                last_modified=None, body_hash="h1")
    assert result.appended == 1

    await run_until_empty(consumer)
    (body,) = webhook_receiver.bodies()
    assert (body["event"], body["rule"], body["entry"]["id"]) == ("new", "coalition", "e1")
    assert body["feed"] == {"name": "summit", "url": FEED_URL}
    expected_id = alert_id("summit", "e1", "coalition", "hook", entry.version)
    assert body["id"] == webhook_receiver.received[0].headers["webhook-id"] == expected_id
    assert await pending(redis_client) == 0 and await stream_idle(redis_client)
    assert await state_of(redis_client, expected_id) == "delivered"
    assert await dead_letters(redis_client) == []


async def test_non_matching_event_sends_nothing_and_is_acked(
        redis_client: aioredis.Redis, webhook_receiver: WebhookReceiver,
        consumer_for: ConsumerFactory) -> None:
    responder = Counting(200)
    webhook_receiver.responder = responder
    consumer = consumer_for(make_config(webhook_receiver))
    await consumer.ensure_group()
    await publish(redis_client, make_event("Leaders arrive at the venue.", "e1"))
    await publish(redis_client, make_event(MATCHING + " Football fans agree.", "e2"))  # `none`
    await run_until_empty(consumer)
    assert responder.calls == 0
    assert await pending(redis_client) == 0 and await stream_idle(redis_client)
    assert await dead_letters(redis_client) == []


async def test_same_event_twice_in_one_batch_is_sent_once(
        redis_client: aioredis.Redis, webhook_receiver: WebhookReceiver,
        consumer_for: ConsumerFactory) -> None:
    responder = Counting(200)
    webhook_receiver.responder = responder
    consumer = consumer_for(make_config(webhook_receiver))
    await consumer.ensure_group()
    event = make_event()
    await publish(redis_client, event)
    await publish(redis_client, event)
    await run_until_empty(consumer)  # both entries read in one XREADGROUP, handled together
    assert responder.calls == 1 and len(webhook_receiver.received) == 1
    assert await pending(redis_client) == 0


async def test_same_event_handled_again_later_is_not_resent(
        redis_client: aioredis.Redis, webhook_receiver: WebhookReceiver,
        consumer_for: ConsumerFactory) -> None:
    responder = Counting(200)
    webhook_receiver.responder = responder
    config = make_config(webhook_receiver)
    event = make_event()
    await consumer_for(config).ensure_group()
    await publish(redis_client, event)
    await run_until_empty(consumer_for(config))
    await publish(redis_client, event)
    await run_until_empty(consumer_for(config, name="worker-2"))
    assert responder.calls == 1
    assert await pending(redis_client) == 0 and await stream_idle(redis_client)


async def test_retryable_failures_then_success_deliver_once(
        redis_client: aioredis.Redis, webhook_receiver: WebhookReceiver,
        consumer_for: ConsumerFactory) -> None:
    responder = Counting(500, 503, 200)
    webhook_receiver.responder = responder
    consumer = consumer_for(make_config(webhook_receiver))
    await consumer.ensure_group()
    await publish(redis_client, make_event())
    started = time.monotonic()
    await run_until_empty(consumer)
    assert time.monotonic() - started < 2.0
    assert responder.calls == 3 and len(set(responder.ids)) == 1  # same webhook-id each time
    assert len(webhook_receiver.received) == 1
    assert await pending(redis_client) == 0 and await dead_letters(redis_client) == []


async def test_always_failing_delivery_is_retried_then_dead_lettered(
        redis_client: aioredis.Redis, webhook_receiver: WebhookReceiver,
        consumer_for: ConsumerFactory) -> None:
    responder = Counting(500)
    webhook_receiver.responder = responder
    config = make_config(webhook_receiver, workers=(
        "retry_schedule: [20ms], retry_jitter: 0, give_up_after: 300ms"))
    consumer = consumer_for(config)
    await consumer.ensure_group()
    event = make_event()
    await publish(redis_client, event)

    await run_until_empty(consumer)  # queued and acked at once; retried until given up
    ident = alert_id("summit", "e1", "coalition", "hook", event.version)
    assert await pending(redis_client) == 0
    assert await state_of(redis_client, ident) == "dead"
    assert responder.calls >= 5 and set(responder.ids) == {ident}
    (dead,) = await deliveries.dead(redis_client)
    assert dead.id == ident and dead.attempts == responder.calls
    assert dead.last_error is not None and "gave up after" in dead.last_error
    assert "HTTP 500" in dead.last_error
    assert await dead_letters(redis_client) == []  # the event itself was handled fine


async def test_permanent_failure_is_dead_lettered_not_retried(
        redis_client: aioredis.Redis, webhook_receiver: WebhookReceiver,
        consumer_for: ConsumerFactory) -> None:
    responder = Counting(400)
    webhook_receiver.responder = responder
    consumer = consumer_for(make_config(webhook_receiver, workers="claim_idle: 50ms, "
                                        + FAST_RETRIES))
    await consumer.ensure_group()
    event = make_event()
    await publish(redis_client, event)
    await run_until_empty(consumer)
    assert responder.calls == 1
    assert await pending(redis_client) == 0
    ident = alert_id("summit", "e1", "coalition", "hook", event.version)
    (dead,) = await deliveries.dead(redis_client)
    assert (dead.id, dead.channel, dead.rule, dead.feed) == (ident, "hook", "coalition",
                                                             "summit")
    assert dead.last_error is not None and "HTTP 400" in dead.last_error
    assert await state_of(redis_client, ident) == "dead"
    # Seen again (a duplicate or a replay): still not retried.
    await publish(redis_client, event)
    await run_until_empty(consumer)
    assert responder.calls == 1 and len(await deliveries.dead(redis_client)) == 1


@pytest.mark.parametrize("fields", [
    {"event": "not json"},
    {"event": '{"kind": "deleted", "feed": "summit"}'},
    {"event": '["a list"]'},
    {"something": "else"},
])
async def test_undecodable_entry_is_dead_lettered(
        redis_client: aioredis.Redis, webhook_receiver: WebhookReceiver,
        consumer_for: ConsumerFactory, fields: dict[str, str]) -> None:
    responder = Counting(200)
    webhook_receiver.responder = responder
    consumer = consumer_for(make_config(webhook_receiver))
    await consumer.ensure_group()
    message_id = await redis_client.xadd(keys.EVENTS_STREAM, fields)
    await publish(redis_client, make_event())  # a good event after it is still handled
    await run_until_empty(consumer)
    (dead,) = await dead_letters(redis_client)
    assert dead["source_id"] == message_id and "undecodable event" in dead["error"]
    assert dead["event"] == fields.get("event", "")
    assert responder.calls == 1
    assert await pending(redis_client) == 0 and await stream_idle(redis_client)


async def test_stale_pending_event_of_another_consumer_is_reclaimed(
        redis_client: aioredis.Redis, webhook_receiver: WebhookReceiver,
        consumer_for: ConsumerFactory) -> None:
    patient = consumer_for(make_config(webhook_receiver, workers="claim_idle: 60s"))
    await patient.ensure_group()
    await publish(redis_client, make_event())
    read: Any = await redis_client.xreadgroup(keys.CONSUMER_GROUP, "ghost",
                                              {keys.EVENTS_STREAM: ">"}, count=10)
    assert len(read[0][1]) == 1  # the ghost took it and died without acking

    await run_until_empty(patient)  # not idle long enough for this worker: left alone
    assert webhook_receiver.received == [] and await pending(redis_client) == 1

    consumer = consumer_for(make_config(webhook_receiver, workers="claim_idle: 50ms, "
                                        + FAST_RETRIES))

    async def delivered() -> bool:
        await run_until_empty(consumer)
        return len(webhook_receiver.received) >= 1

    await wait_until(delivered, timeout=4.0, what="the ghost's event to be reclaimed")
    assert len(webhook_receiver.received) == 1
    assert await pending(redis_client) == 0
    consumers = await redis_client.xinfo_consumers(keys.EVENTS_STREAM, keys.CONSUMER_GROUP)
    assert {c["name"]: c["pending"] for c in consumers}["ghost"] == 0


async def test_email_and_webhook_both_deliver(
        redis_client: aioredis.Redis, webhook_receiver: WebhookReceiver,
        smtp_server: SmtpServer, consumer_for: ConsumerFactory) -> None:
    config = make_config(webhook_receiver, channels="[hook, desk]", smtp_port=smtp_server.port)
    consumer = consumer_for(config)
    await consumer.ensure_group()
    event = make_event()
    await publish(redis_client, event)
    await run_until_empty(consumer)

    async def mailed() -> bool:
        return len(smtp_server.inbox.messages) >= 1

    await wait_until(mailed, timeout=4.0, what="the email")
    (raw,) = smtp_server.inbox.messages
    message = raw if isinstance(raw, email.message.Message) else None
    assert message is not None
    ident = alert_id("summit", "e1", "coalition", "desk", event.version)
    assert ident in str(message["Message-ID"])
    assert message["To"] == "desk@example.org"
    assert len(webhook_receiver.received) == 1
    assert await pending(redis_client) == 0
    assert await state_of(redis_client, ident) == "delivered"


async def test_delivery_in_flight_is_not_taken_by_another_worker(
        redis_client: aioredis.Redis, webhook_receiver: WebhookReceiver,
        consumer_for: ConsumerFactory) -> None:
    """A slow send holds its delivery's lease: another worker's outbox does not claim it."""
    release = threading.Event()

    def slow(_: Received) -> tuple[int, dict[str, str]]:
        release.wait(10)  # the receiver holds the request until the test lets it go
        return 200, {}

    webhook_receiver.responder = slow
    config = make_config(webhook_receiver, workers="delivery_lease: 5s, " + FAST_RETRIES)
    busy, other = consumer_for(config, "busy"), consumer_for(config, "other")
    await busy.ensure_group()
    await publish(redis_client, make_event())
    handling = asyncio.create_task(run_until_empty(busy))
    await wait_until(lambda: stream_idle(redis_client), what="the event queued and acked")
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:  # the lease has seconds to run: nothing to claim
        await other.outbox.step()
        assert not other.outbox._tasks
        await asyncio.sleep(0.05)
    release.set()
    await handling
    assert len(webhook_receiver.received) == 1


async def test_operator_notice_reaches_the_feeds_rule_channels_once(
        redis_client: aioredis.Redis, webhook_receiver: WebhookReceiver,
        consumer_for: ConsumerFactory) -> None:
    consumer = consumer_for(make_config(webhook_receiver))
    await consumer.ensure_group()
    notice = Notice(kind="flood", feed="summit", message="200 entries in one poll", at=1.5)
    for _ in range(2):  # the same notice twice is delivered once
        await redis_client.xadd(keys.NOTICES_STREAM, {"notice": notice.encode()})
    await run_until_empty(consumer)
    (body,) = webhook_receiver.bodies()
    assert body["type"] == "notice" and body["kind"] == "flood"
    assert body["feed"] == {"name": "summit", "url": FEED_URL}
    assert body["message"] == "200 entries in one poll"
    notices_pending: Any = await redis_client.xpending(keys.NOTICES_STREAM, keys.CONSUMER_GROUP)
    assert notices_pending["pending"] == 0


async def test_operator_channels_take_notices_when_set(
        redis_client: aioredis.Redis, webhook_receiver: WebhookReceiver,
        consumer_for: ConsumerFactory) -> None:
    config = parse_config(f"""
feeds: [{{name: summit, url: "{FEED_URL}"}}]
rules: [{{name: r, any: [x], channels: [desk]}}]
channels:
  - {{name: desk, type: webhook, url: "{webhook_receiver.url('/desk')}"}}
  - {{name: ops, type: webhook, url: "{webhook_receiver.url('/ops')}"}}
operator: {{channels: [ops]}}
""")
    consumer = consumer_for(config)
    await consumer.ensure_group()
    notice = Notice(kind="flood", feed="summit", message="m", at=2.0)
    await redis_client.xadd(keys.NOTICES_STREAM, {"notice": notice.encode()})
    await run_until_empty(consumer)
    assert [r.path for r in webhook_receiver.received] == ["/ops"]
