"""Run the current rules over recent events: `livewatch replay --since 6h [--rule R] [--send]`.

Reads the events stream from a time-derived id (`XRANGE {ms}-0 +`), so a desk can tune a rule
on today's news. Without `--send` nothing is delivered; with it, alerts go through the real
channels with the normal `delivered` dedupe (an alert already sent is not sent again). The
stream is bounded by `state.stream_maxlen`; replay says when the window reaches past what is
kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import httpx
import redis.asyncio as aioredis

from monitor.cli import config_option, load_or_exit
from monitor.config.models import Config, parse_duration
from monitor.core import keys
from monitor.core.errors import LivewatchError
from monitor.core.models import event_from_stream
from monitor.ops.logs import configure_logging
from monitor.ops.runtime import connect_redis
from workers.channels import ChannelSet
from workers.consume.consumer import Consumer
from workers.match.matcher import Matcher, snippet

BATCH = 500


@dataclass
class ReplayResult:
    """What a replay saw: events read, alerts that would go out (or went), the retention note."""

    events: int = 0
    alerts: int = 0
    undecodable: int = 0
    note: str | None = None


def _id_ms(stream_id: str) -> int:
    return int(stream_id.split("-")[0])


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


async def retention_note(client: aioredis.Redis, start_ms: int) -> str | None:
    """A warning when events newer than `start_ms` were trimmed from the stream (from any
    partition's, on Redis Cluster), else None."""
    for part in keys.partitions():
        note = await _retention_note(client, part.events, start_ms)
        if note is not None:
            return note
    return None


async def _retention_note(client: aioredis.Redis, stream: str, start_ms: int) -> str | None:
    try:
        info: dict[str, Any] = await client.xinfo_stream(stream)
    except aioredis.ResponseError:
        return None  # no stream yet: nothing was ever kept
    added, length = info.get("entries-added"), int(info.get("length") or 0)
    first = info.get("first-entry")
    oldest = _id_ms(first[0]) if first else None
    trimmed = added is not None and int(added) > length  # Redis >= 7 reports entries-added
    if trimmed and (oldest is None or oldest > start_ms):
        kept = f"events from {_when(oldest)} on" if oldest else "no events"
        return (f"the requested window starts at {_when(start_ms)}, but the stream keeps only "
                f"{kept} (older ones were trimmed: state.stream_maxlen); replaying what is kept")
    return None


async def _stream(client: aioredis.Redis, stream: str,
                  start_ms: int) -> AsyncIterator[tuple[str, dict[str, str]]]:
    lower = f"{start_ms}-0"
    while True:
        batch: Any = await client.xrange(stream, lower, "+", count=BATCH)
        for message_id, fields in batch:
            yield message_id, fields
        if len(batch) < BATCH:
            return
        lower = f"({batch[-1][0]}"


def _order(message_id: str) -> tuple[int, int]:
    ms, _, seq = message_id.partition("-")
    return int(ms), int(seq or 0)


async def _events(client: aioredis.Redis,
                  start_ms: int) -> AsyncIterator[tuple[str, dict[str, str]]]:
    """Events from `start_ms` on, oldest first, merged across partitions by stream id."""
    streams = [_stream(client, part.events, start_ms) for part in keys.partitions()]
    heads: dict[int, tuple[str, dict[str, str]]] = {}
    for index, stream in enumerate(streams):
        with contextlib.suppress(StopAsyncIteration):
            heads[index] = await anext(stream)
    while heads:
        index = min(heads, key=lambda i: _order(heads[i][0]))
        yield heads.pop(index)
        with contextlib.suppress(StopAsyncIteration):
            heads[index] = await anext(streams[index])


async def replay_events(config: Config, client: aioredis.Redis, since: float, *,
                        send: bool = False, echo: Callable[[str], None] = print,
                        consumer: Consumer | None = None) -> ReplayResult:
    """Match every event of the last `since` seconds with `config.rules`; deliver through
    `consumer` when `send` (it must be built on the same config)."""
    start_ms = int((time.time() - since) * 1000)
    result = ReplayResult(note=await retention_note(client, start_ms))
    if result.note:
        echo(f"note: {result.note}")
    matcher = Matcher(config.rules)
    async for message_id, fields in _events(client, start_ms):
        try:
            event = event_from_stream(fields)
        except (KeyError, ValueError, TypeError):
            result.undecodable += 1
            continue
        result.events += 1
        matches = matcher.alerts_for(event)
        for match in matches:
            result.alerts += 1
            entry = event.entry
            echo(f"{_when(_id_ms(message_id))} {event.feed} {event.kind} -> rule {match.rule}: "
                 f"{entry.title or entry.id}" + (f" <{entry.url}>" if entry.url else ""))
            text_hits = [h for h in match.hits if h.field == "text"]
            if text_hits:
                echo(f"    {snippet(entry.text, text_hits, 160)[0]}")
            else:
                echo(f"    matched: {', '.join(sorted(match.terms))}")
        if send and matches:
            assert consumer is not None
            await consumer.handle(event)
    if send and consumer is not None:  # queued sends start at once: wait for them (and retries)
        await consumer.outbox.run_until_idle()
    return result


@contextlib.asynccontextmanager
async def _consumer(config: Config, client: aioredis.Redis) -> AsyncIterator[Consumer]:
    async with httpx.AsyncClient(follow_redirects=False) as http, ChannelSet(http) as channels:
        yield Consumer(config, client, channels.update(config.channels), name="replay")


@click.command("replay")
@config_option
@click.option("--since", required=True, help="How far back to replay: 30m, 6h, 2d.")
@click.option("--rule", "rules", multiple=True, help="Only this rule (repeatable).")
@click.option("--send", is_flag=True, help="Deliver the alerts (deduplicated as usual).")
def replay(config_path: Path, since: str, rules: tuple[str, ...], send: bool) -> None:
    """Run the current rules over recent events; print what would alert (or --send it)."""
    try:
        seconds = parse_duration(since)
        assert isinstance(seconds, float) and seconds > 0
    except (ValueError, AssertionError):
        raise click.BadParameter(f"{since!r} is not a duration such as 30m or 6h",
                                 param_hint="--since") from None
    configure_logging("console", "WARNING")
    config = load_or_exit(config_path)
    unknown = set(rules) - {r.name for r in config.rules}
    if unknown:
        click.echo(f"error: unknown rule(s): {', '.join(sorted(unknown))}", err=True)
        sys.exit(2)
    if rules:
        config = config.model_copy(update={"rules": [r for r in config.rules if r.name in rules]})

    async def go() -> ReplayResult:
        async with connect_redis(config) as client:
            if not send:
                return await replay_events(config, client, seconds, echo=click.echo)
            async with _consumer(config, client) as consumer:
                return await replay_events(config, client, seconds, send=True,
                                           echo=click.echo, consumer=consumer)

    try:
        result = asyncio.run(go())
    except LivewatchError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    verb = "sent (unless already delivered)" if send else "would alert"
    click.echo(f"{result.events} events in the last {since}; {result.alerts} {verb}"
               + (f"; {result.undecodable} undecodable" if result.undecodable else ""))
