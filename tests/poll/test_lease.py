"""Per-feed leases and fencing tokens (monitor.poll.lease, commit.lua) on a real redis-server."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter

import pytest
import redis.asyncio as aioredis
from feeds import Item, rss
from servers import FeedServer
from service import commit, events, poller_for, wait_until

from monitor.config.loader import parse_config
from monitor.config.models import Config
from monitor.core import keys
from monitor.core.models import Entry
from monitor.fetch.client import Fetcher, FetchResult
from monitor.ops import metrics
from monitor.poll.diff import diff_entries
from monitor.poll.lease import FeedLeases
from monitor.poll.poller import Poller
from monitor.poll.role import make_state
from monitor.poll.scheduler import FeedScheduler
from monitor.poll.state import FeedState

URL = "https://news.example.org/live/summit"


def entry(i: str) -> Entry:
    return Entry(id=i, url=f"{URL}#{i}", title=f"Update {i}", text=f"Body of {i}")


async def expired(client: aioredis.Redis, feed: str) -> None:
    async def gone() -> bool:
        return not await client.exists(keys.lease(feed))

    await wait_until(gone, timeout=5, what=f"the lease of {feed} to expire")


async def test_two_pollers_racing_get_each_feed_once(redis_client: aioredis.Redis) -> None:
    a, b = FeedLeases(redis_client, "poller-a"), FeedLeases(redis_client, "poller-b")
    feeds = [f"f{i}" for i in range(50)]
    # Each pair asked at once, a first for half the feeds and b first for the others.
    won = await asyncio.gather(*(leases.acquire(feed, 10) for i, feed in enumerate(feeds)
                                 for leases in ((a, b) if i % 2 else (b, a))))
    winners = Counter(lease.feed for lease in won if lease is not None)
    assert winners == dict.fromkeys(feeds, 1)
    owners = {lease.owner for lease in won if lease is not None}
    assert owners == {"poller-a", "poller-b"}  # both won some: the race is real
    for lease in won:
        if lease is not None:
            assert lease.fence == 1
            assert await a.holder(lease.feed) == (lease.owner, 1)


async def test_holder_takes_its_lease_again_with_a_newer_fence(
        redis_client: aioredis.Redis) -> None:
    a, b = FeedLeases(redis_client, "poller-a"), FeedLeases(redis_client, "poller-b")
    first = await a.acquire("f", 10)
    assert first is not None and first.fence == 1
    assert await b.acquire("f", 10) is None
    again = await a.acquire("f", 10)
    assert again is not None and again.fence == 2
    assert not await a.keep(first, 10)  # the older turn is over: it cannot move the lease
    assert await a.keep(again, 0.2)
    assert 0 < await redis_client.pttl(keys.lease("f")) <= 200
    await expired(redis_client, "f")
    taken = await b.acquire("f", 10)
    assert taken is not None and taken.fence == 3  # monotonic across owners and expiry
    assert not await a.release(again)
    assert await b.release(taken)
    assert await a.holder("f") is None


async def test_lease_carries_the_feed_meta_when_asked(redis_client: aioredis.Redis) -> None:
    leases = FeedLeases(redis_client, "poller-a")
    await redis_client.hset(keys.meta("f"), mapping={"baselined": "1", "etag": '"v2"'})
    lease = await leases.acquire("f", 10, meta=True)
    assert lease is not None and lease.fence == 1
    assert lease.meta == {"baselined": "1", "etag": '"v2"'}
    assert await FeedLeases(redis_client, "poller-b").acquire("f", 10, meta=True) is None
    again = await leases.acquire("g", 10, meta=True)  # no meta yet: an empty hash
    assert again is not None and again.meta == {}
    plain = await leases.acquire("h", 10)
    assert plain is not None and plain.meta is None


async def test_keep_records_the_next_poll_only_for_the_current_lease(
        redis_client: aioredis.Redis) -> None:
    a, b = FeedLeases(redis_client, "poller-a"), FeedLeases(redis_client, "poller-b")
    first = await a.acquire("f", 10)
    assert first is not None
    assert await a.keep(first, 5, next_poll=1_800_000_000.5)
    assert await redis_client.hget(keys.health("f"), "next_poll") == "1800000000.5"
    assert 4000 < await redis_client.pttl(keys.lease("f")) <= 5000
    await redis_client.delete(keys.lease("f"))  # expired; another poller takes the feed
    taken = await b.acquire("f", 10)
    assert taken is not None
    assert not await a.keep(first, 5, next_poll=1_900_000_000)  # stale: records nothing
    assert await redis_client.hget(keys.health("f"), "next_poll") == "1800000000.5"


async def test_late_commit_after_the_lease_expired_is_refused(
        redis_client: aioredis.Redis) -> None:
    """Poller A's lease runs out mid-poll and B takes the feed over: A's commit writes nothing,
    B's (with the current fence) records the change and appends its event once."""
    state = FeedState(redis_client, max_entries=100, stream_maxlen=1000)
    a, b = FeedLeases(redis_client, "poller-a"), FeedLeases(redis_client, "poller-b")
    await commit(state, "f", URL, diff_entries({}, [entry("x")], baseline=True), baseline=True,
                       etag=None, last_modified=None, body_hash="h0")

    lease_a = await a.acquire("f", 0.1)
    assert lease_a is not None
    snap = await state.load("f")
    changes_a = diff_entries(snap.fingerprints, [entry("x"), entry("y")], baseline=False)
    await expired(redis_client, "f")  # A is still "polling" when its lease runs out

    lease_b = await b.acquire("f", 10)
    assert lease_b is not None and lease_b.fence > lease_a.fence
    snap_b = await state.load("f")
    changes_b = diff_entries(snap_b.fingerprints, [entry("x"), entry("y")], baseline=False)

    late = await commit(state, "f", URL, changes_a, baseline=False, etag='"a"',
                              last_modified=None, body_hash="ha", fence=lease_a.fence)
    assert late.superseded and late.appended == 0
    assert await events(redis_client) == []
    assert await redis_client.hget(keys.meta("f"), "body_hash") == "h0"  # nothing written

    current = await commit(state, "f", URL, changes_b, baseline=False, etag='"b"',
                                 last_modified=None, body_hash="hb", fence=lease_b.fence)
    assert not current.superseded and current.new == 1
    assert [e.entry.id for e in await events(redis_client)] == ["y"]
    assert await redis_client.hget(keys.meta("f"), "etag") == '"b"'


