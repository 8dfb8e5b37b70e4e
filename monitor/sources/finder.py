"""The update finder: the updates of a live-blog page that has no structured data for them.

Two shapes are recognised, and the one carrying more text wins:

* **blocks**: repeated sibling elements of one tag (under parents of one shape), each carrying
  a time: a `<time>`, a `datetime` or time-like `data-*` attribute, or a short text that is
  only a time or date (`17:34`, `21:06 (IST)`, `2 March 2025 17:34`, `5 minutes ago`).
* **ticker**: headings (`h2`-`h6`, or a paragraph led by a bold time) that start with a time
  (`11.04 Uhr: …`), each followed by loose sibling paragraphs up to the next such heading; a
  heading that is only a date (`Donnerstag, 18. 7.`) sets the day of the times after it.

A candidate must have at least `MIN_UPDATES` updates, little link text (teaser rails and
indexes of key events are mostly links), one time per block (a block holding many times is a
day or a page section, not an update), enough text, and no class or id naming comments,
related stories or the like. Ordinary articles have none of these, and give no entries.

Each update becomes an Entry: id from the block's (or heading's) element id or a `data-*` id,
as an anchor of the page (`page#id`), else `h:` + a hash of its normalised title and text
(never of its position); time from the `datetime`/`data-*` attribute or the written time
(with the page's date and offset where the text omits them); title from its first heading
without the time; author from a byline element; the body is the rest of the block's text,
with times, buttons and scripts left out so that a "5 minutes ago" never reads as an edit.
"""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import urljoin

from selectolax.lexbor import LexborHTMLParser, LexborNode

from monitor.models import Entry
from monitor.sources.base import parse_datetime, unique_entries
from monitor.sources.timetext import PageClock, TextTime, is_time_only, leading_time
from monitor.textnorm import clean_text, content_hash
from monitor.urls import canonical_url

MIN_UPDATES = 3
#: Elements that never hold update text (removed before reading blocks).
JUNK = ("script, style, noscript, template, svg, button, iframe, form, select, textarea, "
        "input, object, embed, canvas, video, audio, dialog")
_TIME_ATTRS = ("datetime", "data-post-time", "data-timestamp", "data-time", "data-published",
               "data-publish-time", "data-published-at", "data-date", "data-datetime",
               "data-created-at", "data-updated-at", "data-last-modified-time", "data-utc-time")
_ID_ATTRS = ("id", "data-id", "data-post-id", "data-entry-id", "data-update-id", "data-item-id",
             "data-postid", "data-uuid", "data-key")
_ANCHOR_CSS = "time, " + ", ".join(f"[{a}]" for a in _TIME_ATTRS)
_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_MARKER_CSS = "h2, h3, h4, h5, h6, p > strong:first-child, p > b:first-child"
_TITLE_CSS = ('[class*="title"], [class*="headline"], [class*="Title"], [class*="Headline"], '
              '[class*="ttl"]')
#: Widgets inside a block whose text is not the update's.
_BLOCK_JUNK = ('[class*="share"], [class*="social"], [class*="Share"], [class*="Social"], '
               'a[href^="javascript:"]')
#: Siblings that end a ticker update: page sections, not more of its paragraphs.
_SECTIONS = frozenset(("section", "aside", "nav", "footer", "header", "article", "main"))
_BYLINE_CSS = ('[rel~="author"], [itemprop~="author"], [class*="author"], [class*="byline"], '
               '[class*="Author"], [class*="Byline"]')
_MAX_ANCHORS = 5000
_MAX_LEVELS = 10
_MAX_CANDIDATES = 16
_MAX_SIBLINGS = 60
#: Class or id words of page parts that are never live-blog updates, and words of those that
#: are (a positive word lets a block through even with a negative one: `post-comments` no,
#: `liveblog-post` yes).
_NEGATIVE = re.compile(r"comment|reply|replies|related|teaser|recommend|promo|sidebar|"
                       r"footer|masthead|menu|newsletter|popular|trending|most-?read|"
                       r"breadcrumb|advert|sponsor|outbrain|taboola|playlist|carousel|"
                       r"schedule|fixture|standings|weather|ticker-?bar|tv-?guide|"
                       r"onward|more-?on|also-?read|read-?more|nav", re.IGNORECASE)
