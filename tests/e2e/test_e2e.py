"""The whole pipeline as a real process: poll → diff → stream → match → webhook and email."""

from __future__ import annotations

import email
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from conftest import SmtpServer
from feeds import Item, rss
from servers import FeedServer, WebhookReceiver
from service import Service, baselined, stream_idle, wait_until

from monitor.core import keys
from monitor.ops.embedded import EmbeddedRedis

pytestmark = pytest.mark.slow

PHRASE_HTML = "<p>Ministers say a “Coalition of the\n <em>willing</em>” is taking shape.</p>"


def config_yaml(redis_url: str, feeds: FeedServer, hook: WebhookReceiver, smtp: SmtpServer,
                extra_feeds: str = "") -> str:
    return f"""
redis: {{url: "{redis_url}"}}
defaults: {{interval: 0.3s, jitter: 0s, timeout: 3s, max_backoff: 1s}}
feeds:
  - {{name: summit, url: "{feeds.url('/summit.rss')}"}}
  - {{name: second, url: "{feeds.url('/second.rss')}"}}
  - {{name: broken, url: "{feeds.url('/broken.rss')}"}}
  - {{name: badxml, url: "{feeds.url('/badxml.rss')}"}}
{extra_feeds}
rules:
  - name: coalition
    any: ["coalition of the willing", "boots on the ground"]
    none: ["football"]
    channels: [hook, desk]
channels:
  - name: hook
    type: webhook
    url: "{hook.url('/alerts')}"
    secret: "whsec_c2VjcmV0LWtleS1mb3ItdGVzdHM="
  - name: desk
    type: email
    to: ["desk@example.org"]
    from: "livewatch@example.org"
    smtp: {{host: 127.0.0.1, port: {smtp.port}, starttls: false}}
workers: {{claim_idle: 2s, retry_schedule: [100ms]}}
operator: {{failing_after: 0}}  # the broken feeds' notices are tested in test_feed_notices
"""


@pytest.fixture
def service_log(tmp_path: Path) -> Path:
    return tmp_path / "service.log"


@pytest.fixture
def running(service_log: Path) -> Iterator[list[Service]]:
    services: list[Service] = []
    yield services
    for service in services:
        service.kill()


def alerts(hook: WebhookReceiver) -> list[tuple[str, str, str]]:
    """The alerts received (operator notices about the broken feeds are left out)."""
    return [(b["event"], b["feed"]["name"], b["entry"]["id"]) for b in hook.bodies()
            if b["type"] == "alert"]


async def polled_after_change(feeds: FeedServer, path: str, client: aioredis.Redis) -> None:
    """Wait for two more fetches of `path` (so one full poll saw the change) and an idle stream."""
    start = feeds.count(path)

    async def done() -> bool:
        return feeds.count(path) >= start + 2 and await stream_idle(client)

    await wait_until(done, what=f"a poll of {path} and an idle stream")


async def test_end_to_end_with_restart(
        redis_server: EmbeddedRedis, redis_client: aioredis.Redis, feed_server: FeedServer,
        webhook_receiver: WebhookReceiver, smtp_server: SmtpServer, tmp_path: Path,
        service_log: Path, running: list[Service]) -> None:
    summit = [Item("s1", "Summit opens", PHRASE_HTML, 1),  # already there: baseline, no alert
              Item("s2", "Arrivals", "<p>Leaders are arriving at the venue.</p>", 2)]
    feed_server.set("/summit.rss", rss(summit))
    feed_server.set("/second.rss", rss([Item("x1", "Elsewhere", PHRASE_HTML, 1)]))
    feed_server.set("/broken.rss", "oops", status=500, content_type="text/plain")
    feed_server.set("/badxml.rss", "<rss><channel><item><title>unclosed", status=200)
    cfg = tmp_path / "livewatch.yaml"
    cfg.write_text(config_yaml(redis_server.url, feed_server, webhook_receiver, smtp_server))

    service = Service(["run", "--config", str(cfg), "--log-format", "json"], service_log)
    running.append(service)
    service.start()
    for feed in ("summit", "second"):
        await wait_until(lambda f=feed: baselined(redis_client, f), what=f"{feed} baseline",
                         service=service)

    # New posts: one with the phrase across a line break and inside tags, three near-misses.
    summit += [
        Item("s3", "PM speaks", PHRASE_HTML, 3),
        Item("s4", "Opposition", "<p>A coalition of the unwilling, says the opposition.</p>", 4),
        Item("s5", "Analysis", "<p>There is little willingness for a coalition.</p>", 5),
        Item("s6", "Sport", "<p>Football fans form a coalition of the willing.</p>", 6),
    ]
    feed_server.set("/summit.rss", rss(summit))
    webhook_receiver.wait_for(lambda r: len(r) >= 1)
    await polled_after_change(feed_server, "/summit.rss", redis_client)
    assert alerts(webhook_receiver) == [("new", "summit", "s3")]

    # Edits: s2 gains the phrase (alert), s3 gets a typo fix (no new match, no alert).
    summit[1] = Item("s2", "Arrivals", "<p>Leaders arriving; talk of boots on the ground.</p>", 2)
    summit[2] = Item("s3", "PM speaks", PHRASE_HTML.replace("Ministers", "Minsters"), 3)
    feed_server.set("/summit.rss", rss(summit))
    await polled_after_change(feed_server, "/summit.rss", redis_client)
    assert alerts(webhook_receiver) == [("new", "summit", "s3"), ("updated", "summit", "s2")]

    # Restart: a post added while the service is down arrives once; nothing repeats.
    assert service.stop() == 0
    summit.append(Item("s7", "Late news", "<p>The coalition of the willing meets again.</p>", 7))
    feed_server.set("/summit.rss", rss(summit))
    feed_server.set("/late.rss", rss([Item("l1", "Old", PHRASE_HTML, 1)]))
    cfg.write_text(config_yaml(
        redis_server.url, feed_server, webhook_receiver, smtp_server,
        extra_feeds=f'  - {{name: late, url: "{feed_server.url("/late.rss")}"}}'))
    service.start()
    webhook_receiver.wait_for(lambda r: len(r) >= 3)
    await wait_until(lambda: baselined(redis_client, "late"), what="late baseline",
                     service=service)
    await polled_after_change(feed_server, "/summit.rss", redis_client)
    await polled_after_change(feed_server, "/late.rss", redis_client)
    expected = [("new", "summit", "s3"), ("updated", "summit", "s2"), ("new", "summit", "s7")]
    assert alerts(webhook_receiver) == expected

    # Every alert id arrived exactly once, by webhook and by email.
    hook_ids = Counter(r.headers["webhook-id"] for r in webhook_receiver.received)
    assert len(hook_ids) == 3 and set(hook_ids.values()) == {1}
    await wait_until(lambda: _async_true(len(smtp_server.inbox.messages) >= 3), what="emails")
    mails = [email.message_from_bytes(m.as_bytes()) if hasattr(m, "as_bytes") else m
             for m in smtp_server.inbox.messages]
    assert len(mails) == 3
    assert len({m["Message-ID"] for m in mails}) == 3  # type: ignore[index]

    # Broken feeds were polled again and again, reported, and never stopped the others.
    assert feed_server.count("/broken.rss") >= 2 and feed_server.count("/badxml.rss") >= 2
    broken = await redis_client.hgetall(keys.health("broken"))
    assert int(broken["consecutive_failures"]) >= 1 and "500" in broken["last_error"]
    bad = await redis_client.hgetall(keys.health("badxml"))
    assert int(bad["consecutive_failures"]) >= 1
    assert service.stop() == 0


async def _async_true(value: bool) -> bool:
    return value
