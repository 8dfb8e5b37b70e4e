"""monitor.fetch.client against the real local FeedServer (tests/servers.py): no mocks, no
sleeps."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import os
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import aiohttp
import httpx
import pytest
from servers import FeedServer

from monitor.core.errors import FetchError
from monitor.fetch.client import Fetcher, FetchResult, parse_max_age, parse_retry_after
from monitor.ops.embedded import free_port

UA = "livewatch-test/1.0 (+https://example.org/livewatch)"
MB = 1024 * 1024
FEED = "<?xml version='1.0'?><rss version='2.0'><channel><title>Live: “quotes” £5</title>" \
       "</channel></rss>"


@pytest.fixture
async def fetcher() -> AsyncIterator[Fetcher]:
    async with Fetcher(user_agent=UA, max_concurrency=4) as f:
        yield f


def headers_of(server: FeedServer, path: str) -> list[dict[str, str]]:
    with server.lock:
        return [{k.lower(): v for k, v in h.items()} for p, h in server.requests if p == path]


async def get(fetcher: Fetcher, url: str, *, timeout: float = 5.0, max_body: int = MB,
              etag: str | None = None, last_modified: str | None = None,
              headers: dict[str, str] | None = None) -> FetchResult:
    return await fetcher.fetch(url, timeout=timeout, max_body=max_body, etag=etag,
                               last_modified=last_modified, headers=headers)


async def test_200_then_304_with_etag(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.set("/feed", FEED)
    first = await get(fetcher, feed_server.url("/feed"))
    assert first.status == 200 and not first.not_modified
    assert first.body == FEED.encode()
    assert first.content_type == "application/rss+xml; charset=utf-8"
    assert first.etag and first.etag.startswith('"')
    assert len(first.body_hash) == 32
    assert first.elapsed >= 0

    second = await get(fetcher, feed_server.url("/feed"), etag=first.etag)
    assert second.not_modified and second.status == 304
    assert second.body is None and second.body_hash == ""
    assert second.etag == first.etag
    assert headers_of(feed_server, "/feed")[1]["if-none-match"] == first.etag


async def test_changed_document_gets_200_despite_old_etag(feed_server: FeedServer,
                                                          fetcher: Fetcher) -> None:
    feed_server.set("/feed", FEED)
    first = await get(fetcher, feed_server.url("/feed"))
    feed_server.set("/feed", FEED.replace("£5", "£6"))
    second = await get(fetcher, feed_server.url("/feed"), etag=first.etag)
    assert not second.not_modified
    assert second.etag != first.etag and second.body_hash != first.body_hash


async def test_last_modified_sent_back(feed_server: FeedServer, fetcher: Fetcher) -> None:
    stamp = "Wed, 25 Mar 2026 12:00:00 GMT"
    feed_server.set("/feed", FEED, last_modified=stamp)
    first = await get(fetcher, feed_server.url("/feed"))
    assert first.last_modified == stamp
    await get(fetcher, feed_server.url("/feed"), last_modified=first.last_modified)
    assert headers_of(feed_server, "/feed")[1]["if-modified-since"] == stamp


async def test_gzip_is_decoded(feed_server: FeedServer, fetcher: Fetcher) -> None:
    body = FEED * 200
    feed_server.set("/feed", body)
    result = await get(fetcher, feed_server.url("/feed"))
    assert result.body == body.encode()
    assert "gzip" in headers_of(feed_server, "/feed")[0]["accept-encoding"]


async def test_user_agent_accept_and_custom_headers(feed_server: FeedServer,
                                                    fetcher: Fetcher) -> None:
    feed_server.set("/feed", FEED)
    await get(fetcher, feed_server.url("/feed"), headers={"X-Desk": "politics"})
    sent = headers_of(feed_server, "/feed")[0]
    assert sent["user-agent"] == UA
    assert sent["accept"].startswith("application/rss+xml")
    assert sent["x-desk"] == "politics"


async def test_body_cap_on_decoded_bytes(feed_server: FeedServer, fetcher: Fetcher) -> None:
    big = b"<p>Live updates \xc2\xa3</p>\n" * (4 * MB // 24)
    assert len(gzip.compress(big)) < MB  # only decoding can exceed the cap
    feed_server.set("/big", big)
    with pytest.raises(FetchError, match=f"response body exceeds {MB} bytes") as info:
        await get(fetcher, feed_server.url("/big"))
    assert info.value.status == 200


async def test_body_cap_from_content_length(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.set("/big", b"x" * 5000)
    with pytest.raises(FetchError, match="exceeds 1000 bytes"):
        await get(fetcher, feed_server.url("/big"), max_body=1000,
                  headers={"Accept-Encoding": "identity"})


async def test_deadline_on_slow_headers(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.set("/slow", FEED, delay=10)
    started = time.monotonic()
    with pytest.raises(FetchError, match=r"^timed out after 0\.3s"):
        await get(fetcher, feed_server.url("/slow"), timeout=0.3)
    assert time.monotonic() - started < 2


async def test_deadline_covers_a_trickling_body(feed_server: FeedServer,
                                                fetcher: Fetcher) -> None:
    # Each 64-byte piece arrives well within the timeout; the whole body would take ~8 s.
    feed_server.set("/trickle", b"x" * 64 * 80, trickle=0.1)
    started = time.monotonic()
    with pytest.raises(FetchError) as info:
        await get(fetcher, feed_server.url("/trickle"), timeout=0.5,
                  headers={"Accept-Encoding": "identity"})
    assert str(info.value) == "timed out after 0.5s"  # the overall deadline, not a read timeout
    assert isinstance(info.value.__cause__, TimeoutError)
    assert time.monotonic() - started < 2


async def test_500_with_retry_after_seconds(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.set("/feed", "oops", status=500, headers={"Retry-After": "120"})
    with pytest.raises(FetchError, match="HTTP 500") as info:
        await get(fetcher, feed_server.url("/feed"))
    assert info.value.status == 500 and info.value.retry_after == 120.0


async def test_429_with_retry_after_date(feed_server: FeedServer, fetcher: Fetcher) -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    feed_server.set("/feed", "slow down", status=429, headers={"Retry-After": later})
    with pytest.raises(FetchError, match="HTTP 429") as info:
        await get(fetcher, feed_server.url("/feed"))
    assert info.value.status == 429
    assert info.value.retry_after is not None and 80 <= info.value.retry_after <= 90


async def test_404(feed_server: FeedServer, fetcher: Fetcher) -> None:
    with pytest.raises(FetchError, match="HTTP 404") as info:
        await get(fetcher, feed_server.url("/missing"))
    assert info.value.status == 404 and info.value.retry_after is None


async def test_connection_refused(fetcher: Fetcher) -> None:
    with pytest.raises(FetchError, match="connection failed") as info:
        await get(fetcher, f"http://127.0.0.1:{free_port()}/feed")
    assert info.value.status is None
    assert isinstance(info.value.__cause__, aiohttp.ClientError)  # wrapped at the boundary


@pytest.mark.parametrize("url", ["not a url", "ftp://example.org/feed", "http://"])
async def test_invalid_url(fetcher: Fetcher, url: str) -> None:
    with pytest.raises(FetchError, match="invalid URL"):
        await get(fetcher, url)


async def test_invalid_url_error_does_not_repeat_a_token(fetcher: Fetcher) -> None:
    with pytest.raises(FetchError) as info:
        await get(fetcher, "gopher://feeds.example.org/live?key=tok-5ecret")
    assert "tok-5ecret" not in str(info.value) and "feeds.example.org" in str(info.value)


async def test_redirects_followed(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.set("/old", "", status=301, headers={"Location": "/moved"})
    feed_server.set("/moved", "", status=302, headers={"Location": "/feed"})
    feed_server.set("/feed", FEED)
    result = await get(fetcher, feed_server.url("/old"))
    assert result.url == feed_server.url("/feed")
    assert result.body == FEED.encode()


async def test_redirect_loop(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.set("/a", "", status=302, headers={"Location": "/b"})
    feed_server.set("/b", "", status=302, headers={"Location": "/a"})
    with pytest.raises(FetchError, match="redirect loop"):
        await get(fetcher, feed_server.url("/a"))


async def test_undecodable_body(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.set("/feed", b"this is not gzip at all", headers={"Content-Encoding": "gzip"})
    with pytest.raises(FetchError, match="could not decode"):
        await get(fetcher, feed_server.url("/feed"), headers={"Accept-Encoding": "identity"})


async def test_max_age(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.set("/feed", FEED, headers={"Cache-Control": "public, max-age=60", "Age": "15"})
    assert (await get(fetcher, feed_server.url("/feed"))).max_age == 45.0


def test_parse_retry_after() -> None:
    now = datetime(2026, 3, 25, 12, 0, tzinfo=UTC)
    assert parse_retry_after("30", now=now) == 30.0
    assert parse_retry_after("Wed, 25 Mar 2026 12:01:00 GMT", now=now) == 60.0
    assert parse_retry_after("Wed, 25 Mar 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after(" 5 ") == 5.0


def test_parse_max_age() -> None:
    assert parse_max_age(httpx.Headers({"Cache-Control": "max-age=300"})) == 300.0
    assert parse_max_age(httpx.Headers({"Cache-Control": "no-cache"})) == 0.0
    assert parse_max_age(httpx.Headers({"Cache-Control": "s-maxage=10"})) is None
    assert parse_max_age(httpx.Headers()) is None


async def test_max_per_host_and_max_concurrency(feed_server: FeedServer) -> None:
    feed_server.set("/slow", FEED, delay=0.3)
    port = feed_server.httpd.server_address[1]
    one_host = [feed_server.url("/slow")] * 3
    two_hosts = [feed_server.url("/slow"), f"http://localhost:{port}/slow"]

    async def timed(fetcher: Fetcher, urls: list[str]) -> float:
        started = time.monotonic()
        await asyncio.gather(*(get(fetcher, url) for url in urls))
        return time.monotonic() - started

    async with Fetcher(user_agent=UA, max_concurrency=4, max_per_host=1) as per_host:
        assert await timed(per_host, one_host) >= 0.85  # one at a time to 127.0.0.1
        assert await timed(per_host, two_hosts) < 0.55  # another host is not held up
    async with Fetcher(user_agent=UA, max_concurrency=1) as single:
        assert await timed(single, two_hosts) >= 0.55  # the global limit holds across hosts
    async with Fetcher(user_agent=UA, max_concurrency=4) as unlimited:
        assert await timed(unlimited, one_host) < 0.55


async def test_credentials_not_sent_to_another_origin(feed_server: FeedServer,
                                                      fetcher: Fetcher) -> None:
    port = feed_server.httpd.server_address[1]
    feed_server.set("/same", "", status=302, headers={"Location": "/feed"})
    feed_server.set("/away", "", status=302, headers={"Location": f"http://localhost:{port}/x"})
    feed_server.set("/feed", FEED)
    feed_server.set("/x", FEED)
    secret = {"Authorization": "Bearer s3cret", "X-Desk": "politics"}
    await get(fetcher, feed_server.url("/same"), headers=secret)
    assert headers_of(feed_server, "/feed")[0]["authorization"] == "Bearer s3cret"
    await get(fetcher, feed_server.url("/away"), headers=secret)
    sent = headers_of(feed_server, "/x")[0]
    assert "authorization" not in sent and sent["x-desk"] == "politics"


async def test_redirect_to_another_scheme_is_refused(feed_server: FeedServer,
                                                     fetcher: Fetcher) -> None:
    feed_server.set("/ftp", "", status=301, headers={"Location": "ftp://example.org/feed"})
    with pytest.raises(FetchError, match=r"invalid URL \(scheme 'ftp', host 'example\.org'\)"):
        await get(fetcher, feed_server.url("/ftp"))


@pytest.mark.parametrize("size", [0, 1, 2047, 2048, 4095, 50_001])
def test_body_hash_is_blake2b_of_the_body(size: int) -> None:
    body = os.urandom(size)
    result = FetchResult("http://127.0.0.1/", 200, body, None, None, None, False, 0.0)
    assert result.body_hash == hashlib.blake2b(body, digest_size=16).hexdigest()

