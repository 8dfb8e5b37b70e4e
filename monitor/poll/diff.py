"""Decide what changed in a feed: pure, no I/O.

Given the fingerprints recorded for a feed (entry id -> content version) and the entries of a
fresh fetch, return the changes to record. On a baseline (first sight of a feed, or state lost)
every entry is recorded but only the newest `backfill` are emitted as events.

An entry with an unknown id whose content version is already known (under another id, or
earlier in the same document) is recorded but not emitted: it is a `duplicate`, the sign of a
feed that churns GUIDs or permalinks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from monitor.core.models import Entry, EventKind

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Change:
    """One entry to record; `emit` says whether it also becomes an event."""

    entry: Entry
    version: str
    previous_version: str | None
    emit: bool
    duplicate: bool = False

    @property
    def kind(self) -> EventKind:
        """`new` for an entry never seen, `updated` for an edit of a known one."""
        return "new" if self.previous_version is None else "updated"


def _chronological(entries: Sequence[Entry]) -> list[Entry]:
    """Oldest first: by published/updated time when every entry has one, else reversed
    document order (feeds and live blogs list the newest first)."""
    if entries and all(e.published or e.updated for e in entries):
        indexed = list(enumerate(entries))
        indexed.sort(key=lambda pair: (pair[1].published or pair[1].updated or _EPOCH,
                                       -pair[0]))
        return [entry for _, entry in indexed]
    return list(reversed(entries))


def diff_entries(previous: Mapping[str, str], entries: Sequence[Entry], *,
                 baseline: bool, backfill: int = 0) -> list[Change]:
    """Changes to record for `entries` against `previous` fingerprints, oldest first."""
    ordered = _chronological(entries)
    if baseline:
        first_emitted = len(ordered) - backfill
        return [Change(entry, entry.version, None, index >= first_emitted)
                for index, entry in enumerate(ordered)]
    seen_versions = set(previous.values())
    changes = []
    for entry in ordered:
        version = entry.version
        known = previous.get(entry.id)
        if known is None:
            duplicate = version in seen_versions
            changes.append(Change(entry, version, None, not duplicate, duplicate))
        elif known != version:
            changes.append(Change(entry, version, known, True))
        seen_versions.add(version)
    return changes
