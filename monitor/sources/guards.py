r"""Cheap checks on a raw document *before* a parser sees it, for input that would hurt one.

* XML that declares entities before its root element is refused, wherever a parser would
  read the declaration: after comments and processing instructions of any length or content
  (a comment holding `<rss>` included), in a DOCTYPE feedparser's rewrite of the prolog brings
  to light, and in every encoding a parser may decode the document with (UTF-7, UTF-16, ...:
  `monitor.sources.prolog`). feedparser drops declarations it finds before the first `<\w`,
  but re-inserts the "safe" ones (`<!ENTITY a "text">`), and expat expands what it reads;
  expat >= 2.4 limits amplification. No feed needs entities, so refusing them makes billion
  laughs, quadratic blowup and XXE a specific error rather than parser-dependent.
* XML with more than `max_entries` items is cut after that many, before feedparser builds
  them all (100,000 items take feedparser ~14 s and ~150 MB; 1,000 take ~0.15 s). Only items
  after the root element's start count, and the cut document is checked again.
* HTML nested deeper than `max_depth` is refused: lexbor's tree builder is quadratic in the
  nesting depth of HTML elements (100,000 nested `<div>`s take ~28 s, 5,000 ~0.04 s; nested
  SVG elements are cheap). The depth is estimated from the tags as the parser nests them:
  `/>` is ignored on HTML elements (`<div/>` opens a div, like `<div>`; void elements such as
  `<br/>` never open) and closes any element in foreign content (inside `<svg>` or `<math>`,
  until an HTML element such as `<div>` ends it; the integration points `<foreignObject>`,
  `<desc>`, `<title>`, `<mi>`, … hold HTML again); an end tag closes an element only if one of
  its name is open (the parser ignores a stray `</x>`); elements the parser closes implicitly
  (`<p>`, `<li>`, `<td>`, …) are not counted. It stays a tag-level estimate: text the
  tokenizer does not read as tags (comments, `<script>`, quoted attribute values) and the tree
  builder's scopes (`<table>`, `<select>`, `<template>`) are not modelled.

The scans are linear in the document: page content is untrusted.
"""

from __future__ import annotations

import re

from monitor.core.errors import ParseError
from monitor.sources.prolog import UnreadableEncoding, declares_entities, prolog_end

_ITEM_END = re.compile(rb"</(?:[A-Za-z_][\w.-]*:)?(?:item|entry)\s*>")
#: A tag: its `/` if closing, its name, the rest up to `>` (a lazy `[^>]*?(/?)>` would try
#: the `/>` end at every character of the long attributes of real pages: 5x slower).
_TAG = re.compile(rb"<(/?)([A-Za-z][A-Za-z0-9-]*)([^>]*)>")
#: Elements without content: `<br>` and `<br/>` never open.
_VOID = frozenset(b"area base br col embed hr img input keygen link meta param source track "
                  b"wbr".split())
#: Void elements, and elements the HTML parser closes implicitly (never deep).
_FLAT = _VOID | frozenset(
    b"p li dt dd option optgroup tr td th thead tbody tfoot colgroup rb rt rp".split())
#: Roots of foreign content, where `/>` closes any element.
_FOREIGN = frozenset((b"svg", b"math"))
#: HTML elements that end foreign content (the HTML standard's list; `font` even without
#: attributes, to be safe).
_BREAKOUT = frozenset(
    b"b big blockquote body br center code dd div dl dt em embed font h1 h2 h3 h4 h5 h6 head hr "
    b"i img li listing menu meta nobr ol p pre ruby s small span strong strike sub sup table tt "
    b"u ul var".split())
#: Foreign elements whose content is HTML (SVG and MathML integration points; taken as such
#: in either namespace, to be safe).
_INTEGRATION = frozenset(b"foreignobject desc title mi mo mn ms mtext annotation-xml".split())


