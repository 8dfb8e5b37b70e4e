"""Worker-side commands of the `livewatch` CLI (registered through entry points)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping
from pathlib import Path

import click
import redis.asyncio as aioredis
from rich.console import Console
from rich.markup import escape

from monitor.cli import (
    config_option,
    feed_url_shown,
    load_or_exit,
    serve_role,
    serve_supervised,
    supervised_option,
    with_logging,
)
from monitor.config.models import Config
from monitor.config.secrets import env_values
from monitor.core.errors import LivewatchError
from monitor.fetch.client import Fetcher
from monitor.ops.child import ChildSpec
from monitor.ops.control import Control
from monitor.ops.inspect import describe
from monitor.ops.logs import configure_logging
from monitor.ops.supervisor import process_count
from monitor.sources.reading import read_document
from workers.match.matcher import Matcher
from workers.service import run_all, run_workers


def _serve(config_path: Path, log_format: str, log_level: str, pollers: bool,
           supervised: ChildSpec | None = None) -> None:
    async def role(config: Config, client: aioredis.Redis, stop: asyncio.Event,
                   control: Control) -> None:
        if pollers:
            await run_all(config, client, stop, control=control)
        else:
            await run_workers(config, client, stop, control=control)

    serve_role(config_path, log_format, log_level, role, supervised)


def _processes(_ctx: click.Context, _param: click.Parameter, value: str) -> int:
    try:
        return process_count(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command("run")
@config_option
@with_logging
@click.option("--processes", default="1", show_default=True, metavar="N|auto",
              callback=_processes,
              help="1: pollers and worker in this process. N >= 2: a supervisor of N poller "
                   "processes and one worker process (auto: one poller per usable core).")
def run(config_path: Path, log_format: str, log_level: str, processes: int) -> None:
    """Run pollers and workers until SIGINT/SIGTERM: in one process, or (--processes N) as N
    poller processes and a worker process under a supervisor."""
    if processes == 1:
        _serve(config_path, log_format, log_level, pollers=True)
    else:
        serve_supervised(config_path, log_format, log_level, processes)


@click.command("worker")
@config_option
@with_logging
@supervised_option
def worker(config_path: Path, log_format: str, log_level: str,
           supervised: ChildSpec | None) -> None:
    """Run only a worker: consume events, match rules, deliver alerts."""
    _serve(config_path, log_format, log_level, pollers=False, supervised=supervised)


async def _poll_once(config: Config, names: tuple[str, ...], out: Console,
                     hidden: Mapping[str, str]) -> int:
    feeds = [f for f in config.feeds if not names or f.name in names]
    unknown = set(names) - {f.name for f in config.feeds}
    if unknown:
        out.print(f"[red]unknown feed(s):[/] {', '.join(sorted(unknown))}")
        return 2
    matcher = Matcher(config.rules)
    failures = 0
    async with Fetcher.from_config(config) as fetcher:
        for feed in feeds:
            out.rule(f"[bold]{feed.name}[/] {escape(feed_url_shown(feed.url, hidden))}")
            try:
                result = await fetcher.fetch(feed.url, timeout=config.timeout(feed),
                                             max_body=config.defaults.max_body,
                                             headers=feed.headers)
                assert result.body is not None
                document = await read_document(config, feed.name, feed.kind, result.body,
                                               result.url, result.content_type, feed.selectors)
            except LivewatchError as exc:
                out.print(f"[red]failed:[/] {exc}", markup=True)
                failures += 1
                continue
            how = f" (read by {describe(document.strategy, document.kind)})" \
                if document.strategy else ""
            out.print(f"detected kind: [bold]{document.kind}[/], "
                      f"{len(document.entries)} entries{how}", highlight=False)
            if document.page is not None and document.page.coverage_end is not None:
                out.print(f"coverage ended: {document.page.coverage_end.isoformat()}")
            for entry in document.entries:
                when = (entry.updated or entry.published)
                out.print(f"\n[bold]{entry.title or '(untitled)'}[/]", highlight=False)
                out.print(f"  id: {entry.id}", markup=False, highlight=False)
                meta = [entry.url or "", entry.author or "", when.isoformat() if when else ""]
                out.print("  " + " | ".join(m for m in meta if m), markup=False,
                          highlight=False)
                text = entry.text if len(entry.text) <= 300 else entry.text[:300] + "…"
                out.print("  " + text.replace("\n", " "), markup=False, highlight=False)
                for match in matcher.match(feed.name, entry.title, entry.text, entry.author):
                    terms = ", ".join(sorted(match.terms))
                    out.print(f"  [green]matches rule[/] {match.rule}: {terms}")
    return 1 if failures else 0


@click.command("poll-once")
@config_option
@click.argument("feeds", nargs=-1)
def poll_once(config_path: Path, feeds: tuple[str, ...]) -> None:
    """Fetch feeds now; print their entries and the rules they match (alerts nothing)."""
    configure_logging("console", "WARNING")
    config = load_or_exit(config_path)
    sys.exit(asyncio.run(_poll_once(config, feeds, Console(), env_values(config_path))))
