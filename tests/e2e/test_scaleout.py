"""Scale-out (issue 6), short form: two `livewatch poller` and two `livewatch worker` processes
share one private redis-server and 200 feeds polled every 2 s.

A local farm (aiohttp, on this test's loop) serves the feeds with ETags, counts every fetch
per feed and receives the webhooks, counted by `webhook-id`. Posts are added to some feeds
during the run (the ground truth); one poller is SIGKILLed right after a round of posts.
Checked: each feed is fetched about once per interval in all (not once per poller), every
post with the watched phrase gives exactly one alert (none missed, none twice), and the
surviving poller takes over the killed one's feeds.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from feeds import Item, rss
from service import Service, cluster_redis_yaml, wait_until

from monitor.core import keys
from monitor.ops.embedded import EmbeddedRedis, LocalCluster, free_port

pytestmark = pytest.mark.slow

FEEDS = 200
INTERVAL = 2.0
PHRASE = "coalition of the willing"


class Farm:
    """200 RSS feeds with ETags, per-feed fetch times, and a webhook receiver."""

    def __init__(self, feeds: int) -> None:
        self.items: list[list[Item]] = [
            [Item(f"f{i}-p{n}", f"Update {n}", f"<p>Feed {i} opens, part {n}.</p>", n)
             for n in range(3)] for i in range(feeds)]
        self.bodies = [rss(items).encode() for items in self.items]
        self.versions = [0] * feeds
        self.fetches: list[list[float]] = [[] for _ in range(feeds)]
        self.alerts: Counter[str] = Counter()
        self.alerted: dict[str, tuple[str, str]] = {}
        #: (feed name, entry id) of every added post that carries the phrase.
        self.truth: set[tuple[str, str]] = set()
        self.port = free_port()

    def add(self, feed: int, phrase: bool) -> None:
        n = len(self.items[feed])
        text = (f"<p>Ministers said a {PHRASE} was forming (feed {feed}, post {n}).</p>"
                if phrase else f"<p>Talks go on in feed {feed}, post {n}.</p>")
        self.items[feed].append(Item(f"f{feed}-p{n}", f"Update {n}", text, n))
        self.bodies[feed] = rss(self.items[feed]).encode()
        self.versions[feed] += 1
        if phrase:
            self.truth.add((f"f{feed}", f"f{feed}-p{n}"))

    def fetched_between(self, start: float, end: float) -> list[int]:
        return [sum(1 for t in times if start <= t < end) for times in self.fetches]

    async def feed(self, request: web.Request) -> web.Response:
        index = int(request.match_info["index"])
        self.fetches[index].append(time.monotonic())
        etag = f'"v{self.versions[index]}"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(body=self.bodies[index], headers={"ETag": etag},
                            content_type="application/rss+xml", charset="utf-8")

    async def hook(self, request: web.Request) -> web.Response:
        body = await request.json()
        alert_id = request.headers["webhook-id"]
        self.alerts[alert_id] += 1
        self.alerted[alert_id] = (body["feed"]["name"], body["entry"]["id"])
        return web.Response(status=204)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
async def farm() -> AsyncIterator[Farm]:
    farm = Farm(FEEDS)
    app = web.Application()
    app.router.add_get("/feed/{index}", farm.feed)
    app.router.add_post("/hook", farm.hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", farm.port, backlog=512).start()
    yield farm
    await runner.cleanup()


def config_yaml(redis: str, farm: Farm) -> str:
    feeds = "\n".join(f'  - {{name: f{i}, url: "{farm.url(f"/feed/{i}")}"}}'
                      for i in range(FEEDS))
    return f"""
{redis}
defaults: {{interval: {INTERVAL}s, timeout: 3s, max_concurrency: 50}}
fetch: {{parse_timeout: 2s}}
feeds:
{feeds}
rules: [{{name: coalition, any: ["{PHRASE}"], channels: [hook]}}]
channels: [{{name: hook, type: webhook, url: "{farm.url('/hook')}"}}]
workers: {{concurrency: 8, claim_idle: 2s, delivery_lease: 5s, retry_schedule: [200ms],
           shutdown_timeout: 1s}}
