"""Data that flows through the pipeline: parsed entries and the events diffed from them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from monitor.versionmemo import version_of

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

    def with_id(self, ident: str) -> Entry:
        """This entry under another id (its computed version kept)."""
        entry = replace(self, id=ident)
        object.__setattr__(entry, "_version", self._version)
        return entry

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (datetimes as ISO 8601)."""
        return {"id": self.id, "url": self.url, "title": self.title, "text": self.text,
                "author": self.author,
                "published": self.published.isoformat() if self.published else None,
                "updated": self.updated.isoformat() if self.updated else None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Entry:
        """Inverse of `to_dict`."""
        return cls(
            id=str(data["id"]), url=data.get("url"), title=data.get("title") or "",
            text=data.get("text") or "", author=data.get("author"),
            published=_parse_dt(data.get("published")), updated=_parse_dt(data.get("updated")),
        )


def _parse_dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass(frozen=True, slots=True)
class Notice:
    """Something an operator should know about a source (not an alert on its content)."""

    kind: str
    feed: str
    message: str
    at: float

    def encode(self) -> str:
        """Serialise for the notices stream."""
        return json.dumps({"kind": self.kind, "feed": self.feed, "message": self.message,
                           "at": self.at}, ensure_ascii=False)

    @classmethod
    def decode(cls, payload: str | bytes) -> Notice:
        """Inverse of `encode`."""
        data = json.loads(payload)
        return cls(kind=str(data["kind"]), feed=str(data["feed"]),
                   message=str(data["message"]), at=float(data["at"]))


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
        """Serialise for the entries stream (JSON, never pickle)."""
        return json.dumps({
            "kind": self.kind, "feed": self.feed, "feed_url": self.feed_url,
            "entry": self.entry.to_dict(), "version": self.version,
            "detected_at": self.detected_at, "previous_title": self.previous_title,
            "previous_text": self.previous_text,
        }, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def decode(cls, payload: str | bytes) -> Event:
        """Inverse of `encode`; raises ValueError/KeyError on a malformed payload."""
        data = json.loads(payload)
        kind = data["kind"]
        if kind not in ("new", "updated"):
            raise ValueError(f"unknown event kind {kind!r}")
        return cls(
            kind=kind, feed=data["feed"], feed_url=data["feed_url"],
            entry=Entry.from_dict(data["entry"]), version=data["version"],
            detected_at=float(data["detected_at"]), previous_title=data.get("previous_title"),
            previous_text=data.get("previous_text"),
        )
