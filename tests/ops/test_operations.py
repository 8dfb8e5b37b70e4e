"""Operating the service as a real process: /healthz, /readyz, /metrics, SIGHUP reload,
SIGTERM during a burst of deliveries, `status --json`, and what the logs carry."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from feeds import Item, rss
from prometheus_client.parser import text_string_to_metric_families
from servers import FeedServer, Received, WebhookReceiver
from service import Service, baselined, stream_idle, wait_until

from monitor.ops.embedded import EmbeddedRedis, free_port

pytestmark = pytest.mark.slow

SECRET = "s3cr3t-from-the-environment-7f1c"


def config_yaml(redis_url: str, feeds: FeedServer, hook: WebhookReceiver, port: int, *,
                extra_rules: str = "", extra_feeds: str = "", workers: str = "") -> str:
    return f"""
redis: {{url: "{redis_url}"}}
http: {{listen: "127.0.0.1:{port}"}}
defaults: {{interval: 0.3s, jitter: 0s, timeout: 3s, max_backoff: 1s}}
feeds:
  - {{name: summit, url: "{feeds.url('/summit.rss')}"}}
{extra_feeds}
rules:
  - {{name: coalition, any: ["coalition of the willing"], channels: [hook]}}
{extra_rules}
channels:
  - {{name: hook, type: webhook, url: "{hook.url('/alerts')}", secret: "${{LW_TEST_SECRET}}"}}
workers: {{claim_idle: 2s, retry_schedule: [100ms]{workers}}}
"""


async def get(port: int, path: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5) as client:
        return await client.get(f"http://127.0.0.1:{port}{path}")


async def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics by (name, sorted labels)."""
    response = await get(port, "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text)
            for s in family.samples}


def sample(metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
           **labels: str) -> float:
    return metrics.get((name, tuple(sorted(labels.items()))), 0.0)


def log_events(service: Service) -> list[dict[str, Any]]:
    out = []
    for line in service.logs().splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


async def ready(port: int) -> bool:
    try:
        return (await get(port, "/readyz")).status_code == 200
    except httpx.TransportError:
        return False


def rules_of(hook: WebhookReceiver) -> list[tuple[str, str]]:
    return [(b["rule"], b["entry"]["id"]) for b in hook.bodies()]