_POSITIVE = re.compile(r"live|update|post|entry|event|ticker|timeline|blog|liveblog|feed-?item|"
                       r"lb-|card-?body", re.IGNORECASE)
_GENERATED_ID = re.compile(r"^(?:ember\d+|yui_|ext-gen|:r[0-9a-z]*:|react-|radix-|headlessui-|"
                           r"mui-|uid-?\d)", re.IGNORECASE)
#: Class words that number the item (`post-12345`, `entry_7`), not its kind.
_NUMBERED = re.compile(r"\d{3,}|[-_]\d+$")


@dataclass
class FoundUpdates:
    """What the finder read: the updates, their shape and, for blocks, a selector of them."""

    shape: Literal["blocks", "ticker"]
    entries: list[Entry]
    item_css: str | None = None
    ids: str = "hashes"  # "element ids", "data ids", "hashes" or a mix


@dataclass
class _Candidate:
    shape: Literal["blocks", "ticker"]
    members: list[LexborNode]
    anchors: dict[int, int] = field(default_factory=dict)  # member -> anchors it holds
    #: member -> the blocks around it that an inner candidate replaced (ids are read there too)
    wrappers: dict[int, list[LexborNode]] = field(default_factory=dict)
    score: float = 0.0
    reason: str = ""


def find_updates(tree: LexborHTMLParser, page_url: str, base: str, clock: PageClock,
                 max_entries: int) -> FoundUpdates | str:
    """The page's updates, or a sentence saying why none were found. Removes scripts and
    other non-text elements from `tree` (call it after every reader that needs them)."""
    body = tree.body
    if body is None:
        return "the page has no body"
    for node in body.css(JUNK):
        node.decompose()
    candidates = _block_candidates(body) + _ticker_candidates(body)
    if not candidates:
        return "no repeated blocks or headings carrying a time"
    for candidate in candidates:
        _evaluate(candidate)
    good = sorted((c for c in candidates if not c.reason), key=lambda c: -c.score)
    if not good:
        best = max(candidates, key=lambda c: len(c.members))
        return f"{len(best.members)} {_describe(best)} carrying a time, but {best.reason}"
    chosen = _innermost(good)
    page = canonical_url(urljoin(page_url, "#").rstrip("#"))
    if chosen.shape == "blocks":
        entries, ids = _block_entries(chosen, base, page, clock)
    else:
        entries, ids = _ticker_entries(chosen.members, base, page, clock)
    entries = unique_entries(entries, max_entries)
    if len(entries) < MIN_UPDATES:
        return f"only {len(entries)} readable updates in {_describe(chosen)}"
    return FoundUpdates(chosen.shape, entries,
                        item_css=_selector(tree, chosen.members) if chosen.shape == "blocks"
                        else None, ids=ids)


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
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _describe(candidate: _Candidate) -> str:
    if candidate.shape == "ticker":
        return "time headings"
    tag = candidate.members[0].tag if candidate.members else "?"
    return f"<{tag}> blocks"


# -- candidates -------------------------------------------------------------------------------

def _signature(node: LexborNode | None) -> str:
    if node is None:
        return ""
    classes = sorted(c for c in (node.attributes.get("class") or "").split()
                     if not _NUMBERED.search(c))
    return ".".join([node.tag or "", *classes])


