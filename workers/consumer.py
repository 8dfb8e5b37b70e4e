"""Consume the entries stream: match, deliver, ack. Stale events are re-claimed, poison ones
dead-lettered.

Delivery per (alert, channel) is deduplicated in Redis: the `delivered` key is checked before
sending and written only after success, so re-handling an event (after a crash, a re-claim or a
retry) never re-sends what a channel already accepted.
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
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_base, wait_exponential, wait_random

from monitor import keys, metrics
from monitor.errors import DeliveryError, PermanentDeliveryError, RetryableDeliveryError
from monitor.models import Event, Notice
from monitor.settings import Config
from workers.channels import Channel
from workers.grouping import CrossFeedGroups
from workers.match import Matcher
from workers.notices import OperatorNotice, make_notice
from workers.render import Alert, make_alert

log = structlog.get_logger("livewatch.worker")

#: The streams a worker consumes: entry events (alerts) and operator notices.
STREAMS = (keys.EVENTS_STREAM, keys.NOTICES_STREAM)
_FIELD = {keys.EVENTS_STREAM: "event", keys.NOTICES_STREAM: "notice"}

AlertHook = Callable[[Alert], None]


class _WaitRetryAfter(wait_base):
    """Exponential backoff with jitter, lengthened to the server's Retry-After when given.

    Built from `wait_exponential(multiplier=)` + `wait_random`: `wait_exponential_jitter`'s
    `initial` is deprecated in tenacity 9.2 (a DeprecationWarning on every retry), and its
    replacement `multiplier` does not exist in older releases we allow.
    """

    def __init__(self, initial: float, maximum: float) -> None:
        self.fallback = wait_exponential(multiplier=initial, max=maximum) + wait_random(0, 1)
        self.maximum = maximum

    def __call__(self, retry_state: Any) -> float:
        delay = min(float(self.fallback(retry_state)), self.maximum)
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, DeliveryError) and exc.retry_after is not None:
            delay = max(delay, min(exc.retry_after, self.maximum))
        return delay


def default_consumer_name() -> str:
    """Unique per process: host name and pid."""
    return f"{socket.gethostname()}-{os.getpid()}"


class Consumer:
    """A member of the workers consumer group."""

    def __init__(self, config: Config, client: aioredis.Redis, channels: Mapping[str, Channel],
                 *, name: str | None = None, on_alert: AlertHook | None = None) -> None:
        self.client = client
        #: Channels a reload removed or replaced, kept for deliveries already under way.
        self.retired: dict[str, Channel] = {}
        self.channels: Mapping[str, Channel] = {}
        self.reconfigure(config, channels)
        self.name = name or default_consumer_name()
        self.on_alert = on_alert
        #: `time.monotonic()` of the last turn of `run`'s loop (readiness).
        self.last_loop: float | None = None
        self._slots = asyncio.Semaphore(self.settings.concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        #: alert id -> (lock, number of deliveries using it); see `deliver`.
        self._sending: dict[str, tuple[asyncio.Lock, int]] = {}

    def reconfigure(self, config: Config, channels: Mapping[str, Channel]) -> None:
        """Swap configuration, rules and channels at once (no await: atomic for the event
        loop). An event being handled finishes with the rules it started with; a channel that
        is gone stays usable (`retired`) for its deliveries already under way."""
        matcher = Matcher(config.rules)
        groups = CrossFeedGroups(self.client, config.rules)
        self.retired.update({n: c for n, c in self.channels.items() if channels.get(n) is not c})
        self.config, self.settings, self.channels = config, config.workers, channels
        self.matcher, self.groups = matcher, groups
        self.rules = {rule.name: rule for rule in config.rules}

    def alive(self, within: float = 30.0) -> bool:
        """True while `run` loops (or waits for free slots with events in flight)."""
        if self.last_loop is None:
            return False
        return time.monotonic() - self.last_loop < within or bool(self._tasks)

    async def ensure_group(self) -> None:
        """Create the streams and their consumer group if they do not exist."""
        for stream in STREAMS:
            with contextlib.suppress(ResponseError):  # BUSYGROUP: it exists
                await self.client.xgroup_create(stream, keys.CONSUMER_GROUP, id="0",
                                                mkstream=True)

    async def _leave(self) -> None:
        """After a clean stop, drop this consumer from the group unless it still owns pending
        events (so `livewatch status` lists live workers and those with unfinished work)."""
        with contextlib.suppress(RedisError):
            for stream in STREAMS:
                mine: Any = await self.client.xpending_range(
                    stream, keys.CONSUMER_GROUP, min="-", max="+", count=1,
                    consumername=self.name)
                if not mine:
                    await self.client.xgroup_delconsumer(stream, keys.CONSUMER_GROUP, self.name)

    async def run(self, stop: asyncio.Event, block: float = 1.0) -> None:
        """Consume until `stop` is set, then wait up to `workers.shutdown_timeout` for
        in-flight events; those cut short stay pending (unacknowledged) for another worker."""
        await self.ensure_group()
        for stream in STREAMS:  # listed by `status` from the start, not after a first read
            await self.client.xgroup_createconsumer(stream, keys.CONSUMER_GROUP, self.name)
        last_claim = 0.0
        try:
            while not stop.is_set():
                self.last_loop = time.monotonic()
                if time.monotonic() - last_claim >= min(self.settings.claim_idle / 2, 30.0):
                    await self.reclaim()
                    last_claim = time.monotonic()
                await self._read(block)
        finally:
            self.last_loop = None
        if self._tasks:
            _done, late = await asyncio.wait(self._tasks, timeout=self.settings.shutdown_timeout)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
                await log.awarning("stopped with events in flight; left pending",
                                   events=len(late))
        await self._leave()

    async def run_until_empty(self) -> None:
        """Burst mode: handle everything readable now (including stale pending), then return."""
        await self.ensure_group()
        await self.reclaim()
        while await self._read(block=None):
            if self._tasks:
                await asyncio.wait(self._tasks)
        if self._tasks:
            await asyncio.wait(self._tasks)

    async def _read(self, block: float | None) -> int:
        """Read new events and start handling them; returns how many were read."""
        await self._slots.acquire()
        self._slots.release()
        response: Any = await self.client.xreadgroup(
            keys.CONSUMER_GROUP, self.name, dict.fromkeys(STREAMS, ">"),
            count=self.settings.concurrency, block=int(block * 1000) if block else None)
        count = 0
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
        for stream in STREAMS:
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
        field = _FIELD[stream]
        record: dict[Any, Any] = {field: fields.get(field, ""), "stream": stream,
                                  "source_id": message_id, "error": error[:1000],
                                  "at": str(time.time())}
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.xadd(keys.DEAD_EVENTS_STREAM, record,
                      maxlen=self.config.state.stream_maxlen, approximate=True)
            pipe.xack(stream, keys.CONSUMER_GROUP, message_id)
            await pipe.execute()
        metrics.DEAD_LETTERED.labels(stream).inc()
        await log.aerror("message dead-lettered", stream=stream, message_id=message_id,
                         error=error)

    async def _handle_and_ack(self, stream: str, message_id: str,
                              fields: dict[str, str]) -> None:
        handle: Callable[[], Awaitable[None]]
        try:
            if stream == keys.NOTICES_STREAM:
                notice = Notice.decode(fields["notice"])
                handle, about = partial(self.handle_notice, notice), notice.feed
            else:
                event = Event.decode(fields["event"])
                handle, about = partial(self.handle, event), event.feed
        except (KeyError, ValueError, TypeError) as exc:
            await self._dead_letter(stream, message_id, fields,
                                    f"undecodable {_FIELD[stream]}: {exc}")
            return
        heartbeat = asyncio.create_task(self._keep_claimed(stream, message_id))
        try:
            await handle()
        except Exception as exc:  # left pending: re-claimed later, dead-lettered after N
            await log.awarning("message not handled; will retry", stream=stream,
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
        """Deliver an operator notice to the operator channels, or else to the channels of
        the rules that watch its feed."""
        targets = self.config.operator.channels or sorted({
            channel for rule in self.config.rules
            if any(fnmatchcase(notice.feed, pattern) for pattern in rule.feeds)
            for channel in rule.channels})
        feed_url = next((f.url for f in self.config.feeds if f.name == notice.feed), None)
        await self._deliver_all([make_notice(notice, channel, feed_url) for channel in targets])

    async def handle(self, event: Event) -> None:
        """Match one event and deliver its alerts to every channel of every matching rule.
        Raises if any delivery still needs a retry (the event then stays pending)."""
        matcher, groups, rules = self.matcher, self.groups, self.rules  # one config throughout
        admitted = await groups.admit(event, matcher.alerts_for(event))
        for match, _sources in admitted:
            metrics.MATCHES.labels(match.rule).inc()
        await self._deliver_all([make_alert(event, match, channel, sources)
                                 for match, sources in admitted
                                 for channel in rules[match.rule].channels])

    async def _deliver_all(self, items: list[Alert | OperatorNotice]) -> None:
        results = await asyncio.gather(*(self.deliver(item) for item in items),
                                       return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise failures[0]

    async def deliver(self, alert: Alert | OperatorNotice) -> None:
        """Send `alert` to its channel unless already delivered; retry retryable failures.

        Deliveries of one alert id in this process run one at a time, so two copies of an event
        handled together (one read batch, or a re-claim of an event still in flight) cannot
        both pass the `delivered` check before either has written it."""
        lock, users = self._sending.get(alert.id, (asyncio.Lock(), 0))
        self._sending[alert.id] = (lock, users + 1)
        try:
            async with lock:
                await self._deliver(alert)
        finally:
            lock, users = self._sending[alert.id]
            if users <= 1:
                del self._sending[alert.id]
            else:
                self._sending[alert.id] = (lock, users - 1)

    async def _deliver(self, alert: Alert | OperatorNotice) -> None:
        done_key = keys.delivered(alert.id)
        if await self.client.exists(done_key):
            metrics.observe_delivery(alert.channel, "duplicate")
            return
        channel = self.channels.get(alert.channel) or self.retired[alert.channel]
        ids = _log_ids(alert)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.settings.retry_attempts),
            wait=_WaitRetryAfter(self.settings.retry_backoff, self.settings.retry_max_wait),
            retry=retry_if_exception_type(RetryableDeliveryError), reraise=True)
        try:
            async for attempt in retrying:
                with attempt:
                    started = time.monotonic()
                    try:
                        await channel.send(alert)
                    except DeliveryError as exc:
                        await self._count(alert.channel, "retry" if exc.retryable else "dead",
                                          started)
                        await log.awarning("delivery attempt failed", error=exc.reason,
                                           attempt=attempt.retry_state.attempt_number,
                                           retryable=exc.retryable, **ids)
                        raise
        except PermanentDeliveryError as exc:
            record: dict[Any, Any] = {
                **_payload(alert), "alert": alert.id, "channel": alert.channel,
                "error": exc.reason[:1000], "at": str(time.time())}
            await self.client.xadd(keys.DEAD_EVENTS_STREAM, record,
                                   maxlen=self.config.state.stream_maxlen, approximate=True)
            await self.client.set(done_key, "dead", ex=int(self.config.state.delivered_ttl))
            metrics.DEAD_LETTERED.labels("alerts").inc()
            await log.aerror("delivery failed permanently; dead-lettered", error=exc.reason, **ids)
            return
        elapsed = time.monotonic() - started
        await self.client.set(done_key, str(time.time()), ex=int(self.config.state.delivered_ttl))
        await self._count(alert.channel, "delivered", started, elapsed)
        await log.ainfo("delivered", elapsed_ms=round(elapsed * 1000, 1), **ids)
        if self.on_alert is not None and isinstance(alert, Alert):
            self.on_alert(alert)

    async def _count(self, channel: str, outcome: str, started: float,
                     elapsed: float | None = None) -> None:
        """Record one delivery attempt: metrics, and the per-channel counts `status` shows."""
        metrics.observe_delivery(channel, outcome, elapsed or time.monotonic() - started)
        with contextlib.suppress(RedisError):
            await self.client.hincrby(keys.CHANNEL_STATS, f"{channel}:{outcome}", 1)


def _log_ids(item: Alert | OperatorNotice) -> dict[str, str]:
    if isinstance(item, OperatorNotice):
        return {"notice": item.id, "channel": item.channel, "feed": item.notice.feed,
                "kind": item.notice.kind}
    return {"alert": item.id, "channel": item.channel, "rule": item.rule,
            "feed": item.event.feed, "entry": item.event.entry.id}


def _payload(item: Alert | OperatorNotice) -> dict[str, str]:
    if isinstance(item, OperatorNotice):
        return {"notice": item.notice.encode()}
    return {"event": item.event.encode()}
