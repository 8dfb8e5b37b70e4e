"""APScheduler 3 jobs: one per enabled feed, its own interval and jitter, max_instances=1,
coalesce. After every poll the job's next run is set by `monitor.poll.cadence`: the interval while a
feed is live, longer when it is quiet or its coverage ended, exponential backoff on failures.

Every turn first takes the feed's lease (monitor.poll.lease), unless it still holds it from its
last turn; without it the turn is skipped, as another poller has the feed. The poll's own
script then holds the lease through this poller's next turn, or, when another poller asked
for the feed, only until shortly before it (`handover` earlier), so with any number of pollers
each feed is polled about once per interval, a feed moves between pollers now and then (which
spreads the feeds over pollers started at different times), and a lone poller's quiet poll is
one Redis round trip."""

from __future__ import annotations

import asyncio
import math
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from monitor.config.models import Config, FeedSettings
from monitor.core.errors import StateError
from monitor.fetch.client import FetchResult
from monitor.ops import metrics
from monitor.poll.cadence import Cadence, next_delay
from monitor.poll.decide import Snapshot
from monitor.poll.lease import FeedLeases, Keep, Lease
from monitor.poll.poller import Poller, PollOutcome, Turn

log = structlog.get_logger("livewatch.scheduler")


#: Polls start on a grid of this many seconds (their jittered times rounded up to it), so the
#: feeds due within one slot start in one event-loop wake-up and their quiet plans share one
#: Redis round trip: spread over the interval, each poll would otherwise wake the process for
#: itself, the larger part of a quiet poll's CPU.
SLOT = 0.1


class _SlottedInterval(IntervalTrigger):  # type: ignore[misc]
    """APScheduler's interval trigger, its fire times rounded up to the `SLOT` grid."""

    def get_next_fire_time(self, previous_fire_time: datetime | None,
                           now: datetime) -> datetime | None:
        fire = super().get_next_fire_time(previous_fire_time, now)
        return None if fire is None else _on_grid(fire)


def _on_grid(when: datetime) -> datetime:
    """`when` rounded up to the next multiple of `SLOT` seconds."""
    return datetime.fromtimestamp(math.ceil(when.timestamp() / SLOT) * SLOT, tz=when.tzinfo)


#: Seconds a lease is held past the start of its holder's next turn: for a turn that starts
#: late (a busy event loop, a burst of due feeds) and for that turn's poll, most of which take
#: milliseconds. A poll still running when it ends may be taken over (its plan is then refused
#: by the fence, never duplicated), and a poller that dies leaves its feeds for this long past
#: the turn it had scheduled.
HOLD_MARGIN = 5.0
#: A lease held from the last turn is used without Redis only with this many seconds left.
HOLD_LEFT = 1.0
#: Seconds a fetch asked for by a notification waits after the feed's last turn, for feeds
#: without `min_interval` (`FeedScheduler.poll_now`).
PUSH_FLOOR = 5.0


@dataclass(frozen=True, slots=True)
class _Held:
    """A lease this poller holds through its next turn, and the feed's state it recorded."""

    lease: Lease
    snapshot: Snapshot
    #: time.monotonic() before which the lease surely has not expired in Redis
    until: float


class _Pace:
    """What the scheduler remembers of a feed between polls (in memory: a restart starts
    every feed at its interval)."""

    def __init__(self) -> None:
        self.last_change = time.monotonic()
        self.last_post: float | None = None  # a new or edited entry found (hot polling)
        self.quiet_polls = 0
        self.failures = 0  # counted here too, for when Redis cannot count them


