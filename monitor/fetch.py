"""HTTP fetching of feeds: one shared `httpx.AsyncClient`, conditional GET, size cap, deadline.

`Fetcher.fetch` returns a `FetchResult` or raises `FetchError` with a short reason; every
httpx error is wrapped here (`raise … from e`), so callers handle one exception type.

* **Conditional GET**: `etag` / `last_modified` are sent as `If-None-Match` /
  `If-Modified-Since`; a 304 gives a result with `not_modified=True` and no body.
* **Size cap**: the body is streamed and the *decoded* bytes counted as they arrive; past
  `max_body` the download stops ("response body exceeds N bytes"). The cap is checked per
  decoded chunk, so one network read of a compression bomb may briefly decode to more.
* **Deadline**: `timeout` bounds the whole request (connect, redirects, headers and body), not
  just each read, so a server trickling bytes cannot hold a poll open.
* **Errors**: non-2xx/304 statuses give `FetchError("HTTP 503", status=503, retry_after=...)`
  with `Retry-After` (seconds or HTTP-date) parsed into seconds.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType

import httpx

from monitor.errors import FetchError

MAX_REDIRECTS = 10

#: Feeds first, then JSON-LD/HTML (live-blog pages), then anything.
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/rdf+xml;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, application/ld+json;q=0.8, application/json;q=0.8, "
    "text/html;q=0.7, application/xhtml+xml;q=0.7, */*;q=0.1"
)

_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class FetchResult:
    """One successful fetch. `body` is None (and `body_hash` empty) when `not_modified`."""

    url: str
    status: int
    body: bytes | None
    content_type: str | None
    etag: str | None
    last_modified: str | None
    not_modified: bool
    elapsed: float
    max_age: float | None = None
    body_hash: str = field(init=False)

    def __post_init__(self) -> None:
        digest = "" if self.body is None else hashlib.blake2b(self.body, digest_size=16).hexdigest()
        object.__setattr__(self, "body_hash", digest)


class Fetcher:
    """Fetches URLs through one pooled `httpx.AsyncClient`; use as an async context manager."""

    def __init__(self, *, user_agent: str, max_concurrency: int = 100) -> None:
        self._client = httpx.AsyncClient(
            follow_redirects=True,
            max_redirects=MAX_REDIRECTS,
            limits=httpx.Limits(max_connections=max_concurrency,
                                max_keepalive_connections=max_concurrency),
            headers={"User-Agent": user_agent, "Accept": ACCEPT},
        )

    async def fetch(self, url: str, *, timeout: float, max_body: int, etag: str | None = None,
                    last_modified: str | None = None,
                    headers: Mapping[str, str] | None = None) -> FetchResult:
        """GET `url` within `timeout` seconds overall; raise FetchError on any failure."""
        request_headers = dict(headers or {})
        if etag:
            request_headers["If-None-Match"] = etag
        if last_modified:
            request_headers["If-Modified-Since"] = last_modified
        started = time.monotonic()
        try:
            async with asyncio.timeout(timeout):
                return await self._fetch(url, request_headers, timeout, max_body, etag,
                                         last_modified, started)
        except TimeoutError as e:
            raise FetchError(f"timed out after {timeout:g}s") from e
        except httpx.TimeoutException as e:
            raise FetchError(f"timed out after {timeout:g}s ({_timeout_phase(e)})") from e
        except httpx.TooManyRedirects as e:
            raise FetchError(f"too many redirects (more than {MAX_REDIRECTS})") from e
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as e:
            raise FetchError(f"invalid URL {url!r}: {e}") from e
        except httpx.ConnectError as e:
            raise FetchError(f"connection failed: {_short(e)}") from e
        except httpx.DecodingError as e:
            raise FetchError(f"could not decode response body: {_short(e)}") from e
        except httpx.HTTPError as e:
            raise FetchError(f"request failed: {type(e).__name__}: {_short(e)}") from e

    async def _fetch(self, url: str, headers: dict[str, str], timeout: float, max_body: int,
                     etag: str | None, last_modified: str | None,
                     started: float) -> FetchResult:
        async with self._client.stream("GET", url, headers=headers,
                                       timeout=timeout) as response:
            status = response.status_code
            if status == 304:
                return FetchResult(
                    url=str(response.url), status=status, body=None,
                    content_type=response.headers.get("Content-Type"),
                    etag=response.headers.get("ETag") or etag,
                    last_modified=response.headers.get("Last-Modified") or last_modified,
                    not_modified=True, elapsed=time.monotonic() - started,
                    max_age=parse_max_age(response.headers))
            if not 200 <= status < 300:
                raise FetchError(f"HTTP {status}", status=status,
                                 retry_after=parse_retry_after(response.headers.get("Retry-After")))
            body = await _read_capped(response, max_body)
            return FetchResult(
                url=str(response.url), status=status, body=body,
                content_type=response.headers.get("Content-Type"),
                etag=response.headers.get("ETag"),
                last_modified=response.headers.get("Last-Modified"),
                not_modified=False, elapsed=time.monotonic() - started,
                max_age=parse_max_age(response.headers))

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._client.aclose()

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()


async def _read_capped(response: httpx.Response, max_body: int) -> bytes:
    """The decoded body, or FetchError as soon as more than `max_body` bytes have arrived."""
    too_big = FetchError(f"response body exceeds {max_body} bytes", status=response.status_code)
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    length = response.headers.get("Content-Length", "")
    if encoding == "identity" and length.isdigit() and int(length) > max_body:
        raise too_big
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_body:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP-date), else None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def parse_max_age(headers: httpx.Headers) -> float | None:
    """Freshness left from `Cache-Control: max-age` minus `Age`; 0 for no-cache/no-store."""
    cache_control = headers.get("Cache-Control", "")
    if re.search(r"(?:^|,)\s*(?:no-cache|no-store)\b", cache_control, re.IGNORECASE):
        return 0.0
    match = _MAX_AGE.search(cache_control)
    if not match:
        return None
    age = headers.get("Age", "").strip()
    return max(0.0, float(match.group(1)) - (float(age) if age.isdigit() else 0.0))


def _timeout_phase(error: httpx.TimeoutException) -> str:
    return {httpx.ConnectTimeout: "connect", httpx.ReadTimeout: "read",
            httpx.WriteTimeout: "write", httpx.PoolTimeout: "waiting for a connection",
            }.get(type(error), "request")


def _short(error: Exception) -> str:
    text = str(error).strip() or type(error).__name__
    return text if len(text) <= 200 else text[:199] + "…"
