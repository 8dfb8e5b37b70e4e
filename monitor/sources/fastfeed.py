"""The fast path for RSS 2.0 and Atom 1.0: fastfeedparser (lxml and a native extractor), used
only where it gives the same entries as feedparser after our normalisation; else None, and
`monitor.sources.feeds` parses the document with feedparser.

feedparser takes ~10 ms for a 50-entry, 50 KB document and fastfeedparser ~0.2 ms (bench farm
documents), but they differ at the edges, so the fast path is taken only for documents a cheap
scan of the bytes shows to be plain (each case below was a difference seen in
tests/sources/test_parser_differential.py, which compares both paths on every fixture and on
generated variants):

* UTF-8 (declared or not), no DTD, no `xml:base`, an `<rss version="2.0">` or Atom root;
* well-formed (expat, no handlers: ~0.05 ms for 50 KB; fastfeedparser repairs malformed XML
  its own way, feedparser's handling of it and of truncated documents is the reference), and
  as many entries as `</item>` / `</entry>` tags;
* Atom titles and summaries all of one known type (text: escaped like feedparser's
  text/plain; html), no xhtml ones; `<published>` / `<updated>` on every entry or none
  (fastfeedparser fills one from the other), and no `<dc:date>` (feedparser reads it over
  `<updated>`);
* RSS guids all `isPermaLink="false"` or none (feedparser resolves permalink guids as URLs),
  on every item or none (fastfeedparser makes a missing guid the link); a summary
  (`<description>`, `<summary>`) on every entry or none (fastfeedparser makes a missing one
  from the content); a link on every entry with a permalink id (feedparser makes it the link);
* HTML without `<script>`, `<style>`, `<noscript>`, `<template>` or `<applet>`, without
  references to entities HTML 4 lacks, and without a `;`-less reference running into a
  longer word (`&copyof`): feedparser's sanitizer reads those its own way;
* at most one author element per entry, no `<email>`, and author names with an `@` only in
  the `email (Name)` form (feedparser keeps the name);
* links and permalink guids that are http(s) after resolving against the feed URL;
* Media RSS captions (`media:description`, `monitor.sources.feedtext`) under a prefix, and
  none where either parser misreads the item's text: a caption fastfeedparser takes for the
  description (a direct child before an RSS `<description>`, any direct child beside an
  Atom `<summary>`), an HTML summary feedparser reads as text by a caption's `type`, a
  summary feedparser loses under a caption on an entry with no content block, or more than
  one caption on an entry with no other text. Where feedparser loses a summary under a
  caption read after a content block, the fast path takes the content as feedparser does.

An entry's text is the fullest of its content blocks and summary, and its caption only when
it has neither (the policy of both paths). Dates: RSS `<pubDate>`, else `<dc:date>` (Dublin
Core's date of an item is its publication), is `published`; an RSS item's `updated` is a
modification element only (`dcterms:modified`, `atom:updated`), and documents with one take
feedparser's path.
"""

from __future__ import annotations

import html
import html.entities
import pyexpat
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

import fastfeedparser
from feedparser.mixin import _FeedParserMixin

from monitor.core.models import Entry
from monitor.core.textnorm import clean_text, content_hash
from monitor.core.urls import canonical_url
from monitor.core.versionmemo import remember_raw, unchanged
from monitor.sources.base import unique_entries
from monitor.sources.feedtext import Caption, ItemCaptions, fullest, item_captions
from monitor.sources.prolog import charset_of

