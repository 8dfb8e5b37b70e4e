"""Redis state: the atomic diff commit on a real redis-server."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from service import commit, record_success

from monitor.core import keys
from monitor.core.errors import StateError
from monitor.core.models import Entry, Event, event_from_stream
from monitor.poll.decide import Plan
from monitor.poll.diff import diff_entries
from monitor.poll.state import FeedState


def entry(i: str, text: str = "body") -> Entry:
    return Entry(id=i, url=f"https://news.example.org/live#{i}", title=f"Update {i}", text=text)


async def stream_events(client: aioredis.Redis) -> list[Event]:
    return [event_from_stream(f) for _, f in await client.xrange(keys.EVENTS_STREAM)]


async def commit_entries(state: FeedState, entries: list[Entry], *, baseline: bool) -> int:
    snap = await state.load("f")
    changes = diff_entries(snap.fingerprints, entries, baseline=baseline)
    result = await commit(state, "f", "https://news.example.org/feed", changes,
                          baseline=baseline, etag='"e1"', body_hash="h")
    return result.appended


async def test_baseline_then_new_and_edit(redis_client: aioredis.Redis) -> None:
    state = FeedState(redis_client, max_entries=100, stream_maxlen=1000)
    assert await commit_entries(state, [entry("a"), entry("b")], baseline=True) == 0
    snap = await state.load("f")
    assert snap.baselined and snap.etag == '"e1"' and set(snap.fingerprints) == {"a", "b"}
    assert await commit_entries(state, [entry("c"), entry("a", "edited body"), entry("b")],
                        baseline=False) == 2
    events = await stream_events(redis_client)
    assert [(e.kind, e.entry.id) for e in events] == [("updated", "a"), ("new", "c")]
    assert events[0].previous_text == "body" and events[0].entry.text == "edited body"


async def test_replayed_commit_never_duplicates(redis_client: aioredis.Redis) -> None:
    """Two pollers (or a retry) committing the same diff: the compare-and-set drops the second."""
    state = FeedState(redis_client, max_entries=100, stream_maxlen=1000)
    await commit_entries(state, [entry("a")], baseline=True)
    snap = await state.load("f")
    changes = diff_entries(snap.fingerprints, [entry("a"), entry("n")], baseline=False)
    results = await asyncio.gather(*(
        commit(state, "f", "u", changes, baseline=False, etag=None, last_modified=None,
                     body_hash="x") for _ in range(5)))
    assert sum(r.appended for r in results) == 1
    assert len(await stream_events(redis_client)) == 1


async def test_baseline_race_is_reported(redis_client: aioredis.Redis) -> None:
    state = FeedState(redis_client, max_entries=100, stream_maxlen=1000)
    changes = diff_entries({}, [entry("a")], baseline=True)
    first = await commit(state, "f", "u", changes, baseline=True, etag=None,
                               last_modified=None, body_hash="x")
    second = await commit(state, "f", "u", changes, baseline=True, etag=None,
                                last_modified=None, body_hash="x")
    assert not first.baseline_moved and second.baseline_moved


async def test_fingerprints_are_capped_oldest_first(redis_client: aioredis.Redis) -> None:
    state = FeedState(redis_client, max_entries=10, stream_maxlen=1000)
    await commit_entries(state, [entry(f"a{i}") for i in range(8)], baseline=True)
    await commit_entries(state, [entry(f"b{i}") for i in range(6)], baseline=False)
    snap = await state.load("f")
    assert len(snap.fingerprints) == 10
    assert await redis_client.hlen(keys.texts("f")) == 10
    assert {f"b{i}" for i in range(6)} <= set(snap.fingerprints)


async def test_failures_are_counted_and_reset(redis_client: aioredis.Redis) -> None:
    state = FeedState(redis_client, max_entries=10, stream_maxlen=1000)
    assert await state.record_failure("f", "HTTP 500") == 1
    assert await state.record_failure("f", "HTTP 500") == 2
    health = await state.health("f")
    assert health.consecutive_failures == 2 and health.last_error == "HTTP 500"
    await record_success(state, "f", "ok")
    health = await state.health("f")
    assert health.consecutive_failures == 0 and health.total_failures == 2


async def test_quiet_plans_batched_survive_a_script_flush_and_report_a_dead_redis(
        redis_client: aioredis.Redis) -> None:
    """Quiet plans share a pipeline; a Redis that lost its scripts (restarted) gets them
    loaded again, and one that does not answer fails each plan as StateError."""
    state = FeedState(redis_client, max_entries=10, stream_maxlen=1000, quiet_batch=0.01)
    await redis_client.script_flush()
    plans = [state.apply(f"f{i}", "u", Plan("not_modified")) for i in range(5)]
    assert all(not r.superseded for r in await asyncio.gather(*plans))
    assert {(await state.health(f"f{i}")).last_status for i in range(5)} == {"not_modified"}
    dead = aioredis.from_url("redis://127.0.0.1:1/0", decode_responses=True)
    gone = FeedState(dead, max_entries=10, stream_maxlen=1000, quiet_batch=0.01)
    failed = await asyncio.gather(*(gone.apply(f"f{i}", "u", Plan("unchanged"))
                                    for i in range(3)), return_exceptions=True)
    assert all(isinstance(r, StateError) for r in failed), failed
    await dead.aclose()
