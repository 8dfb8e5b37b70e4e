"""The console's pages over a real console server (`run_console` on 127.0.0.1) and a private
redis-server; alerts are produced as the service makes them: entries committed with FeedState,
a Consumer run until empty, webhook deliveries to a local receiver.

The helpers here (`console_config`, `serving`, `produce`, `sign_in`) are shared with
`test_browser.py`.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr
from servers import FeedServer, WebhookReceiver
from service import baselined, commit, run_until_empty, wait_until
from structlog.testing import capture_logs

from monitor.config.loader import parse_config
from monitor.config.models import Config
from monitor.core import keys
from monitor.core.models import Entry
from monitor.ops.embedded import free_port
from monitor.poll.diff import diff_entries
from monitor.poll.role import make_state
from workers.channels import ChannelSet
from workers.console import wall
from workers.console.alerts import AlertView
from workers.console.api import SESSION_COOKIE
from workers.console.auth import LOGIN_LIMIT, Auth, client_address
from workers.console.server import run_console
from workers.console.wall import WallTracker
from workers.consume.consumer import Consumer
from workers.outbox import deliveries
from workers.outbox.silences import SilenceMatcher, Silences, new_silence

FEED_URL = "https://news.example.org/live/summit"
MATCHING = "Ministers say a coalition of the willing is taking shape."
ADMIN = "admin-token-0123456789"
READER = "read-token-0123456789"
KEY = "k" * 40


def console_config(hook: WebhookReceiver, *, public_url: str | None = None) -> Config:
    """One feed, one rule, one webhook channel; a console with an admin and a read token."""
    public = f'\n  public_url: "{public_url}"' if public_url else ""
    return parse_config(f"""
redis: {{url: "redis://127.0.0.1:1/0"}}
feeds:
  - {{name: summit, url: "{FEED_URL}"}}
  - {{name: quiet, url: "https://news.example.org/quiet"}}
rules:
  - name: coalition
    any: ["coalition of the willing"]
    none: ["football"]
    channels: [hook]
channels:
  - {{name: hook, type: webhook, url: "{hook.url('/alerts')}", secret: "s3cret"}}
workers: {{retry_schedule: [10ms], retry_jitter: 0}}
console:
  listen: "127.0.0.1:{free_port()}"{public}
  signing_key: "{KEY}"
  tokens:
    - {{name: alice, token: "{ADMIN}", scope: admin}}
    - {{name: reader, token: "{READER}", scope: read}}
""")


def base_of(config: Config) -> str:
    """Where the test reaches the console (its listen address, whatever public_url says)."""
    return f"http://{config.console.listen}"


async def _listening(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


@asynccontextmanager
async def serving(config: Config, client: aioredis.Redis) -> AsyncIterator[str]:
    """`run_console` until the block ends; yields the base URL."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_console(config, client, stop))
    address = config.console.address
    assert address is not None

    async def up() -> bool:
        if task.done():
            task.result()  # raises what stopped it
        return await _listening(address[1])

    await wait_until(up, timeout=10, what="the console listening")
    try:
        yield base_of(config)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def produce(client: aioredis.Redis, config: Config, http: httpx.AsyncClient, *,
                  entry_id: str, title: str = "Summit live", text: str = MATCHING,
                  url: str | None = None) -> None:
    """A new matching entry committed as a poll would, then a worker run until empty: the
    rule's deliveries are queued (and sent to the receiver)."""
    state = make_state(config, client)
    if not await baselined(client, "summit"):
        await commit(state, "summit", FEED_URL, [], baseline=True)
    entry = Entry(id=entry_id, url=url if url is not None else f"{FEED_URL}#{entry_id}",
                  title=title, text=text)
    applied = await commit(state, "summit", FEED_URL, diff_entries({}, [entry], baseline=False),
                           baseline=False, body_hash=entry_id)
    assert applied.appended == 1
    consumer = Consumer(config, client, ChannelSet(http).update(config.channels), name="w1")
    await run_until_empty(consumer)


async def sign_in(base: str, token: str) -> str:
    """The session cookie's value after signing in with `token`."""
    async with httpx.AsyncClient(base_url=base) as web:
        answer = await web.post("/console/login", data={"token": token})
    assert answer.status_code == 303, answer.text
    return answer.cookies[SESSION_COOKIE]


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field in the page"
    return found.group(1)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def config(webhook_receiver: WebhookReceiver) -> Config:
    return console_config(webhook_receiver)


