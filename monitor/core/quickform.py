"""The match form in a few C-level passes, as bytes (what the matcher scans, and what
`content_hash` hashes): `quick_match_form` equals `monitor.core.matchform.match_form`, offsets
included (tested in tests/core/test_textnorm.py), for text made of ASCII and `SIMPLE_FORMS` chars.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left, bisect_right

from monitor.core.matchform import MATCH_TABLE

_SPACE_RUN_BYTES = re.compile(rb"  +")

# `match_form` folds the whole text (NFKC, casefold) and, when that changes its length, folds it
# again char by char to map offsets. For text made of ASCII and the "simple" characters below
# both give the concatenation of each character's own form (their NFKC does not reach across a
# neighbour, checked in tests/core/test_textnorm.py), so the form can be built as bytes (cp1252, one
# byte per char, or UTF-8) with `bytes.translate` and a `bytes.replace` per char whose form is
# longer, and its offsets mapped back only when a rule needs them.

def _simple_chars() -> dict[str, str]:
    candidates = [*range(0x80, 0x250), *range(0x2000, 0x2070), *range(0x20a0, 0x20c1),
                  *range(0x2100, 0x2150), 0x02bc, 0x3000, 0xfe58, 0xfe63, 0xff0d]
    forms: dict[str, str] = {}
    for code in candidates:
        char = chr(code)
        if unicodedata.category(char) in ("Mn", "Mc", "Me", "Cs") or unicodedata.combining(char):
            continue
        forms[char] = unicodedata.normalize("NFKC", char.translate(MATCH_TABLE)).casefold()

    def fixed(char: str) -> bool:  # unchanged by a second pass, so replacements commute
        if char.isascii():
            return char.translate(MATCH_TABLE).lower() == char
        return forms.get(char) == char

    return {c: f for c, f in forms.items() if f and all(fixed(p) for p in f)}


#: Simple non-ASCII character -> its match form (one or more characters).
SIMPLE_FORMS = _simple_chars()
#: Character -> (its UTF-8, its form's UTF-8 or None when unchanged, whether it expands).
_SIMPLE_BYTES = {c: (c.encode(), f.encode() if f != c else None, len(f) > 1)
                 for c, f in SIMPLE_FORMS.items()}
_ASCII_BYTES = bytes(range(128))
#: ASCII byte -> its match form byte (case folded; hyphen, tab and line breaks made spaces).
_ASCII_FOLD = bytes.maketrans(
    _ASCII_BYTES, "".join(map(chr, range(128))).translate(MATCH_TABLE).lower().encode())


class QuickForm:
    """The match form of a clean text as bytes (`form`, in `encoding`: cp1252 or UTF-8), from
    `quick_match_form`; `span` maps a byte span of `form` back to clean-text offsets, the offset
    map being built on first use."""

    __slots__ = ("_expanded", "_expansions", "_runs", "clean", "encoding", "form", "narrow",
                 "pre")

    def __init__(self, clean: str, pre: bytes, expanded: list[str] | None,
                 encoding: str) -> None:
        """`pre`: the form before space runs collapse (one char per clean char, or more for
        the `expanded` chars)."""
        self.clean, self.encoding, self.pre = clean, encoding, pre
        # Paragraph breaks and spaced dashes leave runs (`pre` itself when there are none).
        form = self.form = _SPACE_RUN_BYTES.sub(b" ", pre) if b"  " in pre else pre
        #: One byte per character (byte offsets are character offsets).
        self.narrow = encoding == "cp1252" or form.isascii()
        self._expanded = expanded  # the chars whose form is longer than one char
        self._runs: tuple[list[int], list[int]] | None = None
        self._expansions: tuple[list[int], list[int], list[int], list[int]] | None = None

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Clean-text offsets of the form's bytes `start:end` (a span of whole characters)."""
        last = end - 1
        if self.form is not self.pre:  # space runs collapsed: as `RunMap`, in bytes
            starts, shifts = self._runs or self._run_map()
            run = bisect_left(starts, start) - 1
            start += shifts[run] if run >= 0 else 0
            run = bisect_left(starts, last) - 1
            last += shifts[run] if run >= 0 else 0
        if not self.narrow:  # byte offsets in `pre` -> char offsets
            pre = self.pre
            last = len(pre[:last + 1].decode()) - 1
            start = len(pre[:start].decode())
        if self._expanded is not None:
            at, widths, origins, extras = self._expansions or self._expansion_map()
            item = bisect_right(at, start) - 1
            if item >= 0:
                start = origins[item] if start < at[item] + widths[item] else start - extras[item]
            item = bisect_right(at, last) - 1
            if item >= 0:
                last = origins[item] if last < at[item] + widths[item] else last - extras[item]
        return start, last + 1

    def _run_map(self) -> tuple[list[int], list[int]]:
        # starts: form index of each collapsed run's kept space; shifts: bytes removed up to
        # and including that run.
        starts: list[int] = []
        shifts: list[int] = []
        removed = 0
        for match in _SPACE_RUN_BYTES.finditer(self.pre):
            run_start, run_end = match.span()
            starts.append(run_start - removed)
            removed += run_end - run_start - 1
            shifts.append(removed)
        self._runs = starts, shifts
        return starts, shifts

    def _expansion_map(self) -> tuple[list[int], list[int], list[int], list[int]]:
        # For each expanded char, by position: where its form starts in the pre-collapse form,
        # the form's width, the char's clean index, and the chars added up to and including it.
        assert self._expanded is not None
        found: list[tuple[int, int]] = []
        for char in self._expanded:
            width, find = len(SIMPLE_FORMS[char]), self.clean.find
            pos = find(char)
            while pos >= 0:
                found.append((pos, width))
                pos = find(char, pos + 1)
        found.sort()
        at: list[int] = []
        extras: list[int] = []
        extra = 0
        for pos, width in found:
            at.append(pos + extra)
            extra += width - 1
            extras.append(extra)
        self._expansions = at, [w for _, w in found], [p for p, _ in found], extras
        return self._expansions