async def test_commit_with_the_current_fence_is_accepted(redis_client: aioredis.Redis) -> None:
    state = FeedState(redis_client, max_entries=100, stream_maxlen=1000)
    lease = await FeedLeases(redis_client, "poller-a").acquire("f", 10)
    assert lease is not None
    base = await commit(state, "f", URL, diff_entries({}, [entry("x")], baseline=True),
                              baseline=True, etag=None, last_modified=None, body_hash="h",
                              fence=lease.fence)
    assert not base.superseded and not base.baseline_moved
    snap = await state.load("f")
    assert snap.baselined and set(snap.fingerprints) == {"x"}
    changes = diff_entries(snap.fingerprints, [entry("x"), entry("z")], baseline=False)
    result = await commit(state, "f", URL, changes, baseline=False, etag=None,
                                last_modified=None, body_hash="h2", fence=lease.fence)
    assert result.new == 1 and [e.entry.id for e in await events(redis_client)] == ["z"]


def feed_config(server: FeedServer, names: list[str], *, interval: str = "10s",
                jitter: str = "0s") -> Config:
    feeds = "\n".join(f'  - {{name: {n}, url: "{server.url("/" + n)}"}}' for n in names)
    return parse_config(f"""
redis: {{url: "redis://127.0.0.1:1/0"}}
defaults: {{interval: {interval}, jitter: {jitter}, timeout: 3s}}
fetch: {{parse_timeout: 2s}}
feeds:
{feeds}
""")


async def test_superseded_poll_appends_nothing_and_the_new_holder_detects_the_post(
        redis_client: aioredis.Redis, feed_server: FeedServer, fetcher: Fetcher) -> None:
    """A slow poll outlives its lease: the poll reports `superseded` and appends nothing; the
    poller that took over detects the new post exactly once."""
    items = [Item("p1", "Doors open", "<p>Delegates arrive.</p>", 1)]
    feed_server.set("/live", rss(items))
    config = feed_config(feed_server, ["live"])
    feed = config.feed("live")
    a_poller, b_poller = (poller_for(config, redis_client, fetcher) for _ in range(2))
    a, b = FeedLeases(redis_client, "poller-a"), FeedLeases(redis_client, "poller-b")
    first = await a.acquire("live", 10)
    assert first is not None
    assert (await a_poller.poll(feed, fence=first.fence)).status == "baseline"
    assert await a.release(first)

    items.append(Item("p2", "Speech", "<p>The chair opens the summit.</p>", 2))
    feed_server.set("/live", rss(items), delay=0.6)  # a slow answer
    slow = await a.acquire("live", 0.2)
    assert slow is not None
    polling = asyncio.create_task(a_poller.poll(feed, fence=slow.fence))
    await expired(redis_client, "live")
    took = await b.acquire("live", 10)
    assert took is not None
    late, current = await asyncio.gather(polling, b_poller.poll(feed, fence=took.fence))
    assert late.status == "superseded" and late.new == 0
    assert (current.status, current.new) == ("changed", 1)
    assert [e.entry.id for e in await events(redis_client)] == ["p2"]


