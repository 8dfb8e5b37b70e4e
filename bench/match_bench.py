"""Matching speed: the compiled matcher against a straightforward per-rule `re` implementation.

    .venv/bin/python -m bench.match_bench [--phrases 5000] [--rules 500] [--updates 3000]

Generates (seeded, no downloads) a Zipf-distributed vocabulary, ~700-character live-blog
updates with headlines, and rules whose phrases are drawn from the same vocabulary (names, 2-4
word phrases, some single words, some `word*` prefixes; one rule in five a `query` with
AND/OR/NOT/NEAR). Both implementations normalise the text the same way (`match_form`); the
naive one then runs one compiled alternation per rule (and one for its `none` phrases).
Prints MB/s of text on one core, the ratio, and the compile time.
"""

from __future__ import annotations

import argparse
import random
import re
import time
from collections.abc import Callable, Sequence

from monitor.query import parse_query, terms
from monitor.settings import RuleSettings
from monitor.textnorm import match_form, match_form_lazy, normalize_phrase
from workers.match import Matcher

_ONSETS = ["b", "br", "c", "ch", "d", "dr", "f", "g", "gr", "h", "k", "l", "m", "n", "p",
           "pr", "r", "s", "st", "sh", "t", "tr", "v", "w", "z"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ea", "ou", "y"]
_CODAS = ["", "", "n", "r", "s", "t", "l", "ng", "ck", "nd"]
_FUNCTION = ("the", "of", "and", "to", "a", "in", "that", "is", "was", "for", "on", "with",
             "as", "by", "at", "from", "said", "it", "has", "have", "will", "be", "are",
             "not", "this", "which", "but", "after", "their", "its", "an", "were", "been",
             "who", "more")


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)
                   for _ in range(rng.choice((1, 2, 2, 3))))


def vocabulary(rng: random.Random, size: int = 8000) -> list[str]:
    """Distinct pseudo-words; index = frequency rank."""
    words: dict[str, None] = {}
    while len(words) < size:
        words[_word(rng)] = None
    return list(words)


class Corpus:
    """Updates drawn from a Zipf-like vocabulary plus function words and punctuation."""

    def __init__(self, rng: random.Random, vocab: Sequence[str]) -> None:
        self.rng, self.vocab = rng, vocab
        self.weights = [1.0 / (rank + 1) for rank in range(len(vocab))]

    def sentence(self, extra: str = "") -> str:
        rng = self.rng
        words = rng.choices(self.vocab, self.weights, k=rng.randint(8, 18))
        for i in range(len(words)):
            if rng.random() < 0.45:
                words[i] = rng.choice(_FUNCTION)
            elif rng.random() < 0.12:
                words[i] = words[i].capitalize()
        if extra:
            words.insert(rng.randrange(len(words)), extra)
        if rng.random() < 0.2:
            words.insert(rng.randrange(len(words)), f"“{rng.choice(self.vocab)}”")
        if rng.random() < 0.2:
            words.insert(rng.randrange(len(words)), f"{rng.randint(2, 90)}bn – ")
        text = " ".join(words)
        return text[0].upper() + text[1:] + rng.choice((".", ".", ",", "?", ":"))

    def update(self, phrases: Sequence[str], target: int = 700) -> tuple[str, str]:
        """(title, text) with a ~30% chance of carrying one of `phrases`."""
        rng = self.rng
        parts: list[str] = []
        size = 0
        carry = rng.choice(phrases) if rng.random() < 0.3 else ""
        while size < target:
            sentence = self.sentence(carry if carry and rng.random() < 0.3 else "")
            if carry and carry in sentence:
                carry = ""
            parts.append(sentence)
            size += len(sentence) + 1
        title = self.sentence()[:70].rstrip(",.?:")
        return title, " ".join(parts)[: target + 60]


def make_rules(rng: random.Random, vocab: Sequence[str], n_phrases: int,
               n_rules: int) -> list[RuleSettings]:
    """`n_rules` rules with `n_phrases` distinct phrases between them."""
    phrases: dict[str, None] = {}
    while len(phrases) < n_phrases:
        kind = rng.random()
        if kind < 0.12:  # a single, rarer, word
            phrase = rng.choice(vocab[2000:])
        elif kind < 0.15:  # a stem
            phrase = rng.choice([w for w in vocab[1000:1500] if len(w) >= 6]) + "*"
        elif kind < 0.55:  # a name
            phrase = f"{rng.choice(vocab).capitalize()} {rng.choice(vocab).capitalize()}"
        else:
            words = [rng.choice(vocab) for _ in range(rng.randint(2, 4))]
            if len(words) > 2 and rng.random() < 0.5:
                words.insert(1, rng.choice(("of the", "on the", "in")))
            phrase = " ".join(words)
        phrases[phrase] = None
    pool = list(phrases)
    per = n_phrases // n_rules
    rules = []
    for i in range(n_rules):
        mine = pool[i * per:(i + 1) * per]
        base = {"name": f"rule-{i}", "channels": ["desk"]}
        if i % 5 == 4:  # a query rule
            quoted = [f'"{p}"' if not p.endswith("*") else p for p in mine]
            query = (f"({' OR '.join(quoted[:-3])}) AND NOT {quoted[-3]} "
                     f"OR {quoted[-2]} NEAR/5 {quoted[-1]}")
            rules.append(RuleSettings.model_validate({**base, "query": query}))
        else:
            rules.append(RuleSettings.model_validate({**base, "any": mine[:-1],
                                                      "none": mine[-1:]}))
    return rules


