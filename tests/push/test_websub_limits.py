"""WebSub hardening against a hub of our own (tests/hub.py) on 127.0.0.1 and a real
redis-server: the callback server's limits, lease validation, claims that survive a crash,
denials, redirects and 2xx answers, the secret over plain http, a hub missing from one fetch,
and two pollers subscribing at once."""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request

import pytest
import redis.asyncio as aioredis
from feeds import Item
from hub import Hub
from prometheus_client import REGISTRY
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from servers import FeedServer, WebhookReceiver
from service import wait_until
from structlog.testing import capture_logs
from test_websub import ITEMS, _true, atom, config_for, node, post, verified
from test_websub import hub as hub  # the fixture

from monitor.config.loader import parse_config
from monitor.core import keys
from monitor.fetch.client import Fetcher, FetchResult
from monitor.fetch.netpolicy import NetworkPolicy
from monitor.ops.embedded import free_port
from monitor.poll.poller import Poller
from monitor.poll.role import make_state
from monitor.poll.scheduler import FeedScheduler
from monitor.push import websub
from monitor.push.store import CLAIM_GRACE, Subscription, Subscriptions
from monitor.push.websub import WebSubSubscriber


def _url(client: aioredis.Redis) -> str:
    kwargs = client.connection_pool.connection_kwargs
    return f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs.get('db', 0)}"


