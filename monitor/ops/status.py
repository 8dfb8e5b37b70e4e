"""`livewatch status`: what the service is doing, read from Redis only.

Works while the service runs elsewhere: feeds' health and fingerprints, per-channel delivery
counters, the consumer group's consumers and the streams' lag. With the embedded Redis the
running service writes its server's URL to `{data_dir}/redis.url` (see `monitor.ops.runtime`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError
from rich.console import Console
from rich.table import Table

from monitor.config.models import Config
from monitor.config.values import format_duration
from monitor.core import keys
from monitor.core.redaction import url_shown

#: Delivery outcomes counted per channel (`lw:stats:channels`), in the order shown.
CHANNEL_OUTCOMES = ("delivered", "retry", "dead")


def url_file(config: Config) -> Path:
    """Where a running service with the embedded Redis writes that server's URL."""
    return config.redis.data_dir / "redis.url"


def redis_url(config: Config) -> str | None:
    """The Redis to read: the configured one (`sentinel://MASTER@…` for Sentinel), or the
    running embedded one (None if none)."""
    if config.redis.sentinel is not None:
        master = config.redis.sentinel
        return f"sentinel://{master.master}@{','.join(master.sentinels)}"
    if not config.redis.embedded:
        return config.redis.url
    try:
        return url_file(config).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def redact(url: str) -> str:
    """A Redis URL with its password shown as `***` (`url_shown(url, "all")`)."""
    return url_shown(url, "all")


@dataclass(frozen=True, slots=True)
class GroupInfo:
    """The `workers` group on one stream."""

    stream: str
    length: int
    pending: int
    lag: int | None
    consumers: int


async def stream_groups(client: aioredis.Redis) -> list[GroupInfo]:
    """Length, pending and lag (Redis ≥ 7) of each consumed stream that exists (of every
    partition on Redis Cluster)."""
    streams = list(keys.by_stream())
    async with client.pipeline(transaction=False) as pipe:
        for stream in streams:
            pipe.xlen(stream)
            pipe.xinfo_groups(stream)
        replies = await pipe.execute(raise_on_error=False)
    out = []
    for index, stream in enumerate(streams):
        length, groups = replies[2 * index], replies[2 * index + 1]
        if isinstance(groups, ResponseError):  # no such stream yet
            continue
        if isinstance(groups, Exception):
            raise groups
        for group in groups:
            if group.get("name") == keys.CONSUMER_GROUP:
                lag = group.get("lag")
                out.append(GroupInfo(stream, int(length), int(group.get("pending") or 0),
                                     int(lag) if lag is not None else None,
                                     int(group.get("consumers") or 0)))
    return out


async def failing_feeds(client: aioredis.Redis, names: list[str]) -> list[str]:
    """Those of `names` whose last poll failed."""
    async with client.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hget(keys.health(name), "consecutive_failures")
        streaks = await pipe.execute()
    return [name for name, streak in zip(names, streaks, strict=True) if int(streak or 0) > 0]


async def consumers(client: aioredis.Redis) -> list[dict[str, Any]]:
    """The workers in the group: name, events pending (over every partition), seconds idle
    (the least)."""
    workers: dict[str, dict[str, Any]] = {}
    for part in keys.partitions():
        try:
            found: list[dict[str, Any]] = await client.xinfo_consumers(
                part.events, keys.CONSUMER_GROUP)
        except ResponseError:
            continue
        for consumer in found:
            idle = int(consumer["idle"]) / 1000
            seen = workers.setdefault(consumer["name"], {"name": consumer["name"],
                                                         "pending": 0, "idle_s": idle})
            seen["pending"] += int(consumer["pending"])
            seen["idle_s"] = min(seen["idle_s"], idle)
    return list(workers.values())


def _number(raw: dict[str, str], name: str) -> float | None:
    return float(raw[name]) if raw.get(name) else None