def naive(rules: Sequence[RuleSettings]) -> Callable[[str, str], list[str]]:
    """One `re` alternation per rule (positive terms) and one for its negative terms."""
    compiled = []
    for rule in rules:
        positive, negative = list(rule.any) + list(rule.all), list(rule.none)
        if rule.query:
            for term, negated in terms(parse_query(rule.query)):
                (negative if negated else positive).append(term.text)

        def alternation(phrases: list[str]) -> re.Pattern[str] | None:
            if not phrases:
                return None
            parts = [re.escape(normalize_phrase(p.rstrip("*"))) + (r"\w*" if p.endswith("*")
                                                                   else "") for p in phrases]
            return re.compile(r"(?<!\w)(?:" + "|".join(parts) + r")(?!\w)")

        compiled.append((rule.name, alternation(positive), alternation(negative)))

    def match(title: str, text: str) -> list[str]:
        forms = (match_form(title)[0], match_form(text)[0])
        out = []
        for name, pos, neg in compiled:
            if pos is not None and any(pos.search(f) for f in forms) and not (
                    neg is not None and any(neg.search(f) for f in forms)):
                out.append(name)
        return out

    return match


def _throughput(run: Callable[[str, str], object], updates: Sequence[tuple[str, str]],
                repeat: int) -> float:
    size = sum(len(t.encode()) + len(x.encode()) for t, x in updates)
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for title, text in updates:
            run(title, text)
        best = min(best, time.perf_counter() - started)
    return size / best / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phrases", type=int, default=5000)
    parser.add_argument("--rules", type=int, default=500)
    parser.add_argument("--updates", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    vocab = vocabulary(rng)
    rules = make_rules(rng, vocab, args.phrases, args.rules)
    corpus = Corpus(rng, vocab)
    carried = [p.rstrip("*") for r in rules for p in r.any]
    updates = [corpus.update(carried) for _ in range(args.updates)]
    started = time.perf_counter()
    matcher = Matcher(rules)
    compile_s = time.perf_counter() - started
    naive_match = naive(rules)
    avg = sum(len(t) + len(x) for t, x in updates) / len(updates)
    matched = sum(bool(matcher.match("live", t, x)) for t, x in updates)
    hits = sum(len(m.hits) for t, x in updates for m in matcher.match("live", t, x))

    def fast(title: str, text: str) -> object:
        return matcher.match("live", title, text)

    automaton = matcher.scanner._automaton  # the floor: one automaton pass, nothing else
    assert automaton is not None

    def floor(title: str, text: str) -> object:
        return automaton.find_matches_as_indexes(match_form_lazy(f"{title}\0{text}")[0],
                                                 overlapping=True)

    fast_mbs = _throughput(fast, updates, repeat=5)
    floor_mbs = _throughput(floor, updates, repeat=5)
    sample = updates[: max(200, len(updates) // 10)]
    naive_mbs = _throughput(naive_match, sample, repeat=2)
    print(f"rules: {len(rules)} ({sum(1 for r in rules if r.query)} with a query), "
          f"phrases: {args.phrases}, automaton patterns: {len(matcher.scanner.terms)}")
    print(f"updates: {len(updates)}, mean {avg:.0f} chars (title + text); "
          f"{matched} matched a rule, {hits} highlighted hits")
    print(f"compile {args.phrases} phrases:  {compile_s * 1000:8.1f} ms   (target < 1000 ms)")
    print(f"compiled matcher:        {fast_mbs:8.1f} MB/s (target >= 50)")
    print(f"  (normalise + automaton pass alone: {floor_mbs:.1f} MB/s, the bound on this CPU)")
    print(f"naive per-rule re:       {naive_mbs:8.2f} MB/s (on {len(sample)} updates)")
    print(f"speed-up:                {fast_mbs / naive_mbs:8.1f}x  (target >= 20x)")


if __name__ == "__main__":
    main()