@pytest.mark.parametrize("jitter", ["0s", "200ms"])
async def test_two_schedulers_poll_each_feed_once_per_interval(
        redis_client: aioredis.Redis, feed_server: FeedServer, jitter: str) -> None:
    """Two pollers (schedulers) in one process over the same feeds: each feed is fetched about
    once per interval in all, not once per poller; a stopped poller hands its feeds over."""
    names = [f"f{i}" for i in range(12)]
    for name in names:
        feed_server.set("/" + name, rss([Item(f"{name}-1", "Hello", "<p>Body</p>", 1)]))
    config = feed_config(feed_server, names, interval="1s", jitter=jitter)
    turns_before = _lateness_count()
    async with Fetcher(user_agent="test", max_concurrency=2) as fetcher:
        schedulers = [FeedScheduler(config, Poller(config, make_state(config, redis_client),
                                                   fetcher)) for _ in range(2)]
        for scheduler in schedulers:
            scheduler.start()
        try:
            async def fetched(n: int) -> bool:
                return sum(feed_server.count("/" + name) for name in names) >= n

            await wait_until(lambda: fetched(len(names) * 4), timeout=15,
                             what="four rounds of polls")
        finally:
            for scheduler in schedulers:
                await scheduler.shutdown(2)
        counts = {name: feed_server.count("/" + name) for name in names}
        # ~4-5 s of polling at 1 s: once per interval each (plus the shutdown's last round),
        # never once per poller (which would be 8-10).
        assert max(counts.values()) <= 7, counts
        owners = {(await FeedLeases(redis_client).holder(n)) for n in names}
        assert owners == {None}  # shutdown released every lease it held
        # every turn of both schedulers (those skipped for the other's lease too) says how
        # late it started: ~2 per feed per second here
        assert _lateness_count() - turns_before >= 2 * sum(counts.values()) - 2 * len(names)


def _lateness_count() -> float:
    for family in metrics.POLL_LATENESS.collect():
        for sample in family.samples:
            if sample.name.endswith("_count"):
                return sample.value
    return 0.0


async def test_poll_now_runs_a_turn_at_once_and_diffs_a_pushed_document(
        redis_client: aioredis.Redis, feed_server: FeedServer) -> None:
    """`poll_now` (WebSub's way in): the feed polled at once, long before its interval; a
    pushed document diffed without a fetch; `only_if_held` refused by a poller that does
    not hold the feed."""
    items = [Item("p1", "Doors open", "<p>Delegates arrive.</p>", 1)]
    feed_server.set("/live", rss(items))
    config = feed_config(feed_server, ["live"], interval="60s")
    async with Fetcher(user_agent="test") as fetcher:
        holder, other = (FeedScheduler(config, Poller(config, make_state(config, redis_client),
                                                      fetcher)) for _ in range(2))
        holder.start()
        try:
            await wait_until(lambda: _true(feed_server.count("/live") == 1), what="baseline")
            await wait_until(lambda: _true("live" in holder._held), what="lease kept")
            assert not other.poll_now("live", only_if_held=True)  # never started: refused
            items.append(Item("p2", "Speech", "<p>The chair opens the summit.</p>", 2))
            feed_server.set("/live", rss(items))
            assert holder.poll_now("live", only_if_held=True)
            await wait_until(lambda: _has_events(redis_client, ["p2"]), timeout=5,
                             what="the post polled at once")
            assert feed_server.count("/live") == 2
            pushed = rss([*items, Item("p3", "Vote", "<p>The motion passes.</p>", 3)])
            assert holder.poll_now("live", FetchResult(
                url=config.feed("live").url, status=200, body=pushed.encode(),
                content_type="application/rss+xml", etag=None, last_modified=None,
                not_modified=False, elapsed=0.0))
            await wait_until(lambda: _has_events(redis_client, ["p2", "p3"]), timeout=5,
                             what="the pushed post")
            assert feed_server.count("/live") == 2  # diffed as pushed, not fetched
            assert not holder.poll_now("nope")
        finally:
            await holder.shutdown(2)
        assert not holder.poll_now("live")  # stopped


async def _true(value: bool) -> bool:
    return value


async def _has_events(client: aioredis.Redis, ids: list[str]) -> bool:
    return [e.entry.id for e in await events(client)] == ids


