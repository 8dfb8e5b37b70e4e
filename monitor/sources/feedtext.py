"""The text policy both feed paths share, and the Media RSS captions of each item it needs.

An entry's text is the fullest of its content blocks and its summary (`<description>`, Atom
`<summary>`): the longest, ties broken by the text itself so that the order a parser lists
them in does not matter (`fullest`). Its `media:description` (a photo or video caption, a
YouTube entry's only text) is the text only when it has neither. Neither parser keeps a
caption apart, so the paths find them here, in the document itself (`item_captions`):

* feedparser reads a caption as one more `<description>`: the summary when none came before,
  else a content block; once a content block was read, a direct caption replaces the summary
  (the description is lost) and one in `media:group` / `media:content` gives the summary its
  `type` (`ItemCaptions` follows this reading);
* fastfeedparser drops the captions inside `media:group` / `media:content`, and takes one that
  is a direct child of the item as the item's description (RSS: when it comes before the
  `<description>`; Atom: always).

The scan is linear and lenient (feedparser reads malformed documents too): a regex finds the
tags it needs, CDATA sections and comments are skipped whole, and an unclosed caption ends it.
Captions are found only under a prefix bound to the Media RSS namespace (`xmlns:media=`).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass

_PREFIX = re.compile(r"""xmlns:([A-Za-z_][\w.-]*)\s*=\s*["']http://search\.yahoo\.com/mrss/?["']""")
#: The tags the scan follows: items, summaries, content blocks and Media RSS elements under the
#: document's prefixes (`content` also matches `content:encoded`), and the starts of CDATA
#: sections and comments.
_TAG = (r"<(?:!\[CDATA\[|!--|(/?)(item|entry|description|summary|content"
        r"|({prefixes}):(description|group|content))(?=[\s/>:]))")
#: Inside a caption: a CDATA section, or a closing tag (its own, or a child element's).
_INNER = re.compile(r"<!\[CDATA\[|</([A-Za-z_][\w.:-]*)\s*>")
_TYPE = re.compile(r"""\btype\s*=\s*["']([^"']*)["']""")


def fullest(texts: Iterable[str]) -> str:
    """The longest of `texts` (the greatest of those as long); "" when there is none."""
    return max(texts, key=lambda text: (len(text), text), default="")


@dataclass(frozen=True, slots=True)
class Caption:
    """One `media:description`: its character data (references and CDATA resolved), its
    `type` attribute (lowercased, "" when absent), and whether it holds child elements."""

    value: str
    kind: str
    markup: bool


class ItemCaptions:
    """The captions of one item or entry, where they stand among its other text, and how
    feedparser reads the item's summary because of them."""

    __slots__ = ("_content", "_depth", "_kept", "_kind", "_summary", "before_summary",
                 "captions", "direct", "has_content", "has_summary")

    def __init__(self) -> None:
        self.captions: list[Caption] = []
        #: A caption is a direct child of the item (not inside `media:group` /
        #: `media:content`), and one of those comes before its first summary element.
        self.direct = self.before_summary = False
        #: The item has a summary element; a content block.
        self.has_summary = self.has_content = False
        # feedparser's reading so far (`_start_description`, `_end_content`, `pop`): what the
        # summary's value is ("summary", "caption", "content" or None) and the depth it was
        # written at (None for a copy of the content: any description replaces it), the
        # `type` its detail took from a deeper caption, whether a content block was read
        # (`hasContent`), whether the summary element went into a content block.
        self._summary: str | None = None
        self._depth: int | None = None
        self._kind: str | None = None
        self._content = self._kept = False

    @property
    def has_text(self) -> bool:
        """The item has a summary element or a content block."""
        return self.has_summary or self.has_content

    @property
    def summary_lost(self) -> bool:
        """feedparser's entry lacks the item's summary element: a caption was read over it
        once a content block was read."""
        return self.has_summary and not self._kept and self._summary != "summary"

    @property
    def summary_as_content(self) -> bool:
        """feedparser read the summary element as a content block (a caption came first):
        untyped, so plain text in RSS unless it looks like HTML."""
        return self._kept

    @property
    def summary_retyped(self) -> str | None:
        """The caption `type` feedparser gave the summary element's detail, keeping its
        value (a caption read after a content block, deeper than the summary); else None."""
        return self._kind if self._summary == "summary" else None

    @property
    def caption_retyped(self) -> bool:
        """feedparser's summary is a caption read by another caption's `type`."""
        return self._kind is not None and self._summary == "caption"

    def read_description(self, what: str, depth: int, kind: str) -> None:
        """A summary element (`what` "summary") or caption at `depth` below the item."""
        if self._summary is not None and not self._content:
            self._content = True  # read as a content block
            self._kept = self._kept or what == "summary"
        elif self._depth is None or depth <= self._depth:
            self._summary, self._depth, self._kind = what, depth, None
        else:
            self._kind = kind

    def read_content(self) -> None:
        """A content block (its copy is the summary if there is none yet)."""
        self._content = True
        self._summary = self._summary or "content"


def item_captions(document: str) -> list[ItemCaptions] | None:
    """Per item or entry in document order, its captions; None when the document has no
    caption (none under a prefix bound to the Media RSS namespace)."""
    if "search.yahoo.com/mrss" not in document:
        return None
    prefixes = {m.group(1) for m in _PREFIX.finditer(document)}
    prefixes = {prefix for prefix in prefixes if f"<{prefix}:description" in document}
    if not prefixes:
        return None
    tags = re.compile(_TAG.format(prefixes="|".join(map(re.escape, sorted(prefixes)))))
    items: list[ItemCaptions] = []
    item: ItemCaptions | None = None
    media_depth = 0  # open media:group / media:content elements around the position
    pos = 0
    while (tag := tags.search(document, pos)) is not None:
        pos = tag.end()
        token = tag.group(0)
        if token in ("<![CDATA[", "<!--"):
            end = document.find("]]>" if token == "<![CDATA[" else "-->", pos)
            if end < 0:
                break
            pos = end + 3
            continue
        closing, name, prefix, local = tag.group(1, 2, 3, 4)
        if name in ("item", "entry"):
            if closing and item is not None:
                items.append(item)
                item = None
            elif not closing:
                item, media_depth = ItemCaptions(), 0
            continue
        if item is None or (closing and local != "group" and local != "content"):
            continue
        if prefix is None:
            if name == "content":
                item.has_content = True
                item.read_content()
            else:
                item.has_summary = True
                item.read_description("summary", 0, "")
            continue
        if local != "description":
            end = document.find(">", pos)
            if end < 0:
                break
            if closing:
                media_depth = max(media_depth - 1, 0)
            elif document[end - 1] != "/":
                media_depth += 1
            pos = end + 1
            continue
        caption, pos = _read_caption(document, pos, name)
        if caption is None:
            break
        item.captions.append(caption)
        item.read_description("caption", media_depth, caption.kind)
        if not media_depth:
            item.direct = True
            item.before_summary = item.before_summary or not item.has_summary
    return items


def _read_caption(document: str, pos: int, name: str) -> tuple[Caption | None, int]:
    """The caption whose start tag `name` ends at `pos`, and the position after it; None
    when it is not closed."""
    end = document.find(">", pos)
    if end < 0:
        return None, len(document)
    attrs = document[pos:end]
    found = _TYPE.search(attrs)
    kind = found.group(1).strip().lower() if found else ""
    if attrs.endswith("/"):
        return Caption("", kind, False), end + 1
    parts: list[str] = []
    markup = False
    pos = end + 1
    while (stop := _INNER.search(document, pos)) is not None:
        before = document[pos:stop.start()]
        markup = markup or "<" in before
        parts.append(html.unescape(before))
        if stop.group(1) is None:  # a CDATA section: its text as written
            close = document.find("]]>", stop.end())
            if close < 0:
                break
            parts.append(document[stop.end():close])
            pos = close + 3
        elif stop.group(1) == name:
            return Caption("".join(parts), kind, markup), stop.end()
        else:  # a child element's closing tag
            markup = True
            pos = stop.end()
    return None, len(document)
