"""A live-blog page and a GUID-churning feed through the whole service, as a real process:
`livewatch run` → poll → diff → stream → match → webhook, against a private redis-server."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from feeds import Item, Update, live_page, login_wall, rss
from servers import FeedServer, WebhookReceiver
from service import Service, baselined, stream_idle, wait_until

from monitor.core import keys
from monitor.core.models import Event
from monitor.core.textnorm import content_hash
from monitor.ops.embedded import EmbeddedRedis

pytestmark = pytest.mark.slow

LIVE = "/live/summit"
WIRE = "/wire.rss"
HTML = "text/html; charset=utf-8"
PHRASE = "<p>Ministers say a “coalition of the <em>willing</em>” is taking shape.</p>"


def config_yaml(redis_url: str, feeds: FeedServer, hook: WebhookReceiver) -> str:
    return f"""
redis: {{url: "{redis_url}"}}
defaults: {{interval: 0.3s, jitter: 0s, timeout: 3s, max_backoff: 1s}}
feeds:
  - {{name: live, url: "{feeds.url(LIVE)}", kind: auto}}
  - {{name: wire, url: "{feeds.url(WIRE)}"}}
rules:
  - name: coalition
    any: ["coalition of the willing", "boots on the ground"]
    channels: [hook]
channels:
  - {{name: hook, type: webhook, url: "{hook.url('/alerts')}"}}
