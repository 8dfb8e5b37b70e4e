"""Real local servers for tests: a feed server whose documents change, and a webhook receiver."""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Document:
    """What the feed server answers on one path."""

    body: bytes
    content_type: str = "application/rss+xml; charset=utf-8"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    last_modified: str | None = None
    delay: float = 0.0
    #: Seconds to pause between 64-byte pieces of the body (a server trickling its answer).
    trickle: float = 0.0
    #: Size of each trickled piece (1: one byte at a time).
    trickle_bytes: int = 64
    #: False: answer without an ETag (and never 304), like servers that send no validators.
    send_etag: bool = True
    #: Renders the body afresh for every request, given how many came before on this path
    #: (a feed that churns its GUIDs); `body` is then ignored.
    render: Callable[[int], str] | None = None

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha1(self.body).hexdigest()[:16] + '"'


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet about clients that hung up (size caps and deadlines do that on purpose)."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Base:
    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = _Server(("127.0.0.1", 0), handler)
        self.httpd.owner = self  # type: ignore[attr-defined]
        # A short poll interval: `stop()` (shutdown) waits for it, once per test.
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class FeedServer(_Base):
    """Serves `Document`s by path with ETag/Last-Modified and gzip; counts requests per path."""

    def __init__(self) -> None:
        super().__init__(_FeedHandler)
        self.documents: dict[str, Document] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.stamps: list[tuple[str, float]] = []  # (path, time.monotonic()) per request
        self.lock = threading.Lock()

    def set(self, path: str, body: str | bytes, **kwargs: Any) -> None:
        data = body.encode() if isinstance(body, str) else body
        with self.lock:
            self.documents[path] = Document(data, **kwargs)

    def set_rendered(self, path: str, render: Callable[[int], str], **kwargs: Any) -> None:
        """Serve `render(n)` on the n-th request (from 0) of `path` from now on."""
        with self.lock:
            self.documents[path] = Document(b"", render=render, **kwargs)

    def count(self, path: str) -> int:
        with self.lock:
            return sum(1 for p, _ in self.requests if p == path)

    def longest_gap(self, path: str, since: float) -> float:
        """The longest time (s) without a request of `path` from `since` (monotonic) to now."""
        with self.lock:
            times = [since, *(t for p, t in self.stamps if p == path and t >= since)]
        times.append(time.monotonic())
        return max(b - a for a, b in itertools.pairwise(times))


class _FeedHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        owner: FeedServer = self.server.owner  # type: ignore[attr-defined]
        with owner.lock:
            earlier = sum(1 for p, _ in owner.requests if p == self.path)
            owner.requests.append((self.path, dict(self.headers)))
            owner.stamps.append((self.path, time.monotonic()))
            doc = owner.documents.get(self.path)
        if doc is not None and doc.render is not None:
            doc = replace(doc, body=doc.render(earlier).encode(), render=None)
        if doc is None:
            self._reply(404, b"not found", {"Content-Type": "text/plain"})
            return
        if doc.delay:
            time.sleep(doc.delay)
        validator = {"ETag": doc.etag} if doc.send_etag else {}
        headers = {"Content-Type": doc.content_type, **validator, **doc.headers}
        if doc.last_modified:
            headers["Last-Modified"] = doc.last_modified
        if (doc.send_etag and doc.status == 200
                and self.headers.get("If-None-Match") == doc.etag):
            # A 304 repeats the caching headers a 200 would carry (RFC 9110 §15.4.5).
            self._reply(304, b"", {"ETag": doc.etag, **doc.headers})
            return
        body = doc.body
        if ("gzip" in (self.headers.get("Accept-Encoding") or "") and doc.status == 200
                and "Content-Encoding" not in doc.headers):  # else the body is encoded already
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        self._reply(doc.status, body, headers, doc.trickle, doc.trickle_bytes)

    def _reply(self, status: int, body: bytes, headers: dict[str, str],
               trickle: float = 0.0, piece: int = 64) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            if not trickle:
                self.wfile.write(body)
                return
            for start in range(0, len(body), piece):
                self.wfile.write(body[start:start + piece])
                self.wfile.flush()
                time.sleep(trickle)
        except OSError:  # the client gave up (as deadline and size-cap tests expect)
            self.close_connection = True


@dataclass
class Received:
    """One request the webhook receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class WebhookReceiver(_Base):
    """Records POSTs; `responder` decides the status (default 200) and extra headers."""

    def __init__(self) -> None:
        super().__init__(_WebhookHandler)
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self.responder: Callable[[Received], tuple[int, dict[str, str]]] = lambda _: (200, {})

    def bodies(self) -> list[Any]:
        with self.lock:
            return [r.json() for r in self.received]

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if predicate(list(self.received)):
                    return
            time.sleep(0.02)
        with self.lock:
            got = [r.body[:200] for r in self.received]
        raise AssertionError(f"webhook condition not met within {timeout}s; received {got}")


class _WebhookHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        owner: WebhookReceiver = self.server.owner  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        request = Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                           self.rfile.read(length))
        status, headers = owner.responder(request)
        if 200 <= status < 300:
            with owner.lock:
                owner.received.append(request)
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", "0")
        self.end_headers()


def recording(receiver: WebhookReceiver,
              statuses: list[tuple[int, dict[str, str]]]) -> list[Received]:
    """Answer with `statuses` in turn (then 200) and record every request, accepted or not."""
    seen: list[Received] = []

    def respond(request: Received) -> tuple[int, dict[str, str]]:
        seen.append(request)
        return statuses.pop(0) if statuses else (200, {})

    receiver.responder = respond
    return seen


def wait_until_sync(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll `predicate` (set by the SMTP server's thread) until it holds or the deadline passes."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.01)
