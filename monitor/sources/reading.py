"""How the service reads a document, shared by the poller and by the tools that must agree
with it (`poll-once`, `test-rule --url/--file`, `inspect`): the guarded parse (a parsing
thread with `fetch.parse_timeout`, see `monitor.sources.sandbox`) with the configured entry cap and
nesting limit, and, for files, the `defaults.max_body` cap a fetch applies."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from monitor.config.models import Config, SelectorSettings
from monitor.core.errors import FetchError
from monitor.core.versionmemo import Versions
from monitor.fetch.client import Fetcher, FetchResult
from monitor.sources import ParsedDocument, parse_document
from monitor.sources.sandbox import guarded_parse


async def read_document(config: Config, name: str, kind: str, body: bytes, url: str,
                        content_type: str | None, selectors: SelectorSettings | None, *,
                        explain: bool = False, versions: Versions | None = None,
                        known: Mapping[str, str] | None = None) -> ParsedDocument:
    """`body` parsed as the service parses the feed `name` (ParseError as it would fail);
    `versions` are the feed's previous parse's and `known` its fingerprints
    (`monitor.core.versionmemo`)."""
    limits = config.fetch
    return await guarded_parse(
        name, limits.parse_timeout, parse_document, kind, body, url, content_type, selectors,
        max_entries=limits.max_entries, max_html_depth=limits.max_html_depth, explain=explain,
        versions=versions, known=known)


async def fetch_document(config: Config, url: str, *, explain: bool = False
                         ) -> tuple[FetchResult, ParsedDocument]:
    """Fetch `url` as a poll does (no validators) and read it as the service would: with the
    settings of the configured feed of that URL (kind, selectors, headers, timeout), if any."""
    feed = next((f for f in config.feeds if str(f.url) == url), None)
    async with Fetcher.from_config(config) as fetcher:
        result = await fetcher.fetch(
            url, timeout=config.timeout(feed) if feed else config.defaults.timeout,
            max_body=config.defaults.max_body, headers=feed.headers if feed else {})
    assert result.body is not None  # no validators were sent: never a 304
    return result, await read_document(
        config, feed.name if feed else url, feed.kind if feed else "auto", result.body,
        result.url, result.content_type, feed.selectors if feed else None, explain=explain)


def read_file(config: Config, path: Path) -> bytes:
    """A document from disk, refused past `defaults.max_body` as a fetched one would be."""
    limit = config.defaults.max_body
    with path.open("rb") as handle:
        body = handle.read(limit + 1)
    if len(body) > limit:
        raise FetchError(f"{path.name} is larger than defaults.max_body ({limit} bytes)")
    return body
