"""Pure rule matching: every phrase of every rule in one Aho-Corasick automaton, then a
whole-word check, then each rule's any/all/none logic. No I/O.

Matching runs on the match form of the clean text (`monitor.textnorm.match_form`): quotes, dashes,
spaces and case are unified, so "Coalition of the  willing" matches `coalition of the willing`.
Hit offsets are mapped back onto the clean text (`Entry.title` / `Entry.text`) for highlighting.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Literal

import ahocorasick_rs

from monitor.models import Event
from monitor.settings import RuleSettings
from monitor.textnorm import match_form, normalize_phrase

Field = Literal["title", "text"]
Span = tuple[int, int]
ELLIPSIS = "…"
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Hit:
    """One occurrence of a rule phrase: `term` as written in the rule, offsets into clean text."""

    term: str
    field: Field
    start: int
    end: int


@dataclass(frozen=True)
class RuleMatch:
    """A rule that matched, with the hits of its `any` and `all` phrases (title hits first)."""

    rule: str
    hits: tuple[Hit, ...]

    @property
    def terms(self) -> frozenset[str]:
        """The distinct phrases (as written in the rule) that were found."""
        return frozenset(hit.term for hit in self.hits)


@dataclass(frozen=True, slots=True)
class _Rule:
    name: str
    feeds: tuple[str, ...]
    events: frozenset[str]
    any: frozenset[int]
    all: frozenset[int]
    none: frozenset[int]
    terms: dict[int, str]  # positive phrase index -> the phrase as written in the rule


@dataclass(frozen=True, slots=True)
class _Found:
    phrase: int
    field: Field
    start: int
    end: int


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"


class Matcher:
    """Rules compiled once; `match` and `alerts_for` are pure and safe to share between tasks."""

    def __init__(self, rules: Sequence[RuleSettings]) -> None:
        index: dict[str, int] = {}

        def intern(phrases: Iterable[str]) -> dict[int, str]:
            out: dict[int, str] = {}
            for phrase in phrases:
                norm = normalize_phrase(phrase)
                if norm:
                    out.setdefault(index.setdefault(norm, len(index)), phrase)
            return out

        compiled: list[_Rule] = []
        for rule in rules:
            any_, all_, none = intern(rule.any), intern(rule.all), intern(rule.none)
            compiled.append(_Rule(
                name=rule.name, feeds=tuple(rule.feeds), events=frozenset(rule.events),
                any=frozenset(any_), all=frozenset(all_), none=frozenset(none),
                terms={**all_, **any_}))
        self._rules: tuple[_Rule, ...] = tuple(compiled)
        self._phrases = list(index)
        # Whether each phrase starts / ends with a word character (then it needs a boundary).
        self._edges = [(_is_word(p[0]), _is_word(p[-1])) for p in self._phrases]
        self._automaton = (ahocorasick_rs.AhoCorasick(
            self._phrases, matchkind=ahocorasick_rs.MatchKind.Standard)
            if self._phrases else None)
        self._by_feed: dict[str, tuple[_Rule, ...]] = {}

    def _rules_for(self, feed: str) -> tuple[_Rule, ...]:
        rules = self._by_feed.get(feed)
        if rules is None:
            rules = tuple(r for r in self._rules
                          if any(fnmatchcase(feed, pattern) for pattern in r.feeds))
            if len(self._by_feed) < 10_000:
                self._by_feed[feed] = rules
        return rules

    def _find(self, field: Field, clean: str) -> list[_Found]:
        """Whole-word occurrences of every phrase in one field, as clean-text offsets."""
        if self._automaton is None or not clean:
            return []
        form, offsets = match_form(clean)
        found: list[_Found] = []
        for phrase, start, end in self._automaton.find_matches_as_indexes(form, overlapping=True):
            needs_left, needs_right = self._edges[phrase]
            if needs_left and start > 0 and _is_word(form[start - 1]):
                continue
            if needs_right and end < len(form) and _is_word(form[end]):
                continue
            if offsets is not None:
                start, end = offsets[start], offsets[end - 1] + 1
            found.append(_Found(phrase, field, start, end))
        found.sort(key=lambda f: (f.start, f.end))
        return found

    def _scan(self, title: str, text: str) -> list[_Found]:
        return self._find("title", title) + self._find("text", text)

    @staticmethod
    def _evaluate(rules: Iterable[_Rule], found: Sequence[_Found]) -> list[RuleMatch]:
        """Apply each rule's any/all/none logic to `found` (title hits first, then by offset)."""
        by_phrase: dict[int, list[int]] = {}
        for position, item in enumerate(found):
            by_phrase.setdefault(item.phrase, []).append(position)
        present = set(by_phrase)
        matches: list[RuleMatch] = []
        for rule in rules:
            if rule.none & present or not rule.all <= present:
                continue
            if rule.any and not rule.any & present:
                continue
            positions = sorted(p for phrase in rule.terms for p in by_phrase.get(phrase, ()))
            hits = tuple(Hit(rule.terms[found[p].phrase], found[p].field, found[p].start,
                             found[p].end) for p in positions)
            matches.append(RuleMatch(rule.name, hits))
        return matches

    def match(self, feed: str, title: str, text: str) -> list[RuleMatch]:
        """The rules for `feed` that match this clean title and text, in configuration order."""
        rules = self._rules_for(feed)
        if not rules:
            return []
        return self._evaluate(rules, self._scan(title, text))

    def alerts_for(self, event: Event) -> list[RuleMatch]:
        """The matches that should alert for `event`.

        A rule alerts only for the event kinds it lists. For an `updated` event it alerts only when
        its match is new in this version: the previous version did not match, or this version
        found a phrase the previous one did not (so a typo fix elsewhere never re-alerts). With
        no previous text recorded the match counts as new; a missing previous title or text
        falls back to the current one.
        """
        rules = [r for r in self._rules_for(event.feed) if event.kind in r.events]
        if not rules:
            return []
        entry = event.entry
        matches = self._evaluate(rules, self._scan(entry.title, entry.text))
        if event.kind != "updated" or not matches or (
                event.previous_title is None and event.previous_text is None):
            return matches
        matched = {m.rule for m in matches}
        previous_title = entry.title if event.previous_title is None else event.previous_title
        previous_text = entry.text if event.previous_text is None else event.previous_text
        before = {m.rule: m.terms for m in self._evaluate(
            (r for r in rules if r.name in matched), self._scan(previous_title, previous_text))}
        return [m for m in matches if m.rule not in before or not m.terms <= before[m.rule]]