def check_xml(body: bytes, content_type: str | None = None) -> None:
    """ParseError for a document that declares entities before its root element, read as
    any parser may read it (`content_type`: the HTTP one, for its charset)."""
    try:
        declared = declares_entities(body, content_type)
    except UnreadableEncoding as e:
        raise ParseError(f"XML in the {e.encoding} encoding is not parsed (its decoder is "
                         "quadratic)") from e
    if declared:
        raise ParseError("XML entity declarations are not allowed (entity expansion or "
                         "external entity attack?)")


def trim_xml_entries(body: bytes, max_entries: int) -> bytes:
    """`body` without the items after the first `max_entries` (the closing tags kept). Item
    ends are counted from the root element on, and a cut document is checked again
    (`check_xml`): a cut must not join text into a new prolog."""
    ends = list(_ITEM_END.finditer(body, prolog_end(body)))
    if len(ends) <= max_entries:
        return body
    trimmed = body[:ends[max_entries - 1].end()] + body[ends[-1].end():]
    check_xml(trimmed)
    return trimmed


def html_depth(text: str | bytes, stop_at: int) -> int:
    """An estimate of the element nesting depth of an HTML page (stops at `stop_at`): see the
    module docstring for how tags count."""
    data = text.encode("utf-8", "replace") if isinstance(text, str) else text
    depth = deepest = 0
    opened: dict[bytes, int] = {}  # counted open elements by name
    foreign: list[bytes] = []  # open elements of the SVG/MathML content the tags are in
    island: list[bytes] | None = None  # open elements in an HTML integration point of it
    # A tag ends at a `>`: none starts after the last one, and `finditer` would scan from each
    # `<` there to the end of the page (quadratic on `<a<a<a…`).
    for match in _TAG.finditer(data, 0, data.rfind(b">") + 1):
        closing, name, rest = match.groups()
        self_closing = rest.endswith(b"/")
        name = name.lower()
        if closing:
            if foreign:
                foreign, island = _close_foreign(foreign, island, name)
            count = opened.get(name)
            if count:  # else the parser ignores it
                opened[name] = count - 1
                depth -= 1
            continue
        if not foreign:  # HTML: `/>` is ignored but on void elements (and <svg/>, <math/>)
            if name in _FLAT or (self_closing and name in _FOREIGN):
                continue
            if name in _FOREIGN:
                foreign = [name]
        elif island is None and name not in _BREAKOUT:  # SVG/MathML: `/>` closes
            if self_closing:
                continue
            foreign.append(name)
            if name in _INTEGRATION:
                island = []
        elif island is None:  # an HTML element ends foreign content
            foreign = []
            if name in _FLAT:
                continue
        else:  # HTML in an integration point
            if name not in _VOID:
                island.append(name)
            if name in _FLAT:
                continue
        opened[name] = opened.get(name, 0) + 1
        depth += 1
        if depth > deepest:
            deepest = depth
            if deepest >= stop_at:
                break
    return deepest


def _close_foreign(foreign: list[bytes], island: list[bytes] | None,
                   name: bytes) -> tuple[list[bytes], list[bytes] | None]:
    """(foreign, island) after the end tag `name` in foreign content. Anything irregular
    counts as the end of foreign content (then `/>` counts as open: an over-estimate)."""
    if island is None:
        for index in range(len(foreign) - 1, -1, -1):  # from the top: amortised linear
            if foreign[index] == name:
                del foreign[index:]
                return foreign, None
        return [], None  # the parser reads it as HTML, which may close the foreign root
    if island:
        if island[-1] == name:
            island.pop()
            return foreign, island
        return [], None
    if foreign[-1] == name:  # the integration point closes: back in foreign content
        foreign.pop()
        return foreign, None
    return [], None


def check_html(text: str | bytes, max_depth: int) -> None:
    """ParseError for a page nested deeper than `max_depth` elements."""
    if html_depth(text, max_depth + 1) > max_depth:
        raise ParseError(f"HTML nested more than {max_depth} elements deep; not parsed")
