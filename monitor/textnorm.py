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

`quick_match_form` builds the same match form as bytes in a few C-level passes, for the matcher
(tested equal to `match_form`, offsets included, in tests/test_textnorm.py).
"""

from __future__ import annotations

import hashlib
import html
import re
import unicodedata
from bisect import bisect_left, bisect_right
from collections.abc import Iterator

# Page content is untrusted: each pattern is applied so the work stays linear (`_drop_blocks`,
# `_sub_tags`), never restarting a scan that already failed to find its end.
_DROP_BLOCKS = re.compile(r"<(script|style|noscript|template)\b.*?</\1\s*>|<!--.*?-->",
                          re.IGNORECASE | re.DOTALL)
#: Where a `_DROP_BLOCKS` match can start (group 1: the element's name).
_BLOCK_START = re.compile(r"<(?:(script|style|noscript|template)\b|!--)", re.IGNORECASE)
# `\s*(?:/\s*)?`, not `\s*/?\s*`: two adjacent `\s*` backtrack quadratically on `<` + spaces.
_BLOCK_TAG = re.compile(
    r"<\s*(?:/\s*)?(?:br|p|div|li|ul|ol|h[1-6]|blockquote|tr|table|section|article|figure|"
    r"figcaption|pre|hr)\b[^>]*>", re.IGNORECASE)
_TAG = re.compile(r"<[!?/]?[A-Za-z][^>]*>")
_INVISIBLE_RE = re.compile("[\u00ad\u200b\u200c\u200d\u2060\ufeff]")
_SPACES = re.compile(r"[^\S\n]+")
#: Two or more line breaks with only spaces between (the spaces around go with `strip` per line).
_NEWLINE_RUN = re.compile(r"\n[ \n]*\n")
_SPACE_RUN = re.compile(r"  +")  # two or more spaces (faster than " {2,}")
_SPACE_RUN_BYTES = re.compile(rb"  +")

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
        value = _drop_blocks(value)
        value = _sub_tags(_BLOCK_TAG, "\n", value)
        value = _sub_tags(_TAG, "", value)
    if "&" in value:
        value = html.unescape(value)
    if not value.isascii():  # a character class finds them ~15x faster than str.translate
        value = _INVISIBLE_RE.sub("", value)
    value = unicodedata.normalize("NFC", value)
    value = value.replace("\r\n", "\n").replace("\r", "\n").replace("\u00a0", " ")
    # Every whitespace char but " " is unprintable: when "\n" is the only other one, just
    # collapse space runs (the Unicode class below costs ~25 ns a char).
    if not value.replace("\n", "").isprintable():
        value = _SPACES.sub(" ", value)
    elif "  " in value:
        value = _SPACE_RUN.sub(" ", value)
    if value.count("\n") > 1:
        value = _NEWLINE_RUN.sub("\n\n", value)
    return "\n".join(line.strip() for line in value.strip().split("\n"))


def _drop_blocks(value: str) -> str:
    """`_DROP_BLOCKS.sub(" ", value)` in linear time.

    A lazy `.*?` scan that finds no end tag runs to the end of the text, and `sub` would start
    it again at every later `<script` (or `<!--`): thousands of unclosed ones are quadratic.
    Once a block of one kind has no end, no later block of that kind has one, so it is tried
    once per kind (the name lowercased: the case-insensitive `\\1` compares lowercase chars).
    """
    parts: list[str] = []
    copied = at = 0
    unclosed: set[str] = set()
    while (start := _BLOCK_START.search(value, at)) is not None:
        kind = (start.group(1) or "!--").lower()
        if kind not in unclosed:
            block = _DROP_BLOCKS.match(value, start.start())
            if block is not None:
                parts += (value[copied:start.start()], " ")
                copied = at = block.end()
                continue
            unclosed.add(kind)
        at = start.start() + 1
    if not parts:
        return value
    parts.append(value[copied:])
    return "".join(parts)


def _sub_tags(pattern: re.Pattern[str], repl: str, value: str) -> str:
    """`pattern.sub(repl, value)` for a tag pattern ending `[^>]*>`, in linear time: `sub`
    would scan from every `<` after the last `>` to the end of the text (`<a<a<a…` is
    quadratic), so only the text up to the last `>` is searched, where each `[^>]*` stops at
    a `>` and matches; no match can end after it."""
    end = value.rfind(">") + 1
    if end == len(value):
        return pattern.sub(repl, value)
    return pattern.sub(repl, value[:end]) + value[end:] if end else value


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
    """Hash of the match form of `parts`, blind to markup, whitespace, case and quote style.

    (Stored as entry versions: its value must never change. The match form comes from
    `quick_match_form` where it applies, tested equal to `match_form`.)"""
    digest = hashlib.blake2b(digest_size=12)
    for part in parts:
        clean = clean_text(part)
        quick = quick_match_form(clean)
        form = quick.form.decode(quick.encoding) if quick is not None \
            else match_form_lazy(clean)[0]
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


# --- the match form in a few C-level passes (what the matcher scans) ---
#
# `match_form` folds the whole text (NFKC, casefold) and, when that changes its length, folds it
# again char by char to map offsets. For text made of ASCII and the "simple" characters below
# both give the concatenation of each character's own form (their NFKC does not reach across a
# neighbour, checked in tests/test_textnorm.py), so the form can be built as bytes (cp1252, one
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
        forms[char] = unicodedata.normalize("NFKC", char.translate(_MATCH_TABLE)).casefold()

    def fixed(char: str) -> bool:  # unchanged by a second pass, so replacements commute
        if char.isascii():
            return char.translate(_MATCH_TABLE).lower() == char
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
    _ASCII_BYTES, "".join(map(chr, range(128))).translate(_MATCH_TABLE).lower().encode())


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
        form = char.translate(_MATCH_TABLE).lower() if char.isascii() \
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