def _time_anchors(body: LexborNode) -> list[LexborNode]:
    anchors = list(body.css(_ANCHOR_CSS)[:_MAX_ANCHORS])
    seen = {node.mem_id for node in anchors}
    for node in body.traverse(include_text=True):
        if len(anchors) >= _MAX_ANCHORS:
            break
        if not node.is_text_node:
            continue
        text = node.text_content or ""
        if len(text) > 60 or not is_time_only(text):
            continue
        parent = node.parent
        if parent is not None and parent.mem_id not in seen:
            seen.add(parent.mem_id)
            anchors.append(parent)
    return anchors


def _block_candidates(body: LexborNode) -> list[_Candidate]:
    groups: dict[tuple[int, str, str], dict[int, LexborNode]] = defaultdict(dict)
    counts: dict[tuple[int, str, str], dict[int, int]] = defaultdict(lambda: defaultdict(int))
    body_id = body.mem_id
    for anchor in _time_anchors(body):
        node: LexborNode | None = anchor
        for _ in range(_MAX_LEVELS):
            if node is None or node.mem_id == body_id:
                break
            parent = node.parent
            if parent is None:
                break
            grand = parent.parent
            key = (grand.mem_id if grand is not None else 0, _signature(parent), node.tag or "")
            groups[key][node.mem_id] = node
            counts[key][node.mem_id] += 1
            node = parent
    found = [(_Candidate("blocks", list(members.values()), dict(counts[key])))
             for key, members in groups.items() if len(members) >= MIN_UPDATES]
    found.sort(key=lambda c: -len(c.members))
    return found[:_MAX_CANDIDATES]


def _ticker_candidates(body: LexborNode) -> list[_Candidate]:
    groups: dict[tuple[int, str], list[LexborNode]] = defaultdict(list)
    for node in body.css(_MARKER_CSS):
        marker = node.parent if node.tag in ("strong", "b") else node
        if marker is None or _marker_time(marker) is None:
            continue
        parent = marker.parent
        grand = parent.parent if parent is not None else None
        groups[(grand.mem_id if grand is not None else 0, _signature(parent))].append(marker)
    return [_Candidate("ticker", markers, {m.mem_id: 1 for m in markers})
            for markers in groups.values() if len(markers) >= MIN_UPDATES]


def _marker_time(node: LexborNode) -> TextTime | None:
    """The time a ticker heading starts with (a clock, not only a date)."""
    text = node.text(deep=True)
    if node.tag not in _HEADINGS:
        lead = node.child
        while lead is not None and lead.is_text_node and not (lead.text_content or "").strip():
            lead = lead.next
        if lead is None or lead.tag not in ("strong", "b") or len(lead.text(deep=True)) > 150:
            return None
        text = lead.text(deep=True)
    found = leading_time(clean_text(text[:200]))
    return found if found is not None and found.clock is not None else None


# -- evaluation -------------------------------------------------------------------------------

def _evaluate(candidate: _Candidate) -> None:
    """Set the candidate's score, or the reason it is not a set of updates."""
    texts: list[int] = []
    links = 0
    for member in candidate.members:
        size = _text_size(member) if candidate.shape == "blocks" else _ticker_size(member)
        texts.append(size)
        links += sum(len(a.text(deep=True).strip()) for a in member.css("a"))
    total = sum(texts)
    per_member = statistics.median(candidate.anchors.get(m.mem_id, 1) for m in candidate.members)
    if candidate.shape == "blocks" and per_member > 3:
        candidate.reason = "each holds several times (a section of the page, not an update)"
    elif total and links / total > 0.5:
        candidate.reason = "they are mostly links (teasers or an index)"
    elif statistics.median(texts) < 20 or total < 200:
        candidate.reason = "they hold too little text"
    elif _negative(candidate.members[0]):
        candidate.reason = "the page names them as something else (comments, related stories…)"
    candidate.score = total * (0.9 if candidate.shape == "ticker" else 1.0)


def _text_size(node: LexborNode) -> int:
    return len(node.text(deep=True, separator=" ", strip=True))


def _ticker_size(marker: LexborNode) -> int:
    return sum(_text_size(node) for node in _ticker_parts(marker))