async def test_a_feed_that_posts_is_polled_at_min_interval(
        redis_client: aioredis.Redis, feed_server: FeedServer) -> None:
    """Hot polling: at the interval until a post is found (a start or a baseline is not one),
    then every `min_interval`."""
    items = [Item("p1", "Doors open", "<p>Delegates arrive.</p>", 1)]
    feed_server.set("/live", rss(items))
    config = live_config(feed_server, HOT)
    async with Fetcher(user_agent="test") as fetcher:
        scheduler = FeedScheduler(config, Poller(config, make_state(config, redis_client),
                                                 fetcher))
        scheduler.start()
        try:
            await wait_until(lambda: _true(feed_server.count("/live") == 1), what="baseline")
            items.append(Item("p2", "Speech", "<p>The chair opens the summit.</p>", 2))
            feed_server.set("/live", rss(items))
            await wait_until(lambda: _has_events(redis_client, ["p2"]), timeout=6,
                             what="the post")
            assert feed_server.count("/live") == 2  # not hot before it: the interval
            posted = feed_server.count("/live")
            await wait_until(lambda: _true(feed_server.count("/live") >= posted + 3),
                             timeout=2.5, what="polls at min_interval")
        finally:
            await scheduler.shutdown(2)
    times = [t for path, t in feed_server.stamps if path == "/live"]
    assert times[1] - times[0] > 2.5  # the interval
    assert max(b - a for a, b in itertools.pairwise(times[2:])) < 1.0


async def test_a_hot_feed_stays_hot_under_a_new_poller(
        redis_client: aioredis.Redis, feed_server: FeedServer) -> None:
    """The last post is recorded with the feed's state: a poller that takes the feed over (or
    the same one restarted) polls it at `min_interval` from its first turn."""
    items = [Item("p1", "Doors open", "<p>Delegates arrive.</p>", 1)]
    feed_server.set("/live", rss(items))
    config = live_config(feed_server, HOT)
    async with Fetcher(user_agent="test") as fetcher:
        first = FeedScheduler(config, Poller(config, make_state(config, redis_client), fetcher))
        first.start()
        try:
            await wait_until(lambda: _true(feed_server.count("/live") == 1), what="baseline")
            items.append(Item("p2", "Speech", "<p>The chair opens the summit.</p>", 2))
            feed_server.set("/live", rss(items))
            await wait_until(lambda: _has_events(redis_client, ["p2"]), timeout=6,
                             what="the post")
        finally:
            await first.shutdown(2)  # releases the lease: the next poller takes the feed
        meta = await redis_client.hgetall(keys.meta("live"))
        assert float(meta["last_post"]) > 0
        second = FeedScheduler(config, Poller(config, make_state(config, redis_client),
                                              fetcher))
        taken = feed_server.count("/live")
        second.start()
        try:
            await wait_until(lambda: _true(feed_server.count("/live") >= taken + 4),
                             timeout=3, what="polls at min_interval under the new poller")
        finally:
            await second.shutdown(2)


async def test_fetches_asked_for_by_notifications_are_paced(
        redis_client: aioredis.Redis, feed_server: FeedServer) -> None:
    """A flood of `poll_now` (unsigned WebSub notifications are anyone's): one fetch at once,
    then at most one per `min_interval`, never one per notification."""
    feed_server.set("/live", rss([Item("p1", "Doors open", "<p>Delegates arrive.</p>", 1)]))
    config = live_config(feed_server, "interval: 60s, min_interval: 1s, jitter: 0s, timeout: 2s")
    async with Fetcher(user_agent="test") as fetcher:
        scheduler = FeedScheduler(config, Poller(config, make_state(config, redis_client),
                                                 fetcher))
        scheduler.start()
        try:
            await wait_until(lambda: _true(feed_server.count("/live") == 1), what="baseline")
            await wait_until(lambda: _true("live" in scheduler._held), what="turn done")
            started = asyncio.get_running_loop().time()
            while asyncio.get_running_loop().time() - started < 2.5:
                assert scheduler.poll_now("live")
                await asyncio.sleep(0.02)  # a notification every 20 ms, for 2.5 s
            fetched = feed_server.count("/live") - 1
        finally:
            await scheduler.shutdown(2)
    assert 2 <= fetched <= 4, fetched  # ~1 per second, not 125


#: A hot feed's defaults: polled every 3 s until a post, then every 0.4 s.
HOT = "interval: 3s, min_interval: 0.4s, hot_for: 1m, jitter: 0s, timeout: 2s"


def live_config(server: FeedServer, defaults: str) -> Config:
    """One feed, `live`, on `server`, with these `defaults` (flow YAML, no braces)."""
    return parse_config(f"""
redis: {{url: "redis://127.0.0.1:1/0"}}
defaults: {{{defaults}}}
feeds:
  - {{name: live, url: "{server.url('/live')}"}}
""")
