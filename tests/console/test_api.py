"""The console's REST API against a running `livewatch run` (real Redis, feeds and webhook
receiver on 127.0.0.1): silences hold alerts (recorded, never sent) and nothing is sent when
they end; auth; dead-letter retries; rule tests; the OpenAPI document; one-click links."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from feeds import Item, rss
from pydantic import SecretStr
from servers import FeedServer, WebhookReceiver
from service import Service, baselined, stream_idle, wait_until

from monitor.config.loader import parse_config
from monitor.ops.embedded import EmbeddedRedis, free_port
from workers.console.auth import Auth

pytestmark = pytest.mark.slow

ADMIN = "desk-token-0123456789abcdef"
READER = "wall-token-0123456789abcdef"
KEY = "k" * 40
PHRASE = "<p>Talk of a coalition of the willing grows.</p>"


def config_yaml(redis_url: str, feeds: FeedServer, hook: WebhookReceiver, port: int) -> str:
    return f"""
redis: {{url: "{redis_url}"}}
defaults: {{interval: 0.3s, jitter: 0s, timeout: 3s}}
feeds:
  - {{name: summit, url: "{feeds.url('/summit.rss')}"}}
  - {{name: market, url: "{feeds.url('/market.rss')}"}}
rules: [{{name: coalition, any: ["coalition of the willing"], channels: [hook]}}]
channels: [{{name: hook, type: webhook, url: "{hook.url('/alerts')}"}}]
workers: {{claim_idle: 2s, retry_schedule: [100ms], give_up_after: 1s}}
console:
  listen: "127.0.0.1:{port}"
  tokens: [{{name: desk, token: "{ADMIN}", scope: admin}},
           {{name: wall, token: "{READER}", scope: read}}]
  signing_key: "{KEY}"