def get(url: str) -> tuple[int, str, dict[str, str]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        with exc:
            return int(exc.code), "", dict(exc.headers)


def requests(mode: str, result: str) -> float:
    return REGISTRY.get_sample_value("livewatch_websub_requests_total",
                                     {"mode": mode, "result": result}) or 0.0


async def pending(client: aioredis.Redis, hub: Hub) -> dict[str, str]:
    """The subscription once its subscribe request reached the hub (which never verifies)."""
    async def asked() -> bool:
        return bool(hub.requested("subscribe")) and \
            await client.hget(keys.websub("summit"), "requested") == "subscribe"

    await wait_until(asked, timeout=10, what="a pending subscribe request")
    return await client.hgetall(keys.websub("summit"))


def serve(feed_server: FeedServer, hub: Hub) -> None:
    feed_server.set("/summit", atom(ITEMS, hub=hub.url("/hub")),
                    content_type="application/atom+xml")


async def test_slow_notification_bodies_are_bounded(
        redis_client: aioredis.Redis, feed_server: FeedServer,
        webhook_receiver: WebhookReceiver, hub: Hub) -> None:
    """MAX_READING bodies trickling in hold every reading slot: one more notification is
    503 with Retry-After (not queued); each slow one is 408 at the body deadline; then a
    notification is taken again."""
    serve(feed_server, hub)
    config = parse_config(config_for(feed_server, webhook_receiver, port=free_port()))
    async with node(config, redis_client, workers=False, body_timeout=1.5) as n:
        state = await verified(redis_client)
        path = f"/websub/{state['token']}"
        slow = []
        for _ in range(websub.MAX_READING):
            reader, writer = await asyncio.open_connection("127.0.0.1", n.port)
            writer.write(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         "Content-Length: 100\r\n\r\n0123456789".encode())
            await writer.drain()
            slow.append((reader, writer))
        await wait_until(lambda: _true(n.push._reading.locked()), timeout=5,
                         what="every reading slot taken")
        callback = f"http://127.0.0.1:{n.port}{path}"
        request = urllib.request.Request(callback, data=b"", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            await asyncio.to_thread(urllib.request.urlopen, request, timeout=5)
        refused.value.close()
        assert refused.value.code == 503 and refused.value.headers["Retry-After"]
        for reader, writer in slow:
            line = await asyncio.wait_for(reader.readline(), 5)
            assert line.startswith(b"HTTP/1.1 408"), line
            writer.close()
            await writer.wait_closed()
        assert await asyncio.to_thread(post, callback, b"", {}) == 202


@pytest.mark.parametrize("lease", [None, "inf", "nan", "-5", "abc", "1e9", ""])
async def test_a_garbage_lease_refuses_the_verification(
        lease: str | None, redis_client: aioredis.Redis, feed_server: FeedServer,
        webhook_receiver: WebhookReceiver, hub: Hub) -> None:
    """`hub.lease_seconds` must be a positive integer: else 404 and the request stays
    pending; `1` is then taken, clamped to 300 s, the challenge sent with nosniff."""
    serve(feed_server, hub)
    hub.verify = False
    config = parse_config(config_for(feed_server, webhook_receiver, port=free_port()))
    async with node(config, redis_client, workers=False) as n:
        state = await pending(redis_client, hub)
        callback = f"http://127.0.0.1:{n.port}/websub/{state['token']}"
        query = urllib.parse.urlencode({"hub.mode": "subscribe", "hub.topic": state["topic"],
                                        "hub.challenge": "c0ffee"})
        bad = query if lease is None else f"{query}&hub.lease_seconds={lease}"
        assert (await asyncio.to_thread(get, f"{callback}?{bad}"))[0] == 404
        assert await redis_client.hget(keys.websub("summit"), "state") == "pending"
        status, body, headers = await asyncio.to_thread(
            get, f"{callback}?{query}&hub.lease_seconds=1")
        assert (status, body) == (200, "c0ffee")
        assert headers["X-Content-Type-Options"] == "nosniff"
        now = await redis_client.hgetall(keys.websub("summit"))
        assert now["state"] == "verified" and float(now["lease_seconds"]) == 300


def test_granted_lease_is_clamped() -> None:
    assert websub.granted_lease("1") == websub.MIN_LEASE
    assert websub.granted_lease("999999999999") == websub.MAX_LEASE
    assert websub.granted_lease("86400") == 86400
    for garbage in (None, "", "inf", "nan", "-5", "abc", "0", "1.5", " 5", "1_000"):
        assert websub.granted_lease(garbage) is None, garbage


async def test_a_claim_moves_the_due_time_forward_and_creation_is_once(
        redis_client: aioredis.Redis) -> None:
    """A claimed feed stays in the due set (due again after CLAIM_GRACE if its work never
    reschedules it, e.g. a crash); one claimer wins. A subscription is created once: a
    second creator gets the first one's secret and token."""
    store = Subscriptions(redis_client)
    now = time.time()
    first = Subscription(feed="summit", hub="https://hub.example/", topic="https://t.example/",
                         token="tok-a", secret="a" * 64)
    assert await store.create(first, due=now - 1) == first
    other = Subscription(feed="summit", hub="https://hub.example/", topic="https://t.example/",
                         token="tok-b", secret="b" * 64)
    kept = await store.create(other, due=now + 5)
    assert (kept.secret, kept.token) == (first.secret, first.token)
    assert await redis_client.hget(keys.WEBSUB_CALLBACKS, "tok-b") is None
    assert await store.claim("summit", now)
    assert not await store.claim("summit", now)  # one claimer only
    due = await redis_client.zscore(keys.WEBSUB_DUE, "summit")
    assert due is not None and abs(due - (now + CLAIM_GRACE)) < 1
    assert await store.claim("summit", now + CLAIM_GRACE)  # due again later
    assert not await store.schedule_if_absent("summit", now)
    await redis_client.zrem(keys.WEBSUB_DUE, "summit")
    assert await store.schedule_if_absent("summit", now)


async def test_a_subscription_without_a_due_entry_gets_one_back(
        redis_client: aioredis.Redis, feed_server: FeedServer,
        webhook_receiver: WebhookReceiver, hub: Hub) -> None:
    """A verified subscription whose due entry was lost is scheduled again (at its renewal)
    when a poller next sees the feed's hub, with no new request."""
    serve(feed_server, hub)
    config = parse_config(config_for(feed_server, webhook_receiver, port=free_port()))
    async with node(config, redis_client, workers=False):
        state = await verified(redis_client)
    await redis_client.zrem(keys.WEBSUB_DUE, "summit")
    feed_server.set("/summit", atom([*ITEMS, Item("p9", "Later", "<p>x</p>", 9)],
                                    hub=hub.url("/hub")),
                    content_type="application/atom+xml")  # fetched with a body again
    async with node(config, redis_client, workers=False):
        async def back() -> bool:
            return await redis_client.zscore(keys.WEBSUB_DUE, "summit") is not None

        await wait_until(back, timeout=5, what="the due entry put back")
        due = await redis_client.zscore(keys.WEBSUB_DUE, "summit")
        assert due is not None and due > time.time() + 86400  # at 80% of the 10 d lease
        assert due < float(state["lease_until"])
        assert len(hub.requested("subscribe")) == 1


async def test_a_denial_is_taken_only_while_subscribing_and_retried_later(
        redis_client: aioredis.Redis, feed_server: FeedServer,
        webhook_receiver: WebhookReceiver, hub: Hub) -> None:
    serve(feed_server, hub)
    hub.verify = False
    config = parse_config(config_for(feed_server, webhook_receiver, port=free_port()))
    async with node(config, redis_client, workers=False) as n:
        state = await pending(redis_client, hub)
        callback = f"http://127.0.0.1:{n.port}/websub/{state['token']}"
        assert await asyncio.to_thread(hub.deny, "https://other.example/", callback) == 404
        assert await asyncio.to_thread(hub.deny, state["topic"], callback) == 200
        now = await redis_client.hgetall(keys.websub("summit"))
        assert now["state"] == "denied" and now["denied"] == "not allowed"
        due = await redis_client.zscore(keys.WEBSUB_DUE, "summit")
        assert due is not None and abs(due - time.time() - websub.DENIED_RETRY) < 30
        assert await asyncio.to_thread(hub.deny, state["topic"], callback) == 404  # once


async def test_a_redirecting_hub_answering_200_is_subscribed(
        redis_client: aioredis.Redis, feed_server: FeedServer,
        webhook_receiver: WebhookReceiver, hub: Hub) -> None:
    """A 307 is followed once (to the hub's Location); a 200 counts as accepted (no retry);
    the loopback http hub gets the secret."""
    serve(feed_server, hub)
    hub.redirect, hub.status = "/hub/real", 200
    accepted, failed = requests("subscribe", "accepted"), requests("subscribe", "failed")
    config = parse_config(config_for(feed_server, webhook_receiver, port=free_port()))
    async with node(config, redis_client, workers=False):
        state = await verified(redis_client)
        await wait_until(lambda: _true(requests("subscribe", "accepted") == accepted + 1),
                         timeout=5, what="the request counted as accepted")
        assert requests("subscribe", "failed") == failed
        assert hub.paths == ["/hub", "/hub/real"]
        (request,) = hub.requested("subscribe")
        assert request["hub.secret"] == state["secret"]
        assert hub.confirmed()[0].headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(("hub_url", "allow_private", "sent"), [
    ("https://hub.example.org/", False, True),
    ("http://hub.example.org/", True, False),
    ("http://93.184.216.34/", True, False),
    ("http://127.0.0.1:8080/hub", True, True),
    ("http://[::1]/hub", True, True),
    ("http://10.1.2.3/hub", True, True),
    ("http://localhost/hub", True, True),
    ("http://127.0.0.1/hub", False, False),
])
def test_the_secret_goes_only_where_it_is_not_in_clear_text(
        hub_url: str, allow_private: bool, sent: bool) -> None:
    assert websub.may_send_secret(hub_url, NetworkPolicy.of(allow_private, [])) is sent


async def test_one_fetch_without_the_hub_does_not_unsubscribe(
        redis_client: aioredis.Redis, feed_server: FeedServer,
        webhook_receiver: WebhookReceiver, hub: Hub) -> None:
    """Two fetches with a body and no hub leave the subscription; the third in a row
    unsubscribes."""
    serve(feed_server, hub)
    config = parse_config(config_for(feed_server, webhook_receiver, port=free_port()))
    async with node(config, redis_client, workers=False) as n:
        await verified(redis_client)
        feed = config.feed("summit")

        def fetched(i: int) -> None:
            n.push.on_fetched(feed, FetchResult(
                url=feed.url, status=200, body=f"<feed><id>{i}</id></feed>".encode(),
                content_type="application/atom+xml", etag=None, last_modified=None,
                not_modified=False, elapsed=0.0))

        for i in range(2):
            fetched(i)
        await wait_until(lambda: _true(not n.push._tasks), timeout=5, what="push settled")
        assert hub.requested("unsubscribe") == []
        assert await redis_client.hget(keys.websub("summit"), "state") == "verified"
        fetched(99)
        await wait_until(lambda: _true(bool(hub.requested("unsubscribe"))), timeout=5,
                         what="the unsubscribe request")


async def test_two_pollers_subscribing_at_once_share_one_secret(
        redis_client: aioredis.Redis, feed_server: FeedServer,
        webhook_receiver: WebhookReceiver, hub: Hub) -> None:
    """Two pollers see the hub at the same moment: one subscription, one secret, and every
    request sent carries the stored secret."""
    feed_server.set("/summit", atom(ITEMS, hub=None), content_type="application/atom+xml")
    a_port, b_port = free_port(), free_port()
    a_config = parse_config(config_for(feed_server, webhook_receiver, port=a_port))
    b_config = parse_config(config_for(feed_server, webhook_receiver, port=b_port,
                                       callback_port=a_port))
    async with node(a_config, redis_client, workers=False) as a:
        await wait_until(lambda: _true(feed_server.count("/summit") >= 1), timeout=5,
                         what="the first poll")
        # a client of its own, connected: both pollers read the (absent) subscription
        # before either writes it
        b_client: aioredis.Redis = aioredis.from_url(_url(redis_client), decode_responses=True)
        await b_client.ping()
        await redis_client.ping()
        b = WebSubSubscriber(b_config, b_client, a.scheduler)
        await b.start()
        try:
            feed = a_config.feed("summit")
            body = atom(ITEMS, hub=hub.url("/hub")).encode()
            result = FetchResult(url=feed.url, status=200, body=body,
                                 content_type="application/atom+xml", etag=None,
                                 last_modified=None, not_modified=False, elapsed=0.0)
            a.push.on_fetched(feed, result)
            b.on_fetched(feed, result)
            state = await verified(redis_client)
            await wait_until(lambda: _true(not a.push._tasks and not b._tasks), timeout=5,
                             what="push settled")
            assert {r["hub.secret"] for r in hub.requested("subscribe")} == {state["secret"]}
            assert len(await redis_client.hgetall(keys.WEBSUB_CALLBACKS)) == 1
        finally:
            await b.stop()
            await b_client.aclose()


async def test_redis_unavailable_is_logged_once_a_minute(
        feed_server: FeedServer, webhook_receiver: WebhookReceiver) -> None:
    """With Redis down, every callback is 503, and the warning is logged once (not once per
    request: a hub retrying, or anyone, cannot flood the log)."""
    config = parse_config(config_for(feed_server, webhook_receiver, port=free_port()))
    dead = aioredis.Redis(host="127.0.0.1", port=free_port(), decode_responses=True,
                          socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    async with Fetcher.from_config(config) as fetcher:
        scheduler = FeedScheduler(config, Poller(config, make_state(config, dead), fetcher))
        push = WebSubSubscriber(config, dead, scheduler)
        await push.start()
        try:
            address = push.settings.address
            assert address is not None
            callback = f"http://127.0.0.1:{address[1]}/websub/some-token"
            with capture_logs() as logs:
                for _ in range(3):
                    assert await asyncio.to_thread(post, callback, b"", {}) == 503
                    assert (await asyncio.to_thread(
                        get, f"{callback}?hub.mode=subscribe&hub.topic=t&hub.challenge=c"
                    ))[0] == 503
            warned = [e for e in logs if e["log_level"] == "warning"]
            assert len(warned) == 1, warned
        finally:
            await push.stop()
            await dead.aclose()
