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
from collections import defaultdict
from dataclasses import dataclass
from typing import Any
from urllib.parse import urldefrag, urljoin

from selectolax.lexbor import LexborHTMLParser

from monitor.core.errors import ParseError
from monitor.core.models import Entry
from monitor.core.textnorm import clean_text
from monitor.core.urls import canonical_url
from monitor.sources.base import (
    MAX_ENTRIES,
    PageInfo,
    ParsedDocument,
    SourceOptions,
    html_tree,
    page_base,
    parse_datetime,
)
from monitor.sources.jsonld import json_ld_blocks, nodes, types_of
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
    return [node for value in values for node in nodes(value) if LIVE_BLOG_TYPE in types_of(node)]


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
    drafts = [_draft(update, base) for update in updates]
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


def _draft(update: dict[str, Any], base: str) -> _Draft:
    title = _text(update.get("headline")) or _text(update.get("name"))
    text = next((t for key in ("articleBody", "text", "description")
                 if (t := _text(update.get(key)))), "")
    link_id, link = _link(update, base)
    entry = Entry(id="", url=link, title=title, text=text, author=_author(update.get("author")),
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


def _author(value: Any) -> str | None:
    """Names of a string, a Person/Organization object, or a list of them, joined with ", "."""
    names: list[str] = []
    for item in value if isinstance(value, list) else [value]:
        name = _text(item.get("name")) if isinstance(item, dict) else _text(item)
        if name and name not in names:
            names.append(name)
    return ", ".join(names) or None


def _page_info(blog: dict[str, Any]) -> PageInfo:
    return PageInfo(coverage_start=parse_datetime(blog.get("coverageStartTime")),
                    coverage_end=parse_datetime(blog.get("coverageEndTime")),
                    modified=parse_datetime(blog.get("dateModified")))
