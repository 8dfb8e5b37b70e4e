"""Pure: `X-Hub-Signature` checking (WebSub 8: `method=hex`, HMAC of the body with the
subscription's secret; sha1, sha256, sha384 or sha512)."""

from __future__ import annotations

import hashlib
import hmac
from typing import Literal

#: The methods WebSub names (sha1 for old hubs).
METHODS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha384": hashlib.sha384,
           "sha512": hashlib.sha512}

Verdict = Literal["absent", "valid", "forged"]


def sign(secret: str, body: bytes, method: str = "sha256") -> str:
    """The `X-Hub-Signature` value a hub sends for `body` (for hubs of our own and tests)."""
    digest = hmac.new(secret.encode(), body, METHODS[method]).hexdigest()
    return f"{method}={digest}"


def check(header: str | None, secret: str, body: bytes) -> Verdict:
    """`absent` without a header, `valid` when it is the body's HMAC under `secret`, else
    `forged` (a wrong digest, an unknown method or a malformed value alike)."""
    if header is None:
        return "absent"
    method, sep, given = header.strip().partition("=")
    algorithm = METHODS.get(method.strip().lower())
    if not sep or algorithm is None or not secret:
        return "forged"
    expected = hmac.new(secret.encode(), body, algorithm).hexdigest()
    given_bytes = given.strip().lower().encode("utf-8", "replace")
    return "valid" if hmac.compare_digest(expected.encode(), given_bytes) else "forged"
