"""RSS 0.9x/2.0, RSS 1.0 (RDF) and Atom through feedparser, mapped to `Entry`; plain RSS 2.0
and Atom documents take a fast path (`monitor.sources.fastfeed`) that gives the same entries
~50× faster, and falls back to feedparser per document.

Identity is the guid/id, else the canonical link (`monitor.core.urls`), else `h:` + a hash of the
normalised title and text.
Relative links resolve against the URL the document was fetched from.

One policy on both paths, so that a feed moving between them reads the same:

* Text: the fullest of the content blocks and the summary (`<description>`, `<summary>`), and
  the Media RSS caption (`media:description`) only when the entry has no other text.
  feedparser reads a caption as a summary or content block: the captions the document holds
  (`monitor.sources.feedtext`) are told apart by their text.
* Dates: `published` is RSS `<pubDate>` (or Atom `<published>`), else `<dc:date>`; `updated`
  is a modification date only (Atom `<updated>`, `dcterms:modified`). Dublin Core's `date` is
  "associated with an event in the lifecycle of the resource"; RSS 1.0 uses it as the item's
  date and feeds that repeat it beside `<pubDate>` (the Guardian's, on every item) write the
  publication time in it, not an edit. feedparser reads it as `updated`, so in an RSS
  document whose items carry no modification element (`modified`, `updated`, `lastBuildDate`
  under any prefix) an entry's `updated` is its dc:date and is taken as `published` when
  there is no `<pubDate>`. Where items carry one, and in Atom, feedparser's values stand (the
  element read last wins); the fast path declines those documents.

Malformed documents: one that is not well-formed XML and yields no entries is a ParseError (never
"zero entries"), and so is a *truncated* one (the XML parser hit the end of the body inside the
document), since its last entry would be cut short and look like an edit. Other errors with
entries (a stray `&`, feedparser's *bozo* flag) are common in the wild: the entries are used.
"""

from __future__ import annotations

import calendar
import html
import re
import time
from datetime import UTC, datetime
from typing import Any
from xml.parsers.expat import errors as expat_errors

import feedparser

from monitor.core.errors import ParseError
from monitor.core.models import Entry
from monitor.core.textnorm import clean_text, content_hash
from monitor.core.urls import canonical_url
from monitor.sources.base import MAX_ENTRIES, ParsedDocument, SourceOptions, unique_entries
from monitor.sources.fastfeed import fast_feed
from monitor.sources.feedtext import fullest, item_captions
from monitor.sources.guards import check_xml, trim_xml_entries
from monitor.sources.prolog import prolog_end

__all__ = ["MAX_ENTRIES", "FeedSource", "parse_feed"]

#: feedparser's bozo exceptions that say nothing about well-formedness.
_BENIGN = (feedparser.NonXMLContentType, feedparser.CharacterEncodingOverride)

#: expat's messages for a document that ends before its root element is closed.
_TRUNCATED = frozenset({expat_errors.XML_ERROR_NO_ELEMENTS, expat_errors.XML_ERROR_UNCLOSED_TOKEN,
                        expat_errors.XML_ERROR_UNCLOSED_CDATA_SECTION,
                        expat_errors.XML_ERROR_PARTIAL_CHAR})

_ITEM_START = re.compile(rb"<item[\s>]")
_ITEM_END = re.compile(rb"</item\s*>")
#: Elements feedparser reads as an RSS item's `updated` besides `<dc:date>`.
_MODIFIED = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?(?:modified|updated|lastbuilddate)[\s/>]",
                       re.IGNORECASE)


