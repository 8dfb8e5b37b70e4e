"""Live-blog pages described by schema.org `LiveBlogPosting` in JSON-LD, else in microdata or
RDFa (`monitor.sources.microdata` reads those into the JSON-LD shape).

Updates come from `liveBlogUpdate` (a list or one object), `blogPost` and `blogPosts` of every
LiveBlogPosting found in any JSON-LD block (top-level arrays, `@graph`, nested properties).
An update maps to an Entry: `headline` (or `name`), `articleBody` (else `text`, else
`description`), `datePublished`, `dateModified`, `author` (names joined with ", ") and its link
`url` (else `@id`), resolved against the page. Identity is the canonical `@id` (else `url`), kept
with its `#anchor`; when that is missing, a blank node, the page itself or shared by several
updates, it is `h:` + a hash of the normalised headline and body.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict, defaultdict
from dataclasses import dataclass
from typing import Any
from urllib.parse import urldefrag, urljoin

from selectolax.lexbor import LexborHTMLParser

from monitor.core.errors import ParseError
from monitor.core.models import Entry
from monitor.core.textnorm import clean_text
from monitor.core.urls import canonical_url
from monitor.core.versionmemo import remember_raw
from monitor.sources.base import (
    MAX_ENTRIES,
    PageInfo,
    ParsedDocument,
    SourceOptions,
    html_tree,
    page_base,
    parse_datetime,
)
from monitor.sources.jsonld import json_ld_blocks, typed_nodes
from monitor.sources.microdata import microdata_items, rdfa_items

LIVE_BLOG_TYPE = "LiveBlogPosting"
_UPDATE_KEYS = ("liveBlogUpdate", "blogPost", "blogPosts")
#: Markup left after one clean_text: the body was HTML-escaped (`&lt;p&gt;…`).
_ESCAPED_TAG = re.compile(
    r"</?(?:p|br|div|span|a|em|strong|b|i|ul|ol|li|h[1-6]|blockquote)\b[^>]*>", re.IGNORECASE)


class LiveBlogSource:
    """A `Source` for pages with LiveBlogPosting JSON-LD."""

    kind = "liveblog"

    def parse(self, body: bytes, url: str, content_type: str | None,
              options: SourceOptions) -> ParsedDocument:
        """Updates of the page's live blogs; ParseError if it describes none."""
        document = parse_live_blog(html_tree(body, content_type, options.max_html_depth), url,
                                   options.max_entries)
        if document is None:
            raise ParseError("no schema.org LiveBlogPosting in the page's JSON-LD, microdata "
                             "or RDFa")
        return document


def parse_live_blog(tree: LexborHTMLParser, url: str,
                    max_entries: int = MAX_ENTRIES) -> ParsedDocument | None:
    """The live blog of a parsed page (its `strategy` the syntax it came in), or None when
    neither its JSON-LD, nor its microdata, nor its RDFa describe a LiveBlogPosting."""
    syntax, blogs = "json-ld", _blogs(json_ld_blocks(tree))
    if not blogs:
        syntax, blogs = "microdata", _blogs(microdata_items(tree))
    if not blogs:
        syntax, blogs = "rdfa", _blogs(rdfa_items(tree))
    if not blogs:
        return None
    base = page_base(tree, url)
    updates = [update for blog in blogs for update in _updates(blog)]
    return ParsedDocument("liveblog", _entries(updates, base, url, max_entries),
                          _page_info(blogs[0]), syntax)


def _blogs(values: list[Any]) -> list[dict[str, Any]]:
    return [node for value in values for node in typed_nodes(value, LIVE_BLOG_TYPE)]


def _updates(blog: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for key in _UPDATE_KEYS:
        value = blog.get(key)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict):
                found.append(item)
    return found


def _entries(updates: list[dict[str, Any]], base: str, page_url: str,
             max_entries: int) -> list[Entry]:
    authors: dict[tuple[object, ...], str | None] = {}
    drafts = [_remembered_draft(update, base, authors) for update in updates]
    page = canonical_url(urldefrag(page_url)[0])
    # An id naming updates of different content (a CMS that gives each the page URL) is no id.
    contents: dict[str, set[str]] = defaultdict(set)
    for draft in drafts:
        if draft.link_id:
            contents[draft.link_id].add(draft.hash)
    entries: list[Entry] = []
    seen: set[str] = set()
    for draft in drafts:
        if not draft.entry.title and not draft.entry.text:
            continue
        usable = draft.link_id and draft.link_id != page and len(contents[draft.link_id]) == 1
        ident = draft.link_id if usable else "h:" + draft.hash
        if ident in seen:
            continue
        seen.add(ident)
        entries.append(draft.entry.with_id(ident))
        if len(entries) >= max_entries:
            break
    return entries


@dataclass(frozen=True)
class _Draft:
    entry: Entry
    link_id: str
    hash: str


