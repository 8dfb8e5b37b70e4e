"""WebSub push against a hub of our own (tests/hub.py) on 127.0.0.1, a real redis-server and
real pollers: discovery, subscribe and verify, signed, unsigned and forged notifications,
renewal, denial, unsubscribe on reload, the relay to the lease holder, and `livewatch run`."""

from __future__ import annotations

import asyncio
import contextlib
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import pytest
import redis.asyncio as aioredis
from feeds import Item, rss
from hub import Hub
from prometheus_client import REGISTRY
from rich.console import Console
from servers import FeedServer, WebhookReceiver
from service import Service, events, wait_until

from monitor.config.loader import parse_config
from monitor.config.models import Config
from monitor.core import keys
from monitor.fetch.client import Fetcher
from monitor.ops.control import Control
from monitor.ops.embedded import EmbeddedRedis, free_port
from monitor.ops.status import collect, render
from monitor.poll.poller import Poller
from monitor.poll.role import make_state
from monitor.poll.scheduler import FeedScheduler
from monitor.push import discovery, signature
from monitor.push.discovery import Advert
from monitor.push.store import Subscriptions
from monitor.push.websub import WebSubSubscriber
from workers.service import run_all, run_workers

PHRASE = "coalition of the willing"
T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)


# --- pure: signatures and discovery ------------------------------------------------------------

SECRET = "s3cr3t"
BODY = b"<feed>hello</feed>"


@pytest.mark.parametrize(("header", "secret", "body", "verdict"), [
    (None, SECRET, BODY, "absent"),
    (signature.sign(SECRET, BODY, "sha1"), SECRET, BODY, "valid"),
    (signature.sign(SECRET, BODY, "sha256"), SECRET, BODY, "valid"),
    (signature.sign(SECRET, BODY, "sha384"), SECRET, BODY, "valid"),
    (signature.sign(SECRET, BODY, "sha512"), SECRET, BODY, "valid"),
    (signature.sign(SECRET, BODY).upper().replace("SHA256", "sha256"), SECRET, BODY, "valid"),
    (" " + signature.sign(SECRET, BODY) + " ", SECRET, BODY, "valid"),
    (signature.sign(SECRET, BODY), "other", BODY, "forged"),
    (signature.sign(SECRET, BODY), SECRET, BODY + b" ", "forged"),
    (signature.sign(SECRET, b""), SECRET, b"", "valid"),
    ("md5=" + "0" * 32, SECRET, BODY, "forged"),
    ("sha256", SECRET, BODY, "forged"),
    ("sha256=", SECRET, BODY, "forged"),
    ("sha256=zz\u00e9", SECRET, BODY, "forged"),
    (signature.sign(SECRET, BODY), "", BODY, "forged"),
], ids=["absent", "sha1", "sha256", "sha384", "sha512", "hex-upper", "spaces", "wrong-secret",
        "wrong-body", "empty-body", "unknown-method", "no-digest", "empty-digest",
        "non-ascii", "no-secret"])
def test_signature_check(header: str | None, secret: str, body: bytes, verdict: str) -> None:
    assert signature.check(header, secret, body) == verdict


FEED = "https://news.example.org/live/summit.atom"
HUB = "https://hub.example.org/"


