"""A poll's decisions, pure: no I/O, no clock, no Redis.

The poller fetches, parses, then asks here for the `Plan`: what a 304 or an unchanged body
records, or, for a parsed document, the changes against the snapshot's fingerprints, whether
the feed churns its ids (and moves to content identity), whether the flood breaker trips, the
coverage end, and what the feed's meta becomes. `monitor.poll.state.FeedState.apply` then writes
all of it in one Redis script. The failure streak's notices are decided here too.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

from monitor.config.values import format_duration
from monitor.core.errors import ParseError
from monitor.core.models import Entry, Notice
from monitor.poll.diff import Change, diff_entries

if TYPE_CHECKING:
    from monitor.fetch.client import FetchResult
    from monitor.sources import ParsedDocument

#: What a poll did, as the plan says and `PollOutcome.status` reports; `superseded`: the
#: poller's lease was taken over mid-poll, so its commit was refused.
Status = Literal["changed", "unchanged", "not_modified", "baseline", "error", "superseded"]


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
    #: When a poll last found a new or edited entry (epoch seconds; recorded with its plan by
    #: `FeedState.apply`): how hot the feed is, for whichever poller has it next.
    last_post: float | None = None

    @classmethod
    def read(cls, meta: dict[str, str], fingerprints: dict[str, str] | None = None) -> Snapshot:
        """A feed's snapshot from its meta hash (and fingerprints hash, when read)."""
        return cls(
            baselined=meta.get("baselined") == "1", fingerprints=fingerprints or {},
            etag=meta.get("etag"), last_modified=meta.get("last_modified"),
            body_hash=meta.get("body_hash"), identity=meta.get("identity") or "id",
            max_events=int(meta.get("max_events") or 0),
            coverage_end=float(meta["coverage_end"]) if meta.get("coverage_end") else None,
            last_post=float(meta["last_post"]) if meta.get("last_post") else None,
        )


@dataclass(frozen=True, slots=True)
class Plan:
    """What one poll records. Only a parsed document's plan (`replace`) has changes, meta or a
    notice; a `keep` or `touch` plan is a quiet one."""

    status: Status
    #: `keep` (a 304: validators as they are), `touch` (set those the server sent) or
    #: `replace` (a parsed body: set them, delete those it did not send).
    validators: Literal["keep", "touch", "replace"] = "keep"
    changes: tuple[Change, ...] = ()
    baseline: bool = False
    kind: str | None = None
    entries: int = 0
    #: Meta fields to set with the commit (`identity`, `coverage_end`).
    meta: dict[str, str] = field(default_factory=dict)
    notice: Notice | None = None
    flood: bool = False
    #: New or edited entries the diff found (before the flood breaker silenced them).
    would_emit: int = 0
    #: Ids the diff saw again under known content (churned GUIDs), when the identity moved.
    churned: int = 0
    coverage_end: float | None = None

    @property
    def emitted(self) -> int:
        """Events this plan appends (if every compare-and-set holds)."""
        return sum(1 for c in self.changes if c.emit)

    @property
    def new(self) -> int:
        """`new` events of `emitted`."""
        return sum(1 for c in self.changes if c.emit and c.previous_version is None)

    @property
    def updated(self) -> int:
        """`updated` events of `emitted`."""
        return self.emitted - self.new

    def ended(self, now: float) -> bool:
        """True when the live blog's coverage ended before `now`."""
        return self.coverage_end is not None and self.coverage_end < now


def plan_fetch(snapshot: Snapshot, result: FetchResult) -> Plan | None:
    """The plan of a poll whose body need not be parsed (a 304, or the body last parsed), or
    None when it must be."""
    if result.not_modified:
        return Plan("not_modified", coverage_end=snapshot.coverage_end)
    if snapshot.baselined and result.body_hash == snapshot.body_hash:
        return Plan("unchanged", validators="touch", coverage_end=snapshot.coverage_end)
    return None