class FeedSource:
    """A `Source` for RSS/Atom. Any format feedparser reads is accepted whatever `kind` says."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def parse(self, body: bytes, url: str, content_type: str | None,
              options: SourceOptions) -> ParsedDocument:
        """Entries of an RSS or Atom document."""
        return ParsedDocument(self.kind,
                              parse_feed(body, url, content_type, options.max_entries)[1])


#: An XML declaration is ~50 bytes; one that does not end within this many is refused.
_MAX_DECLARATION = 512
_BLANKS = re.compile(rb"[ \t\r\n]{2,}")


def _tidy_prolog(body: bytes) -> bytes:
    """`body` with runs of white space before its root element made one line break: there
    they mean nothing, and feedparser's prolog rewrite takes time quadratic in their number
    (20,000 blank lines: 3 s). Left alone in encodings where a line break is not one byte."""
    root = prolog_end(body)
    head = body[:root]
    if head.count(b"\n") + head.count(b"\r") < 64 or b"\x00" in head:
        return body
    return _BLANKS.sub(b"\n", head) + body[root:]


def parse_feed(body: bytes, url: str, content_type: str | None,
               max_entries: int = MAX_ENTRIES, *, fast: bool = True) -> tuple[str, list[Entry]]:
    """Return ("rss" | "atom", entries) for an RSS or Atom document; ParseError otherwise.

    A DTD declaring entities is refused and items past `max_entries` are cut before parsing
    (`monitor.sources.guards`), whichever parser then reads it. `fast=False` always uses
    feedparser (the reference the fast path is tested against)."""
    check_xml(body, content_type)
    start = body.lstrip()[:_MAX_DECLARATION]
    if start.startswith(b"<?xml") and b"?>" not in start:
        # feedparser's reading of such a first line is cubic (1,666 `encoding=` took 20 s)
        raise ParseError(f"XML declaration unterminated or longer than {_MAX_DECLARATION} "
                         "bytes; not parsed")
    body = trim_xml_entries(body, max_entries)
    if fast:
        result = fast_feed(body, url, content_type, max_entries)
        if result is not None:
            return result
    headers = {"content-location": url, "content-type": content_type or "application/xml"}
    parsed: Any = feedparser.parse(_tidy_prolog(body), response_headers=headers)
    raw_entries: list[Any] = parsed.entries
    version: str = parsed.get("version") or ""
    error = parsed.get("bozo_exception") if parsed.bozo else None
    if error is not None and not isinstance(error, _BENIGN):
        if _message(error) in _TRUNCATED:
            raise ParseError(f"truncated feed: {_describe(error)}")
        if not raw_entries:
            raise ParseError(f"malformed feed: {_describe(error)}")
    if not raw_entries and not version:
        raise ParseError("not a feed (no RSS or Atom root element)")
    kind = "atom" if version.startswith("atom") else "rss"
    captions = _caption_texts(body, parsed.get("encoding"))
    dc_date = kind == "rss" and not _modified_in_items(body)
    entries = unique_entries((_entry(raw, captions, dc_date) for raw in raw_entries),
                             max_entries)
    return kind, entries


def _caption_texts(body: bytes, encoding: str | None) -> frozenset[str]:
    """The clean texts the document's captions may have once feedparser read them (as HTML,
    or as plain text)."""
    try:
        document = body.decode(encoding or "utf-8", "replace")
    except LookupError:
        document = body.decode("utf-8", "replace")
    texts: set[str] = set()
    for item in item_captions(document) or []:
        for caption in item.captions:
            if caption.value and not caption.markup:
                texts.add(clean_text(caption.value))
                texts.add(clean_text(html.escape(caption.value, quote=False)))
    return frozenset(texts)


def _modified_in_items(body: bytes) -> bool:
    """An item of the document holds an element feedparser reads as its `updated`."""
    pos = 0
    while (start := _ITEM_START.search(body, pos)) is not None:
        end = _ITEM_END.search(body, start.end())
        stop = end.start() if end is not None else len(body)
        if _MODIFIED.search(body, start.end(), stop):
            return True
        if end is None:
            return False
        pos = end.end()
    return False


def _entry(raw: Any, captions: frozenset[str], dc_date: bool) -> Entry | None:
    """The Entry for a feedparser entry; None for one with no id, link, title or text.

    `captions`: the texts of the document's captions; `dc_date`: an `updated` is a dc:date."""
    title = _text(raw.get("title_detail"), raw.get("title"))
    text = _fullest(raw, captions)
    link: str | None = raw.get("link") or None
    ident = (raw.get("id") or "").strip() or (canonical_url(link) if link else None)
    if not ident:
        if not title and not text:
            return None
        ident = "h:" + content_hash(title, text)
    published = _datetime(dict.get(raw, "published_parsed"))  # dict.get: no fallback
    updated = _datetime(dict.get(raw, "updated_parsed"))
    if dc_date:
        published, updated = published or updated, None
    return Entry(id=ident, url=link, title=title, text=text, author=_author(raw),
                 published=published, updated=updated)


def _fullest(raw: Any, captions: frozenset[str]) -> str:
    """Clean text of the longest of the content blocks and the summary that are not one of
    the document's captions; else of the longest caption."""
    candidates = [_text(block, block.get("value")) for block in raw.get("content") or []]
    candidates.append(_text(raw.get("summary_detail"), raw.get("summary")))
    return fullest(text for text in candidates if text not in captions) or fullest(candidates)


def _text(detail: Any, value: str | None) -> str:
    """Clean text of a feedparser value; plain-text values keep any literal `<` or `&`."""
    if not value:
        return ""
    if detail is not None and detail.get("type") == "text/plain":
        value = html.escape(value, quote=False)
    return clean_text(value)


def _author(raw: Any) -> str | None:
    names: list[str] = []
    for author in raw.get("authors") or []:
        name = clean_text(author.get("name") or "")
        if name and name not in names:
            names.append(name)
    if names:
        return ", ".join(names)
    return clean_text(raw.get("author") or "") or None


def _datetime(value: time.struct_time | None) -> datetime | None:
    """feedparser's UTC struct_time as an aware datetime."""
    if value is None:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), UTC)
    except (OverflowError, ValueError, OSError):
        return None


def _message(error: BaseException) -> str:
    message = getattr(error, "getMessage", None)
    return str(message()) if callable(message) else str(error)


def _describe(error: BaseException) -> str:
    line = getattr(error, "getLineNumber", None)
    where = f" (line {line()})" if callable(line) else ""
    return f"{_message(error)}{where}"
