"""Per-feed state in Redis: fingerprints, last texts, HTTP validators, poll health.

`FeedState.commit` records a diff and appends its events to the entries stream in one Lua
script (see commit.lua), so a crash can neither lose nor duplicate an event.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files
from typing import Any, cast

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from monitor import keys
from monitor.diff import Change
from monitor.errors import StateError
from monitor.models import Event, Notice

_COMMIT_LUA = files("monitor").joinpath("commit.lua").read_text(encoding="utf-8")
# KEYS: 1 health. ARGV: field, value, ... to set. Clears `failing_since`; returns the streak
# and `failing_since` as they were, and whether it was cleared (one script: a MULTI/EXEC of the
# three commands costs the client ~90 us more per poll).
_SUCCESS_LUA = """
local before = redis.call('HMGET', KEYS[1], 'consecutive_failures', 'failing_since')
local cleared = redis.call('HDEL', KEYS[1], 'failing_since')
redis.call('HSET', KEYS[1], unpack(ARGV))
return {before[1], before[2], cleared}
"""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the poller needs to know about a feed before fetching it."""

    baselined: bool
    #: Entry id -> content version (empty when loaded without them).
    fingerprints: dict[str, str]
    etag: str | None
    last_modified: str | None
    body_hash: str | None
    identity: str = "id"
    max_events: int = 0
    #: A live blog's `coverageEndTime` (epoch seconds) as last parsed, for polls that do not
    #: parse the page (304 or an unchanged body).
    coverage_end: float | None = None

    @classmethod
    def read(cls, meta: dict[str, str], fingerprints: dict[str, str] | None = None) -> Snapshot:
        """A feed's snapshot from its meta hash (and fingerprints hash, when read)."""
        return cls(
            baselined=meta.get("baselined") == "1", fingerprints=fingerprints or {},
            etag=meta.get("etag"), last_modified=meta.get("last_modified"),
            body_hash=meta.get("body_hash"), identity=meta.get("identity") or "id",
            max_events=int(meta.get("max_events") or 0),
            coverage_end=float(meta["coverage_end"]) if meta.get("coverage_end") else None,
        )


@dataclass(frozen=True, slots=True)
class CommitResult:
    """Outcome of `FeedState.commit`."""

    new: int
    updated: int
    skipped: int
    baseline_moved: bool = False
    #: The poller's fencing token was no longer the feed's newest: nothing was written.
    superseded: bool = False

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