_DECL_ENCODING = re.compile(rb"""^<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_RSS2_ROOT = re.compile(rb"<rss\b[^>]*\bversion\s*=\s*[\"']2\.0[\"']")
_ATOM_ROOT = re.compile(rb"<feed\b[^>]*\bxmlns\s*=\s*[\"']http://www\.w3\.org/2005/Atom[\"']")
_ITEM_START = re.compile(rb"<(?:item|entry)[\s>]")
_ITEM_END = re.compile(rb"</(?:item|entry)\s*>")
_AUTHOR = re.compile(rb"<(?:author|dc:creator|[\w.-]+:author)[\s>]")
_TEXT_TYPE = re.compile(rb"<(title|summary)\b([^>]*)>")
_TYPE_ATTR = re.compile(rb"""\btype\s*=\s*["']([^"']*)["']""")
_GUID = re.compile(rb"<guid\b([^>]*)>")
_PERMALINK_FALSE = re.compile(rb"""isPermaLink\s*=\s*["']false["']""")
_EMAIL_NAME = re.compile(r"^\s*[^\s@()]+@[^\s@()]+\s*\(([^()]+)\)\s*$")
_NOT_PLAIN = (b"xml:base", b"<!DOCTYPE", b"<!doctype", b"<email>", b"<email ")
#: Media RSS as a default namespace: its `<description>` is a caption (rare; feedparser's).
_MRSS_DEFAULT = re.compile(rb"""\bxmlns\s*=\s*["']http://search\.yahoo\.com/mrss""")

_looks_like_html = _FeedParserMixin.looks_like_html
#: HTML feedparser's sanitizer reads its own way: elements whose content it drops or keeps
#: unlike `clean_text` (it leaks entity references out of `<script>`), and references to
#: entities HTML 4 does not define (it drops their `;`).
_QUIRK_TAGS = re.compile(r"<(?:script|style|noscript|template|applet)\b", re.IGNORECASE)
#: `<dc:date>` (any prefix): feedparser reads it over an Atom entry's `<updated>`.
_DATE = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?date[\s>]")
_NAMED_REF = re.compile(r"&([A-Za-z][A-Za-z0-9]*)(;?)")
_HTML4_NAMES = frozenset(html.entities.name2codepoint)
#: Names HTML 5 decodes without a `;`, also as the prefix of a longer word ("&copyof").
_BARE_NAMES = tuple(name for name in html.entities.html5 if not name.endswith(";"))


def fast_feed(body: bytes, url: str, content_type: str | None,
              max_entries: int) -> tuple[str, list[Entry]] | None:
    """("rss" | "atom", entries) when the fast path applies to `body`, else None."""
    shape = _shape(body, content_type)
    if shape is None:
        return None
    try:
        parsed: Any = fastfeedparser.parse(body, include_tags=False, include_media=False,
                                           include_enclosures=False)
    except Exception:  # any refusal or bug: feedparser decides what the document is
        return None
    raw_entries: list[Any] = parsed.get("entries") or []
    if len(raw_entries) != shape.count:
        return None
    captions = (item_captions(body.decode("utf-8-sig", "replace")) if b":description" in body
                else None)
    if captions is not None and len(captions) != shape.count:
        return None
    try:
        entries = [_entry(raw, url, shape, captions[i] if captions else None)
                   for i, raw in enumerate(raw_entries)]
    except _Differs:
        return None
    return shape.kind, unique_entries(entries, max_entries)


class _Differs(Exception):
    """This entry is one where fastfeedparser and feedparser may disagree."""


class _Shape:
    """What the byte scan learnt about a document the fast path may take."""

    __slots__ = ("count", "guid_is_link", "has_guid", "has_published", "has_summary",
                 "has_updated", "kind", "summary_html", "title_html")

    def __init__(self, kind: str, count: int) -> None:
        self.kind = kind
        self.count = count
        self.title_html: bool | None = None  # None: decided per value (RSS, as feedparser)
        self.summary_html = True
        self.has_summary = False  # else fastfeedparser's description is made from content
        self.has_guid = self.guid_is_link = False
        self.has_published = self.has_updated = False


def _shape(body: bytes, content_type: str | None) -> _Shape | None:
    head = body[:1024]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or any(m in body for m in _NOT_PLAIN):
        return None
    if _MRSS_DEFAULT.search(body):
        return None
    declared = _DECL_ENCODING.match(body.removeprefix(b"\xef\xbb\xbf"))
    if declared and declared.group(1).lower() not in (b"utf-8", b"utf8"):
        return None
    charset = charset_of(content_type).lower()
    if charset and charset not in ("utf-8", "utf8"):
        return None
    if _RSS2_ROOT.search(head):
        kind = "rss"
    elif _ATOM_ROOT.search(head):
        kind = "atom"
    else:
        return None
    first = _ITEM_START.search(body)
    count = len(_ITEM_END.findall(body))
    if first is None or count != len(_ITEM_START.findall(body)):
        return None
    try:  # ~0.05 ms for 50 KB: fastfeedparser "recovers" malformed XML its own way
        pyexpat.ParserCreate().Parse(body, True)
    except pyexpat.ExpatError:
        return None
    items = body[first.start():]
    if len(_AUTHOR.findall(items)) > count:
        return None
    shape = _Shape(kind, count)
    summaries = items.count(b"<summary" if kind == "atom" else b"<description")
    if summaries not in (0, count):
        return None
    shape.has_summary = bool(summaries)
    if kind == "atom":
        return shape if _atom_shape(shape, body, items) else None
    guids = _GUID.findall(items)
    if guids and len(guids) != count:
        return None
    permalink_false = sum(1 for attrs in guids if _PERMALINK_FALSE.search(attrs))
    if permalink_false not in (0, len(guids)):
        return None
    shape.has_guid = bool(guids)
    shape.guid_is_link = bool(guids) and not permalink_false
    return shape


def _atom_shape(shape: _Shape, body: bytes, items: bytes) -> bool:
    types: dict[bytes, set[bytes]] = {b"title": set(), b"summary": set()}
    for name, attrs in _TEXT_TYPE.findall(items):
        found = _TYPE_ATTR.search(attrs)
        types[name].add(found.group(1).lower() if found else b"text")
    if not types[b"title"] <= {b"text"} and not types[b"title"] <= {b"html"}:
        return False
    if not types[b"summary"] <= {b"text"} and not types[b"summary"] <= {b"html"}:
        return False
    if _DATE.search(items):
        return False
    shape.title_html = types[b"title"] == {b"html"}
    shape.summary_html = types[b"summary"] == {b"html"}
    for tag, attr in ((b"<published>", "has_published"), (b"<updated>", "has_updated")):
        seen = items.count(tag)
        if seen not in (0, shape.count):
            return False
        setattr(shape, attr, bool(seen))
    return True


def _entry(raw: Any, url: str, shape: _Shape, item: ItemCaptions | None) -> Entry | None:
    link = _absolute(url, raw.get("link")) if raw.get("link") else None
    if link is None and (shape.kind == "atom" or shape.guid_is_link):
        raise _Differs  # feedparser makes the id the link
    if shape.kind == "rss" and not shape.has_guid:
        ident: str | None = None  # fastfeedparser's id is the link here
    else:
        ident = (raw.get("id") or "").strip()
        if shape.guid_is_link and ident:
            ident = _absolute(url, ident)
    ident = ident or (canonical_url(link) if link else None)
    published = raw.get("published") if shape.kind == "rss" or shape.has_published else None
    updated = raw.get("updated") if shape.kind == "atom" and shape.has_updated else None
    if shape.kind == "rss" and raw.get("updated"):
        raise _Differs
    # The raw content that makes the title and text, with what decides how they are read.
    raw_key = hash((shape.kind, shape.title_html, shape.summary_html, shape.has_summary,
                    raw.get("title"), raw.get("description"),
                    tuple((b.get("type"), b.get("value")) for b in raw.get("content") or ())))\
        if item is None else None
    if ident and raw_key is not None:
        version = unchanged(ident, raw_key)
        if version is not None:  # the same as recorded: the diff drops it, text unneeded
            return Entry.known(ident, version, url=link, author=_author(raw),
                               published=_datetime(published), updated=_datetime(updated))
    title = _title(raw.get("title") or "", shape)
    text = _fullest(raw, shape, item)
    if not ident:
        if not title and not text:
            return None
        ident = "h:" + content_hash(title, text)
    entry = Entry(id=ident, url=link, title=title, text=text, author=_author(raw),
                  published=_datetime(published), updated=_datetime(updated))
    if raw_key is not None:
        remember_raw(raw_key, entry.version)
    return entry


def _title(value: str, shape: _Shape) -> str:
    if not value:
        return ""
    as_html = _looks_like_html(value) if shape.title_html is None else shape.title_html
    return _clean_html(value) if as_html else clean_text(html.escape(value, quote=False))


def _clean_html(value: str) -> str:
    """`clean_text` of an HTML value, or _Differs where feedparser's sanitizer reads it
    otherwise."""
    _check_html(value)
    return clean_text(value)


def _check_html(value: str) -> None:
    """_Differs for HTML feedparser's sanitizer reads otherwise than `clean_text`."""
    if "<" in value and _QUIRK_TAGS.search(value):
        raise _Differs
    if "&" in value:
        for name, semicolon in _NAMED_REF.findall(value):
            if name not in _HTML4_NAMES and (semicolon or name.startswith(_BARE_NAMES)):
                raise _Differs


def _fullest(raw: Any, shape: _Shape, item: ItemCaptions | None) -> str:
    """Clean text of the longest content block or summary, else of the item's caption, as
    feedparser's path takes it."""
    contents = []
    for block in raw.get("content") or []:
        kind = block.get("type") or ""
        value = block.get("value") or ""
        if kind == "xhtml" or kind not in ("text", "text/plain", "html", "text/html"):
            raise _Differs
        plain = kind in ("text", "text/plain")
        contents.append(clean_text(html.escape(value, quote=False)) if plain
                        else _clean_html(value))
    summary = _summary(raw, shape, item)
    text = fullest([*contents, summary])
    if item is None or not item.captions:
        return text
    for caption in item.captions:  # each known by its text on feedparser's path, or _Differs
        _caption_html(caption, shape)
    if item.direct and shape.has_summary and (shape.kind == "atom" or item.before_summary):
        raise _Differs  # fastfeedparser took the caption for the description
    if item.caption_retyped:
        raise _Differs  # feedparser reads a caption by another's type: not known by its text
    if item.summary_lost:  # feedparser read a caption over it: its entry has the rest
        text = fullest(contents) if item.has_content else ""  # else a copy of the summary
        if not text:
            raise _Differs
    if text:
        return text
    if item.has_text or len(item.captions) > 1:
        raise _Differs  # feedparser reads captions as a summary and content blocks of mixed types
    caption = item.captions[0]
    if _caption_html(caption, shape):
        return clean_text(caption.value)
    return clean_text(html.escape(caption.value, quote=False))


def _summary(raw: Any, shape: _Shape, item: ItemCaptions | None) -> str:
    """Clean text of the summary, read as HTML or text as feedparser reads it beside the
    item's captions."""
    summary: str = (raw.get("description") or "") if shape.has_summary else ""
    if not summary:
        return ""
    as_html = shape.kind == "rss" or shape.summary_html
    retyped = item.summary_retyped if item is not None else None
    if item is not None and item.summary_as_content and shape.kind == "rss":
        as_html = _looks_like_html(summary)
    elif retyped is not None and _is_html(retyped) != as_html:
        if as_html and any(c in summary for c in "<&"):
            raise _Differs  # feedparser reads its sanitized HTML as text, by a caption's type
        as_html = not as_html
    return _clean_html(summary) if as_html else clean_text(html.escape(summary, quote=False))


def _caption_html(caption: Caption, shape: _Shape) -> bool:
    """Whether feedparser reads a caption as HTML (as an entry's only description: unless
    `type` says plain text, which RSS takes for HTML if it looks like it); _Differs for one
    feedparser's path would not know by its text."""
    if caption.markup:
        raise _Differs
    if _is_html(caption.kind) or (shape.kind == "rss" and _looks_like_html(caption.value)):
        _check_html(caption.value)
        return True
    return False


def _is_html(kind: str) -> bool:
    """Whether feedparser reads a caption of this `type` as HTML (untyped ones are)."""
    if kind in ("", "html", "text/html"):
        return True
    if kind in ("plain", "text", "text/plain"):
        return False
    raise _Differs


def _author(raw: Any) -> str | None:
    name = (raw.get("author") or "").strip()
    if "@" in name:
        match = _EMAIL_NAME.match(name)
        if match is None:
            raise _Differs
        name = match.group(1)
    return clean_text(name) or None


def _absolute(base: str, link: str) -> str:
    resolved = urljoin(base, link.strip())
    if not resolved.startswith(("http://", "https://")):
        raise _Differs
    return resolved


def _datetime(value: Any) -> datetime | None:
    """An ISO 8601 string from fastfeedparser, to the second (as feedparser's struct_time)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as e:
        raise _Differs from e
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).replace(microsecond=0)
