"""Identity and source-health rules of the poller (issue 3), against a real redis-server and
the local FeedServer: GUID churn falls back on content identity, tracking parameters never
make a new entry, a flood of events trips the breaker, an empty document after history is a
failure, and the cadence after live-blog outcomes. No mocks, no sleeps."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis
from feeds import Item, Update, live_page, login_wall, rss
from servers import FeedServer
from service import events, poller_for
from structlog.testing import capture_logs

from monitor.config.loader import parse_config
from monitor.config.models import Config
from monitor.core import keys
from monitor.core.models import Notice
from monitor.core.textnorm import content_hash
from monitor.fetch.client import Fetcher
from monitor.poll.poller import Poller, PollOutcome
from monitor.poll.role import make_state
from monitor.poll.scheduler import FeedScheduler

PATH = "/live.rss"
PAGE = "/live/summit"
HTML = "text/html; charset=utf-8"

ITEMS = [Item("p1", "Doors open", "<p>Delegates are arriving.</p>", 1),
         Item("p2", "First speech", "<p>The chair opens the summit.</p>", 2),
         Item("p3", "Press pool", "<p>Cameras wait outside.</p>", 3),
         Item("p4", "Lunch", "<p>Talks break for lunch.</p>", 4)]

UPDATES = [Update(1, "Doors open", "<p>Delegates are arriving.</p>", 1),
           Update(2, "First speech", "<p>The chair opens the <em>summit</em>.</p>", 2),
           Update(3, "Press pool", "<p>Cameras wait outside.</p>", 3)]


def make_config(server: FeedServer, *, path: str = PATH, flood_threshold: int = 50,
                extra_defaults: str = "") -> Config:
    return parse_config(f"""
redis: {{url: "redis://127.0.0.1:1/0"}}
defaults: {{interval: 10s, timeout: 3s, max_body: 1MB, flood_threshold: {flood_threshold}
            {extra_defaults}}}
feeds:
  - {{name: live, url: "{server.url(path)}"}}
