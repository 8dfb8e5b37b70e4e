"""workers.outbox.store: a Redis that does not answer is a StateError at the outbox's boundary
(the sender, the loop and `livewatch alerts` catch that, never redis-py's own errors), and the
one in-process retry policy tries a call again until Redis answers or its time is up."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from monitor.core.errors import StateError
from monitor.ops.embedded import free_port
from workers.outbox import deliveries
from workers.outbox.store import OutboxStore, until_answered


@pytest.fixture
async def unreachable() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis(port=free_port(), decode_responses=True, socket_connect_timeout=0.2,
                            retry=Retry(NoBackoff(), 0))
    yield client
    await client.aclose()


async def test_every_call_raises_state_error(unreachable: aioredis.Redis) -> None:
    store = OutboxStore(unreachable)
    calls = [store.claim(0.0, 1.0, 5), store.renew("d", "1", 1.0), store.next_due(),
             store.record("d", "1", "delivered", now=0.0, next_due=0.0, error="",
                          delivered_ttl=60),
             store.held_channels(), store.next_hold(), store.disabled(), store.enable("hook"),
             store.disabled_reason("hook"), store.count("hook", "delivered"),
             deliveries.recent(unreachable), deliveries.requeue(unreachable, ["d"])]
    for call in calls:
        with pytest.raises(StateError, match="outbox: "):
            await call


async def test_until_answered_retries_then_gives_up() -> None:
    tries: list[float] = []

    async def flaky() -> str:
        tries.append(time.monotonic())
        if len(tries) < 3:
            raise StateError("down")
        return "ok"

    assert await until_answered(flaky, None, "test") == "ok"
    assert len(tries) == 3 and tries[2] - tries[0] >= 0.3  # paused 0.1 s, then 0.2 s

    async def down() -> str:
        raise StateError("still down")

    started = time.monotonic()
    with pytest.raises(StateError, match="still down"):
        await until_answered(down, 0.25, "test")
    assert 0.25 <= time.monotonic() - started < 2.0


async def test_other_errors_are_not_retried() -> None:
    async def bug() -> None:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        await asyncio.wait_for(until_answered(bug, None, "test"), 1.0)