"""


async def test_two_pollers_two_workers_share_the_feeds(
        redis_server: EmbeddedRedis, redis_client: aioredis.Redis, farm: Farm, tmp_path: Path,
        running: list[Service]) -> None:
    await scale_out(f'redis: {{url: "{redis_server.url}"}}', redis_client, farm, tmp_path,
                    running)


async def test_scale_out_on_a_redis_cluster(
        redis_cluster: LocalCluster, cluster_client: aioredis.Redis, farm: Farm,
        tmp_path: Path, running: list[Service]) -> None:
    """The same run on a 3-master cluster: feeds and their events spread over partitions on
    every master; the outbox on one."""
    await scale_out(cluster_redis_yaml(redis_cluster.url), cluster_client, farm, tmp_path,
                    running)
    masters = {redis_cluster.slot_owner(part.events) for part in keys.partitions()}
    assert len(masters) == 3, masters


async def scale_out(redis: str, redis_client: aioredis.Redis, farm: Farm, tmp_path: Path,
                    running: list[Service]) -> None:
    """Two pollers and two workers share the farm; one poller is SIGKILLed half-way."""
    cfg = tmp_path / "livewatch.yaml"
    cfg.write_text(config_yaml(redis, farm))
    roles = ["worker", "worker", "poller", "poller"]
    services = [Service([role, "--config", str(cfg), "--log-level", "WARNING"],
                        tmp_path / f"{role}{n}.log") for n, role in enumerate(roles)]
    running.extend(services)
    for service in services:
        service.start()
    workers, pollers = services[:2], services[2:]

    async def all_baselined() -> bool:
        async with redis_client.pipeline(transaction=False) as pipe:
            for i in range(FEEDS):
                pipe.hget(keys.meta(f"f{i}"), "baselined")
            return all(flag == "1" for flag in await pipe.execute())

    await wait_until(all_baselined, timeout=30, what="every feed baselined",
                     service=pollers[0])

    async def delivered() -> bool:
        return set(farm.alerted.values()) >= farm.truth

    # Round 1, both pollers alive: 20 posts, half with the phrase; measure the fetch rate.
    window_start = time.monotonic()
    for i in range(0, FEEDS, 10):
        farm.add(i, phrase=i % 20 == 0)
    await wait_until(delivered, timeout=20, what="round 1 alerts", service=workers[0])

    async def measured() -> bool:
        return time.monotonic() - window_start >= 4 * INTERVAL

    await wait_until(measured, timeout=20, what="a measuring window")
    window = time.monotonic() - window_start
    counts = farm.fetched_between(window_start, window_start + window)
    per_interval = sum(counts) / FEEDS / (window / INTERVAL)
    # Jitter adds up to a tenth of the interval to each turn, so slightly under 1; two
    # pollers each polling every feed would give ~2.
    assert 0.7 <= per_interval <= 1.15, (per_interval, Counter(counts))
    assert max(counts) <= window / INTERVAL + 2, Counter(counts)

    # Round 2, then SIGKILL one poller at once: polls of these posts may be cut mid-way.
    for i in range(3, FEEDS, 10):
        farm.add(i, phrase=True)
    pollers[0].kill()
    killed_at = time.monotonic()
    await wait_until(delivered, timeout=30, what="round 2 alerts after the kill",
                     service=pollers[1])

    # Round 3, one poller left: it has taken over every feed.
    for i in range(7, FEEDS, 10):
        farm.add(i, phrase=i % 20 == 7)
    farm.add(5, phrase=True)  # a second post on a feed already alerted on
    await wait_until(delivered, timeout=20, what="round 3 alerts", service=pollers[1])

    async def all_polled_since_kill() -> bool:
        return min(farm.fetched_between(killed_at + 1, time.monotonic())) >= 1

    await wait_until(all_polled_since_kill, timeout=20,
                     what="every feed polled by the surviving poller")
    await asyncio.sleep(0)

    # Every phrase post alerted exactly once; nothing alerted that was not posted.
    assert len(farm.truth) == 10 + 20 + 10 + 1
    assert set(farm.alerted.values()) == farm.truth
    assert len(farm.alerted) == len(farm.truth)
    assert [n for n in farm.alerts.values() if n != 1] == []
    for service in (pollers[1], *workers):
        assert service.stop() == 0, service.logs()[-3000:]