def plan_document(snapshot: Snapshot, document: ParsedDocument, *, backfill: int,
                  flood_threshold: int, feed: str, now: float) -> Plan:
    """The plan of a parsed document: changes against `snapshot` (its fingerprints loaded),
    content identity for a feed found churning ids, the flood breaker, the coverage end."""
    if not document.entries and snapshot.fingerprints:
        raise ParseError(f"no entries found (had {len(snapshot.fingerprints)}): the page "
                         "may have changed shape or be behind a login or paywall")
    baseline = not snapshot.baselined
    content_identity = snapshot.identity == "content"
    meta: dict[str, str] = {}
    entries = _content_keyed(document.entries) if content_identity else document.entries
    changes = diff_entries(snapshot.fingerprints, entries, baseline=baseline, backfill=backfill)
    churned = 0
    recorded = set(snapshot.fingerprints.values())
    if not baseline and not content_identity and churning(changes, recorded):
        churned = _churned(changes, recorded)
        meta["identity"] = "content"
        changes = diff_entries(snapshot.fingerprints, _content_keyed(document.entries),
                               baseline=False, backfill=backfill)
    would_emit = sum(1 for c in changes if c.emit)
    flood = not baseline and would_emit > max(flood_threshold, 3 * snapshot.max_events)
    notice = None
    if flood:
        changes = [replace(c, emit=False) for c in changes]
        notice = Notice("flood", feed, (
            f"{would_emit} new or edited entries in one poll (the most before was "
            f"{snapshot.max_events}); recorded without alerting. The source may have "
            "been redesigned or reset."), now)
    page = document.page
    coverage_end = page.coverage_end.timestamp() if page and page.coverage_end else None
    if coverage_end != snapshot.coverage_end:
        meta["coverage_end"] = "" if coverage_end is None else repr(coverage_end)
    status: Status = "baseline" if baseline else ("changed" if changes else "unchanged")
    return Plan(status, validators="replace", changes=tuple(changes), baseline=baseline,
                kind=document.kind, entries=len(document.entries), meta=meta, notice=notice,
                flood=flood, would_emit=would_emit, churned=churned, coverage_end=coverage_end)


def posted(plan: Plan) -> bool:
    """Whether `plan` records a post (a new or edited entry after the baseline, alerting or
    not): its commit then records `last_post`."""
    return bool(plan.changes) and not plan.baseline


def snapshot_after(snapshot: Snapshot, plan: Plan, result: FetchResult,
                   appended: int, now: float | None = None) -> Snapshot:
    """The feed's snapshot once `plan` is applied at `now` (`appended` events), without
    fingerprints: what the poller holding the feed's lease knows at its next turn without
    reading Redis."""
    if plan.validators == "keep":
        return snapshot
    if plan.validators == "touch":
        return replace(snapshot, fingerprints={}, etag=result.etag or snapshot.etag,
                       last_modified=result.last_modified or snapshot.last_modified)
    max_events = snapshot.max_events if plan.flood else max(snapshot.max_events, appended)
    return Snapshot(baselined=True, fingerprints={}, etag=result.etag,
                    last_modified=result.last_modified, body_hash=result.body_hash,
                    identity=plan.meta.get("identity", snapshot.identity),
                    max_events=max_events, coverage_end=plan.coverage_end,
                    last_post=now if now is not None and posted(plan) else snapshot.last_post)


def churning(changes: Sequence[Change], known: Collection[str] | None = None) -> bool:
    """Many "new" ids carrying content already known under other ids: churned GUIDs. With
    `known` (the versions recorded), only duplicates of recorded content count: new entries
    repeating each other (four image-only "Photo" posts) are not churn."""
    duplicates = _churned(changes, known)
    fresh = sum(1 for c in changes if c.previous_version is None and not c.duplicate)
    return duplicates >= 3 and duplicates >= fresh


def _churned(changes: Sequence[Change], known: Collection[str] | None) -> int:
    return sum(1 for c in changes if c.duplicate and (known is None or c.version in known))


def _content_keyed(entries: Sequence[Entry]) -> list[Entry]:
    """Entries re-identified by their content, for feeds whose ids cannot be trusted."""
    return [entry.with_id("h:" + entry.version) for entry in entries]


def failing_notice(feed: str, streak: int, failing_after: int, reason: str,
                   now: float) -> Notice | None:
    """The one "failing" notice of a failure streak: sent by the poll that makes it reach
    `failing_after` (0: never)."""
    if not failing_after or streak != failing_after:
        return None
    return Notice("failing", feed, (
        f"Feed {feed} failed {streak} polls in a row; it keeps being retried with backoff. "
        f"Last error: {reason[:300]}"), now)


def recovered_notice(feed: str, streak: int, failing_since: float | None,
                     now: float) -> Notice:
    """The notice of a feed polled fine again after being reported failing."""
    down = format_duration(now - failing_since, spaced=True) if failing_since else "a while"
    return Notice("recovered", feed, (
        f"Feed {feed} is polled fine again after {streak or 'several'} failed polls "
        f"(failing for {down})."), now)
