"""The matcher's fast paths equal its reference paths: the quick scan (bytes form, lazy
offsets) equals `Scanner.scan_slow`, and the set test and hit listing of `any`/`none` rules
equal walking the rule's tree (`evaluate`) and listing every positive term's hits in order."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.config.models import RuleSettings
from monitor.core.textnorm import clean_text
from workers.match.evaluate import CompiledRule, evaluate
from workers.match.matcher import Hit, Matcher, RuleMatch
from workers.match.scan import FIELD_NAMES, RawHit, Scan


def rule(name: str, **kwargs: object) -> RuleSettings:
    return RuleSettings.model_validate({"name": name, "channels": ["desk"], **kwargs})


RULES = [
    rule("coalition", any=["coalition of the willing", "the willing", "willing*"],
         none=["football"]),
    rule("names", any=["O’Brien", "Straße", "Zelenskyy", "Łukasz Kovačević", "Élysée"]),
    rule("money", any=["£5bn levy", "€2bn", "u.s. aid", "no. 10"]),
    rule("dots", any=["wait...", "end."]),
    rule("budget", all=["Chancellor", "fuel duty"]),
    rule("cased", any=["EU", "May"], case_sensitive=True),
    rule("accents", any=["elysee", "kovacevic"], ignore_diacritics=True),
    rule("title-only", any=["breaking"], fields=["title"]),
    rule("query", query='("cease-fire" OR truce) AND NOT football OR troops NEAR/3 Ukraine'),
    rule("regex", query=r"/\bbn\b/ AND levy"),
    rule("author", query='author:"Jane Doe" AND sanctions'),
]
MATCHER = Matcher(RULES)
#: Without a diacritics-insensitive rule the quick path also takes non-ASCII forms.
MATCHERS = [MATCHER, Matcher([r for r in RULES if not r.ignore_diacritics]),
            # and with no "." in any phrase, "…" stays one char
            Matcher([r for r in RULES if r.name not in ("money", "dots")])]
WORDS = ["coalition", "of", "the", "willing", "Willingness", "football", "O’Brien", "O'Brien",
         "Straße", "strasse", "Zelenskyy", "Łukasz", "Kovačević", "Kovacevic", "Élysée",
         "elysee", "£5bn", "levy", "€2bn", "U.S.", "aid", "No.", "10", "wait…", "wait...",
         "end.", "Chancellor", "fuel", "duty", "EU", "eu", "May", "may", "BREAKING", "cease",
         "fire", "truce", "troops", "Ukraine", "sanctions", "½", "ﬁ", "µ", "\u0301", "bn"]
GAPS = [" ", "  ", "\n", "\n\n", " – ", "—", "-", "\u00a0", "\u202f", ", ", "’", "“", "”",
        " … ", "\0"]


def reference_hits(rule: CompiledRule, scan: Scan) -> list[tuple[str, RawHit]]:
    """Every positive term's hits, in `rule.positive` order, then stably by position."""
    out: list[tuple[str, RawHit]] = []
    for term_id, label, ranks in rule.positive:
        out += [(label, hit) for hit in scan.hits(term_id, ranks)]
    out.sort(key=lambda item: item[1])
    return out


def reference_match(matcher: Matcher, title: str, text: str,
                    author: str | None) -> list[RuleMatch]:
    texts = (title, text, author or "")
    scan = Scan(matcher.scanner, texts, matcher.scanner.scan_slow(texts))
    return [RuleMatch(r.name, tuple(Hit(label, FIELD_NAMES[rank], start, end)
                                    for label, (rank, start, end) in reference_hits(r, scan)))
            for r in matcher.rules if evaluate(r, r.node, scan)]


def check(title: str, text: str, author: str | None = None) -> None:
    texts = (title, text, author or "")
    for matcher in MATCHERS:
        assert matcher.scanner.scan(texts) == matcher.scanner.scan_slow(texts)
        assert matcher.match("feed", title, text, author) == \
            reference_match(matcher, title, text, author)


phrases = st.lists(st.tuples(st.sampled_from(WORDS), st.sampled_from(GAPS)), max_size=14).map(
    lambda pairs: "".join(word + gap for word, gap in pairs))


@settings(max_examples=400)
@given(phrases, phrases, st.sampled_from([None, "Jane Doe", "jane doe", "Łukasz"]))
def test_fast_paths_equal_reference(title: str, text: str, author: str | None) -> None:
    check(title, text, author)


@settings(max_examples=200)
@given(st.text(max_size=30), st.text(alphabet="ab Z’'…½ßé£č\n-–\0", max_size=60))
def test_fast_paths_equal_reference_on_any_text(title: str, text: str) -> None:
    check(title, text)


@pytest.mark.parametrize("text", [
    "Jabed Ahmed2 March 2025 17:34\n\nThe coalition of the willing’s £5bn levy – agreed…",
    "<p>Kovačević met Élysée officials</p><p>Then O’Brien said: “wait…”</p>",
    "BREAKING: the EU said troops – in Ukraine – were willing. No. 10 declined, end.",
])
def test_fast_paths_equal_reference_on_live_blog_text(text: str) -> None:
    check("Live: coalition of the willing", clean_text(text), "Jane Doe")


@pytest.mark.parametrize("others", [[], ["alpha", "beta", "gamma"]],
                         ids=["terms-listed-from-rule", "terms-listed-from-found"])
def test_equal_hits_keep_rule_order(others: list[str]) -> None:
    matcher = Matcher([rule("ties", any=["willing*", "Willing", *others])])
    [match] = matcher.match("feed", "", "the willing")
    assert [h.term for h in match.hits] == ["willing*", "Willing"]


def test_fast_paths_equal_reference_on_benchmark_updates() -> None:
    # bench/ is not a package on the test path: load the benchmark's generator from its file.
    spec = importlib.util.spec_from_file_location(
        "match_bench", Path(__file__).parents[2] / "bench" / "match_bench.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rng = random.Random(7)
    vocab, people = bench.vocabulary(rng, 2000), bench.names(rng, 50, 200)
    rules = bench.make_rules(rng, vocab, people, 400, 40)
    matcher = Matcher(rules)
    corpus = bench.Corpus(rng, vocab, people)
    carried = [p.rstrip("*") for r in rules for p in r.any]
    for _ in range(150):
        title, text = corpus.update(carried)
        texts = (title, text)
        assert matcher.scanner.scan(texts) == matcher.scanner.scan_slow(texts)
        scan = Scan(matcher.scanner, texts, matcher.scanner.scan_slow(texts))
        expected = [RuleMatch(r.name, tuple(Hit(label, FIELD_NAMES[rank], s, e) for label, (
            rank, s, e) in reference_hits(r, scan))) for r in matcher.rules
            if evaluate(r, r.node, scan)]
        assert matcher.match("live", title, text) == expected
