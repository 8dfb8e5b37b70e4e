"""Turn a fetched document into entries. Each kind of source is a `Source` in `SOURCES`.

`parse_document(kind, ...)` parses with the named source, or with `kind="auto"` detects what the
document is: the body is sniffed first (servers often send feeds as `text/html` or
`application/octet-stream`), the `Content-Type` only breaks ties. Detection goes by document
*format* (`json`, `xml`, `html`) through `_AUTO`, so a new format (live-blog pages) is one entry.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from monitor.errors import ParseError
from monitor.models import Entry
from monitor.sources.feeds import FeedSource, parse_feed
from monitor.sources.jsonfeed import JsonFeedSource, is_json_feed, json_feed_entries


class Source(Protocol):
    """Parses one kind of document into entries; raises ParseError when it cannot."""

    kind: str

    def parse(self, body: bytes, url: str, content_type: str | None) -> list[Entry]:
        """Entries of `body`, fetched from `url` (the base for relative links)."""
        ...


@dataclass
class ParsedDocument:
    """Entries of one document and the kind it was parsed as (the detected kind for `auto`)."""

    kind: str
    entries: list[Entry]


SOURCES: dict[str, Source] = {
    "rss": FeedSource("rss"),
    "atom": FeedSource("atom"),
    "jsonfeed": JsonFeedSource(),
}

Format = Literal["json", "xml", "html", "unknown"]
_SNIFF_BYTES = 2048


def parse_document(kind: str, body: bytes, url: str, content_type: str | None) -> ParsedDocument:
    """Parse `body` as `kind` ("auto" detects it); raise ParseError if it is not that."""
    if not body.strip():
        raise ParseError("empty document")
    if kind != "auto":
        source = SOURCES.get(kind)
        if source is None:
            known = ", ".join(["auto", *sorted(SOURCES)])
            raise ParseError(f"unknown source kind {kind!r} (known: {known})")
        return ParsedDocument(kind, source.parse(body, url, content_type))
    fmt = sniff_format(body, content_type)
    handler = _AUTO.get(fmt)
    if handler is None:
        raise ParseError(_NOT_A_FEED.get(fmt, "not a feed (unrecognised document)"))
    return handler(body, url, content_type)


def sniff_format(body: bytes, content_type: str | None) -> Format:
    """The document's format from its first bytes, then from its media type."""
    head = _head(body)
    if head.startswith(("{", "[")):
        return "json"
    if head.startswith(("<!doctype html", "<html")):
        return "html"
    if head.startswith("<"):
        if _skip_prolog(head).startswith(("<!doctype html", "<html")):
            return "html"
        return "xml"
    media = (content_type or "").split(";")[0].strip().lower()
    if media.endswith("json"):
        return "json"
    if media.endswith("xml"):
        return "xml"
    if media == "text/html":
        return "html"
    return "unknown"


def _head(body: bytes) -> str:
    start = body[:_SNIFF_BYTES]
    if start.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = start.decode("utf-16", errors="ignore")
    else:
        text = start.removeprefix(b"\xef\xbb\xbf").decode("latin-1")
    return text.lstrip("\ufeff \t\r\n").lower()


def _skip_prolog(head: str) -> str:
    """`head` after an XML declaration and leading comments."""
    while True:
        if head.startswith("<?"):
            end = head.find("?>")
            head = head[end + 2:].lstrip() if end >= 0 else ""
        elif head.startswith("<!--"):
            end = head.find("-->")
            head = head[end + 3:].lstrip() if end >= 0 else ""
        else:
            return head


def _auto_json(body: bytes, url: str, content_type: str | None) -> ParsedDocument:
    try:
        data: Any = json.loads(body)
    except ValueError as e:
        raise ParseError(f"invalid JSON: {e}") from e
    if not is_json_feed(data):
        raise ParseError("not a feed (JSON without a https://jsonfeed.org/version/ `version`)")
    return ParsedDocument("jsonfeed", json_feed_entries(data, url))


def _auto_xml(body: bytes, url: str, content_type: str | None) -> ParsedDocument:
    kind, entries = parse_feed(body, url, content_type)
    return ParsedDocument(kind, entries)


#: Format -> parser used by `auto`. Live-blog pages will add "html" here.
_AUTO: dict[str, Callable[[bytes, str, str | None], ParsedDocument]] = {
    "json": _auto_json,
    "xml": _auto_xml,
}

_NOT_A_FEED = {
    "html": "not a feed (looks like an HTML page); live-blog pages arrive in a later version",
    "unknown": "not a feed (neither XML nor JSON)",
}
