"""Per-feed polling leases with fencing tokens, so many pollers share the feeds.

Before polling a feed a poller `acquire`s its lease: `lw:{feed}:lease` = `{owner} {fence}`,
expiring, and a fresh fencing token from INCR `lw:{feed}:fence`. A poller that does not get the
lease skips its turn (another poller has it) and sets the feed's `wanted` flag. The lease is
held through the poll (the fetch timeout plus the parse budget); the poll's own script then
(`Keep`) holds it through the holder's next turn, which so needs no round trip to take it, or,
when the flag says another poller wants the feed, only until shortly before that turn, so the
feed may move: feeds spread over pollers started at different times, and a lone poller keeps
its feeds at one round trip per quiet poll. A poller that dies leaves its leases to expire, at
most a few seconds past the turn it had scheduled (`scheduler.HOLD_MARGIN`); the first other
poller whose turn comes then takes over.

The fence goes into the poll's script (see apply.lua): a plan whose token is no longer the
newest one is refused, so a poller whose lease ran out mid-poll (and was taken over) appends
nothing. Nothing is lost by a refused or never-made commit either: the state it would have
written is still the old one, and the next holder detects the same entries again.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from monitor.core import keys
from monitor.core.errors import StateError

# KEYS: 1 lease, 2 fence, 3 wanted flag[, 4 meta]. ARGV: 1 owner (no spaces), 2 hold in ms,
# 3 how long a refused poller's request stays (ms). Returns the new fence (with meta: {fence,
# the meta hash's fields and values}), or 0 when another owner holds the lease: then the flag
# asks the holder to hand the feed over at its next poll (see `Keep`).
_ACQUIRE = """
local current = redis.call('GET', KEYS[1])
if current and string.match(current, '^(%S+) ') ~= ARGV[1] then
  redis.call('SET', KEYS[3], '1', 'PX', ARGV[3])
  return 0
end
redis.call('DEL', KEYS[3])
local fence = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. fence, 'PX', ARGV[2])
if KEYS[4] then
  return {fence, redis.call('HGETALL', KEYS[4])}
end
return fence
"""

# KEYS: 1 lease[, 2 health]. ARGV: 1 `owner fence` as acquired, 2 ms from now (<= 0: release)[,
# 3 the next poll's time, recorded in health]. Returns 1 if the lease was still that one (and
# is now moved or released), else 0 (and records nothing: the feed's new holder does).
_KEEP = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if tonumber(ARGV[2]) <= 0 then
  redis.call('DEL', KEYS[1])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if KEYS[2] then
  redis.call('HSET', KEYS[2], 'next_poll', ARGV[3])
end
return 1
"""

# KEYS: 1 lease, 2 fence. ARGV: 1 owner. Deletes the lease if that owner holds it (any fence)
# and moves the fence on, so a plan of that owner's still in flight is refused.
_RELEASE_OWNED = """
local current = redis.call('GET', KEYS[1])
if current and string.match(current, '^(%S+) ') == ARGV[1] then
  redis.call('INCR', KEYS[2])
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def new_owner() -> str:
    """A token naming this process among all pollers: host, pid and a random part."""
    host = socket.gethostname().replace(" ", "_") or "host"
    return f"{host}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass(frozen=True, slots=True)
class Lease:
    """A poller's turn on one feed; `fence` goes into the feed's commit."""

    feed: str
    owner: str
    fence: int
    #: The feed's meta hash (validators) as read with the lease, when asked for.
    meta: dict[str, str] | None = field(default=None, compare=False, repr=False)

    @property
    def value(self) -> str:
        """What the lease key holds while this lease is current."""
        return f"{self.owner} {self.fence}"


@dataclass(frozen=True, slots=True)
class Keep:
    """How a poll's own script (monitor/poll/apply.lua) moves the lease once the poll is recorded:
    held `hold` seconds (through this poller's next turn, so that turn needs no `acquire`)
    unless another poller asked for the feed meanwhile, then `handover` seconds (ending before
    this poller's next turn; <= 0 releases it). `next_poll` is recorded in the feed's health."""

    hold: float
    handover: float
    next_poll: float | None = None


class FeedLeases:
    """Acquire, keep and release per-feed leases for one owner (one poller process)."""

    def __init__(self, client: aioredis.Redis, owner: str | None = None) -> None:
        self.client = client
        self.owner = owner or new_owner()
        if " " in self.owner:
            raise ValueError("a lease owner has no spaces")
        self._acquire = client.register_script(_ACQUIRE)
        self._keep = client.register_script(_KEEP)
        self._release_owned = client.register_script(_RELEASE_OWNED)

    async def acquire(self, feed: str, hold: float, *, meta: bool = False,
                      want: float = 60.0) -> Lease | None:
        """Take `feed`'s lease for `hold` seconds with a new fencing token, or None when
        another poller holds it (this poller skips its turn, and asks the holder, for `want`
        seconds, to hand the feed over). With `meta`, the lease also carries the feed's meta
        hash, read in the same round trip."""
        lease_keys = [keys.lease(feed), keys.fence(feed), keys.lease_wanted(feed)]
        if meta:
            lease_keys.append(keys.meta(feed))
        try:
            reply = await self._acquire(keys=lease_keys,
                                         args=[self.owner, _ms(hold), _ms(want)])
        except RedisError as exc:
            raise StateError(f"cannot take the lease of feed {feed!r}: {exc}") from exc
        if isinstance(reply, list):
            fence, flat = int(reply[0]), reply[1]
            return Lease(feed, self.owner, fence, dict(zip(flat[::2], flat[1::2], strict=True)))
        return Lease(feed, self.owner, int(reply)) if int(reply) else None

    async def keep(self, lease: Lease, seconds: float, next_poll: float | None = None) -> bool:
        """Make `lease` end `seconds` from now (release it if <= 0), if it is still the current
        one; False when it expired or was taken over meanwhile. With `next_poll` (epoch
        seconds), also record it in the feed's health, in the same round trip."""
        lease_keys = [keys.lease(lease.feed)]
        args: list[str | int | float] = [lease.value, _ms(seconds) if seconds > 0 else 0]
        if next_poll is not None:
            lease_keys.append(keys.health(lease.feed))
            args.append(next_poll)
        try:
            kept = await self._keep(keys=lease_keys, args=args)
        except RedisError as exc:
            raise StateError(f"cannot keep the lease of feed {lease.feed!r}: {exc}") from exc
        return bool(kept)

    async def release(self, lease: Lease) -> bool:
        """Give the turn back now (on shutdown), if `lease` is still the current one."""
        return await self.keep(lease, 0)

    async def release_all(self, feeds: Sequence[str]) -> int:
        """Release every lease of `feeds` this owner holds (a poller shutting down); returns
        how many it held."""
        if not feeds:
            return 0
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for feed in feeds:
                    await self._release_owned(keys=[keys.lease(feed), keys.fence(feed)],
                                              args=[self.owner],
                                              client=pipe)
                released = await pipe.execute()
        except RedisError as exc:
            raise StateError(f"cannot release leases: {exc}") from exc
        return sum(int(n) for n in released)

    async def holder(self, feed: str) -> tuple[str, int] | None:
        """(owner, fence) of `feed`'s current lease, or None when nobody holds it."""
        try:
            value = await self.client.get(keys.lease(feed))
        except RedisError as exc:
            raise StateError(f"cannot read the lease of feed {feed!r}: {exc}") from exc
        if not value:
            return None
        owner, _, fence = str(value).rpartition(" ")
        return owner, int(fence)


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
