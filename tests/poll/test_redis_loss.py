"""Redis comes back empty (a crash without persistence, a failover to an empty replica,
FLUSHALL) under a running `livewatch run`: the worker recreates its consumer group, the feeds
baseline again without alerting on what they already show, one notice tells the operator,
and the next phrase posted alerts exactly once. Real processes throughout."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from feeds import Item, rss
from servers import FeedServer, Received, WebhookReceiver
from service import Service, baselined, wait_until

from monitor.ops.embedded import EmbeddedRedis

pytestmark = pytest.mark.slow

PATH = "/live.rss"
PHRASE = "<p>Talk of a coalition of the willing grows.</p>"


def posted(received: list[Received], kind: str) -> list[dict[str, Any]]:
    return [body for r in received if (body := r.json()).get("type") == kind]


@pytest.mark.parametrize("how", ["restart-empty", "flushall"])
async def test_redis_back_empty_recovers_without_a_flood(
        how: str, feed_server: FeedServer, webhook_receiver: WebhookReceiver, tmp_path: Path,
        running: list[Service]) -> None:
    server = EmbeddedRedis(tmp_path / "redis", appendonly=False)
    server.start()
    client: aioredis.Redis = aioredis.from_url(server.url, decode_responses=True)
    try:
        items = [Item("a", "Opening", PHRASE, 1), Item("b", "Arrivals", "<p>Cars.</p>", 2)]
        feed_server.set(PATH, rss(items))
        cfg = tmp_path / "livewatch.yaml"
        cfg.write_text(f"""
redis: {{url: "{server.url}"}}
defaults: {{interval: 0.3s, jitter: 0s, timeout: 3s, max_backoff: 1s}}
feeds: [{{name: live, url: "{feed_server.url(PATH)}"}}]
rules: [{{name: coalition, any: ["coalition of the willing"], channels: [hook]}}]
channels:
  - {{name: hook, type: webhook, url: "{webhook_receiver.url('/alerts')}"}}
  - {{name: ops, type: webhook, url: "{webhook_receiver.url('/ops')}"}}
operator: {{channels: [ops]}}
workers: {{claim_idle: 2s, retry_schedule: [100ms]}}
""")
        service = Service(["run", "--config", str(cfg), "--log-format", "json"],
                          tmp_path / "service.log")
        running.append(service)
        service.start()
        await wait_until(lambda: baselined(client, "live"), what="baseline", service=service)
        items.insert(0, Item("c", "Statement", PHRASE, 3))
        feed_server.set(PATH, rss(items))
        webhook_receiver.wait_for(lambda r: len(posted(r, "alert")) >= 1)

        if how == "flushall":
            await client.flushall()
        else:  # a crash of a server that keeps nothing on disk
            await client.aclose()
            server.kill()
            shutil.rmtree(server.data_dir, ignore_errors=True)
            server.start()
            client = aioredis.from_url(server.url, decode_responses=True)
        await wait_until(lambda: baselined(client, "live"), timeout=30,
                         what="baseline after the loss", service=service)
        webhook_receiver.wait_for(lambda r: len(posted(r, "notice")) >= 1,
                                  timeout=30)
        items.insert(0, Item("d", "Later", PHRASE.replace("grows", "grows again"), 4))
        feed_server.set(PATH, rss(items))
        webhook_receiver.wait_for(lambda r: len(posted(r, "alert")) >= 2,
                                  timeout=30)
        start = feed_server.count(PATH)

        async def quiet() -> bool:  # more polls, and nothing else arrives
            return feed_server.count(PATH) >= start + 4

        await wait_until(quiet, what="four more polls", service=service)
        assert service.stop() == 0
        alerts = [b["entry"]["id"] for b in posted(webhook_receiver.received, "alert")]
        assert [a.rsplit("#", 1)[-1] for a in alerts] == ["c", "d"]  # a, c not again
        notices = posted(webhook_receiver.received, "notice")
        assert [n["kind"] for n in notices] == ["state_lost"]
        assert "baseline" in str(notices[0]["message"])
        logs = service.logs()
        assert "Traceback" not in logs
    finally:
        await client.aclose()
        server.stop()
