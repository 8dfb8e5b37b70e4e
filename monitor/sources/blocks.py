"""The elements of one live-blog update in a page's markup, and the Entry it becomes.

`monitor.sources.finder` picks the updates; this module knows what an update is made of: its
time (a `<time>`, a `datetime` or time-like `data-*` attribute, a text that is only a time,
or a ticker heading that starts with one), its parts (a block, or a heading and the loose
siblings after it), and how they read as an Entry.

An Entry's id is the element's `id` (or a `data-*` id) as an anchor of the page (`page#id`),
else `h:` + a hash of its normalised title and text (never of its position); its time comes
from the `datetime`/`data-*` attribute or the written time (with the page's date and offset
where the text omits them); its title is its first heading without the time; its author a
byline element; the body the rest of its text, with times, share widgets and scripts left
out so that a "5 minutes ago" never reads as an edit.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import urljoin

from selectolax.lexbor import LexborHTMLParser, LexborNode

from monitor.core.models import Entry
from monitor.core.textnorm import clean_text
from monitor.core.urls import canonical_url
from monitor.core.versionmemo import version_of
from monitor.sources.base import parse_datetime
from monitor.sources.timetext import PageClock, TextTime, is_time_only, leading_time

_TIME_ATTRS = ("datetime", "data-post-time", "data-timestamp", "data-time", "data-published",
               "data-publish-time", "data-published-at", "data-date", "data-datetime",
               "data-created-at", "data-updated-at", "data-last-modified-time", "data-utc-time")
_ID_ATTRS = ("id", "data-id", "data-post-id", "data-entry-id", "data-update-id", "data-item-id",
             "data-postid", "data-uuid", "data-key")
ANCHOR_CSS = "time, " + ", ".join(f"[{a}]" for a in _TIME_ATTRS)
HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_TITLE_CSS = ('[class*="title"], [class*="headline"], [class*="Title"], [class*="Headline"], '
              '[class*="ttl"]')
#: Widgets inside a block whose text is not the update's.
_BLOCK_JUNK = ('[class*="share"], [class*="social"], [class*="Share"], [class*="Social"], '
               'a[href^="javascript:"]')
#: Siblings that end a ticker update: page sections, not more of its paragraphs.
_SECTIONS = frozenset(("section", "aside", "nav", "footer", "header", "article", "main"))
_BYLINE_CSS = ('[rel~="author"], [itemprop~="author"], [class*="author"], [class*="byline"], '
               '[class*="Author"], [class*="Byline"]')
MAX_LEVELS = 10
_MAX_SIBLINGS = 60
#: Class or id words of page parts that are never live-blog updates, and words of those that
#: are (a positive word lets a block through even with a negative one: `post-comments` no,
#: `liveblog-post` yes).
NEGATIVE_WORDS = re.compile(r"comment|reply|replies|related|teaser|recommend|promo|sidebar|"
                       r"footer|masthead|menu|newsletter|popular|trending|most-?read|"
                       r"breadcrumb|advert|sponsor|outbrain|taboola|playlist|carousel|"
                       r"schedule|fixture|standings|weather|ticker-?bar|tv-?guide|"
                       r"onward|more-?on|also-?read|read-?more|nav", re.IGNORECASE)
_POSITIVE = re.compile(r"live|update|post|entry|event|ticker|timeline|blog|liveblog|feed-?item|"
                       r"lb-|card-?body", re.IGNORECASE)
_GENERATED_ID = re.compile(r"^(?:ember\d+|yui_|ext-gen|:r[0-9a-z]*:|react-|radix-|headlessui-|"
                           r"mui-|uid-?\d)", re.IGNORECASE)


_CLOCK_META = ('meta[property="article:modified_time"], meta[name="last-modified"], '
               'meta[property="og:updated_time"], meta[itemprop="dateModified"], '
               'meta[property="article:published_time"], meta[itemprop="datePublished"]')


def page_clock(tree: LexborHTMLParser, modified: datetime | None = None) -> PageClock:
    """The date and offset of the page's bare times: `modified` (from structured data), else
    the page's modified or published `<meta>`, else none (times without a date stay None)."""
    if modified is None:
        for node in tree.css(_CLOCK_META):
            modified = _aware(node.attributes.get("content") or "")
            if modified is not None:
                break
    return PageClock.of(modified)


