"""WebSub subscriber: the subscription life cycle. Discover where a feed advertises a hub,
subscribe, renew leases, retry, unsubscribe removed feeds, and relay each notification to
the poller that holds the feed's lease. The HTTP side (hubs' verifications and
notifications) is `monitor.push.callbacks.CallbackServer`, which the subscriber owns.

Push is a hint: polling never stops. A notification signed with the subscription's secret
and carrying a body is diffed as if fetched (`FeedScheduler.poll_now(feed, pushed)`); an
unsigned or empty one makes the feed poll at once (a normal conditional fetch); a wrongly
signed one is answered 2xx and ignored. The process a notification reaches polls the feed
if it holds the feed's lease (or nobody does); else it publishes the feed's name on
`keys.PUSH_CHANNEL` and the poller holding the lease polls it.

State is in Redis (`monitor.push.store`), so restarts and every poller process share it: one
callback per feed (`callback_url/<token>`), a secret per subscription, renewals and retries
claimed by one process each.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import secrets
import time
from collections.abc import Coroutine
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError
from yarl import URL

from monitor.config.models import Config, FeedSettings
from monitor.core import keys
from monitor.core.errors import StateError
from monitor.fetch.client import FetchResult
from monitor.fetch.netpolicy import BlockedAddressError, NetworkPolicy, PolicyResolver
from monitor.ops import metrics
from monitor.poll.scheduler import FeedScheduler

# the callback server's limits and lease parsing, re-exported (tests read them here)
from monitor.push.callbacks import BODY_TIMEOUT as BODY_TIMEOUT
from monitor.push.callbacks import DENIED_RETRY as DENIED_RETRY
from monitor.push.callbacks import MAX_LEASE as MAX_LEASE
from monitor.push.callbacks import MAX_READING as MAX_READING
from monitor.push.callbacks import MIN_LEASE as MIN_LEASE
from monitor.push.callbacks import CallbackServer
from monitor.push.callbacks import granted_lease as granted_lease
from monitor.push.discovery import Advert, discover
from monitor.push.store import Subscription, Subscriptions

log = structlog.get_logger("livewatch.websub")

#: How often due renewals and retries are looked for (seconds).
TICK = 0.5
#: A request the hub accepted but has not verified within this long is sent again.
VERIFY_WAIT = 300.0
#: Backoff of failed requests: the first retry after this many seconds, doubling, capped.
RETRY_FIRST = 2.0
RETRY_MAX = 3600.0
#: Unsubscribe requests sent before a subscription is forgotten anyway (its lease then ends).
UNSUBSCRIBE_ATTEMPTS = 5
#: Consecutive fetches with a body and no hub advertised before a feed is unsubscribed.
NO_HUB_FETCHES = 3

_UNSEEN = object()


def may_send_secret(hub: str, policy: NetworkPolicy) -> bool:
    """Whether `hub.secret` may go to `hub`: over https, or over http to a loopback or
    private address (literal, or `localhost`) the network policy allows."""
    url = urlsplit(hub)
    if url.scheme == "https":
        return True
    host = (url.hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        private = True
    else:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        private = address.is_loopback or address.is_private
    return private and policy.allow_private


def backoff(attempts: int) -> float:
    """Seconds before retry number `attempts` (1, 2, …) of a failed request."""
    return float(min(RETRY_FIRST * 2 ** max(attempts - 1, 0), RETRY_MAX))


class WebSubSubscriber:
    """Push for one poller process: `on_fetched` discovers hubs, `callbacks` (listening when
    `websub.listen` is set) takes verifications and notifications, a background loop renews
    and retries, a Redis subscription relays notifications to the feed's lease holder."""

    def __init__(self, config: Config, client: aioredis.Redis, scheduler: FeedScheduler, *,
                 min_lease: float = MIN_LEASE, body_timeout: float = BODY_TIMEOUT) -> None:
        """`min_lease` and `body_timeout` (the callback server's) are for tests (short
        leases, slow bodies)."""
        if config.websub.callback_url is None:
            raise ValueError("WebSub needs websub.callback_url")
        self.config = config
        self.settings = config.websub  # read once: a change needs a restart
        self.callback_base = config.websub.callback_url.rstrip("/")
        self.client = client
        self.store = Subscriptions(client)
        self.scheduler = scheduler
        self._policy = NetworkPolicy.of(config.fetch.allow_private_networks,
                                        config.fetch.allow_hosts)
        self._adverts: dict[str, object] = {}  # feed -> last Advert | None seen on a fetch
        # feed -> its last body hash, Link and what they advertise
        self._seen: dict[str, tuple[str, str | None, Advert | None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self._stop = asyncio.Event()
        self._gate = asyncio.Semaphore(16)
        self._no_hub: dict[str, int] = {}  # feed -> consecutive fetches without a hub
        self._plain_warned: set[str] = set()  # http hubs told the secret (warned once)
        self.callbacks = CallbackServer(
            self.settings, self.callback_base, self.store, feed=self._feed,
            max_body=lambda: self.config.defaults.max_body, dispatch=self._dispatch,
            min_lease=min_lease, body_timeout=body_timeout)

    @property
    def _reading(self) -> asyncio.Semaphore:
        """The callback server's body-reading slots (tests watch them fill)."""
        return self.callbacks.reading

    # ---- life cycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Open the hub session, the callback server (if `listen`) and the background loops;
        subscriptions of feeds no longer configured are queued for unsubscribing."""
        resolver = None if self._policy.allow_private else PolicyResolver(self._policy)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=16, resolver=resolver),
            cookie_jar=aiohttp.DummyCookieJar(), trust_env=False,
            headers={"User-Agent": self.config.defaults.user_agent},
            timeout=aiohttp.ClientTimeout(total=self.config.defaults.timeout))
        try:
            await self.callbacks.start()
        except StateError:  # cannot listen
            await self.stop()
            raise
        self._loops = [asyncio.create_task(self._maintain()), asyncio.create_task(self._relayed())]
        with contextlib.suppress(StateError):
            await self._queue_removed(self.config)

    async def stop(self) -> None:
        """Stop the loops and the server (subscriptions stay: a restart goes on with them)."""
        self._stop.set()
        for task in [*self._loops, *self._tasks]:
            task.cancel()
        for task in [*self._loops, *self._tasks]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.callbacks.stop()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def reconcile(self, config: Config) -> None:
        """Take a reloaded configuration: feeds removed or disabled are unsubscribed."""
        if config.websub != self.settings:
            log.warning("websub settings change only on restart; running values kept")
        self.config = config
        enabled = {f.name for f in config.feeds if f.enabled}
        for name in list(self._adverts):
            if name not in enabled:
                del self._adverts[name]
                self._seen.pop(name, None)
                self._no_hub.pop(name, None)
        await self._queue_removed(config)

    async def _queue_removed(self, config: Config) -> None:
        enabled = {f.name for f in config.feeds if f.enabled}
        for feed in await self.store.feeds():
            if feed not in enabled:
                await self.store.schedule(feed, 0)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _feed(self, name: str) -> FeedSettings | None:
        for feed in self.config.feeds:
            if feed.name == name and feed.enabled:
                return feed
        return None

    # ---- discovery and subscribing ---------------------------------------------------------

    def on_fetched(self, feed: FeedSettings, result: FetchResult) -> None:
        """`Poller.on_fetched`: look for a hub (Link header, the body's head); when what the
        feed advertises changed since its last fetch, (re)subscribe in the background."""
        seen = (result.body_hash, result.link_header)
        last = self._seen.get(feed.name)
        if last is not None and last[:2] == seen:  # the same document as last time
            advert = last[2]
        else:
            advert = discover(feed.url, result.link_header, result.body)
            self._seen[feed.name] = (*seen, advert)
        if advert is None:
            # one fetch without the hub (a truncated page, a flaky CDN) is not enough
            misses = self._no_hub[feed.name] = self._no_hub.get(feed.name, 0) + 1
            if misses < NO_HUB_FETCHES:
                return
        self._no_hub.pop(feed.name, None)
        if self._adverts.get(feed.name, _UNSEEN) == advert or self._stop.is_set():
            return
        self._adverts[feed.name] = advert
        self._spawn(self._advertised(feed.name, advert))

    async def _advertised(self, feed: str, advert: Advert | None) -> None:
        try:
            sub = await self.store.get(feed)
            if advert is None:
                if sub is not None and sub.state != "unsubscribing":
                    log.info("feed no longer advertises a hub; unsubscribing", feed=feed,
                             hub=sub.hub)
                    await self._unsubscribe(sub)
                return
            if sub is not None and (sub.hub, sub.topic) == (advert.hub, advert.topic) \
                    and sub.state != "unsubscribing":
                # subscribed, asked, denied or being retried: the loop has it (and always
                # a due entry: one lost is put back)
                due = time.time() + VERIFY_WAIT
                if sub.state == "verified":
                    renew = sub.lease_until - sub.lease_seconds + \
                        self.settings.renew_after(sub.lease_seconds)
                    due = max(time.time(), min(renew, sub.lease_until))
                await self.store.schedule_if_absent(feed, due)
                return
            await self._subscribe(feed, advert, sub)
        except StateError as exc:
            self._adverts.pop(feed, None)  # try again on the next fetch
            self._seen.pop(feed, None)
            self._no_hub.pop(feed, None)
            log.warning("websub state unavailable", feed=feed, error=str(exc))

    async def _subscribe(self, feed: str, advert: Advert, sub: Subscription | None) -> None:
        """Ask `advert.hub` for the feed (a new subscription, a renewal or a retry)."""
        same = sub is not None and (sub.hub, sub.topic) == (advert.hub, advert.topic)
        if sub is not None and same:
            new = replace(sub, requested="subscribe",
                          state="verified" if sub.state == "verified" else "pending")
        else:
            old_hub = old_topic = ""
            if sub is not None and sub.state in ("verified", "pending"):
                old_hub, old_topic = sub.hub, sub.topic
            new = Subscription(
                feed=feed, hub=advert.hub, topic=advert.topic,
                token=sub.token if sub is not None else secrets.token_urlsafe(24),
                secret=secrets.token_hex(32), state="pending", requested="subscribe",
                old_hub=old_hub, old_topic=old_topic)
            if old_hub:
                log.info("websub hub or topic changed; subscribing anew", feed=feed,
                         hub=advert.hub, topic=advert.topic, old_hub=old_hub)
        # Saved first: a hub may verify before it answers the request.
        if sub is None:  # created only if no other poller did meanwhile (then reused)
            stored = await self.store.create(new, due=time.time() + VERIFY_WAIT)
            if stored.secret != new.secret:
                if (stored.hub, stored.topic) == (new.hub, new.topic):
                    return  # the other poller's request is under way
                new = replace(new, token=stored.token, secret=stored.secret)
                await self.store.save(new, due=time.time() + VERIFY_WAIT)
        else:
            await self.store.save(new, due=time.time() + VERIFY_WAIT)
        if new.old_hub and (sub is None or sub.old_hub != new.old_hub):
            await self._request(new.old_hub, "unsubscribe", new.old_topic, new)
        if not await self._request(new.hub, "subscribe", new.topic, new):
            await self._failed(new)
            return
        now = await self.store.get(feed)
        if now is not None and now.requested == "subscribe":  # not verified yet
            wait = VERIFY_WAIT
            if now.state == "verified":  # a renewal: ask again well before the lease ends
                wait = min(wait, max((now.lease_until - time.time()) / 2, 1.0))
            await self.store.schedule(feed, time.time() + wait)

    async def _unsubscribe(self, sub: Subscription) -> None:
        new = replace(sub, state="unsubscribing", requested="unsubscribe")
        await self.store.save(new, due=time.time() + VERIFY_WAIT)
        if await self._request(sub.hub, "unsubscribe", sub.topic, new):
            log.info("websub unsubscribe requested", feed=sub.feed, hub=sub.hub)
        else:
            await self._failed(new)

    async def _failed(self, sub: Subscription) -> None:
        attempts = sub.attempts + 1
        if sub.state == "unsubscribing" and attempts >= UNSUBSCRIBE_ATTEMPTS:
            log.warning("websub unsubscribe not accepted; forgetting the subscription",
                        feed=sub.feed, hub=sub.hub, attempts=attempts)
            await self.store.remove(sub)
            return
        delay = backoff(attempts)
        await self.store.update(sub.feed, {"attempts": attempts}, due=time.time() + delay)
        log.info("websub request will be retried", feed=sub.feed, hub=sub.hub,
                 mode=sub.requested, attempts=attempts, retry_in_s=delay)

    async def _request(self, hub: str, mode: str, topic: str, sub: Subscription) -> bool:
        """POST a (un)subscription request to `hub`; True when it answered 2xx. A 307 or 308
        is followed once (the same checks on its Location)."""
        form = {"hub.mode": mode, "hub.topic": topic, "hub.callback": self.callback(sub)}
        if mode == "subscribe":
            form["hub.lease_seconds"] = str(int(self.settings.lease))
        assert self._session is not None
        try:
            url = URL(hub)
            for hop in range(2):
                self._policy.check_literal(url.host or "")
                if mode == "subscribe":
                    self._add_secret(form, str(url), sub)
                async with self._gate, self._session.post(url, data=form,
                                                          allow_redirects=False) as response:
                    status = response.status
                    location = response.headers.get("Location")
                if status not in (307, 308) or not location or hop:
                    break
                url = url.join(URL(location))
                if url.scheme not in ("http", "https"):
                    break
        except (aiohttp.ClientError, OSError, TimeoutError, BlockedAddressError,
                ValueError) as exc:
            metrics.WEBSUB_REQUESTS.labels(mode, "failed").inc()
            log.warning("websub request failed", feed=sub.feed, hub=hub, mode=mode,
                        error=f"{type(exc).__name__}: {exc}"[:200])
            return False
        accepted = 200 <= status < 300
        metrics.WEBSUB_REQUESTS.labels(mode, "accepted" if accepted else "failed").inc()
        if not accepted:
            log.warning("websub request refused", feed=sub.feed, hub=hub, mode=mode,
                        status=status)
        return accepted

    def _add_secret(self, form: dict[str, str], hub: str, sub: Subscription) -> None:
        """`hub.secret` only where it does not cross the network in clear text."""
        if may_send_secret(hub, self._policy):
            form["hub.secret"] = sub.secret
            if hub.startswith("http:") and hub not in self._plain_warned:
                self._plain_warned.add(hub)
                log.warning("websub secret sent over plain http to a local hub", hub=hub)
        else:
            form.pop("hub.secret", None)
            if hub not in self._plain_warned:
                self._plain_warned.add(hub)
                log.warning("websub hub over plain http: no secret sent, notifications "
                            "taken as unsigned (a poll)", hub=hub)

    def callback(self, sub: Subscription) -> str:
        """The feed's callback URL (an opaque token, not its name)."""
        return f"{self.callback_base}/{sub.token}"

    # ---- renewals, retries, removals -----------------------------------------------------

    async def _maintain(self) -> None:
        while not self._stop.is_set():
            try:
                now = time.time()
                for feed in await self.store.due(now):
                    if await self.store.claim(feed, now):
                        self._spawn(self._due(feed))
            except StateError as exc:
                log.debug("websub maintenance skipped", error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), TICK)

    async def _due(self, feed: str) -> None:
        try:
            sub = await self.store.get(feed)
            if sub is None:
                await self.store.unschedule(feed)
                return
            if self._feed(feed) is None:
                if sub.state != "unsubscribing":
                    log.info("feed removed or disabled; unsubscribing", feed=feed, hub=sub.hub)
                    await self._unsubscribe(replace(sub, attempts=0))
                elif sub.attempts + 1 >= UNSUBSCRIBE_ATTEMPTS:
                    await self._failed(sub)  # gives up: the hub's lease ends by itself
                else:  # not verified in time: ask again
                    await self._unsubscribe(replace(sub, attempts=sub.attempts + 1))
            else:  # a renewal, a retry (a denial's too), or a feed configured again while
                # unsubscribing
                await self._subscribe(feed, Advert(sub.hub, sub.topic), sub)
        except StateError as exc:
            log.warning("websub state unavailable", feed=feed, error=str(exc))
            with contextlib.suppress(StateError):
                await self.store.schedule(feed, time.time() + RETRY_FIRST)

    # ---- the relay to the lease holder ----------------------------------------------------

    def _poke(self, feed: str, pushed: FetchResult | None = None, *,
              only_if_held: bool = False) -> bool:
        """`poll_now` (a turn running now is followed by another: the scheduler's)."""
        return self.scheduler.poll_now(feed, pushed, only_if_held=only_if_held)

    async def _dispatch(self, feed: str, pushed: FetchResult | None) -> None:
        """Poll `feed` here if this poller holds its lease, or nobody does; else have the
        holder poll it (pub/sub: it fetches, the pushed body stays here)."""
        if self._poke(feed, pushed, only_if_held=True):
            return
        try:
            holder = await self.scheduler.leases.holder(feed)
        except (StateError, RedisError, OSError):
            holder = None
        if (holder is None or holder[0] == self.scheduler.leases.owner) \
                and self._poke(feed, pushed):
            return
        try:
            await self.client.publish(keys.PUSH_CHANNEL, feed)
            metrics.WEBSUB_RELAYED.inc()
        except (RedisError, OSError) as exc:
            log.warning("websub notification not relayed", feed=feed, error=str(exc))

    async def _poll_if_holder(self, feed: str) -> None:
        """A relayed notification: poll `feed` if this poller holds its lease (from its last
        turn, or in Redis: a lease kept only until a hand-over is not held in memory)."""
        if self._poke(feed, only_if_held=True):
            return
        with contextlib.suppress(StateError, RedisError, OSError):
            holder = await self.scheduler.leases.holder(feed)
            if holder is not None and holder[0] == self.scheduler.leases.owner:
                self._poke(feed)

    async def _relayed(self) -> None:
        """Poll the feeds other processes relay, when this one holds their lease."""
        while not self._stop.is_set():
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(keys.PUSH_CHANNEL)
                while not self._stop.is_set():
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        data = message["data"]
                        name = data.decode() if isinstance(data, bytes) else str(data)
                        await self._poll_if_holder(name)
            except (RedisError, OSError) as exc:
                log.debug("websub relay subscription lost", error=str(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), 1.0)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
