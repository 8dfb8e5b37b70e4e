"""The poller role: scheduler + fetcher + poller against Redis, until stopped."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import redis.asyncio as aioredis
import structlog

from monitor import metrics
from monitor.fetch import Fetcher
from monitor.poller import Poller
from monitor.scheduler import FeedScheduler
from monitor.settings import Config
from monitor.state import FeedState

if TYPE_CHECKING:
    from monitor.control import Control

log = structlog.get_logger("livewatch.service")


def make_state(config: Config, client: aioredis.Redis) -> FeedState:
    """FeedState with the configured bounds."""
    return FeedState(client, max_entries=config.state.max_entries_per_feed,
                     stream_maxlen=config.state.stream_maxlen,
                     failing_after=config.operator.failing_after)


async def run_pollers(config: Config, client: aioredis.Redis, stop: asyncio.Event,
                      shutdown_timeout: float = 10.0, *, control: Control | None = None) -> None:
    """Poll every enabled feed on its schedule until `stop` is set. With `control`, readiness
    requires a running scheduler and a reload reconciles the jobs."""
    async with Fetcher.from_config(config) as fetcher:
        scheduler = FeedScheduler(config, Poller(config, make_state(config, client), fetcher))
        scheduler.start()
        if control is not None:
            control.add_check("scheduler", lambda: None if scheduler.running else "stopped")

            async def reload(new: Config) -> None:
                jobs = scheduler.reconcile(new)
                for feed in jobs["removed"]:
                    metrics.forget_feed(feed)

            control.on_reload(reload)
        enabled = sum(1 for feed in config.feeds if feed.enabled)
        log.info("pollers started", feeds=enabled, lease_owner=scheduler.leases.owner)
        try:
            await stop.wait()
        finally:
            await scheduler.shutdown(shutdown_timeout)
            log.info("pollers stopped")