def _window(text: str, hit: Hit, width: int) -> Span:
    """Clean-text bounds of a window of about `width` chars around `hit`, cut between words."""
    size = len(text)
    start, end = max(0, min(hit.start, size)), max(0, min(hit.end, size))
    room = max(width - (end - start), 0)
    lo, hi = start - room // 2, end + room - room // 2
    if lo < 0:
        lo, hi = 0, min(size, hi - lo)
    if hi > size:
        lo, hi = max(0, lo - (hi - size)), size
    if lo > 0 and not text[lo - 1].isspace():  # mid-word: start at the next word
        while lo < start and not text[lo].isspace():
            lo += 1
    if hi < size and not text[hi].isspace():  # mid-word: end after the previous word
        while hi > end and not text[hi - 1].isspace():
            hi -= 1
    while lo < hi and text[lo].isspace():
        lo += 1
    while hi > lo and text[hi - 1].isspace():
        hi -= 1
    return lo, hi


def _spans(hits: Iterable[Hit], lo: int, hi: int) -> list[Span]:
    """Hit spans clipped to [lo, hi), sorted and merged where they overlap or touch."""
    merged: list[Span] = []
    for start, end in sorted((max(h.start, lo), min(h.end, hi)) for h in hits):
        if start >= end:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _render(text: str, lo: int, hi: int, hits: Iterable[Hit]) -> tuple[str, list[Span]]:
    """Text[lo:hi] on one line ("…" where cut) and the hit spans relative to it."""
    out = [ELLIPSIS] if lo > 0 else []
    length = len(out[0]) if out else 0
    spans: list[Span] = []
    pos = lo
    for start, end in _spans(hits, lo, hi):
        before = _WHITESPACE.sub(" ", text[pos:start])
        marked = _WHITESPACE.sub(" ", text[start:end])
        out += [before, marked]
        length += len(before)
        spans.append((length, length + len(marked)))
        length += len(marked)
        pos = end
    out.append(_WHITESPACE.sub(" ", text[pos:hi]))
    if hi < len(text):
        out.append(ELLIPSIS)
    return "".join(out), spans


def snippet(text: str, hits: Sequence[Hit], width: int = 200) -> tuple[str, list[Span]]:
    """A window of about `width` chars of clean `text` around `hits[0]`, cut between words with
    "…" where cut and line breaks made spaces, plus the spans (relative to the returned string,
    merged where they overlap) of every hit inside the window. `hits` must be of this text's field.
    """
    if not hits:
        lo, hi = _window(text, Hit("", "text", 0, 0), width)
        return _render(text, lo, hi, ())
    lo, hi = _window(text, hits[0], width)
    return _render(text, lo, hi, hits)


def snippets(text: str, hits: Sequence[Hit], width: int = 200,
             limit: int = 3) -> list[tuple[str, list[Span]]]:
    """Up to `limit` non-overlapping snippets of `text` covering its hits in order of position."""
    result: list[tuple[str, list[Span]]] = []
    ordered = sorted(hits, key=lambda h: (h.start, h.end))
    covered_to = -1
    for hit in ordered:
        if len(result) >= limit:
            break
        if hit.end <= covered_to:
            continue
        lo, hi = _window(text, hit, width)
        result.append(_render(text, lo, hi, ordered))
        covered_to = max(hi, hit.end)
    return result
