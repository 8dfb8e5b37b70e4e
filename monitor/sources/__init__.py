"""Turn a fetched document into entries. Each kind of source is a `Source` in `SOURCES`.

`parse_document(kind, ...)` parses with the named source, or with `kind="auto"` detects what the
document is: the body is sniffed first (servers often send feeds as `text/html` or
`application/octet-stream`), the `Content-Type` only breaks ties. Detection goes by document
*format* (`json`, `xml`, `html`) through `_AUTO`. An HTML page is read, in order: as a live
blog from schema.org LiveBlogPosting (JSON-LD, else microdata or RDFa) when that lists
updates, completed from the same updates in the markup (`monitor.sources.join`); with the
feed's CSS `selectors` if it has any; from embedded app state (`monitor.sources.appstate`);
by the update finder (`monitor.sources.finder`: repeated timed blocks, or time headings with
paragraphs); else it is a ParseError saying why each declined. The document records the
strategy taken and why the ones before it declined (`livewatch inspect` prints them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

from monitor.config.models import SelectorSettings
from monitor.core.errors import ParseError
from monitor.core.versionmemo import Versions, remembering
from monitor.sources.appstate import app_state_updates
from monitor.sources.base import (
    MAX_ENTRIES,
    MAX_HTML_DEPTH,
    PageInfo,
    ParsedDocument,
    Source,
    SourceOptions,
    html_tree,
    page_base,
)
from monitor.sources.blocks import page_clock
from monitor.sources.feeds import FeedSource, parse_feed
from monitor.sources.finder import FoundUpdates, find_updates
from monitor.sources.html import HtmlSource, select_entries
from monitor.sources.join import join_markup
from monitor.sources.jsonfeed import JsonFeedSource, is_json_feed, json_feed_entries, load_json
from monitor.sources.liveblog import LiveBlogSource, parse_live_blog

__all__ = ["SOURCES", "PageInfo", "ParsedDocument", "Source", "SourceOptions", "parse_document",
           "sniff_format"]

SOURCES: dict[str, Source] = {
    "rss": FeedSource("rss"),
    "atom": FeedSource("atom"),
    "jsonfeed": JsonFeedSource(),
    "liveblog": LiveBlogSource(),
    "html": HtmlSource(),
}

Format = Literal["json", "xml", "html", "unknown"]
_SNIFF_BYTES = 2048
#: How HTML pages begin (no feed format has these root elements).
_HTML_STARTS = ("<!doctype html", "<html", "<head", "<body", "<meta ", "<meta>", "<title>")


def parse_document(kind: str, body: bytes, url: str, content_type: str | None,
                   selectors: SelectorSettings | None = None, *,
                   max_entries: int = MAX_ENTRIES,
                   max_html_depth: int = MAX_HTML_DEPTH,
                   explain: bool = False, versions: Versions | None = None,
                   known: Mapping[str, str] | None = None) -> ParsedDocument:
    """Parse `body` as `kind` ("auto" detects it); raise ParseError if it is not that.

    `selectors` are the feed's (`kind: html`, or `auto` for pages without live-blog JSON-LD);
    at most `max_entries` entries are read, and HTML nested deeper than `max_html_depth` is
    refused; `explain` also works out the document's `pin` selectors. Each entry's `version`
    is computed here (parsing runs in a thread), reusing the `versions` of the feed's
    previous parse (`monitor.core.versionmemo`; this parse's are in `document.versions`).
    With the feed's fingerprints `known` (the poller's), an entry the fast feed path finds
    unchanged may come without its title and text (the diff drops it).
    """
    with remembering(versions, known) as fresh:
        document = _parse(kind, body, url, content_type, SourceOptions(
            selectors=selectors, max_entries=max_entries, max_html_depth=max_html_depth,
            explain=explain))
        for entry in document.entries:  # here, in the parsing thread, not on the event loop
            _ = entry.version
    document.versions = fresh
    return document


def _parse(kind: str, body: bytes, url: str, content_type: str | None,
           options: SourceOptions) -> ParsedDocument:
    if not body.strip():
        raise ParseError("empty document")
    if kind != "auto":
        source = SOURCES.get(kind)
        if source is None:
            known = ", ".join(["auto", *sorted(SOURCES)])
            raise ParseError(f"unknown source kind {kind!r} (known: {known})")
        return source.parse(body, url, content_type, options)
    fmt = sniff_format(body, content_type)
    handler = _AUTO.get(fmt)
    if handler is None:
        raise ParseError(_NOT_A_FEED.get(fmt, "not a feed (unrecognised document)"))
    return handler(body, url, content_type, options)


def sniff_format(body: bytes, content_type: str | None) -> Format:
    """The document's format from its first bytes, then from its media type."""
    head = _head(body)
    if head.startswith(("{", "[")):
        return "json"
    if head.startswith(_HTML_STARTS):
        return "html"
    if head.startswith("<"):
        if _skip_prolog(head).startswith(_HTML_STARTS):
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


