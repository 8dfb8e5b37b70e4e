"""One poll of one feed: fetch, parse, ask `monitor.poll.decide` for the plan, apply it in one Redis
script. Errors are counted, logged once, backed off.

Round trips to Redis: a quiet poll (304, or the body parsed last time) by the poller holding
the feed's lease is one (the plan's script); a changed poll two (the fingerprints, then the
script); one more when the turn has to take the lease first.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import structlog
from redis.exceptions import RedisError

from monitor.config.models import Config, FeedSettings
from monitor.core.errors import FetchError, ParseError, StateError
from monitor.core.versionmemo import Versions
from monitor.fetch.client import Fetcher, FetchResult
from monitor.ops import metrics
from monitor.poll.decide import Plan, Snapshot, Status, plan_document, plan_fetch, snapshot_after
from monitor.poll.lease import Keep, Lease
from monitor.poll.state import FeedState
from monitor.sources import ParsedDocument
from monitor.sources.reading import read_document

log = structlog.get_logger("livewatch.poll")

__all__ = ["PollOutcome", "Poller", "Status", "Turn"]


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
    #: The feed's state once this poll was recorded, when it still holds its lease for the
    #: next turn (`Turn`): that turn starts from it without reading Redis.
    snapshot: Snapshot | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Turn:
    """A scheduled poll: the feed's lease, its snapshot (read with the lease, or kept from
    the last turn) and `schedule`, which, given the outcome about to be recorded, says how
    the poll's script moves the lease (`Keep`; None: leave it)."""

    lease: Lease
    snapshot: Snapshot
    schedule: Callable[[PollOutcome], Keep | None]


class Poller:
    """Polls feeds against Redis state. Safe to run for many feeds concurrently."""

    def __init__(self, config: Config, state: FeedState, fetcher: Fetcher) -> None:
        self.config = config
        self.state = state
        self.fetcher = fetcher
        #: feed -> entry versions of its last parse (`monitor.core.versionmemo`; no texts)
        self.versions: dict[str, Versions] = {}
        #: Called on the event loop after each fetch that brought a body (WebSub discovery).
        self.on_fetched: Callable[[FeedSettings, FetchResult], None] | None = None

    async def poll(self, feed: FeedSettings, turn: Turn | None = None, *,
                   fence: int | None = None, pushed: FetchResult | None = None) -> PollOutcome:
        """Poll `feed` once; never raises for a broken feed (the outcome says what failed).
        `turn`: the scheduler's lease and snapshot (see `Turn`). Without one, `fence` is a
        lease token (monitor.poll.lease): the commit is refused if a newer one was issued.
        `pushed`: a document pushed to us (WebSub), diffed instead of fetching one."""
        started = time.monotonic()
        try:
            outcome = await self._poll(feed, turn, turn.lease.fence if turn else fence, pushed)
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

    async def _poll(self, feed: FeedSettings, turn: Turn | None,
                    fence: int | None, pushed: FetchResult | None = None) -> PollOutcome:
        snapshot = turn.snapshot if turn is not None else \
            await self.state.load(feed.name, fingerprints=False)
        if pushed is not None:  # the validators of the last fetch stay: the next one is cheap
            result = replace(pushed, etag=pushed.etag or snapshot.etag,
                             last_modified=pushed.last_modified or snapshot.last_modified)
        else:
            with metrics.FETCH_SECONDS.time():
                result = await self.fetcher.fetch(
                    feed.url, timeout=self.config.timeout(feed),
                    max_body=self.config.defaults.max_body,
                    etag=snapshot.etag if snapshot.baselined else None,
                    last_modified=snapshot.last_modified if snapshot.baselined else None,
                    headers=feed.headers)
            if result.body is not None and self.on_fetched is not None:
                self.on_fetched(feed, result)
        plan = plan_fetch(snapshot, result)
        if plan is not None:  # a quiet plan never meets a moved baseline
            outcome = await self._apply(feed, plan, result, snapshot, turn, fence)
            assert outcome is not None
            return outcome
        # Changed: now the fingerprints. (Had another poller baselined the feed meanwhile,
        # the script would say so: then the meta is read again.)
        snapshot = replace(snapshot, fingerprints=await self.state.fingerprints(feed.name))
        body = result.body
        assert body is not None

        async def read(known: dict[str, str]) -> ParsedDocument:
            with metrics.PARSE_SECONDS.time():
                return await read_document(self.config, feed.name, feed.kind, body, result.url,
                                           result.content_type, feed.selectors,
                                           versions=self.versions.get(feed.name), known=known)

        document = await read(snapshot.fingerprints)
        self.versions[feed.name] = document.versions
        for _attempt in range(3):
            plan = plan_document(snapshot, document, backfill=feed.backfill,
                                 flood_threshold=self.config.defaults.flood_threshold,
                                 feed=feed.name, now=time.time())
            outcome = await self._apply(feed, plan, result, snapshot, turn, fence)
            if outcome is not None:
                return outcome
            # The baseline moved (another poller baselined, or Redis lost the feed's state):
            # read again, without the entries found unchanged against the old fingerprints.
            snapshot = await self.state.load(feed.name)
            document = await read({})
        raise StateError("feed state kept changing during commit")

    async def _apply(self, feed: FeedSettings, plan: Plan, result: FetchResult,
                     snapshot: Snapshot, turn: Turn | None,
                     fence: int | None) -> PollOutcome | None:
        """Record `plan` (one script); the outcome, or None when the baseline moved."""
        now = time.time()
        planned = PollOutcome(
            feed.name, plan.status, new=plan.new, updated=plan.updated, entries=plan.entries,
            kind=plan.kind, max_age=result.max_age, ended=plan.ended(now), flood=plan.flood)
        keep = turn.schedule(planned) if turn is not None else None
        applied = await self.state.apply(
            feed.name, feed.url, plan, etag=result.etag, last_modified=result.last_modified,
            body_hash=result.body_hash, lease=turn.lease if turn else None, keep=keep,
            fence=fence, now=now)
        if applied.superseded:  # another poller took the feed over: it records instead
            return PollOutcome(feed.name, "superseded", entries=plan.entries, kind=plan.kind)
        if applied.baseline_moved:
            return None
        if plan.churned:
            log.warning("feed churns entry ids; using content identity from now on",
                        feed=feed.name, duplicates=plan.churned)
        if plan.flood:
            log.warning("flood breaker tripped", feed=feed.name, events=plan.would_emit,
                        previous_max=snapshot.max_events)
        after = snapshot_after(snapshot, plan, result, applied.appended, now) if applied.held \
            else None
        return PollOutcome(
            feed.name, planned.status, new=applied.new, updated=applied.updated,
            entries=plan.entries, kind=plan.kind, max_age=result.max_age,
            ended=planned.ended, flood=plan.flood, snapshot=after)

    def _log(self, outcome: PollOutcome, elapsed: float) -> None:
        """One line per poll: a failure as a warning, a poll that parsed the document at
        INFO, a quiet one (304, the body parsed last time) at DEBUG: they are most polls,
        and `livewatch status` and the metrics count them."""
        fields = {"feed": outcome.feed, "status": outcome.status,
                  "elapsed_ms": round(elapsed * 1000, 1)}
        if outcome.status == "error":
            log.warning("poll failed", error=outcome.error,
                        consecutive_failures=outcome.consecutive_failures, **fields)
        elif outcome.kind is None:
            log.debug("poll", **fields)
        else:
            log.info("poll", kind=outcome.kind, entries=outcome.entries,
                     new=outcome.new, updated=outcome.updated, **fields)
