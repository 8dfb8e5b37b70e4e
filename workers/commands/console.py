"""`livewatch console`: the console and its API alone, to scale them like the other roles."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click
import redis.asyncio as aioredis

from monitor.cli import config_option, load_or_exit, serve_role, supervised_option, with_logging
from monitor.config.models import Config
from monitor.ops.child import ChildSpec
from monitor.ops.control import Control
from workers.console.server import run_console


@click.command("console")
@config_option
@with_logging
@supervised_option
def console(config_path: Path, log_format: str, log_level: str,
            supervised: ChildSpec | None) -> None:
    """Serve the operator console and API (`console.listen`) until SIGINT/SIGTERM."""
    if load_or_exit(config_path).console.listen is None:
        raise click.UsageError(f"{config_path}: console.listen is not set")

    async def role(config: Config, client: aioredis.Redis, stop: asyncio.Event,
                   control: Control) -> None:
        await run_console(config, client, stop, control=control)

    serve_role(config_path, log_format, log_level, role, supervised)
