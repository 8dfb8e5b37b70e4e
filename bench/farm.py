"""A local feed farm for benchmarks: N feeds (RSS 2.0, Atom, live-blog pages) on 127.0.0.1,
each with ETag/Last-Modified, plus a webhook receiver and a ground-truth log.

    python -m bench.farm --feeds 1000 --port 8765

GET /feed/{i}           the document of feed i (kind by i % 3: rss, atom, liveblog)
POST /_add?k=K          add one post to K feeds (the first K in a rotating order); every other
                        added post carries the watched phrase. Returns the ground truth added.
POST /hook              the webhook receiver (counts alerts by webhook-id, stamps arrival)
GET /_stats             fetch counts, received alerts and the ground truth so far
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any
from xml.sax.saxutils import escape

from aiohttp import web

from monitor.ops.embedded import free_port

PHRASE = "coalition of the willing"
KINDS = ("rss", "atom", "liveblog")
_WORDS = ("ministers", "summit", "talks", "delegation", "statement", "defence", "budget",
          "council", "officials", "negotiators", "ceasefire", "leaders", "reporters",
          "agreement", "proposal", "security", "economy", "pound", "markets", "capital")


def _text(feed: int, post: int, phrase: bool) -> str:
    """About 1 KB of live-blog prose, deterministic per (feed, post)."""
    seed = int(hashlib.blake2b(f"{feed}:{post}".encode(), digest_size=4).hexdigest(), 16)
    words = [_WORDS[((seed ^ (i * 2654435761)) >> 5) % len(_WORDS)] for i in range(90)]
    sentence = " ".join(words)
    middle = f" Officials said a {PHRASE} was taking shape. " if phrase else " "
    return (f"Update {post}: “{sentence[:300].capitalize()}.”{middle}"
            f"{sentence[300:].capitalize()} – £{seed % 900 + 100}m was mentioned.")


@dataclass
class Feed:
    """One simulated feed and its posts (newest last)."""

    index: int
    posts: list[tuple[int, str, float]] = field(default_factory=list)
    version: int = 0
    body: bytes = b""
    modified: float = 0.0

    @property
    def kind(self) -> str:
        return KINDS[self.index % 3]

    def add(self, post: int, phrase: bool) -> None:
        self.posts.append((post, _text(self.index, post, phrase), time.time()))
        del self.posts[:-50]
        self.version += 1
        self.body = b""

    def document(self) -> bytes:
        if not self.body:
            self.body = render(self)
            self.modified = time.time()
        return self.body


def _iso(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


def render(feed: Feed) -> bytes:
    """The feed as its kind's document, newest post first."""
    posts = list(reversed(feed.posts))
    base = f"http://example.org/live/{feed.index}"
    if feed.kind == "rss":
        items = "".join(
            f"<item><guid isPermaLink=\"false\">f{feed.index}-p{p}</guid>"
            f"<title>Update {p}</title><link>{base}#p{p}</link>"
            f"<pubDate>{formatdate(t, usegmt=True)}</pubDate>"
            f"<description>{escape('<p>' + text + '</p>')}</description></item>"
            for p, text, t in posts)
        return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
                f"<title>Feed {feed.index}</title><link>{base}</link>"
                f"<description>bench</description>{items}</channel></rss>").encode()
    if feed.kind == "atom":
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        entries = "".join(
            f"<entry><id>urn:f{feed.index}:p{p}</id><title>Update {p}</title>"
            f"<link href=\"{base}#p{p}\"/><updated>{_iso(t)}</updated>"
            f"<content type=\"html\">{escape('<p>' + text + '</p>')}</content></entry>"
            for p, text, t in posts)
        return (f'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
                f"<id>urn:f{feed.index}</id><title>Feed {feed.index}</title>"
                f"<updated>{stamp}</updated>{entries}</feed>").encode()
    updates = [{"@type": "BlogPosting", "@id": f"{base}#p{p}", "headline": f"Update {p}",
                "articleBody": text,
                "datePublished": _iso(t)}
               for p, text, t in posts]
    data = {"@context": "https://schema.org", "@type": "LiveBlogPosting", "@id": base,
            "headline": f"Live {feed.index}", "liveBlogUpdate": updates}
    return (f"<!doctype html><html><head><title>Live {feed.index}</title>"
            f'<script type="application/ld+json">{json.dumps(data)}</script></head>'
            f"<body><h1>Live {feed.index}</h1></body></html>").encode()


class Farm:
    """The farm's state and its aiohttp handlers."""

    def __init__(self, feeds: int, posts: int = 50) -> None:
        self.feeds = [Feed(i) for i in range(feeds)]
        self.next_post = 0
        for feed in self.feeds:
            for _ in range(posts):
                self.next_post += 1
                feed.add(self.next_post, phrase=False)
        self.cursor = 0
        self.fetches = 0
        self.not_modified = 0
        self.truth: list[dict[str, Any]] = []
        self.alerts: dict[str, dict[str, Any]] = {}
        self.duplicates = 0

    async def feed(self, request: web.Request) -> web.Response:
        feed = self.feeds[int(request.match_info["index"])]
        self.fetches += 1
        body = feed.document()
        etag = f'"v{feed.version}"'
        headers = {"ETag": etag, "Last-Modified": formatdate(feed.modified, usegmt=True)}
        if request.headers.get("If-None-Match") == etag:
            self.not_modified += 1
            return web.Response(status=304, headers=headers)
        content_type = {"rss": "application/rss+xml", "atom": "application/atom+xml",
                        "liveblog": "text/html"}[feed.kind]
        return web.Response(body=body, headers=headers, content_type=content_type,
                            charset="utf-8")

    async def add(self, request: web.Request) -> web.Response:
        count = int(request.query.get("k", "1"))
        added = []
        for _ in range(count):
            feed = self.feeds[self.cursor % len(self.feeds)]
            self.cursor += 1
            self.next_post += 1
            phrase = self.next_post % 2 == 0
            feed.add(self.next_post, phrase)
            record = {"feed": feed.index, "post": self.next_post, "phrase": phrase,
                      "at": time.time()}
            self.truth.append(record)
            added.append(record)
        return web.json_response(added)

    async def hook(self, request: web.Request) -> web.Response:
        body = await request.json()
        alert_id = request.headers.get("webhook-id", "")
        if alert_id in self.alerts:
            self.duplicates += 1
        else:
            self.alerts[alert_id] = {"feed": body["feed"]["name"], "entry": body["entry"]["id"],
                                     "at": time.time(), "detected_at": body.get("detected_at")}
        return web.Response(status=204)

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response({"fetches": self.fetches, "not_modified": self.not_modified,
                                  "alerts": list(self.alerts.values()),
                                  "duplicates": self.duplicates, "truth": self.truth})

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1024**2)
        app.router.add_get("/feed/{index}", self.feed)
        app.router.add_post("/_add", self.add)
        app.router.add_post("/hook", self.hook)
        app.router.add_get("/_stats", self.stats)
        return app


@contextlib.asynccontextmanager
async def serving(farm: Farm, backlog: int = 1024) -> AsyncIterator[str]:
    """`farm` served on a free port of 127.0.0.1 within the block; yields its base URL."""
    port = free_port()
    runner = web.AppRunner(farm.app(), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port, backlog=backlog).start()
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    web.run_app(Farm(args.feeds).app(), host="127.0.0.1", port=args.port, print=None,
                access_log=None)


if __name__ == "__main__":
    main()
