"""Data that flows through the pipeline: parsed entries and the events diffed from them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec

from monitor.core.versionmemo import version_of

EventKind = Literal["new", "updated"]


@dataclass(frozen=True, slots=True)
class Entry:
    """One item of a feed or one update of a live blog, with its text free of markup."""

    id: str
    url: str | None
    title: str
    text: str
    author: str | None = None
    published: datetime | None = None
    updated: datetime | None = None

    #: `version`, once computed (parsing threads compute it, off the event loop).
    _version: str | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def version(self) -> str:
        """Content fingerprint: changes only when the normalised title or text changes."""
        version = self._version
        if version is None:
            version = version_of(self.title, self.text)
            object.__setattr__(self, "_version", version)
        return version

    @classmethod
    def known(cls, ident: str, version: str, **fields: Any) -> Entry:
        """An entry a parse found unchanged against the recorded fingerprints
        (`monitor.core.versionmemo.unchanged`): its id and version, no title or text. Only a
        diff against those fingerprints may see it (it drops it)."""
        entry = cls(id=ident, title="", text="", **fields)
        object.__setattr__(entry, "_version", version)
        return entry

    def with_id(self, ident: str) -> Entry:
        """This entry under another id (its computed version kept)."""
        entry = replace(self, id=ident)
        object.__setattr__(entry, "_version", self._version)
        return entry

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (datetimes as `isoformat()`), as tests and tools compare entries."""
        return {"id": self.id, "url": self.url, "title": self.title, "text": self.text,
                "author": self.author,
                "published": self.published.isoformat() if self.published else None,
                "updated": self.updated.isoformat() if self.updated else None}


@dataclass(frozen=True, slots=True)
class Notice:
    """Something an operator should know about a source (not an alert on its content)."""

    kind: str
    feed: str
    message: str
    at: float

    def encode(self) -> str:
        """Serialise for the notices stream (JSON: `{"kind", "feed", "message", "at"}`)."""
        return _ENCODER.encode(self).decode()

    @classmethod
    def decode(cls, payload: str | bytes) -> Notice:
        """Inverse of `encode`; raises ValueError on a malformed payload."""
        return _NOTICE.decode(payload)


@dataclass(frozen=True, slots=True)
class Event:
    """A new entry, or an edit of a known one, detected once on one feed.

    `previous_title`/`previous_text` hold the version an `updated` event replaces, so a rule can
    alert only when its match is new in this version.
    """

    kind: EventKind
    feed: str
    feed_url: str
    entry: Entry
    version: str
    detected_at: float
    previous_title: str | None = None
    previous_text: str | None = None

    def encode(self) -> str:
        """Serialise for the entries stream (JSON, never pickle): the fields by name, the
        entry's too (datetimes in RFC 3339)."""
        return _ENCODER.encode(self).decode()

    @classmethod
    def decode(cls, payload: str | bytes) -> Event:
        """Inverse of `encode`; raises ValueError on a malformed payload."""
        try:
            return _EVENT.decode(payload)
        except msgspec.ValidationError:
            return _decode_offset_seconds(payload)


# The codecs (msgspec: compiled once per type; they skip the private `_version`).
_ENCODER = msgspec.json.Encoder()
_EVENT = msgspec.json.Decoder(Event)
_NOTICE = msgspec.json.Decoder(Notice)


def _decode_offset_seconds(payload: str | bytes) -> Event:
    """An event written before msgspec whose entry time has a UTC offset with seconds
    (`isoformat` wrote them, RFC 3339 has none): read as the same instant in UTC."""
    data = json.loads(payload)
    entry = data.get("entry") if isinstance(data, dict) else None
    for key in ("published", "updated"):
        if isinstance(entry, dict) and isinstance(entry.get(key), str):
            entry[key] = datetime.fromisoformat(entry[key]).astimezone(UTC).isoformat()
    return msgspec.convert(data, Event)


def event_from_stream(fields: Mapping[str, str]) -> Event:
    """The event of an entries-stream message: `event`, and for an edit the texts it replaced
    (`previous`, JSON {title, text}, added by apply.lua as it replaced them)."""
    event = Event.decode(fields["event"])
    previous = fields.get("previous")
    if previous:
        data = json.loads(previous)
        event = replace(event, previous_title=data.get("title", ""),
                        previous_text=data.get("text", ""))
    return event