class FeedScheduler:
    """Runs `Poller.poll` for every enabled feed on its own cadence."""

    def __init__(self, config: Config, poller: Poller, leases: FeedLeases | None = None) -> None:
        self.config = config
        self.poller = poller
        self.leases = leases or FeedLeases(poller.state.client)
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self.in_flight: set[asyncio.Task[Any]] = set()
        self._pace: dict[str, _Pace] = {}
        self._held: dict[str, _Held] = {}
        #: feed -> a pushed document its next turn diffs instead of fetching (`poll_now`)
        self._pushed: dict[str, FetchResult] = {}
        #: Feeds whose turn is running, and those of them asked to poll again once it ends.
        self._turning: set[str] = set()
        self._again: set[str] = set()
        #: feed -> time.monotonic() of the last fetch `poll_now` asked for (it paces them),
        #: and until when the feed backs off after failures
        self._asked: dict[str, float] = {}
        self._backoff: dict[str, float] = {}
        #: feed -> when its next turn is due (epoch seconds), for the lateness metric
        self._due: dict[str, float] = {}
        self._stopping = False
        #: Turns in progress at once (lease, poll, keep): as many as the fetcher runs, so a
        #: burst of due feeds waits here, before taking leases and Redis connections.
        self._turns = asyncio.Semaphore(config.defaults.max_concurrency)

    def poll_budget(self, feed: FeedSettings) -> float:
        """How long a turn's lease is held while polling: the fetch timeout, the parse budget
        and a margin for the Redis round trips. A poll still running after that may be taken
        over, and then its commit is refused (the fence), never duplicated."""
        return self.config.timeout(feed) + self.config.fetch.parse_timeout + 2.0

    def handover(self, feed: FeedSettings) -> float:
        """How long before this poller's next turn its lease ends: another poller whose turn
        falls in that window takes the feed over (half the jitter, at most a quarter of the
        interval; 0 with no jitter: a feed then stays with its poller while it runs)."""
        return min(self.config.jitter(feed) / 2, self.config.interval(feed) / 4)

    def cadence(self, feed: FeedSettings) -> Cadence:
        """The polling bounds of `feed`."""
        defaults = self.config.defaults
        return Cadence(interval=self.config.interval(feed),
                       max_interval=feed.max_interval or defaults.max_interval,
                       quiet_after=defaults.quiet_after, max_backoff=defaults.max_backoff,
                       min_interval=self.config.min_interval(feed), hot_for=defaults.hot_for)

    @property
    def running(self) -> bool:
        """True between `start` and `shutdown`."""
        return bool(self.scheduler.running)

    def start(self) -> None:
        """Add one job per enabled feed (first polls spread over the jitter) and start."""
        for feed in self.config.feeds:
            if feed.enabled:
                self._add(feed)
        self.scheduler.start()

    def _add(self, feed: FeedSettings) -> None:
        interval = self.config.interval(feed)
        jitter = self.config.jitter(feed)
        self._pace[feed.name] = _Pace()
        self.scheduler.add_job(
            self._run, _SlottedInterval(seconds=interval, jitter=jitter or None),
            args=[feed], id=feed.name, name=f"poll {feed.name}", max_instances=1,
            coalesce=True, misfire_grace_time=max(1, int(interval)),
            next_run_time=_on_grid(datetime.now(UTC) + timedelta(
                seconds=random.uniform(0, min(jitter, 2.0)))))
        self._note_due(feed.name)

    def reconcile(self, config: Config) -> dict[str, list[str]]:
        """Make the jobs match `config`: add new feeds, drop removed or disabled ones, and
        re-arm changed ones. Polls in flight finish with the settings they started with;
        a feed's Redis state is never touched."""
        old = self.config
        before = {f.name: f for f in old.feeds if f.enabled}
        after = {f.name: f for f in config.feeds if f.enabled}
        self.config = config
        self.poller.config = config
        changed = sorted(
            name for name in before.keys() & after.keys()
            if (before[name], old.interval(before[name]), old.jitter(before[name]),
                old.timeout(before[name]))
            != (after[name], config.interval(after[name]), config.jitter(after[name]),
                config.timeout(after[name])))
        for name in before.keys() - after.keys():
            if self.scheduler.get_job(name) is not None:
                self.scheduler.remove_job(name)
            self._pace.pop(name, None)
            self._held.pop(name, None)
            self._asked.pop(name, None)
            self._backoff.pop(name, None)
        for name in sorted(after.keys() - before.keys()):
            self._add(after[name])
        for name in changed:
            feed = after[name]
            self._held.pop(name, None)  # its next turn takes the lease with the new budget
            job = self.scheduler.get_job(name)
            if job is None:
                self._add(feed)
                continue
            job.modify(args=[feed])
            interval, jitter = config.interval(feed), config.jitter(feed)
            job.reschedule(_SlottedInterval(seconds=interval, jitter=jitter or None))
        return {"added": sorted(after.keys() - before.keys()),
                "removed": sorted(before.keys() - after.keys()), "changed": changed}

    def poll_now(self, name: str, pushed: FetchResult | None = None, *,
                 only_if_held: bool = False) -> bool:
        """Run the turn of feed `name` at once (a WebSub notification): diff `pushed` if
        given, else fetch as usual; asked while the feed's turn runs, the turn runs again
        right after it. With `only_if_held`, only when this poller holds the feed's lease
        (from its last turn, or for the turn running). False when nothing was started
        (unknown or disabled feed, not held, stopping).

        Fetches asked for this way are paced: at most one per `min_interval` (`PUSH_FLOOR`
        without one) and none while the feed backs off after failures (its Retry-After
        included), so notifications, whoever sends them, cannot make livewatch hammer a
        site; one asked for sooner runs when the floor ends. A pushed document is diffed at
        once; a second one arriving before the first was diffed makes that turn a fetch
        instead (it reads both)."""
        job = self.scheduler.get_job(name) if self.scheduler.running else None
        held = name in self._held or name in self._turning  # a running turn holds it too
        if job is None or self._stopping or (only_if_held and not held):
            return False
        when = datetime.now(UTC)
        if pushed is not None and name not in self._pushed:
            self._pushed[name] = pushed
        elif pushed is not None:  # two pushes before one turn: fetch once, for both
            del self._pushed[name]
        else:  # at most one fetch per floor, none during a backoff
            now = time.monotonic()
            last = self._asked.get(name)
            if last is not None and last > now:  # one is due already: it answers this too
                return True
            floor = self._push_floor(job.args[0])  # the job polls that feed
            earliest = max(now, self._backoff.get(name, 0.0),
                           last + floor if last is not None else 0.0)
            if name not in self._turning:  # (else asked again, and paced, once it ends)
                self._asked[name] = earliest
            when += timedelta(seconds=earliest - now)
        if name in self._turning:  # APScheduler would skip it (max_instances): run it after
            self._again.add(name)
        elif job.next_run_time is None or _on_grid(when) < job.next_run_time:
            job.modify(next_run_time=_on_grid(when))
            self._note_due(name)
        return True

    def _note_due(self, name: str) -> None:
        """Remember when the feed's job runs next (to measure how late it starts)."""
        job = self.scheduler.get_job(name)
        if job is not None and job.next_run_time is not None:
            self._due[name] = job.next_run_time.timestamp()

    async def _run(self, feed: FeedSettings) -> None:
        if self._stopping:  # a turn that fired as the scheduler was shut down
            return
        task = asyncio.current_task()
        assert task is not None
        due = self._due.pop(feed.name, None)
        if due is not None:  # a busy loop or a burst of due feeds shows here first
            metrics.POLL_LATENESS.observe(max(0.0, time.time() - due))
        self.in_flight.add(task)
        self._turning.add(feed.name)
        try:
            async with self._turns:
                if not self._stopping:
                    await self._turn(feed)
        except asyncio.CancelledError:
            if not self._stopping:
                raise
            # cut short by shutdown (said once, by `shutdown`): nothing for APScheduler to log
        finally:
            self.in_flight.discard(task)
            self._turning.discard(feed.name)
            self._note_due(feed.name)
            if feed.name in self._again:  # a push arrived during this turn: its turn next
                self._again.discard(feed.name)
                # after APScheduler has counted this run as ended (its done callbacks, queued
                # when this coroutine returns), else it would skip that turn too
                loop = asyncio.get_running_loop()
                name = feed.name
                loop.call_soon(lambda: loop.call_soon(self.poll_now, name))

    async def _turn(self, feed: FeedSettings) -> None:
        pushed = self._pushed.pop(feed.name, None)
        held = self._held.pop(feed.name, None)
        budget = self.poll_budget(feed)
        lease: Lease | None
        if held is not None and held.until - time.monotonic() > HOLD_LEFT:
            lease, snapshot = held.lease, held.snapshot  # still ours: no round trip to take it
        else:
            try:
                lease = await self.leases.acquire(feed.name, budget, meta=True,
                                                  want=2 * self.config.interval(feed) + budget)
            except StateError as exc:  # Redis is down: a failed poll, backed off as such
                outcome = PollOutcome(feed.name, "error", error=str(exc))
                log.warning("poll failed", feed=feed.name, status="error", error=str(exc))
                metrics.observe_poll(outcome)
                self._reschedule(feed, outcome)
                return
            if lease is None:
                log.debug("turn skipped: another poller holds the lease", feed=feed.name)
                return
            snapshot = Snapshot.read(lease.meta or {})
        assert lease is not None
        self._remember_post(feed, snapshot)
        sent = time.monotonic()
        keeps: list[Keep | None] = []

        def schedule(outcome: PollOutcome) -> Keep | None:  # once, though a plan is retried
            if not keeps:
                keeps.append(self._schedule(feed, outcome))
            return keeps[0]

        outcome = await self.poller.poll(feed, Turn(lease, snapshot, schedule), pushed=pushed)
        if outcome.status == "superseded":  # another poller has the feed now
            return
        if outcome.status == "error":  # its script did not run: back off, move the lease
            keep = self._schedule(feed, outcome)
            if keep is not None:
                await self._keep(lease, keep.handover, keep.next_poll)
        elif outcome.snapshot is not None and keeps and keeps[0] is not None:
            self._held[feed.name] = _Held(lease, outcome.snapshot, sent + keeps[0].hold)

    def _schedule(self, feed: FeedSettings, outcome: PollOutcome) -> Keep | None:
        """Set the job's next run after `outcome` and say how long to hold the lease: through
        the next turn (`HOLD_MARGIN` past its start), or, when another poller
        wants the feed, until `handover` before that turn. None: the job is gone (reload)."""
        next_run = self._reschedule(feed, outcome)
        if next_run is None:
            return Keep(0, 0) if self.scheduler.get_job(feed.name) is None else None
        until = next_run - time.time()
        return Keep(hold=until + HOLD_MARGIN, handover=until - self.handover(feed),
                    next_poll=next_run)

    def _reschedule(self, feed: FeedSettings, outcome: PollOutcome) -> float | None:
        """Move the job's next run by the cadence after `outcome`; its time (epoch seconds),
        or None when the job is gone."""
        job = self.scheduler.get_job(feed.name)
        if job is None:  # removed by a reload while polling
            return None
        delay = self.delay_after(feed, outcome)
        if outcome.status == "error":
            self._backoff[feed.name] = time.monotonic() + delay
        else:
            self._backoff.pop(feed.name, None)
        if abs(delay - self.config.interval(feed)) > 1e-6:  # else the trigger's own pace
            delay += random.uniform(0, min(self.config.jitter(feed), delay / 10))
            job.modify(next_run_time=_on_grid(datetime.now(UTC) + timedelta(seconds=delay)))
            if outcome.status == "error":
                log.info("poll backed off", feed=feed.name, delay_s=round(delay, 1))
        return job.next_run_time.timestamp() if job.next_run_time is not None else None

    async def _keep(self, lease: Lease, seconds: float, next_poll: float | None = None) -> None:
        """Hold `lease` until `seconds` from now (release it if <= 0), noting `next_poll`."""
        try:
            await self.leases.keep(lease, seconds, next_poll)
        except StateError as exc:  # the lease expires by itself
            log.warning("could not keep the feed's lease", feed=lease.feed,
                        error=str(exc))

    def _push_floor(self, feed: FeedSettings) -> float:
        """The least time between a turn and a fetch `poll_now` asks for: `min_interval` if
        the feed has one, else `PUSH_FLOOR` (at most its interval)."""
        if feed.min_interval or self.config.defaults.min_interval:
            return self.config.min_interval(feed)
        return min(PUSH_FLOOR, self.config.interval(feed))

    def _remember_post(self, feed: FeedSettings, snapshot: Snapshot) -> None:
        """Take the feed's last post from its recorded state (another poller's, or this one's
        before a restart), so a hot live blog stays hot when it changes hands."""
        if snapshot.last_post is None:
            return
        pace = self._pace.setdefault(feed.name, _Pace())
        posted = time.monotonic() - max(time.time() - snapshot.last_post, 0.0)
        if pace.last_post is None or posted > pace.last_post:
            pace.last_post = posted

    def delay_after(self, feed: FeedSettings, outcome: PollOutcome) -> float:
        """Seconds until the next poll of `feed`, given the outcome of the last one."""
        pace = self._pace.setdefault(feed.name, _Pace())
        cadence = self.cadence(feed)
        now = time.monotonic()
        if outcome.new or outcome.updated or outcome.status == "baseline":
            pace.last_change, pace.quiet_polls = now, 0
        if outcome.new or outcome.updated:
            pace.last_post = now
        since_change = now - pace.last_change
        if outcome.status == "error":
            pace.failures += 1
        else:
            pace.failures = 0
            if since_change >= cadence.quiet_after:
                pace.quiet_polls += 1
        failures = max(outcome.consecutive_failures, pace.failures) if pace.failures else 0
        return next_delay(cadence, failures=failures,
                          retry_after=outcome.retry_after, ended=outcome.ended,
                          since_change=since_change, quiet_polls=max(pace.quiet_polls - 1, 0),
                          max_age=outcome.max_age,
                          since_post=None if pace.last_post is None else now - pace.last_post)

    async def shutdown(self, timeout: float = 10.0) -> None:
        """Stop scheduling; let in-flight polls finish within `timeout`, then release the
        leases this poller keeps, so other pollers take its feeds at their next turn."""
        self._stopping = True
        if self.scheduler.running:  # no new turns; those running go on (shutdown cancels them)
            self.scheduler.pause()
        pending = list(self.in_flight)
        if pending:
            _done, still = await asyncio.wait(pending, timeout=timeout)
            for task in still:
                task.cancel()
            if still:
                await asyncio.wait(still)
                log.warning("polls still running at shutdown were cancelled",
                            polls=len(still), timeout_s=timeout)
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        # Hand the feeds over now rather than when their leases would run out. The lease of
        # a cancelled poll is released too: its commit, if it still reaches Redis, is refused.
        try:
            await self.leases.release_all([feed.name for feed in self.config.feeds])
        except StateError as exc:
            log.warning("could not release the leases; they expire by themselves",
                        error=str(exc))