@pytest.mark.parametrize(("link", "body", "expected"), [
    (None, b'<feed xmlns="http://www.w3.org/2005/Atom"><link rel="hub" href="https://hub'
     b'.example.org/"/><link rel="self" href="https://news.example.org/self.atom"/>',
     Advert(HUB, "https://news.example.org/self.atom")),
    (None, b"<feed><link href='https://hub.example.org/' rel='hub' /></feed>",
     Advert(HUB, FEED)),
    (None, b'<rss><channel><atom:link rel="hub" href="https://hub.example.org/" />'
     b'<atom:link rel="self" type="application/rss+xml" href="https://news.example.org/r"/>',
     Advert(HUB, "https://news.example.org/r")),
    (None, b'<html><head><LINK REL="hub" HREF="/hub?a=1&amp;b=2"></head></html>',
     Advert("https://news.example.org/hub?a=1&b=2", FEED)),
    (None, b'<feed><link rel="alternate self" href="https://x.example/t"/>'
     b'<link rel="hub" href="https://hub.example.org/"/></feed>',
     Advert(HUB, "https://x.example/t")),
    ('<https://hub.example.org/>; rel="hub", <https://news.example.org/t>; rel="self"', None,
     Advert(HUB, "https://news.example.org/t")),
    ("<https://hub.example.org/>; rel=hub", b"", Advert(HUB, FEED)),
    ('<https://hub.example.org/>; rel="hub"',
     b'<feed><link rel="hub" href="https://other.example/"/>'
     b'<link rel="self" href="https://news.example.org/b"/></feed>',
     Advert(HUB, "https://news.example.org/b")),  # the header's hub first; self from the body
    ('<https://news.example.org/x>; rel="alternate"', b"<feed></feed>", None),
    (None, b'<feed><link rel="hub" href="ftp://hub.example.org/"/></feed>', None),
    (None, b'<feed><link rel="alternate" href="https://hub.example.org/"/></feed>', None),
    (None, b"<feed>" + b" " * discovery.SCAN_BYTES + b'<link rel="hub" href="https://h/"/>', None),
    (None, None, None),
], ids=["atom", "atom-single-quotes", "rss-atom-link", "html-relative-entities",
        "multiple-rels", "link-header", "link-header-token-rel", "header-before-body",
        "no-hub-header", "not-http", "no-hub-rel", "past-64KB", "nothing"])
def test_hub_discovery(link: str | None, body: bytes | None, expected: Advert | None) -> None:
    assert discovery.discover(FEED, link, body) == expected


# --- real parts --------------------------------------------------------------------------------


def atom(items: list[Item], *, hub: str | None, self_url: str | None = None) -> str:
    """An Atom feed, newest entry first, advertising `hub` (and `self_url`)."""
    links = ""
    if hub:
        links += f"<link rel=\"hub\" href={quoteattr(hub)}/>"
    if self_url:
        links += f"<link rel=\"self\" href={quoteattr(self_url)}/>"
    entries = "".join(
        f"<entry><id>urn:lw:{escape(i.guid)}</id><title>{escape(i.title)}</title>"
        f"<link href=\"https://news.example.org/live#{escape(i.guid)}\"/>"
        f"<updated>{(T0 + timedelta(minutes=i.minute)).isoformat()}</updated>"
        f"<content type=\"html\">{escape(i.html)}</content></entry>"
        for i in sorted(items, key=lambda i: i.minute, reverse=True))
    return ('<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
            f"<title>Summit</title><id>urn:lw:summit</id><updated>{T0.isoformat()}</updated>"
            f"{links}{entries}</feed>")


def config_for(feeds: FeedServer, hook: WebhookReceiver, *, port: int,
               callback_port: int | None = None, lease: str = "10d",
               names: tuple[str, ...] = ("summit",), extra: str = "") -> str:
    feed_lines = "\n".join(f'  - {{name: {n}, url: "{feeds.url("/" + n)}"}}' for n in names)
    return f"""
redis: {{url: "redis://127.0.0.1:1/0"}}
defaults: {{interval: 60s, jitter: 0s, timeout: 3s}}
websub:
  callback_url: "http://127.0.0.1:{callback_port or port}/websub"
  listen: "127.0.0.1:{port}"
  lease: {lease}
feeds:
{feed_lines}
rules:
  - {{name: coalition, any: ["{PHRASE}"], channels: [hook]}}
channels:
  - {{name: hook, type: webhook, url: "{hook.url('/alerts')}"}}
workers: {{claim_idle: 2s, retry_schedule: [100ms]}}
{extra}"""


@dataclass
class Node:
    """One poller process's parts, in this test's process: scheduler, push, workers."""

    config: Config
    scheduler: FeedScheduler
    push: WebSubSubscriber

    @property
    def port(self) -> int:
        address = self.config.websub.address
        assert address is not None
        return address[1]


@contextlib.asynccontextmanager
async def node(config: Config, client: aioredis.Redis, *, workers: bool = True,
               min_lease: float = 300.0, body_timeout: float = 10.0) -> AsyncIterator[Node]:
    async with Fetcher.from_config(config) as fetcher:
        scheduler = FeedScheduler(config, Poller(config, make_state(config, client), fetcher))
        push = WebSubSubscriber(config, client, scheduler, min_lease=min_lease,
                                body_timeout=body_timeout)
        scheduler.poller.on_fetched = push.on_fetched
        stop = asyncio.Event()
        scheduler.start()
        await push.start()
        worker = asyncio.create_task(run_workers(config, client, stop)) if workers else None
        try:
            yield Node(config, scheduler, push)
        finally:
            stop.set()
            await push.stop()
            await scheduler.shutdown(2)
            if worker is not None:
                await worker


