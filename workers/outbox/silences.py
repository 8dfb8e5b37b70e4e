"""Silences: runtime mutes kept in Redis, managed through the console and its API (the YAML
stays the source of truth for feeds, rules and channels), as Alertmanager does.

A silence has matchers on an alert's `rule`, `feed` and `channel` (a glob, or a regular
expression with `isRegex`; all must match), a start and an end, who made it and why. While it
is active, a matching alert is recorded in the outbox as `silenced` (with the silence's id),
never sent; when it ends (or is expired early), later alerts go out again and nothing held is
sent retroactively. Operator notices are never silenced. State is one Redis hash shared by
every worker, read as each event's alerts are queued, so a silence holds from the moment its
creation is answered.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any, Literal, cast

import redis.asyncio as aioredis

from monitor.core import keys
from workers.outbox.store import state_errors

Label = Literal["rule", "feed", "channel"]
LABELS: tuple[Label, ...] = ("rule", "feed", "channel")
#: Expired silences stay listed (as `expired`) this long, then are dropped.
RETENTION = 5 * 86400.0
#: A regular expression in a matcher is refused beyond this length.
MAX_PATTERN = 500


@dataclass(frozen=True, slots=True)
class SilenceMatcher:
    """One condition on an alert's label: `value` is a glob (`*`, `?`, `[…]`) or, with
    `is_regex`, a regular expression matching the whole label."""

    name: Label
    value: str
    is_regex: bool = False

    def __post_init__(self) -> None:
        if self.name not in LABELS:
            raise ValueError(f"matcher name must be one of {', '.join(LABELS)}")
        if not self.value or len(self.value) > MAX_PATTERN:
            raise ValueError(f"matcher value must have 1 to {MAX_PATTERN} characters")
        if self.is_regex:
            try:
                re.compile(self.value)
            except re.error as exc:
                raise ValueError(f"matcher {self.name}: bad regular expression: {exc}") from exc

    def matches(self, labels: Mapping[str, str]) -> bool:
        """True when this matcher holds for `labels`."""
        value = labels.get(self.name, "")
        if self.is_regex:
            return re.fullmatch(self.value, value) is not None
        return fnmatchcase(value, self.value)


@dataclass(frozen=True, slots=True)
class Silence:
    """A mute from `starts_at` until `ends_at` (epoch seconds) of alerts matching every
    matcher."""

    id: str
    matchers: tuple[SilenceMatcher, ...]
    starts_at: float
    ends_at: float
    created_by: str
    comment: str
    created_at: float
    #: Who expired it early (and when: `ends_at` then), if anyone.
    expired_by: str = ""

    def state(self, now: float) -> Literal["pending", "active", "expired"]:
        """`pending` before it starts, `active` while it holds, `expired` after."""
        if now >= self.ends_at:
            return "expired"
        return "active" if now >= self.starts_at else "pending"

    def holds(self, labels: Mapping[str, str], now: float) -> bool:
        """True when the silence is active and every matcher matches."""
        return self.state(now) == "active" and all(m.matches(labels) for m in self.matchers)

    def api(self, now: float) -> dict[str, Any]:
        """Alertmanager's JSON shape (times ISO 8601 UTC), with `status.state`."""
        return {"id": self.id, "matchers": [{"name": m.name, "value": m.value,
                                             "isRegex": m.is_regex} for m in self.matchers],
                "startsAt": iso(self.starts_at), "endsAt": iso(self.ends_at),
                "createdBy": self.created_by, "comment": self.comment,
                "createdAt": iso(self.created_at), "expiredBy": self.expired_by or None,
                "status": {"state": self.state(now)}}

    def encode(self) -> str:
        """As stored in Redis."""
        data = asdict(self)
        return json.dumps(data, ensure_ascii=False)

    @classmethod
    def decode(cls, raw: str) -> Silence:
        """From `encode`'s JSON."""
        data = json.loads(raw)
        data["matchers"] = tuple(SilenceMatcher(**m) for m in data["matchers"])
        return cls(**data)


def iso(at: float) -> str:
    """Epoch seconds as ISO 8601 in UTC (`2026-12-08T10:00:00Z`)."""
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def new_silence(matchers: Sequence[SilenceMatcher], *, ends_at: float, created_by: str,
                comment: str, starts_at: float | None = None,
                now: float | None = None) -> Silence:
    """A new silence with a fresh id; ValueError when it would never hold."""
    now = time.time() if now is None else now
    start = now if starts_at is None else starts_at
    if not matchers:
        raise ValueError("a silence needs at least one matcher")
    if ends_at <= now:
        raise ValueError("endsAt is in the past")
    if ends_at <= start:
        raise ValueError("endsAt must be after startsAt")
    if not created_by.strip() or not comment.strip():
        raise ValueError("createdBy and comment are required")
    return Silence(uuid.uuid4().hex, tuple(matchers), start, ends_at, created_by.strip()[:200],
                   comment.strip()[:1000], now)


class Silences:
    """The silences in Redis (`keys.SILENCES`)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client

    @state_errors
    async def add(self, silence: Silence) -> None:
        """Store `silence` (it holds from now on, in every worker)."""
        await self.client.hset(keys.SILENCES, silence.id, silence.encode())

    @state_errors
    async def get(self, silence_id: str) -> Silence | None:
        """The silence with `silence_id`, if any."""
        raw = await self.client.hget(keys.SILENCES, silence_id)
        return Silence.decode(str(raw)) if raw else None

    @state_errors
    async def all(self, now: float | None = None) -> list[Silence]:
        """Every silence, newest first; those expired longer than `RETENTION` are dropped."""
        now = time.time() if now is None else now
        raw = cast(dict[str, str], await self.client.hgetall(keys.SILENCES))
        found, stale = [], []
        for silence_id, text in raw.items():
            try:
                silence = Silence.decode(text)
            except (ValueError, TypeError, KeyError):
                stale.append(silence_id)
                continue
            if now - silence.ends_at > RETENTION:
                stale.append(silence_id)
            else:
                found.append(silence)
        if stale:
            await self.client.hdel(keys.SILENCES, *stale)
        return sorted(found, key=lambda s: s.created_at, reverse=True)

    @state_errors
    async def expire(self, silence_id: str, by: str, now: float | None = None) -> Silence | None:
        """End the silence now (kept, listed as expired); None when there is no such silence.
        Alerts it held stay unsent."""
        now = time.time() if now is None else now
        raw = await self.client.hget(keys.SILENCES, silence_id)
        if not raw:
            return None
        silence = Silence.decode(str(raw))
        if silence.state(now) == "expired":
            return silence
        ended = Silence(silence.id, silence.matchers, min(silence.starts_at, now), now,
                        silence.created_by, silence.comment, silence.created_at, by)
        await self.client.hset(keys.SILENCES, silence_id, ended.encode())
        return ended
