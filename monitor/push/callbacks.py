"""The WebSub callback server: the aiohttp app on `websub.listen` that hubs call at
`callback_url/<token>` (the token names the subscription, `Subscriptions.by_token`).

A GET is a hub's verification of intent, or a denial: the challenge is echoed only for the
request pending for that topic on that callback, and the subscription updated in Redis
(verified with its lease, unsubscribed, or denied and asked for again after `DENIED_RETRY`).
A POST is a content distribution of an enabled feed: its body read (capped at
`defaults.max_body`, within `BODY_TIMEOUT`, at most `MAX_READING` at once), its signature
checked with the subscription's secret, and handed to the subscriber's `dispatch` as a
pushed body (signed), a plain poll (unsigned or empty) or nothing (wrongly signed); the hub
gets 202 at once either way. Redis unavailable is a 503.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import structlog
from aiohttp import web

from monitor.config.models import FeedSettings
from monitor.config.websub import WebSubSettings
from monitor.core.errors import StateError
from monitor.fetch.client import FetchResult
from monitor.ops import metrics
from monitor.push.signature import check
from monitor.push.store import Subscription, Subscriptions

log = structlog.get_logger("livewatch.websub")

#: A wrongly signed notification is logged at most once per feed in this many seconds.
FORGED_LOG_EVERY = 60.0
#: "Redis unavailable" from the callback handlers is logged at most once in this long.
STATE_LOG_EVERY = 60.0
#: Idle keep-alive connections are closed after this many seconds; a notification body not
#: read within `BODY_TIMEOUT` is answered 408; at most `MAX_READING` bodies are read at once
#: (503 with Retry-After beyond); shutdown is bounded.
KEEPALIVE_TIMEOUT = 15.0
BODY_TIMEOUT = 10.0
MAX_READING = 16
SHUTDOWN_TIMEOUT = 2.0
#: A granted lease is clamped to [MIN_LEASE, MAX_LEASE] seconds.
MIN_LEASE = 300.0
MAX_LEASE = 30 * 86400.0
#: A denied subscription is asked for again after this long.
DENIED_RETRY = 86400.0

_LEASE = re.compile(r"[0-9]{1,12}")


def granted_lease(value: str | None, *, floor: float = MIN_LEASE) -> float | None:
    """The lease a hub granted (`hub.lease_seconds`, a positive integer), clamped to
    [floor, MAX_LEASE]; None when absent or not such an integer (`inf`, `nan`, `-5`)."""
    if value is None or not _LEASE.fullmatch(value) or int(value) <= 0:
        return None
    return min(max(float(int(value)), floor), MAX_LEASE)


class CallbackServer:
    """The callback server of one `WebSubSubscriber`. It reads the subscriber's current
    configuration through `feed` (an enabled feed by name, else None) and `max_body`, and
    hands each notification to `dispatch(feed, pushed)`."""

    def __init__(self, settings: WebSubSettings, callback_base: str, store: Subscriptions, *,
                 feed: Callable[[str], FeedSettings | None], max_body: Callable[[], int],
                 dispatch: Callable[[str, FetchResult | None], Awaitable[None]],
                 min_lease: float = MIN_LEASE, body_timeout: float = BODY_TIMEOUT) -> None:
        """`min_lease` and `body_timeout` are for tests (short leases, slow bodies)."""
        self.settings = settings
        self.path = urlsplit(callback_base).path.rstrip("/")
        self.store = store
        self._feed = feed
        self._max_body = max_body
        self._dispatch = dispatch
        self.min_lease = min_lease
        self.body_timeout = body_timeout
        #: the slots of notification bodies being read
        self.reading = asyncio.Semaphore(MAX_READING)
        self._runner: web.AppRunner | None = None
        self._forged_logged: dict[str, float] = {}
        self._state_logged = -STATE_LOG_EVERY

    async def start(self) -> None:
        """Listen on `websub.listen` (nothing when unset); StateError when it cannot."""
        address = self.settings.address
        if address is None:
            return
        app = web.Application()
        app.router.add_get(self.path + "/{token}", self._verify)
        app.router.add_post(self.path + "/{token}", self._notify)
        self._runner = web.AppRunner(
            app, access_log=None, keepalive_timeout=KEEPALIVE_TIMEOUT,
            shutdown_timeout=SHUTDOWN_TIMEOUT, handler_cancellation=True)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, address[0], address[1]).start()
        except OSError as exc:
            await self.stop()
            raise StateError(f"cannot listen on {self.settings.listen}: {exc}") from exc
        log.info("websub callback server listening", listen=self.settings.listen)

    async def stop(self) -> None:
        """Close the server (requests in flight get `SHUTDOWN_TIMEOUT`)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _state_unavailable(self, message: str, exc: StateError) -> None:
        now = time.monotonic()
        if now - self._state_logged >= STATE_LOG_EVERY:
            self._state_logged = now
            log.warning(message, error=str(exc))

    async def _verify(self, request: web.Request) -> web.StreamResponse:
        """A hub's verification of intent (or denial): the challenge echoed, 200, only for
        the request we have pending for that topic on that callback; else 404."""
        query = request.query
        mode, topic = query.get("hub.mode"), query.get("hub.topic")
        try:
            sub = await self.store.by_token(request.match_info["token"])
            if sub is None or topic is None:
                return web.Response(status=404)
            if mode == "denied":  # only of the subscribe request we have pending
                if sub.requested != "subscribe" or topic != sub.topic:
                    return web.Response(status=404)
                log.warning("websub subscription denied by the hub", feed=sub.feed,
                            hub=sub.hub, reason=query.get("hub.reason", "")[:200],
                            retry_in_s=DENIED_RETRY)
                await self.store.update(sub.feed, {
                    "state": "denied", "requested": "",
                    "denied": query.get("hub.reason", "")[:500]},
                    due=time.time() + DENIED_RETRY)
                return web.Response(status=200)
            challenge = query.get("hub.challenge")
            if not challenge:
                return web.Response(status=404)
            if mode == "subscribe" and sub.requested == "subscribe" and topic == sub.topic:
                lease = granted_lease(query.get("hub.lease_seconds"), floor=self.min_lease)
                if lease is None:  # required, a positive integer
                    return web.Response(status=404)
                await self._verified(sub, lease)
            elif mode == "unsubscribe" and sub.requested == "unsubscribe" and topic == sub.topic:
                await self.store.remove(sub)
                log.info("websub unsubscribed", feed=sub.feed, hub=sub.hub)
            elif mode == "unsubscribe" and sub.old_topic and topic == sub.old_topic:
                await self.store.update(sub.feed, {"old_hub": "", "old_topic": ""})
            else:
                return web.Response(status=404)
        except StateError as exc:
            self._state_unavailable("websub verification not answered: state unavailable", exc)
            return web.Response(status=503)
        return web.Response(text=challenge, content_type="text/plain",
                            headers={"X-Content-Type-Options": "nosniff"})

    async def _verified(self, sub: Subscription, lease: float) -> None:
        now = time.time()
        renewed = sub.state == "verified"
        await self.store.update(sub.feed, {
            "state": "verified", "requested": "", "attempts": 0, "lease_seconds": lease,
            "lease_until": now + lease, "denied": ""}, due=now + self.settings.renew_after(lease))
        log.info("websub subscription renewed" if renewed else "websub subscription verified",
                 feed=sub.feed, hub=sub.hub, lease_s=lease)

    async def _notify(self, request: web.Request) -> web.StreamResponse:
        """A content distribution: answered at once (202); the poll runs as its own turn."""
        try:
            sub = await self.store.by_token(request.match_info["token"])
        except StateError as exc:
            self._state_unavailable("websub notification not taken: state unavailable", exc)
            return web.Response(status=503)
        feed = self._feed(sub.feed) if sub is not None else None
        if sub is None or feed is None:
            metrics.WEBSUB_NOTIFICATIONS.labels("unknown").inc()
            return web.Response(status=410)  # no such subscription: the hub may drop it
        if self.reading.locked():  # MAX_READING slow bodies at once already
            return web.Response(status=503, headers={"Retry-After": "10"})
        async with self.reading:
            try:
                async with asyncio.timeout(self.body_timeout):
                    body = await _read_capped(request, self._max_body())
            except TimeoutError:
                return web.Response(status=408, headers={"Connection": "close"})
        if body is None:
            return web.Response(status=413)
        verdict = check(request.headers.get("X-Hub-Signature"), sub.secret, body)
        if verdict == "forged":
            metrics.WEBSUB_NOTIFICATIONS.labels("forged").inc()
            now = time.monotonic()
            if now - self._forged_logged.get(feed.name, -FORGED_LOG_EVERY) >= FORGED_LOG_EVERY:
                self._forged_logged[feed.name] = now
                log.warning("websub notification with a wrong signature ignored",
                            feed=feed.name, peer=request.remote)
            return web.Response(status=202)
        pushed = None
        if verdict == "valid" and body:
            pushed = FetchResult(url=feed.url, status=200, body=body,
                                 content_type=request.headers.get("Content-Type"), etag=None,
                                 last_modified=None, not_modified=False, elapsed=0.0)
        metrics.WEBSUB_NOTIFICATIONS.labels("pushed" if pushed else "polled").inc()
        log.info("websub notification", feed=feed.name, pushed=pushed is not None,
                 bytes=len(body))
        await self._dispatch(feed.name, pushed)
        return web.Response(status=202)


async def _read_capped(request: web.Request, max_body: int) -> bytes | None:
    """The request body, or None once it is longer than `max_body` bytes."""
    if request.content_length is not None and request.content_length > max_body:
        return None
    body = bytearray()
    async for chunk in request.content.iter_any():
        body += chunk
        if len(body) > max_body:
            return None
    return bytes(body)
