"""Source-health notices (issue 4): a feed failing N polls in a row makes one "failing" notice,
and its next good poll one "recovered" notice, never one per failed poll; across pollers too.

End to end: `livewatch run` polls a local feed that answers 500 and then recovers; the
notices arrive at the operator channel (a local webhook receiver).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from feeds import Item, rss
from servers import FeedServer, WebhookReceiver
from service import Service, record_success, wait_until

from monitor.core import keys
from monitor.core.models import Notice
from monitor.ops.embedded import EmbeddedRedis
from monitor.poll.state import FeedState


async def notices(client: aioredis.Redis) -> list[Notice]:
    found: Any = await client.xrange(keys.NOTICES_STREAM)
    return [Notice.decode(fields["notice"]) for _, fields in found]


async def test_one_failing_and_one_recovered_notice_across_pollers(
        redis_client: aioredis.Redis) -> None:
    pollers = [FeedState(redis_client, max_entries=100, stream_maxlen=1000, failing_after=3)
               for _ in range(2)]
    for round_ in range(4):  # two pollers failing the same feed at once, 8 failures in all
        await asyncio.gather(*(p.record_failure("summit", f"HTTP 500 ({round_})")
                               for p in pollers))
    (failing,) = await notices(redis_client)
    assert failing.kind == "failing" and failing.feed == "summit"
    assert "failed 3 polls in a row" in failing.message and "HTTP 500" in failing.message
    await asyncio.gather(*(record_success(p, "summit", "ok") for p in pollers))
    await record_success(pollers[0], "summit", "not_modified")
    kinds = [n.kind for n in await notices(redis_client)]
    assert kinds == ["failing", "recovered"]
    # A short blip below the threshold says nothing.
    await pollers[0].record_failure("summit", "timeout")
    await record_success(pollers[0], "summit", "ok")
    assert len(await notices(redis_client)) == 2


async def test_threshold_zero_turns_notices_off(redis_client: aioredis.Redis) -> None:
    state = FeedState(redis_client, max_entries=100, stream_maxlen=1000, failing_after=0)
    for _ in range(10):
        await state.record_failure("summit", "HTTP 500")
    await record_success(state, "summit", "ok")
    assert await notices(redis_client) == []


@pytest.mark.slow
async def test_failing_feed_notifies_the_operator_once_then_recovery(
        redis_server: EmbeddedRedis, redis_client: aioredis.Redis, feed_server: FeedServer,
        webhook_receiver: WebhookReceiver, tmp_path: Path, running: list[Service]) -> None:
    feed_server.set("/summit.rss", b"oops", status=500)
    cfg = tmp_path / "livewatch.yaml"
    cfg.write_text(f"""
redis: {{url: "{redis_server.url}"}}
defaults: {{interval: 0.2s, jitter: 0s, timeout: 2s, max_backoff: 0.3s}}
feeds: [{{name: summit, url: "{feed_server.url('/summit.rss')}"}}]
rules: [{{name: r, any: ["coalition of the willing"], channels: [desk]}}]
channels:
  - {{name: desk, type: webhook, url: "{webhook_receiver.url('/desk')}"}}
  - {{name: ops, type: webhook, url: "{webhook_receiver.url('/ops')}"}}
operator: {{channels: [ops], failing_after: 3}}
workers: {{retry_schedule: [100ms]}}
""")
    service = Service(["run", "--config", str(cfg)], tmp_path / "service.log")
    running.append(service)
    service.start()

    async def failed_a_lot() -> bool:
        return feed_server.count("/summit.rss") >= 8

    await wait_until(failed_a_lot, what="eight failed polls", service=service)
    webhook_receiver.wait_for(lambda r: len(r) >= 1)
    feed_server.set("/summit.rss", rss([Item("p1", "Opening", "<p>It opens.</p>", 0)]))
    webhook_receiver.wait_for(lambda r: len(r) >= 2)

    async def polled_fine_again() -> bool:
        health = await redis_client.hgetall(keys.health("summit"))
        return health.get("last_status") in ("ok", "baseline", "not_modified", "unchanged") \
            and feed_server.count("/summit.rss") >= 12

    await wait_until(polled_fine_again, what="good polls after the recovery", service=service)
    bodies = webhook_receiver.bodies()
    assert [(b["type"], b["kind"]) for b in bodies] == [("notice", "failing"),
                                                       ("notice", "recovered")]
    assert all(r.path == "/ops" for r in webhook_receiver.received)
    assert bodies[0]["feed"]["name"] == "summit" and "HTTP 500" in bodies[0]["message"]