@pytest.fixture
async def console(config: Config, redis_client: aioredis.Redis) -> AsyncIterator[str]:
    async with serving(config, redis_client) as base:
        yield base


@asynccontextmanager
async def browser_like(base: str, token: str | None = ADMIN) -> AsyncIterator[httpx.AsyncClient]:
    """A client with a session (signed in with `token`; None: not signed in)."""
    cookies = {SESSION_COOKIE: await sign_in(base, token)} if token else {}
    async with httpx.AsyncClient(base_url=base, cookies=cookies) as client:
        yield client


# --- signing in ---------------------------------------------------------------------------

async def test_sign_in_sets_a_strict_http_only_session_cookie(console: str) -> None:
    async with httpx.AsyncClient(base_url=console) as web:
        form = await web.get("/console/login")
        assert form.status_code == 200
        assert '<label for="token">' in form.text and 'id="token"' in form.text
        with capture_logs() as logs:
            answer = await web.post("/console/login",
                                    data={"token": ADMIN, "next": "/console/feeds"})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/feeds"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    flags = {part.strip().split("=")[0].lower(): part for part in cookie.split(";")[1:]}
    assert "httponly" in flags and "secure" not in flags
    assert flags["samesite"].strip() == "SameSite=Strict"
    assert flags["path"].strip() == "Path=/"
    assert flags["max-age"].strip() == "Max-Age=43200"
    assert ADMIN not in json.dumps(logs)
    async with httpx.AsyncClient(base_url=console,
                                 cookies={SESSION_COOKIE: answer.cookies[SESSION_COOKIE]}) as web:
        wall = await web.get("/console/")
    assert wall.status_code == 200 and "<h1>Alerts</h1>" in wall.text
    assert "alice" in wall.text


async def test_cookie_is_secure_behind_https(webhook_receiver: WebhookReceiver,
                                             redis_client: aioredis.Redis) -> None:
    config = console_config(webhook_receiver, public_url="https://console.example.org")
    async with serving(config, redis_client) as base, httpx.AsyncClient(base_url=base) as web:
        answer = await web.post("/console/login", data={"token": ADMIN})
    assert answer.status_code == 303
    assert "secure" in answer.headers["set-cookie"].lower()


async def test_sign_in_from_another_site_is_refused(console: str) -> None:
    async with httpx.AsyncClient(base_url=console) as web:
        for site in ("cross-site", "same-site"):
            answer = await web.post("/console/login", data={"token": ADMIN},
                                    headers={"Sec-Fetch-Site": site})
            assert answer.status_code == 403 and "set-cookie" not in answer.headers


async def test_next_goes_only_to_console_pages(console: str) -> None:
    async with httpx.AsyncClient(base_url=console) as web:
        for target in ("https://evil.example/", "//evil.example/", "/api/v1/feeds"):
            answer = await web.post("/console/login", data={"token": ADMIN, "next": target})
            assert answer.headers["location"] == "/console/"


async def test_wrong_token_is_401_then_429_past_the_limit(console: str,
                                                          redis_client: aioredis.Redis) -> None:
    async with httpx.AsyncClient(base_url=console) as web:
        with capture_logs() as logs:
            for _ in range(LOGIN_LIMIT):
                answer = await web.post("/console/login", data={"token": "wrong-token-000000"})
                assert answer.status_code == 401
                assert "That token is not valid." in answer.text
                assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")
            # past the limit the right token is not even checked
            limited = await web.post("/console/login", data={"token": ADMIN})
    assert limited.status_code == 429
    assert SESSION_COOKIE not in limited.headers.get("set-cookie", "")
    assert "wrong-token-000000" not in json.dumps(logs) and ADMIN not in json.dumps(logs)
    assert int(await redis_client.get(keys.login_failures("127.0.0.1")) or 0) == LOGIN_LIMIT


async def test_logout_clears_the_cookie(console: str) -> None:
    async with browser_like(console) as web:
        page = await web.get("/console/")
        without = await web.post("/console/logout")
        assert without.status_code == 403
        answer = await web.post("/console/logout", data={"csrf": csrf_of(page.text)})
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/console/login")
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f'{SESSION_COOKIE}=""') and "Max-Age=0" in cookie


