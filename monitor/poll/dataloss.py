"""Noticing that Redis lost livewatch's state: restarted without persistence, failed over to an
empty replica, flushed.

An empty Redis gets a random token under `keys.EPOCH` from the first poller to look (SET NX);
on Redis Cluster each partition has its own (`Partition.epoch`), so a master that comes back
empty is noticed whichever slots it serves.
Every poller checks it every few seconds: when the token it knew is gone and its own new one
was the one stored, it sends one `state_lost` notice (one, however many pollers run: only one
SET NX wins). Nothing else needs repairing by hand: feeds without state baseline again on their
next poll (recording what they show, alerting on none of it), and workers recreate their
consumer group (`workers.consume.consumer`).
"""

from __future__ import annotations

import time
import uuid

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from monitor.core import keys
from monitor.core.errors import StateError
from monitor.core.models import Notice
from monitor.poll.state import FeedState

log = structlog.get_logger("livewatch.dataloss")

#: Seconds between two checks of the epoch token.
CHECK_EVERY = 2.0
MESSAGE = ("Redis lost livewatch's state (it restarted empty, failed over to an empty replica "
           "or was flushed). Every feed baselines again on its next poll: what feeds show now "
           "is recorded without alerting. Events, deliveries and notices queued before the "
           "loss are gone; alerts already sent are not sent again.")


class EpochWatch:
    """Tells, once per loss, that Redis came back without livewatch's data."""

    def __init__(self, client: aioredis.Redis, state: FeedState) -> None:
        self.client = client
        self.state = state
        #: The token last seen per partition (one on a single Redis server).
        self.epochs: dict[str, str | None] = {}

    async def check(self) -> bool:
        """Compare the epoch token with the one seen before; True if this check found a loss
        (and sent the notice)."""
        parts = keys.partitions()
        tokens = [uuid.uuid4().hex for _ in parts]
        try:  # one round trip: SET NX, then GET, of every partition's token
            async with self.client.pipeline(transaction=False) as pipe:
                for part, token in zip(parts, tokens, strict=True):
                    pipe.set(part.epoch, token, nx=True)
                    pipe.get(part.epoch)
                replies = await pipe.execute()
        except RedisError as exc:
            raise StateError(f"cannot read the epoch token: {exc}") from exc
        lost = False
        for index, part in enumerate(parts):
            created, current = bool(replies[2 * index]), replies[2 * index + 1]
            lost = lost or (created and self.epochs.get(part.epoch) is not None)
            self.epochs[part.epoch] = current if isinstance(current, str) else None
        if lost:
            log.warning("Redis lost livewatch's state; feeds baseline again")
            await self.state.notice(Notice("state_lost", "*", MESSAGE, time.time()))
        return lost
