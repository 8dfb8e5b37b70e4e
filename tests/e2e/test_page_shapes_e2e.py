"""Real live-blog shapes through the whole service (`livewatch run` as a process, a private
redis-server, pages and a webhook receiver on 127.0.0.1): JSON-LD that cuts every body short
and has no ids (joined with its markup), a German heading ticker with no structured data, and
a page rendered from `__NEXT_DATA__`. Each gains an update whose phrase sits where only the
full text has it, and has one edited: the receiver gets exactly those `new` and `updated`
alerts, under the markup's ids."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from servers import FeedServer, WebhookReceiver
from service import Service, baselined, stream_idle, wait_until

from monitor.ops.embedded import EmbeddedRedis

pytestmark = pytest.mark.slow

HTML = "text/html; charset=utf-8"
#: Characters of each body the structured data keeps (the rest only the markup shows).
CUT = 60


@dataclass
class Post:
    number: int
    title: str
    body: str
    minute: int


def structured_page(posts: list[Post]) -> str:
    """JSON-LD without ids whose bodies stop mid-word at CUT; the markup has it all."""
    ld = {"@context": "https://schema.org", "@type": "LiveBlogPosting", "headline": "Summit",
          "liveBlogUpdate": [{"@type": "BlogPosting", "headline": p.title,
                              "datePublished": f"2025-03-02T10:{p.minute:02d}:00Z",
                              "articleBody": p.body[:CUT]} for p in reversed(posts)]}
    blocks = "".join(
        f'<article class="post" id="p-{p.number}"><time datetime="2025-03-02T10:{p.minute:02d}'
        f':00Z">10:{p.minute:02d}</time><h2>{p.title}</h2><p>{p.body}</p></article>'
        for p in reversed(posts))
    return (f'<!doctype html><html><head><script type="application/ld+json">{json.dumps(ld)}'
            f'</script></head><body><main><h1>Summit</h1>{blocks}</main></body></html>')


def ticker_page(posts: list[Post]) -> str:
    """Time headings with loose paragraphs, no structured data."""
    parts = "".join(f'<h3 id="t-{p.number}">10.{p.minute:02d} Uhr: {p.title}</h3><p>{p.body}</p>'
                    for p in reversed(posts))
    return ('<!doctype html><html><head><meta name="last-modified" '
            'content="2025-03-02T11:00:00+01:00"></head><body><main><h1>Liveticker</h1>'
            f"{parts}</main></body></html>")


def state_page(posts: list[Post]) -> str:
    """An empty shell rendered by JavaScript from `__NEXT_DATA__`."""
    state = {"props": {"pageProps": {"blog": {"posts": [
        {"id": f"post-{p.number}", "title": p.title,
         "publishedAt": f"2025-03-02T10:{p.minute:02d}:00Z",
         "body": [{"type": "paragraph", "text": p.body}]} for p in reversed(posts)]}}}}
    return ('<!doctype html><html><body><div id="__next"></div><script id="__NEXT_DATA__" '
            f'type="application/json">{json.dumps(state)}</script></body></html>')


PAGES = {"/live/ld": structured_page, "/live/ticker": ticker_page, "/live/state": state_page}
FILLER = {"/live/ld": "Delegations spent the morning on procedure and seating plans, and ",
          "/live/ticker": "Die Delegationen verbrachten den Vormittag mit Verfahrensfragen, und ",
          "/live/state": "Las delegaciones pasaron la mañana con cuestiones de procedimiento, y "}
PHRASE = {"/live/ld": "a coalition of the willing formed.",
          "/live/ticker": "eine Koalition der Willigen entstand.",
          "/live/state": "se formó una coalición de los dispuestos."}


def config_yaml(redis_url: str, feeds: FeedServer, hook: WebhookReceiver) -> str:
    feed_lines = "\n".join(f'  - {{name: {path.rsplit("/", 1)[1]}, url: "{feeds.url(path)}"}}'
                           for path in PAGES)
    return f"""
