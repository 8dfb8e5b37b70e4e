"""monitor.poll.poller against a real redis-server and the local FeedServer; no mocks, no sleeps."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from feeds import Item, rss
from servers import FeedServer
from service import events, poller_for

from monitor.config.loader import parse_config
from monitor.config.models import Config
from monitor.core import keys
from monitor.fetch.client import Fetcher
from monitor.ops.embedded import free_port
from monitor.poll.cadence import backoff_delay
from monitor.poll.poller import Poller
from monitor.poll.role import make_state

PATH = "/live.rss"

ITEMS = [Item("p1", "Doors open", "<p>Delegates are arriving.</p>", 1),
         Item("p2", "First speech", "<p>The chair opens the summit.</p>", 2),
         Item("p3", "Press pool", "<p>Cameras wait outside.</p>", 3)]


def make_config(server: FeedServer, *, backfill: int = 0, path: str = PATH,
                url: str | None = None, timeout: str = "3s") -> Config:
    return parse_config(f"""
redis: {{url: "redis://127.0.0.1:1/0"}}
defaults: {{interval: 10s, timeout: {timeout}, max_body: 64KB}}
feeds:
  - {{name: live, url: "{url or server.url(path)}", backfill: {backfill}}}
""")




def request_headers(server: FeedServer, path: str = PATH) -> list[dict[str, str]]:
    with server.lock:
        return [{k.lower(): v for k, v in h.items()} for p, h in server.requests if p == path]


async def test_first_poll_is_a_baseline(redis_client: aioredis.Redis, feed_server: FeedServer,
                                        fetcher: Fetcher) -> None:
    feed_server.set(PATH, rss(ITEMS))
    config = make_config(feed_server)
    outcome = await poller_for(config, redis_client, fetcher).poll(config.feed("live"))
    assert (outcome.status, outcome.new, outcome.updated, outcome.entries) == ("baseline", 0, 0, 3)
    assert outcome.kind == "rss" and outcome.error is None
    assert await events(redis_client) == []
    assert set(await redis_client.hkeys(keys.fingerprints("live"))) == {"p1", "p2", "p3"}
    assert await redis_client.hget(keys.meta("live"), "baselined") == "1"
    health = await make_state(config, redis_client).health("live")
    assert health.last_status == "ok" and health.consecutive_failures == 0


async def test_backfill_emits_the_newest_entries(redis_client: aioredis.Redis,
                                                 feed_server: FeedServer,
                                                 fetcher: Fetcher) -> None:
    feed_server.set(PATH, rss(ITEMS))
    config = make_config(feed_server, backfill=2)
    outcome = await poller_for(config, redis_client, fetcher).poll(config.feed("live"))
    assert (outcome.status, outcome.new) == ("baseline", 2)
    assert [(e.kind, e.entry.id) for e in await events(redis_client)] == [
        ("new", "p2"), ("new", "p3")]


async def test_same_body_again_is_not_modified(redis_client: aioredis.Redis,
                                               feed_server: FeedServer,
                                               fetcher: Fetcher) -> None:
    feed_server.set(PATH, rss(ITEMS))
    etag = feed_server.documents[PATH].etag
    config = make_config(feed_server)
    poller = poller_for(config, redis_client, fetcher)
    assert (await poller.poll(config.feed("live"))).status == "baseline"
    assert await redis_client.hget(keys.meta("live"), "etag") == etag
    outcome = await poller.poll(config.feed("live"))
    assert outcome.status == "not_modified"
    first, second = request_headers(feed_server)
    assert "if-none-match" not in first  # nothing to validate against before the baseline
    assert second["if-none-match"] == etag
    assert await events(redis_client) == []
    assert (await make_state(config, redis_client).health("live")).last_status == "not_modified"


async def test_same_body_without_etag_is_unchanged_by_hash(
        redis_client: aioredis.Redis, feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.set(PATH, rss(ITEMS), send_etag=False)
    config = make_config(feed_server)
    poller = poller_for(config, redis_client, fetcher)
    assert (await poller.poll(config.feed("live"))).status == "baseline"
    assert await redis_client.hget(keys.meta("live"), "etag") is None
    outcome = await poller.poll(config.feed("live"))
    assert outcome.status == "unchanged"
    assert all("if-none-match" not in h for h in request_headers(feed_server))
    assert feed_server.count(PATH) == 2
    assert await events(redis_client) == []


async def test_new_entry_is_one_event(redis_client: aioredis.Redis, feed_server: FeedServer,
                                      fetcher: Fetcher) -> None:
    feed_server.set(PATH, rss(ITEMS))
    config = make_config(feed_server)
    poller = poller_for(config, redis_client, fetcher)
    await poller.poll(config.feed("live"))
    feed_server.set(PATH, rss([*ITEMS, Item("p4", "Breaking", "<p>A deal is announced.</p>", 4)]))
    outcome = await poller.poll(config.feed("live"))
    assert (outcome.status, outcome.new, outcome.updated, outcome.entries) == ("changed", 1, 0, 4)
    (event,) = await events(redis_client)
    assert (event.kind, event.feed, event.entry.id) == ("new", "live", "p4")
    assert event.feed_url == feed_server.url(PATH)
    assert event.entry.text == "A deal is announced." and event.previous_text is None
    # Polling the same document again finds nothing more.
    assert (await poller.poll(config.feed("live"))).status == "not_modified"
    assert len(await events(redis_client)) == 1


async def test_edit_is_an_updated_event_with_previous_text(
        redis_client: aioredis.Redis, feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.set(PATH, rss(ITEMS))
    config = make_config(feed_server)
    poller = poller_for(config, redis_client, fetcher)
    await poller.poll(config.feed("live"))
    edited = [ITEMS[0], Item("p2", "First speech", "<p>The chair opens the summit early.</p>", 2),
              ITEMS[2]]
    feed_server.set(PATH, rss(edited))
    outcome = await poller.poll(config.feed("live"))
    assert (outcome.status, outcome.new, outcome.updated) == ("changed", 0, 1)
    (event,) = await events(redis_client)
    assert (event.kind, event.entry.id) == ("updated", "p2")
    assert event.entry.text == "The chair opens the summit early."
    assert event.previous_text == "The chair opens the summit."
    assert event.previous_title == "First speech"


async def test_http_error_counts_failures_until_a_good_poll(
        redis_client: aioredis.Redis, feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.set(PATH, "server on fire", status=500, content_type="text/plain",
                    headers={"Retry-After": "120"})
    config = make_config(feed_server)
    state = make_state(config, redis_client)
    poller = poller_for(config, redis_client, fetcher)
    for streak in (1, 2):
        outcome = await poller.poll(config.feed("live"))
        assert outcome.status == "error" and outcome.error == "HTTP 500"
        assert outcome.consecutive_failures == streak and outcome.retry_after == 120.0
        health = await state.health("live")
        assert (health.consecutive_failures, health.total_failures) == (streak, streak)
        assert health.last_status == "error" and health.last_error == "HTTP 500"
    assert await redis_client.hget(keys.meta("live"), "baselined") is None

    feed_server.set(PATH, rss(ITEMS))
    assert (await poller.poll(config.feed("live"))).status == "baseline"
    health = await state.health("live")
    assert (health.consecutive_failures, health.total_failures) == (0, 2)
    assert health.last_status == "ok" and health.last_error is None
    assert health.last_success is not None


async def test_invalid_xml_is_an_error(redis_client: aioredis.Redis, feed_server: FeedServer,
                                       fetcher: Fetcher) -> None:
    feed_server.set(PATH, rss(ITEMS))
    config = make_config(feed_server)
    poller = poller_for(config, redis_client, fetcher)
    await poller.poll(config.feed("live"))
    feed_server.set(PATH, "<rss><channel><item><title>unclosed")
    outcome = await poller.poll(config.feed("live"))
    assert outcome.status == "error" and outcome.consecutive_failures == 1
    assert outcome.error and "feed" in outcome.error
    assert await events(redis_client) == []
    # The broken body was not recorded: once the feed is fixed, the same document is unchanged.
    feed_server.set(PATH, rss(ITEMS), send_etag=False)
    assert (await poller.poll(config.feed("live"))).status == "unchanged"
    assert (await make_state(config, redis_client).health("live")).consecutive_failures == 0


@pytest.mark.parametrize(("body", "kwargs", "reason"), [
    ("missing", {"status": 404, "content_type": "text/plain"}, "HTTP 404"),
    ("<html><body>Live</body></html>", {"content_type": "text/html"}, "HTML page"),
    ("", {}, "empty document"),
    ('{"version": "nope"}', {"content_type": "application/json"}, "not a feed"),
    ("x" * (70 * 1024), {"content_type": "text/plain"}, "exceeds"),
    (rss(ITEMS), {"trickle": 0.2}, "timed out"),
])
async def test_failing_feeds_never_raise(redis_client: aioredis.Redis, feed_server: FeedServer,
                                         fetcher: Fetcher, body: str, kwargs: dict[str, object],
                                         reason: str) -> None:
    feed_server.set(PATH, body, **kwargs)  # type: ignore[arg-type]
    config = make_config(feed_server, timeout="300ms" if "trickle" in kwargs else "3s")
    outcome = await poller_for(config, redis_client, fetcher).poll(config.feed("live"))
    assert outcome.status == "error" and outcome.consecutive_failures == 1
    assert outcome.error is not None and reason in outcome.error
    assert not await redis_client.exists(keys.EVENTS_STREAM)


async def test_unreachable_host_and_redis_do_not_raise(redis_client: aioredis.Redis,
                                                       feed_server: FeedServer,
                                                       fetcher: Fetcher) -> None:
    port = free_port()
    config = make_config(feed_server, url=f"http://127.0.0.1:{port}/feed")
    outcome = await poller_for(config, redis_client, fetcher).poll(config.feed("live"))
    assert outcome.status == "error" and "connection failed" in (outcome.error or "")
    assert outcome.consecutive_failures == 1

    # Redis itself down: the poll still reports instead of raising (streak unknown: 0).
    feed_server.set(PATH, rss(ITEMS))
    config = make_config(feed_server)
    dead: aioredis.Redis = aioredis.from_url(f"redis://127.0.0.1:{free_port()}/0",
                                             decode_responses=True)
    try:
        outcome = await poller_for(config, dead, fetcher).poll(config.feed("live"))
    finally:
        await dead.aclose()
    assert outcome.status == "error" and outcome.consecutive_failures == 0
    assert "cannot read state" in (outcome.error or "")
    assert feed_server.count(PATH) == 0


async def test_concurrent_polls_after_a_change_emit_one_event(
        redis_client: aioredis.Redis, feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.set(PATH, rss(ITEMS))
    config = make_config(feed_server)
    state = make_state(config, redis_client)
    pollers = [Poller(config, state, fetcher), poller_for(config, redis_client, fetcher)]
    await pollers[0].poll(config.feed("live"))
    feed_server.set(PATH, rss([*ITEMS, Item("p4", "Breaking", "<p>A deal.</p>", 4)]))
    outcomes = await asyncio.gather(
        pollers[0].poll(config.feed("live")), pollers[0].poll(config.feed("live")),
        pollers[1].poll(config.feed("live")))
    # a poll that reads the state after another one committed finds nothing new: "unchanged"
    assert all(o.status in ("changed", "unchanged", "not_modified") for o in outcomes), outcomes
    assert sum(o.new for o in outcomes) == 1, outcomes
    assert [(e.kind, e.entry.id) for e in await events(redis_client)] == [("new", "p4")]


async def test_concurrent_first_polls_baseline_once(
        redis_client: aioredis.Redis, feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.set(PATH, rss(ITEMS))
    config = make_config(feed_server, backfill=1)
    poller = poller_for(config, redis_client, fetcher)
    outcomes = await asyncio.gather(*(poller.poll(config.feed("live")) for _ in range(3)))
    assert sorted(o.status for o in outcomes).count("baseline") == 1, outcomes
    assert all(o.status in ("baseline", "unchanged", "not_modified") for o in outcomes), outcomes
    assert [e.entry.id for e in await events(redis_client)] == ["p3"]


@pytest.mark.parametrize(("interval", "failures", "max_backoff", "retry_after", "expected"), [
    (60, 0, 1800, None, 60),        # no failure: the interval
    (60, 1, 1800, None, 60),        # first failure: one interval
    (60, 2, 1800, None, 120),       # then doubling
    (60, 3, 1800, None, 240),
    (60, 5, 1800, None, 960),
    (60, 6, 1800, None, 1800),      # capped by max_backoff
    (60, 50, 1800, None, 1800),     # huge streaks stay capped (no overflow)
    (60, 3, 30, None, 60),          # a cap below the interval never polls faster than it
    (60, 1, 1800, 300, 300),        # Retry-After longer than the backoff is honoured
    (60, 3, 1800, 10, 240),         # a shorter Retry-After never shortens the backoff
    (60, 1, 1800, 86400, 1800),     # but it is capped by max_backoff
    (60, 1, 30, 86400, 60),         # ... or by the interval when that is larger
    (60, 1, 1800, 0, 60),           # Retry-After: 0 still waits one interval
    (0.5, 4, 1, None, 1),
])
def test_backoff_delay(interval: float, failures: int, max_backoff: float,
                       retry_after: float | None, expected: float) -> None:
    assert backoff_delay(interval, failures, max_backoff, retry_after) == pytest.approx(expected)
