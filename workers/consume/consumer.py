"""Consume the entries and notices streams: match each event, queue its alerts in the durable
outbox (`workers.outbox.outbox`), then acknowledge. Stale events are re-claimed, poison ones
dead-lettered.

An event is acknowledged only once every alert it produced is queued in Redis; queueing is
idempotent by alert id, so re-handling an event (after a crash or a re-claim) queues nothing
twice. Sending, retries and dead letters belong to the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from fnmatch import fnmatchcase
from functools import partial
from typing import Any

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError, ResponseError

from monitor.config.models import Config
from monitor.core import keys
from monitor.core.models import Event, Notice, event_from_stream
from monitor.core.urls import without_secrets
from monitor.ops import metrics
from workers.channels import Channel
from workers.console.links import console_links
from workers.consume.grouping import CrossFeedGroups
from workers.match.matcher import Matcher
from workers.outbox.outbox import AlertHook, Outbox
from workers.render.alert import make_alert
from workers.render.notices import make_notice

log = structlog.get_logger("livewatch.worker")

#: How often a worker trims events older than `state.stream_retention` from the stream.
_TRIM_EVERY = 60.0

__all__ = ["AlertHook", "Consumer", "default_consumer_name"]


def default_consumer_name() -> str:
    """Unique per process: host name and pid."""
    return f"{socket.gethostname()}-{os.getpid()}"


class Consumer:
    """A member of the workers consumer group."""

    def __init__(self, config: Config, client: aioredis.Redis, channels: Mapping[str, Channel],
                 *, name: str | None = None, on_alert: AlertHook | None = None) -> None:
        self.client = client
        self.channels: Mapping[str, Channel] = {}
        self.outbox = Outbox(client, config, channels, on_alert=on_alert)
        self.reconfigure(config, channels)
        self.name = name or default_consumer_name()
        #: `time.monotonic()` of the last turn of `run`'s loop (readiness).
        self.last_loop: float | None = None
        self._slots = asyncio.Semaphore(self.settings.concurrency)
        self._tasks: set[asyncio.Task[None]] = set()

    def reconfigure(self, config: Config, channels: Mapping[str, Channel]) -> None:
        """Swap configuration, rules and channels at once (no await: atomic for the event
        loop). An event being handled finishes with the rules it started with; a channel that
        is gone stays usable for its deliveries already under way (see `Outbox.reconfigure`)."""
        matcher = Matcher(config.rules)
        groups = CrossFeedGroups(self.client, config.rules)
        self.outbox.reconfigure(config, channels)
        self.config, self.settings, self.channels = config, config.workers, channels
        self.matcher, self.groups = matcher, groups
        self.rules = {rule.name: rule for rule in config.rules}
        self.links = console_links(config)

    def alive(self, within: float = 30.0) -> bool:
        """True while `run` loops (or waits for free slots with events in flight)."""
        if self.last_loop is None:
            return False
        return time.monotonic() - self.last_loop < within or bool(self._tasks)

    async def ensure_group(self, part: keys.Partition | None = None) -> None:
        """Create the streams and their consumer group if they do not exist (of `part`, else
        of every partition)."""
        for each in keys.partitions() if part is None else (part,):
            for stream in (each.events, each.notices):
                with contextlib.suppress(ResponseError):  # BUSYGROUP: it exists
                    await self.client.xgroup_create(stream, keys.CONSUMER_GROUP, id="0",
                                                    mkstream=True)

    async def _join(self, part: keys.Partition | None = None) -> None:
        """The group, and this consumer in it (listed by `status` before its first read)."""
        await self.ensure_group(part)
        for each in keys.partitions() if part is None else (part,):
            for stream in (each.events, each.notices):
                await self.client.xgroup_createconsumer(stream, keys.CONSUMER_GROUP, self.name)

    async def _leave(self) -> None:
        """After a clean stop, drop this consumer from the group unless it still owns pending
        events (so `livewatch status` lists live workers and those with unfinished work)."""
        with contextlib.suppress(RedisError):
            for stream in keys.by_stream():
                mine: Any = await self.client.xpending_range(
                    stream, keys.CONSUMER_GROUP, min="-", max="+", count=1,
                    consumername=self.name)
                if not mine:
                    await self.client.xgroup_delconsumer(stream, keys.CONSUMER_GROUP, self.name)

    async def run(self, stop: asyncio.Event, block: float = 1.0) -> None:
        """Consume until `stop` is set, then wait up to `workers.shutdown_timeout` for
        in-flight events; those cut short stay pending (unacknowledged) for another worker.
        Each partition (one on a single Redis server) is read by a loop of its own: a blocking
        read cannot span slots."""
        await self._join()
        sender = asyncio.create_task(self.outbox.run(stop))
        readers = [asyncio.create_task(self._loop(stop, part, block, first=index == 0))
                   for index, part in enumerate(keys.partitions())]
        try:
            await asyncio.gather(*readers)
        finally:
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
            self.last_loop = None
        if not await self.drain(self.settings.shutdown_timeout):
            late = list(self._tasks)
            for task in late:
                task.cancel()
            await asyncio.wait(late)
            log.warning("stopped with events in flight; left pending", events=len(late))
        await sender
        await self._leave()

    async def _loop(self, stop: asyncio.Event, part: keys.Partition, block: float, *,
                    first: bool) -> None:
        """Read `part` until `stop`; the first partition's loop also re-claims stale messages
        and trims every partition (and marks the consumer alive)."""
        last_claim = last_trim = 0.0
        while not stop.is_set():
            if first:
                self.last_loop = time.monotonic()
            try:
                if first and time.monotonic() - last_claim >= min(self.settings.claim_idle / 2,
                                                                  30.0):
                    await self.reclaim()
                    last_claim = time.monotonic()
                if first and time.monotonic() - last_trim >= _TRIM_EVERY:
                    await self.trim()
                    last_trim = time.monotonic()
                await self.read(block, part)
            except ResponseError as exc:
                # NOGROUP: no group; UNBLOCKED: the stream went while a read was blocked
                if not str(exc).startswith(("NOGROUP", "UNBLOCKED")):
                    raise
                # Redis came back without our data (monitor.poll.dataloss): the streams and the
                # group are recreated, and reading goes on from what is there now.
                log.warning("consumer group missing (Redis lost its data?); recreating it",
                            stream=part.events)
                await self._join(part)
            except (RedisError, OSError) as exc:  # e.g. Redis restarting: try again
                log.warning("worker: Redis unavailable; retrying", error=str(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)

    async def trim(self) -> None:
        """Drop events older than `state.stream_retention` (replay's horizon) from the streams."""
        horizon_ms = int((time.time() - self.config.state.stream_retention) * 1000)
        for part in keys.partitions():
            with contextlib.suppress(ResponseError):
                await self.client.xtrim(part.events, minid=f"{horizon_ms}-0", approximate=True)

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait for the events being handled (at most `timeout`); True when none is left."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
        return not self._tasks

    async def read(self, block: float | None, part: keys.Partition | None = None) -> int:
        """Read new events and notices of `part` (of every partition in turn if None; waiting
        up to `block` seconds for one, not at all if None) and start handling them; returns how
        many were read."""
        count = 0
        for each in keys.partitions() if part is None else (part,):
            await self._slots.acquire()
            self._slots.release()
            response: Any = await self.client.xreadgroup(
                keys.CONSUMER_GROUP, self.name, {each.events: ">", each.notices: ">"},
                count=self.settings.concurrency, block=int(block * 1000) if block else None)
            for stream, messages in response or []:
                for message_id, fields in messages:
                    count += 1
                    await self._start(stream, message_id, fields)
        return count

    async def _start(self, stream: str, message_id: str, fields: dict[str, str]) -> None:
        await self._slots.acquire()
        task = asyncio.create_task(self._handle_and_ack(stream, message_id, fields))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()

    async def reclaim(self) -> None:
        """Dead-letter messages delivered too often; claim and handle other stale pending ones."""
        for stream in keys.by_stream():
            await self._reclaim(stream)

    async def _reclaim(self, stream: str) -> None:
        idle_ms = int(self.settings.claim_idle * 1000)
        stale: list[dict[str, Any]] = await self.client.xpending_range(
            stream, keys.CONSUMER_GROUP, min="-", max="+", count=1000, idle=idle_ms)
        for item in stale:
            if item["times_delivered"] >= self.settings.max_deliveries:
                message_id = item["message_id"]
                found: Any = await self.client.xrange(stream, message_id, message_id)
                fields = found[0][1] if found else {}
                await self._dead_letter(stream, message_id, fields,
                                        f"failed {item['times_delivered']} times")
        cursor = "0-0"
        while True:
            claimed: Any = await self.client.xautoclaim(
                stream, keys.CONSUMER_GROUP, self.name, idle_ms, cursor, count=100)
            cursor, messages = claimed[0], claimed[1]
            for message_id, fields in messages:
                if fields is not None:
                    await self._start(stream, message_id, fields)
            if cursor == "0-0":
                return

    async def _dead_letter(self, stream: str, message_id: str, fields: dict[str, str],
                           error: str) -> None:
        part, field = keys.by_stream()[stream]
        record: dict[Any, Any] = {field: fields.get(field, ""), "stream": stream,
                                  "source_id": message_id, "error": error[:1000],
                                  "at": str(time.time())}
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.xadd(part.dead, record,
                      maxlen=self.config.state.stream_maxlen, approximate=True)
            pipe.xack(stream, keys.CONSUMER_GROUP, message_id)
            await pipe.execute()
        metrics.DEAD_LETTERED.labels(stream).inc()
        log.error("message dead-lettered", stream=stream, message_id=message_id,
                  error=error)

    async def _handle_and_ack(self, stream: str, message_id: str,
                              fields: dict[str, str]) -> None:
        handle: Callable[[], Awaitable[None]]
        _, field = keys.by_stream()[stream]
        try:
            if field == "notice":
                notice = Notice.decode(fields["notice"])
                handle, about = partial(self.handle_notice, notice), notice.feed
            else:
                event = event_from_stream(fields)
                handle, about = partial(self.handle, event), event.feed
        except (KeyError, ValueError, TypeError) as exc:
            await self._dead_letter(stream, message_id, fields,
                                    f"undecodable {field}: {exc}")
            return
        heartbeat = asyncio.create_task(self._keep_claimed(stream, message_id))
        try:
            await handle()
        except Exception as exc:  # left pending: re-claimed later, dead-lettered after N
            log.warning("message not handled; will retry", stream=stream,
                        message_id=message_id, feed=about, error=str(exc))
            return
        finally:
            heartbeat.cancel()
        await self.client.xack(stream, keys.CONSUMER_GROUP, message_id)

    async def _keep_claimed(self, stream: str, message_id: str) -> None:
        """While a message is being handled (retries can be long), reset its idle time so no
        other worker re-claims it. JUSTID claims do not count as deliveries."""
        period = self.settings.claim_idle / 3
        while True:
            await asyncio.sleep(period)
            with contextlib.suppress(Exception):
                await self.client.xclaim(stream, keys.CONSUMER_GROUP, self.name,
                                         0, [message_id], justid=True)

    async def handle_notice(self, notice: Notice) -> None:
        """Queue an operator notice for the operator channels, or else for the channels of the
        rules that watch its feed (every rule for a notice about all feeds, `feed == "*"`).
        Notices are urgent: no digest or quiet hours delays them."""
        targets = self.config.operator.channels or sorted({
            channel for rule in self.config.rules
            if notice.feed == "*" or any(fnmatchcase(notice.feed, p) for p in rule.feeds)
            for channel in rule.channels})
        feed_url = next((without_secrets(str(f.url)) for f in self.config.feeds
                         if f.name == notice.feed), None)
        await self.outbox.submit([(make_notice(notice, channel, feed_url), True)
                                  for channel in targets])

    async def handle(self, event: Event) -> None:
        """Match one event and queue its alerts for every channel of every matching rule (they
        start sending at once unless a channel's policy holds them)."""
        matcher, groups, rules = self.matcher, self.groups, self.rules  # one config throughout
        admitted = await groups.admit(event, matcher.alerts_for(event))
        for match, _sources in admitted:
            metrics.MATCHES.labels(match.rule).inc()
        links = self.links
        await self.outbox.submit([
            (make_alert(event, match, channel, sources, links),
             rules[match.rule].severity == "urgent")
            for match, sources in admitted for channel in rules[match.rule].channels])
