"""`livewatch demo`: a simulated live blog on 127.0.0.1, monitored end to end.

It serves an RSS live blog that gains a post every few seconds (some with the watched phrase,
some near-misses, one edited to add it, one edited for a typo), runs the full service on the
embedded Redis, and prints every alert that reaches a local, signature-checking webhook receiver.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import click
from rich.console import Console

from monitor.config.loader import parse_config
from monitor.ops.logs import configure_logging
from monitor.ops.runtime import connect_redis, install_stop_signals
from workers.channels.webhook import verify
from workers.service import run_all

console = Console(highlight=False, soft_wrap=True)


@dataclass
class Post:
    """One live-blog update."""

    guid: str
    title: str
    html: str
    author: str
    published: datetime


#: The demo's script: (action, guid, title, html). `edit` replaces an earlier post's text.
SCRIPT: list[tuple[str, str, str, str]] = [
    ("add", "p1", "Leaders arrive for the defence summit",
     "<p>Delegations from fourteen countries are arriving at the conference centre, where "
     "the host has promised “frank talks” about security guarantees.</p>"),
    ("add", "p2", "Foreign secretary hints at a European force",
     "<p>Asked whether Britain would join a <em>coalition of the willing</em>, the foreign "
     "secretary said “nothing is off the table” and that £2bn had been set aside.</p>"),
    ("add", "p3", "Opposition questions the cost",
     "<p>The shadow chancellor said a coalition of the unwilling would be a poor use of "
     "public money, and accused ministers of a lack of willingness to publish costings.</p>"),
    ("add", "p4", "Markets steady as talks begin",
     "<p>The pound edged up against the dollar while traders waited for a statement.</p>"),
    ("edit", "p4", "Markets steady as talks begin",
     "<p>The pound edged up against the dollar while traders waited for a statement on a "
     "possible Coalition-of-the-Willing force, which analysts say could reassure investors.</p>"
     ),
    ("add", "p5", "Prime minister: “boots on the ground” possible",
     "<p>The prime minister told reporters that British <strong>boots on the ground</strong> "
     "were possible as part of any agreed peace deal.</p>"),
    ("edit", "p2", "Foreign secretary hints at a European force",
     "<p>Asked whether Britain would join a <em>coalition of the willing</em>, the foreign "
     "secretary said “nothing is off the table” and that £2bn has been set aside.</p>"),
    ("add", "p6", "Football: summit traffic delays kick-off",
     "<p>A coalition of the willing supporters helped clear the stadium approach after "
     "road closures delayed the evening’s football match.</p>"),
]


class LiveBlog:
    """The simulated live blog: a thread-safe list of posts rendered as RSS 2.0."""

    def __init__(self) -> None:
        self.posts: dict[str, Post] = {}
        self.lock = threading.Lock()
        #: Set once the blog has been fetched (the baseline): the script starts then.
        self.watched = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def watch(self) -> None:
        """From now on, a fetch (in the server's thread) sets `watched` on this event loop."""
        self._loop = asyncio.get_running_loop()

    def fetched(self) -> None:
        """Called by the server's thread for each fetch."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.watched.set)

    def apply(self, action: str, guid: str, title: str, html: str) -> None:
        """Add a post, or replace the text of an existing one."""
        with self.lock:
            if action == "edit" and guid in self.posts:
                self.posts[guid].html = html
            else:
                self.posts[guid] = Post(guid, title, html, "Demo Desk", datetime.now(UTC))

    def rss(self, base_url: str) -> bytes:
        """The feed, newest post first."""
        with self.lock:
            posts = sorted(self.posts.values(), key=lambda p: p.published, reverse=True)
        items = "".join(
            f"<item><guid isPermaLink=\"false\">{p.guid}</guid>"
            f"<title>{escape(p.title)}</title><link>{base_url}/live#{p.guid}</link>"
            f"<author>{escape(p.author)}</author>"
            f"<pubDate>{format_datetime(p.published)}</pubDate>"
            f"<description>{escape(p.html)}</description></item>" for p in posts)
        return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
                f"<title>Defence summit: live</title><link>{base_url}/live</link>"
                f"<description>Simulated live blog</description>{items}</channel></rss>"
                ).encode()


def _handler(blog: LiveBlog, secret: bytes) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            if self.path != "/live.rss":
                self.send_error(404)
                return
            port = self.server.server_address[1]  # type: ignore[index]
            body = blog.rss(f"http://127.0.0.1:{port}")
            blog.fetched()
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            valid = verify(secret, str(self.headers.get("webhook-id")),
                           str(self.headers.get("webhook-timestamp")), body.decode(),
                           self.headers.get("webhook-signature") or "")
            self.send_response(204 if valid else 401)
            self.end_headers()
            if valid:
                _print_alert(json.loads(body))

    return Handler


def _print_alert(alert: dict[str, Any]) -> None:
    entry = alert["entry"]
    console.print(f"[bold green]ALERT[/] ({alert['event']}) rule [bold]{alert['rule']}[/]: "
                  f"{entry['title']}")
    for match in alert["matches"]:
        console.print(f"    “{match['snippet']}”  [dim](term: {match['term']})[/]")
    console.print(f"    [dim]{entry['url']} · webhook-id {alert['id']}[/]")


DEMO_CONFIG = """
redis: {{url: embedded, data_dir: "{data_dir}"}}
defaults: {{interval: {interval}s, jitter: 0s, timeout: 5s}}
feeds:
  - {{name: summit-live, url: "{feed_url}", kind: rss}}
rules:
  - name: coalition
    any: ["coalition of the willing", "boots on the ground"]
    none: ["football"]
    channels: [console-webhook]
channels:
  - {{name: console-webhook, type: webhook, url: "{hook_url}", secret: "{secret}"}}
workers: {{claim_idle: 5s, retry_schedule: [200ms, 1s, 5s]}}
"""


async def _play(blog: LiveBlog, every: float) -> None:
    # The script's clock starts at the first poll: posts before it would be in the baseline.
    await blog.watched.wait()
    for action, guid, title, html in SCRIPT[1:]:
        await asyncio.sleep(every)
        blog.apply(action, guid, title, html)
        verb = "edited " if action == "edit" else "posted "
        console.print(f"[cyan]live blog {verb}[/] {guid}: {title}")
    console.print("[cyan]script finished;[/] still monitoring (Ctrl-C to stop)")


@click.command("demo")
@click.option("--every", default=4.0, show_default=True, help="Seconds between live-blog posts.")
@click.option("--interval", default=2.0, show_default=True, help="Seconds between polls.")
@click.option("--duration", type=float, default=None,
              help="Stop after this many seconds (default: run until Ctrl-C).")
@click.option("--log-level", default="WARNING", show_default=True)
def demo(every: float, interval: float, duration: float | None, log_level: str) -> None:
    """Watch a simulated live blog on 127.0.0.1 and print the alerts it triggers."""
    configure_logging("console", log_level)
    blog = LiveBlog()
    blog.apply(*SCRIPT[0])  # the first post exists before monitoring starts (baseline)
    key = secrets.token_bytes(24)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(blog, key))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    with tempfile.TemporaryDirectory(prefix="livewatch-demo-") as tmp:
        config = parse_config(DEMO_CONFIG.format(
            data_dir=Path(tmp), interval=interval, feed_url=f"{base}/live.rss",
            hook_url=f"{base}/hook",
            secret="whsec_" + base64.b64encode(key).decode()), "<demo>")
        console.print(f"[bold]livewatch demo[/]: live blog at {base}/live.rss, webhook "
                      f"receiver at {base}/hook, watching for “coalition of the willing” and "
                      f"“boots on the ground” (vetoed by “football”)")
        asyncio.run(_main(config, blog, every, duration))
    server.shutdown()


async def _main(config: Any, blog: LiveBlog, every: float, duration: float | None) -> None:
    stop = asyncio.Event()
    install_stop_signals(stop)
    if duration is not None:
        asyncio.get_running_loop().call_later(duration, stop.set)
    async with connect_redis(config) as client:
        blog.watch()
        player = asyncio.create_task(_play(blog, every))
        try:
            await run_all(config, client, stop)
        finally:
            player.cancel()
