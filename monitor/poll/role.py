"""The poller role: scheduler + fetcher + poller against Redis, until stopped."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import redis.asyncio as aioredis
import structlog

from monitor.config.models import Config
from monitor.core.errors import StateError
from monitor.fetch.client import Fetcher
from monitor.ops import metrics
from monitor.poll.dataloss import CHECK_EVERY, EpochWatch
from monitor.poll.poller import Poller
from monitor.poll.scheduler import FeedScheduler
from monitor.poll.state import FeedState
from monitor.push.websub import WebSubSubscriber
from monitor.sources.sandbox import stop_processes, use_processes

if TYPE_CHECKING:
    from monitor.ops.control import Control

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
    # changed documents parsed off this interpreter; the processes start (and are checked)
    # off the event loop, which other roles of this process share
    await asyncio.to_thread(use_processes, config.fetch.parsers())
    try:
        await _poll_until_stopped(config, client, stop, shutdown_timeout, control)
    finally:
        stop_processes()


async def _poll_until_stopped(config: Config, client: aioredis.Redis, stop: asyncio.Event,
                              shutdown_timeout: float, control: Control | None) -> None:
    async with Fetcher.from_config(config) as fetcher:
        state = make_state(config, client)
        scheduler = FeedScheduler(config, Poller(config, state, fetcher))
        push = None
        if config.websub.callback_url is not None:  # WebSub push (README "Push (WebSub)")
            push = WebSubSubscriber(config, client, scheduler)
            scheduler.poller.on_fetched = push.on_fetched
        scheduler.start()
        if push is not None:
            try:
                await push.start()
            except BaseException:
                await scheduler.shutdown(shutdown_timeout)
                raise
        watch = asyncio.create_task(_watch_epoch(EpochWatch(client, state), stop))
        if control is not None:
            control.add_check("scheduler", lambda: None if scheduler.running else "stopped")

            async def reload(new: Config) -> None:
                jobs = scheduler.reconcile(new)
                for feed in jobs["removed"]:
                    metrics.forget_feed(feed)
                if push is not None:
                    await push.reconcile(new)

            control.on_reload(reload)
        enabled = sum(1 for feed in config.feeds if feed.enabled)
        log.info("pollers started", feeds=enabled, lease_owner=scheduler.leases.owner)
        try:
            await stop.wait()
        finally:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
            if push is not None:
                await push.stop()
            await scheduler.shutdown(shutdown_timeout)
            log.info("pollers stopped")


async def _watch_epoch(watch: EpochWatch, stop: asyncio.Event) -> None:
    """Check for a loss of Redis data every `CHECK_EVERY` seconds until `stop`."""
    while not stop.is_set():
        try:
            await watch.check()
        except (StateError, OSError) as exc:  # Redis down: the next check tells
            log.debug("epoch check failed", error=str(exc))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), CHECK_EVERY)
