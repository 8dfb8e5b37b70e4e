"""Who may use the console: bearer tokens (`console.tokens`), signed session cookies for the
pages, CSRF tokens bound to a session, signed one-click links, and the sign-in rate limit.

Everything is signed with `console.signing_key` (HMAC-SHA256). A session names its token and
carries a digest of the token's value, so removing or rotating a token in the YAML ends the
sessions made with it. Token values are compared in constant time and never logged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from monitor.config.console import ConsoleSettings, Scope
from monitor.core import keys

#: Failed sign-ins allowed per client address within `LOGIN_WINDOW` seconds.
LOGIN_LIMIT = 10
LOGIN_WINDOW = 300


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: a token's name and scope (or a one-click link's purpose)."""

    name: str
    scope: Scope

    @property
    def admin(self) -> bool:
        """True when it may change state."""
        return self.scope == "admin"


class LinkError(ValueError):
    """A one-click link that is malformed, tampered with or expired."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Auth:
    """Checks and issues the console's credentials for one configuration."""

    def __init__(self, settings: ConsoleSettings) -> None:
        key = settings.signing_key.get_secret_value() if settings.signing_key else ""
        self._key = key.encode()
        self.session_ttl = settings.session
        self.link_ttl = settings.link_ttl
        self._tokens = [(t.name, t.scope, t.token.get_secret_value().encode())
                        for t in settings.tokens]

    @staticmethod
    def _same(presented: str, expected: str) -> bool:
        """Constant-time equality; False for text that is not ASCII (compare_digest refuses
        it)."""
        try:
            return hmac.compare_digest(presented.encode("ascii"), expected.encode("ascii"))
        except UnicodeEncodeError:
            return False

    def _sign(self, purpose: str, text: str) -> str:
        mac = hmac.new(self._key, f"{purpose}\n{text}".encode(), hashlib.sha256)
        return _b64(mac.digest())

    def _digest(self, secret: bytes) -> str:
        return hashlib.sha256(secret).hexdigest()[:16]

    def token(self, presented: str) -> Principal | None:
        """The principal of a bearer token (every configured one is compared, in constant
        time), None when it matches none."""
        found = None
        candidate = presented.encode()
        for name, scope, secret in self._tokens:
            if hmac.compare_digest(candidate, secret):
                found = Principal(name, scope)
        return found

    def bearer(self, header: str | None) -> Principal | None:
        """The principal of an `Authorization: Bearer …` header, if valid."""
        if not header or not header.startswith("Bearer "):
            return None
        return self.token(header[7:].strip())

    def session_cookie(self, presented: str, now: float | None = None) -> str | None:
        """A session cookie's value for a sign-in with `presented`, None if no such token."""
        principal = self.token(presented)
        if principal is None:
            return None
        expires = int((time.time() if now is None else now) + self.session_ttl)
        body = f"{principal.name}|{expires}|{self._digest(presented.encode())}"
        return f"{_b64(body.encode())}.{self._sign('session', body)}"

    def session(self, cookie: str | None, now: float | None = None) -> Principal | None:
        """The principal of a session cookie, None when missing, forged, expired or made with a
        token no longer configured."""
        if not cookie or "." not in cookie:
            return None
        encoded, signature = cookie.rsplit(".", 1)
        try:
            body = _unb64(encoded).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        if not self._same(signature, self._sign("session", body)):
            return None
        try:
            name, expires, digest = body.split("|")
            if int(expires) < (time.time() if now is None else now):
                return None
        except ValueError:
            return None
        for token_name, scope, secret in self._tokens:
            if token_name == name and self._same(digest, self._digest(secret)):
                return Principal(name, scope)
        return None

    def csrf(self, binding: str) -> str:
        """The CSRF token of forms in a session (or a link page): bound to `binding`."""
        return self._sign("csrf", binding)[:32]

    def csrf_ok(self, binding: str, presented: str | None) -> bool:
        """True when `presented` is `binding`'s CSRF token."""
        return bool(presented) and self._same(str(presented), self.csrf(binding))

    def link(self, action: str, params: dict[str, str], now: float | None = None) -> str:
        """A one-click link token for `action` with `params`, valid `link_ttl` seconds."""
        expires = int((time.time() if now is None else now) + self.link_ttl)
        body = json.dumps({"a": action, "p": params, "e": expires}, separators=(",", ":"),
                          sort_keys=True)
        return f"{_b64(body.encode())}.{self._sign('link', body)}"

    def open_link(self, token: str, now: float | None = None) -> tuple[str, dict[str, Any]]:
        """(action, params) of a link token; LinkError when malformed, forged or expired."""
        if "." not in token:
            raise LinkError("this link is malformed")
        encoded, signature = token.rsplit(".", 1)
        try:
            body = _unb64(encoded).decode()
        except (ValueError, UnicodeDecodeError) as exc:
            raise LinkError("this link is malformed") from exc
        if not self._same(signature, self._sign("link", body)):
            raise LinkError("this link's signature is not valid")
        try:
            data = json.loads(body)
            expires, action, params = int(data["e"]), str(data["a"]), dict(data["p"])
        except (ValueError, KeyError, TypeError) as exc:
            raise LinkError("this link is malformed") from exc
        if expires < (time.time() if now is None else now):
            raise LinkError("this link has expired")
        return action, params


def client_address(remote: str | None, forwarded_for: str | None,
                   trusted: Sequence[str]) -> str:
    """Who is signing in: the peer address, or, when the peer is a trusted proxy, the
    right-most address in `X-Forwarded-For` that is not a trusted proxy (the left-most when
    all are; entries a client wrote itself further left are not believed)."""
    networks = [ipaddress.ip_network(n, strict=False) for n in trusted]

    def is_trusted(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.strip().strip("[]"))
        except ValueError:
            return False
        return any(ip in network for network in networks)

    peer = remote or "unknown"
    if not networks or not forwarded_for or not is_trusted(peer):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop):
            return hop[:64]
    return hops[0][:64] if hops else peer


async def login_allowed(client: aioredis.Redis, address: str) -> bool:
    """False when `address` failed to sign in `LOGIN_LIMIT` times within the window."""
    failures = await client.get(keys.login_failures(address))
    return int(failures or 0) < LOGIN_LIMIT


async def login_failed(client: aioredis.Redis, address: str) -> None:
    """Count a failed sign-in from `address`."""
    key = keys.login_failures(address)
    async with client.pipeline(transaction=True) as pipe:
        pipe.incr(key)
        pipe.expire(key, LOGIN_WINDOW, nx=True)
        await pipe.execute()