"""


class Running:
    """The service and an API client."""

    def __init__(self, service: Service, base: str, cfg: Path) -> None:
        self.service, self.base, self.cfg = service, base, cfg
        self.http = httpx.AsyncClient(base_url=base + "/api/v1", timeout=10,
                                      headers={"Authorization": f"Bearer {ADMIN}"})

    async def get(self, path: str, **kwargs: Any) -> Any:
        response = await self.http.get(path, **kwargs)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
async def running_service(redis_server: EmbeddedRedis, redis_client: aioredis.Redis,
                          feed_server: FeedServer, webhook_receiver: WebhookReceiver,
                          tmp_path: Path, running: list[Service]) -> AsyncIterator[Running]:
    for path in ("/summit.rss", "/market.rss"):
        feed_server.set(path, rss([Item(f"{path[1]}0", "Opening", "<p>Doors open.</p>", 0)]))
    port = free_port()
    cfg = tmp_path / "livewatch.yaml"
    cfg.write_text(config_yaml(redis_server.url, feed_server, webhook_receiver, port))
    service = Service(["run", "--config", str(cfg)], tmp_path / "service.log")
    running.append(service)
    service.start()
    for feed in ("summit", "market"):
        await wait_until(lambda f=feed: baselined(redis_client, f), what=f"{feed} baseline",
                         service=service)
    run = Running(service, f"http://127.0.0.1:{port}", cfg)
    yield run
    await run.http.aclose()


def post(feeds: FeedServer, path: str, n: int) -> None:
    """Feed `path` now carries posts 0..n, each after 0 with the phrase."""
    items = [Item(f"{path[1]}0", "Opening", "<p>Doors open.</p>", 0)]
    items += [Item(f"{path[1]}{i}", f"Update {i}", PHRASE, i) for i in range(1, n + 1)]
    feeds.set(path, rss(items))


def alerted(hook: WebhookReceiver) -> list[tuple[str, str]]:
    return [(b["feed"]["name"], b["entry"]["id"]) for b in hook.bodies() if b["type"] == "alert"]


def later(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


async def test_a_silence_holds_one_feeds_alerts_and_expiring_it_sends_nothing_back(
        running_service: Running, redis_client: aioredis.Redis, feed_server: FeedServer,
        webhook_receiver: WebhookReceiver) -> None:
    api = running_service
    created = await api.http.post("/silences", json={
        "matchers": [{"name": "rule", "value": "coalition", "isRegex": False},
                     {"name": "feed", "value": "sum*"}],
        "endsAt": later(hours=1), "createdBy": "desk editor", "comment": "noisy tonight"})
    assert created.status_code == 201, created.text
    silence = created.json()["id"]

    post(feed_server, "/summit.rss", 1)
    post(feed_server, "/market.rss", 1)
    webhook_receiver.wait_for(lambda r: len(r) >= 1)

    async def both_recorded() -> bool:
        found = (await api.get("/alerts", params={"limit": 10}))["alerts"]
        return len(found) == 2 and await stream_idle(redis_client)

    await wait_until(both_recorded, what="both alerts recorded", service=api.service)
    assert alerted(webhook_receiver) == [("market", "m1")]
    by_feed = {a["feed"]: a for a in (await api.get("/alerts", params={"limit": 10}))["alerts"]}
    assert by_feed["summit"]["silenced_by"] == silence
    assert by_feed["summit"]["state"] == {"hook": "silenced"}
    assert by_feed["summit"]["entry"]["id"] == "s1"
    assert by_feed["market"]["silenced_by"] is None
    assert by_feed["market"]["state"] == {"hook": "delivered"}
    listed = {s["id"]: s for s in await api.get("/silences")}
    assert listed[silence]["status"]["state"] == "active"
    assert listed[silence]["createdBy"] == "desk editor"

    # Expire it: the held alert stays unsent; the next post goes out.
    assert (await api.http.delete(f"/silences/{silence}")).json()["status"]["state"] == \
        "expired"
    post(feed_server, "/summit.rss", 2)
    webhook_receiver.wait_for(lambda r: len(r) >= 2)

    async def settled() -> bool:
        return len((await api.get("/alerts"))["alerts"]) == 3 and \
            await stream_idle(redis_client)

    await wait_until(settled, what="the third alert", service=api.service)
    assert alerted(webhook_receiver) == [("market", "m1"), ("summit", "s2")]
    assert (await api.get("/silences"))[0]["status"]["state"] == "expired"
    assert api.service.stop() == 0


async def test_auth_errors_are_problems(running_service: Running) -> None:
    api = running_service
    async with httpx.AsyncClient(base_url=api.base + "/api/v1", timeout=10) as bare:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": ADMIN}):
            answer = await bare.get("/alerts", headers=headers)
            assert answer.status_code == 401, headers
            assert answer.headers["content-type"].startswith("application/problem+json")
            assert answer.json()["status"] == 401
        reader = {"Authorization": f"Bearer {READER}"}
        assert (await bare.get("/silences", headers=reader)).status_code == 200
        refused = await bare.post("/silences", headers=reader, json={
            "matchers": [{"name": "rule", "value": "x"}], "endsAt": later(hours=1),
            "createdBy": "wall", "comment": "no"})
        assert refused.status_code == 403 and "read" in refused.json()["detail"]
        spec = await bare.get("/openapi.json")  # public
        assert spec.status_code == 200 and spec.json()["openapi"].startswith("3.")
        assert {"/alerts", "/silences", "/silences/{id}", "/test-rule",
                "/deliveries/{id}/retry"} <= set(spec.json()["paths"])
    bad = await api.http.post("/silences", json={"matchers": [], "endsAt": later(hours=1),
                                                 "createdBy": "x", "comment": "y"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "matchers"
    past = await api.http.post("/silences", json={
        "matchers": [{"name": "rule", "value": "coalition"}], "endsAt": later(hours=-1),
        "createdBy": "x", "comment": "y"})
    assert past.status_code == 400 and "past" in past.json()["detail"]
    assert (await api.http.get("/silences/nope")).status_code == 404
    assert api.service.stop() == 0


async def test_rule_test_dead_letter_retry_and_feed_entries(
        running_service: Running, redis_client: aioredis.Redis, feed_server: FeedServer,
        webhook_receiver: WebhookReceiver) -> None:
    api = running_service
    tested = await api.http.post("/test-rule", json={
        "rule": "coalition", "text": "<p>A Coalition of the\n willing, again.</p>"})
    assert tested.status_code == 200 and tested.json()["matched"] is True
    assert tested.json()["explanation"][0].endswith("MATCH")
    missed = await api.http.post("/test-rule", json={"rule": "coalition", "text": "calm"})
    assert missed.json()["matched"] is False
    assert (await api.http.post("/test-rule", json={"rule": "nope", "text": "x"})
            ).status_code == 404

    webhook_receiver.responder = lambda _: (400, {})  # permanent: dead at once
    post(feed_server, "/market.rss", 1)

    async def dead() -> list[Any]:
        return list((await api.get("/deliveries", params={"state": "dead"}))["deliveries"])

    async def one_dead() -> bool:
        return len(await dead()) == 1

    await wait_until(one_dead, what="a dead letter", service=api.service)
    (letter,) = await dead()
    webhook_receiver.responder = lambda _: (200, {})
    retried = await api.http.post(f"/deliveries/{letter['id']}/retry")
    assert retried.status_code == 202, retried.text
    webhook_receiver.wait_for(lambda r: len(r) >= 1)
    assert alerted(webhook_receiver) == [("market", "m1")]
    again = await api.http.post(f"/deliveries/{letter['id']}/retry")
    assert again.status_code == 409

    entries = (await api.get("/feeds/market/entries"))["entries"]
    assert [(e["id"], e["matched"]) for e in entries] == [("m1", ["coalition"]), ("m0", [])]
    feeds = {f["name"]: f for f in (await api.get("/feeds"))["feeds"]}
    assert feeds["market"]["entries"] == 2
    assert api.service.stop() == 0


def test_one_click_links_expire_and_cannot_be_forged() -> None:
    config = parse_config(f"""
