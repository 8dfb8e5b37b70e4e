"""A secret in a feed's URL (`?k=token`) stays out of everything livewatch writes when that
feed fails: log lines, `livewatch status`, the failing notice a receiver gets, and Redis.
Real processes: `livewatch run`, a private redis-server, feeds and a receiver on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from servers import FeedServer, Received, WebhookReceiver
from service import REPO, Service

from monitor.core import keys
from monitor.ops.embedded import EmbeddedRedis

pytestmark = pytest.mark.slow

SECRETS = ("SECRET-LOOP-111", "SECRET-LOOP-222", "SECRET-HOP-333", "SECRET-FAIL-444",
           "USER-555", "PASS-666", "SECRET-PAREN-777", "SECRET-SLOW-888")


async def dump(client: aioredis.Redis) -> str:
    """Every key and value in Redis as text."""
    out: list[str] = []
    async for key in client.scan_iter(count=1000):
        kind = await client.type(key)
        value: Any
        if kind == "string":
            value = await client.get(key)
        elif kind == "hash":
            value = await client.hgetall(key)
        elif kind == "list":
            value = await client.lrange(key, 0, -1)
        elif kind == "set":
            value = await client.smembers(key)
        elif kind == "zset":
            value = await client.zrange(key, 0, -1, withscores=True)
        elif kind == "stream":
            value = await client.xrange(key)
        else:
            value = kind
        out.append(f"{key} {value!r}")
    return "\n".join(out)


def notices(received: list[Received]) -> list[dict[str, Any]]:
    return [body for r in received if (body := r.json()).get("type") == "notice"]


async def test_a_secret_in_a_failing_feed_url_is_written_nowhere(
        redis_server: EmbeddedRedis, redis_client: aioredis.Redis, feed_server: FeedServer,
        webhook_receiver: WebhookReceiver, tmp_path: Path, running: list[Service]) -> None:
    base = feed_server.base_url
    feed_server.set("/loop?k=SECRET-LOOP-111", "", status=302,
                    headers={"Location": "/loop2?k=SECRET-LOOP-222"})
    feed_server.set("/loop2?k=SECRET-LOOP-222", "", status=302,
                    headers={"Location": "/loop?k=SECRET-LOOP-111"})
    feed_server.set("/hop?k=SECRET-HOP-333", "", status=302,
                    headers={"Location": f"{base}/fail?t=SECRET-FAIL-444"})
    feed_server.set("/fail?t=SECRET-FAIL-444", "oops", status=500)
    # a path holding `)` before the query (where a regex over the message once stopped)
    feed_server.set("/paren?k=SECRET-PAREN-777", "", status=302,
                    headers={"Location": "/p)?k=SECRET-PAREN-777"})
    feed_server.set("/p)?k=SECRET-PAREN-777", "", status=302,
                    headers={"Location": "/p)?k=SECRET-PAREN-777"})
    feed_server.set("/slow?k=SECRET-SLOW-888", "<rss/>", delay=3)
    userinfo = base.replace("http://", "http://USER-555:PASS-666@")
    cfg = tmp_path / "livewatch.yaml"
    cfg.write_text(f"""
redis: {{url: "{redis_server.url}"}}
defaults: {{interval: 0.3s, jitter: 0s, timeout: 3s, max_backoff: 0.6s}}
feeds:
  - {{name: loop, url: "{base}/loop?k=SECRET-LOOP-111"}}
  - {{name: hop, url: "{userinfo}/hop?k=SECRET-HOP-333"}}
  - {{name: paren, url: "{base}/paren?k=SECRET-PAREN-777"}}
  - {{name: slow, url: "{base}/slow?k=SECRET-SLOW-888", timeout: 1s}}
rules: [{{name: r, any: [coalition], channels: [hook]}}]
channels: [{{name: hook, type: webhook, url: "{webhook_receiver.url('/ops')}"}}]
operator: {{failing_after: 2, channels: [hook]}}
""")
    service = Service(["run", "--config", str(cfg), "--log-format", "json"],
                      tmp_path / "service.log")
    running.append(service)
    service.start()
    webhook_receiver.wait_for(lambda r: len(notices(r)) >= 4)  # one "failing" per feed
    for name in ("loop", "hop", "paren", "slow"):
        health = await redis_client.hgetall(keys.health(name))
        assert health["last_status"] == "error"
    health = await redis_client.hgetall(keys.health("loop"))
    assert health["last_error"].startswith("redirect loop (2 redirects")
    assert (await redis_client.hget(keys.health("slow"), "last_error")) == "timed out after 1s"
    command = [sys.executable, "-m", "monitor", "status", "--config", str(cfg), "--json"]
    status = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True,
                                     cwd=REPO, timeout=60, check=False)
    assert status.returncode == 0, status.stderr
    assert '"loop"' in status.stdout
    redis_text = await dump(redis_client)
    assert service.stop() == 0
    written = {
        "logs": service.logs(),
        "status": status.stdout + status.stderr,
        "notices": json.dumps(notices(webhook_receiver.received)),
        "redis": redis_text,
    }
    assert "redirect loop" in written["logs"] and "HTTP 500" in written["notices"]
    for where, text in written.items():
        for secret in SECRETS:
            assert secret not in text, f"{secret} found in {where}"
