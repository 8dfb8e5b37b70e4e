"""The durable delivery outbox: every alert becomes one delivery per channel, kept in Redis
until the channel accepts it or it is dead-lettered, and sent by whichever worker claims it.

Life of a delivery (its Redis calls are in `workers.outbox.store`, the atomic steps in
`workers.outbox.scripts`):

- `submit` queues it under its stable id (a re-handled event queues nothing twice) and, unless
  the channel's policy holds it for a digest, claims it for this worker and sends it at once.
- A claim is a lease: the delivery's due time moves to the lease's end, so if the worker dies
  another one claims it then. Every claim bumps a fencing token; only the current holder may
  record a retry or a dead letter, while a success is recorded whoever reports it.
- A retryable failure queues it again after the retry schedule's wait (at least the server's
  Retry-After); a permanent one, or one still failing `give_up_after` after it was queued,
  goes to the dead letters; HTTP 410 disables the channel and tells the operator.
- Held deliveries (digest window, rate limit spill, quiet hours) go out together as one
  `Digest` when their channel's hold is due.

The one window for a duplicate: a worker dies after the channel accepted a delivery and before
it recorded that; the delivery is sent again after the lease with the same id (`webhook-id`),
which the receiver can deduplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import redis.asyncio as aioredis
import structlog
from pydantic import SecretStr

from monitor.config.models import AnyChannelSettings, Config
from monitor.core.errors import ChannelGoneError, DeliveryError, StateError
from monitor.core.models import Notice
from monitor.ops import metrics
from workers.channels import Channel
from workers.outbox.codec import Deliverable, Digest, decode, encode
from workers.outbox.policy import rate_spill, retry_delay, route
from workers.outbox.silences import Silence, Silences
from workers.outbox.store import OutboxStore, until_answered
from workers.render.alert import Alert
from workers.render.notices import OperatorNotice, make_notice

log = structlog.get_logger("livewatch.outbox")

#: At most this many held deliveries go into one digest (the rest follow in the next).
DIGEST_MAX_ITEMS = 200

AlertHook = Callable[[Alert], None]


def _holding(silences: Sequence[Silence], item: Alert | OperatorNotice,
             now: float) -> Silence | None:
    """The active silence holding `item` (the one ending last); notices are never held."""
    if not isinstance(item, Alert):
        return None
    labels = {"rule": item.rule, "feed": item.event.feed, "channel": item.channel}
    held = [s for s in silences if s.holds(labels, now)]
    return max(held, key=lambda s: s.ends_at) if held else None


def fingerprint(settings: AnyChannelSettings) -> str:
    """A digest of a channel's settings, secrets included (only the hash is stored), so an
    operator's fix (a new URL, a new Apprise URL) is noticed."""
    dumped = settings.model_dump(exclude={"digest", "rate_limit", "quiet_hours"})
    text = json.dumps(dumped, sort_keys=True, default=_reveal)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _reveal(value: object) -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else str(value)


