"""`livewatch alerts ...`: what the outbox holds, and the operator's levers on it.

- `alerts list`: recent deliveries and their state per channel;
- `alerts dead`: dead letters with their last error;
- `alerts retry ID... | --all [--channel C]`: queue dead letters again;
- `alerts enable CHANNEL`: re-enable a channel disabled after HTTP 410;
- `alerts test CHANNEL`: send a test alert straight to a channel (exit 0 when accepted).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import click
import httpx
import redis.asyncio as aioredis

from monitor.cli import config_option, load_or_exit
from monitor.config.models import Config
from monitor.core.errors import DeliveryError, LivewatchError
from monitor.core.models import Entry, Event
from monitor.ops.logs import configure_logging
from monitor.ops.runtime import connect_redis
from workers.channels import ChannelSet
from workers.match.matcher import Hit, RuleMatch
from workers.outbox import deliveries
from workers.render.alert import Alert

T = TypeVar("T")
_JSON = click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")


def _run(config: Config, work: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
    async def go() -> T:
        async with connect_redis(config) as client:
            return await work(client)

    try:
        return asyncio.run(go())
    except LivewatchError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


def _when(at: float | None) -> str:
    if not at:
        return "-"
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _show(records: list[deliveries.Delivery], as_json: bool) -> None:
    """One block per delivery (readable in a pipe or a log), or JSON lines with --json."""
    for r in records:
        if as_json:
            click.echo(json.dumps(asdict(r), ensure_ascii=False))
            continue
        state = r.state + (f" in {r.digest}" if r.digest else "")
        if r.state == "queued" and r.next_at:
            state += f", next try {_when(r.next_at)}"
        click.echo(f"{r.id}  {state}  channel={r.channel}  {r.kind}"
                   + (f"  rule={r.rule}" if r.rule else "") + (f"  feed={r.feed}" if r.feed else "")
                   + f"  tries={r.attempts}  queued={_when(r.created)}")
        click.echo(f"    {r.title}")
        if r.last_error:
            click.echo(f"    last error: {r.last_error}")


@click.group("alerts")
def alerts() -> None:
    """Inspect and act on alert deliveries (the outbox in Redis)."""
    configure_logging("console", "WARNING")


@alerts.command("list")
@config_option
@click.option("--limit", default=50, show_default=True, help="How many, newest first.")
@click.option("--channel", default=None, help="Only this channel.")
@click.option("--state", default=None,
              type=click.Choice(["held", "queued", "sending", "delivered", "dead", "digested"]),
              help="Only deliveries in this state.")
@_JSON
def list_(config_path: Path, limit: int, channel: str | None, state: str | None,
          as_json: bool) -> None:
    """Recent alerts and their delivery state per channel."""
    config = load_or_exit(config_path)

    async def work(client: aioredis.Redis) -> tuple[list[deliveries.Delivery], dict[str, object]]:
        records = await deliveries.recent(client, limit, channel=channel, state=state)
        return records, dict(await deliveries.disabled_channels(client))

    records, disabled = _run(config, work)
    _show(records, as_json)
    for name in sorted(disabled):
        click.echo(f"channel {name} is disabled (`livewatch alerts enable {name}`)", err=True)


@alerts.command("dead")
@config_option
@click.option("--limit", default=100, show_default=True, help="How many, newest first.")
@click.option("--channel", default=None, help="Only this channel.")
@_JSON
def dead(config_path: Path, limit: int, channel: str | None, as_json: bool) -> None:
    """Dead-lettered deliveries and their last error."""
    config = load_or_exit(config_path)
    records = _run(config, lambda c: deliveries.dead(c, limit, channel=channel))
    _show(records, as_json)
    if not as_json:
        click.echo(f"{len(records)} dead letter(s)"
                   + ("; re-send with `livewatch alerts retry --all`" if records else ""))


@alerts.command("retry")
@config_option
@click.argument("ids", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Every dead letter.")
@click.option("--channel", default=None, help="With --all: only this channel's.")
def retry(config_path: Path, ids: tuple[str, ...], everything: bool,
          channel: str | None) -> None:
    """Queue dead letters again (by id, or --all); a running worker sends them."""
    if bool(ids) == everything:
        raise click.UsageError("give delivery ids or --all (not both)")
    config = load_or_exit(config_path)

    async def work(client: aioredis.Redis) -> tuple[int, int]:
        wanted = list(ids) or [r.id for r in await deliveries.dead(client, 1_000_000,
                                                                 channel=channel)]
        return await deliveries.requeue(client, wanted), len(wanted)

    queued, asked = _run(config, work)
    click.echo(f"queued {queued} of {asked} for delivery")
    sys.exit(0 if queued == asked else 1)


@alerts.command("enable")
@config_option
@click.argument("channel")
def enable(config_path: Path, channel: str) -> None:
    """Re-enable a channel disabled after its endpoint answered 410 Gone."""
    config = load_or_exit(config_path)
    if _run(config, lambda c: deliveries.enable(c, channel)):
        click.echo(f"channel {channel} enabled; re-send its dead letters with "
                   f"`livewatch alerts retry --all --channel {channel}`")
    else:
        click.echo(f"channel {channel} was not disabled")


def test_alert(channel: str) -> Alert:
    """A harmless sample alert for `channel`, matching the phrase "test alert"."""
    now = time.time()
    text = (f"This is a test alert from livewatch for channel {channel}. If you can read it, "
            f"the channel works.")
    entry = Entry(id=f"livewatch-test-{int(now)}", url=None, title="livewatch test alert",
                  text=text, author="livewatch")
    event = Event(kind="new", feed="livewatch-test", feed_url="", entry=entry,
                  version=entry.version, detected_at=now)
    start = text.index("test alert")
    match = RuleMatch("test", (Hit("test alert", "text", start, start + len("test alert")),))
    return Alert(id=f"lw_test_{int(now * 1000)}", event=event, rule="test", channel=channel,
                 match=match)


@alerts.command("test")
@config_option
@click.argument("channel")
def test(config_path: Path, channel: str) -> None:
    """Send a test alert straight to CHANNEL; exit 0 when it was accepted."""
    config = load_or_exit(config_path)
    try:
        settings = config.channel(channel)
    except KeyError:
        click.echo(f"error: no channel {channel!r} (have: "
                   f"{', '.join(c.name for c in config.channels) or 'none'})", err=True)
        sys.exit(2)

    async def send() -> None:
        async with httpx.AsyncClient(follow_redirects=False) as http:
            senders = ChannelSet(http)
            try:
                await senders.update([settings])[channel].send(test_alert(channel))
            finally:
                await senders.aclose()

    try:
        asyncio.run(send())
    except DeliveryError as exc:
        click.echo(f"failed: {exc.reason}", err=True)
        sys.exit(1)
    click.echo(f"test alert accepted by {channel}")