@pytest.fixture
def hub() -> AsyncIterator[Hub] | object:
    server = Hub()
    server.start()
    yield server
    server.stop()


def alerts(hook: WebhookReceiver) -> list[str]:
    return [b["entry"]["id"] for b in hook.bodies() if b.get("type") == "alert"]


def count(result: str) -> float:
    return REGISTRY.get_sample_value("livewatch_websub_notifications_total",
                                     {"result": result}) or 0.0


async def verified(client: aioredis.Redis, feed: str = "summit") -> dict[str, str]:
    async def done() -> bool:
        return await client.hget(keys.websub(feed), "state") == "verified"

    await wait_until(done, timeout=10, what="a verified subscription")
    return await client.hgetall(keys.websub(feed))


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), ""


def next_run_in(n: Node, feed: str = "summit") -> float:
    job = n.scheduler.scheduler.get_job(feed)
    assert job is not None and job.next_run_time is not None
    return float(job.next_run_time.timestamp() - time.time())


ITEMS = [Item("p1", "Doors open", "<p>Delegates arrive.</p>", 1)]
SCOOP = Item("p2", "Breaking", f"<p>Leaders agree a {PHRASE} plan.</p>", 2)


async def test_subscribe_verify_and_a_signed_push_alerts_within_a_second(
        redis_client: aioredis.Redis, feed_server: FeedServer,
        webhook_receiver: WebhookReceiver, hub: Hub) -> None:
    """Discovered from the Atom feed, subscribed, verified with the hub's lease; a signed
    notification's body is diffed as pushed (no fetch) and alerts long before the 60 s
    interval."""
    self_url = feed_server.url("/summit")
    feed_server.set("/summit", atom(ITEMS, hub=hub.url("/hub"), self_url=self_url),
                    content_type="application/atom+xml")
    port = free_port()
    config = parse_config(config_for(feed_server, webhook_receiver, port=port))
    async with node(config, redis_client) as n:
        state = await verified(redis_client)
        assert state["hub"] == hub.url("/hub") and state["topic"] == self_url
        assert abs(float(state["lease_until"]) - time.time() - 10 * 86400) < 30
        (request,) = hub.requested("subscribe")
        assert request["hub.lease_seconds"] == str(10 * 86400)
        assert request["hub.callback"] == f"http://127.0.0.1:{port}/websub/{state['token']}"
        assert "summit" not in request["hub.callback"]  # an opaque id, not the feed's name
        assert request["hub.secret"] == state["secret"] and len(state["secret"]) == 64
        fetches = feed_server.count("/summit")
        pushed = atom([*ITEMS, SCOOP], hub=hub.url("/hub"), self_url=self_url).encode()
        started = time.monotonic()
        assert await asyncio.to_thread(hub.publish, self_url, pushed) == [202]

        async def alerted() -> bool:
            return alerts(webhook_receiver) == ["urn:lw:p2"]

        await wait_until(alerted, timeout=5, what="the pushed post's alert")
        latency = time.monotonic() - started
        assert latency < 2.0, latency  # ~1 s target; generous on a busy VM
        assert feed_server.count("/summit") == fetches  # diffed as pushed, not fetched
        assert next_run_in(n) > 30  # polling goes on at its interval
        assert count("pushed") >= 1


