"""Where the outbox keeps its deliveries: every Redis call of the outbox (its Lua scripts, in
`workers.outbox.scripts`, and the plain reads and writes around them), each raising
`StateError` when Redis fails (`state_errors`), and the one policy for trying a call again
while Redis is away (`until_answered`).
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from monitor.core import keys
from monitor.core.errors import StateError
from workers.outbox import scripts
from workers.outbox.scripts import stamp
from workers.render.alert import Alert
from workers.render.notices import OperatorNotice

log = structlog.get_logger("livewatch.outbox")

#: `alerts list` keeps this many most recent deliveries indexed.
RECENT_CAP = 10_000
_PREFIX = keys.delivery("")

P = ParamSpec("P")
T = TypeVar("T")


def state_errors(call: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """`call` with a failure of Redis (a RedisError, or an OSError from its socket) raised as
    StateError."""
    @functools.wraps(call)
    async def bounded(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await call(*args, **kwargs)
        except (RedisError, OSError) as exc:
            raise StateError(f"outbox: {call.__name__}: {exc}") from exc
    return bounded


async def until_answered(call: Callable[[], Awaitable[T]], give_up_after: float | None,
                         what: str, **ids: str) -> T:
    """`call()`, tried again while Redis does not answer (StateError: a restart, a failover),
    after pauses of 0.1 s doubling to 1 s, for up to `give_up_after` seconds (None: until it
    answers); then the last StateError. The outbox's one in-process retry policy
    (a failed send is retried by its schedule in Redis, not here)."""
    deadline = None if give_up_after is None else time.monotonic() + give_up_after
    pause = 0.1
    while True:
        try:
            return await call()
        except StateError as exc:
            if deadline is not None and time.monotonic() > deadline:
                raise
            if pause == 0.1:
                log.warning("Redis unavailable; retrying", action=what, error=str(exc), **ids)
        await asyncio.sleep(pause)
        pause = min(pause * 2, 1.0)


def _listing_fields(item: Alert | OperatorNotice) -> tuple[str, str, str, str]:
    """(kind, rule, feed, title) for listings."""
    if isinstance(item, OperatorNotice):
        notice = item.notice
        return "notice", "", notice.feed, f"{notice.kind}: {notice.message}"[:200]
    entry = item.event.entry
    return "alert", item.rule, item.event.feed, (entry.title or entry.text[:120] or entry.id)[:200]


class OutboxStore:
    """The outbox's deliveries, holds, dead letters and channel records in Redis."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._enqueue = client.register_script(scripts.ENQUEUE)
        self._claim = client.register_script(scripts.CLAIM)
        self._result = client.register_script(scripts.RESULT)
        self._renew = client.register_script(scripts.RENEW)
        self._flush = client.register_script(scripts.FLUSH)

    # -- deliveries -------------------------------------------------------------------------

    @state_errors
    async def enqueue(self, item: Alert | OperatorNotice, payload: bytes, *, now: float,
                      action: str, lease_until: float, due: float, reason: str, keep_due: bool,
                      rate: tuple[str, int, int, float, str],
                      silenced_ttl: int = 86400) -> tuple[str, str | None]:
        """Queue `item` (ENQUEUE) unless its id exists; `rate` is (window, limit, ttl, due,
        reason) of the channel's rate limit; action `silence` records it as held by the
        silence whose id is `reason`. Returns (status, claim token if claimed)."""
        window, limit, rate_ttl, rate_due, rate_reason = rate
        result: Any = await self._enqueue(
            keys=[keys.delivery(item.id), keys.OUTBOX_DUE, keys.OUTBOX_RECENT,
                  keys.held(item.channel), keys.hold(item.channel), keys.HELD_CHANNELS,
                  keys.rate(item.channel, window or "none")],
            args=[item.id, payload, item.channel, stamp(now), action, stamp(lease_until),
                  stamp(due), reason, "1" if keep_due else "0", limit, rate_ttl,
                  stamp(rate_due), rate_reason, RECENT_CAP, *_listing_fields(item),
                  max(int(silenced_ttl), 1)])
        status = str(result[0])
        return status, str(result[1]) if status == "claimed" else None

    @state_errors
    async def claim(self, now: float, lease_until: float,
                    count: int) -> list[tuple[str, str, str]]:
        """Claim up to `count` due deliveries until `lease_until`: (id, claim, payload) each."""
        flat: Any = await self._claim(keys=[keys.OUTBOX_DUE],
                                      args=[stamp(now), stamp(lease_until), count, _PREFIX])
        return [(flat[i], flat[i + 1], flat[i + 2]) for i in range(0, len(flat), 3)]

    @state_errors
    async def renew(self, delivery_id: str, claim: str, lease_until: float) -> bool:
        """Keep the lease until `lease_until` if `claim` is still current (RENEW)."""
        return bool(await self._renew(keys=[keys.delivery(delivery_id), keys.OUTBOX_DUE],
                                      args=[delivery_id, claim, stamp(lease_until)]))

    @state_errors
    async def record(self, delivery_id: str, claim: str, outcome: str, *, now: float,
                     next_due: float, error: str, delivered_ttl: int) -> str:
        """Record a send's outcome (RESULT): delivered, retry, dead or release."""
        result: Any = await self._result(
            keys=[keys.delivery(delivery_id), keys.OUTBOX_DUE, keys.OUTBOX_DEAD],
            args=[delivery_id, claim, outcome, stamp(now), stamp(next_due), error[:1000],
                  delivered_ttl])
        return str(result)

    @state_errors
    async def attempts(self, delivery_id: str) -> tuple[int, float | None]:
        """(attempts so far, when it was queued)."""
        raw = await self.client.hmget(keys.delivery(delivery_id), ["attempts", "created"])
        return int(raw[0] or 0), float(raw[1]) if raw[1] else None

    @state_errors
    async def next_due(self) -> float | None:
        """When the soonest queued delivery is due."""
        first: Any = await self.client.zrange(keys.OUTBOX_DUE, 0, 0, withscores=True)
        return float(first[0][1]) if first else None

    # -- holds (digests, rate-limit spill, quiet hours) -------------------------------------

    @state_errors
    async def held_channels(self) -> list[str]:
        """Channels with held deliveries, sorted."""
        channels: Any = await self.client.smembers(keys.HELD_CHANNELS)
        return sorted(channels)

    @state_errors
    async def next_hold(self) -> float | None:
        """When the soonest hold is due."""
        dues = []
        channels: Any = await self.client.smembers(keys.HELD_CHANNELS)
        for channel in channels:
            due = await self.client.hget(keys.hold(channel), "due")
            if due:
                dues.append(float(due))
        return min(dues) if dues else None

    @state_errors
    async def postpone_hold(self, channel: str, due: float) -> None:
        """Move `channel`'s hold to `due` (quiet hours)."""
        await self.client.hset(keys.hold(channel), "due", stamp(due))

    @state_errors
    async def flush(self, channel: str, now: float, max_items: int,
                    delivered_ttl: int) -> list[str]:
        """Release `channel`'s due hold (FLUSH): [kind, delivery id], or [] if none."""
        result: Any = await self._flush(
            keys=[keys.held(channel), keys.hold(channel), keys.HELD_CHANNELS,
                  keys.OUTBOX_DUE, keys.OUTBOX_RECENT],
            args=[channel, stamp(now), max_items, _PREFIX, delivered_ttl])
        return [str(part) for part in result or []]

    # -- channels ---------------------------------------------------------------------------

    @state_errors
    async def count(self, channel: str, outcome: str) -> None:
        """Add one to the channel's counter of `outcome` (for `status`)."""
        await self.client.hincrby(keys.CHANNEL_STATS, f"{channel}:{outcome}", 1)

    @state_errors
    async def disabled_reason(self, channel: str) -> str | None:
        """Why `channel` is disabled, or None when it is not."""
        raw = await self.client.hget(keys.DISABLED_CHANNELS, channel)
        return str(json.loads(raw).get("reason", "disabled")) if raw else None

    @state_errors
    async def disable(self, channel: str, record: dict[str, Any]) -> bool:
        """Disable `channel` with `record` ({reason, at, fingerprint}); False if it was."""
        return bool(await self.client.hsetnx(keys.DISABLED_CHANNELS, channel,
                                             json.dumps(record)))

    @state_errors
    async def disabled(self) -> dict[str, dict[str, Any]]:
        """Disabled channels -> {reason, at, fingerprint} (unreadable records left out)."""
        raw: Any = await self.client.hgetall(keys.DISABLED_CHANNELS)
        out: dict[str, dict[str, Any]] = {}
        for channel, value in raw.items():
            try:
                out[channel] = json.loads(value)
            except ValueError:
                continue
        return out

    @state_errors
    async def enable(self, channel: str) -> bool:
        """Re-enable a disabled channel; False if it was not disabled."""
        return bool(await self.client.hdel(keys.DISABLED_CHANNELS, channel))
