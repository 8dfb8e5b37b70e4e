"""WebSub subscriptions in Redis, so a restart and every poller process share them.

Per feed a hash (`keys.websub`); the callback token -> feed index (`keys.WEBSUB_CALLBACKS`);
and a sorted set of when each subscription next needs work (`keys.WEBSUB_DUE`), which a
process claims by moving the feed's due time forward by a grace period (a Lua check-and-set:
one process wins), so work lost to a crash or an error is due again after the grace.
Every call raises `StateError` when Redis fails.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any, Literal, TypeVar, cast

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from monitor.core import keys
from monitor.core.errors import StateError

State = Literal["pending", "verified", "denied", "unsubscribing"]
Mode = Literal["subscribe", "unsubscribe", ""]

T = TypeVar("T")


def _lua(name: str) -> str:
    return files("monitor.push").joinpath(name).read_text(encoding="utf-8")


#: The subscription scripts (each file's header says its KEYS and ARGV).
_UPDATE, _CLAIM, _CREATE = _lua("update.lua"), _lua("claim.lua"), _lua("create.lua")

#: A claimed feed is due again this many seconds later unless its work reschedules it.
CLAIM_GRACE = 120.0


@dataclass(frozen=True, slots=True)
class Subscription:
    """One feed's subscription as stored (`secret` is never shown)."""

    feed: str
    hub: str
    topic: str
    token: str
    secret: str = field(repr=False)
    state: State = "pending"
    #: The mode of the request awaiting the hub's verification ("" when none).
    requested: Mode = ""
    lease_seconds: float = 0.0
    lease_until: float = 0.0
    attempts: int = 0
    #: A hub and topic we asked to unsubscribe from after the advert changed.
    old_hub: str = ""
    old_topic: str = ""
    denied: str = ""

    @classmethod
    def read(cls, feed: str, fields: dict[str, str]) -> Subscription | None:
        """The subscription in hash `fields`, or None when there is none."""
        if not fields.get("token") or not fields.get("hub"):
            return None
        state = fields.get("state", "pending")
        requested = fields.get("requested", "")
        return cls(
            feed=feed, hub=fields["hub"], topic=fields.get("topic", ""), token=fields["token"],
            secret=fields.get("secret", ""),
            state=state if state in ("pending", "verified", "denied", "unsubscribing")
            else "pending",  # type: ignore[arg-type]
            requested=requested if requested in ("subscribe", "unsubscribe")
            else "",  # type: ignore[arg-type]
            lease_seconds=float(fields.get("lease_seconds") or 0),
            lease_until=float(fields.get("lease_until") or 0),
            attempts=int(fields.get("attempts") or 0), old_hub=fields.get("old_hub", ""),
            old_topic=fields.get("old_topic", ""), denied=fields.get("denied", ""))