workers: {{claim_idle: 2s, retry_schedule: [100ms]}}
"""


def alerts(hook: WebhookReceiver) -> list[tuple[str, str, str]]:
    return [(b["event"], b["feed"]["name"], b["entry"]["id"])
            for b in hook.bodies() if b.get("type") == "alert"]


async def events(client: aioredis.Redis) -> list[tuple[str, str, str]]:
    found = [Event.decode(f["event"]) for _, f in await client.xrange(keys.EVENTS_STREAM)]
    return [(e.kind, e.feed, e.entry.id) for e in found]


def churned(items: list[Item], generation: int) -> list[Item]:
    """The same items under GUIDs that are new on every fetch."""
    return [Item(f"urn:uuid:{generation}-{i.guid}", i.title, i.html, i.minute, i.author)
            for i in items]


async def fetched(feeds: FeedServer, path: str, client: aioredis.Redis, more: int = 2) -> None:
    """Wait for `more` fetches of `path` from now (so one full poll saw the current document)
    and an idle events stream."""
    start = feeds.count(path)

    async def done() -> bool:
        return feeds.count(path) >= start + more and await stream_idle(client)

    await wait_until(done, timeout=10, what=f"{more} polls of {path} and an idle stream")


async def test_live_page_and_churning_feed_end_to_end(
        redis_server: EmbeddedRedis, redis_client: aioredis.Redis, feed_server: FeedServer,
        webhook_receiver: WebhookReceiver, tmp_path: Path, running: list[Service]) -> None:
    updates = [Update(1, "Summit opens", PHRASE, 1),  # already there: baseline, no alert
               Update(2, "Arrivals", "<p>Leaders are arriving at the venue.</p>", 2)]
    feed_server.set(LIVE, live_page(updates), content_type=HTML)
    wire = [Item("w1", "Coalition talk", PHRASE, 1),  # would alert on every churn if re-seen
            Item("w2", "Arrivals", "<p>Motorcades on the bridge.</p>", 2),
            Item("w3", "Weather", "<p>Rain is expected later.</p>", 3),
            Item("w4", "Security", "<p>Roads are closed near the venue.</p>", 4)]
    feed_server.set_rendered(WIRE, lambda n: rss(churned(wire, n), title="Wire"))
    cfg = tmp_path / "livewatch.yaml"
    cfg.write_text(config_yaml(redis_server.url, feed_server, webhook_receiver))
    service = Service(["run", "--config", str(cfg), "--log-format", "json"],
                      tmp_path / "service.log")
    running.append(service)
    service.start()
    for feed in ("live", "wire"):
        await wait_until(lambda f=feed: baselined(redis_client, f), what=f"{feed} baseline",
                         service=service)

    # The wire churns its GUIDs on every fetch: it switches to content identity, and several
    # polls later there is still not one event, let alone an alert.
    async def switched() -> bool:
        return await redis_client.hget(keys.meta("wire"), "identity") == "content"

    await wait_until(switched, timeout=10, what="content identity", service=service)
    await fetched(feed_server, WIRE, redis_client, more=4)
    assert await events(redis_client) == []
    assert alerts(webhook_receiver) == []

    page = feed_server.url(LIVE)
    # A new update with the phrase: one `new` alert.
    updates.append(Update(3, "PM speaks", PHRASE.replace("Ministers", "The PM"), 3))
    feed_server.set(LIVE, live_page(updates), content_type=HTML)
    webhook_receiver.wait_for(lambda r: len(r) >= 1, timeout=10)
    await fetched(feed_server, LIVE, redis_client)
    assert alerts(webhook_receiver) == [("new", "live", page + "#update-3")]

    # An edit that adds the phrase to an existing update: one `updated` alert.
    updates[1] = Update(2, "Arrivals", "<p>Leaders arriving; coalition of the willing "
                                       "expected to meet.</p>", 2)
    feed_server.set(LIVE, live_page(updates), content_type=HTML)
    webhook_receiver.wait_for(lambda r: len(r) >= 2, timeout=10)
    await fetched(feed_server, LIVE, redis_client)

    # A typo fix of a matching update is an `updated` event, but no alert (no new match).
    updates[2] = Update(3, "PM speaks", PHRASE.replace("Ministers", "The PM says"), 3)
    feed_server.set(LIVE, live_page(updates), content_type=HTML)
    await fetched(feed_server, LIVE, redis_client)
    assert (await events(redis_client))[-1] == ("updated", "live", page + "#update-3")

    # The same content re-rendered with other markup and whitespace: nothing at all.
    before = await events(redis_client)
    feed_server.set(LIVE, live_page(updates, reflow=True), content_type=HTML)
    await fetched(feed_server, LIVE, redis_client)
    assert await events(redis_client) == before
    assert len(before) == 3

    # A genuinely new wire item (under a churned GUID, like all the others) alerts once.
    fresh = Item("w5", "Statement", "<p>A coalition of the willing is announced.</p>", 5)
    wire.append(fresh)
    webhook_receiver.wait_for(lambda r: len(r) >= 3, timeout=10)
    await fetched(feed_server, WIRE, redis_client, more=3)

    # The live page becomes a login wall: reported failing; the wire keeps being polled.
    feed_server.set(LIVE, login_wall(), content_type=HTML)

    async def failing() -> bool:
        health = await redis_client.hgetall(keys.health("live"))
        return health.get("last_status") == "error" and int(
            health.get("consecutive_failures") or 0) >= 2

    await wait_until(failing, timeout=10, what="live reported failing", service=service)
    health = await redis_client.hgetall(keys.health("live"))
    assert "live blog" in health["last_error"]
    await fetched(feed_server, WIRE, redis_client, more=3)
    wire_health = await redis_client.hgetall(keys.health("wire"))
    assert wire_health["last_status"] == "ok" and wire_health["consecutive_failures"] == "0"
    assert service.stop() == 0

    assert alerts(webhook_receiver) == [
        ("new", "live", page + "#update-3"),
        ("updated", "live", page + "#update-2"),
        ("new", "wire", "h:" + content_hash(fresh.title, fresh.html)),
    ]
    assert [b for b in webhook_receiver.bodies() if b.get("type") != "alert"] == []
    ids = Counter(r.headers["webhook-id"] for r in webhook_receiver.received)
    assert len(ids) == 3 and set(ids.values()) == {1}
    assert await events(redis_client) == [*before, ("new", "wire", alerts(webhook_receiver)[2][2])]
    logs = [json.loads(line) for line in service.logs().splitlines() if line.startswith("{")]
    switches = [e for e in logs if "churns entry ids" in e.get("event", "")]
    assert [e["feed"] for e in switches] == ["wire"]
    assert not [e for e in logs if e.get("event") == "flood breaker tripped"]