async def test_link_header_discovery_and_unsigned_or_empty_notifications_poll(
        redis_client: aioredis.Redis, feed_server: FeedServer,
        webhook_receiver: WebhookReceiver, hub: Hub) -> None:
    """A hub in the `Link` header (RSS without one in the body); an unsigned notification
    and a signed empty one each poll the feed at once with a normal fetch."""
    topic = "https://news.example.org/topic/summit"
    link = f'<{hub.url("/hub")}>; rel="hub", <{topic}>; rel="self"'
    feed_server.set("/summit", rss(ITEMS), headers={"Link": link})
    config = parse_config(config_for(feed_server, webhook_receiver, port=free_port()))
    async with node(config, redis_client) as n:
        state = await verified(redis_client)
        assert state["hub"] == hub.url("/hub") and state["topic"] == topic
        callback = f"http://127.0.0.1:{n.port}/websub/{state['token']}"
        feed_server.set("/summit", rss([*ITEMS, SCOOP]), headers={"Link": link})
        fetches = feed_server.count("/summit")
        polled = count("polled")
        status = await asyncio.to_thread(post, callback, b"<rss>ignored</rss>",
                                         {"Content-Type": "application/rss+xml"})
        assert status == 202 and count("polled") == polled + 1

        async def fetched_and_alerted() -> bool:
            return feed_server.count("/summit") == fetches + 1 and \
                alerts(webhook_receiver) == ["p2"]

        await wait_until(fetched_and_alerted, timeout=5, what="an immediate poll")
        third = Item("p3", "Later", f"<p>Still the {PHRASE}.</p>", 3)
        feed_server.set("/summit", rss([*ITEMS, SCOOP, third]), headers={"Link": link})
        empty = {"X-Hub-Signature": signature.sign(state["secret"], b"")}
        assert await asyncio.to_thread(post, callback, b"", empty) == 202

        async def again() -> bool:
            return feed_server.count("/summit") == fetches + 2 and \
                alerts(webhook_receiver) == ["p2", "p3"]

        # paced: a second fetch asked for by a notification waits PUSH_FLOOR (5 s) after
        # the first (unsigned notifications are anyone's)
        await wait_until(again, timeout=10, what="a poll after an empty notification")


async def test_a_push_during_the_feeds_running_turn_is_taken_right_after_it(
        redis_client: aioredis.Redis, feed_server: FeedServer,
        webhook_receiver: WebhookReceiver, hub: Hub) -> None:
    """A notification while the feed's turn runs (a slow fetch): APScheduler skips the turn
    asked for (one instance per feed); it is asked for again, and the pushed body diffed as
    soon as the running turn ends, not an interval later."""
    self_url = feed_server.url("/summit")
    feed_server.set("/summit", atom(ITEMS, hub=hub.url("/hub"), self_url=self_url),
                    content_type="application/atom+xml")
    config = parse_config(config_for(feed_server, webhook_receiver, port=free_port()))
    async with node(config, redis_client) as n:
        state = await verified(redis_client)
        await wait_until(lambda: _true(next_run_in(n) > 30), timeout=5, what="baseline done")
        feed_server.set("/summit", atom(ITEMS, hub=hub.url("/hub"), self_url=self_url),
                        content_type="application/atom+xml", delay=1.0)
        callback = f"http://127.0.0.1:{n.port}/websub/{state['token']}"
        assert await asyncio.to_thread(post, callback, b"", {}) == 202  # a slow poll starts
        await wait_until(lambda: _true(feed_server.count("/summit") == 2), timeout=5,
                         what="the slow fetch under way")
        body = atom([*ITEMS, SCOOP], hub=hub.url("/hub"), self_url=self_url).encode()
        assert await asyncio.to_thread(hub.publish, self_url, body) == [202]

        async def alerted() -> bool:
            return alerts(webhook_receiver) == ["urn:lw:p2"]

        await wait_until(alerted, timeout=6, what="the push taken after the running turn")
        assert feed_server.count("/summit") == 2  # the pushed body, not another fetch


async def test_forged_signature_is_ignored(
        redis_client: aioredis.Redis, feed_server: FeedServer,
        webhook_receiver: WebhookReceiver, hub: Hub) -> None:
    """A wrong signature: answered 2xx, counted, no poll (the job stays at its interval),
    no event; an unknown callback is 410."""
    self_url = feed_server.url("/summit")
    feed_server.set("/summit", atom(ITEMS, hub=hub.url("/hub")),
                    content_type="application/atom+xml")
    config = parse_config(config_for(feed_server, webhook_receiver, port=free_port()))
    async with node(config, redis_client) as n:
        await verified(redis_client)
        await wait_until(lambda: _true(next_run_in(n) > 30), timeout=5, what="turn done")
        forged = count("forged")
        body = atom([*ITEMS, SCOOP], hub=hub.url("/hub")).encode()
        statuses = await asyncio.to_thread(
            hub.publish, self_url, body,
            signature=lambda sub: signature.sign("not-" + sub.secret, body))
        assert statuses == [202]
        assert count("forged") == forged + 1
        assert next_run_in(n) > 30  # no turn was started
        assert feed_server.count("/summit") == 1 and await events(redis_client) == []
        unknown = f"http://127.0.0.1:{n.port}/websub/no-such-token"
        assert await asyncio.to_thread(post, unknown, body, {}) == 410
        assert (await asyncio.to_thread(get, unknown + "?hub.mode=subscribe&hub.topic=x"
                                        "&hub.challenge=c"))[0] == 404
    assert alerts(webhook_receiver) == []


