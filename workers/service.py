"""The worker role (consume, match, deliver) and the combined `run` of both roles."""

from __future__ import annotations

import asyncio
import contextlib

import httpx
import redis.asyncio as aioredis
import structlog

from monitor.service import run_pollers
from monitor.settings import Config
from workers.channels import build_channel
from workers.consumer import AlertHook, Consumer

log = structlog.get_logger("livewatch.service")


async def run_workers(config: Config, client: aioredis.Redis, stop: asyncio.Event,
                      on_alert: AlertHook | None = None) -> None:
    """Consume the entries stream until `stop` is set; in-flight events finish first."""
    async with httpx.AsyncClient(follow_redirects=False) as http:
        channels = {c.name: build_channel(c, http) for c in config.channels}
        try:
            consumer = Consumer(config, client, channels, on_alert=on_alert)
            await log.ainfo("worker started", consumer=consumer.name, rules=len(config.rules),
                            channels=len(channels))
            await consumer.run(stop)
        finally:
            for channel in channels.values():
                with contextlib.suppress(Exception):
                    await channel.aclose()
            await log.ainfo("worker stopped")


async def run_all(config: Config, client: aioredis.Redis, stop: asyncio.Event,
                  on_alert: AlertHook | None = None) -> None:
    """Pollers and workers in one process (the default `livewatch run`)."""
    tasks = [asyncio.create_task(run_pollers(config, client, stop)),
             asyncio.create_task(run_workers(config, client, stop, on_alert))]
    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    for task in done:
        if task.exception() is not None:
            stop.set()
    await asyncio.gather(*tasks)