def _negative(member: LexborNode) -> bool:
    node: LexborNode | None = member
    for _ in range(3):
        if node is None:
            return False
        words = " ".join(filter(None, (node.attributes.get("class"),
                                       node.attributes.get("id"))))
        if words and _NEGATIVE.search(words) and not _POSITIVE.search(words):
            return True
        node = node.parent
    return False


def _innermost(good: list[_Candidate]) -> _Candidate:
    """The best candidate, or a candidate inside it with (nearly) the same text: the update
    itself rather than a wrapper around it."""
    best = good[0]
    for other in good[1:]:
        if other.score < 0.95 * best.score or len(other.members) != len(best.members):
            continue
        pairs = list(zip(other.members, best.members, strict=True))
        if all(_inside(inner, outer) for inner, outer in pairs):
            other.wrappers = {inner.mem_id: [outer, *best.wrappers.get(outer.mem_id, [])]
                              for inner, outer in pairs}
            best = other
    for other in good:  # wrappers of the chosen blocks that scored first (ties)
        if other is best or len(other.members) != len(best.members):
            continue
        pairs = list(zip(best.members, other.members, strict=True))
        if all(_inside(inner, outer) for inner, outer in pairs):
            for inner, outer in pairs:
                best.wrappers.setdefault(inner.mem_id, []).append(outer)
    return best


def _inside(inner: LexborNode, outer: LexborNode) -> bool:
    node = inner.parent
    for _ in range(_MAX_LEVELS):
        if node is None:
            return False
        if node.mem_id == outer.mem_id:
            return True
        node = node.parent
    return False


# -- entries ----------------------------------------------------------------------------------

