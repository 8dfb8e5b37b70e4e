"""Alerts as the console shows them: the outbox's deliveries of one rule matching one version
of one entry, grouped across channels (each channel's delivery state side by side), with the
silence that held them and their acknowledgement."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import redis.asyncio as aioredis

from monitor.core import keys
from workers.outbox.codec import decode
from workers.outbox.silences import iso
from workers.outbox.store import state_errors
from workers.render.alert import Alert, alert_id

#: Deliveries read per page while gathering alerts.
_PAGE = 200
#: How long an acknowledgement is kept (the deliveries it is about expire sooner).
ACK_TTL = 14 * 86400.0


def group_id(alert: Alert) -> str:
    """The console's id of an alert: the same for its deliveries on every channel."""
    event = alert.event
    return alert_id(event.feed, event.entry.id, alert.rule, "*", event.version)


@dataclass
class AlertView:
    """One alert: what matched, where it went, what held it."""

    id: str
    rule: str
    feed: str
    entry: dict[str, Any]
    event: str
    detected_at: float
    queued_at: float
    #: channel -> delivery state (queued, sending, delivered, held, dead, silenced, …)
    state: dict[str, str] = field(default_factory=dict)
    #: channel -> delivery id (for retries)
    deliveries: dict[str, str] = field(default_factory=dict)
    silenced_by: str | None = None
    acknowledged: dict[str, Any] | None = None
    terms: list[str] = field(default_factory=list)

    def api(self) -> dict[str, Any]:
        """The API's JSON shape."""
        return {"id": self.id, "rule": self.rule, "feed": self.feed, "entry": self.entry,
                "event": self.event, "detected_at": iso(self.detected_at),
                "queued_at": iso(self.queued_at), "state": self.state,
                "deliveries": self.deliveries, "silenced_by": self.silenced_by,
                "acknowledged": self.acknowledged, "terms": self.terms}


def _view(alert: Alert, raw: dict[str, str]) -> AlertView:
    entry = alert.event.entry
    return AlertView(
        id=group_id(alert), rule=alert.rule, feed=alert.event.feed,
        entry={"id": entry.id, "title": entry.title, "url": entry.url},
        event=alert.event.kind, detected_at=alert.event.detected_at,
        queued_at=float(raw.get("created") or 0),
        terms=sorted(alert.match.terms))


def _add(views: dict[str, AlertView], delivery_id: str, raw: dict[str, str]) -> str | None:
    """Fold one delivery hash into `views`; the alert's id, None for a notice or a digest."""
    if raw.get("kind") != "alert" or not raw.get("item"):
        return None
    try:
        item = decode(raw["item"])
    except ValueError:
        return None
    if not isinstance(item, Alert):
        return None
    gid = group_id(item)
    view = views.get(gid)
    if view is None:
        view = views[gid] = _view(item, raw)
    view.state[item.channel] = raw.get("state", "?")
    view.deliveries[item.channel] = delivery_id
    if raw.get("silenced_by"):
        view.silenced_by = raw["silenced_by"]
    return gid


async def _hashes(client: aioredis.Redis, ids: Sequence[str]) -> list[dict[str, str]]:
    async with client.pipeline(transaction=False) as pipe:
        for delivery_id in ids:
            pipe.hgetall(keys.delivery(delivery_id))
        return cast(list[dict[str, str]], await pipe.execute())


async def _with_acks(client: aioredis.Redis, views: list[AlertView]) -> list[AlertView]:
    if views:
        acks = await client.mget([keys.ack(v.id) for v in views])
        for view, ack in zip(views, acks, strict=True):
            view.acknowledged = json.loads(ack) if ack else None
    return views


@state_errors
async def recent_alerts(client: aioredis.Redis, limit: int = 50) -> list[AlertView]:
    """The newest `limit` alerts, newest first."""
    views: dict[str, AlertView] = {}
    order: list[str] = []
    start = 0
    while len(order) < limit:
        ids = cast(list[str], await client.zrevrange(keys.OUTBOX_RECENT, start,
                                                     start + _PAGE - 1))
        if not ids:
            break
        start += _PAGE
        for delivery_id, raw in zip(ids, await _hashes(client, ids), strict=True):
            gid = _add(views, delivery_id, raw)
            if gid is not None and gid not in order:
                order.append(gid)
    return await _with_acks(client, [views[g] for g in order[:limit]])


@state_errors
async def latest_queued(client: aioredis.Redis) -> float:
    """When the newest delivery was queued (the wall's first cursor), 0 for none."""
    top = cast(list[tuple[str, float]],
               await client.zrevrange(keys.OUTBOX_RECENT, 0, 0, withscores=True))
    return float(top[0][1]) if top else 0.0


@state_errors
async def alerts_since(client: aioredis.Redis, after: float) -> tuple[list[AlertView], float]:
    """Alerts with a delivery queued after `after` (epoch seconds), oldest first, and the
    newest queue time seen (the next call's `after`)."""
    found = cast(list[tuple[str, float]], await client.zrangebyscore(
        keys.OUTBOX_RECENT, f"({after!r}", "+inf", start=0, num=500, withscores=True))
    if not found:
        return [], after
    views: dict[str, AlertView] = {}
    order: list[str] = []
    ids = [delivery_id for delivery_id, _ in found]
    for delivery_id, raw in zip(ids, await _hashes(client, ids), strict=True):
        gid = _add(views, delivery_id, raw)
        if gid is not None and gid not in order:
            order.append(gid)
    return await _with_acks(client, [views[g] for g in order]), max(s for _, s in found)


@state_errors
async def find_alert(client: aioredis.Redis, alert: str, scan: int = 2000) -> AlertView | None:
    """The alert `alert` among the newest `scan` deliveries, if there."""
    for view in await recent_alerts(client, scan):
        if view.id == alert:
            return view
    return None


@state_errors
async def acknowledge(client: aioredis.Redis, alert: str, by: str, comment: str = "", *,
                      keep: float = ACK_TTL, now: float | None = None) -> dict[str, Any]:
    """Record that `by` acknowledged `alert` (the first acknowledgement is kept, `keep`
    seconds)."""
    record = {"by": by, "at": iso(time.time() if now is None else now), "comment": comment}
    await client.set(keys.ack(alert), json.dumps(record, ensure_ascii=False), nx=True,
                     ex=max(int(keep), 1))
    stored = await client.get(keys.ack(alert))
    return cast(dict[str, Any], json.loads(str(stored)))