@pytest.mark.parametrize("path", ["/console/", "/console/feeds", "/console/feeds/summit",
                                  "/console/rules", "/console/deliveries", "/console/silences",
                                  "/console/alerts/lw_x", "/console/wall/events"])
async def test_pages_need_a_session(console: str, path: str) -> None:
    for cookie in (b"", b"lw_session=forged.cookie", "lw_session=é.ü".encode()):
        async with httpx.AsyncClient(base_url=console) as web:
            answer = await web.get(path, headers={"Cookie": cookie} if cookie else {})
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/console/login?next=")


async def test_unknown_console_paths_are_the_console_404(console: str) -> None:
    async with browser_like(console, READER) as web:
        page = await web.get("/console/nothing/here")
        static = await web.get("/console/static/nothing.css")
        posted = await web.post("/console/nothing")
    assert page.status_code == 404 and "There is no such page" in page.text
    assert "reader" in page.text  # the signed-in frame
    assert static.status_code == 404 and posted.status_code == 404


async def test_rule_test_reads_a_url(console: str, feed_server: FeedServer) -> None:
    feed_server.set("/feed.xml", """<?xml version="1.0"?>
<rss version="2.0"><channel><title>Live</title><link>https://example.org/</link>
<item><guid>a</guid><title>Markets</title><description>Shares rose.</description></item>
<item><guid>b</guid><title>Summit</title>
  <description>A coalition of the willing formed.</description></item>
</channel></rss>""")
    async with browser_like(console, READER) as web:
        csrf = csrf_of((await web.get("/console/rules")).text)
        answer = await web.post("/console/rules/test", data={
            "csrf": csrf, "rule": "coalition", "url": feed_server.url("/feed.xml")})
        broken = await web.post("/console/rules/test", data={
            "csrf": csrf, "rule": "coalition", "url": feed_server.url("/missing.xml")})
    assert answer.status_code == 200, answer.text
    assert '<p class="verdict match">MATCH</p>' in answer.text
    assert "✗ Markets" in answer.text and "✓ Summit" in answer.text
    assert broken.status_code == 400 and "Cannot read" in broken.text


async def test_static_files_and_login_need_no_session(console: str) -> None:
    async with httpx.AsyncClient(base_url=console) as web:
        css = await web.get("/console/static/console.css")
        js = await web.get("/console/static/console.js")
        login = await web.get("/console/login")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert "default-src 'self'" in login.headers["content-security-policy"]
    assert "<script>" not in login.text and "style=" not in login.text


# --- CSRF and scopes --------------------------------------------------------------------

async def test_change_needs_the_session_csrf_token(console: str,
                                                   redis_client: aioredis.Redis) -> None:
    fields = {"rule": "coalition", "duration": "1h", "comment": "maintenance"}
    async with browser_like(console) as web:
        page = await web.get("/console/silences")
        assert 'action="/console/silences"' in page.text
        missing = await web.post("/console/silences", data=fields)
        wrong = await web.post("/console/silences", data={**fields, "csrf": "0" * 32})
        assert missing.status_code == wrong.status_code == 403
        assert await Silences(redis_client).all() == []
        done = await web.post("/console/silences", data={**fields, "csrf": csrf_of(page.text)})
    assert done.status_code == 303
    (silence,) = await Silences(redis_client).all()
    assert silence.created_by == "alice" and silence.comment == "maintenance"
    assert [(m.name, m.value) for m in silence.matchers] == [("rule", "coalition")]
    assert 3500 < silence.ends_at - time.time() <= 3600


async def test_csrf_token_of_another_session_is_refused(console: str,
                                                        redis_client: aioredis.Redis) -> None:
    async with browser_like(console, READER) as other:
        foreign = csrf_of((await other.get("/console/")).text)
    async with browser_like(console) as web:
        answer = await web.post("/console/silences", data={
            "rule": "x", "comment": "y", "csrf": foreign})
    assert answer.status_code == 403
    assert await Silences(redis_client).all() == []


