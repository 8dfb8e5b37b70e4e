"""The match form of clean text, as str: what rules are matched against.

The clean text with curly and straight quotes and apostrophes unified, hyphens and every dash
character, line breaks and non-breaking spaces made plain spaces (so "coalition-of-the-willing"
and "cease–fire" match the phrases "coalition of the willing" and "cease-fire"), then Unicode
NFKC and case folding. `match_form` also returns a map from match-form offsets back to
clean-text offsets (None when they are equal), so highlights land on the reader's text. The
variants at the end serve rule options (regex terms, case-sensitive and diacritics-insensitive
phrases). `monitor.core.quickform` builds the same form as bytes, faster.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left
from collections.abc import Iterator

from monitor.core.cleantext import clean_text

_SPACE_RUN = re.compile(r"  +")  # two or more spaces (faster than " {2,}")

#: One-to-one character mappings applied before NFKC: quotes, apostrophes, dashes, spaces.
MATCH_TABLE = str.maketrans({
    **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032\u02bc\u0060\u00b4", "'"),
    **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb", '"'),
    **dict.fromkeys("-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d", " "),
    **dict.fromkeys("\n\r\t\u00a0\u2007\u202f\u2009\u200a\u3000", " "),
})
# `str.translate` with a dict is slow on non-ASCII text (~0.1 µs a char); a character class
# finds the few characters to replace far faster. Same output as `translate(MATCH_TABLE)`.
_MATCH_CHARS = {chr(code): str(value) for code, value in MATCH_TABLE.items()}
_MATCH_RE = re.compile("[" + re.escape("".join(_MATCH_CHARS)) + "]")
_ASCII_MATCH_CHARS = [(c, v) for c, v in _MATCH_CHARS.items() if c.isascii()]


def _unify(value: str) -> str:
    """`value.translate(MATCH_TABLE)`, fast."""
    if value.isascii():
        for char, replacement in _ASCII_MATCH_CHARS:
            if char in value:
                value = value.replace(char, replacement)
        return value
    for char in set(_MATCH_RE.findall(value)):
        value = value.replace(char, _MATCH_CHARS[char])
    return value



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


# --- variants for rule options (`match_form` itself is unchanged by them) ---

def unify_punctuation(clean: str) -> str:
    """Clean text with quotes, dashes, line breaks and odd spaces unified, one char for one char
    (so offsets are clean-text offsets): what `/regex/` terms run on."""
    return _unify(clean)


def cased_form(value: str) -> str:
    """The match form without case folding (quotes, dashes, spaces unified, NFKC), stripped:
    compared against a `case_sensitive` phrase at a hit."""
    form = unicodedata.normalize("NFKC", clean_text(value).translate(MATCH_TABLE))
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
