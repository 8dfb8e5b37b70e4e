"""One Aho-Corasick automaton over every literal term of every rule, and the scan of an entry.

A *term* is a literal (normalised phrase + options) or a `/regex/`; equal terms of different
rules share one id. Each distinct normalised string is one automaton pattern (a *slot*); a slot
lists the terms that accept its hits. The scan runs the automaton over the match form of each
field (and, only when some rule ignores diacritics and the text is not ASCII, over the form
without combining marks), checks word boundaries, and records hits per term as
`(field rank, start, end)` in clean-text offsets. Regexes run lazily, only when a rule asks.

The quick path (most news text: ASCII and the simple characters of `quick_match_form`) builds
the match form as cp1252 or UTF-8 bytes in a few C-level passes, runs an automaton of the
patterns in that encoding over it, and maps offsets back only for hits that pass the word test;
`scan_slow` is the reference it is tested against (tests/match/test_match_fast.py).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

import daachorse
import regex
import structlog

from monitor.core.matchform import (
    RunMap,
    cased_form,
    match_form_lazy,
    normalize_phrase,
    normalize_phrase_stripped,
    strip_marks,
    unify_punctuation,
)
from monitor.core.quickform import QuickForm, quick_match_form
from monitor.core.rulesyntax import MatchField, Term

log = structlog.get_logger("livewatch.match")

#: Fields in scan order; a hit's field is its rank in this tuple.
FIELD_NAMES: tuple[MatchField, ...] = ("title", "text", "author")
RANK = {name: rank for rank, name in enumerate(FIELD_NAMES)}
#: A user regex gets this long per field; a timeout counts as no match and is logged.
REGEX_TIMEOUT = 0.05
#: At most this many hits of one regex per field (highlighting needs no more).
REGEX_MAX_HITS = 50

RawHit = tuple[int, int, int]  # field rank, clean start, clean end
_Accept = tuple[int, bool, str | None]  # term id, prefix, expected cased form (case-sensitive)
_NONWORD = re.compile(r"\S+")


@dataclass(frozen=True, slots=True)
class TermSpec:
    """A compiled term: a literal (automaton `slot`) or a `pattern`."""

    slot: int
    prefix: bool = False
    cased: str | None = None
    strip: bool = False
    pattern: regex.Pattern[str] | None = None


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"


def _cp1252_word(byte: int) -> int:
    try:
        return int(_is_word(bytes((byte,)).decode("cp1252")))
    except UnicodeDecodeError:
        return 0


#: Byte -> 1 if a word char, 0 if not, 2 if part of a longer UTF-8 char (decode to tell).
_BYTE_KIND = {"utf-8": bytes(2 if b >= 0x80 else int(_is_word(chr(b))) for b in range(256)),
              "cp1252": bytes(_cp1252_word(b) for b in range(256))}


def _word_before(form: bytes, index: int) -> bool:
    """Whether the (non-ASCII) char that ends at byte `index` of UTF-8 `form` is a word char."""
    start = index - 1
    while form[start] & 0xC0 == 0x80:  # continuation byte
        start -= 1
    return _is_word(form[start:index].decode())


def _word_at(form: bytes, index: int) -> bool:
    """Whether the (non-ASCII) char that starts at byte `index` of UTF-8 `form` is a word char."""
    lead = form[index]
    width = 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
    return _is_word(form[index:index + width].decode())


def _encode(pattern: str, encoding: str, slot: int) -> bytes:
    try:
        return pattern.encode(encoding, "surrogatepass" if encoding == "utf-8" else "strict")
    except UnicodeEncodeError:  # unique, and never in a cp1252 form (see `Scanner.build`)
        return b"\x81%d" % slot


def _char_matches(automaton: daachorse.DoubleArrayAhoCorasick,
                  form: str) -> list[tuple[int, int, int]]:
    """Overlapping matches `(start, end, slot)` of the UTF-8 `automaton` in `form`, in char
    offsets."""
    data = form.encode("utf-8", "surrogatepass")
    matches = automaton.find_overlapping(data)
    if len(data) == len(form) or not matches:
        return matches
    chars: dict[int, int] = {}

    def char(offset: int) -> int:
        index = chars.get(offset)
        if index is None:
            index = chars[offset] = len(data[:offset].decode("utf-8", "surrogatepass"))
        return index

    return [(char(start), char(end), slot) for start, end, slot in matches]


class Scanner:
    """Collects terms with `add`, then `build` compiles the automaton; `scan` is pure."""

    def __init__(self) -> None:
        self.terms: list[TermSpec] = []
        self._ids: dict[tuple[object, ...], int] = {}
        self._slots: dict[str, int] = {}
        self._bytes_automata: dict[str, daachorse.DoubleArrayAhoCorasick] = {}
        self._plain: list[tuple[_Accept, ...]] = []
        self._stripped: list[tuple[_Accept, ...]] = []
        self._both: list[tuple[_Accept, ...]] = []
        self._edges: list[tuple[bool, bool, bool]] = []  # word char first, last; any prefix
        self.has_strip = False
        self._keep_ellipsis = False  # no pattern has a ".": "…" can stay one char

    def add(self, term: Term, *, case_sensitive: bool, strip: bool) -> int:
        """The id of `term` under these options (interned)."""
        if term.kind == "regex":
            key: tuple[object, ...] = ("re", term.text, case_sensitive)
            if key not in self._ids:
                flags = regex.V0 if case_sensitive else regex.IGNORECASE
                self._ids[key] = len(self.terms)
                self.terms.append(TermSpec(-1, pattern=regex.compile(term.text, flags)))
            return self._ids[key]
        body = term.text[:-1] if term.prefix else term.text
        norm = normalize_phrase_stripped(body) if strip else normalize_phrase(body)
        cased = None
        if case_sensitive:
            cased = cased_form(body)
            cased = strip_marks(cased, None)[0] if strip else cased
        key = ("lit", norm, term.prefix, cased, strip)
        if key not in self._ids:
            slot = self._slots.setdefault(norm, len(self._slots))
            self._ids[key] = len(self.terms)
            self.terms.append(TermSpec(slot, term.prefix, cased, strip))
            self.has_strip |= strip
        return self._ids[key]

    def build(self) -> None:
        """Compile the automaton and the per-slot acceptance tables."""
        patterns = list(self._slots)
        plain: list[list[_Accept]] = [[] for _ in patterns]
        stripped: list[list[_Accept]] = [[] for _ in patterns]
        for term_id, spec in enumerate(self.terms):
            if spec.pattern is None:
                (stripped if spec.strip else plain)[spec.slot].append(
                    (term_id, spec.prefix, spec.cased))
        self._plain = [tuple(a) for a in plain]
        self._stripped = [tuple(a) for a in stripped]
        self._both = [p + s for p, s in zip(self._plain, self._stripped, strict=True)]
        self._edges = [(_is_word(p[0]), _is_word(p[-1]),
                        any(a[1] for a in self._both[slot])) for slot, p in enumerate(patterns)]
        self._keep_ellipsis = not any("." in p for p in patterns)
        # The patterns encoded: UTF-8 for any text (a UTF-8 pattern only matches whole chars of
        # UTF-8 text), cp1252 for the quick path's one-byte form (a pattern with a char outside
        # cp1252 cannot occur in text that fits in cp1252, so it becomes b"\x81" and its slot,
        # a byte encoding to cp1252 never produces). Automaton pattern ids are slots.
        self._bytes_automata = {encoding: daachorse.DoubleArrayAhoCorasick(
            [_encode(p, encoding, slot) for slot, p in enumerate(patterns)])
            for encoding in ("utf-8", "cp1252")} if patterns else {}

    def scan(self, texts: tuple[str, ...]) -> dict[int, list[RawHit]]:
        """Literal hits per term id in the clean `texts` (title, text[, author]).

        The fields are scanned as one string joined by NUL (not a word character, in no
        pattern), one automaton pass for all; hits are then split back by field."""
        found: dict[int, list[RawHit]] = {}
        if not self._bytes_automata or not any(texts):
            return found
        bases = _bases(texts)
        joined = "\0".join(texts)
        quick = quick_match_form(joined, keep_ellipsis=self._keep_ellipsis)
        if quick is not None and not (self.has_strip and not quick.form.isascii()):
            self._collect_quick(
                found, bases, quick,
                self._bytes_automata[quick.encoding].find_overlapping(quick.form),
                self._both if self.has_strip else self._plain)
            return found
        return self._scan_slow(found, bases, joined)

    def scan_slow(self, texts: tuple[str, ...]) -> dict[int, list[RawHit]]:
        """`scan` without the quick path (the reference it is tested against)."""
        found: dict[int, list[RawHit]] = {}
        if not self._bytes_automata or not any(texts):
            return found
        return self._scan_slow(found, _bases(texts), "\0".join(texts))

    def _scan_slow(self, found: dict[int, list[RawHit]], bases: list[int],
                   joined: str) -> dict[int, list[RawHit]]:
        automaton = self._bytes_automata["utf-8"]
        form, offsets = match_form_lazy(joined)
        ascii_ = form.isascii()
        table = self._both if ascii_ and self.has_strip else self._plain
        self._collect(found, bases, joined, form, offsets,
                      _char_matches(automaton, form), table)
        if self.has_strip and not ascii_:
            sform, soffsets = strip_marks(
                form, list(offsets) if isinstance(offsets, RunMap) else offsets)
            self._collect(found, bases, joined, sform, soffsets,
                          _char_matches(automaton, sform),
                          self._stripped)
        return found

    def _collect_quick(self, found: dict[int, list[RawHit]], bases: list[int], quick: QuickForm,
                       matches: list[tuple[int, int, int]],
                       table: list[tuple[_Accept, ...]]) -> None:
        """`_collect` on the bytes form of `quick_match_form` (byte offsets, mapped lazily)."""
        form = quick.form
        size = len(form)
        edges = self._edges
        kinds = _BYTE_KIND[quick.encoding]
        span = quick.span
        fields = len(bases)
        for start, end, slot in matches:  # the hot loop: word tests inlined
            accepts = table[slot]
            if not accepts:
                continue
            left, right, any_prefix = edges[slot]
            if left and start and ((kind := kinds[form[start - 1]]) == 1 or
                                   (kind == 2 and _word_before(form, start))):
                continue
            whole = not right or end == size or not (
                (kind := kinds[form[end]]) == 1 or (kind == 2 and _word_at(form, end)))
            if not whole and not any_prefix:
                continue
            cstart, cend = span(start, end)
            rank = bisect_right(bases, cstart) - 1
            base = bases[rank]
            if rank + 1 < fields and cend >= bases[rank + 1]:
                continue  # spans two fields (only a pattern with NUL could)
            hit = (rank, cstart - base, cend - base)
            for term_id, prefix, cased in accepts:
                if not (whole or prefix) or (cased is not None and not self._cased_ok(
                        term_id, cased, quick.clean[cstart:cend])):
                    continue
                hits = found.get(term_id)
                if hits is None:
                    found[term_id] = [hit]
                else:
                    hits.append(hit)

    def _cased_ok(self, term_id: int, cased: str, clean: str) -> bool:
        """Whether the clean text of a hit has the case (and marks) of a case-sensitive term."""
        span = cased_form(clean)
        return (strip_marks(span, None)[0] if self.terms[term_id].strip else span) == cased

    def _collect(self, found: dict[int, list[RawHit]], bases: list[int], clean: str, form: str,
                 offsets: list[int] | RunMap | None, matches: list[tuple[int, int, int]],
                 table: list[tuple[_Accept, ...]]) -> None:
        size = len(form)
        edges = self._edges
        single = len(bases) == 1
        for start, end, slot in matches:  # the hot loop: word tests inlined
            accepts = table[slot]
            if not accepts:
                continue
            left, right, any_prefix = edges[slot]
            if left and start and ((c := form[start - 1]).isalnum() or c == "_"):
                continue
            whole = not right or end == size or not ((c := form[end]).isalnum() or c == "_")
            if not whole and not any_prefix:
                continue
            if offsets is not None:
                cstart, cend = offsets[start], offsets[end - 1] + 1
            else:
                cstart, cend = start, end
            rank = 0 if single else bisect_right(bases, cstart) - 1
            base = bases[rank]
            if rank + 1 < len(bases) and cend >= bases[rank + 1]:
                continue  # spans two fields (only a pattern with NUL could)
            for term_id, prefix, cased in accepts:
                if not (whole or prefix) or (cased is not None and not self._cased_ok(
                        term_id, cased, clean[cstart:cend])):
                    continue
                hits = found.get(term_id)
                hit = (rank, cstart - base, cend - base)
                if hits is None:
                    found[term_id] = [hit]
                else:
                    hits.append(hit)


_ALL_RANKS = {size: frozenset(range(size)) for size in range(len(FIELD_NAMES) + 1)}


class Scan:
    """One entry's scan: literal hits, plus regex hits and word positions computed on demand."""

    __slots__ = ("_present", "_regex", "_words", "found", "ranks", "scanner", "texts")

    def __init__(self, scanner: Scanner, texts: tuple[str, ...],
                 found: dict[int, list[RawHit]]) -> None:
        self.scanner, self.texts, self.found = scanner, texts, found
        self.ranks = _ALL_RANKS[len(texts)]  # the fields scanned
        self._regex: dict[tuple[int, frozenset[int]], list[RawHit]] = {}
        self._words: dict[int, list[int]] = {}
        self._present: dict[frozenset[int], AbstractSet[int]] = {}

    def present_set(self, ranks: frozenset[int]) -> AbstractSet[int]:
        """Ids of the literal terms with a hit in the given fields."""
        present = self._present.get(ranks)
        if present is None:
            if ranks >= self.ranks:
                present = self.found.keys()
            else:
                present = {t for t, hits in self.found.items() if any(h[0] in ranks for h in hits)}
            self._present[ranks] = present
        return present

    def hits(self, term_id: int, ranks: frozenset[int]) -> list[RawHit]:
        """Hits of a term in the given fields."""
        spec = self.scanner.terms[term_id]
        if spec.pattern is not None:
            return self._regex_hits(term_id, spec.pattern, ranks)
        hits = self.found.get(term_id)
        if not hits:
            return []
        return [h for h in hits if h[0] in ranks]

    def present(self, term_id: int, ranks: frozenset[int]) -> bool:
        """Whether a term occurs in the given fields."""
        hits = self.found.get(term_id)
        if hits is not None:
            return any(h[0] in ranks for h in hits)
        return bool(self.scanner.terms[term_id].pattern is not None and
                    self.hits(term_id, ranks))

    def _regex_hits(self, term_id: int, pattern: regex.Pattern[str],
                    ranks: frozenset[int]) -> list[RawHit]:
        key = (term_id, ranks)
        cached = self._regex.get(key)
        if cached is not None:
            return cached
        hits: list[RawHit] = []
        for rank in sorted(ranks):
            clean = self.texts[rank] if rank < len(self.texts) else ""
            if not clean:
                continue
            try:
                for count, m in enumerate(pattern.finditer(unify_punctuation(clean),
                                                           timeout=REGEX_TIMEOUT)):
                    if count >= REGEX_MAX_HITS:
                        break
                    if m.end() > m.start():
                        hits.append((rank, m.start(), m.end()))
            except TimeoutError:
                log.warning("regex timed out; counted as no match", pattern=pattern.pattern,
                            field=FIELD_NAMES[rank], timeout=REGEX_TIMEOUT)
        self._regex[key] = hits
        return hits

    def word_span(self, hit: RawHit) -> tuple[int, int]:
        """Indexes of the first and last word a hit touches (words split at spaces/dashes)."""
        rank, start, end = hit
        starts = self._words.get(rank)
        if starts is None:
            unified = unify_punctuation(self.texts[rank])
            starts = self._words[rank] = [m.start() for m in _NONWORD.finditer(unified)]
        return bisect_right(starts, start) - 1, bisect_right(starts, max(start, end - 1)) - 1


def _bases(texts: tuple[str, ...]) -> list[int]:
    """Where each of `texts` starts in their NUL-joined string."""
    bases = [0]
    for text in texts[:-1]:
        bases.append(bases[-1] + len(text) + 1)
    return bases
