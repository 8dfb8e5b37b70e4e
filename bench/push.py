"""WebSub push: detection latency of a live blog whose hub pushes each update.

    python -m bench.push --updates 30 --duration 60

One `livewatch run` process (pollers and workers, its own redis-server) watches one live-blog
page (schema.org LiveBlogPosting in JSON-LD, `<link rel="hub">` in its head) polled every
60 s. A local hub (in this process, aiohttp) takes livewatch's subscription, verifies it and,
at each of `--updates` random times over `--duration` seconds, the blog gains an update
carrying the watched phrase and the hub POSTs the new page to the callback, signed
(`X-Hub-Signature: sha256=…`); `--thin` sends empty notifications instead (livewatch then
fetches the page). Prints detection latency (update posted -> webhook received) p50/p99/max
against issue 16's target (p99 <= 1 s), alerts missed and duplicated, and page fetches.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import random
import secrets
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from html import escape
from pathlib import Path

import aiohttp
from aiohttp import web

from bench.scaleout import Role
from monitor.ops.embedded import EmbeddedRedis, free_port

PHRASE = "coalition of the willing"
T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)


def page(updates: list[int], hub: str) -> bytes:
    """The live blog with `updates` (newest first), advertising `hub`."""
    posts = [{"@type": "BlogPosting", "@id": f"#update-{n}", "headline": f"Update {n}",
              "articleBody": f"<p>Update {n}: leaders discuss a {PHRASE} for the region.</p>",
              "datePublished": (T0 + timedelta(minutes=n)).isoformat()}
             for n in sorted(updates, reverse=True)]
    ld = json.dumps({"@context": "https://schema.org", "@type": "LiveBlogPosting",
                     "headline": "Summit: live", "coverageStartTime": T0.isoformat(),
                     "liveBlogUpdate": posts}).replace("</", "<\\/")
    blocks = "".join(f'<article id="update-{p["@id"][8:]}"><h2>{escape(str(p["headline"]))}'
                     f"</h2>{p['articleBody']}</article>" for p in posts)
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>Summit: live</title>'
            f'<link rel="hub" href="{escape(hub)}">'
            f'<script type="application/ld+json">{ld}</script></head>'
            f"<body><h1>Summit: live</h1>{blocks}</body></html>").encode()


class Bench:
    """The blog, the hub and the webhook receiver, on one aiohttp app."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.updates: list[int] = [0]
        self.fetches = 0
        self.subscribers: dict[str, str] = {}  # callback -> secret
        self.verified = asyncio.Event()
        self.received: dict[str, list[float]] = {}  # entry id -> arrival times
        self.expected = 0
        self.all_in = asyncio.Event()
        self.session: aiohttp.ClientSession | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/live", self.live)
        app.router.add_post("/hub", self.hub)
        app.router.add_post("/hook", self.hook)
        return app

    def body(self) -> bytes:
        return page(self.updates, self.base + "/hub")

    async def live(self, request: web.Request) -> web.Response:
        self.fetches += 1
        body = self.body()
        etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(body=body, content_type="text/html", headers={"ETag": etag})

    async def hub(self, request: web.Request) -> web.Response:
        form = await request.post()
        task = asyncio.create_task(self.verify({k: str(v) for k, v in form.items()}))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return web.Response(status=202)

    async def verify(self, form: dict[str, str]) -> None:
        assert self.session is not None
        challenge = secrets.token_urlsafe(16)
        params = {"hub.mode": form["hub.mode"], "hub.topic": form["hub.topic"],
                  "hub.challenge": challenge,
                  "hub.lease_seconds": form.get("hub.lease_seconds", "3600")}
        async with self.session.get(form["hub.callback"], params=params) as response:
            confirmed = response.status == 200 and await response.text() == challenge
            if confirmed and form["hub.mode"] == "subscribe":
                self.subscribers[form["hub.callback"]] = form.get("hub.secret", "")
                self.verified.set()

    async def hook(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("type") == "alert":
            self.received.setdefault(body["entry"]["id"], []).append(time.monotonic())
            if len(self.received) >= self.expected:
                self.all_in.set()
        return web.Response(status=204)

    async def publish(self, thin: bool) -> None:
        assert self.session is not None
        body = b"" if thin else self.body()
        for callback, secret in self.subscribers.items():
            signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            async with self.session.post(callback, data=body, headers={
                    "Content-Type": "text/html", "X-Hub-Signature": signature}) as response:
                await response.read()


def config_yaml(base: str, redis_url: str, callback_port: int) -> str:
    return f"""redis: {{url: "{redis_url}"}}
defaults: {{interval: 60s, timeout: 10s}}
websub:
  callback_url: "http://127.0.0.1:{callback_port}/websub"
  listen: "127.0.0.1:{callback_port}"
feeds:
  - {{name: summit, url: "{base}/live"}}
rules:
  - {{name: coalition, any: ["{PHRASE}"], channels: [bench]}}
channels:
  - {{name: bench, type: webhook, url: "{base}/hook"}}
"""


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


async def run(updates: int, duration: float, thin: bool, seed: int) -> None:
    port, callback_port = free_port(), free_port()
    bench = Bench(port)
    bench.expected = updates
    runner = web.AppRunner(bench.app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    bench.session = aiohttp.ClientSession()
    rng = random.Random(seed)
    posted: dict[str, float] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp, \
                EmbeddedRedis(Path(tmp) / "redis", appendonly=False) as redis_server:
            config = Path(tmp) / "livewatch.yaml"
            config.write_text(config_yaml(bench.base, redis_server.url, callback_port))
            role = Role("run", config, Path(tmp), 0)
            try:
                await asyncio.wait_for(bench.verified.wait(), 30)
                await asyncio.sleep(1.0)  # the baseline poll recorded
                start = time.monotonic()
                times = sorted(rng.uniform(0, duration) for _ in range(updates))
                for n, at in enumerate(times, start=1):
                    await asyncio.sleep(max(0.0, start + at - time.monotonic()))
                    bench.updates.append(n)
                    posted[f"{bench.base}/live#update-{n}"] = time.monotonic()
                    await bench.publish(thin)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(bench.all_in.wait(), 10)
            finally:
                role.stop()
    finally:
        await bench.session.close()
        await runner.cleanup()
    report(posted, bench, updates, duration, thin)


def report(posted: dict[str, float], bench: Bench, updates: int, duration: float,
           thin: bool) -> None:
    latencies = [bench.received[i][0] - t for i, t in posted.items() if i in bench.received]
    missed = [i for i in posted if i not in bench.received]
    duplicates = sum(len(v) - 1 for v in bench.received.values())
    print(f"WebSub push, {'thin (empty) notifications: fetched' if thin else 'signed bodies'}"
          f": {updates} updates over {duration:.0f} s, interval 60 s")
    if latencies:
        p50, p99 = statistics.median(latencies), _percentile(latencies, 0.99)
        print(f"detection latency (post -> webhook): p50 {p50 * 1000:.0f} ms, "
              f"p99 {p99 * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms "
              f"(target p99 <= 1 s: {'met' if p99 <= 1.0 else 'NOT met'})")
    print(f"alerts: {len(latencies)} of {updates} ({len(missed)} missed), "
          f"{duplicates} duplicates; page fetches: {bench.fetches}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=30)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds")
    parser.add_argument("--thin", action="store_true",
                        help="empty notifications (livewatch fetches the page)")
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()
    asyncio.run(run(args.updates, args.duration, args.thin, args.seed))


if __name__ == "__main__":
    main()