class Subscriptions:
    """Reads and writes subscriptions (a `decode_responses=True` client)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client

    async def _call(self, call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await call()
        except (RedisError, OSError) as exc:
            raise StateError(f"Redis: {exc}") from exc

    async def get(self, feed: str) -> Subscription | None:
        """The feed's subscription, if any."""
        fields = await self._call(lambda: self.client.hgetall(keys.websub(feed)))
        return Subscription.read(feed, cast(dict[str, str], fields))

    async def by_token(self, token: str) -> Subscription | None:
        """The subscription whose callback ends in `token`, if any."""
        feed = await self._call(lambda: self.client.hget(keys.WEBSUB_CALLBACKS, token))
        if feed is None:
            return None
        sub = await self.get(str(feed))
        return sub if sub is not None and sub.token == token else None

    async def feeds(self) -> list[str]:
        """Every feed with a subscription (from the callback index)."""
        index = await self._call(lambda: self.client.hgetall(keys.WEBSUB_CALLBACKS))
        return sorted({str(feed) for feed in index.values()})

    async def save(self, sub: Subscription, *, due: float | None) -> None:
        """Write `sub` whole (and its callback index entry); schedule it at `due` (epoch
        seconds), or unschedule it when None."""
        mapping: dict[Any, Any] = dict(_fields(sub))

        async def write() -> None:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.hset(keys.websub(sub.feed), mapping=mapping)
                pipe.hset(keys.WEBSUB_CALLBACKS, sub.token, sub.feed)
                if due is None:
                    pipe.zrem(keys.WEBSUB_DUE, sub.feed)
                else:
                    pipe.zadd(keys.WEBSUB_DUE, {sub.feed: due})
                await pipe.execute()

        await self._call(write)

    async def create(self, sub: Subscription, *, due: float) -> Subscription:
        """Store `sub` scheduled at `due` unless the feed already has a subscription (two
        pollers subscribing at once); the subscription stored, `sub` or the other one."""
        flat: list[str] = []
        for name, value in _fields(sub).items():
            flat += [name, value]
        stored = await self._call(lambda: self.client.eval(
            _CREATE, 3, keys.websub(sub.feed), keys.WEBSUB_CALLBACKS, keys.WEBSUB_DUE,
            sub.feed, sub.token, repr(due), *flat))
        pairs = [str(v) for v in cast(list[Any], stored)]
        found = Subscription.read(sub.feed, dict(zip(pairs[::2], pairs[1::2], strict=True)))
        return found if found is not None else sub

    async def update(self, feed: str, fields: dict[str, str | float | int], *,
                     due: float | None = None, unschedule: bool = False) -> bool:
        """Set only `fields` of an existing subscription (two hub callbacks at once each
        change their own fields); schedule it at `due`, or unschedule it. False when there
        is no subscription any more."""
        flat: list[str] = []
        for name, value in fields.items():
            flat += [name, repr(value) if isinstance(value, float) else str(value)]
        mode = "unschedule" if unschedule else "" if due is None else repr(due)
        done = await self._call(lambda: self.client.eval(
            _UPDATE, 2, keys.websub(feed), keys.WEBSUB_DUE, feed, mode, *flat))
        return bool(done)

    async def schedule(self, feed: str, due: float) -> None:
        """Have the feed's subscription looked at again at `due` (epoch seconds)."""
        await self._call(lambda: self.client.zadd(keys.WEBSUB_DUE, {feed: due}))

    async def schedule_if_absent(self, feed: str, due: float) -> bool:
        """Schedule the feed at `due` unless it is scheduled already (ZADD NX); True if so."""
        added = await self._call(lambda: self.client.zadd(keys.WEBSUB_DUE, {feed: due}, nx=True))
        return bool(added)

    async def unschedule(self, feed: str) -> None:
        """Drop the feed from the due set."""
        await self._call(lambda: self.client.zrem(keys.WEBSUB_DUE, feed))

    async def remove(self, sub: Subscription) -> None:
        """Forget the subscription, its callback token and its schedule."""

        async def delete() -> None:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.delete(keys.websub(sub.feed))
                pipe.hdel(keys.WEBSUB_CALLBACKS, sub.token)
                pipe.zrem(keys.WEBSUB_DUE, sub.feed)
                await pipe.execute()

        await self._call(delete)

    async def due(self, now: float, limit: int = 100) -> list[str]:
        """Feeds whose subscriptions need work by `now`."""
        found = await self._call(lambda: self.client.zrangebyscore(
            keys.WEBSUB_DUE, "-inf", now, start=0, num=limit))
        return [str(feed) for feed in found]

    async def claim(self, feed: str, now: float | None = None) -> bool:
        """Take the feed's due work (True for one process only): its due time moves
        `CLAIM_GRACE` ahead, so it is due again if this process never reschedules it."""
        at = time.time() if now is None else now
        claimed = await self._call(lambda: self.client.eval(
            _CLAIM, 1, keys.WEBSUB_DUE, feed, repr(at), repr(at + CLAIM_GRACE)))
        return bool(claimed)


def _fields(sub: Subscription) -> dict[str, str]:
    return {"hub": sub.hub, "topic": sub.topic, "token": sub.token, "secret": sub.secret,
            "state": sub.state, "requested": sub.requested,
            "lease_seconds": repr(sub.lease_seconds), "lease_until": repr(sub.lease_until),
            "attempts": str(sub.attempts), "old_hub": sub.old_hub, "old_topic": sub.old_topic,
            "denied": sub.denied, "updated": repr(time.time())}
