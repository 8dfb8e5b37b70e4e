"""A poll's Redis round trips, counted by the private redis-server itself (INFO commandstats),
and the applied plan checked against Redis state after its script."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from feeds import Item, rss
from servers import FeedServer
from service import events, poller_for

from monitor.config.loader import parse_config
from monitor.core import keys
from monitor.fetch.client import Fetcher
from monitor.ops.embedded import EmbeddedRedis
from monitor.poll.decide import plan_document, snapshot_after
from monitor.poll.lease import FeedLeases
from monitor.poll.role import make_state
from monitor.poll.scheduler import FeedScheduler
from monitor.sources import parse_document

PATH = "/live.rss"
ITEMS = [Item("p1", "Doors open", "<p>Delegates arrive.</p>", 1),
         Item("p2", "First speech", "<p>The chair opens.</p>", 2)]


class Counting(aioredis.Connection):
    """A redis-py connection that counts what it sends: one packed send is one round trip
    (a pipeline is one, a script call is one)."""

    sent = 0

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        Counting.sent += 1
        await super().send_packed_command(command, check_health)


async def round_trips(turn: Callable[[], Awaitable[None]]) -> int:
    Counting.sent = 0
    await turn()
    return Counting.sent


@pytest.fixture
async def counting_client(redis_client: aioredis.Redis,
                          redis_server: EmbeddedRedis) -> AsyncIterator[aioredis.Redis]:
    pool = aioredis.ConnectionPool.from_url(redis_server.url, decode_responses=True,
                                            connection_class=Counting)
    client = aioredis.Redis(connection_pool=pool)
    yield client
    await client.aclose()
    await pool.disconnect()


@pytest.fixture
def scheduler(counting_client: aioredis.Redis, feed_server: FeedServer,
              fetcher: Fetcher) -> FeedScheduler:
    config = parse_config(f"""
redis: {{url: "redis://127.0.0.1:1/0"}}
defaults: {{interval: 1h, jitter: 0s, timeout: 3s}}
feeds:
  - {{name: live, url: "{feed_server.url(PATH)}"}}
""")
    return FeedScheduler(config, poller_for(config, counting_client, fetcher))


async def test_a_quiet_poll_is_one_round_trip_a_changed_one_two(
        redis_client: aioredis.Redis, feed_server: FeedServer,
        scheduler: FeedScheduler) -> None:
    feed_server.set(PATH, rss(ITEMS))
    scheduler.scheduler.start(paused=True)
    scheduler._add(scheduler.config.feed("live"))
    feed = scheduler.config.feed("live")
    try:
        await round_trips(lambda: scheduler._turn(feed))  # the baseline (loads the scripts)
        for _ in range(3):  # 304s: only the plan's script, the lease held from the last turn
            assert await round_trips(lambda: scheduler._turn(feed)) == 1
        assert feed_server.count(PATH) == 4
        feed_server.set(PATH, rss([*ITEMS, Item("p3", "Vote", "<p>A vote is called.</p>", 3)]))
        assert await round_trips(lambda: scheduler._turn(feed)) == 2  # fingerprints, the plan
        assert [e.entry.id for e in await events(redis_client)] == ["p3"]
        health = await redis_client.hgetall(keys.health("live"))
        assert health["last_status"] == "ok" and float(health["next_poll"]) > 0
        # Another poller asks for the feed: the holder hands it over at its next poll, and
        # then takes the lease again (one round trip more) at the turn after.
        assert await FeedLeases(redis_client, "poller-b").acquire("live", 10) is None
        assert await round_trips(lambda: scheduler._turn(feed)) == 1
        await redis_client.delete(keys.lease("live"))  # as if poller-b's turn never came
        assert await round_trips(lambda: scheduler._turn(feed)) == 2  # the lease, the plan
    finally:
        scheduler.scheduler.shutdown(wait=False)


async def test_the_applied_plan_is_the_state_in_redis(
        redis_client: aioredis.Redis, feed_server: FeedServer, fetcher: Fetcher,
        scheduler: FeedScheduler) -> None:
    """What `snapshot_after` predicts the poller knows at its next turn equals what Redis
    holds after the script: meta, validators, fingerprints, events."""
    state = scheduler.poller.state
    url = feed_server.url(PATH)
    for items in (ITEMS, [*ITEMS, Item("p3", "Vote", "<p>A vote is called.</p>", 3)]):
        feed_server.set(PATH, rss(items))
        before = await state.load("live")
        result = await fetcher.fetch(url, timeout=3, max_body=1 << 20)
        assert result.body is not None
        document = parse_document("auto", result.body, url, result.content_type)
        plan = plan_document(before, document, backfill=0, flood_threshold=50, feed="live",
                             now=1.0e9)
        applied = await state.apply("live", url, plan, etag=result.etag,
                                    last_modified=result.last_modified,
                                    body_hash=result.body_hash, now=1.0e9)
        assert applied.appended == plan.emitted
        after = await state.load("live")
        assert snapshot_after(before, plan, result, applied.appended, 1.0e9) == \
            type(after)(**{**{f: getattr(after, f) for f in after.__slots__},
                           "fingerprints": {}})
        assert after.fingerprints == {**before.fingerprints,
                                      **{c.entry.id: c.version for c in plan.changes}}
    assert [e.entry.id for e in await events(redis_client)] == ["p3"]
    assert (await make_state(scheduler.config, redis_client).health("live")).last_status == "ok"