async def test_verification_only_for_the_pending_request(
        redis_client: aioredis.Redis, feed_server: FeedServer,
        webhook_receiver: WebhookReceiver, hub: Hub) -> None:
    """The challenge is echoed only for the mode and topic we asked for; a denial is not
    taken when no subscribe request is pending."""
    feed_server.set("/summit", atom(ITEMS, hub=hub.url("/hub")),
                    content_type="application/atom+xml")
    config = parse_config(config_for(feed_server, webhook_receiver, port=free_port()))
    async with node(config, redis_client) as n:
        state = await verified(redis_client)
        callback = f"http://127.0.0.1:{n.port}/websub/{state['token']}"
        topic = state["topic"]
        for query in (f"hub.mode=subscribe&hub.topic={topic}&hub.challenge=c",  # none pending
                      f"hub.mode=unsubscribe&hub.topic={topic}&hub.challenge=c",
                      "hub.mode=subscribe&hub.topic=https://other.example/&hub.challenge=c",
                      f"hub.mode=subscribe&hub.topic={topic}"):
            assert (await asyncio.to_thread(get, f"{callback}?{query}"))[0] == 404, query
        assert await asyncio.to_thread(hub.deny, topic, callback) == 404
        assert await redis_client.hget(keys.websub("summit"), "state") == "verified"
        assert await redis_client.zscore(keys.WEBSUB_DUE, "summit") is not None
        (feed,) = (await collect(redis_client, config))["feeds"]  # as `livewatch status`
        assert feed["push"]["state"] == "verified" and feed["push"]["hub"] == hub.url("/hub")
        assert feed["push"]["lease_until"] > time.time()
        out = Console(record=True, width=300)
        render(await collect(redis_client, config), out)
        assert "verified, lease ends in" in out.export_text()


async def test_lease_is_renewed_before_it_ends(
        redis_client: aioredis.Redis, feed_server: FeedServer,
        webhook_receiver: WebhookReceiver, hub: Hub) -> None:
    """The hub grants 3 s: renewed at 80% of it (same callback, same secret), again and
    again; a refused request is retried with backoff."""
    feed_server.set("/summit", atom(ITEMS, hub=hub.url("/hub")),
                    content_type="application/atom+xml")
    hub.lease_seconds = 3
    hub.refuse = 1  # the first request fails: retried after RETRY_FIRST
    config = parse_config(config_for(feed_server, webhook_receiver, port=free_port()))
    async with node(config, redis_client, workers=False, min_lease=1):
        first = await verified(redis_client)
        assert len(hub.requested("subscribe")) == 2  # the refused one and its retry
        assert float(first["lease_seconds"]) == 3

        async def renewed() -> bool:
            return len(hub.confirmed("subscribe")) >= 2

        await wait_until(renewed, timeout=6, what="the renewal")
        one, two = hub.confirmed("subscribe")[:2]
        assert 1.5 < two.at - one.at < 3.0  # at ~2.4 s of a 3 s lease
        assert one.callback == two.callback
        after = await redis_client.hgetall(keys.websub("summit"))
        assert after["secret"] == first["secret"] and after["state"] == "verified"
        assert float(after["lease_until"]) > float(first["lease_until"])
        assert len({r["hub.secret"] for r in hub.requested("subscribe")}) == 1