def _aware(value: str) -> datetime | None:
    """An ISO 8601 time with its own offset kept (`parse_datetime` makes it UTC)."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def time_texts(root: LexborNode) -> Iterator[LexborNode]:
    """The elements under `root` holding a text that is only a time or date (`17:34`)."""
    for node in root.traverse(include_text=True):
        if node.is_text_node:
            text = node.text_content or ""
            if len(text) <= 60 and is_time_only(text) and node.parent is not None:
                yield node.parent


def marker_time(node: LexborNode) -> TextTime | None:
    """The time a ticker heading starts with (a clock, not only a date)."""
    text = node.text(deep=True)
    if node.tag not in HEADINGS:
        lead = node.child
        while lead is not None and lead.is_text_node and not (lead.text_content or "").strip():
            lead = lead.next
        if lead is None or lead.tag not in ("strong", "b") or len(lead.text(deep=True)) > 150:
            return None
        text = lead.text(deep=True)
    found = leading_time(clean_text(text[:200]))
    return found if found is not None and found.clock is not None else None


def negative(member: LexborNode) -> bool:
    node: LexborNode | None = member
    for _ in range(3):
        if node is None:
            return False
        words = " ".join(filter(None, (node.attributes.get("class"),
                                       node.attributes.get("id"))))
        if words and NEGATIVE_WORDS.search(words) and not _POSITIVE.search(words):
            return True
        node = node.parent
    return False


def inside(inner: LexborNode, outer: LexborNode) -> bool:
    node = inner.parent
    for _ in range(MAX_LEVELS):
        if node is None:
            return False
        if node.mem_id == outer.mem_id:
            return True
        node = node.parent
    return False


def ticker_parts(marker: LexborNode) -> list[LexborNode]:
    """The marker and the siblings after it, up to the next heading or time marker."""
    parts = [marker]
    node = marker.next
    while node is not None and len(parts) < _MAX_SIBLINGS:
        if node.is_element_node:
            if (node.tag in HEADINGS or node.tag in _SECTIONS or negative(node)
                    or marker_time(node) is not None):
                break
            parts.append(node)
        node = node.next
    return parts


def block_entries(members: list[LexborNode], wrappers: dict[int, list[LexborNode]], base: str,
                  page: str, clock: PageClock) -> list[MarkupEntry]:
    """An Entry per block (its id read from the block, else from the `wrappers` around it)."""
    drafts: list[_Draft] = []
    for member in members:
        ident, anchor = next((found for node in [member, *wrappers.get(member.mem_id, [])]
                              if (found := _ident(node))[0]), ("", False))
        published = _block_time(member, clock)
        for node in member.css(_BLOCK_JUNK):
            node.decompose()
        title_node = next((h for css in (", ".join(HEADINGS), _TITLE_CSS)
                           for h in member.css(css)
                           if 0 < len(h.text(deep=True)) <= 300
                           and not is_time_only(h.text(deep=True))), None)
        title = _strip_time(clean_text(title_node.html or "")) if title_node else ""
        byline = next((b for b in member.css(_BYLINE_CSS)
                       if 0 < len(b.text(deep=True).strip()) <= 120), None)
        author = clean_text(byline.html or "") if byline is not None else None
        for junk in [title_node, byline, *_time_nodes(member)]:
            if junk is not None and junk.mem_id != member.mem_id:
                junk.decompose()
        text = _strip_time(clean_text(member.html or ""))
        drafts.append((ident, anchor, title, text, author, published, _list_items([member])))
    return _finish(drafts, base, page)


def ticker_entries(markers: list[LexborNode], base: str, page: str,
                   clock: PageClock) -> list[MarkupEntry]:
    """An Entry per ticker heading, with the siblings after it as its body."""
    drafts: list[_Draft] = []
    for marker in markers:
        when = marker_time(marker)
        day_clock = _day_of(marker, clock)
        published = when.resolve(day_clock) if when else None
        heading = clean_text(marker.html or "")
        ident, anchor = _ident(marker)
        if marker.tag in HEADINGS:
            title = _strip_time(heading)
            parts = ticker_parts(marker)[1:]
            lead = ""
        else:  # <p><strong>17:34 Title</strong> text…</p>
            strong = marker.child
            while strong is not None and strong.tag not in ("strong", "b"):
                strong = strong.next
            title = _strip_time(clean_text(strong.html or "")) if strong else ""
            if strong is not None:
                strong.decompose()
            lead = clean_text(marker.html or "")
            parts = ticker_parts(marker)[1:]
        text = "\n\n".join(filter(None, [lead, *(clean_text(p.html or "") for p in parts)]))
        drafts.append((ident, anchor, title, text.strip(), None, published, _list_items(parts)))
    return _finish(drafts, base, page)


#: (id, whether it is an anchor, title, text, author, published, list items)
_Draft = tuple[str, bool, str, str, str | None, datetime | None, tuple[str, ...]]
#: An update's Entry and the clean text of each list item in its body (for the join with
#: structured data, which often leaves lists out).
MarkupEntry = tuple[Entry, tuple[str, ...]]


def _list_items(parts: list[LexborNode]) -> tuple[str, ...]:
    return tuple(text for part in parts for item in part.css("li")
                 if (text := clean_text(item.html or "")))


def _finish(drafts: list[_Draft], base: str, page: str) -> list[MarkupEntry]:
    counts: dict[str, int] = defaultdict(int)
    for ident, *_ in drafts:
        if ident:
            counts[ident] += 1
    entries: list[MarkupEntry] = []
    for ident, anchor, title, text, author, published, items in drafts:
        if not title and not text:
            continue
        if ident and counts[ident] == 1:
            link = canonical_url(urljoin(base, "#" + ident))
            entry_id = link
            url = link if anchor else page
        else:
            entry_id, url = "h:" + version_of(title, text), page
        entries.append((Entry(id=entry_id, url=url, title=title, text=text,
                              author=author or None, published=published), items))
    return entries


def _ident(node: LexborNode) -> tuple[str, bool]:
    """(the element's stable id, whether it is an `id` usable as an anchor); ("", False)."""
    attrs = node.attributes
    for name in _ID_ATTRS:
        value = (attrs.get(name) or "").strip()
        if value and len(value) <= 200 and not _GENERATED_ID.match(value):
            return value, name == "id"
    return "", False


def _block_time(member: LexborNode, clock: PageClock) -> datetime | None:
    for node in [member, *member.css(ANCHOR_CSS)]:
        attrs = node.attributes
        for name in _TIME_ATTRS:
            value = attrs.get(name)
            moment = _attr_time(value) if value else None
            if moment is not None:
                return moment
    day, clocks = None, []
    for node in _time_nodes(member):  # "November 02 2023" and "21:06 (IST)" may be apart
        found = leading_time(clean_text(node.text(deep=True)))
        if found is None or found.relative:
            continue
        if found.clock is not None and found.day is not None:
            return found.resolve(clock)
        if found.day is not None:
            day = day or found.day
        elif found.clock is not None:
            clocks.append(found)
    if not clocks:
        return None
    return clocks[0].resolve(clock.on(day) if day is not None else clock)


def _attr_time(value: str) -> datetime | None:
    value = value.strip()
    if value.isdigit() and 9 <= len(value) <= 13:  # epoch seconds or milliseconds
        seconds = int(value) / (1000 if len(value) > 11 else 1)
        return datetime.fromtimestamp(seconds, UTC)
    return parse_datetime(value)


def _time_nodes(member: LexborNode) -> list[LexborNode]:
    """Elements of `member` that are only a time or date (and `<time>` elements)."""
    found = list(member.css("time"))
    seen = {n.mem_id for n in found}
    for parent in time_texts(member):
        if parent.mem_id in seen or parent.mem_id == member.mem_id:
            continue
        # the element itself, widened to wrappers holding nothing else (`<span><b>17:34`)
        target = parent
        while (target.parent is not None and target.parent.mem_id != member.mem_id
               and is_time_only(target.parent.text(deep=True))):
            target = target.parent
        seen.add(target.mem_id)
        found.append(target)
    return [n for n in found if not any(inside(n, other) for other in found if other is not n)]


def _day_of(marker: LexborNode, clock: PageClock) -> PageClock:
    """The page clock on the day of the nearest date heading before `marker`."""
    node = marker.prev
    while node is not None:
        if node.is_element_node and node.tag in HEADINGS:
            found = leading_time(clean_text(node.html or ""))
            if found is not None and found.day is not None and found.clock is None:
                return clock.on(found.day)
        node = node.prev
    return clock


def _strip_time(text: str) -> str:
    found = leading_time(text)
    return text[found.end:].strip() if found is not None else text