console: {{listen: "127.0.0.1:9", tokens: [{{name: desk, token: "{ADMIN}", scope: admin}}],
          signing_key: "{KEY}", link_ttl: 1h}}
""", "x.yaml", {})
    auth = Auth(config.console)
    now = time.time()
    token = auth.link("mute", {"rule": "coalition", "for": "3600"}, now)
    assert auth.open_link(token, now) == ("mute", {"rule": "coalition", "for": "3600"})
    with pytest.raises(ValueError, match="expired"):
        auth.open_link(token, now + 3601)
    body, signature = token.rsplit(".", 1)
    with pytest.raises(ValueError, match="signature"):
        auth.open_link(body + "." + signature[::-1])
    other = Auth(config.console.model_copy(update={"signing_key": SecretStr("z" * 40)}))
    with pytest.raises(ValueError, match="signature"):
        other.open_link(token, now)


async def test_the_console_runs_in_a_process_of_its_own_under_processes(
        redis_server: EmbeddedRedis, redis_client: aioredis.Redis, feed_server: FeedServer,
        webhook_receiver: WebhookReceiver, tmp_path: Path, running: list[Service]) -> None:
    """`run --processes 2` with `console.listen`: two pollers, a worker and the console, each
    a process; the API answers and sees the alert the worker delivered."""
    for path in ("/summit.rss", "/market.rss"):
        feed_server.set(path, rss([Item(f"{path[1]}0", "Opening", "<p>Doors open.</p>", 0)]))
    port = free_port()
    cfg = tmp_path / "livewatch.yaml"
    cfg.write_text(config_yaml(redis_server.url, feed_server, webhook_receiver, port))
    service = Service(["run", "--processes", "2", "--config", str(cfg)],
                      tmp_path / "service.log")
    running.append(service)
    service.start()
    await wait_until(lambda: baselined(redis_client, "market"), what="baseline",
                     service=service)
    api = Running(service, f"http://127.0.0.1:{port}", cfg)
    try:
        async def answering() -> bool:
            try:
                return (await api.http.get("/feeds")).status_code == 200
            except httpx.TransportError:
                return False

        await wait_until(answering, what="the console child", service=service)
        post(feed_server, "/market.rss", 1)
        webhook_receiver.wait_for(lambda r: len(r) >= 1)

        async def shown() -> bool:
            found = (await api.get("/alerts"))["alerts"]
            return [a["state"] for a in found] == [{"hook": "delivered"}]

        await wait_until(shown, what="the alert in the API", service=service)
        listening = [json.loads(line) for line in service.logs().splitlines()
                     if '"console listening"' in line]
        assert [entry.get("process") for entry in listening] == ["console"], listening
    finally:
        await api.http.aclose()
    assert service.stop(timeout=40) == 0


def test_the_openapi_document_lists_every_api_route_and_no_other() -> None:
    from workers.console.api import ConsoleState
    from workers.console.openapi import document
    from workers.console.server import build_app

    config = parse_config(f"""
console: {{listen: "127.0.0.1:9", tokens: [{{name: desk, token: "{ADMIN}", scope: admin}}],
          signing_key: "{KEY}"}}
""", "x.yaml", {})
    client = aioredis.Redis(port=1)  # never connected: only the routes are read
    app = build_app(ConsoleState(config, client))
    served = {(route.method, route.resource.canonical.removeprefix("/api/v1"))
              for route in app.router.routes() if route.resource is not None
              and route.resource.canonical.startswith("/api/v1/") and route.method != "HEAD"}
    served.discard(("GET", "/openapi.json"))
    spec = document("https://lw.example.org")
    documented = {(method.upper(), path) for path, ops in spec["paths"].items()
                  for method in ops}
    assert served == documented
    assert spec["servers"] == [{"url": "https://lw.example.org/api/v1"}]
