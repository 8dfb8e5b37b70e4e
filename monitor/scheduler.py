"""APScheduler 3 jobs: one per enabled feed, its own interval and jitter, failures backed off."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from monitor.poller import Poller
from monitor.settings import Config, FeedSettings

log = structlog.get_logger("livewatch.scheduler")


def backoff_delay(interval: float, failures: int, max_backoff: float,
                  retry_after: float | None = None) -> float:
    """Seconds until the next poll after `failures` consecutive failures (exponential)."""
    delay = interval * (2 ** max(failures - 1, 0)) if failures else interval
    delay = min(delay, max(max_backoff, interval))
    if retry_after is not None:
        delay = max(delay, min(retry_after, max(max_backoff, interval)))
    return delay


class FeedScheduler:
    """Runs `Poller.poll` for every enabled feed on its interval (max_instances=1, coalesce)."""

    def __init__(self, config: Config, poller: Poller) -> None:
        self.config = config
        self.poller = poller
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self.in_flight: set[asyncio.Task[Any]] = set()

    def start(self) -> None:
        """Add one job per enabled feed (first polls spread over the jitter) and start."""
        now = datetime.now(UTC)
        for feed in self.config.feeds:
            if not feed.enabled:
                continue
            interval = self.config.interval(feed)
            jitter = self.config.jitter(feed)
            self.scheduler.add_job(
                self._run, IntervalTrigger(seconds=interval, jitter=jitter or None),
                args=[feed], id=feed.name, name=f"poll {feed.name}", max_instances=1,
                coalesce=True, misfire_grace_time=max(1, int(interval)),
                next_run_time=now + timedelta(seconds=random.uniform(0, min(jitter, 2.0))))
        self.scheduler.start()

    async def _run(self, feed: FeedSettings) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.in_flight.add(task)
        try:
            outcome = await self.poller.poll(feed)
        finally:
            self.in_flight.discard(task)
        if outcome.status == "error":
            delay = backoff_delay(self.config.interval(feed), outcome.consecutive_failures,
                                  self.config.defaults.max_backoff, outcome.retry_after)
            job = self.scheduler.get_job(feed.name)
            if job is not None:
                job.modify(next_run_time=datetime.now(UTC) + timedelta(seconds=delay))
                await log.ainfo("poll backed off", feed=feed.name, delay_s=round(delay, 1))

    async def shutdown(self, timeout: float = 10.0) -> None:
        """Stop scheduling; let in-flight polls finish within `timeout`."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        pending = list(self.in_flight)
        if pending:
            _done, still = await asyncio.wait(pending, timeout=timeout)
            for task in still:
                task.cancel()