async def test_a_new_hub_advertised_is_subscribed_and_the_old_one_left(
        redis_client: aioredis.Redis, feed_server: FeedServer,
        webhook_receiver: WebhookReceiver, hub: Hub) -> None:
    """The feed moves to another hub: subscribed there with a new secret (same callback),
    unsubscribed from the old one; notifications signed with the old secret are forged."""
    other = Hub()
    other.start()
    try:
        feed_server.set("/summit", atom(ITEMS, hub=hub.url("/hub")),
                        content_type="application/atom+xml")
        config = parse_config(config_for(feed_server, webhook_receiver, port=free_port()))
        async with node(config, redis_client, workers=False) as n:
            first = await verified(redis_client)
            feed_server.set("/summit", atom(ITEMS, hub=other.url("/hub")),
                            content_type="application/atom+xml")
            callback = f"http://127.0.0.1:{n.port}/websub/{first['token']}"
            assert await asyncio.to_thread(post, callback, b"", {}) == 202  # poll now

            async def moved() -> bool:
                return bool(other.confirmed("subscribe")) and \
                    bool(hub.confirmed("unsubscribe")) and \
                    await redis_client.hget(keys.websub("summit"), "state") == "verified"

            await wait_until(moved, timeout=10, what="the move to the other hub")
            now = await redis_client.hgetall(keys.websub("summit"))
            assert now["hub"] == other.url("/hub") and now["token"] == first["token"]
            assert now["secret"] != first["secret"] and now["old_hub"] == ""
            assert hub.subscribers(first["topic"]) == []
            forged = count("forged")
            body = b"<feed/>"
            assert await asyncio.to_thread(post, callback, body, {
                "X-Hub-Signature": signature.sign(first["secret"], body)}) == 202
            assert count("forged") == forged + 1
    finally:
        other.stop()


async def test_reload_removing_the_feed_unsubscribes(
        redis_client: aioredis.Redis, feed_server: FeedServer,
        webhook_receiver: WebhookReceiver, hub: Hub, tmp_path: Path) -> None:
    """Through `run_pollers` (via `run_all`) and a reload from the file: the removed feed is
    unsubscribed at the hub and its subscription forgotten; the other stays."""
    for name in ("summit", "second"):
        feed_server.set(f"/{name}", atom(ITEMS, hub=hub.url("/hub"),
                                         self_url=feed_server.url(f"/{name}")),
                        content_type="application/atom+xml")
    port = free_port()
    path = tmp_path / "livewatch.yaml"
    path.write_text(config_for(feed_server, webhook_receiver, port=port,
                               names=("summit", "second")))
    control = Control(parse_config(path.read_text()), path)
    stop = asyncio.Event()
    task = asyncio.create_task(run_all(control.config, redis_client, stop, control=control))
    try:
        await verified(redis_client, "summit")
        second = await verified(redis_client, "second")
        path.write_text(config_for(feed_server, webhook_receiver, port=port, names=("summit",)))
        assert await control.reload()

        async def gone() -> bool:
            return not await redis_client.exists(keys.websub("second"))

        await wait_until(gone, timeout=10, what="the removed feed unsubscribed")
        (unsub,) = hub.confirmed("unsubscribe")
        assert unsub.topic == feed_server.url("/second")
        assert await redis_client.hget(keys.WEBSUB_CALLBACKS, second["token"]) is None
        assert await redis_client.hget(keys.websub("summit"), "state") == "verified"
        assert hub.subscribers(feed_server.url("/second")) == []
    finally:
        stop.set()
        await task