class FeedState:
    """Redis-backed state of feeds. The client must use `decode_responses=True`."""

    def __init__(self, client: aioredis.Redis, *, max_entries: int, stream_maxlen: int,
                 failing_after: int = 5) -> None:
        self.client = client
        self.max_entries = max_entries
        self.stream_maxlen = stream_maxlen
        #: Consecutive failed polls that make one "failing" notice (0: never).
        self.failing_after = failing_after
        self._commit = client.register_script(_COMMIT_LUA)
        self._success = client.register_script(_SUCCESS_LUA)

    async def load(self, feed: str, *, fingerprints: bool = True) -> Snapshot:
        """Read a feed's validators and (unless `fingerprints` is false, as before a fetch
        that may well be a 304: they are ~50 fields) its fingerprints, in one round trip."""
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.hgetall(keys.meta(feed))
                if fingerprints:
                    pipe.hgetall(keys.fingerprints(feed))
                meta, *rest = await pipe.execute()
            prints: dict[str, str] = rest[0] if rest else {}
        except RedisError as exc:
            raise StateError(f"cannot read state of feed {feed!r}: {exc}") from exc
        return Snapshot.read(meta, prints)

    async def previous_texts(self, feed: str, ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """The last recorded (title, text) of each entry in `ids` that has one."""
        if not ids:
            return {}
        values = await self.client.hmget(keys.texts(feed), list(ids))
        out = {}
        for entry_id, raw in zip(ids, values, strict=True):
            if raw:
                data = json.loads(raw)
                out[entry_id] = (data.get("title", ""), data.get("text", ""))
        return out

    async def commit(self, feed: str, feed_url: str, changes: Sequence[Change], *,
                     baseline: bool, etag: str | None, last_modified: str | None,
                     body_hash: str, previous: dict[str, tuple[str, str]] | None = None,
                     notice: Notice | None = None, fence: int | None = None) -> CommitResult:
        """Record `changes`, append the emitted ones to the stream and `notice` (if any) to
        the notices stream, atomically. With `fence` (the poller's lease token, see
        monitor.lease) nothing is written unless it is still the feed's newest token."""
        previous = previous or {}
        now = time.time()
        args: list[Any] = ["1" if baseline else "0", self.max_entries, self.stream_maxlen,
                           etag or "", last_modified or "", body_hash, len(changes),
                           notice.encode() if notice else "",
                           "" if fence is None else str(fence)]
        for change in changes:
            entry = change.entry
            payload = ""
            if change.emit:
                prev_title, prev_text = previous.get(entry.id, (None, None))
                payload = Event(
                    kind=change.kind, feed=feed, feed_url=feed_url, entry=entry,
                    version=change.version, detected_at=now,
                    previous_title=prev_title, previous_text=prev_text,
                ).encode()
            texts = json.dumps({"title": entry.title, "text": entry.text}, ensure_ascii=False)
            args += [entry.id, change.previous_version or "", change.version, texts,
                     "1" if change.emit else "0", payload]
        script_keys = [keys.fingerprints(feed), keys.texts(feed), keys.order(feed),
                       keys.meta(feed), keys.EVENTS_STREAM, keys.NOTICES_STREAM,
                       keys.fence(feed)]
        try:
            result = cast(list[int], await self._commit(keys=script_keys, args=args))
        except RedisError as exc:
            raise StateError(f"cannot record state of feed {feed!r}: {exc}") from exc
        if result[0] == -1:
            return CommitResult(0, 0, 0, baseline_moved=True)
        if result[0] == -2:
            return CommitResult(0, 0, 0, superseded=True)
        return CommitResult(int(result[0]), int(result[1]), int(result[2]))

    async def touch(self, feed: str, *, etag: str | None, last_modified: str | None) -> None:
        """Store fresh HTTP validators after a fetch whose body had not changed."""
        mapping: dict[Any, Any] = {
            k: v for k, v in (("etag", etag), ("last_modified", last_modified)) if v}
        if mapping:
            await self.client.hset(keys.meta(feed), mapping=mapping)

    async def set_meta(self, feed: str, **fields: str | int) -> None:
        """Remember per-feed facts (`identity`, `max_events`, `coverage_end`) next to the
        fingerprints."""
        mapping: dict[Any, Any] = dict(fields)
        await self.client.hset(keys.meta(feed), mapping=mapping)

    async def record_success(self, feed: str, status: str, kind: str | None = None) -> None:
        """Reset the failure streak after a good poll (and note the kind parsed, if any). A
        feed that had been reported failing gets one "recovered" notice."""
        now = time.time()
        fields: list[str | float] = ["consecutive_failures", 0, "last_status", status,
                                     "last_error", "", "last_poll", now, "last_success", now]
        if kind:
            fields += ["kind", kind]
        streak, since, reported = await self._success(keys=[keys.health(feed)], args=fields)
        if reported:  # HDEL is atomic: exactly one poller sees the notice was out
            down = _ago(now - float(since)) if since else "a while"
            await self.notice(Notice("recovered", feed, (
                f"Feed {feed} is polled fine again after {streak or 'several'} failed polls "
                f"(failing for {down})."), now))

    async def set_next_poll(self, feed: str, at: float) -> None:
        """Note when the scheduler will poll `feed` next (shown by `livewatch status`)."""
        with contextlib.suppress(RedisError):
            await self.client.hset(keys.health(feed), "next_poll", at)

    async def record_failure(self, feed: str, reason: str) -> int:
        """Count a failed poll; returns the number of consecutive failures. The poll that
        makes the streak reach `failing_after` sends one "failing" notice."""
        now = time.time()
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hincrby(keys.health(feed), "consecutive_failures", 1)
            pipe.hincrby(keys.health(feed), "total_failures", 1)
            pipe.hset(keys.health(feed), mapping={
                "last_status": "error", "last_error": reason[:500], "last_poll": now})
            streak, _, _ = await pipe.execute()
        if self.failing_after and int(streak) == self.failing_after:  # one poller sees it
            await self.client.hset(keys.health(feed), "failing_since", now)
            await self.notice(Notice("failing", feed, (
                f"Feed {feed} failed {streak} polls in a row; it keeps being retried with "
                f"backoff. Last error: {reason[:300]}"), now))
        return int(streak)

    async def notice(self, notice: Notice) -> None:
        """Append an operator notice to the notices stream."""
        await self.client.xadd(keys.NOTICES_STREAM, {"notice": notice.encode()},
                               maxlen=self.stream_maxlen, approximate=True)

    async def health(self, feed: str) -> Health:
        """Current poll health of a feed."""
        raw: dict[str, str] = await self.client.hgetall(keys.health(feed))  # type: ignore[assignment]

        def number(name: str) -> float | None:
            return float(raw[name]) if raw.get(name) else None

        return Health(
            consecutive_failures=int(raw.get("consecutive_failures") or 0),
            total_failures=int(raw.get("total_failures") or 0),
            last_status=raw.get("last_status") or None, last_error=raw.get("last_error") or None,
            last_poll=number("last_poll"), last_success=number("last_success"),
        )


def _ago(seconds: float) -> str:
    """`95` -> `2 min`; a short human span."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
