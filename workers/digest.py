"""What the outbox delivers: an `Alert`, an `OperatorNotice`, or a `Digest` of several, and
their JSON form in Redis (so any worker can send, retry or re-send an item later). Pure, no I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, cast

from monitor.models import Event, Notice
from workers.match import Field, Hit, RuleMatch
from workers.notices import OperatorNotice
from workers.render import Alert


@dataclass(frozen=True)
class Digest:
    """Alerts and notices held for one channel (digest window, rate limit or quiet hours) and
    sent as one message. `items` are in the order they were held; `since`/`until` (epoch
    seconds) bound the window; `reason` says why they were held, for the reader
    ("10-minute digest", "rate limit 20/h", "quiet hours 22:00-07:00 Europe/London")."""

    id: str
    channel: str
    items: tuple[Alert | OperatorNotice, ...]
    since: float
    until: float
    reason: str

    @property
    def alerts(self) -> tuple[Alert, ...]:
        """The alerts among `items`."""
        return tuple(item for item in self.items if isinstance(item, Alert))

    @property
    def notices(self) -> tuple[OperatorNotice, ...]:
        """The operator notices among `items`."""
        return tuple(item for item in self.items if isinstance(item, OperatorNotice))


#: Anything a channel's `send` accepts.
Deliverable = Alert | OperatorNotice | Digest


def to_dict(item: Deliverable) -> dict[str, Any]:
    """A JSON-able form of `item`; `from_dict` inverts it."""
    if isinstance(item, Alert):
        return {"type": "alert", "id": item.id, "channel": item.channel, "rule": item.rule,
                "event": json.loads(item.event.encode()), "sources": list(item.sources),
                "hits": [[h.term, h.field, h.start, h.end] for h in item.match.hits]}
    if isinstance(item, OperatorNotice):
        return {"type": "notice", "id": item.id, "channel": item.channel,
                "notice": json.loads(item.notice.encode()), "feed_url": item.feed_url}
    return {"type": "digest", "id": item.id, "channel": item.channel, "since": item.since,
            "until": item.until, "reason": item.reason,
            "items": [to_dict(part) for part in item.items]}


def from_dict(data: dict[str, Any]) -> Deliverable:
    """Inverse of `to_dict`; raises KeyError/ValueError/TypeError on a malformed record."""
    kind = data["type"]
    if kind == "alert":
        hits = tuple(Hit(str(t), cast(Field, f), int(s), int(e)) for t, f, s, e in data["hits"])
        return Alert(id=data["id"], event=Event.decode(json.dumps(data["event"])),
                     rule=data["rule"], channel=data["channel"],
                     match=RuleMatch(data["rule"], hits), sources=tuple(data["sources"]))
    if kind == "notice":
        return OperatorNotice(data["id"], Notice.decode(json.dumps(data["notice"])),
                              data["channel"], data.get("feed_url"))
    if kind == "digest":
        parts = tuple(from_dict(part) for part in data["items"])
        if any(isinstance(part, Digest) for part in parts):
            raise ValueError("a digest cannot contain a digest")
        return Digest(id=data["id"], channel=data["channel"],
                      items=parts,  # type: ignore[arg-type]
                      since=float(data["since"]), until=float(data["until"]),
                      reason=str(data["reason"]))
    raise ValueError(f"unknown deliverable type {kind!r}")


def encode(item: Deliverable) -> str:
    """`item` as compact JSON."""
    return json.dumps(to_dict(item), ensure_ascii=False, separators=(",", ":"))


def decode(payload: str | bytes) -> Deliverable:
    """Inverse of `encode`."""
    return from_dict(json.loads(payload))
