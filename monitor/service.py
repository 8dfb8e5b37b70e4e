"""The poller role: scheduler + fetcher + poller against Redis, until stopped."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
import structlog

from monitor.fetch import Fetcher
from monitor.poller import Poller
from monitor.scheduler import FeedScheduler
from monitor.settings import Config
from monitor.state import FeedState

log = structlog.get_logger("livewatch.service")


def make_state(config: Config, client: aioredis.Redis) -> FeedState:
    """FeedState with the configured bounds."""
    return FeedState(client, max_entries=config.state.max_entries_per_feed,
                     stream_maxlen=config.state.stream_maxlen)


async def run_pollers(config: Config, client: aioredis.Redis, stop: asyncio.Event,
                      shutdown_timeout: float = 10.0) -> None:
    """Poll every enabled feed on its schedule until `stop` is set."""
    async with Fetcher(user_agent=config.defaults.user_agent,
                       max_concurrency=config.defaults.max_concurrency) as fetcher:
        scheduler = FeedScheduler(config, Poller(config, make_state(config, client), fetcher))
        scheduler.start()
        enabled = sum(1 for feed in config.feeds if feed.enabled)
        await log.ainfo("pollers started", feeds=enabled)
        try:
            await stop.wait()
        finally:
            await scheduler.shutdown(shutdown_timeout)
            await log.ainfo("pollers stopped")
