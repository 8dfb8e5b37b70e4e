"""What every source shares: the `Source` protocol, its options and result, and page helpers."""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urljoin

from selectolax.lexbor import LexborHTMLParser

from monitor.config.models import SelectorSettings
from monitor.core.models import Entry
from monitor.sources.guards import check_html
from monitor.sources.prolog import charset_of

#: Entries kept per document by default (`fetch.max_entries`); live blogs rarely carry more
#: than a few hundred.
MAX_ENTRIES = 1000
#: Default HTML nesting limit (`fetch.max_html_depth`).
MAX_HTML_DEPTH = 5000


@dataclass(frozen=True)
class SourceOptions:
    """Per-feed settings a source may need, and the limits every source applies."""

    selectors: SelectorSettings | None = None
    max_entries: int = MAX_ENTRIES
    max_html_depth: int = MAX_HTML_DEPTH
    #: Also work out `ParsedDocument.pin` (for `livewatch inspect`; the service never asks).
    explain: bool = False


@dataclass(frozen=True)
class PageInfo:
    """Page-level facts of a live blog, for polling decisions (e.g. stop after coverage ends)."""

    coverage_start: datetime | None = None
    coverage_end: datetime | None = None
    modified: datetime | None = None


@dataclass
class ParsedDocument:
    """Entries of one document, the kind it was parsed as (the detected kind for `auto`) and,
    for live-blog pages, page-level information."""

    kind: str
    entries: list[Entry]
    page: PageInfo | None = None
    #: How the entries were read, for `auto` on HTML: `json-ld`, `microdata`, `rdfa`,
    #: `selectors`, `app-state`, `finder:blocks`, `finder:ticker`, or a structured syntax
    #: joined with the markup (`json-ld+markup`); "" when the kind says it all.
    strategy: str = ""
    #: The strategies tried before it and why each gave nothing, in order.
    declined: list[str] = field(default_factory=list)
    #: With `SourceOptions.explain`: `kind: html` selectors that read the updates found in
    #: the markup ({} when none were).
    pin: dict[str, str] = field(default_factory=dict)
    #: The versions this parse computed, for the feed's next parse (`monitor.core.versionmemo`).
    versions: dict[int, str] = field(default_factory=dict, repr=False)


class Source(Protocol):
    """Parses one kind of document; raises ParseError when the document is not of that kind."""

    kind: str

    def parse(self, body: bytes, url: str, content_type: str | None,
              options: SourceOptions) -> ParsedDocument:
        """The document `body`, fetched from `url` (the base for relative links)."""
        ...


def unique_entries(candidates: Iterable[Entry | None], limit: int = MAX_ENTRIES) -> list[Entry]:
    """The first entry of each id, skipping Nones, at most `limit` (read lazily)."""
    entries: list[Entry] = []
    seen: set[str] = set()
    for entry in candidates:
        if entry is None or entry.id in seen:
            continue
        seen.add(entry.id)
        entries.append(entry)
        if len(entries) >= limit:
            break
    return entries


def parse_datetime(value: Any) -> datetime | None:
    """An ISO 8601 / RFC 3339 string as an aware UTC datetime (naive = UTC); None if invalid."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


# `\s*(?:["']\s*)?`, not `\s*["']?\s*`: adjacent `\s*` backtrack quadratically on spaces.
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*(?:["']\s*)?([A-Za-z0-9_.:-]+)""",
                           re.IGNORECASE)


def decode_html(body: bytes, content_type: str | None) -> str:
    """Text of an HTML page: BOM, then the `Content-Type` charset, then `<meta charset>`, then
    UTF-8; undecodable bytes become U+FFFD."""
    for bom, encoding in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16"),
                          (codecs.BOM_UTF16_BE, "utf-16")):
        if body.startswith(bom):
            return body.decode(encoding, errors="replace").lstrip("\ufeff")
    candidates = [_codec(charset_of(content_type))]
    meta = _META_CHARSET.search(body[:4096])
    if meta:
        name = _codec(meta.group(1).decode("ascii"))
        # A page that can say "utf-16" in ASCII is not UTF-16 (WHATWG: read it as UTF-8).
        candidates.append("utf-8" if name and name.startswith("utf-16") else name)
    for codec in candidates:
        if codec:
            return body.decode(codec, errors="replace")
    return body.decode("utf-8", errors="replace")


def html_tree(body: bytes, content_type: str | None,
              max_depth: int = MAX_HTML_DEPTH) -> LexborHTMLParser:
    """The parsed page; ParseError, unparsed, if it is nested deeper than `max_depth`."""
    check_html(body, max_depth)
    return LexborHTMLParser(decode_html(body, content_type))


def page_base(tree: LexborHTMLParser, url: str) -> str:
    """The URL relative links resolve against: `<base href>` if the page has one, else `url`."""
    base = tree.css_first("base[href]")
    href = (base.attributes.get("href") or "").strip() if base is not None else ""
    return urljoin(url, href) if href else url


def _codec(name: str | None) -> str | None:
    """Python's codec name for a charset label; Latin-1 and ASCII labels mean windows-1252."""
    if not name:
        return None
    try:
        codec = codecs.lookup(name).name
    except LookupError:
        return None
    return "cp1252" if codec in ("latin-1", "iso8859-1", "ascii") else codec
