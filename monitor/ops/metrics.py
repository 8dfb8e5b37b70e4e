"""Every Prometheus metric livewatch exports, in one place (served at `/metrics`).

Counters and histograms are recorded where the work happens (`Poller.poll`, the consumer's
delivery loop) through the small `observe_*` helpers below; gauges about shared state (stream
lag, pending, dead letters, failing feeds) are read from Redis at scrape time by `refresh`, so
every process reports the same cluster-wide values (aggregate them with `max`, not `sum`).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

from monitor.core import keys
from monitor.ops.status import failing_feeds, stream_groups

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from monitor.config.models import Config
    from monitor.poll.poller import PollOutcome

# No `_created` series: they would double the output for little use.
disable_created_metrics()  # type: ignore[no-untyped-call]

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

POLLS = Counter("livewatch_polls", "Feed polls by outcome: ok (parsed and committed), "
                "not_modified (304), unchanged (same body), baseline, error.", ["outcome"])
FETCH_SECONDS = Histogram("livewatch_fetch_seconds", "Time to fetch a feed (HTTP, body read).",
                          buckets=_LATENCY)
PARSE_SECONDS = Histogram("livewatch_parse_seconds", "Time to parse a fetched document.",
                          buckets=_LATENCY)
ENTRIES = Counter("livewatch_entries", "Events appended to the stream, by kind.", ["event"])
FEED_FAILURES = Gauge("livewatch_feed_consecutive_failures",
                      "Consecutive failed polls of a feed, as last seen by this process.",
                      ["feed"])
MATCHES = Counter("livewatch_matches", "Rule matches that produced alerts.", ["rule"])
DELIVERIES = Counter("livewatch_deliveries", "Delivery attempts by channel and outcome: "
                     "delivered, retry (retryable failure), dead (permanent failure or "
                     "given up), held (kept for a digest), duplicate (already queued, "
                     "skipped).", ["channel", "outcome"])
DELIVERY_SECONDS = Histogram("livewatch_delivery_seconds", "Time of one delivery attempt.",
                             ["channel"], buckets=_LATENCY)
DEAD_LETTERED = Counter("livewatch_dead_lettered", "Messages or alerts this process "
                        "dead-lettered.", ["stream"])
POLL_LATENESS = Histogram(
    "livewatch_poll_start_lateness_seconds",
    "How late each poll turn started after the time it was scheduled for (this process).",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0))
STREAM_LAG = Gauge("livewatch_stream_lag", "Entries not yet delivered to the consumer group.",
                   ["stream"])
STREAM_PENDING = Gauge("livewatch_stream_pending",
                       "Entries delivered to a worker but not yet acknowledged.", ["stream"])
DEAD_LETTERS = Gauge("livewatch_dead_letters", "Length of the dead-letter stream of events "
                     "no worker could handle.")
OUTBOX_QUEUED = Gauge("livewatch_outbox_queued", "Deliveries queued or being sent (including "
                      "those waiting for a retry).")
OUTBOX_DEAD = Gauge("livewatch_outbox_dead", "Dead-lettered deliveries (`livewatch alerts dead`).")
CHANNELS_DISABLED = Gauge("livewatch_channels_disabled",
                          "Channels disabled after their endpoint answered 410 Gone.")
FEEDS_FAILING = Gauge("livewatch_feeds_failing",
                      "Enabled feeds whose last poll failed (from Redis).")
FEEDS = Gauge("livewatch_feeds", "Enabled feeds in the configuration.")
REDIS_UP = Gauge("livewatch_redis_up", "1 when Redis answered the last scrape's reads, else 0.")
WEBSUB_NOTIFICATIONS = Counter(
    "livewatch_websub_notifications", "WebSub notifications by result: pushed (signed body "
    "diffed), polled (unsigned or empty: an immediate poll), forged (wrong signature, "
    "ignored), unknown (no such subscription).", ["result"])
WEBSUB_RELAYED = Counter("livewatch_websub_relayed", "WebSub notifications relayed to the "
                         "poller holding the feed's lease.")
WEBSUB_REQUESTS = Counter("livewatch_websub_requests", "WebSub (un)subscription requests sent "
                          "to hubs, by mode and result (accepted, failed).", ["mode", "result"])
RELOADS = Counter("livewatch_config_reloads", "Configuration reloads by result.", ["result"])

#: `PollOutcome.status` -> the `outcome` label.
_OUTCOME = {"changed": "ok"}


def observe_poll(outcome: PollOutcome) -> None:
    """Count one finished poll (its outcome, the events it appended, the feed's streak)."""
    POLLS.labels(_OUTCOME.get(outcome.status, outcome.status)).inc()
    if outcome.new:
        ENTRIES.labels("new").inc(outcome.new)
    if outcome.updated:
        ENTRIES.labels("updated").inc(outcome.updated)
    FEED_FAILURES.labels(outcome.feed).set(
        outcome.consecutive_failures if outcome.status == "error" else 0)


def observe_delivery(channel: str, outcome: str, seconds: float | None = None) -> None:
    """Count one delivery attempt (and its duration, when it reached the channel)."""
    DELIVERIES.labels(channel, outcome).inc()
    if seconds is not None:
        DELIVERY_SECONDS.labels(channel).observe(seconds)


def forget_feed(feed: str) -> None:
    """Drop the per-feed series of a feed removed by a reload."""
    with contextlib.suppress(KeyError):
        FEED_FAILURES.remove(feed)


async def refresh(client: aioredis.Redis, config: Config) -> None:
    """Read the shared gauges (stream lag and pending, dead letters, failing feeds) from Redis."""
    for info in await stream_groups(client):
        if info.lag is not None:
            STREAM_LAG.labels(info.stream).set(info.lag)
        STREAM_PENDING.labels(info.stream).set(info.pending)
    DEAD_LETTERS.set(sum([await client.xlen(part.dead) for part in keys.partitions()]))
    async with client.pipeline(transaction=False) as pipe:
        pipe.zcard(keys.OUTBOX_DUE)
        pipe.zcard(keys.OUTBOX_DEAD)
        pipe.hlen(keys.DISABLED_CHANNELS)
        queued, dead, disabled = await pipe.execute()
    OUTBOX_QUEUED.set(queued)
    OUTBOX_DEAD.set(dead)
    CHANNELS_DISABLED.set(disabled)
    enabled = [feed.name for feed in config.feeds if feed.enabled]
    FEEDS.set(len(enabled))
    FEEDS_FAILING.set(len(await failing_feeds(client, enabled)))
