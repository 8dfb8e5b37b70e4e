"""Pure rule matching: every literal term of every rule in one Aho-Corasick automaton
(`workers.match.scan`), a whole-word check, then each hit rule's boolean tree
(`workers.match.evaluate`: any/all/none lists and the `query`). No I/O.

Matching runs on the match form of the clean text (`monitor.core.textnorm.match_form`): quotes,
dashes, spaces and case are unified, so "Coalition of the  willing" matches
`coalition of the willing`.
Hit offsets are mapped back onto the clean text (`Entry.title` / `Entry.text`) for highlighting.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Literal, NamedTuple

from monitor.config.models import RuleSettings
from monitor.core.models import Event
from workers.match.evaluate import CompiledRule, compile_rule, rule_hits, run
from workers.match.scan import FIELD_NAMES, RANK, RawHit, Scan, Scanner

Field = Literal["title", "text", "author"]
_Posting = tuple[int, int, str, frozenset[int]]  # rule index, order, label, field ranks
Span = tuple[int, int]
ELLIPSIS = "…"
_WHITESPACE = re.compile(r"\s+")


class Hit(NamedTuple):
    """One occurrence of a rule phrase: `term` as written in the rule, offsets into clean text."""

    term: str
    field: Field
    start: int
    end: int


_new_tuple = tuple.__new__
_new_object = object.__new__


def _hit(term: str, field: Field, start: int, end: int) -> Hit:
    """`Hit(term, field, start, end)` without the Python-level `__new__`."""
    return _new_tuple(Hit, (term, field, start, end))


@dataclass(frozen=True)
class RuleMatch:
    """A rule that matched, with the hits of its `any` and `all` phrases (title hits first)."""

    rule: str
    hits: tuple[Hit, ...]

    @property
    def terms(self) -> frozenset[str]:
        """The distinct phrases (as written in the rule) that were found."""
        return frozenset(hit.term for hit in self.hits)


def _rule_match(rule: str, hits: tuple[Hit, ...]) -> RuleMatch:
    """`RuleMatch(rule, hits)` without the frozen dataclass's slow `__init__`."""
    match: RuleMatch = _new_object(RuleMatch)
    match.__dict__.update(rule=rule, hits=hits)
    return match


class Matcher:
    """Rules compiled once; `match` and `alerts_for` are pure and safe to share between tasks."""

    def __init__(self, rules: Sequence[RuleSettings]) -> None:
        self.scanner = Scanner()
        self.rules: tuple[CompiledRule, ...] = tuple(
            compile_rule(i, rule, self.scanner) for i, rule in enumerate(rules))
        self.scanner.build()
        self._by_name = {r.name: r for r in self.rules}
        self._uses_author = any(RANK["author"] in ranks
                                for r in self.rules for ranks in r.ranks.values())
        # literal term id -> (rule index, order, label, fields) for each rule where it is
        # positive (not under a NOT), its `positive_index` entry. A rule none of whose positive
        # terms occurs cannot match (queries that match empty text are rejected), so only the
        # rules these postings reach (and rules with a regex) are evaluated, and their hits are
        # listed in the same pass.
        postings: dict[int, list[_Posting]] = {}
        for r in self.rules:
            for term_id, (order, label, ranks) in r.positive_index.items():
                postings.setdefault(term_id, []).append((r.index, order, label, ranks))
        self._postings = {t: tuple(ps) for t, ps in postings.items()}
        self._regex_rules = frozenset(r.index for r in self.rules if r.has_regex)
        self._by_feed: dict[str, frozenset[int]] = {}

    def rule(self, name: str) -> CompiledRule:
        """The compiled rule called `name` (KeyError if none)."""
        return self._by_name[name]

    def _rules_for(self, feed: str) -> frozenset[int]:
        rules = self._by_feed.get(feed)
        if rules is None:
            rules = frozenset(r.index for r in self.rules
                              if any(fnmatchcase(feed, pattern) for pattern in r.feeds))
            if len(self._by_feed) < 10_000:
                self._by_feed[feed] = rules
        return rules

    def scan(self, title: str, text: str, author: str | None = None) -> Scan:
        """Scan clean title, text (and author, when a rule looks at it) once for all rules."""
        texts = (title, text, author or "") if self._uses_author else (title, text)
        return Scan(self.scanner, texts, self.scanner.scan(texts))

    def _evaluate(self, allowed: frozenset[int], scan: Scan) -> list[RuleMatch]:
        """The rules among `allowed` that match `scan`, in configuration order."""
        found = scan.found
        listed: dict[int, list[tuple[RawHit, int, str]]] = {}  # rule -> (hit, order, label)
        postings = self._postings
        for term_id, term_hits in found.items():
            for index, order, label, ranks in postings.get(term_id, ()):
                entries = listed.get(index)
                if entries is None:
                    entries = listed[index] = []
                for hit in term_hits:
                    if hit[0] in ranks:
                        entries.append((hit, order, label))
        if not listed and not self._regex_rules:
            return []
        matches: list[RuleMatch] = []
        scanned = scan.ranks
        for index in sorted((listed.keys() | self._regex_rules) & allowed):
            rule = self.rules[index]
            simple = rule.simple
            if simple is not None and simple[2] >= scanned:  # present terms are found's keys
                if simple[0].isdisjoint(found) or not simple[1].isdisjoint(found):
                    continue
            elif not run(rule, rule.program, scan):
                continue
            if rule.regex_ids:
                hits = tuple(_hit(label, FIELD_NAMES[rank], start, end)
                             for label, (rank, start, end) in rule_hits(rule, scan))
            else:  # as `rule_hits`: by position, equal hits in the order of rule.positive
                entries = listed.get(index, [])
                if len(entries) > 1:
                    entries.sort()
                hits = tuple([_hit(label, FIELD_NAMES[rank], start, end)
                              for (rank, start, end), _, label in entries])
            matches.append(_rule_match(rule.name, hits))
        return matches

    def match(self, feed: str, title: str, text: str,
              author: str | None = None) -> list[RuleMatch]:
        """The rules for `feed` that match this clean title and text, in configuration order."""
        allowed = self._rules_for(feed)
        if not allowed:
            return []
        return self._evaluate(allowed, self.scan(title, text, author))

    def alerts_for(self, event: Event) -> list[RuleMatch]:
        """The matches that should alert for `event`.

        A rule alerts only for the event kinds it lists. For an `updated` event it alerts only when
        its match is new in this version: the previous version did not match, or this version
        found a phrase the previous one did not (so a typo fix elsewhere never re-alerts). With
        no previous text recorded the match counts as new; a missing previous title or text
        falls back to the current one.
        """
        allowed = frozenset(i for i in self._rules_for(event.feed)
                            if event.kind in self.rules[i].events)
        if not allowed:
            return []
        entry = event.entry
        matches = self._evaluate(allowed, self.scan(entry.title, entry.text, entry.author))
        if event.kind != "updated" or not matches or (
                event.previous_title is None and event.previous_text is None):
            return matches
        matched = frozenset(self._by_name[m.rule].index for m in matches)
        previous_title = entry.title if event.previous_title is None else event.previous_title
        previous_text = entry.text if event.previous_text is None else event.previous_text
        before = {m.rule: m.terms for m in self._evaluate(
            matched, self.scan(previous_title, previous_text, entry.author))}
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