class _DraftMemo:
    """Drafts of updates read recently, by a hash of all that makes one (its raw fields and
    the page's base URL; Python's string hash, randomised per process: not craftable by a
    page). A changed live blog lists its hundreds of unchanged updates again, and reading
    one (the clean text of its HTML body, its hash) is most of its parse. Shared by the
    parsing threads; bounded by the characters it holds (`MAX_CHARS`, a few MB)."""

    MAX_CHARS = 2_000_000
    #: An update this long is read each time (a few of them would fill the memo).
    MAX_DRAFT_CHARS = 20_000

    def __init__(self) -> None:
        self._drafts: OrderedDict[int, _Draft] = OrderedDict()
        self._chars = 0
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._drafts.clear()
            self._chars = 0

    def get(self, key: int) -> _Draft | None:
        with self._lock:
            draft = self._drafts.get(key)
            if draft is not None:
                self._drafts.move_to_end(key)
            return draft

    def put(self, key: int, draft: _Draft) -> None:
        size = len(draft.entry.title) + len(draft.entry.text)
        if size > self.MAX_DRAFT_CHARS:
            return
        with self._lock:
            if key in self._drafts:
                return
            self._drafts[key] = draft
            self._chars += size
            while self._chars > self.MAX_CHARS:
                _key, old = self._drafts.popitem(last=False)
                self._chars -= len(old.entry.title) + len(old.entry.text)


_MEMO = _DraftMemo()


def forget_drafts() -> None:
    """Empty the memo of recently read updates (benchmarks of a first parse; tests)."""
    _MEMO.clear()

#: The update properties a draft is read from (`author` apart: its names).
_DRAFT_KEYS = ("headline", "name", "articleBody", "text", "description", "@id", "url",
               "datePublished", "dateModified")


def _remembered_draft(update: dict[str, Any], base: str,
                      authors: dict[tuple[object, ...], str | None]) -> _Draft:
    """`_draft(update, …)`, from `_MEMO` when the same update was read lately."""
    author = update.get("author")
    names = tuple(item.get("name") if isinstance(item, dict) else item
                  for item in (author if isinstance(author, list) else [author]))
    try:
        key = hash((base, names, *(update.get(name) for name in _DRAFT_KEYS)))
    except TypeError:  # a list or an object where a string belongs: read it each time
        return _draft(update, base, authors)
    draft = _MEMO.get(key)
    if draft is None:
        draft = _draft(update, base, authors)
        _MEMO.put(key, draft)
    else:  # this parse's versions name it too, as if computed (`monitor.core.versionmemo`)
        remember_raw(hash((draft.entry.title, draft.entry.text)), draft.hash)
    return draft


def _draft(update: dict[str, Any], base: str,
           authors: dict[tuple[object, ...], str | None]) -> _Draft:
    title = _text(update.get("headline")) or _text(update.get("name"))
    text = next((t for key in ("articleBody", "text", "description")
                 if (t := _text(update.get(key)))), "")
    link_id, link = _link(update, base)
    entry = Entry(id="", url=link, title=title, text=text,
                  author=_author(update.get("author"), authors),
                  published=parse_datetime(update.get("datePublished")),
                  updated=parse_datetime(update.get("dateModified")))
    return _Draft(entry, link_id, entry.version)


def _link(update: dict[str, Any], base: str) -> tuple[str, str | None]:
    """(canonical id from `@id` else `url`, display link from `url` else `@id`); "" / None."""
    node_id, url = _ref(update.get("@id"), base), _ref(update.get("url"), base)
    ident = node_id or url
    return (canonical_url(ident) if ident else ""), (url or node_id or None)


def _ref(value: Any, base: str) -> str:
    if isinstance(value, dict):  # {"@id": "…"} as a property value
        value = value.get("@id")
    if not isinstance(value, str) or not value.strip() or value.strip().startswith("_:"):
        return ""
    ref: str = value.strip()
    if ref.startswith(("https://", "http://")) and "/." not in ref:
        return ref  # absolute already: what urljoin gives, without its cost (428 a page)
    return urljoin(base, ref)


def _text(value: Any) -> str:
    """Clean text of a JSON-LD string (often HTML, sometimes escaped HTML: cleaned twice)."""
    if isinstance(value, list):
        value = " ".join(v for v in value if isinstance(v, str))
    if not isinstance(value, str):
        return ""
    text = clean_text(value)
    return clean_text(text) if _ESCAPED_TAG.search(text, 0, text.rfind(">") + 1) else text


def _author(value: Any, seen: dict[tuple[object, ...], str | None]) -> str | None:
    """Names of a string, a Person/Organization object, or a list of them, joined with ", "
    (`seen`: the names already read on this page by their raw values; most updates of a page
    repeat the same few authors)."""
    items = value if isinstance(value, list) else [value]
    raw = tuple(item.get("name") if isinstance(item, dict) else item for item in items)
    hashable = all(isinstance(item, str) or item is None for item in raw)
    if hashable and raw in seen:
        return seen[raw]
    names: list[str] = []
    for item in raw:
        name = _text(item)
        if name and name not in names:
            names.append(name)
    found = ", ".join(names) or None
    if hashable:
        seen[raw] = found
    return found


def _page_info(blog: dict[str, Any]) -> PageInfo:
    return PageInfo(coverage_start=parse_datetime(blog.get("coverageStartTime")),
                    coverage_end=parse_datetime(blog.get("coverageEndTime")),
                    modified=parse_datetime(blog.get("dateModified")))
