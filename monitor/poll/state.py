"""Per-feed state in Redis: fingerprints, last texts, HTTP validators, poll health.

`FeedState.apply` writes one poll's plan (monitor.poll.decide) in one Lua script (apply.lua
for a parsed document, quiet.lua for a 304 or an unchanged body): the diff, its events on the
entries stream, the feed's meta, its health and the poller's lease, so a crash can neither lose
nor duplicate an event, and a quiet poll costs one round trip.
Every Redis error here is raised as `StateError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.resources import files
from typing import TYPE_CHECKING, Any, cast

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError

from monitor.core import keys
from monitor.core.errors import StateError
from monitor.core.models import Event, Notice
from monitor.poll.decide import Plan, Snapshot, failing_notice, posted, recovered_notice

if TYPE_CHECKING:
    from monitor.poll.lease import Keep, Lease

__all__ = ["Applied", "FeedState", "Health", "Snapshot"]

def _lua(name: str) -> str:
    return files("monitor.poll").joinpath(name).read_text(encoding="utf-8")


#: The plan scripts, each after the good poll's health and lease (goodpoll.lua).
_APPLY_LUA = _lua("goodpoll.lua") + _lua("apply.lua")
_QUIET_LUA = _lua("goodpoll.lua") + _lua("quiet.lua")
#: Seconds a quiet plan (a 304 or an unchanged body: health, validators, lease) waits for
#: others to share its round trip (`_Batch`). A changed plan never waits.
QUIET_BATCH_WINDOW = 0.1
#: Quiet plans sent at once at the most.
QUIET_BATCH_MAX = 200


@dataclass(frozen=True, slots=True)
class Applied:
    """Outcome of `FeedState.apply`."""

    new: int = 0
    updated: int = 0
    skipped: int = 0
    #: The snapshot's baseline state moved (another poller baselined): nothing was written.
    baseline_moved: bool = False
    #: The poller's fencing token was no longer the feed's newest: nothing was written.
    superseded: bool = False
    #: The lease is held through this poller's next turn (not handed over, not released).
    held: bool = False

    @property
    def appended(self) -> int:
        """Events appended to the stream."""
        return self.new + self.updated


@dataclass(frozen=True, slots=True)
class Health:
    """Poll health of one feed, as stored in Redis."""

    consecutive_failures: int = 0
    total_failures: int = 0
    last_status: str | None = None
    last_error: str | None = None
    last_poll: float | None = None
    last_success: float | None = None


class _Batch:
    """Calls of one script sent together: those queued within `window` seconds (or `limit`
    of them) go in one pipeline, one round trip, whose replies are handed back one by one.
    Quiet polls are most polls, and each alone would be a round trip and an event-loop
    wakeup of its own: the largest part of a quiet poll's CPU after the fetch."""

    def __init__(self, client: aioredis.Redis, script: AsyncScript, window: float,
                 limit: int) -> None:
        self.client = client
        self.script = script
        self.window = window
        self.limit = limit
        self._queued: list[tuple[list[str], list[Any], asyncio.Future[Any]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._sending: set[asyncio.Task[None]] = set()

    async def call(self, script_keys: list[str], args: list[Any]) -> Any:
        """The script's reply for `script_keys` and `args`, sent with the others queued."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queued.append((script_keys, args, future))
        if len(self._queued) >= self.limit:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self.window, self._flush)
        return await future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._queued = self._queued, []
        task = asyncio.create_task(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[tuple[list[str], list[Any], asyncio.Future[Any]]]) -> None:
        # EVALSHA itself: a Script in a pipeline costs a SCRIPT EXISTS round trip each time.
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for script_keys, args, _ in batch:
                    pipe.evalsha(self.script.sha, len(script_keys), *script_keys, *args)
                replies = await pipe.execute(raise_on_error=False)
        except Exception as exc:  # the connection failed: every call of the batch did
            replies = [exc] * len(batch)
        for (script_keys, args, future), reply in zip(batch, replies, strict=True):
            if future.done():  # its poll was cancelled (shutdown)
                continue
            if isinstance(reply, NoScriptError):  # Redis restarted: load it, once per call
                try:
                    reply = await self.script(keys=script_keys, args=args)
                except Exception as exc:
                    reply = exc
                if future.done():
                    continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)


class FeedState:
    """Redis-backed state of feeds. The client must use `decode_responses=True`."""

    def __init__(self, client: aioredis.Redis, *, max_entries: int, stream_maxlen: int,
                 failing_after: int = 5, quiet_batch: float = QUIET_BATCH_WINDOW) -> None:
        self.client = client
        self.max_entries = max_entries
        self.stream_maxlen = stream_maxlen
        #: Consecutive failed polls that make one "failing" notice (0: never).
        self.failing_after = failing_after
        self._apply = client.register_script(_APPLY_LUA)
        #: Quiet plans' script, their calls batched (`quiet_batch` seconds; 0: each alone).
        self._quiet = _Batch(client, client.register_script(_QUIET_LUA), quiet_batch,
                             QUIET_BATCH_MAX)
        self._batch = quiet_batch > 0

    async def load(self, feed: str, *, fingerprints: bool = True) -> Snapshot:
        """Read a feed's validators and (unless `fingerprints` is false, as before a fetch
        that may well be a 304: they are ~50 fields) its fingerprints, in one round trip."""
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.hgetall(keys.meta(feed))
                if fingerprints:
                    pipe.hgetall(keys.fingerprints(feed))
                meta, *rest = await pipe.execute()
        except RedisError as exc:
            raise StateError(f"cannot read state of feed {feed!r}: {exc}") from exc
        return Snapshot.read(meta, rest[0] if rest else {})

    async def fingerprints(self, feed: str) -> dict[str, str]:
        """Entry id -> content version of every entry recorded for `feed`."""
        with _boundary(f"read the fingerprints of feed {feed!r}"):
            return cast(dict[str, str], await self.client.hgetall(keys.fingerprints(feed)))

    async def apply(self, feed: str, feed_url: str, plan: Plan, *, etag: str | None = None,
                    last_modified: str | None = None, body_hash: str = "",
                    fence: int | None = None, lease: Lease | None = None,
                    keep: Keep | None = None, now: float | None = None) -> Applied:
        """Write `plan` atomically: its changes (each a compare-and-set on the entry's
        version), their events, its notice, the fetch's validators (`etag`, `last_modified`)
        and `body_hash` as the plan says, the feed's meta and a good poll's health; with
        `lease` and `keep`, move the lease as `keep` says. With `fence` (the poller's lease
        token, see monitor.poll.lease) nothing is written unless it is still the feed's newest
        token. A feed reported failing gets one "recovered" notice."""
        now = time.time() if now is None else now
        fence = lease.fence if lease is not None else fence
        token = "" if fence is None else str(fence)
        value, hold, handover, next_poll = (
            (lease.value, _ms(keep.hold), _ms(keep.handover),
             "" if keep.next_poll is None else keep.next_poll)
            if lease is not None and keep is not None else ("", 0, 0, ""))
        try:
            if plan.validators != "replace":  # a 304 or the body last parsed: quiet.lua
                script_keys = [keys.meta(feed), keys.fence(feed), keys.health(feed),
                               keys.lease(feed), keys.lease_wanted(feed)]
                args: list[Any] = ["1" if plan.validators == "touch" else "0", etag or "",
                                   last_modified or "", token, now, plan.status, value, hold,
                                   handover, next_poll]
                reply = cast(list[Any], await self._quiet.call(script_keys, args)
                             if self._batch else
                             await self._quiet.script(keys=script_keys, args=args))
            else:
                part = keys.partition(feed)
                reply = cast(list[Any], await self._apply(
                    keys=[keys.fingerprints(feed), keys.texts(feed), keys.order(feed),
                          keys.meta(feed), part.events, part.notices,
                          keys.fence(feed), keys.health(feed), keys.lease(feed),
                          keys.lease_wanted(feed)],
                    args=self._plan_args(feed, feed_url, plan, etag, last_modified, body_hash,
                                         token, now, (value, hold, handover, next_poll))))
        except RedisError as exc:
            raise StateError(f"cannot record state of feed {feed!r}: {exc}") from exc
        if reply[0] == -1:
            return Applied(baseline_moved=True)
        if reply[0] == -2:
            return Applied(superseded=True)
        new, updated, skipped, held, streak, since, recovered = reply
        if recovered:  # HDEL is atomic: exactly one poller sees the notice was out
            await self.notice(recovered_notice(feed, int(streak or 0),
                                               float(since) if since else None, now))
        return Applied(int(new), int(updated), int(skipped), held=held == 1)

    def _plan_args(self, feed: str, feed_url: str, plan: Plan, etag: str | None,
                   last_modified: str | None, body_hash: str, token: str, now: float,
                   lease: tuple[str, int, int, float | str]) -> list[Any]:
        """apply.lua's arguments for `plan` (see its header)."""
        meta = list(plan.meta.items())
        if posted(plan):  # the feed is hot (monitor.poll.cadence)
            meta.append(("last_post", repr(now)))
        args: list[Any] = [
            "1" if plan.baseline else "0", self.max_entries, self.stream_maxlen,
            etag or "", last_modified or "", body_hash,
            plan.notice.encode() if plan.notice else "", token, now, "ok", plan.kind or "",
            "0" if plan.flood else "1", *lease, len(meta), len(plan.changes)]
        for name, value in meta:
            args += [name, value]
        for change in plan.changes:
            entry = change.entry
            payload = Event(kind=change.kind, feed=feed, feed_url=feed_url, entry=entry,
                            version=change.version, detected_at=now).encode() \
                if change.emit else ""
            texts = json.dumps({"title": entry.title, "text": entry.text}, ensure_ascii=False)
            args += [entry.id, change.previous_version or "", change.version, texts,
                     "1" if change.emit else "0", payload]
        return args

    async def record_failure(self, feed: str, reason: str) -> int:
        """Count a failed poll; returns the number of consecutive failures. The poll that
        makes the streak reach `failing_after` sends one "failing" notice."""
        now = time.time()
        with _boundary(f"record the failure of feed {feed!r}"):
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.hincrby(keys.health(feed), "consecutive_failures", 1)
                pipe.hincrby(keys.health(feed), "total_failures", 1)
                pipe.hset(keys.health(feed), mapping={
                    "last_status": "error", "last_error": reason[:500], "last_poll": now})
                streak, _, _ = await pipe.execute()
            notice = failing_notice(feed, int(streak), self.failing_after, reason, now)
            if notice is not None:  # one poller sees the streak reach it
                await self.client.hset(keys.health(feed), "failing_since", now)
        if notice is not None:
            await self.notice(notice)
        return int(streak)

    async def notice(self, notice: Notice) -> None:
        """Append an operator notice to the notices stream of its feed's partition (the first
        for a notice about no feed in particular, `*`)."""
        part = keys.partitions()[0] if notice.feed == "*" else keys.partition(notice.feed)
        with _boundary(f"append a {notice.kind} notice"):
            await self.client.xadd(part.notices, {"notice": notice.encode()},
                                   maxlen=self.stream_maxlen, approximate=True)

    async def health(self, feed: str) -> Health:
        """Current poll health of a feed."""
        with _boundary(f"read the health of feed {feed!r}"):
            raw: dict[str, str] = await self.client.hgetall(keys.health(feed))  # type: ignore[assignment]

        def number(name: str) -> float | None:
            return float(raw[name]) if raw.get(name) else None

        return Health(
            consecutive_failures=int(raw.get("consecutive_failures") or 0),
            total_failures=int(raw.get("total_failures") or 0),
            last_status=raw.get("last_status") or None, last_error=raw.get("last_error") or None,
            last_poll=number("last_poll"), last_success=number("last_success"),
        )


@contextlib.contextmanager
def _boundary(what: str) -> Iterator[None]:
    """Raise a Redis error as the project's `StateError`, saying what could not be done."""
    try:
        yield
    except RedisError as exc:
        raise StateError(f"cannot {what}: {exc}") from exc


def _ms(seconds: float) -> int:
    """Milliseconds for a PX argument; 0 stays 0 (release)."""
    return max(1, int(seconds * 1000)) if seconds > 0 else 0