async def test_metrics_reload_and_logs(
        redis_server: EmbeddedRedis, redis_client: aioredis.Redis, feed_server: FeedServer,
        webhook_receiver: WebhookReceiver, tmp_path: Path, running: list[Service],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LW_TEST_SECRET", SECRET)
    port = free_port()
    posts = [Item("p1", "Opening", "<p>The summit opens.</p>", 1)]
    feed_server.set("/summit.rss", rss(posts))
    failed_once: list[str] = []

    def flaky(request: Received) -> tuple[int, dict[str, str]]:  # one 503, then fine
        if not failed_once:
            failed_once.append(request.headers["webhook-id"])
            return 503, {}
        return 200, {}

    webhook_receiver.responder = flaky
    cfg = tmp_path / "livewatch.yaml"
    cfg.write_text(config_yaml(redis_server.url, feed_server, webhook_receiver, port))
    service = Service(["run", "--config", str(cfg), "--log-format", "json"],
                      tmp_path / "service.log")
    running.append(service)
    service.start()
    await wait_until(lambda: ready(port), what="/readyz 200", service=service)
    assert (await get(port, "/healthz")).json() == {"status": "alive"}
    await wait_until(lambda: baselined(redis_client, "summit"), service=service)

    # Counters move as the feed gains posts.
    before = await scrape(port)
    assert sample(before, "livewatch_polls_total", outcome="baseline") == 1
    posts.append(Item("p2", "Speech", "<p>A coalition of the willing, says the PM.</p>", 2))
    feed_server.set("/summit.rss", rss(posts))
    webhook_receiver.wait_for(lambda r: len(r) == 1)  # accepted after one 503
    await wait_until(lambda: stream_idle(redis_client), service=service)

    async def polled_again() -> bool:  # at least one conditional GET after the post
        seen = await scrape(port)
        return (sample(seen, "livewatch_polls_total", outcome="not_modified")
                > sample(before, "livewatch_polls_total", outcome="not_modified"))

    await wait_until(polled_again, what="a 304 poll after the post", service=service)
    after = await scrape(port)
    assert sample(after, "livewatch_entries_total", event="new") == 1
    assert sample(after, "livewatch_matches_total", rule="coalition") == 1
    assert sample(after, "livewatch_deliveries_total", channel="hook", outcome="retry") == 1
    assert sample(after, "livewatch_deliveries_total", channel="hook", outcome="delivered") == 1
    assert sample(after, "livewatch_delivery_seconds_count", channel="hook") == 2
    assert sample(after, "livewatch_polls_total", outcome="ok") >= 1
    assert (sample(after, "livewatch_polls_total", outcome="not_modified")
            > sample(before, "livewatch_polls_total", outcome="not_modified"))
    assert sample(after, "livewatch_fetch_seconds_count") > sample(before,
                                                                   "livewatch_fetch_seconds_count")
    assert sample(after, "livewatch_parse_seconds_count") >= 2
    assert sample(after, "livewatch_stream_lag", stream="lw:events") == 0
    assert sample(after, "livewatch_stream_pending", stream="lw:events") == 0
    assert sample(after, "livewatch_feeds_failing") == 0
    assert sample(after, "livewatch_redis_up") == 1

    # SIGHUP with a new rule (and a new feed): the new rule alerts, nothing is lost.
    feed_server.set("/extra.rss", rss([Item("e1", "Old", "<p>Old news.</p>", 1)]))
    cfg.write_text(config_yaml(
        redis_server.url, feed_server, webhook_receiver, port,
        extra_rules="  - {name: ceasefire, any: [ceasefire], channels: [hook]}",
        extra_feeds=f'  - {{name: extra, url: "{feed_server.url("/extra.rss")}"}}'))
    service.process.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
    await wait_until(lambda: _logged(service, "configuration reloaded"), service=service)
    await wait_until(lambda: baselined(redis_client, "extra"), what="new feed polled",
                     service=service)
    posts.append(Item("p3", "Talks", "<p>A ceasefire is agreed.</p>", 3))
    feed_server.set("/summit.rss", rss(posts))
    webhook_receiver.wait_for(lambda r: len(r) == 2)
    assert rules_of(webhook_receiver) == [("coalition", "p2"), ("ceasefire", "p3")]

    # SIGHUP with a broken file: rejected, errors logged, the old rules keep working.
    cfg.write_text(config_yaml(
        redis_server.url, feed_server, webhook_receiver, port,
        extra_rules="  - {name: broken, any: [x], channels: [nowhere]}"))
    service.process.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
    await wait_until(lambda: _logged(service, "configuration reload rejected"), service=service)
    rejected = next(e for e in log_events(service)
                    if e["event"].startswith("configuration reload rejected"))
    assert any("unknown channel 'nowhere'" in p for p in rejected["problems"])
    posts.append(Item("p4", "More", "<p>The ceasefire holds.</p>", 4))
    feed_server.set("/summit.rss", rss(posts))
    webhook_receiver.wait_for(lambda r: len(r) == 3)
    assert rules_of(webhook_receiver)[-1] == ("ceasefire", "p4")
    reloads = await scrape(port)
    assert sample(reloads, "livewatch_config_reloads_total", result="applied") == 1
    assert sample(reloads, "livewatch_config_reloads_total", result="rejected") == 1
    assert service.stop() == 0

    # Logs: one line per poll (with the feed) and per delivery attempt (with the alert, entry
    # and feed ids); the secret given through ${LW_TEST_SECRET} never appears.
    events = log_events(service)
    polls = [e for e in events if e["event"] in ("poll", "poll failed")]
    assert polls and all(e["feed"] in ("summit", "extra") for e in polls)
    attempts = [e for e in events if e["event"] in ("delivered", "delivery failed; will retry")]
    assert len(attempts) == 4  # one 503 and three successes
    assert all({"alert", "entry", "feed", "channel", "rule"} <= e.keys() for e in attempts)
    assert {e["alert"] for e in attempts} == {r.headers["webhook-id"]
                                              for r in webhook_receiver.received}
    assert SECRET not in service.logs()


async def _logged(service: Service, event: str) -> bool:
    return _logged_sync(service, event)


async def test_sigterm_during_a_burst_loses_nothing(
        redis_server: EmbeddedRedis, redis_client: aioredis.Redis, feed_server: FeedServer,
        webhook_receiver: WebhookReceiver, tmp_path: Path, running: list[Service],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LW_TEST_SECRET", SECRET)
    feed_server.set("/summit.rss", rss([Item("p0", "Opening", "<p>It opens.</p>", 0)]))
    slow = threading.Event()  # set: the receiver answers slowly

    def receiver(_request: Received) -> tuple[int, dict[str, str]]:
        if slow.is_set():
            time.sleep(1.0)
        return 200, {}

    webhook_receiver.responder = receiver
    port = free_port()
    cfg = tmp_path / "livewatch.yaml"
    cfg.write_text(config_yaml(redis_server.url, feed_server, webhook_receiver, port,
                               workers=", concurrency: 4, shutdown_timeout: 0.5s"))
    service = Service(["run", "--config", str(cfg), "--log-format", "json"],
                      tmp_path / "service.log")
    running.append(service)
    service.start()
    await wait_until(lambda: baselined(redis_client, "summit"), service=service)

    burst = [Item(f"b{n}", f"Post {n}", f"<p>Coalition of the willing, part {n}.</p>", n + 1)
             for n in range(12)]
    slow.set()
    feed_server.set("/summit.rss", rss(burst))
    webhook_receiver.wait_for(lambda r: len(r) >= 2)
    started = time.monotonic()
    assert service.stop() == 0
    assert time.monotonic() - started < 10  # bounded by shutdown_timeout, not the backlog
    assert _logged_sync(service, "stopped with deliveries in flight; handed back")
    got_before = {r.headers["webhook-id"] for r in webhook_receiver.received}
    assert len(got_before) < len(burst)

    slow.clear()
    service.start()  # a new worker sends what the old one handed back

    async def all_there() -> bool:
        ids = {r.headers["webhook-id"] for r in webhook_receiver.received}
        return len(ids) == len(burst) and await stream_idle(redis_client)

    await wait_until(all_there, what="every alert delivered after the restart",
                     service=service)
    entries = sorted({b["entry"]["id"] for b in webhook_receiver.bodies()})
    assert entries == sorted(i.guid for i in burst)
    assert service.stop() == 0


def _logged_sync(service: Service, event: str) -> bool:
    """A log line whose event starts with `event`."""
    return any(str(e.get("event")).startswith(event) for e in log_events(service))


def status(cfg: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "monitor", "status", "--config", str(cfg),
                           "--json"], capture_output=True, text=True, timeout=30,
                          env={**os.environ, "LW_TEST_SECRET": "x"})


async def test_status_json_reflects_a_failing_feed_on_the_embedded_redis(
        feed_server: FeedServer, webhook_receiver: WebhookReceiver, tmp_path: Path,
        running: list[Service], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LW_TEST_SECRET", SECRET)
    feed_server.set("/summit.rss", rss([Item("p1", "Opening", "<p>It opens.</p>", 1)]))
    feed_server.set("/broken.rss", "down", status=500, content_type="text/plain")
    data = tmp_path / "state"
    cfg = tmp_path / "livewatch.yaml"
    cfg.write_text(config_yaml("embedded", feed_server, webhook_receiver, free_port(),
                               extra_feeds=f'  - {{name: broken, url: '
                               f'"{feed_server.url("/broken.rss")}"}}')
                   .replace('redis: {url: "embedded"}',
                            f'redis: {{url: embedded, data_dir: "{data}"}}'))
    stopped = status(cfg)
    assert stopped.returncode == 1 and "not running" in stopped.stderr

    service = Service(["run", "--config", str(cfg), "--log-format", "json"],
                      tmp_path / "service.log")
    running.append(service)
    service.start()
    report: dict[str, Any] = {}

    async def failing_seen() -> bool:
        result = status(cfg)
        if result.returncode != 0:
            return False
        report.update(json.loads(result.stdout))
        feeds = {f["name"]: f for f in report["feeds"]}
        return (feeds["broken"]["consecutive_failures"] >= 2
                and feeds["summit"]["result"] is not None and bool(report["workers"]))

    await wait_until(failing_seen, what="status showing the failing feed", service=service)
    feeds = {f["name"]: f for f in report["feeds"]}
    broken, summit = feeds["broken"], feeds["summit"]
    assert broken["result"] == "error" and "500" in broken["last_error"]
    assert broken["last_poll"] is not None and broken["next_poll"] is not None
    assert summit["consecutive_failures"] == 0 and summit["entries"] == 1
    assert summit["detected_kind"] == "rss"
    assert report["channels"] == [{"name": "hook", "type": "webhook", "disabled": False,
                                   "delivered": 0, "retry": 0, "dead": 0}]
    assert (report["deliveries_queued"], report["dead_deliveries"]) == (0, 0)
    assert {s["stream"] for s in report["streams"]} == {"lw:events", "lw:notices"}
    assert report["redis"].startswith("redis://127.0.0.1:")
    assert service.stop() == 0
    assert not (data / "redis.url").exists()
    assert status(cfg).returncode == 1