async def test_read_token_sees_no_change_buttons_and_cannot_change(
        console: str, redis_client: aioredis.Redis, config: Config,
        http: httpx.AsyncClient, webhook_receiver: WebhookReceiver) -> None:
    webhook_receiver.responder = lambda _: (400, {})
    await produce(redis_client, config, http, entry_id="e1")
    (dead,) = await deliveries.dead(redis_client)
    async with browser_like(console, READER) as web:
        silences = await web.get("/console/silences")
        assert silences.status_code == 200 and "Create silence" not in silences.text
        listing = await web.get("/console/deliveries")
        assert dead.id in listing.text and "/retry" not in listing.text
        wall = await web.get("/console/")
        alert_id = re.search(r'data-alert-id="([^"]+)"', wall.text).group(1)  # type: ignore[union-attr]
        alert = await web.get(f"/console/alerts/{alert_id}")
        assert alert.status_code == 200 and "/ack" not in alert.text and "/mute" not in alert.text
        csrf = csrf_of(silences.text)
        for path, data in [("/console/silences", {"rule": "x", "comment": "y"}),
                           (f"/console/deliveries/{dead.id}/retry", {}),
                           (f"/console/alerts/{alert_id}/ack", {}),
                           (f"/console/alerts/{alert_id}/mute", {})]:
            answer = await web.post(path, data={**data, "csrf": csrf})
            assert answer.status_code == 403, path
            assert "may only read" in answer.text
        # a rule test changes nothing: read tokens may run it
        test = await web.post("/console/rules/test", data={
            "csrf": csrf, "rule": "coalition", "text": MATCHING})
    assert test.status_code == 200 and "MATCH" in test.text
    assert await Silences(redis_client).all() == []
    assert [d.id for d in await deliveries.dead(redis_client)] == [dead.id]


# --- one-click links --------------------------------------------------------------------

async def test_one_click_link_confirms_before_muting(console: str, config: Config,
                                                     redis_client: aioredis.Redis) -> None:
    auth = Auth(config.console)
    token = auth.link("mute", {"rule": "coalition", "feed": "summit", "for": "3600",
                               "channel": "hook"})
    async with httpx.AsyncClient(base_url=console) as web:  # no sign-in: the link is enough
        shown = await web.get("/console/act", params={"t": token})
        head = await web.head("/console/act", params={"t": token})
        assert shown.status_code == 200 and head.status_code == 200
        assert "Mute rule coalition on feed summit for 1 h" in shown.text
        assert await Silences(redis_client).all() == []  # opening it changes nothing
        refused = await web.post("/console/act", data={"t": token, "csrf": "0" * 32})
        assert refused.status_code == 403
        assert await Silences(redis_client).all() == []
        done = await web.post("/console/act", data={"t": token, "csrf": csrf_of(shown.text)})
    assert done.status_code == 200 and "is active" in done.text
    (silence,) = await Silences(redis_client).all()
    assert {(m.name, m.value) for m in silence.matchers} == {("rule", "coalition"),
                                                             ("feed", "summit")}
    assert silence.created_by == "one-click link (hook)"


async def test_expired_or_forged_links_are_refused(console: str, config: Config,
                                                   redis_client: aioredis.Redis) -> None:
    auth = Auth(config.console)
    params = {"rule": "coalition", "feed": "summit", "for": "3600", "channel": "hook"}
    expired = auth.link("mute", params, now=time.time() - 2 * config.console.link_ttl)
    genuine = auth.link("mute", params)
    body, signature = genuine.rsplit(".", 1)
    forged = f"{body}.{signature[:-2]}AA"
    other_key = Auth(config.console.model_copy(
        update={"signing_key": SecretStr("z" * 40)})).link("mute", params)
    async with httpx.AsyncClient(base_url=console) as web:
        gone = await web.get("/console/act", params={"t": expired})
        assert gone.status_code == 410 and "expired" in gone.text
        gone_post = await web.post("/console/act", data={
            "t": expired, "csrf": auth.csrf("link:" + expired)})
        assert gone_post.status_code == 410
        for bad in (forged, other_key, "garbage", "", "é.é"):
            answer = await web.get("/console/act", params={"t": bad})
            assert answer.status_code == 400, bad
            assert "not valid" in answer.text
            posted = await web.post("/console/act", data={"t": bad, "csrf": "x"})
            assert posted.status_code == 400
    assert await Silences(redis_client).all() == []


# --- what the pages show ----------------------------------------------------------------

