"""Text normalisation shared by parsing (display text, content hashes) and matching.

Two forms exist:

* **clean text** (`clean_text`): what a reader sees. HTML tags and comments removed (block
  elements become line breaks), entities decoded, Unicode NFC, soft hyphens and zero-width
  characters dropped, runs of spaces collapsed, at most one blank line between paragraphs.
* **match form** (`match_form`): what rules are matched against. The clean text with curly and
  straight quotes and apostrophes unified, hyphens and every dash character, line breaks and
  non-breaking spaces made plain spaces (so "coalition-of-the-willing" and "cease–fire" match
  the phrases "coalition of the willing" and "cease-fire"), then Unicode NFKC and case
  folding. `match_form` also returns a map from match-form offsets back to clean-text
  offsets (None when they are equal), so highlights land on the reader's text.
"""

from __future__ import annotations

import hashlib
import html
import re
import unicodedata
from bisect import bisect_left
from collections.abc import Iterator

_DROP_BLOCKS = re.compile(r"<(script|style|noscript|template)\b.*?</\1\s*>|<!--.*?-->",
                          re.IGNORECASE | re.DOTALL)
_BLOCK_TAG = re.compile(
    r"<\s*/?\s*(?:br|p|div|li|ul|ol|h[1-6]|blockquote|tr|table|section|article|figure|"
    r"figcaption|pre|hr)\b[^>]*>", re.IGNORECASE)
_TAG = re.compile(r"<[!?/]?[A-Za-z][^>]*>")
_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u2060\ufeff"), None)
_SPACES = re.compile(r"[^\S\n]+")
_NEWLINES = re.compile(r"\s*\n\s*(?:\n\s*)+")
_SPACE_RUN = re.compile(r"  +")  # two or more spaces (faster than " {2,}")

#: One-to-one character mappings applied before NFKC: quotes, apostrophes, dashes, spaces.
_MATCH_TABLE = str.maketrans({
    **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032\u02bc\u0060\u00b4", "'"),
    **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb", '"'),
    **dict.fromkeys("-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d", " "),
    **dict.fromkeys("\n\r\t\u00a0\u2007\u202f\u2009\u200a\u3000", " "),
})
# `str.translate` with a dict is slow on non-ASCII text (~0.1 µs a char); a character class
# finds the few characters to replace far faster. Same output as `translate(_MATCH_TABLE)`.
_MATCH_CHARS = {chr(code): str(value) for code, value in _MATCH_TABLE.items()}
_MATCH_RE = re.compile("[" + re.escape("".join(_MATCH_CHARS)) + "]")
_ASCII_MATCH_CHARS = [(c, v) for c, v in _MATCH_CHARS.items() if c.isascii()]


def _unify(value: str) -> str:
    """`value.translate(_MATCH_TABLE)`, fast."""
    if value.isascii():
        for char, replacement in _ASCII_MATCH_CHARS:
            if char in value:
                value = value.replace(char, replacement)
        return value
    for char in set(_MATCH_RE.findall(value)):
        value = value.replace(char, _MATCH_CHARS[char])
    return value


def clean_text(value: str) -> str:
    """Return the reader's text of an HTML or plain-text fragment (see module docstring)."""
    if "<" in value:
        value = _DROP_BLOCKS.sub(" ", value)
        value = _BLOCK_TAG.sub("\n", value)
        value = _TAG.sub("", value)
    if "&" in value:
        value = html.unescape(value)
    value = unicodedata.normalize("NFC", value.translate(_INVISIBLE))
    value = value.replace("\r\n", "\n").replace("\r", "\n").replace("\u00a0", " ")
    value = _SPACES.sub(" ", value)
    value = _NEWLINES.sub("\n\n", value)
    return "\n".join(line.strip() for line in value.strip().split("\n"))


