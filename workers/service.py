"""The worker role (consume, match, deliver) and the combined `run` of both roles."""

from __future__ import annotations

import asyncio

import httpx
import redis.asyncio as aioredis
import structlog

from monitor.config.models import Config
from monitor.ops.control import Control
from monitor.poll.role import run_pollers
from workers.channels import ChannelSet
from workers.consume.consumer import AlertHook, Consumer

log = structlog.get_logger("livewatch.service")


async def run_workers(config: Config, client: aioredis.Redis, stop: asyncio.Event,
                      on_alert: AlertHook | None = None, *,
                      control: Control | None = None) -> None:
    """Consume the entries stream until `stop` is set; in-flight events finish first (within
    `workers.shutdown_timeout`). With `control`, readiness requires a live consumer loop and a
    reload swaps rules and channels between messages."""
    async with httpx.AsyncClient(follow_redirects=False) as http:
        channels = ChannelSet(http)
        try:
            consumer = Consumer(config, client, channels.update(config.channels), on_alert=on_alert)
            if control is not None:
                control.add_check("consumer", lambda: None if consumer.alive() else
                                  "consumer loop not running")

                async def reload(new: Config) -> None:
                    consumer.reconfigure(new, channels.update(new.channels))

                control.on_reload(reload)
            log.info("worker started", consumer=consumer.name, rules=len(config.rules),
                     channels=len(config.channels))
            await consumer.run(stop)
        finally:
            await channels.aclose()
            log.info("worker stopped")


async def run_all(config: Config, client: aioredis.Redis, stop: asyncio.Event,
                  on_alert: AlertHook | None = None, *,
                  control: Control | None = None) -> None:
    """Pollers and workers in one process (the default `livewatch run`), and the console when
    `console.listen` is set."""
    tasks = [asyncio.create_task(run_pollers(config, client, stop, control=control)),
             asyncio.create_task(run_workers(config, client, stop, on_alert, control=control))]
    if config.console.listen is not None:
        from workers.console.server import run_console

        tasks.append(asyncio.create_task(run_console(config, client, stop, control=control)))
    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    for task in done:
        if task.exception() is not None:
            stop.set()
    await asyncio.gather(*tasks)