async def test_templates_escape_a_hostile_entry(console: str, config: Config,
                                                redis_client: aioredis.Redis,
                                                http: httpx.AsyncClient) -> None:
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    await produce(redis_client, config, http, entry_id="e-hostile", title=hostile,
                  text=MATCHING + ' <script>alert("text")</script>', url="javascript:alert(1)")
    async with browser_like(console) as web:
        pages = [await web.get(p) for p in ("/console/", "/console/feeds/summit",
                                            "/console/deliveries")]
        alert_id = re.search(r'data-alert-id="([^"]+)"', pages[0].text).group(1)  # type: ignore[union-attr]
        pages.append(await web.get(f"/console/alerts/{alert_id}"))
    for page in pages:
        assert page.status_code == 200
        assert "<script>alert" not in page.text and "<img src=x" not in page.text
        assert "javascript:" not in page.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in pages[0].text


async def test_wall_lists_alerts_with_their_channel_state(
        console: str, config: Config, redis_client: aioredis.Redis,
        http: httpx.AsyncClient) -> None:
    await produce(redis_client, config, http, entry_id="e1", title="Coalition forms")
    async with browser_like(console) as web:
        wall = await web.get("/console/")
    assert "Coalition forms" in wall.text and f'href="{FEED_URL}#e1"' in wall.text
    assert "hook: delivered" in wall.text and "coalition" in wall.text
    silence = new_silence([SilenceMatcher("feed", "sum*")], ends_at=time.time() + 60,
                          created_by="alice", comment="quiet please")
    await Silences(redis_client).add(silence)
    await produce(redis_client, config, http, entry_id="e2", title="Coalition holds")
    async with browser_like(console) as web:
        wall = await web.get("/console/")
    first, second = wall.text.split('<li class="alert')[1:3]
    assert "Coalition holds" in first and "hook: silenced" in first
    assert f'href="/console/silences#s-{silence.id}">{silence.id[:8]}</a>' in first
    assert "Coalition forms" in second and "Silenced" not in second


async def _next_alert(lines: AsyncIterator[str]) -> dict[str, str]:
    """The next `alert` event's fields (id, data)."""
    event: dict[str, str] = {}
    async for line in lines:
        if line.startswith("event: "):
            event = {"event": line[7:]}
        elif line.startswith(("id: ", "data: ")):
            name, value = line.split(": ", 1)
            event[name] = value
        elif not line and event.get("event") == "alert":
            return event
    raise AssertionError("the stream ended")


async def test_wall_events_stream_new_alerts_and_end_with_the_server(
        webhook_receiver: WebhookReceiver, redis_client: aioredis.Redis,
        http: httpx.AsyncClient) -> None:
    config = console_config(webhook_receiver)
    async with AsyncExitStack() as server:
        base = await server.enter_async_context(serving(config, redis_client))
        cookie = await sign_in(base, ADMIN)
        async with httpx.AsyncClient(base_url=base, cookies={SESSION_COOKIE: cookie},
                                     timeout=10) as web, \
                web.stream("GET", "/console/wall/events", params={"after": "0"}) as sse:
            assert sse.headers["content-type"].startswith("text/event-stream")
            lines = sse.aiter_lines()
            assert await anext(lines) == "retry: 2000"
            await produce(redis_client, config, http, entry_id="e-live", title="<b>Live</b>")
            start = time.monotonic()
            async with asyncio.timeout(5):
                event = await _next_alert(lines)
            assert time.monotonic() - start < 1.5
            data = json.loads(event["data"])
            assert data["entry"]["title"] == "<b>Live</b>" and data["rule"] == "coalition"
            assert data["state"] == {"hook": "delivered"}
            assert "&lt;b&gt;Live&lt;/b&gt;" in data["html"] and "<b>" not in data["html"]
            assert float(event["id"]) >= data["queued"] > 0
            # the server stopping ends the stream
            async with asyncio.timeout(10):
                await server.aclose()
                async for _ in lines:
                    pass


async def test_wall_events_resume_from_last_event_id(
        console: str, config: Config, redis_client: aioredis.Redis,
        http: httpx.AsyncClient) -> None:
    await produce(redis_client, config, http, entry_id="e1", title="First")
    (first,) = await deliveries.recent(redis_client)
    await produce(redis_client, config, http, entry_id="e2", title="Second")
    async with browser_like(console) as web:
        async with web.stream("GET", "/console/wall/events",
                              headers={"Last-Event-ID": repr(first.created)}) as sse, \
                asyncio.timeout(5):
            event = await _next_alert(sse.aiter_lines())
        assert json.loads(event["data"])["entry"]["title"] == "Second"
        bad = await web.get("/console/wall/events", params={"after": "soon"})
    assert bad.status_code == 400


