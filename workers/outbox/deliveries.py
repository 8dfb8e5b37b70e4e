"""What `livewatch alerts ...` reads and changes in the outbox: listings of deliveries, dead
letters queued again, channels re-enabled. Sending belongs to `workers.outbox.outbox`. A failure of
Redis raises StateError.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from monitor.core import keys
from workers.outbox import scripts
from workers.outbox.scripts import stamp
from workers.outbox.store import OutboxStore, state_errors


@dataclass(frozen=True)
class Delivery:
    """One delivery as `alerts list` and `alerts dead` show it."""

    id: str
    kind: str
    channel: str
    state: str
    attempts: int
    created: float
    rule: str
    feed: str
    title: str
    last_error: str | None
    last_attempt: float | None
    next_at: float | None
    delivered_at: float | None
    digest: str | None
    #: The silence that held it (state `silenced`).
    silenced_by: str | None = None

    @classmethod
    def from_hash(cls, delivery_id: str, raw: Mapping[str, str]) -> Delivery:
        """From the delivery's Redis hash."""
        def number(name: str) -> float | None:
            return float(raw[name]) if raw.get(name) else None

        return cls(id=delivery_id, kind=raw.get("kind", "?"), channel=raw.get("channel", "?"),
                   state=raw.get("state", "?"), attempts=int(raw.get("attempts") or 0),
                   created=float(raw.get("created") or 0), rule=raw.get("rule", ""),
                   feed=raw.get("feed", ""), title=raw.get("title", ""),
                   last_error=raw.get("last_error") or None,
                   last_attempt=number("last_attempt"), next_at=number("next_at"),
                   delivered_at=number("delivered_at"), digest=raw.get("digest") or None,
                   silenced_by=raw.get("silenced_by") or None)


async def recent(client: aioredis.Redis, limit: int = 50, *, channel: str | None = None,
                 state: str | None = None) -> list[Delivery]:
    """The most recent deliveries, newest first (optionally one channel or state)."""
    return await _listing(client, keys.OUTBOX_RECENT, limit, channel=channel, state=state)


async def dead(client: aioredis.Redis, limit: int = 100, *,
               channel: str | None = None) -> list[Delivery]:
    """Dead-lettered deliveries, newest first."""
    return await _listing(client, keys.OUTBOX_DEAD, limit, channel=channel, state="dead")


@state_errors
async def _listing(client: aioredis.Redis, index: str, limit: int, *, channel: str | None,
                   state: str | None) -> list[Delivery]:
    found: list[Delivery] = []
    start, page = 0, max(limit, 100)
    while len(found) < limit:
        ids: Any = await client.zrevrange(index, start, start + page - 1)
        if not ids:
            break
        start += page
        async with client.pipeline(transaction=False) as pipe:
            for delivery_id in ids:
                pipe.hgetall(keys.delivery(delivery_id))
            rows = await pipe.execute()
        for delivery_id, raw in zip(ids, rows, strict=True):
            if not raw:
                continue
            record = Delivery.from_hash(delivery_id, raw)
            if (channel is None or record.channel == channel) and \
                    (state is None or record.state == state):
                found.append(record)
    return found[:limit]


@state_errors
async def requeue(client: aioredis.Redis, ids: Sequence[str]) -> int:
    """Queue dead deliveries again; returns how many were dead (and are queued now)."""
    script = client.register_script(scripts.REQUEUE)
    count = 0
    for delivery_id in ids:
        count += int(await script(
            keys=[keys.delivery(delivery_id), keys.OUTBOX_DUE, keys.OUTBOX_DEAD],
            args=[delivery_id, stamp(time.time())]))
    return count


async def enable(client: aioredis.Redis, channel: str) -> bool:
    """Re-enable a channel disabled after HTTP 410; False if it was not disabled."""
    return await OutboxStore(client).enable(channel)


async def disabled_channels(client: aioredis.Redis) -> dict[str, dict[str, Any]]:
    """Disabled channels -> {reason, at, fingerprint}."""
    return await OutboxStore(client).disabled()