def _cp1252_tables() -> tuple[bytes, dict[bytes, tuple[bytes, str]]]:
    fold = bytearray(range(256))
    expand: dict[bytes, tuple[bytes, str]] = {}
    for byte in range(256):
        try:
            char = bytes((byte,)).decode("cp1252")
        except UnicodeDecodeError:  # never produced by encoding to cp1252
            continue
        form = char.translate(MATCH_TABLE).lower() if char.isascii() \
            else SIMPLE_FORMS.get(char, "\x81")
        try:
            encoded = form.encode("cp1252")
        except UnicodeEncodeError:
            encoded = b"\x81"  # not simple, or its form is not in cp1252: UTF-8 path
        if len(encoded) == 1:
            fold[byte] = encoded[0]
        else:
            fold[byte] = 0x81
            expand[bytes((byte,))] = (encoded, char)
    return bytes(fold), expand


#: cp1252 byte -> its match form byte, or 0x81 (a byte cp1252 never produces) for a character
#: whose form is longer (`_CP1252_EXPAND`: byte -> (form, char)) or not simple.
_CP1252_FOLD, _CP1252_EXPAND = _cp1252_tables()
#: The same, keeping "…" as one char (`keep_ellipsis`).
_CP1252_FOLD_KEEP = _CP1252_FOLD[:0x85] + b"\x85" + _CP1252_FOLD[0x86:]
_CP1252_EXPAND_KEEP = {b: e for b, e in _CP1252_EXPAND.items() if b != b"\x85"}


def quick_match_form(clean: str, *, keep_ellipsis: bool = False) -> QuickForm | None:
    """`match_form(clean)` as bytes with lazily mapped offsets, for text made of ASCII and
    `SIMPLE_FORMS` characters (else None: use `match_form_lazy`). Text that fits in cp1252 (most
    English and Western European news) is folded one byte per character by `bytes.translate`;
    other simple text as UTF-8 with one `bytes.replace` per distinct non-ASCII character.

    With `keep_ellipsis`, "…" stays one char instead of becoming "...": a pattern without "."
    has the same hits in both forms ("…", like ".", is not a word char), with no offsets to shift.
    """
    try:
        data = clean.encode("cp1252")
    except UnicodeEncodeError:
        return _quick_utf8(clean, keep_ellipsis)
    fold = _CP1252_FOLD_KEEP if keep_ellipsis else _CP1252_FOLD
    pre = data.translate(fold)
    expanded: list[str] | None = None
    if b"\x81" in pre:
        for byte, (form, char) in (_CP1252_EXPAND_KEEP if keep_ellipsis
                                   else _CP1252_EXPAND).items():
            if byte in data:
                data = data.replace(byte, form)
                expanded = [char] if expanded is None else [*expanded, char]
        pre = data.translate(fold)
        if b"\x81" in pre:
            return _quick_utf8(clean, keep_ellipsis)
    return QuickForm(clean, pre, expanded, "cp1252")


def _quick_utf8(clean: str, keep_ellipsis: bool) -> QuickForm | None:
    try:
        data = clean.encode()
    except UnicodeEncodeError:  # lone surrogates
        return None
    expanded: list[str] | None = None
    if not data.isascii():
        for char in set(data.translate(None, _ASCII_BYTES).decode()):
            entry = _SIMPLE_BYTES.get(char)
            if entry is None:
                return None
            if entry[1] is not None and not (keep_ellipsis and char == "\u2026"):
                data = data.replace(entry[0], entry[1])
                if entry[2]:
                    expanded = [char] if expanded is None else [*expanded, char]
    pre = data.translate(_ASCII_FOLD)
    return QuickForm(clean, pre, expanded, "utf-8")