async def test_wall_events_keep_alive(console: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wall, "KEEPALIVE", 0.3)
    async with browser_like(console, READER) as web, \
            web.stream("GET", "/console/wall/events") as sse, asyncio.timeout(5):
        lines = [line async for line in _until(sse.aiter_lines(), ": keep-alive")]
    assert lines[0] == "retry: 2000" and lines[-1] == ": keep-alive"


async def _until(lines: AsyncIterator[str], last: str) -> AsyncIterator[str]:
    async for line in lines:
        yield line
        if line == last:
            return


async def test_alert_page_acknowledges_mutes_and_retries(
        console: str, config: Config, redis_client: aioredis.Redis, http: httpx.AsyncClient,
        webhook_receiver: WebhookReceiver) -> None:
    webhook_receiver.responder = lambda _: (400, {})
    await produce(redis_client, config, http, entry_id="e1")
    (dead,) = await deliveries.dead(redis_client)
    async with browser_like(console) as web:
        wall = await web.get("/console/")
        alert_id = re.search(r'data-alert-id="([^"]+)"', wall.text).group(1)  # type: ignore[union-attr]
        page = await web.get(f"/console/alerts/{alert_id}")
        assert "Retry dead deliveries" in page.text and "hook" in page.text
        csrf = csrf_of(page.text)
        retried = await web.post(f"/console/alerts/{alert_id}/retry", data={"csrf": csrf})
        assert retried.status_code == 303
        assert await redis_client.hget(keys.delivery(dead.id), "state") == "queued"
        acked = await web.post(f"/console/alerts/{alert_id}/ack",
                               data={"csrf": csrf, "comment": "on it"})
        assert acked.status_code == 303
        muted = await web.post(f"/console/alerts/{alert_id}/mute", data={"csrf": csrf})
        assert muted.status_code == 303
        after = await web.get(muted.headers["location"])
        missing = await web.get("/console/alerts/lw_nothing")
    assert "Rule muted on this feed for 1 h." in after.text
    assert "by alice" in after.text and "on it" in after.text
    (silence,) = await Silences(redis_client).all()
    assert {(m.name, m.value) for m in silence.matchers} == {("rule", "coalition"),
                                                             ("feed", "summit")}
    assert silence.created_by == "alice"
    assert missing.status_code == 404


async def test_deliveries_page_retries_a_dead_letter(
        console: str, config: Config, redis_client: aioredis.Redis, http: httpx.AsyncClient,
        webhook_receiver: WebhookReceiver) -> None:
    webhook_receiver.responder = lambda _: (400, {})
    await produce(redis_client, config, http, entry_id="e1")
    (dead,) = await deliveries.dead(redis_client)
    async with browser_like(console) as web:
        page = await web.get("/console/deliveries")
        assert f'/console/deliveries/{dead.id}/retry' in page.text
        answer = await web.post(f"/console/deliveries/{dead.id}/retry",
                                data={"csrf": csrf_of(page.text)})
        assert answer.status_code == 303
        again = await web.get(answer.headers["location"])
        twice = await web.post(f"/console/deliveries/{dead.id}/retry",
                               data={"csrf": csrf_of(page.text)})
    assert "Dead deliveries queued again." in again.text
    queued = again.text.split('id="queued"')[1].split("</table>")[0]
    assert dead.id in queued  # queued afresh (attempts start again from 0)
    assert await deliveries.dead(redis_client) == []
    assert twice.status_code == 303 and twice.headers["location"].endswith("done=retry-none")


async def test_feeds_pages_show_health_and_matches(console: str, config: Config,
                                                   redis_client: aioredis.Redis,
                                                   http: httpx.AsyncClient) -> None:
    await produce(redis_client, config, http, entry_id="e1", title="Coalition forms")
    async with browser_like(console, READER) as web:
        feeds = await web.get("/console/feeds")
        feed = await web.get("/console/feeds/summit")
        missing = await web.get("/console/feeds/nope")
    assert feeds.status_code == 200
    assert "summit" in feeds.text and "quiet" in feeds.text and "waiting" in feeds.text
    assert "Coalition forms" in feed.text
    assert '<span class="chip rule">coalition</span>' in feed.text
    assert missing.status_code == 404