def _auto_json(body: bytes, url: str, content_type: str | None,
               options: SourceOptions) -> ParsedDocument:
    data: Any = load_json(body)
    if not is_json_feed(data):
        raise ParseError("not a feed (JSON without a https://jsonfeed.org/version/ `version`)")
    return ParsedDocument("jsonfeed", json_feed_entries(data, url, options.max_entries))


def _auto_xml(body: bytes, url: str, content_type: str | None,
              options: SourceOptions) -> ParsedDocument:
    kind, entries = parse_feed(body, url, content_type, options.max_entries)
    return ParsedDocument(kind, entries)


def _auto_html(body: bytes, url: str, content_type: str | None,
               options: SourceOptions) -> ParsedDocument:
    tree = html_tree(body, content_type, options.max_html_depth)
    live = parse_live_blog(tree, url, options.max_entries)
    base = page_base(tree, url)
    clock = page_clock(tree, live.page.modified if live and live.page else None)
    explain = options.explain
    if live is not None and live.entries:
        return _joined(live, find_updates(tree, url, base, clock, options.max_entries, explain))
    declined = [f"{live.strategy}: a LiveBlogPosting without updates" if live is not None
                else "structured data: no schema.org LiveBlogPosting in JSON-LD, microdata "
                     "or RDFa"]
    if options.selectors is not None:
        return ParsedDocument("html", select_entries(tree, url, options.selectors,
                                                     options.max_entries),
                              strategy="selectors", declined=declined)
    state = app_state_updates(tree, base, options.max_entries)
    if not isinstance(state, str):
        return ParsedDocument("liveblog", state, live.page if live else None,
                              strategy="app-state", declined=declined)
    declined.append(f"app-state: {state}")
    found = find_updates(tree, url, base, clock, options.max_entries, explain)
    if not isinstance(found, str):
        return ParsedDocument("liveblog", found.entries, live.page if live else None,
                              strategy=f"finder:{found.shape}", declined=declined,
                              pin=found.selectors)
    declined.append(f"finder: {found}")
    if live is not None:  # a live blog without updates yet
        live.declined = declined[1:]
        return live
    raise ParseError(
        "not a feed and no live blog (an HTML page without schema.org LiveBlogPosting in "
        f"JSON-LD, microdata or RDFa, no updates in embedded app state ({state}), and no "
        f"updates found in its markup: {found}); `livewatch inspect URL` shows how it reads; "
        "to pin it, set `kind: html` and `selectors` for this feed (at least `item`, a CSS "
        "selector matching one entry)")


def _joined(live: ParsedDocument, found: FoundUpdates | str) -> ParsedDocument:
    """The structured live blog completed from the updates in its markup (`join_markup`)."""
    if isinstance(found, str):
        return live
    live.pin = found.selectors
    live.entries, changed = join_markup(live.entries, found.entries, found.lists)
    if changed:
        live.strategy += "+markup"
    return live


#: Format -> parser used by `auto`.
_AUTO: dict[str, Callable[[bytes, str, str | None, SourceOptions], ParsedDocument]] = {
    "json": _auto_json,
    "xml": _auto_xml,
    "html": _auto_html,
}

_NOT_A_FEED = {
    "unknown": "not a feed (neither XML nor JSON)",
}
