"""One POST to an HTTP endpoint and what its outcome means for delivery, shared by the webhook
and chat channels.

2xx is success. 408, 429, 5xx, timeouts and connection errors raise `RetryableDeliveryError`
(with `retry_after` from a `Retry-After` header); 410 raises `ChannelGoneError`; redirects (not
followed) and every other status raise `PermanentDeliveryError`. Messages name the channel and
the host, never the URL's path or query (chat webhook URLs are their own credentials) nor any
other secret the channel holds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

import httpx

from monitor.core.errors import ChannelGoneError, PermanentDeliveryError, RetryableDeliveryError
from monitor.core.redaction import redact
from monitor.fetch.client import parse_retry_after

RETRYABLE_STATUSES = frozenset({408, 429})
#: At most this much of an error response's body is quoted in the error (Slack explains 4xx
#: answers there: `invalid_payload`, `channel_is_archived`).
DETAIL_MAX = 120


class HttpTarget:
    """POSTs to one URL through a shared `httpx.AsyncClient` and classifies the answer."""

    def __init__(self, kind: str, name: str, url: str, timeout: float,
                 client: httpx.AsyncClient, secrets: Sequence[str] = (),
                 gone: frozenset[int] = frozenset({410})) -> None:
        self.kind = kind
        #: Statuses that mean the endpoint no longer exists (the channel gets disabled).
        self.gone = gone
        self.name = name
        self.url = url
        self.timeout = timeout
        self.host = urlsplit(url).hostname or "?"
        self._client = client
        parts = urlsplit(url)
        hidden = [url, parts.path, parts.query, *secrets]
        self._hidden = {s: "***" for s in hidden if s and s != "/"}

    def fail(self, reason: str) -> str:
        """An error message; scrubbed of the URL and secrets even if a library echoed them."""
        return f"{self.kind} {self.name} ({self.host}): {redact(reason, self._hidden)}"

    async def post(self, body: bytes, headers: Mapping[str, str]) -> httpx.Response:
        """POST `body`; return the 2xx response or raise a `DeliveryError`."""
        try:
            response = await self._client.post(self.url, content=body, headers=headers,
                                               timeout=self.timeout, follow_redirects=False)
        except httpx.TimeoutException as exc:
            raise RetryableDeliveryError(self.fail(
                f"timed out after {self.timeout:g}s ({type(exc).__name__})")) from exc
        except httpx.HTTPError as exc:
            raise RetryableDeliveryError(self.fail(
                f"{type(exc).__name__}: {exc}".rstrip(": "))) from exc
        self.check(response)
        return response

    def check(self, response: httpx.Response) -> None:
        """Raise the `DeliveryError` a non-2xx `response` means."""
        status = response.status_code
        if 200 <= status < 300:
            return
        reason = f"HTTP {status} {response.reason_phrase}".rstrip()
        if status in RETRYABLE_STATUSES or status >= 500:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            raise RetryableDeliveryError(self.fail(reason), retry_after=retry_after)
        if status in self.gone:
            raise ChannelGoneError(self.fail(f"{reason}: the endpoint is gone"))
        if 300 <= status < 400:
            raise PermanentDeliveryError(self.fail(f"{reason}: redirects are not followed"))
        detail = _detail(response)
        raise PermanentDeliveryError(self.fail(f"{reason}: {detail}" if detail else reason))


def _detail(response: httpx.Response) -> str:
    """The start of a short text or JSON error body, on one line ("" for anything else)."""
    kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in ("text/plain", "application/json") or not response.content:
        return ""
    text = " ".join(response.text.split())
    return text if len(text) <= DETAIL_MAX else text[: DETAIL_MAX - 1] + "…"
