"""The alert wall (`/console/`), its live updates, and one alert's page with its actions.

Live updates are Server-Sent Events from `GET /console/wall/events`: every `POLL` seconds the
stream asks `alerts_since` for alerts with a delivery queued after its cursor (so an alert
shows within a second of being queued) and, every `REFRESH` seconds, re-reads the newest
`WALL_SIZE` alerts for changes of state (delivered, dead, acknowledged). Each new or changed
alert is one `alert` event: its JSON with the row's HTML, rendered by the same template as the
page. The event id is the cursor, so a reconnecting browser resumes where it was
(`Last-Event-ID`). A comment every `KEEPALIVE` seconds keeps proxies from closing the stream;
it ends when the client goes, its session ends or the server shuts down. Redis going away is
an event `status` ({"ok": false}), not the end of the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import structlog
from aiohttp import web
from redis.exceptions import RedisError

from monitor.core.errors import StateError
from workers.console.alerts import (
    AlertView,
    acknowledge,
    alerts_since,
    find_alert,
    latest_queued,
    recent_alerts,
)
from workers.console.api import SESSION_COOKIE
from workers.console.frame import TEMPLATES, Page, ascii_only, back, page
from workers.console.links import MUTE_FOR
from workers.outbox import deliveries
from workers.outbox.silences import SilenceMatcher, new_silence

log = structlog.get_logger("livewatch.console")

#: Alerts on the wall.
WALL_SIZE = 50
#: Seconds between looks for new alerts, between re-reads of the wall, between keep-alives.
POLL = 0.25
REFRESH = 2.0
KEEPALIVE = 15.0
#: Seconds between looks while Redis is unavailable.
RETRY_REDIS = 2.0
#: What the browser waits before reconnecting (ms).
RECONNECT_MS = 2000
#: Set when the server shuts down: every open stream ends.
STOPPING: web.AppKey[asyncio.Event] = web.AppKey("console_stopping", asyncio.Event)


def _merged(old: AlertView, new: AlertView) -> AlertView:
    """`new` (a view of only the deliveries queued lately) over what `old` knew."""
    return replace(new, state={**old.state, **new.state},
                   deliveries={**old.deliveries, **new.deliveries},
                   silenced_by=new.silenced_by or old.silenced_by,
                   acknowledged=new.acknowledged or old.acknowledged,
                   queued_at=max(old.queued_at, new.queued_at))


@dataclass
class WallTracker:
    """What one stream has told its browser: decides which alerts to send (no I/O)."""

    limit: int = WALL_SIZE * 4
    known: dict[str, AlertView] = field(default_factory=dict)
    sent: dict[str, str] = field(default_factory=dict)

    def _changed(self, views: Iterable[AlertView]) -> list[AlertView]:
        out = []
        for view in views:
            signature = json.dumps(view.api(), sort_keys=True)
            if self.sent.get(view.id) != signature:
                self.sent[view.id] = signature
                out.append(view)
        if len(self.known) > self.limit:
            keep = sorted(self.known.values(), key=lambda v: v.queued_at)[-self.limit:]
            self.known = {v.id: v for v in keep}
            self.sent = {k: s for k, s in self.sent.items() if k in self.known}
        return out

    def new(self, views: Iterable[AlertView]) -> list[AlertView]:
        """Alerts from `alerts_since` (partial: only their recent deliveries), merged with
        what was known of them; those to send."""
        merged = []
        for view in views:
            old = self.known.get(view.id)
            self.known[view.id] = view if old is None else _merged(old, view)
            merged.append(self.known[view.id])
        return self._changed(merged)

    def refresh(self, views: Iterable[AlertView]) -> list[AlertView]:
        """The wall's alerts read whole; those that changed since they were sent."""
        fresh = list(views)
        for view in fresh:
            self.known[view.id] = view
        return self._changed(fresh)


def row_html(request: web.Request, alert: AlertView) -> str:
    """One alert's row on the wall."""
    return request.app[TEMPLATES].get_template("row.html").render(alert=alert)


def _event(request: web.Request, alert: AlertView, cursor: float) -> bytes:
    data = {**alert.api(), "queued": alert.queued_at, "html": row_html(request, alert)}
    return (f"event: alert\nid: {cursor!r}\n"
            f"data: {json.dumps(data, ensure_ascii=False)}\n\n").encode()


def _status(ok: bool, message: str = "") -> bytes:
    return f"event: status\ndata: {json.dumps({'ok': ok, 'message': message})}\n\n".encode()


def _start(request: web.Request) -> float | None:
    """The cursor to resume from (`Last-Event-ID`, else `?after=`); ValueError if garbled."""
    raw = request.headers.get("Last-Event-ID") or request.query.get("after")
    if not raw:
        return None
    value = float(raw)
    if value != value or value < 0:  # NaN
        raise ValueError(raw)
    return value


def _wanted(ctx: Page, stop: asyncio.Event, cookie: str) -> bool:
    """True while the server runs, the client is there and its session holds (it may expire,
    or its token be removed by a reload)."""
    transport = ctx.request.transport
    return not stop.is_set() and transport is not None and not transport.is_closing() \
        and ctx.state.auth.session(cookie) is not None


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()


