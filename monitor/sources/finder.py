"""The update finder: the updates of a live-blog page that has no structured data for them.

Two shapes are recognised, and the one carrying more text wins:

* **blocks**: repeated sibling elements of one tag (under one parent, or under sibling
  parents of one shape), each carrying a time (see `monitor.sources.blocks`).
* **ticker**: headings (`h2`-`h6`, or a paragraph led by a bold time) that start with a time
  (`11.04 Uhr: …`), each followed by loose sibling paragraphs up to the next such heading; a
  heading that is only a date (`Donnerstag, 18. 7.`) sets the day of the times after it.

A candidate must have at least `MIN_UPDATES` updates, little link text (teaser rails and
indexes of key events are mostly links), one time per block (a block holding many times is a
day or a page section, not an update), enough text, and no class or id naming comments,
related stories or the like. Ordinary articles have none of these, and give no entries.
Where a block only wraps another with the same text, the inner one is the update (its
wrappers' ids still count).
"""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urljoin

from selectolax.lexbor import LexborHTMLParser, LexborNode

from monitor.core.models import Entry
from monitor.core.urls import canonical_url
from monitor.sources.base import unique_entries
from monitor.sources.blocks import (
    ANCHOR_CSS,
    HEADINGS,
    MAX_LEVELS,
    block_entries,
    inside,
    marker_time,
    negative,
    ticker_entries,
    ticker_parts,
    time_texts,
)
from monitor.sources.timetext import PageClock

MIN_UPDATES = 3
#: Elements that never hold update text (removed before reading blocks).
JUNK = ("script, style, noscript, template, svg, button, iframe, form, select, textarea, "
        "input, object, embed, canvas, video, audio, dialog")
_MARKER_CSS = "h2, h3, h4, h5, h6, p > strong:first-child, p > b:first-child"
_MAX_ANCHORS = 5000
_MAX_CANDIDATES = 16
#: Class words that number the item (`post-12345`, `entry_7`), not its kind.
_NUMBERED = re.compile(r"\d{3,}|[-_]\d+$")


@dataclass
class FoundUpdates:
    """What the finder read: the updates, their shape and, by entry id, the text of the list
    items in each update's body."""

    shape: Literal["blocks", "ticker"]
    entries: list[Entry]
    lists: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: With `explain`: `kind: html` selectors that read the same blocks ({} for a ticker).
    selectors: dict[str, str] = field(default_factory=dict)


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
                 max_entries: int, explain: bool = False) -> FoundUpdates | str:
    """The page's updates, or a sentence saying why none were found (with `explain`, also
    selectors that read them). Removes scripts and other non-text elements from `tree`, and
    takes the blocks apart: call it after every reader that needs them."""
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
    selectors = pin_selectors(body, chosen.members) if explain and chosen.shape == "blocks" \
        else {}
    if chosen.shape == "blocks":
        read = block_entries(chosen.members, chosen.wrappers, base, page, clock)
    else:
        read = ticker_entries(chosen.members, base, page, clock)
    entries = unique_entries((entry for entry, _ in read), max(max_entries, MIN_UPDATES))
    if len(entries) < MIN_UPDATES:
        return f"only {len(entries)} readable updates in {_describe(chosen)}"
    del entries[max_entries:]  # the cap applies after the count: it never declines a page
    return FoundUpdates(chosen.shape, entries, {entry.id: items for entry, items in read if items},
                        selectors)


def pin_selectors(body: LexborNode, members: list[LexborNode]) -> dict[str, str]:
    """`kind: html` selectors matching `members` (and no other element), with the title,
    time and id inside them where every member has one."""
    item = _signature(members[0])
    if any(_signature(m) != item for m in members):
        item = members[0].tag or ""
    parent = members[0].parent
    if len(body.css(item)) != len(members) and parent is not None:
        item = f"{_signature(parent)} > {item}"
    selectors = {"item": item}
    first = members[0]
    title = next((h for h in first.css(", ".join(HEADINGS)) if h.text(deep=True).strip()), None)
    if title is not None and all(m.css_first(title.tag or "") for m in members):
        selectors["title"] = title.tag or ""
    stamp = first.css_first("time")
    if stamp is not None and all(m.css_first("time") for m in members):
        selectors["time"] = "time@datetime" if stamp.attributes.get("datetime") else "time"
    if all(m.attributes.get("id") for m in members):
        selectors["id"] = "@id"
    return selectors


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
    anchors = list(body.css(ANCHOR_CSS)[:_MAX_ANCHORS])
    seen = {node.mem_id for node in anchors}
    for element in time_texts(body):
        if len(anchors) >= _MAX_ANCHORS:
            break
        if element.mem_id not in seen:
            seen.add(element.mem_id)
            anchors.append(element)
    return anchors


def _block_candidates(body: LexborNode) -> list[_Candidate]:
    groups: dict[tuple[int, str, str], dict[int, LexborNode]] = defaultdict(dict)
    counts: dict[tuple[int, str, str], dict[int, int]] = defaultdict(lambda: defaultdict(int))
    body_id = body.mem_id
    for anchor in _time_anchors(body):
        node: LexborNode | None = anchor
        for _ in range(MAX_LEVELS):
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
        if marker is None or marker_time(marker) is None:
            continue
        parent = marker.parent
        grand = parent.parent if parent is not None else None
        groups[(grand.mem_id if grand is not None else 0, _signature(parent))].append(marker)
    return [_Candidate("ticker", markers, {m.mem_id: 1 for m in markers})
            for markers in groups.values() if len(markers) >= MIN_UPDATES]


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
    elif negative(candidate.members[0]):
        candidate.reason = "the page names them as something else (comments, related stories…)"
    candidate.score = total * (0.9 if candidate.shape == "ticker" else 1.0)


def _text_size(node: LexborNode) -> int:
    return len(node.text(deep=True, separator=" ", strip=True))


def _ticker_size(marker: LexborNode) -> int:
    return sum(_text_size(node) for node in ticker_parts(marker))


def _innermost(good: list[_Candidate]) -> _Candidate:
    """The best candidate, or a candidate inside it with (nearly) the same text: the update
    itself rather than a wrapper around it."""
    best = good[0]
    for other in good[1:]:
        if other.score < 0.95 * best.score or len(other.members) != len(best.members):
            continue
        pairs = list(zip(other.members, best.members, strict=True))
        if all(inside(inner, outer) for inner, outer in pairs):
            other.wrappers = {inner.mem_id: [outer, *best.wrappers.get(outer.mem_id, [])]
                              for inner, outer in pairs}
            best = other
    for other in good:  # wrappers of the chosen blocks that scored first (ties)
        if other is best or len(other.members) != len(best.members):
            continue
        pairs = list(zip(best.members, other.members, strict=True))
        if all(inside(inner, outer) for inner, outer in pairs):
            for inner, outer in pairs:
                best.wrappers.setdefault(inner.mem_id, []).append(outer)
    return best