async def test_notification_to_another_poller_is_relayed_to_the_lease_holder(
        redis_client: aioredis.Redis, feed_server: FeedServer,
        webhook_receiver: WebhookReceiver, hub: Hub) -> None:
    """Two pollers on one Redis: a notification reaching the one without the feed's lease is
    relayed (pub/sub) and the holder polls the feed at once."""
    feed_server.set("/summit", atom(ITEMS, hub=hub.url("/hub")),
                    content_type="application/atom+xml")
    a_port, b_port = free_port(), free_port()
    a_config = parse_config(config_for(feed_server, webhook_receiver, port=a_port))
    b_config = parse_config(config_for(feed_server, webhook_receiver, port=b_port,
                                       callback_port=a_port))
    async with node(a_config, redis_client) as a, node(b_config, redis_client,
                                                        workers=False) as b:
        state = await verified(redis_client)
        holder_owner = await a.scheduler.leases.holder("summit")
        assert holder_owner is not None
        holder, other = (a, b) if holder_owner[0] == a.scheduler.leases.owner else (b, a)
        assert not other.scheduler.poll_now("summit", only_if_held=True)
        feed_server.set("/summit", atom([*ITEMS, SCOOP], hub=hub.url("/hub")),
                        content_type="application/atom+xml")
        fetches = feed_server.count("/summit")
        relayed = REGISTRY.get_sample_value("livewatch_websub_relayed_total") or 0.0
        body = b"<feed/>"
        callback = f"http://127.0.0.1:{other.port}/websub/{state['token']}"
        assert await asyncio.to_thread(post, callback, body, {
            "X-Hub-Signature": signature.sign(state["secret"], body),
            "Content-Type": "application/atom+xml"}) == 202
        assert REGISTRY.get_sample_value("livewatch_websub_relayed_total") == relayed + 1

        async def polled() -> bool:
            return feed_server.count("/summit") == fetches + 1 and \
                alerts(webhook_receiver) == ["urn:lw:p2"]

        await wait_until(polled, timeout=5, what="the holder's poll")
        assert next_run_in(other) > 30  # the other poller did not poll it
        assert (await holder.scheduler.leases.holder("summit") or ("",))[0] == holder_owner[0]


async def test_subscriptions_are_shared_through_redis(
        redis_client: aioredis.Redis, feed_server: FeedServer,
        webhook_receiver: WebhookReceiver, hub: Hub) -> None:
    """A restarted poller keeps the verified subscription: no new request, same callback."""
    feed_server.set("/summit", atom(ITEMS, hub=hub.url("/hub")),
                    content_type="application/atom+xml")
    config = parse_config(config_for(feed_server, webhook_receiver, port=free_port()))
    async with node(config, redis_client, workers=False):
        first = await verified(redis_client)
    feed_server.set("/summit", atom([*ITEMS, Item("p9", "Later", "<p>x</p>", 9)],
                                    hub=hub.url("/hub")),
                    content_type="application/atom+xml")  # a body for push to look at
    async with node(config, redis_client, workers=False) as n:
        # the fetch seen by push, and its background work done: a resubscribe would show
        await wait_until(lambda: _true("summit" in n.push._adverts and not n.push._tasks),
                         timeout=5, what="the restarted poller's fetch taken by push")
        assert len(hub.requested("subscribe")) == 1
        sub = await Subscriptions(redis_client).get("summit")
        assert sub is not None and sub.token == first["token"] and sub.state == "verified"
        assert "secret" not in repr(sub) and first["secret"] not in repr(sub)


@pytest.mark.slow
async def test_livewatch_run_takes_a_signed_push(
        redis_server: EmbeddedRedis, redis_client: aioredis.Redis, feed_server: FeedServer,
        webhook_receiver: WebhookReceiver, hub: Hub, tmp_path: Path,
        running: list[Service]) -> None:
    """End to end through `livewatch run`: subscribe, verify, a pushed post alerted."""
    self_url = feed_server.url("/summit")
    feed_server.set("/summit", atom(ITEMS, hub=hub.url("/hub"), self_url=self_url),
                    content_type="application/atom+xml")
    path = tmp_path / "livewatch.yaml"
    path.write_text(config_for(feed_server, webhook_receiver, port=free_port()).replace(
        'redis://127.0.0.1:1/0', redis_server.url))
    service = Service(["run", "--config", str(path)], tmp_path / "service.log")
    running.append(service)
    service.start()

    async def subscribed() -> bool:
        return bool(hub.subscribers(self_url))

    await wait_until(subscribed, timeout=30, what="the hub's subscription", service=service)
    body = atom([*ITEMS, SCOOP], hub=hub.url("/hub"), self_url=self_url).encode()
    assert await asyncio.to_thread(hub.publish, self_url, body) == [202]

    async def alerted() -> bool:
        return alerts(webhook_receiver) == ["urn:lw:p2"]

    await wait_until(alerted, timeout=10, what="the pushed alert", service=service)
    assert service.stop() == 0
    logs = service.logs()
    assert "websub subscription verified" in logs
    assert (await redis_client.hgetall(keys.websub("summit")))["secret"] not in logs


async def _true(value: bool) -> bool:
    return value