async def test_rule_test_explains_match_and_no_match(console: str) -> None:
    async with browser_like(console, READER) as web:
        csrf = csrf_of((await web.get("/console/rules")).text)
        match = await web.post("/console/rules/test", data={
            "csrf": csrf, "rule": "coalition", "text": MATCHING})
        miss = await web.post("/console/rules/test", data={
            "csrf": csrf, "rule": "coalition", "text": "coalition of the willing in football"})
        unknown = await web.post("/console/rules/test", data={
            "csrf": csrf, "rule": "nope", "text": "x"})
        both = await web.post("/console/rules/test", data={
            "csrf": csrf, "rule": "coalition", "text": "x", "url": "https://example.org/"})
    assert match.status_code == 200 and '<p class="verdict match">MATCH</p>' in match.text
    assert "coalition of the willing" in match.text and "found 1x" in match.text
    assert '<p class="verdict nomatch">no match</p>' in miss.text and "football" in miss.text
    assert unknown.status_code == 400 and both.status_code == 400


async def test_silences_page_lists_and_expires(console: str,
                                               redis_client: aioredis.Redis) -> None:
    async with browser_like(console) as web:
        csrf = csrf_of((await web.get("/console/silences")).text)
        bad = await web.post("/console/silences", data={
            "csrf": csrf, "comment": "no matcher", "duration": "1h"})
        assert bad.status_code == 400 and "at least one matcher" in bad.text
        assert 'value="no matcher"' in bad.text  # the form keeps what was typed
        created = await web.post("/console/silences", data={
            "csrf": csrf, "feed": "sum*", "channel": "hook", "ends": "2099-01-01T10:00",
            "comment": "until the new year"})
        assert created.status_code == 303
        (silence,) = await Silences(redis_client).all()
        listing = await web.get("/console/silences")
        assert f'id="s-{silence.id}"' in listing.text and "until the new year" in listing.text
        assert "2099-01-01 10:00:00 UTC" in listing.text
        expired = await web.post(f"/console/silences/{silence.id}/expire", data={"csrf": csrf})
        assert expired.status_code == 303
        after = await web.get(expired.headers["location"])
    assert "Silence expired." in after.text and "expired by alice" in after.text
    (ended,) = await Silences(redis_client).all()
    assert ended.state(time.time()) == "expired"


async def test_a_silence_from_the_page_may_use_a_regular_expression(
        console: str, redis_client: aioredis.Redis) -> None:
    async with browser_like(console) as web:
        csrf = csrf_of((await web.get("/console/silences")).text)
        bad = await web.post("/console/silences", data={
            "csrf": csrf, "rule": "(", "rule_regex": "1", "comment": "broken"})
        assert bad.status_code == 400 and "bad regular expression" in bad.text
        made = await web.post("/console/silences", data={
            "csrf": csrf, "feed": "summit-(day|night)", "feed_regex": "1", "rule": "coal*",
            "duration": "2h", "comment": "both shifts"})
        assert made.status_code == 303
        listing = (await web.get("/console/silences")).text
    (silence,) = await Silences(redis_client).all()
    assert {(m.name, m.value, m.is_regex) for m in silence.matchers} == {
        ("feed", "summit-(day|night)", True), ("rule", "coal*", False)}
    assert silence.holds({"rule": "coalition", "feed": "summit-night", "channel": "x"},
                         time.time())
    assert "feed =~ summit-(day|night)" in listing


async def test_redis_down_is_a_503_page(config: Config) -> None:
    dead_client: aioredis.Redis = aioredis.from_url("redis://127.0.0.1:1/0",
                                                    decode_responses=True)
    cookie = Auth(config.console).session_cookie(ADMIN)
    try:
        async with serving(config, dead_client) as base, \
                httpx.AsyncClient(base_url=base, cookies={SESSION_COOKIE: cookie or ""}) as web:
            pages = [await web.get(p) for p in ("/console/", "/console/feeds",
                                                "/console/deliveries", "/console/silences")]
            login = await web.post("/console/login", data={"token": ADMIN})
            # the wall's stream stays up and says so (a browser would otherwise give up)
            async with web.stream("GET", "/console/wall/events") as sse, asyncio.timeout(5):
                assert sse.status_code == 200
                lines = sse.aiter_lines()
                async for line in lines:
                    if line == "event: status":
                        status = json.loads((await anext(lines)).removeprefix("data: "))
                        break
    finally:
        await dead_client.aclose()
    for page in [*pages, login]:
        assert page.status_code == 503
        assert "cannot reach Redis" in page.text and "Traceback" not in page.text
    assert status == {"ok": False, "message": "Redis is unavailable; retrying"}


