"""What the outbox delivers: an `Alert`, an `OperatorNotice`, or a `Digest` of several, and
their JSON form in Redis (so any worker can send, retry or re-send an item later). Pure, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from monitor.core.models import Event, Notice
from workers.match.matcher import Hit, RuleMatch
from workers.render.alert import Alert
from workers.render.notices import OperatorNotice


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


# The JSON form in Redis: a record per deliverable, tagged by "type"; a digest holds the records
# of its items as they were queued (the FLUSH script joins them), never another digest.

class _AlertRecord(msgspec.Struct, tag="alert", tag_field="type"):
    id: str
    channel: str
    rule: str
    event: Event
    sources: tuple[str, ...]
    hits: tuple[Hit, ...]  # [term, field, start, end]
    actions: tuple[tuple[str, str], ...] = ()


class _NoticeRecord(msgspec.Struct, tag="notice", tag_field="type"):
    id: str
    channel: str
    notice: Notice
    feed_url: str | None = None


class _DigestRecord(msgspec.Struct, tag="digest", tag_field="type"):
    id: str
    channel: str
    since: float
    until: float
    reason: str
    items: tuple[_AlertRecord | _NoticeRecord, ...]


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(_AlertRecord | _NoticeRecord | _DigestRecord)


def _record(item: Deliverable) -> _AlertRecord | _NoticeRecord | _DigestRecord:
    if isinstance(item, Alert):
        return _AlertRecord(item.id, item.channel, item.rule, item.event, item.sources,
                            item.match.hits, item.actions)
    if isinstance(item, OperatorNotice):
        return _NoticeRecord(item.id, item.channel, item.notice, item.feed_url)
    parts = tuple(_record(part) for part in item.items)
    return _DigestRecord(item.id, item.channel, item.since, item.until, item.reason,
                         parts)  # type: ignore[arg-type]


def _item(record: _AlertRecord | _NoticeRecord | _DigestRecord) -> Deliverable:
    if isinstance(record, _AlertRecord):
        return Alert(id=record.id, event=record.event, rule=record.rule, channel=record.channel,
                     match=RuleMatch(record.rule, record.hits), sources=record.sources,
                     actions=record.actions)
    if isinstance(record, _NoticeRecord):
        return OperatorNotice(record.id, record.notice, record.channel, record.feed_url)
    return Digest(id=record.id, channel=record.channel,
                  items=tuple(_item(part) for part in record.items),  # type: ignore[misc]
                  since=record.since, until=record.until, reason=record.reason)


def encode(item: Deliverable) -> bytes:
    """`item` as compact JSON, UTF-8 (`decode` inverts it)."""
    return _ENCODER.encode(_record(item))


def decode(payload: str | bytes) -> Deliverable:
    """Inverse of `encode`; raises ValueError on a malformed record."""
    return _item(_DECODER.decode(payload))