async def collect(client: aioredis.Redis, config: Config) -> dict[str, Any]:
    """Everything `status` shows, as JSON-ready data."""
    async with client.pipeline(transaction=False) as pipe:
        for feed in config.feeds:
            pipe.hgetall(keys.health(feed.name))
            pipe.hlen(keys.fingerprints(feed.name))
            pipe.hmget(keys.websub(feed.name), "state", "hub", "lease_until")
        pipe.hgetall(keys.CHANNEL_STATS)
        pipe.zcard(keys.OUTBOX_DUE)
        pipe.zcard(keys.OUTBOX_DEAD)
        pipe.hkeys(keys.DISABLED_CHANNELS)
        for part in keys.partitions():
            pipe.xlen(part.dead)
        results = await pipe.execute()
    dead_letters = sum(int(n) for n in results[3 * len(config.feeds) + 4:])
    results = results[:3 * len(config.feeds) + 4]
    feeds = []
    for index, feed in enumerate(config.feeds):
        health, entries, (push, hub, lease_until) = results[3 * index:3 * index + 3]
        feeds.append({
            "name": feed.name, "kind": feed.kind, "detected_kind": health.get("kind") or None,
            "enabled": feed.enabled, "interval": config.interval(feed),
            "last_poll": _number(health, "last_poll"),
            "last_success": _number(health, "last_success"),
            "result": health.get("last_status") or None,
            "next_poll": _number(health, "next_poll"), "entries": int(entries),
            "consecutive_failures": int(health.get("consecutive_failures") or 0),
            "total_failures": int(health.get("total_failures") or 0),
            "last_error": health.get("last_error") or None,
            # WebSub: the subscription's state (pending, verified, denied, unsubscribing)
            "push": {"state": push, "hub": hub,
                     "lease_until": float(lease_until) if lease_until else None}
            if push else None,
        })
    stats: dict[str, str] = results[-4]
    queued, dead_alerts, disabled = int(results[-3]), int(results[-2]), set(results[-1])
    channels = [{"name": c.name, "type": c.type, "disabled": c.name in disabled,
                 **{o: int(stats.get(f"{c.name}:{o}") or 0) for o in CHANNEL_OUTCOMES}}
                for c in config.channels]
    return {"at": time.time(), "feeds": feeds, "channels": channels,
            "workers": await consumers(client),
            "streams": [asdict(g) for g in await stream_groups(client)],
            "dead_letters": dead_letters, "deliveries_queued": queued,
            "dead_deliveries": dead_alerts}


def _when(at: float | None, now: float) -> str:
    if at is None:
        return "-"
    delta = at - now
    text = format_duration(abs(delta))
    return f"in {text}" if delta > 0 else f"{text} ago"


def _push(push: dict[str, Any] | None, now: float) -> str:
    """A feed's WebSub subscription in a few words: `verified, lease ends in 9d`, `-` for none."""
    if not push:
        return "-"
    if push["state"] == "verified" and push["lease_until"]:
        return f"verified, lease ends {_when(push['lease_until'], now)}"
    return str(push["state"])


def render(report: dict[str, Any], out: Console) -> None:
    """Print `report` (from `collect`) as rich tables."""
    now = report["at"]
    feeds = Table("feed", "kind", "interval", "last poll", "result", "next poll", "entries",
                  "push", "failures", "last error", title="feeds")
    for f in report["feeds"]:
        kind = f["kind"] if not f["detected_kind"] or f["kind"] != "auto" else \
            f"auto: {f['detected_kind']}"
        result = f["result"] or "-"
        style = "red" if f["consecutive_failures"] else ""
        feeds.add_row(f["name"] + ("" if f["enabled"] else " (disabled)"), kind,
                      f"{f['interval']:g}s", _when(f["last_poll"], now), result,
                      _when(f["next_poll"], now), str(f["entries"]), _push(f.get("push"), now),
                      str(f["consecutive_failures"]), (f["last_error"] or "")[:80], style=style)
    out.print(feeds)
    channels = Table("channel", "type", *CHANNEL_OUTCOMES, title="channels")
    for c in report["channels"]:
        channels.add_row(c["name"] + (" (disabled: 410 Gone)" if c.get("disabled") else ""),
                         c["type"], *(str(c[o]) for o in CHANNEL_OUTCOMES),
                         style="red" if c.get("disabled") else "")
    out.print(channels)
    workers = Table("consumer", "pending", "idle", title="workers")
    for w in report["workers"]:
        workers.add_row(w["name"], str(w["pending"]), f"{w['idle_s']:.1f}s")
    out.print(workers)
    streams = Table("stream", "length", "lag", "pending", "consumers", title="streams")
    for s in report["streams"]:
        streams.add_row(s["stream"], str(s["length"]), "-" if s["lag"] is None else str(s["lag"]),
                        str(s["pending"]), str(s["consumers"]))
    out.print(streams)
    out.print(f"deliveries queued or retrying: {report['deliveries_queued']}; "
              f"dead deliveries: {report['dead_deliveries']} (`livewatch alerts dead`); "
              f"dead events: {report['dead_letters']}")