class Outbox:
    """Queues deliveries, sends them with this worker's share of the work, records outcomes."""

    def __init__(self, client: aioredis.Redis, config: Config, channels: Mapping[str, Channel],
                 *, on_alert: AlertHook | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = OutboxStore(client)
        self.silences = Silences(client)
        self.on_alert = on_alert
        #: Wall-clock epoch seconds: due times, holds and quiet hours are read from it.
        self.clock = clock
        self.retired: dict[str, Channel] = {}
        self.channels: Mapping[str, Channel] = {}
        self.reconfigure(config, channels)
        self._slots = asyncio.Semaphore(config.workers.concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        #: Sends started and not finished (claimed deliveries this worker holds).
        self._sending = 0

    def reconfigure(self, config: Config, channels: Mapping[str, Channel]) -> None:
        """Swap settings and channels; a channel that is gone stays usable for sends under way."""
        self.retired.update({n: c for n, c in self.channels.items() if channels.get(n) is not c})
        self.config, self.settings, self.channels = config, config.workers, channels
        self.channel_settings = {c.name: c for c in config.channels}

    # -- queueing ---------------------------------------------------------------------------

    async def submit(self, items: Sequence[tuple[Alert | OperatorNotice, bool]]) -> None:
        """Queue `(item, urgent)` deliveries; those claimed at once start sending now (in the
        background: `drain` waits for them). Returns once every item is durably queued. An
        alert an active silence holds is recorded as `silenced` and not sent."""
        silences = await self.silences.all() if any(isinstance(i, Alert) for i, _ in items) \
            else []
        for item, urgent in items:
            silence = _holding(silences, item, self.clock())
            claim = await self._queue(item, urgent, silence)
            if claim is not None:
                self._spawn(item.id, claim, item)

    async def _queue(self, item: Alert | OperatorNotice, urgent: bool,
                     silence: Silence | None = None) -> str | None:
        """Queue one item; its claim token when this worker is to send it now."""
        now = self.clock()
        settings = self.channel_settings.get(item.channel)
        decision = route(settings, now, urgent=urgent) if settings else None
        action = decision.action if decision else "send"
        reason = decision.reason if decision else ""
        if silence is not None:
            action, reason = "silence", silence.id
        elif action == "send" and self._sending >= self.settings.concurrency:
            action = "queue"  # no free slot: a claim now could outlive its lease in our queue
        status, claim = await self.store.enqueue(
            item, encode(item), now=now, action=action,
            lease_until=now + self.settings.delivery_lease,
            due=decision.due if decision else now, reason=reason,
            keep_due=bool(decision and decision.keep_due),
            rate=rate_spill(settings, now) if settings and not urgent else ("", 0, 0, 0.0, ""),
            silenced_ttl=int(self.config.state.delivered_ttl))
        if status == "silenced":
            metrics.observe_delivery(item.channel, "silenced")
            log.info("silenced", silence=reason, **_ids(item))
        elif status == "held":
            metrics.observe_delivery(item.channel, "held")
            log.info("held for digest", **_ids(item))
            self._wake.set()
        elif status == "exists":
            metrics.observe_delivery(item.channel, "duplicate")
        elif status == "queued":
            self._wake.set()
        return claim

    # -- sending ----------------------------------------------------------------------------

    def _spawn(self, delivery_id: str, claim: str, item: Deliverable | str) -> None:
        """Send `item` (or its JSON, as claimed from Redis) under `claim`, in the background."""
        self._sending += 1
        task = asyncio.create_task(self._send(delivery_id, claim, item))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait for sends in flight (at most `timeout`); True when none is left."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
        return not self._tasks

    async def _send(self, delivery_id: str, claim: str, item: Deliverable | str) -> None:
        try:
            async with self._slots:
                while True:
                    try:
                        await self._send_claimed(delivery_id, claim, item)
                        return
                    except StateError as exc:  # before the send, or after a failed one
                        log.warning("Redis unavailable with a delivery in hand; sending it as "
                                    "soon as Redis answers", delivery=delivery_id, error=str(exc))
                    if not await self._renewed(delivery_id, claim):
                        log.info("delivery taken over by another sender", delivery=delivery_id)
                        return
        except asyncio.CancelledError:  # shutdown: hand it back for another worker at once
            with contextlib.suppress(Exception):
                await asyncio.shield(self._record(delivery_id, claim, "release"))
            raise
        except _Unrecorded as exc:  # sent, but Redis stayed away: the lease decides
            log.warning("delivery sent but not recorded; it is sent again after its lease",
                        delivery=delivery_id, error=str(exc))
        except Exception:  # a bug: the lease hands the delivery to a sender again
            log.exception("delivery failed unexpectedly; left to its lease",
                          delivery=delivery_id)
        finally:
            self._sending -= 1
            self._wake.set()  # a slot is free: the loop may claim queued deliveries

    async def _renewed(self, delivery_id: str, claim: str) -> bool:
        """Wait until Redis answers, then keep the lease if this sender still holds it."""
        return await until_answered(lambda: self.store.renew(
            delivery_id, claim, self.clock() + self.settings.delivery_lease), None,
            "renew a lease", delivery=delivery_id)

    async def _send_claimed(self, delivery_id: str, claim: str,
                            payload: Deliverable | str) -> None:
        try:
            item = decode(payload) if isinstance(payload, str) else payload
        except ValueError as exc:
            await self._record(delivery_id, claim, "dead", error=f"undecodable delivery: {exc}")
            return
        ids = _ids(item)
        channel = self.channels.get(item.channel) or self.retired.get(item.channel)
        if channel is None:
            await self._give_up(item, claim, f"channel {item.channel!r} is no longer configured")
            return
        reason = await self.store.disabled_reason(item.channel)
        if reason is not None:
            await self._give_up(item, claim, f"channel {item.channel} is disabled: {reason}")
            return
        started = time.monotonic()
        try:
            await channel.send(item)
        except ChannelGoneError as exc:
            await self._disable(item.channel, exc.reason)
            await self._give_up(item, claim, exc.reason, started)
            return
        except DeliveryError as exc:
            await self._failed(item, claim, exc.reason, exc.retryable, exc.retry_after, started)
            return
        except Exception as exc:  # a bug in a channel must not lose the alert: retry it
            log.exception("channel raised an unexpected error", **ids)
            await self._failed(item, claim, f"{type(exc).__name__}: {exc}", True, None, started)
            return
        elapsed = time.monotonic() - started
        self._count(item.channel, "delivered", started, elapsed)
        try:
            await self._record(item.id, claim, "delivered")
        except StateError as exc:  # never retried as a send: it was sent
            raise _Unrecorded(str(exc)) from exc
        log.info("delivered", elapsed_ms=round(elapsed * 1000, 1), **ids)
        if self.on_alert is not None:
            for alert in _alerts(item):
                self.on_alert(alert)

    async def _failed(self, item: Deliverable, claim: str, reason: str, retryable: bool,
                      retry_after: float | None, started: float) -> None:
        ids = _ids(item)
        attempts, created = await self.store.attempts(item.id)
        attempts += 1
        now = self.clock()
        created = now if created is None else created
        if not retryable:
            await self._give_up(item, claim, reason, started)
            return
        wait = retry_delay(self.settings, attempts, retry_after)
        if now + wait - created > self.settings.give_up_after:
            await self._give_up(item, claim, f"gave up after {attempts} attempts: {reason}",
                                started)
            return
        self._count(item.channel, "retry", started)
        await self._record(item.id, claim, "retry", error=reason, next_due=now + wait)
        self._wake.set()  # the loop may be waiting longer than this retry's wait
        log.warning("delivery failed; will retry", error=reason, attempt=attempts,
                    retry_in_s=round(wait, 3), **ids)

    async def _give_up(self, item: Deliverable, claim: str, reason: str,
                       started: float | None = None) -> None:
        await self._record(item.id, claim, "dead", error=reason)
        self._count(item.channel, "dead", started or time.monotonic())
        metrics.DEAD_LETTERED.labels("alerts").inc()
        log.error("delivery dead-lettered", error=reason, **_ids(item))

    async def _record(self, delivery_id: str, claim: str, outcome: str, *, error: str = "",
                      next_due: float = 0.0) -> str:
        """Record an outcome, retrying while Redis is unreachable (a restart), for up to the
        delivery lease (after it another sender may have the delivery)."""
        return await until_answered(lambda: self.store.record(
            delivery_id, claim, outcome, now=self.clock(), next_due=next_due, error=error,
            delivered_ttl=int(self.config.state.delivered_ttl)), self.settings.delivery_lease,
            "record a delivery result", delivery=delivery_id, outcome=outcome)

    def _count(self, channel: str, outcome: str, started: float,
               elapsed: float | None = None) -> None:
        metrics.observe_delivery(channel, outcome, elapsed or time.monotonic() - started)
        task = asyncio.create_task(self._stat(channel, outcome))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _stat(self, channel: str, outcome: str) -> None:
        with contextlib.suppress(StateError):
            await self.store.count(channel, outcome)

    async def _disable(self, channel: str, reason: str) -> None:
        """Disable `channel` (HTTP 410) and notify the operator through the other channels."""
        settings = self.channel_settings.get(channel)
        record = {"reason": reason, "at": self.clock(),
                  "fingerprint": fingerprint(settings) if settings else ""}
        if not await self.store.disable(channel, record):
            return
        log.error("channel disabled: its destination is gone", channel=channel,
                  error=reason)
        notice = Notice("channel_disabled", channel,
                        f"Channel {channel} was disabled: {reason}. Its deliveries go to the "
                        f"dead letters until it is fixed (`livewatch alerts enable {channel}`, "
                        f"then `livewatch alerts retry --all --channel {channel}`).",
                        self.clock())
        targets = [c for c in self.config.operator.channels if c != channel]
        await self.submit([(make_notice(notice, target, None), True) for target in targets])

    # -- the loop ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop`: flush due digests, claim due deliveries (retries, holds, those whose
        sender died), send them. Then wait up to `shutdown_timeout` for sends in flight; those
        cut short are handed back."""
        last_check = 0.0
        try:
            while not stop.is_set():
                try:
                    if time.monotonic() - last_check > 10.0:
                        await self.reenable_fixed()
                        last_check = time.monotonic()
                    wait = await self.step()
                except StateError as exc:
                    log.warning("outbox: Redis unavailable; retrying", error=str(exc))
                    wait = 1.0
                except Exception:  # a bug must not stop every delivery of this worker
                    log.exception("outbox loop failed; retrying")
                    wait = 1.0
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(_first(stop.wait(), self._wake.wait()), wait)
        finally:
            if not await self.drain(self.settings.shutdown_timeout):
                late = list(self._tasks)
                for task in late:
                    task.cancel()
                await asyncio.wait(late)
                log.warning("stopped with deliveries in flight; handed back",
                            deliveries=len(late))

    async def step(self) -> float:
        """One turn: flush due holds, claim and start due deliveries. Returns how long to
        wait before the next turn."""
        now = self.clock()
        await self.flush_holds(now)
        free = self.settings.concurrency - self._sending
        if free > 0:
            claimed = await self.store.claim(now, now + self.settings.delivery_lease, free)
            for delivery_id, claim, payload in claimed:
                self._spawn(delivery_id, claim, payload)
            if len(claimed) >= free:
                return 0.05
        soonest = await self._soonest()
        return max(0.02, min((now + 1.0 if soonest is None else soonest) - self.clock(), 1.0))

    async def _soonest(self) -> float | None:
        """When the next queued delivery or hold is due."""
        dues = [due for due in (await self.store.next_due(), await self.store.next_hold())
                if due is not None]
        return min(dues, default=None)

    async def flush_holds(self, now: float | None = None) -> int:
        """Send the held deliveries of every channel whose hold is due (as digests); a channel
        in quiet hours waits for their end. Returns the number of deliveries queued."""
        now = self.clock() if now is None else now
        queued = 0
        for channel in await self.store.held_channels():
            settings = self.channel_settings.get(channel)
            if settings is not None:
                decision = route(settings, now, urgent=False)
                if decision.action == "hold" and not decision.keep_due:  # quiet hours
                    await self.store.postpone_hold(channel, decision.due)
                    continue
            result = await self.store.flush(channel, now, DIGEST_MAX_ITEMS,
                                            int(self.config.state.delivered_ttl))
            if result:
                queued += 1
                log.info("hold released", channel=channel, kind=result[0],
                         delivery=result[1])
        return queued

    async def reenable_fixed(self) -> None:
        """Re-enable disabled channels whose settings changed since (the operator fixed them)."""
        for channel, record in (await self.store.disabled()).items():
            settings = self.channel_settings.get(channel)
            if settings is not None and record.get("fingerprint") != fingerprint(settings):
                await self.store.enable(channel)
                log.info("channel re-enabled: its settings changed", channel=channel)

    async def run_until_idle(self, timeout: float = 30.0) -> None:
        """Burst mode: send what is due, and keep going while more becomes due (retries,
        digests) within `timeout`; return when nothing is in flight or due by then."""
        deadline = time.monotonic() + timeout
        while True:
            wait = await self.step()
            await self.drain(max(0.0, deadline - time.monotonic()))
            left = deadline - time.monotonic()
            soonest = await self._soonest()
            if left <= 0 or (not self._tasks and (soonest is None
                                                  or soonest - self.clock() > left)):
                return
            if soonest is not None:
                wait = min(wait, max(soonest - self.clock(), 0.005))
            await asyncio.sleep(min(wait, max(left, 0.0)))


async def _first(*waits: Awaitable[Any]) -> None:
    """Return when the first of `waits` finishes; cancel the others."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


def _alerts(item: Deliverable) -> list[Alert]:
    if isinstance(item, Alert):
        return [item]
    if isinstance(item, Digest):
        return list(item.alerts)
    return []


class _Unrecorded(Exception):
    """A delivery was sent, and Redis did not answer to record it within its lease."""


def _ids(item: Deliverable) -> dict[str, Any]:
    """Log fields naming a deliverable."""
    if isinstance(item, OperatorNotice):
        return {"notice": item.id, "channel": item.channel, "feed": item.notice.feed,
                "kind": item.notice.kind}
    if isinstance(item, Digest):
        return {"digest": item.id, "channel": item.channel, "items": len(item.items)}
    return {"alert": item.id, "channel": item.channel, "rule": item.rule,
            "feed": item.event.feed, "entry": item.event.entry.id}


__all__ = ["AlertHook", "Outbox", "fingerprint"]