redis: {{url: "{redis_url}"}}
defaults: {{interval: 0.3s, jitter: 0s, timeout: 3s, max_backoff: 1s}}
feeds:
{feed_lines}
rules:
  - name: coalition
    any: ["coalition of the willing", "Koalition der Willigen", "coalición de los dispuestos"]
    channels: [hook]
channels:
  - {{name: hook, type: webhook, url: "{hook.url('/alerts')}"}}
workers: {{claim_idle: 2s, retry_schedule: [100ms]}}
"""


def wait_for_count(hook: WebhookReceiver, count: int) -> None:
    hook.wait_for(lambda received: len(received) >= count, timeout=15)


def alerts(hook: WebhookReceiver) -> list[tuple[str, str, str]]:
    return [(b["event"], b["feed"]["name"], b["entry"]["id"])
            for b in hook.bodies() if b.get("type") == "alert"]


async def polled(feeds: FeedServer, client: aioredis.Redis) -> None:
    """Two more fetches of every page from now, and an idle events stream."""
    start = {path: feeds.count(path) for path in PAGES}

    async def done() -> bool:
        return all(feeds.count(p) >= start[p] + 2 for p in PAGES) and await stream_idle(client)

    await wait_until(done, timeout=15, what="two polls of every page and an idle stream")


async def test_page_shapes_gain_and_edit_updates(
        redis_server: EmbeddedRedis, redis_client: aioredis.Redis, feed_server: FeedServer,
        webhook_receiver: WebhookReceiver, tmp_path: Path, running: list[Service]) -> None:
    posts = {path: [Post(1, "Opening", FILLER[path] + PHRASE[path], 1),  # baseline: no alert
                    Post(2, "Arrivals", FILLER[path] + "the talks began at noon.", 2),
                    Post(3, "Lunch", FILLER[path] + "lunch was served late.", 3)]
             for path in PAGES}
    for path, render in PAGES.items():
        feed_server.set(path, render(posts[path]), content_type=HTML)
    cfg = tmp_path / "livewatch.yaml"
    cfg.write_text(config_yaml(redis_server.url, feed_server, webhook_receiver))
    service = Service(["run", "--config", str(cfg), "--log-format", "json"],
                      tmp_path / "service.log")
    running.append(service)
    service.start()
    for name in ("ld", "ticker", "state"):
        await wait_until(lambda f=name: baselined(redis_client, f), what=f"{name} baseline",
                         service=service)
    await polled(feed_server, redis_client)
    assert alerts(webhook_receiver) == []
    expected: list[tuple[str, str, str]] = []
    ids = {"/live/ld": "#p-{}", "/live/ticker": "#t-{}", "/live/state": "#post-{}"}

    # A new update on each page, the phrase past the structured data's cut: `new` alerts.
    for path, render in PAGES.items():
        posts[path].append(Post(4, "Statement", FILLER[path] + PHRASE[path], 4))
        feed_server.set(path, render(posts[path]), content_type=HTML)
        expected.append(("new", path.rsplit("/", 1)[1],
                         feed_server.url(path) + ids[path].format(4)))
        wait_for_count(webhook_receiver, len(expected))
    # Each page's second update edited to add the phrase: `updated`, under the same id.
    for path, render in PAGES.items():
        posts[path][1] = Post(2, "Arrivals", FILLER[path] + PHRASE[path], 2)
        feed_server.set(path, render(posts[path]), content_type=HTML)
        expected.append(("updated", path.rsplit("/", 1)[1],
                         feed_server.url(path) + ids[path].format(2)))
        wait_for_count(webhook_receiver, len(expected))
    await polled(feed_server, redis_client)
    assert service.stop() == 0
    assert alerts(webhook_receiver) == expected
    assert len({r.headers["webhook-id"] for r in webhook_receiver.received}) == len(expected)