class RunMap:
    """Match-form offset -> clean offset for one-to-one text whose space runs collapsed, kept as
    the runs (`offsets[i]` without building the list; `list(run_map)` builds it)."""

    __slots__ = ("_length", "_runs", "_shift", "_starts", "size")

    def __init__(self, value: str) -> None:
        self._starts: list[int] = []  # match-form index of each collapsed run's kept space
        self._shift: list[int] = []  # chars removed up to and including that run
        self._runs = [m.span() for m in _SPACE_RUN.finditer(value)]
        self._length = len(value)
        removed = 0
        for start, end in self._runs:
            self._starts.append(start - removed)
            removed += end - start - 1
            self._shift.append(removed)
        self.size = len(value) - removed

    def __getitem__(self, index: int) -> int:
        run = bisect_left(self._starts, index) - 1
        return index + (self._shift[run] if run >= 0 else 0)

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        offsets = list(range(self._length))
        for start, end in reversed(self._runs):
            del offsets[start + 1:end]  # a run keeps its first space
        return iter(offsets)


def match_form_lazy(clean: str) -> tuple[str, list[int] | RunMap | None]:
    """`match_form`, with the common offset map (collapsed spaces) as a `RunMap`."""
    translated = _unify(clean)
    if translated.isascii():
        folded = translated.lower()
    else:
        folded = unicodedata.normalize("NFKC", translated).casefold()
    if len(folded) == len(translated):  # one char for one char: only spaces may collapse
        if "  " not in folded:
            return folded, None
        return _SPACE_RUN.sub(" ", folded), RunMap(folded)
    return _expanded(translated)


def match_form(clean: str) -> tuple[str, list[int] | None]:
    """Return the match form of clean text and its offset map (None when offsets are equal)."""
    form, offsets = match_form_lazy(clean)
    return form, list(offsets) if isinstance(offsets, RunMap) else offsets


def _expanded(translated: str) -> tuple[str, list[int]]:
    # Rare: a character expanded (e.g. 'ß' -> 'ss', 'ﬁ' -> 'fi'). Equal lengths after collapsing
    # spaces do not prove equal offsets (an expansion can cancel a collapse), so map every char.
    out: list[str] = []
    offsets: list[int] = []
    prev_space = False
    for index, char in enumerate(translated):
        piece = unicodedata.normalize("NFKC", char).casefold()
        for folded_char in piece:
            is_space = folded_char == " "
            if is_space and prev_space:
                continue
            prev_space = is_space
            out.append(folded_char)
            offsets.append(index)
    return "".join(out), offsets


def normalize_phrase(phrase: str) -> str:
    """Return the match form of a rule phrase (stripped, single-spaced)."""
    return match_form(clean_text(phrase))[0].strip()


def content_hash(*parts: str) -> str:
    """Hash of the match form of `parts`, blind to markup, whitespace, case and quote style."""
    digest = hashlib.blake2b(digest_size=12)
    for part in parts:
        form = match_form_lazy(clean_text(part))[0]
        digest.update("".join(form.split()).encode())
        digest.update(b"\x1f")
    return digest.hexdigest()


# --- variants for rule options (new functions; `match_form` and `content_hash` are unchanged) ---

def unify_punctuation(clean: str) -> str:
    """Clean text with quotes, dashes, line breaks and odd spaces unified, one char for one char
    (so offsets are clean-text offsets): what `/regex/` terms run on."""
    return _unify(clean)


def cased_form(value: str) -> str:
    """The match form without case folding (quotes, dashes, spaces unified, NFKC), stripped:
    compared against a `case_sensitive` phrase at a hit."""
    form = unicodedata.normalize("NFKC", clean_text(value).translate(_MATCH_TABLE))
    return " ".join(form.split())


def _strip_char(char: str) -> str:
    decomposed = unicodedata.normalize("NFD", char)
    return unicodedata.normalize("NFC", "".join(c for c in decomposed
                                                if not unicodedata.combining(c)))


def strip_marks(form: str, offsets: list[int] | None) -> tuple[str, list[int] | None]:
    """A match form without combining marks ("é" -> "e", "ñ" -> "n"; "ł" and "ø" have none),
    with its offset map composed onto `offsets` (clean-text offsets)."""
    if form.isascii():
        return form, offsets
    out: list[str] = []
    mapped: list[int] = []
    for index, char in enumerate(form):
        piece = char if char.isascii() else _strip_char(char)
        origin = offsets[index] if offsets is not None else index
        for stripped in piece:
            out.append(stripped)
            mapped.append(origin)
    return "".join(out), mapped


def normalize_phrase_stripped(phrase: str) -> str:
    """`normalize_phrase` without combining marks (diacritics-insensitive rules)."""
    return strip_marks(normalize_phrase(phrase), None)[0]