@page()
async def wall_page(ctx: Page) -> web.StreamResponse:
    """GET /console/: the newest alerts, then live."""
    client = ctx.state.client
    cursor = await latest_queued(client)
    found = await recent_alerts(client, WALL_SIZE)
    return ctx.render("wall.html", alerts=found, cursor=repr(cursor), size=WALL_SIZE)


@page()
async def wall_events(ctx: Page) -> web.StreamResponse:
    """GET /console/wall/events: the wall's Server-Sent Events."""
    request, client = ctx.request, ctx.state.client
    try:
        after = _start(request)
    except ValueError:
        return ctx.fail(400, "Bad cursor", "Last-Event-ID and after take epoch seconds.")
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8",
                                           "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    await response.write(f"retry: {RECONNECT_MS}\n\n".encode())
    stop, cookie = request.app[STOPPING], ascii_only(request.cookies.get(SESSION_COOKIE))
    tracker = WallTracker()
    healthy, wrote, refreshed = True, time.monotonic(), 0.0
    with contextlib.suppress(ConnectionError):
        while _wanted(ctx, stop, cookie):
            out: list[AlertView] = []
            try:
                if after is None:  # not in the page: from now on (a reload shows the rest)
                    after = await latest_queued(client)
                found, after = await alerts_since(client, after)
                out = tracker.new(found)
                if time.monotonic() - refreshed >= REFRESH:
                    out += tracker.refresh(await recent_alerts(client, WALL_SIZE))
                    refreshed = time.monotonic()
                if not healthy:
                    healthy = True
                    await response.write(_status(True))
            except (StateError, RedisError) as exc:
                if healthy:
                    log.warning("console wall: Redis unavailable", error=str(exc))
                    healthy = False
                    await response.write(_status(False, "Redis is unavailable; retrying"))
            for alert in out:
                await response.write(_event(request, alert, after or 0.0))
            if out:
                wrote = time.monotonic()
            elif time.monotonic() - wrote >= KEEPALIVE:
                await response.write(b": keep-alive\n\n")
                wrote = time.monotonic()
            await _pause(stop, POLL if healthy else RETRY_REDIS)
    return response


async def _alert_or_404(ctx: Page) -> AlertView | web.Response:
    found = await find_alert(ctx.state.client, ctx.request.match_info["id"])
    if found is None:
        return ctx.fail(404, "No such alert",
                        "It is not among the recent alerts (old deliveries expire).")
    return found


@page()
async def alert_page(ctx: Page) -> web.StreamResponse:
    """GET /console/alerts/{id}: one alert, with its actions for admins."""
    found = await _alert_or_404(ctx)
    if isinstance(found, web.Response):
        return found
    dead = [c for c, s in found.state.items() if s == "dead"]
    return ctx.render("alert.html", alert=found, dead=dead, mute_hours=f"{MUTE_FOR / 3600:g}")


@page(change=True)
async def alert_ack(ctx: Page) -> web.StreamResponse:
    """POST /console/alerts/{id}/ack."""
    found = await _alert_or_404(ctx)
    if isinstance(found, web.Response):
        return found
    await acknowledge(ctx.state.client, found.id, ctx.who.name,
                      ctx.form.get("comment", "").strip()[:1000])
    log.info("alert acknowledged", alert=found.id, by=ctx.who.name)
    return back(f"/console/alerts/{found.id}", "acked")


@page(change=True)
async def alert_mute(ctx: Page) -> web.StreamResponse:
    """POST /console/alerts/{id}/mute: silence its rule on its feed for `MUTE_FOR`."""
    found = await _alert_or_404(ctx)
    if isinstance(found, web.Response):
        return found
    comment = ctx.form.get("comment", "").strip() or f"muted from alert {found.id}"
    silence = new_silence([SilenceMatcher("rule", found.rule),
                           SilenceMatcher("feed", found.feed)],
                          ends_at=time.time() + MUTE_FOR, created_by=ctx.who.name,
                          comment=comment)
    await ctx.state.silences.add(silence)
    log.info("silence created", silence=silence.id, by=ctx.who.name, alert=found.id)
    return back(f"/console/alerts/{found.id}", "muted")


@page(change=True)
async def alert_retry(ctx: Page) -> web.StreamResponse:
    """POST /console/alerts/{id}/retry: queue its dead deliveries again."""
    found = await _alert_or_404(ctx)
    if isinstance(found, web.Response):
        return found
    dead = [found.deliveries[c] for c, s in found.state.items() if s == "dead"]
    count = await deliveries.requeue(ctx.state.client, dead) if dead else 0
    log.info("deliveries queued again from the console", alert=found.id, count=count,
             by=ctx.who.name)
    return back(f"/console/alerts/{found.id}", "retried" if count else "retry-none")


def add_routes(router: web.UrlDispatcher) -> None:
    """The wall's and alerts' routes."""
    router.add_get("/console/", wall_page)
    router.add_get("/console/wall/events", wall_events)
    router.add_get("/console/alerts/{id}", alert_page)
    router.add_post("/console/alerts/{id}/ack", alert_ack)
    router.add_post("/console/alerts/{id}/mute", alert_mute)
    router.add_post("/console/alerts/{id}/retry", alert_retry)

