"""A WebSub hub of our own on 127.0.0.1 (http.server in a thread): takes subscribe and
unsubscribe requests (202), verifies intent by a GET to the callback with `hub.challenge`
(from a thread of its own, after answering), and publishes by POSTing content to each
verified subscriber with `X-Hub-Signature: sha256=HMAC(secret, body)`."""

from __future__ import annotations

import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from servers import _Base

from monitor.push.signature import sign


@dataclass
class Verification:
    """One verification of intent the hub made, and whether the subscriber confirmed it."""

    mode: str
    topic: str
    callback: str
    lease: int | None
    confirmed: bool
    at: float
    #: The subscriber's response headers.
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class HubSubscription:
    topic: str
    callback: str
    secret: str
    lease_until: float


class Hub(_Base):
    """`lease_seconds`: the lease granted (None: what was asked). `refuse`: answer this many
    next requests 500. `verify`: False to accept requests and never verify them. `status`: the
    answer to a valid request (202). `redirect`: a path POSTs elsewhere are sent to (307).
    `paths`: the path of each request."""

    def __init__(self) -> None:
        super().__init__(_HubHandler)
        self.lock = threading.Lock()
        self.requests: list[dict[str, str]] = []
        self.verifications: list[Verification] = []
        self.subscriptions: dict[tuple[str, str], HubSubscription] = {}
        self.lease_seconds: int | None = None
        self.refuse = 0
        self.verify = True
        self.status = 202
        self.redirect: str | None = None
        self.paths: list[str] = []
        self._threads: list[threading.Thread] = []

    def requested(self, mode: str) -> list[dict[str, str]]:
        with self.lock:
            return [r for r in self.requests if r.get("hub.mode") == mode]

    def confirmed(self, mode: str = "subscribe", topic: str | None = None) -> list[Verification]:
        with self.lock:
            return [v for v in self.verifications if v.confirmed and v.mode == mode
                    and (topic is None or v.topic == topic)]

    def subscribers(self, topic: str) -> list[HubSubscription]:
        with self.lock:
            return [s for s in self.subscriptions.values() if s.topic == topic]

    def publish(self, topic: str, body: bytes, content_type: str = "application/atom+xml", *,
                signature: Callable[[HubSubscription], str | None] | None = None) -> list[int]:
        """POST `body` to every subscriber of `topic` (blocking: call it from a thread when
        the subscriber runs on this thread's event loop); their statuses. `signature` may
        replace the header (None: leave it out)."""
        statuses = []
        for sub in self.subscribers(topic):
            header = sign(sub.secret, body) if signature is None else signature(sub)
            headers = {"Content-Type": content_type, "Link": f'<{topic}>; rel="self"'}
            if header is not None:
                headers["X-Hub-Signature"] = header
            request = urllib.request.Request(sub.callback, data=body, headers=headers,
                                             method="POST")
            statuses.append(_status(request))
        return statuses

    def deny(self, topic: str, callback: str, reason: str = "not allowed") -> int:
        """Tell `callback` its subscription to `topic` is denied (blocking, as `publish`)."""
        query = urllib.parse.urlencode({"hub.mode": "denied", "hub.topic": topic,
                                        "hub.reason": reason})
        return _status(urllib.request.Request(f"{callback}?{query}"))

    def _verify(self, form: dict[str, str]) -> None:
        mode, topic, callback = form["hub.mode"], form["hub.topic"], form["hub.callback"]
        challenge = secrets.token_urlsafe(16)
        lease = None
        params = {"hub.mode": mode, "hub.topic": topic, "hub.challenge": challenge}
        if mode == "subscribe":
            lease = self.lease_seconds or int(form.get("hub.lease_seconds") or 3600)
            params["hub.lease_seconds"] = str(lease)
        sep = "&" if "?" in callback else "?"
        url = f"{callback}{sep}{urllib.parse.urlencode(params)}"
        headers: dict[str, str] = {}
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                confirmed = response.status == 200 and response.read().decode() == challenge
                headers = dict(response.headers.items())
        except (urllib.error.URLError, OSError):
            confirmed = False
        with self.lock:
            self.verifications.append(Verification(mode, topic, callback, lease, confirmed,
                                                   time.monotonic(), headers))
            if confirmed and mode == "subscribe":
                self.subscriptions[(topic, callback)] = HubSubscription(
                    topic, callback, form.get("hub.secret", ""),
                    time.time() + (lease or 0))
            elif confirmed:
                self.subscriptions.pop((topic, callback), None)

    def stop(self) -> None:
        super().stop()
        for thread in list(self._threads):
            thread.join(5)


def _status(request: urllib.request.Request) -> int:
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


class _HubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        hub: Hub = self.server.owner  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        form = {k: v[0] for k, v in urllib.parse.parse_qs(self.rfile.read(length).decode(),
                                                          keep_blank_values=True).items()}
        if hub.redirect is not None and self.path != hub.redirect:
            with hub.lock:
                hub.paths.append(self.path)
            self.send_response(307)
            self.send_header("Location", hub.redirect)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        with hub.lock:
            hub.paths.append(self.path)
            hub.requests.append(form)
            refuse = hub.refuse > 0
            hub.refuse -= refuse
        valid = form.get("hub.mode") in ("subscribe", "unsubscribe") and \
            bool(form.get("hub.topic")) and bool(form.get("hub.callback"))
        status = 500 if refuse else hub.status if valid else 400
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()
        if 200 <= status < 300 and hub.verify:
            thread = threading.Thread(target=hub._verify, args=(form,), daemon=True)
            hub._threads.append(thread)
            thread.start()