def _block_entries(chosen: _Candidate, base: str, page: str,
                   clock: PageClock) -> tuple[list[Entry], str]:
    drafts: list[_Draft] = []
    for member in chosen.members:
        ident, anchor = next((found for node in [member, *chosen.wrappers.get(member.mem_id, [])]
                              if (found := _ident(node))[0]), ("", False))
        published = _block_time(member, clock)
        for node in member.css(_BLOCK_JUNK):
            node.decompose()
        title_node = next((h for css in (", ".join(_HEADINGS), _TITLE_CSS)
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
        drafts.append((ident, anchor, title, text, author, published))
    return _finish(drafts, base, page)


def _ticker_entries(markers: list[LexborNode], base: str, page: str,
                    clock: PageClock) -> tuple[list[Entry], str]:
    drafts: list[_Draft] = []
    for marker in markers:
        when = _marker_time(marker)
        day_clock = _day_of(marker, clock)
        published = when.resolve(day_clock) if when else None
        heading = clean_text(marker.html or "")
        ident, anchor = _ident(marker)
        if marker.tag in _HEADINGS:
            title = _strip_time(heading)
            parts = _ticker_parts(marker)[1:]
            lead = ""
        else:  # <p><strong>17:34 Title</strong> text…</p>
            strong = marker.child
            while strong is not None and strong.tag not in ("strong", "b"):
                strong = strong.next
            title = _strip_time(clean_text(strong.html or "")) if strong else ""
            if strong is not None:
                strong.decompose()
            lead = clean_text(marker.html or "")
            parts = _ticker_parts(marker)[1:]
        text = "\n\n".join(filter(None, [lead, *(clean_text(p.html or "") for p in parts)]))
        drafts.append((ident, anchor, title, text.strip(), None, published))
    return _finish(drafts, base, page)


_Draft = tuple[str, bool, str, str, str | None, datetime | None]


def _finish(drafts: list[_Draft], base: str, page: str) -> tuple[list[Entry], str]:
    counts: dict[str, int] = defaultdict(int)
    for ident, *_ in drafts:
        if ident:
            counts[ident] += 1
    entries: list[Entry] = []
    kinds: set[str] = set()
    for ident, anchor, title, text, author, published in drafts:
        if not title and not text:
            continue
        if ident and counts[ident] == 1:
            link = canonical_url(urljoin(base, "#" + ident))
            entry_id = link
            url = link if anchor else page
            kinds.add("element ids" if anchor else "data ids")
        else:
            entry_id, url = "h:" + content_hash(title, text), page
            kinds.add("hashes")
        entries.append(Entry(id=entry_id, url=url, title=title, text=text, author=author or None,
                             published=published))
    return entries, " and ".join(sorted(kinds)) or "hashes"


def _ident(node: LexborNode) -> tuple[str, bool]:
    """(the element's stable id, whether it is an `id` usable as an anchor); ("", False)."""
    attrs = node.attributes
    for name in _ID_ATTRS:
        value = (attrs.get(name) or "").strip()
        if value and len(value) <= 200 and not _GENERATED_ID.match(value):
            return value, name == "id"
    return "", False


def _block_time(member: LexborNode, clock: PageClock) -> datetime | None:
    for node in [member, *member.css(_ANCHOR_CSS)]:
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
    for node in member.traverse(include_text=True):
        if not node.is_text_node:
            continue
        text = node.text_content or ""
        if len(text) > 60 or not is_time_only(text):
            continue
        parent = node.parent
        if parent is None or parent.mem_id in seen or parent.mem_id == member.mem_id:
            continue
        # the element itself, widened to wrappers holding nothing else (`<span><b>17:34`)
        target = parent
        while (target.parent is not None and target.parent.mem_id != member.mem_id
               and is_time_only(target.parent.text(deep=True))):
            target = target.parent
        seen.add(target.mem_id)
        found.append(target)
    return [n for n in found if not any(_inside(n, other) for other in found if other is not n)]


def _ticker_parts(marker: LexborNode) -> list[LexborNode]:
    """The marker and the siblings after it, up to the next heading or time marker."""
    parts = [marker]
    node = marker.next
    while node is not None and len(parts) < _MAX_SIBLINGS:
        if node.is_element_node:
            if (node.tag in _HEADINGS or node.tag in _SECTIONS or _negative(node)
                    or _marker_time(node) is not None):
                break
            parts.append(node)
        node = node.next
    return parts


def _day_of(marker: LexborNode, clock: PageClock) -> PageClock:
    """The page clock on the day of the nearest date heading before `marker`."""
    node = marker.prev
    while node is not None:
        if node.is_element_node and node.tag in _HEADINGS:
            found = leading_time(clean_text(node.html or ""))
            if found is not None and found.day is not None and found.clock is None:
                return clock.on(found.day)
        node = node.prev
    return clock


def _strip_time(text: str) -> str:
    found = leading_time(text)
    return text[found.end:].strip() if found is not None else text


def _selector(tree: LexborHTMLParser, members: list[LexborNode]) -> str | None:
    """A CSS selector matching exactly the blocks, for a pinned `kind: html` config."""
    first = members[0]
    common = set((first.attributes.get("class") or "").split())
    for member in members[1:]:
        common &= set((member.attributes.get("class") or "").split())
    item = (first.tag or "div") + "".join(f".{c}" for c in sorted(common) if _css_word(c))
    parent = first.parent
    options = [item]
    if parent is not None:
        pid = (parent.attributes.get("id") or "").strip()
        pclasses = [c for c in (parent.attributes.get("class") or "").split() if _css_word(c)]
        if pid and _css_word(pid):
            options.append(f"#{pid} > {item}")
        if pclasses:
            options.append(f"{parent.tag}.{'.'.join(pclasses)} > {item}")
    wanted = {m.mem_id for m in members}
    for css in options:
        try:
            picked = {n.mem_id for n in tree.css(css)}
        except Exception:  # a class name selectolax cannot compile
            continue
        if picked == wanted:
            return css
    return None


def _css_word(word: str) -> bool:
    return bool(re.fullmatch(r"-?[A-Za-z_][\w-]*", word))
