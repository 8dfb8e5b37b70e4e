"""One poll of one feed: fetch, parse, diff, commit. Errors are counted, logged once, backed off."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import structlog
from redis.exceptions import RedisError

from monitor import metrics
from monitor.diff import Change, diff_entries
from monitor.errors import FetchError, ParseError, StateError
from monitor.fetch import Fetcher, FetchResult
from monitor.models import Entry, Notice
from monitor.reading import read_document
from monitor.settings import Config, FeedSettings
from monitor.state import FeedState, Snapshot
from monitor.versionmemo import Versions

log = structlog.get_logger("livewatch.poll")

#: `superseded`: the poller's lease was taken over mid-poll, so its commit was refused.
Status = Literal["changed", "unchanged", "not_modified", "baseline", "error", "superseded"]


@dataclass(frozen=True, slots=True)
class PollOutcome:
    """What one poll did; `retry_after` is the server's request, when it made one."""

    feed: str
    status: Status
    new: int = 0
    updated: int = 0
    entries: int = 0
    kind: str | None = None
    error: str | None = None
    consecutive_failures: int = 0
    retry_after: float | None = None
    max_age: float | None = None
    ended: bool = False
    flood: bool = False


class Poller:
    """Polls feeds against Redis state. Safe to run for many feeds concurrently."""

    def __init__(self, config: Config, state: FeedState, fetcher: Fetcher) -> None:
        self.config = config
        self.state = state
        self.fetcher = fetcher
        #: feed -> entry versions of its last parse (`monitor.versionmemo`; no texts)
        self.versions: dict[str, Versions] = {}

    async def poll(self, feed: FeedSettings, *, fence: int | None = None,
                   meta: dict[str, str] | None = None) -> PollOutcome:
        """Poll `feed` once; never raises for a broken feed (the outcome says what failed).
        `fence` is the poller's lease token (monitor.lease): the commit is refused if a newer
        one was issued meanwhile. `meta`: the feed's meta hash, when read with the lease."""
        started = time.monotonic()
        try:
            outcome = await self._poll(feed, fence, meta)
        except (FetchError, ParseError, StateError, RedisError) as exc:
            retry_after = exc.retry_after if isinstance(exc, FetchError) else None
            outcome = await self._failed(feed, str(exc), retry_after)
        self._log(outcome, time.monotonic() - started)
        metrics.observe_poll(outcome)
        return outcome

    async def _failed(self, feed: FeedSettings, reason: str,
                      retry_after: float | None) -> PollOutcome:
        try:
            streak = await self.state.record_failure(feed.name, reason)
        except Exception:  # Redis itself is down: still report the poll's own failure
            streak = 0
        return PollOutcome(feed.name, "error", error=reason, consecutive_failures=streak,
                           retry_after=retry_after)

    async def _poll(self, feed: FeedSettings, fence: int | None,
                    meta: dict[str, str] | None) -> PollOutcome:
        snapshot = Snapshot.read(meta) if meta is not None else \
            await self.state.load(feed.name, fingerprints=False)
        with metrics.FETCH_SECONDS.time():
            result = await self.fetcher.fetch(
                feed.url, timeout=self.config.timeout(feed),
                max_body=self.config.defaults.max_body,
                etag=snapshot.etag if snapshot.baselined else None,
                last_modified=snapshot.last_modified if snapshot.baselined else None,
                headers=feed.headers)
        # A page not parsed again is the one parsed before: its coverage end still holds.
        ended = snapshot.coverage_end is not None and snapshot.coverage_end < time.time()
        if result.not_modified:
            await self.state.record_success(feed.name, "not_modified")
            return PollOutcome(feed.name, "not_modified", max_age=result.max_age, ended=ended)
        if snapshot.baselined and result.body_hash == snapshot.body_hash:
            await self.state.touch(feed.name, etag=result.etag,
                                   last_modified=result.last_modified)
            await self.state.record_success(feed.name, "unchanged")
            return PollOutcome(feed.name, "unchanged", max_age=result.max_age, ended=ended)
        # Changed: now the fingerprints (and the validators again: time passed while fetching).
        return await self._parse_and_commit(feed, result, await self.state.load(feed.name),
                                            fence)

    async def _parse_and_commit(self, feed: FeedSettings, result: FetchResult,
                                snapshot: Snapshot, fence: int | None = None) -> PollOutcome:
        assert result.body is not None
        with metrics.PARSE_SECONDS.time():
            document = await read_document(self.config, feed.name, feed.kind, result.body,
                                           result.url, result.content_type, feed.selectors,
                                           versions=self.versions.get(feed.name))
        self.versions[feed.name] = document.versions
        if not document.entries and snapshot.fingerprints:
            raise ParseError(f"no entries found (had {len(snapshot.fingerprints)}): the page "
                             "may have changed shape or be behind a login or paywall")
        content_identity = snapshot.identity == "content"
        for _attempt in range(3):
            entries = _content_keyed(document.entries) if content_identity else document.entries
            baseline = not snapshot.baselined
            changes = diff_entries(snapshot.fingerprints, entries, baseline=baseline,
                                   backfill=feed.backfill)
            if not baseline and not content_identity and _churning(changes):
                await self.state.set_meta(feed.name, identity="content")
                log.warning("feed churns entry ids; using content identity from now on",
                            feed=feed.name,
                            duplicates=sum(1 for c in changes if c.duplicate))
                content_identity = True
                continue
            would_emit = sum(1 for c in changes if c.emit)
            flood = not baseline and would_emit > max(self.config.defaults.flood_threshold,
                                                      3 * snapshot.max_events)
            notice = None
            if flood:
                changes = [replace(c, emit=False) for c in changes]
                notice = Notice("flood", feed.name, (
                    f"{would_emit} new or edited entries in one poll (the most before was "
                    f"{snapshot.max_events}); recorded without alerting. The source may have "
                    "been redesigned or reset."), time.time())
            edited = [c.entry.id for c in changes if c.previous_version is not None and c.emit]
            previous = await self.state.previous_texts(feed.name, edited)
            committed = await self.state.commit(
                feed.name, feed.url, changes, baseline=baseline, etag=result.etag,
                last_modified=result.last_modified, body_hash=result.body_hash,
                previous=previous, notice=notice, fence=fence)
            if committed.superseded:  # another poller took the feed over: it commits instead
                return PollOutcome(feed.name, "superseded", entries=len(document.entries),
                                   kind=document.kind)
            if not committed.baseline_moved:
                break
            snapshot = await self.state.load(feed.name)  # another poller baselined meanwhile
        else:
            raise StateError("feed state kept changing during commit")
        if flood:
            log.warning("flood breaker tripped", feed=feed.name, events=would_emit,
                        previous_max=snapshot.max_events)
        elif committed.appended > snapshot.max_events:
            await self.state.set_meta(feed.name, max_events=committed.appended)
        page = document.page
        coverage_end = page.coverage_end.timestamp() if page and page.coverage_end else None
        if coverage_end != snapshot.coverage_end:
            await self.state.set_meta(
                feed.name, coverage_end="" if coverage_end is None else repr(coverage_end))
        await self.state.record_success(feed.name, "ok", kind=document.kind)
        ended = coverage_end is not None and coverage_end < time.time()
        return PollOutcome(
            feed.name, "baseline" if baseline else ("changed" if changes else "unchanged"),
            new=committed.new, updated=committed.updated, entries=len(document.entries),
            kind=document.kind, max_age=result.max_age, ended=ended, flood=flood)

    def _log(self, outcome: PollOutcome, elapsed: float) -> None:
        fields = {"feed": outcome.feed, "status": outcome.status,
                  "elapsed_ms": round(elapsed * 1000, 1)}
        if outcome.status == "error":
            log.warning("poll failed", error=outcome.error,
                        consecutive_failures=outcome.consecutive_failures, **fields)
        else:
            log.info("poll", kind=outcome.kind, entries=outcome.entries,
                     new=outcome.new, updated=outcome.updated, **fields)


def _content_keyed(entries: Sequence[Entry]) -> list[Entry]:
    """Entries re-identified by their content, for feeds whose ids cannot be trusted."""
    return [entry.with_id("h:" + entry.version) for entry in entries]


def _churning(changes: Sequence[Change]) -> bool:
    """Many "new" ids carrying content already known under other ids: churned GUIDs."""
    duplicates = sum(1 for c in changes if c.duplicate)
    fresh = sum(1 for c in changes if c.previous_version is None and not c.duplicate)
    return duplicates >= 3 and duplicates >= fresh