""")




async def notices(client: aioredis.Redis) -> list[Notice]:
    return [Notice.decode(f["notice"]) for _, f in await client.xrange(keys.NOTICES_STREAM)]


def churned(items: list[Item], generation: int) -> list[Item]:
    """The same items under GUIDs that are new in every generation."""
    return [Item(f"urn:uuid:{generation}-{i.guid}", i.title, i.html, i.minute, i.author)
            for i in items]


def content_id(item: Item) -> str:
    return "h:" + content_hash(item.title, item.html)


# --- GUID churn ---------------------------------------------------------------------------

async def test_churning_guids_switch_the_feed_to_content_identity(
        redis_client: aioredis.Redis, feed_server: FeedServer, fetcher: Fetcher) -> None:
    config = make_config(feed_server)
    feed = config.feed("live")
    poller = poller_for(config, redis_client, fetcher)
    feed_server.set(PATH, rss(churned(ITEMS, 0)))
    assert (await poller.poll(feed)).status == "baseline"
    assert await redis_client.hget(keys.meta("live"), "identity") is None

    with capture_logs() as logs:
        for generation in range(1, 6):  # every fetch: the same items under new GUIDs
            feed_server.set(PATH, rss(churned(ITEMS, generation)))
            outcome = await poller.poll(feed)
            assert outcome.status in ("changed", "unchanged"), outcome
            assert (outcome.new, outcome.updated) == (0, 0)
    assert await events(redis_client) == []
    assert await redis_client.hget(keys.meta("live"), "identity") == "content"
    switches = [e for e in logs if "churns entry ids" in e["event"]]
    assert len(switches) == 1 and switches[0]["feed"] == "live"
    assert switches[0]["log_level"] == "warning" and switches[0]["duplicates"] == len(ITEMS)
    prints = await redis_client.hgetall(keys.fingerprints("live"))
    assert {content_id(i) for i in ITEMS} <= set(prints)
    assert not any(k.startswith("urn:uuid:5-") for k in prints)  # churned ids no longer kept

    # A genuinely new item (under yet another churned GUID) is exactly one `new` event.
    fresh = Item("p5", "Breaking", "<p>A deal is announced.</p>", 5)
    feed_server.set(PATH, rss(churned([*ITEMS, fresh], 6)))
    outcome = await poller.poll(feed)
    assert (outcome.status, outcome.new, outcome.updated) == ("changed", 1, 0)
    (event,) = await events(redis_client)
    assert (event.kind, event.entry.id) == ("new", content_id(fresh))
    assert event.entry.title == "Breaking" and event.entry.text == "A deal is announced."

    # ... and churning on afterwards still adds nothing.
    for generation in (7, 8):
        feed_server.set(PATH, rss(churned([*ITEMS, fresh], generation)))
        assert (await poller.poll(feed)).status == "unchanged"
    assert len(await events(redis_client)) == 1


async def test_new_item_in_the_poll_that_switches_identity_is_one_event(
        redis_client: aioredis.Redis, feed_server: FeedServer, fetcher: Fetcher) -> None:
    config = make_config(feed_server)
    poller = poller_for(config, redis_client, fetcher)
    feed_server.set(PATH, rss(churned(ITEMS, 0)))
    await poller.poll(config.feed("live"))
    fresh = Item("p5", "Breaking", "<p>A deal is announced.</p>", 5)
    feed_server.set(PATH, rss(churned([*ITEMS, fresh], 1)))  # 4 duplicates, 1 fresh
    outcome = await poller.poll(config.feed("live"))
    assert (outcome.status, outcome.new) == ("changed", 1)
    assert [(e.kind, e.entry.id) for e in await events(redis_client)] == [
        ("new", content_id(fresh))]
    assert await redis_client.hget(keys.meta("live"), "identity") == "content"


@pytest.mark.parametrize(("republished", "fresh"), [
    (2, 0),   # fewer than 3 duplicates: a couple of re-posts, not churn
    (3, 4),   # more genuinely new entries than duplicates: a busy feed, not churn
])
async def test_a_few_duplicates_keep_id_identity(
        redis_client: aioredis.Redis, feed_server: FeedServer, fetcher: Fetcher,
        republished: int, fresh: int) -> None:
    config = make_config(feed_server)
    poller = poller_for(config, redis_client, fetcher)
    feed_server.set(PATH, rss(ITEMS))
    await poller.poll(config.feed("live"))
    new_items = [Item(f"n{k}", f"News {k}", f"<p>Story number {k}.</p>", 10 + k)
                 for k in range(fresh)]
    document = [*ITEMS, *churned(ITEMS[:republished], 1), *new_items]
    feed_server.set(PATH, rss(document))
    outcome = await poller.poll(config.feed("live"))
    assert (outcome.new, outcome.updated) == (fresh, 0)
    assert [e.entry.id for e in await events(redis_client)] == [i.guid for i in new_items]
    assert await redis_client.hget(keys.meta("live"), "identity") is None


async def test_tracking_parameters_in_permalinks_are_not_new_entries(
        redis_client: aioredis.Redis, feed_server: FeedServer, fetcher: Fetcher) -> None:
    config = make_config(feed_server)
    poller = poller_for(config, redis_client, fetcher)
    feed_server.set(PATH, rss(ITEMS, guids=False, query="utm_source=x1&utm_medium=rss"))
    assert (await poller.poll(config.feed("live"))).status == "baseline"
    expected_ids = {f"https://news.example.org/live/summit#{i.guid}" for i in ITEMS}
    assert set(await redis_client.hkeys(keys.fingerprints("live"))) == expected_ids
    for n in range(2, 6):
        feed_server.set(PATH, rss(ITEMS, guids=False, query=f"utm_source=x{n}&at_medium=RSS"))
        outcome = await poller.poll(config.feed("live"))
        assert (outcome.status, outcome.new, outcome.updated) == ("unchanged", 0, 0)
    assert await events(redis_client) == []
    assert set(await redis_client.hkeys(keys.fingerprints("live"))) == expected_ids
    assert await redis_client.hget(keys.meta("live"), "identity") is None


# --- flood breaker ------------------------------------------------------------------------

def many(count: int, start: int = 100) -> list[Item]:
    return [Item(f"m{k}", f"Result {k}", f"<p>Seat {k} declared.</p>", k)
            for k in range(start, start + count)]


async def test_flood_is_recorded_without_events_and_noticed_once(
        redis_client: aioredis.Redis, feed_server: FeedServer, fetcher: Fetcher) -> None:
    config = make_config(feed_server, flood_threshold=50)
    feed = config.feed("live")
    state = make_state(config, redis_client)
    poller = Poller(config, state, fetcher)
    feed_server.set(PATH, rss(ITEMS[:3]))
    assert (await poller.poll(feed)).status == "baseline"

    flood = many(200)
    feed_server.set(PATH, rss([*ITEMS[:3], *flood]))
    with capture_logs() as logs:
        outcome = await poller.poll(feed)
    assert outcome.status == "changed" and outcome.flood
    assert (outcome.new, outcome.updated, outcome.entries) == (0, 0, 203)
    assert await events(redis_client) == []
    (notice,) = await notices(redis_client)
    assert (notice.kind, notice.feed) == ("flood", "live")
    assert "200" in notice.message
    assert [e["log_level"] for e in logs if e["event"] == "flood breaker tripped"] == ["warning"]
    health = await state.health("live")
    assert (health.last_status, health.consecutive_failures) == ("ok", 0)
    assert len(await redis_client.hkeys(keys.fingerprints("live"))) == 203
    assert await redis_client.hget(keys.meta("live"), "max_events") is None

    # Everything was recorded: the same document again adds nothing, and no second notice.
    feed_server.set(PATH, rss([*ITEMS[:3], *flood]), send_etag=False)
    assert (await poller.poll(feed)).status == "unchanged"
    # Afterwards a normal new item is one event again.
    feed_server.set(PATH, rss([*ITEMS[:3], *flood, ITEMS[3]]))
    outcome = await poller.poll(feed)
    assert (outcome.status, outcome.new, outcome.flood) == ("changed", 1, False)
    assert [(e.kind, e.entry.id) for e in await events(redis_client)] == [("new", "p4")]
    assert len(await notices(redis_client)) == 1
    assert await redis_client.hget(keys.meta("live"), "max_events") == "1"


async def test_flood_budget_grows_with_the_largest_poll_seen(
        redis_client: aioredis.Redis, feed_server: FeedServer, fetcher: Fetcher) -> None:
    config = make_config(feed_server, flood_threshold=5)
    feed = config.feed("live")
    poller = poller_for(config, redis_client, fetcher)
    items = list(ITEMS[:3])
    feed_server.set(PATH, rss(items))
    await poller.poll(feed)
    # 5 is not more than the threshold; then 15 is not more than 3 × 5; 46 is more than 3 × 15.
    for count, start, flooded in ((5, 100, False), (15, 200, False), (46, 300, True)):
        items += many(count, start)
        feed_server.set(PATH, rss(items))
        outcome = await poller.poll(feed)
        assert (outcome.flood, outcome.new) == (flooded, 0 if flooded else count), count
    assert len(await events(redis_client)) == 20
    assert [n.kind for n in await notices(redis_client)] == ["flood"]
    assert await redis_client.hget(keys.meta("live"), "max_events") == "15"


# --- empty document after history -------------------------------------------------------

EMPTY_LIVE_BLOG = live_page([])


@pytest.mark.parametrize(("wall", "reason"), [
    (login_wall(), "no live blog"),            # the page lost its JSON-LD
    (EMPTY_LIVE_BLOG, "no entries found (had 3)"),  # a LiveBlogPosting without updates
])
async def test_live_page_turning_into_a_login_wall_is_a_failure(
        redis_client: aioredis.Redis, feed_server: FeedServer, fetcher: Fetcher,
        wall: str, reason: str) -> None:
    config = make_config(feed_server, path=PAGE)
    feed = config.feed("live")
    state = make_state(config, redis_client)
    poller = Poller(config, state, fetcher)
    feed_server.set(PAGE, live_page(UPDATES), content_type=HTML)
    outcome = await poller.poll(feed)
    assert (outcome.status, outcome.kind, outcome.entries) == ("baseline", "liveblog", 3)
    assert set(await redis_client.hkeys(keys.fingerprints("live"))) == {
        feed_server.url(PAGE) + u.anchor for u in UPDATES}

    feed_server.set(PAGE, wall, content_type=HTML)
    outcome = await poller.poll(feed)
    assert (outcome.status, outcome.consecutive_failures) == ("error", 1)
    assert outcome.error is not None and reason in outcome.error
    feed_server.set(PAGE, "Not Found", status=404, content_type="text/plain")
    outcome = await poller.poll(feed)
    assert (outcome.status, outcome.consecutive_failures, outcome.error) == ("error", 2,
                                                                             "HTTP 404")
    health = await state.health("live")
    assert (health.consecutive_failures, health.total_failures) == (2, 2)
    assert health.last_status == "error" and health.last_error == "HTTP 404"
    assert len(await redis_client.hkeys(keys.fingerprints("live"))) == 3  # nothing "deleted"

    # The page comes back as it was: nothing re-alerts, the streak ends.
    feed_server.set(PAGE, live_page(UPDATES), content_type=HTML)
    assert (await poller.poll(feed)).status in ("not_modified", "unchanged")
    assert await events(redis_client) == []
    assert (await state.health("live")).consecutive_failures == 0


async def test_feed_emptied_after_history_is_a_failure(
        redis_client: aioredis.Redis, feed_server: FeedServer, fetcher: Fetcher) -> None:
    config = make_config(feed_server)
    poller = poller_for(config, redis_client, fetcher)
    feed_server.set(PATH, rss(ITEMS))
    await poller.poll(config.feed("live"))
    feed_server.set(PATH, rss([]))
    outcome = await poller.poll(config.feed("live"))
    assert (outcome.status, outcome.consecutive_failures) == ("error", 1)
    assert "no entries found (had 4)" in (outcome.error or "")
    assert await events(redis_client) == []


async def test_empty_feed_without_history_is_a_baseline(
        redis_client: aioredis.Redis, feed_server: FeedServer, fetcher: Fetcher) -> None:
    config = make_config(feed_server, path=PAGE)
    poller = poller_for(config, redis_client, fetcher)
    feed_server.set(PAGE, EMPTY_LIVE_BLOG, content_type=HTML)  # coverage not started yet
    assert (await poller.poll(config.feed("live"))).status == "baseline"
    feed_server.set(PAGE, live_page(UPDATES[:1]), content_type=HTML)
    outcome = await poller.poll(config.feed("live"))
    assert (outcome.status, outcome.new) == ("changed", 1)
    assert [e.entry.id for e in await events(redis_client)] == [
        feed_server.url(PAGE) + "#update-1"]


# --- page facts and cadence ---------------------------------------------------------------

@pytest.mark.parametrize(("coverage_end", "ended"), [
    (None, False),
    (datetime.now(UTC) + timedelta(hours=2), False),
    (datetime(2026, 1, 21, 18, 30, tzinfo=UTC), True),
])
async def test_ended_is_true_once_coverage_end_has_passed(
        redis_client: aioredis.Redis, feed_server: FeedServer, fetcher: Fetcher,
        coverage_end: datetime | None, ended: bool) -> None:
    config = make_config(feed_server, path=PAGE)
    feed_server.set(PAGE, live_page(UPDATES, coverage_end), content_type=HTML)
    outcome = await poller_for(config, redis_client, fetcher).poll(config.feed("live"))
    assert (outcome.status, outcome.ended) == ("baseline", ended)


async def test_ended_holds_on_polls_that_do_not_parse_the_page(
        redis_client: aioredis.Redis, feed_server: FeedServer, fetcher: Fetcher) -> None:
    """An ended live blog is usually served unchanged (304) from then on: still ended."""
    config = make_config(feed_server, path=PAGE, extra_defaults=CADENCE)
    feed = config.feed("live")
    poller = poller_for(config, redis_client, fetcher)
    scheduler = FeedScheduler(config, poller)
    ended_at = datetime(2026, 1, 21, 18, 30, tzinfo=UTC)
    feed_server.set(PAGE, live_page(UPDATES, ended_at), content_type=HTML)
    first = await poller.poll(feed)
    assert (first.status, first.ended) == ("baseline", True)
    again = await poller.poll(feed)
    assert (again.status, again.ended) == ("not_modified", True)
    assert scheduler.delay_after(feed, again) == pytest.approx(300)
    feed_server.set(PAGE, live_page(UPDATES, ended_at), content_type=HTML, send_etag=False)
    again = await poller.poll(feed)
    assert (again.status, again.ended) == ("unchanged", True)
    assert scheduler.delay_after(feed, again) == pytest.approx(300)
    # Coverage resumes (no end time any more): live again, also on the polls after.
    reopened = [*UPDATES, Update(4, "We are back", "<p>Talks resume.</p>", 4)]
    feed_server.set(PAGE, live_page(reopened), content_type=HTML)
    outcome = await poller.poll(feed)
    assert (outcome.status, outcome.new, outcome.ended) == ("changed", 1, False)
    again = await poller.poll(feed)
    assert (again.status, again.ended) == ("not_modified", False)
    assert scheduler.delay_after(feed, again) == pytest.approx(10)


async def test_max_age_comes_from_cache_control(
        redis_client: aioredis.Redis, feed_server: FeedServer, fetcher: Fetcher) -> None:
    config = make_config(feed_server, path=PAGE)
    poller = poller_for(config, redis_client, fetcher)
    feed_server.set(PAGE, live_page(UPDATES), content_type=HTML,
                    headers={"Cache-Control": "public, max-age=120"})
    assert (await poller.poll(config.feed("live"))).max_age == 120.0
    again = await poller.poll(config.feed("live"))  # a 304 carries it too
    assert (again.status, again.max_age) == ("not_modified", 120.0)
    feed_server.set(PAGE, live_page(UPDATES), content_type=HTML)
    assert (await poller.poll(config.feed("live"))).max_age is None


CADENCE = ", max_interval: 5m, max_backoff: 1m, quiet_after: 30m"


async def test_scheduler_delay_after_real_outcomes(
        redis_client: aioredis.Redis, feed_server: FeedServer, fetcher: Fetcher) -> None:
    config = make_config(feed_server, path=PAGE, extra_defaults=CADENCE)
    feed = config.feed("live")
    poller = poller_for(config, redis_client, fetcher)
    scheduler = FeedScheduler(config, poller)

    feed_server.set(PAGE, live_page(UPDATES), content_type=HTML)
    outcome = await poller.poll(feed)
    assert scheduler.delay_after(feed, outcome) == pytest.approx(10)  # live: the interval

    feed_server.set(PAGE, live_page(UPDATES), content_type=HTML,
                    headers={"Cache-Control": "max-age=120"})
    outcome = await poller.poll(feed)
    assert scheduler.delay_after(feed, outcome) == pytest.approx(120)  # max-age honoured

    ended_at = datetime.now(UTC) - timedelta(minutes=1)
    feed_server.set(PAGE, live_page(UPDATES, ended_at), content_type=HTML)
    outcome = await poller.poll(feed)
    assert outcome.ended
    assert scheduler.delay_after(feed, outcome) == pytest.approx(300)  # ended: max_interval

    # Failures back off exponentially up to max_backoff, then one good poll resets it.
    feed_server.set(PAGE, login_wall(), content_type=HTML)
    delays = []
    for streak in range(1, 6):
        outcome = await poller.poll(feed)
        assert (outcome.status, outcome.consecutive_failures) == ("error", streak)
        delays.append(scheduler.delay_after(feed, outcome))
    assert delays == pytest.approx([10, 20, 40, 60, 60])
    feed_server.set(PAGE, "busy", status=503, content_type="text/plain",
                    headers={"Retry-After": "45"})
    outcome = await poller.poll(feed)
    assert (outcome.consecutive_failures, outcome.retry_after) == (6, 45.0)
    assert scheduler.delay_after(feed, outcome) == pytest.approx(60)
    feed_server.set(PAGE, live_page(UPDATES), content_type=HTML)
    outcome = await poller.poll(feed)
    assert outcome.status in ("unchanged", "not_modified")
    assert scheduler.delay_after(feed, outcome) == pytest.approx(10)


async def test_scheduler_backs_off_a_quiet_feed_and_returns_on_change(
        redis_client: aioredis.Redis, feed_server: FeedServer, fetcher: Fetcher) -> None:
    config = make_config(feed_server, path=PAGE, extra_defaults=CADENCE)
    feed = config.feed("live")
    poller = poller_for(config, redis_client, fetcher)
    scheduler = FeedScheduler(config, poller)
    feed_server.set(PAGE, live_page(UPDATES), content_type=HTML)
    assert scheduler.delay_after(feed, await poller.poll(feed)) == pytest.approx(10)
    # The last change was 31 minutes ago (past quiet_after): unchanged polls back off by half
    # again each time, up to max_interval.
    scheduler._pace[feed.name].last_change = time.monotonic() - 31 * 60
    delays = [scheduler.delay_after(feed, await poller.poll(feed)) for _ in range(8)]
    assert delays == pytest.approx([10, 15, 22.5, 33.75, 50.625, 75.9375, 113.90625, 170.859375])
    # A failure in between backs off as a failure and does not count as a quiet poll.
    feed_server.set(PAGE, "Not Found", status=404, content_type="text/plain")
    assert scheduler.delay_after(feed, await poller.poll(feed)) == pytest.approx(10)
    # A change brings the feed straight back to its interval.
    feed_server.set(PAGE, live_page([*UPDATES, Update(4, "News", "<p>More.</p>", 4)]),
                    content_type=HTML)
    outcome = await poller.poll(feed)
    assert outcome.new == 1
    assert scheduler.delay_after(feed, outcome) == pytest.approx(10)
    feed_server.set(PAGE, live_page([*UPDATES, Update(4, "News", "<p>More.</p>", 4)]),
                    content_type=HTML, send_etag=False)
    assert scheduler.delay_after(feed, await poller.poll(feed)) == pytest.approx(10)


async def test_scheduler_backs_off_when_redis_cannot_count_failures(
        redis_client: aioredis.Redis, feed_server: FeedServer, fetcher: Fetcher) -> None:
    """With Redis down a failed poll reports no streak; the scheduler counts it itself."""
    config = make_config(feed_server, path=PAGE, extra_defaults=CADENCE)
    feed = config.feed("live")
    scheduler = FeedScheduler(config, poller_for(config, redis_client, fetcher))
    lost = PollOutcome("live", "error", error="cannot reach Redis", consecutive_failures=0)
    assert [scheduler.delay_after(feed, lost) for _ in range(4)] == pytest.approx(
        [10, 20, 40, 60])
    assert scheduler.delay_after(feed, PollOutcome("live", "unchanged")) == pytest.approx(10)
