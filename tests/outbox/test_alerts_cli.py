"""`livewatch alerts list|dead|retry|enable|test` as real subprocesses on a real Redis."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import httpx
import redis.asyncio as aioredis
from servers import Received, WebhookReceiver
from service import livewatch

from monitor.config.loader import load_config
from monitor.core import keys
from monitor.core.models import Entry, Event
from monitor.ops.embedded import EmbeddedRedis
from workers.channels import ChannelSet
from workers.consume.consumer import Consumer

FEED_URL = "https://news.example.org/live/summit"


def write_config(path: Path, redis_url: str, hook: WebhookReceiver) -> Path:
    path.write_text(f"""
redis: {{url: "{redis_url}"}}
feeds: [{{name: summit, url: "{FEED_URL}"}}]
rules: [{{name: coalition, any: ["coalition of the willing"], channels: [hook]}}]
channels: [{{name: hook, type: webhook, url: "{hook.url('/hook')}"}}]
workers: {{retry_schedule: [10ms]}}
""")
    return path


def event(entry_id: str) -> Event:
    entry = Entry(id=entry_id, url=f"{FEED_URL}#{entry_id}", title=f"Post {entry_id}",
                  text="The coalition of the willing meets again.")
    return Event(kind="new", feed="summit", feed_url=FEED_URL, entry=entry,
                 version=entry.version, detected_at=time.time())


async def deliver(config_path: Path, redis_url: str, *entry_ids: str) -> None:
    """Handle events in process (a worker), sending until nothing is due."""
    config = load_config(config_path)
    client: aioredis.Redis = aioredis.from_url(redis_url, decode_responses=True)
    try:
        async with httpx.AsyncClient() as http, ChannelSet(http) as channels:
            worker = Consumer(config, client, channels.update(config.channels), name="cli-test")
            for entry_id in entry_ids:
                await worker.handle(event(entry_id))
            await worker.outbox.run_until_idle(timeout=10)
    finally:
        await client.aclose()


def test_dead_letters_listed_retried_and_delivered(
        redis_server: EmbeddedRedis, webhook_receiver: WebhookReceiver, tmp_path: Path) -> None:
    broken = threading.Event()
    broken.set()
    webhook_receiver.responder = lambda _: (422, {}) if broken.is_set() else (200, {})
    asyncio.run(_flush(redis_server.url))
    cfg = write_config(tmp_path / "c.yaml", redis_server.url, webhook_receiver)
    asyncio.run(deliver(cfg, redis_server.url, "a", "b"))

    dead = livewatch("alerts", "dead", "--config", str(cfg))
    assert dead.returncode == 0, dead.stderr
    assert "2 dead letter(s)" in dead.stdout and "HTTP 422" in dead.stdout
    listed = livewatch("alerts", "list", "--config", str(cfg), "--state", "dead", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert sorted(r["title"] for r in rows) == ["Post a", "Post b"]
    assert {(r["state"], r["rule"], r["channel"], r["attempts"]) for r in rows} == {
        ("dead", "coalition", "hook", 1)}

    assert livewatch("alerts", "retry", "--config", str(cfg)).returncode == 2  # ids or --all
    broken.clear()
    retried = livewatch("alerts", "retry", "--all", "--config", str(cfg))
    assert retried.returncode == 0 and "queued 2 of 2" in retried.stdout
    asyncio.run(deliver(cfg, redis_server.url))  # a worker sends what is queued
    assert sorted(b["entry"]["id"] for b in webhook_receiver.bodies()) == ["a", "b"]
    assert "0 dead letter(s)" in livewatch("alerts", "dead", "--config", str(cfg)).stdout
    again = livewatch("alerts", "retry", "lw_gone", "--config", str(cfg))
    assert again.returncode == 1 and "queued 0 of 1" in again.stdout


def test_enable_reenables_a_disabled_channel(
        redis_server: EmbeddedRedis, webhook_receiver: WebhookReceiver, tmp_path: Path) -> None:
    asyncio.run(_flush(redis_server.url))
    cfg = write_config(tmp_path / "c.yaml", redis_server.url, webhook_receiver)

    async def disable() -> None:
        client: aioredis.Redis = aioredis.from_url(redis_server.url, decode_responses=True)
        await client.hset(keys.DISABLED_CHANNELS, "hook",
                          json.dumps({"reason": "HTTP 410", "at": 1.0, "fingerprint": "x"}))
        await client.aclose()

    asyncio.run(disable())
    assert "channel hook is disabled" in livewatch("alerts", "list", "--config",
                                                   str(cfg)).stderr
    enabled = livewatch("alerts", "enable", "hook", "--config", str(cfg))
    assert enabled.returncode == 0 and "channel hook enabled" in enabled.stdout
    assert "was not disabled" in livewatch("alerts", "enable", "hook", "--config",
                                           str(cfg)).stdout


def test_test_alert_reaches_the_channel_or_says_why_not(
        webhook_receiver: WebhookReceiver, tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "c.yaml", "redis://127.0.0.1:1/0", webhook_receiver)
    sent = livewatch("alerts", "test", "hook", "--config", str(cfg))
    assert sent.returncode == 0, sent.stderr
    (body,) = webhook_receiver.bodies()
    assert body["type"] == "alert" and body["entry"]["title"] == "livewatch test alert"

    def failing(_: Received) -> tuple[int, dict[str, str]]:
        return 503, {}

    webhook_receiver.responder = failing
    failed = livewatch("alerts", "test", "hook", "--config", str(cfg))
    assert failed.returncode == 1 and "HTTP 503" in failed.stderr
    unknown = livewatch("alerts", "test", "nope", "--config", str(cfg))
    assert unknown.returncode == 2 and "no channel 'nope'" in unknown.stderr


async def _flush(url: str) -> None:
    client: aioredis.Redis = aioredis.from_url(url, decode_responses=True)
    await client.flushdb()
    await client.aclose()