# --- the wall's bookkeeping (no server) -------------------------------------------------

def _view(alert: str, state: dict[str, str], queued: float = 1.0) -> AlertView:
    return AlertView(id=alert, rule="r", feed="f", entry={"id": "e", "title": "t", "url": None},
                     event="new", detected_at=1.0, queued_at=queued, state=state,
                     deliveries={c: f"{alert}-{c}" for c in state})


def test_tracker_merges_partial_views_and_sends_only_changes() -> None:
    tracker = WallTracker()
    (first,) = tracker.new([_view("a", {"hook": "queued"})])
    # a later delivery of the same alert on another channel: the row keeps both channels
    (merged,) = tracker.new([_view("a", {"desk": "queued"}, queued=2.0)])
    assert merged.state == {"hook": "queued", "desk": "queued"}
    assert tracker.refresh([_view("a", {"hook": "queued", "desk": "queued"}, 2.0)]) == []
    (changed,) = tracker.refresh([_view("a", {"hook": "delivered", "desk": "queued"}, 2.0)])
    assert changed.state["hook"] == "delivered"
    assert first.id == "a"


def test_tracker_forgets_the_oldest_past_its_limit() -> None:
    tracker = WallTracker(limit=3)
    tracker.new([_view(str(n), {"hook": "queued"}, float(n)) for n in range(5)])
    assert sorted(tracker.known) == ["2", "3", "4"] and sorted(tracker.sent) == ["2", "3", "4"]


@pytest.mark.parametrize(("remote", "forwarded", "trusted", "client"), [
    ("203.0.113.9", None, [], "203.0.113.9"),
    ("203.0.113.9", "198.51.100.7", [], "203.0.113.9"),  # no trusted proxy: the peer
    ("203.0.113.9", "198.51.100.7", ["10.0.0.0/8"], "203.0.113.9"),  # peer not trusted
    ("10.0.0.2", "198.51.100.7", ["10.0.0.0/8"], "198.51.100.7"),
    ("10.0.0.2", "1.2.3.4, 198.51.100.7, 10.0.0.5", ["10.0.0.0/8"], "198.51.100.7"),
    ("10.0.0.2", "10.0.0.3, 10.0.0.5", ["10.0.0.0/8"], "10.0.0.3"),
    ("::1", "2001:db8::7", ["::1"], "2001:db8::7"),
    ("10.0.0.2", "", ["10.0.0.0/8"], "10.0.0.2"),
])
def test_the_sign_in_limit_counts_the_client_behind_trusted_proxies(
        remote: str, forwarded: str | None, trusted: list[str], client: str) -> None:
    assert client_address(remote, forwarded, trusted) == client


async def test_behind_a_trusted_proxy_each_client_has_its_own_count(
        webhook_receiver: WebhookReceiver, redis_client: aioredis.Redis) -> None:
    config = console_config(webhook_receiver)
    config = config.model_copy(update={"console": config.console.model_copy(
        update={"trusted_proxies": ["127.0.0.1"]})})
    async with serving(config, redis_client) as base, httpx.AsyncClient(base_url=base) as web:
        for _ in range(LOGIN_LIMIT):
            await web.post("/console/login", data={"token": "wrong-token-000000"},
                           headers={"X-Forwarded-For": "198.51.100.7"})
        blocked = await web.post("/console/login", data={"token": ADMIN},
                                 headers={"X-Forwarded-For": "198.51.100.7"})
        other = await web.post("/console/login", data={"token": ADMIN},
                               headers={"X-Forwarded-For": "198.51.100.8"})
    assert blocked.status_code == 429
    assert other.status_code == 303  # another client behind the same proxy signs in
    assert await redis_client.get(keys.login_failures("127.0.0.1")) is None
