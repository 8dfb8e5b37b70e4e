"""Updates held in a page's embedded application state: the JSON a JavaScript front end
renders from, such as `<script id="__NEXT_DATA__" type="application/json">` or
`window.__INITIAL_STATE__ = {…}` (also `= JSON.parse("…")`).

The state is searched breadth-first (bounded) for a collection of update-like objects: a
list, or the objects of one `__typename` in a normalised store (Apollo), of at least
`MIN_UPDATES` objects of which most carry a body (an HTML or text string, or rich-text blocks)
and a time (ISO 8601, or epoch seconds or milliseconds). The collection with the most body
text wins. Collections under a key naming related stories, navigation and the like are
skipped, and so are teaser lists (most objects link to another page): an ordinary article's
state gives no entries.

An update's id is its `url` when that is an anchor of this page, else `page#<id>` from its
`id` (the element id a page usually renders it under, so the update finder gives it the same
id), else `h:` + a hash of its title and text.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urldefrag, urljoin

from selectolax.lexbor import LexborHTMLParser

from monitor.core.models import Entry
from monitor.core.textnorm import clean_text
from monitor.core.urls import canonical_url
from monitor.core.versionmemo import version_of
from monitor.sources.base import parse_datetime, unique_entries
from monitor.sources.blocks import NEGATIVE_WORDS

MIN_UPDATES = 3
#: JSON values visited per page, and the nesting depth searched.
_MAX_VISITS = 200_000
_MAX_DEPTH = 40
_RICH_DEPTH = 10
_STATE_CSS = 'script[type="application/json"], script:not([type]), script[type="text/javascript"]'
#: `window.__X__ =`, `window["__X__"] =`, `self.__X__ =`, `var __X__ =` at a script's start.
_ASSIGNMENT = re.compile(r"""(?:(?:window|self|globalThis)(?:\.|\[["'])|(?:var|let|const)\s+)?"""
                         r"""__\w+["']?\]?\s*=""")
_JSON_PARSE = re.compile(r"JSON\.parse\(")
_BODY_KEYS = ("body", "bodyHtml", "body_html", "html", "content", "contentHtml", "text",
              "articleBody", "blocks", "elements", "message", "description", "summary")
_TITLE_KEYS = ("headline", "title", "heading", "name")
_ID_KEYS = frozenset(("id", "_id", "uuid", "postid", "post_id", "entryid", "entry_id", "blockid",
                      "block_id", "updateid", "update_id", "key"))
_URL_KEYS = ("url", "permalink", "link", "shareUrl", "webUrl")
_AUTHOR_KEYS = ("author", "authors", "byline", "contributors")
#: Keys of rich-text trees whose values hold the text.
_RICH_KEYS = frozenset(("text", "html", "value", "content", "body", "children", "elements",
                        "blocks", "paragraphs", "nodes", "items", "data", "bodyHtml"))


def app_state_updates(tree: LexborHTMLParser, base: str,
                      max_entries: int) -> list[Entry] | str:
    """The updates in the page's app state, or a sentence saying why there are none."""
    states = list(_states(tree))
    if not states:
        return "no embedded app state"
    page = canonical_url(urldefrag(base)[0])
    best: list[Entry] = []
    best_size = 0
    for collection in _collections(states):
        entries = _entries(collection, base, page, max(max_entries, MIN_UPDATES))
        size = sum(len(e.text) for e in entries)
        if len(entries) >= MIN_UPDATES and size > best_size:
            best, best_size = entries, size
    if not best:
        return "no list of objects with a time and a text in the embedded app state"
    return best[:max_entries]  # the cap applies after the count: it never declines a page


# -- finding the state ------------------------------------------------------------------------
def _states(tree: LexborHTMLParser) -> Iterator[Any]:
    for script in tree.css(_STATE_CSS):
        text = script.text(deep=False)
        if not text or "{" not in text:
            continue
        if script.attributes.get("type") == "application/json":
            value = _json(text, _skip_space(text, 0))
        else:
            text = text.lstrip()
            match = _ASSIGNMENT.match(text)
            if match is None:
                continue
            value = _json(text, _skip_space(text, match.end()))
        if isinstance(value, (dict, list)):
            yield value


def _json(text: str, start: int) -> Any:
    decoder = json.JSONDecoder()
    parse = _JSON_PARSE.match(text, start)  # `start` is past any whitespace
    try:
        if parse is not None:  # JSON.parse("…"): the string literal holds the JSON
            literal, _ = decoder.raw_decode(text, _skip_space(text, parse.end()))
            return json.loads(literal) if isinstance(literal, str) else None
        return decoder.raw_decode(text, start)[0]
    except (ValueError, RecursionError):
        return None


def _skip_space(text: str, index: int) -> int:
    while index < len(text) and text[index].isspace():
        index += 1
    return index


def _collections(states: list[Any]) -> Iterator[list[dict[str, Any]]]:
    """Lists of objects, and a store's objects grouped by `__typename`, breadth-first."""
    queue: deque[tuple[Any, int]] = deque((state, 0) for state in states)
    visits = 0
    while queue and visits < _MAX_VISITS:
        value, depth = queue.popleft()
        visits += 1
        if depth >= _MAX_DEPTH:
            continue
        if isinstance(value, list):
            objects = [v for v in value if isinstance(v, dict)]
            if len(objects) >= MIN_UPDATES:
                yield objects
            queue.extend((v, depth + 1) for v in value if isinstance(v, (dict, list)))
        elif isinstance(value, dict):
            typed: dict[str, list[dict[str, Any]]] = {}
            for key, item in value.items():
                if not isinstance(item, (dict, list)) or NEGATIVE_WORDS.search(str(key)):
                    continue
                if isinstance(item, dict) and isinstance(item.get("__typename"), str):
                    typed.setdefault(item["__typename"], []).append(item)
                queue.append((item, depth + 1))
            yield from (group for group in typed.values() if len(group) >= MIN_UPDATES)


# -- reading updates --------------------------------------------------------------------------
def _entries(objects: list[dict[str, Any]], base: str, page: str,
             max_entries: int) -> list[Entry]:
    drafts = [_draft(item, base, page) for item in objects]
    usable = [draft for draft in drafts if draft is not None]
    if len(usable) < max(MIN_UPDATES, 0.8 * len(objects)):
        return []
    elsewhere = sum(1 for _, linked_away in usable if linked_away)
    if elsewhere > len(usable) / 2:  # teasers of other pages
        return []
    return unique_entries((entry for entry, _ in usable), max_entries)


def _draft(item: dict[str, Any], base: str, page: str) -> tuple[Entry, bool] | None:
    """(the object as an Entry, whether it links to another page), None if not an update."""
    text = next((t for key in _BODY_KEYS if (t := _rich(item.get(key), 0))), "")
    published = _time(item, ("publish", "creat", "posted", "first"), ("date", "time",
                                                                       "timestamp"))
    if len(text) < 20 or published is None:
        return None
    title = clean_text(next((name for key in _TITLE_KEYS
                             if isinstance(name := item.get(key), str) and len(name) <= 300), ""))
    link = next((urljoin(base, v) for key in _URL_KEYS
                 if isinstance(v := item.get(key), str) and v.strip()), None)
    canonical = canonical_url(link) if link is not None else None
    linked_away = canonical is not None and urldefrag(canonical)[0] != page
    ident = ""
    if canonical is not None and not linked_away and "#" in canonical:
        ident = canonical
    elif (raw := next((v for k, v in item.items() if k.lower() in _ID_KEYS
                       and isinstance(v, (str, int)) and str(v).strip()), None)) is not None:
        ident = canonical_url(urljoin(base, "#" + str(raw).strip()))
    if not ident:
        ident = "h:" + version_of(title, text)
    entry = Entry(id=ident, url=link if link and not linked_away else page, title=title,
                  text=text, author=_author(item),
                  published=published, updated=_time(item, ("modif", "updat", "edit"), ()))
    return entry, linked_away


def _rich(value: Any, depth: int) -> str:
    """Clean text of an HTML/text string or of a rich-text tree of them."""
    if isinstance(value, str):
        return clean_text(value)
    if depth >= _RICH_DEPTH:
        return ""
    if isinstance(value, list):
        parts = [_rich(v, depth + 1) for v in value]
        return "\n\n".join(p for p in parts if p)
    if isinstance(value, dict):
        parts = [_rich(v, depth + 1) for k, v in value.items() if k in _RICH_KEYS]
        return "\n\n".join(p for p in parts if p)
    return ""


def _time(item: dict[str, Any], words: tuple[str, ...],
          exact: tuple[str, ...]) -> datetime | None:
    for key, value in item.items():
        name = key.lower()
        if not (name in exact or any(word in name for word in words)):
            continue
        when = _as_time(value)
        if when is not None:
            return when
    return None


def _as_time(value: Any) -> datetime | None:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    if isinstance(value, str):
        return parse_datetime(value)
    seconds = value / 1000 if value > 1e11 else value
    if not 1e9 <= seconds <= 4e9:  # 2001 .. 2096
        return None
    return datetime.fromtimestamp(seconds, UTC)


def _author(item: dict[str, Any]) -> str | None:
    for key in _AUTHOR_KEYS:
        value = item.get(key)
        names = []
        for one in value if isinstance(value, list) else [value]:
            name = one.get("name") if isinstance(one, dict) else one
            if isinstance(name, str) and name.strip() and len(name) <= 200:
                names.append(clean_text(name))
        if names:
            return ", ".join(dict.fromkeys(names))
    return None
