"""Join a page's structured updates (JSON-LD, microdata, RDFa) with the same updates found in
its markup, for the full text and stable ids that structured data often lacks.

Structured data decides which updates there are, their titles, times and authors; the markup
only completes them. An update is paired with the markup block

* whose element id is the fragment of the update's `@id`/`url` (`…#751105` and
  `<div id="751105">`),
* else with the same title (blind to case, spacing and quote style; unique on both sides),
* else whose text starts with the update's first 40 characters (unique).

From its partner an update takes the markup's text when its own is a truncated prefix of it
(a CMS that cuts every `articleBody` at ~100 characters, mid-word, or with an ellipsis) or is
the markup's text without its list items; otherwise its own text stays (the markup's may carry
bylines, labels or embeds). It takes the markup's id when its own is a content hash (`h:`), so
that an edit stays the same entry, and the id is the one the update finder gives the page
without structured data. Unpaired updates stay as they are, and markup-only blocks are not
added (the structured data lists the updates).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

from monitor.core.matchform import unify_punctuation
from monitor.core.models import Entry

#: Compact characters that identify an update by the start of its text.
_PREFIX = 40
_ELLIPSES = ("…", "...", "[…]", "[...]", "(…)", "(...)")


def join_markup(structured: list[Entry], markup: list[Entry],
                lists: dict[str, tuple[str, ...]]) -> tuple[list[Entry], int]:
    """`structured` completed from `markup` (`lists`: markup entry id -> its list items), and
    how many updates changed."""
    if not structured or not markup:
        return structured, 0
    by_fragment = _unique(markup, lambda e: _fragment(e.id))
    by_title = _unique(markup, lambda e: _compact(e.title))
    by_start = _unique(markup, lambda e: _start(e.text))
    titles = _counts(_compact(e.title) for e in structured)
    joined: list[Entry] = []
    changed = 0
    for entry in structured:
        title = _compact(entry.title)
        partner = (by_fragment.get(_fragment(entry.id))
                   or (by_title.get(title) if titles.get(title) == 1 else None)
                   or by_start.get(_start(entry.text)))
        merged = entry if partner is None else _merge(entry, partner, lists.get(partner.id, ()))
        changed += merged is not entry
        joined.append(merged)
    return joined, changed


def _merge(entry: Entry, partner: Entry, items: tuple[str, ...]) -> Entry:
    text = partner.text if _fuller(entry.text, partner.text, items) else entry.text
    hashed = entry.id.startswith("h:") and not partner.id.startswith("h:")
    if text is entry.text and not hashed:
        return entry
    return replace(entry, id=partner.id if hashed else entry.id,
                   url=partner.url if hashed and partner.url else entry.url, text=text,
                   author=entry.author or partner.author,
                   published=entry.published or partner.published)


def _fuller(own: str, markup: str, items: tuple[str, ...]) -> bool:
    """Whether the markup's text is `own` in full: `own` cut short, or without the lists."""
    mine, theirs = _compact(_without_ellipsis(own)), _compact(markup)
    if not mine or len(mine) >= len(theirs):
        return False
    if theirs.startswith(mine):
        return True
    rest = theirs
    for item in items:
        rest = rest.replace(_compact(item), "", 1)
    return bool(items) and rest == mine


def _without_ellipsis(text: str) -> str:
    text = text.rstrip()
    for mark in _ELLIPSES:
        if text.endswith(mark):
            return text[:-len(mark)]
    return text


def _compact(text: str) -> str:
    """Clean text without whitespace, case or quote style (cheap: run on every update)."""
    return "".join(unify_punctuation(text).casefold().split()) if text else ""


def _start(text: str) -> str:
    compact = _compact(text[:4 * _PREFIX])
    return compact[:_PREFIX] if len(compact) >= _PREFIX else ""


def _fragment(ident: str) -> str:
    return "" if ident.startswith("h:") else ident.partition("#")[2]


def _counts(keys: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for key in keys:
        counts[key] = counts.get(key, 0) + 1
    return counts


def _unique(entries: list[Entry], key: Callable[[Entry], str]) -> dict[str, Entry]:
    """Entries by a non-empty key that only one of them has."""
    found: dict[str, Entry] = {}
    taken: set[str] = set()
    for entry in entries:
        value = key(entry)
        if not value or value in taken:
            continue
        if value in found:
            del found[value]
            taken.add(value)
        else:
            found[value] = entry
    return found
