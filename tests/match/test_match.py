"""workers.match.matcher: phrase matching (table-driven), edit semantics, offsets and snippets."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.config.models import RuleSettings
from monitor.core.models import Entry, Event, EventKind
from monitor.core.textnorm import clean_text, normalize_phrase
from workers.match.matcher import ELLIPSIS, Hit, Matcher, RuleMatch, snippet, snippets


def rule(name: str, **kwargs: object) -> RuleSettings:
    return RuleSettings.model_validate({"name": name, "channels": ["desk"], **kwargs})


RULES = [
    rule("coalition", any=["coalition of the willing", "boots on the ground"], none=["football"]),
    rule("budget", all=["Chancellor", "fuel duty"]),
    rule("westminster", any=["Downing Street"], feeds=["uk-*", "politics-live"]),
    rule("strasse", any=["Straße"]),
    rule("obrien", any=["O’Brien"]),
    rule("ceasefire", any=["cease-fire"]),
    rule("red-lines", any=["“red lines”"]),
    rule("ft", any=["financial times"]),
    rule("levy", any=["£5bn levy"]),
    rule("snap", any=["snap election"], events=["new"]),
]
MATCHER = Matcher(RULES)


@dataclass(frozen=True)
class Case:
    id: str
    text: str
    expected: frozenset[str]
    title: str = ""
    feed: str = "world-live"


def case(id: str, text: str, *expected: str, title: str = "", feed: str = "world-live") -> Case:
    return Case(id, text, frozenset(expected), title, feed)


CASES = [
    case("plain", "Leaders of the coalition of the willing met at 10am.", "coalition"),
    case("title-case", "", "coalition", title="Coalition Of The Willing To Meet In Paris"),
    case("html-cleaned", clean_text("Coalition of the  <em>willing</em> meets"), "coalition"),
    case("unwilling", "A coalition of the unwilling, one minister quipped."),
    case("willingness", "The coalition of the willingness to pay was mocked."),
    case("plural-prefix", "Coalitions of the willing are not new."),
    case("possessive", "The coalition of the willing’s first task is logistics.", "coalition"),
    case("possessive-straight", "The coalition of the willing's plan", "coalition"),
    case("nbsp-inside", "coalition\u00a0of\u00a0the willing", "coalition"),
    case("line-break-inside", "a coalition of the\nwilling formed", "coalition"),
    case("tab-and-spaces", "boots  on\tthe ground", "coalition"),
    case("all-caps", "BOOTS ON THE GROUND RULED OUT", "coalition"),
    case("none-excludes", "Coalition of the willing talks overshadow the football.",),
    case("none-in-title-excludes", "coalition of the willing", title="Football latest"),
    case("none-whole-word-only", "The coalition of the willing met a footballer.", "coalition"),
    case("suffix-near-miss", "Boots on the groundsman's lawn, complained the club."),
    case("underscore-neighbour", "tag: _coalition of the willing"),
    case("digit-neighbour", "2coalition of the willing"),
    case("all-both", "The Chancellor froze fuel duty for another year.", "budget"),
    case("all-one-missing", "The Chancellor will speak at 12.30pm."),
    case("all-across-fields", "Fuel duty frozen again.", "budget", title="Chancellor’s statement"),
    case("glob-feed", "Statement from Downing Street", "westminster", feed="uk-politics"),
    case("glob-feed-other", "Statement from Downing Street", feed="world-live"),
    case("exact-feed", "Downing Street says no", "westminster", feed="politics-live"),
    case("glob-case-sensitive", "Downing Street says no", feed="UK-politics"),
    case("sharp-s", "Road closures on the Straße des 17. Juni", "strasse"),
    case("sharp-s-folded", "Road closures: STRASSE DES 17. JUNI", "strasse"),
    case("sharp-s-compound", "The Straßenbahn is suspended"),
    case("curly-apostrophe-term", "Sinéad O'Brien told MPs", "obrien"),
    case("apostrophe-plural-near-miss", "The O’Briens declined to comment"),
    case("en-dash", "Talks on a cease–fire resumed", "ceasefire"),
    case("em-dash", "A cease—fire, they hope", "ceasefire"),
    case("no-hyphen-near-miss", "A ceasefire, they hope"),
    case("hyphenated-phrase", "Plans for a Coalition-of-the-Willing force", "coalition"),
    case("spaced-hyphen", "Talks on a cease fire resumed", "ceasefire"),
    case("straight-quotes", 'He spoke of "red lines" twice', "red-lines"),
    case("bare-words-need-quotes", "He spoke of red lines twice"),
    case("ligature", "Quoted in the ﬁnancial times today", "ft"),
    case("pound-sign", "A £5bn levy on energy firms", "levy"),
    case("pound-near-miss", "A £5bn levying power"),
    case("pound-bigger-number", "A £15bn levy was floated"),
    case("two-rules", "Downing Street backs the coalition of the willing", "coalition",
         "westminster", feed="uk-politics"),
    case("empty", ""),
]


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_match_table(c: Case) -> None:
    matches = MATCHER.match(c.feed, c.title, c.text)
    assert {m.rule for m in matches} == c.expected
    for m in matches:  # every hit points at text that normalises to its term
        for hit in m.hits:
            source = c.title if hit.field == "title" else c.text
            assert normalize_phrase(source[hit.start:hit.end]) == normalize_phrase(hit.term)


def test_matches_follow_rule_order_and_name_terms_as_written() -> None:
    matches = MATCHER.match("uk-x", "", "Downing Street: boots on the ground, Straße")
    assert [m.rule for m in matches] == ["coalition", "westminster", "strasse"]
    assert matches[0].terms == frozenset({"boots on the ground"})
    assert matches[1].terms == frozenset({"Downing Street"})
    assert matches[2].terms == frozenset({"Straße"})


@pytest.mark.parametrize(("title", "text", "expected"), [
    ("", "Coalition of the willing", [("text", 0, 24)]),
    ("Coalition of the willing: live", "", [("title", 0, 24)]),
    ("", "Die Straße der Koalition\n\nThen the coalition of the\nwilling met",
     [("text", 35, 59)]),
    # An expansion (ß -> ss) before the hit and a collapsed paragraph break after it.
    ("", "Straße: coalition of the willing\n\nMore from Berlin", [("text", 8, 32)]),
    ("", "ﬁnancial times", []),  # not in the coalition rule at all
    ("Straße: coalition of the willing", "boots on the ground ×2",
     [("title", 8, 32), ("text", 0, 19)]),
], ids=["ascii", "title", "sharp-s-then-paragraph", "sharp-s-hit-paragraph", "no-hit",
        "title-before-text"])
def test_hit_offsets(title: str, text: str, expected: list[tuple[str, int, int]]) -> None:
    matches = [m for m in MATCHER.match("world-live", title, text) if m.rule == "coalition"]
    hits = [(h.field, h.start, h.end) for m in matches for h in m.hits]
    assert hits == expected


def test_ligature_offsets_cover_the_ligature() -> None:
    text = "In the ﬁnancial times, “ﬁnancial times” again"
    (match,) = MATCHER.match("world-live", "", text)
    assert [text[h.start:h.end] for h in match.hits] == ["ﬁnancial times", "ﬁnancial times"]


def test_overlapping_phrases_all_hit() -> None:
    matcher = Matcher([rule("r", any=["coalition of the willing", "the willing"])])
    (match,) = matcher.match("f", "", "the coalition of the willing")
    assert [(h.term, h.start, h.end) for h in match.hits] == [
        ("coalition of the willing", 4, 28), ("the willing", 17, 28)]


def test_shared_phrase_across_rules_keeps_each_spelling() -> None:
    matcher = Matcher([rule("a", any=["Boots on the Ground"]),
                       rule("b", any=["boots on the ground"])])
    matches = matcher.match("f", "", "no boots on the ground")
    assert [m.terms for m in matches] == [frozenset({"Boots on the Ground"}),
                                          frozenset({"boots on the ground"})]


def test_no_rules_no_matches() -> None:
    assert Matcher([]).match("f", "coalition of the willing", "") == []


@given(st.text(alphabet="ab ’\n\u00a0ßﬁ£é—", max_size=30),
       st.text(alphabet="ab ’\n\u00a0ßﬁ£é—", max_size=30))
def test_offsets_round_trip(before: str, after: str) -> None:
    text = f"{before} Coalition of the  Willing {after}"
    hits = [h for m in MATCHER.match("f", "", text) for h in m.hits]
    for hit in hits:
        assert normalize_phrase(text[hit.start:hit.end]) == normalize_phrase(hit.term)


# --- alerts_for: event filters and edit semantics ------------------------------------------

def event(text: str, kind: EventKind = "new", previous: str | None = None,
          title: str = "Live: summit", feed: str = "world-live",
          previous_title: str | None = None) -> Event:
    entry = Entry(id="post-1", url="https://news.example.org/live#post-1", title=title, text=text)
    if kind == "updated" and previous is not None and previous_title is None:
        previous_title = title
    return Event(kind=kind, feed=feed, feed_url="https://news.example.org/live", entry=entry,
                 version=entry.version, detected_at=1_700_000_000.0,
                 previous_title=previous_title, previous_text=previous)


BASE = "The PM said a coalition of the willing would meet on Thursday. Costs put at £2bn."


@pytest.mark.parametrize(("ev", "expected"), [
    (event(BASE), ["coalition"]),
    (event(BASE, "updated", previous="The PM will speak on Thursday."), ["coalition"]),
    (event(BASE, "updated", previous=BASE.replace("Thursday", "Thrusday")), []),
    (event(BASE, "updated", previous=BASE + " More soon."), []),
    (event(BASE + " No boots on the ground.", "updated", previous=BASE), ["coalition"]),
    (event(BASE, "updated", previous=BASE + " No boots on the ground."), []),
    (event(BASE, "updated", previous=BASE + " Football is off."), ["coalition"]),
    (event(BASE, "updated", previous="coalition of the willing", title="Live: summit (update)",
           previous_title="Live: summit"), []),
    (event(BASE, "updated"), ["coalition"]),  # no previous text recorded: counts as new
    (event("A snap election is called", "new"), ["snap"]),
    (event("A snap election is called", "updated", previous="No election"), []),
    (event(BASE, feed="uk-politics", title="Downing Street live"), ["coalition", "westminster"]),
], ids=["new", "edit-adds-match", "typo-fix", "appended-text", "new-term", "term-removed",
        "none-removed", "title-edit-only", "no-previous", "new-only-rule", "new-only-rule-update",
        "feed-glob"])
def test_alerts_for(ev: Event, expected: list[str]) -> None:
    assert [m.rule for m in MATCHER.alerts_for(ev)] == expected


def test_alerts_for_previous_title_counts() -> None:
    ev = event("Fuel duty frozen.", "updated", previous="Fuel duty frozen.",
               title="Chancellor’s statement", previous_title="Statement")
    assert [m.rule for m in MATCHER.alerts_for(ev)] == ["budget"]


# --- snippets -------------------------------------------------------------------------------

def hits_for(text: str, term: str = "coalition of the willing") -> list[Hit]:
    matcher = Matcher([rule("r", any=[term])])
    return [h for m in matcher.match("f", "", text) for h in m.hits]


def marked(result: tuple[str, list[tuple[int, int]]]) -> list[str]:
    text, spans = result
    return [text[a:b] for a, b in spans]


def test_snippet_short_text_is_whole() -> None:
    text = "Coalition of the willing meets at noon."
    assert snippet(text, hits_for(text)) == (text, [(0, 24)])


def test_snippet_long_text_cut_at_words() -> None:
    words = " ".join(f"word{i}" for i in range(60))
    text = f"{words} then the coalition of the willing met, {words}"
    out, spans = snippet(text, hits_for(text), width=80)
    assert out.startswith(ELLIPSIS) and out.endswith(ELLIPSIS)
    assert len(out) <= 82
    assert marked((out, spans)) == ["coalition of the willing"]
    for word in out.strip(ELLIPSIS).split():  # whole words only
        assert f" {word.rstrip(',')}" in f" {text}".replace(",", "")


def test_snippet_non_ascii_and_line_breaks() -> None:
    text = "Straße gesperrt.\n\nThe ﬁrst coalition of the\nwilling summit costs £3m."
    out, spans = snippet(text, hits_for(text))
    assert out == "Straße gesperrt. The ﬁrst coalition of the willing summit costs £3m."
    assert marked((out, spans)) == ["coalition of the willing"]


def test_snippet_merges_overlapping_spans() -> None:
    text = "Yes, the coalition of the willing."
    hits = [Hit("a", "text", 9, 33), Hit("b", "text", 22, 33), Hit("c", "text", 5, 12)]
    out, spans = snippet(text, hits)
    assert spans == [(5, 33)]
    assert out[5:33] == "the coalition of the willing"


def test_snippet_hit_at_end_has_no_trailing_ellipsis() -> None:
    text = "x" * 300 + " and finally the coalition of the willing"
    out, spans = snippet(text, hits_for(text), width=60)
    assert out.startswith(ELLIPSIS) and not out.endswith(ELLIPSIS)
    assert marked((out, spans)) == ["coalition of the willing"]


def test_snippet_around_first_given_hit() -> None:
    text = "coalition of the willing " + "filler " * 80 + "coalition of the willing"
    hits = hits_for(text)
    out, _ = snippet(text, [hits[1], hits[0]], width=40)
    assert out.startswith(ELLIPSIS) and not out.endswith(ELLIPSIS)


def test_snippets_group_hits() -> None:
    text = "coalition of the willing " + "filler " * 80 + "coalition of the willing"
    parts = snippets(text, hits_for(text), width=60)
    assert len(parts) == 2
    assert all(marked(p) == ["coalition of the willing"] for p in parts)


def test_rule_match_terms() -> None:
    hits = (Hit("a", "text", 0, 1), Hit("b", "title", 0, 1), Hit("a", "text", 3, 4))
    match = RuleMatch("r", hits)
    assert match.terms == frozenset({"a", "b"})


# --- rule language and options: queries, NEAR, NOT, prefixes, regexes, fields, case, accents ---

QUERY_RULES = [
    rule("willing-prefix", any=["willing*"]),
    rule("coalition-q", query='"coalition of the willing" AND (troops OR soldiers) -football'),
    rule("near", query="(troops OR soldiers) NEAR/3 Ukraine"),
    rule("near-phrase", query='"peace talks" NEAR/0 Geneva'),
    rule("title-only", query="title:ceasefire"),
    rule("author-q", query='author:"Jane Doe" AND sanctions'),
    rule("fields-text", any=["embargo"], fields=["text"]),
    rule("fields-author", any=["reuters"], fields=["author"]),
    rule("regex", query="/zelensk(y|i)y?/"),
    rule("regex-digits", query=r"/\b\d{2,3} (drones|missiles)\b/ AND launched"),
    rule("cased", any=["US", "May"], case_sensitive=True),
    rule("cased-prefix", any=["NATO*"], case_sensitive=True),
    rule("accents", any=["Zelenskyy", "Pena Nieto"], ignore_diacritics=True),
    rule("accents-strict", any=["Peña Nieto"]),
    rule("or-none", query="(truce OR armistice) NOT (football OR cricket)"),
    rule("and-list-q", all=["budget"], query="Chancellor OR Treasury"),
    rule("stem-phrase", query='"coalition of the will"*'),
]
QUERY_MATCHER = Matcher(QUERY_RULES)

QUERY_CASES = [
    case("prefix-base", "They were willing to help", "willing-prefix"),
    case("prefix-longer", "Their willingness surprised officials", "willing-prefix"),
    case("prefix-no-left-part", "An unwilling partner"),
    case("prefix-title-case", "", "willing-prefix", title="Willingly Done"),
    case("q-all-parts", "The coalition of the willing will send troops.", "coalition-q",
         "willing-prefix", "stem-phrase"),
    case("q-soldiers", "Soldiers for the coalition of the willing", "coalition-q",
         "willing-prefix", "stem-phrase"),
    case("q-missing-and", "The coalition of the willing met.", "willing-prefix", "stem-phrase"),
    case("q-not-veto", "Coalition of the willing troops watched football", "willing-prefix",
         "stem-phrase"),
    case("q-not-veto-title", "coalition of the willing troops", "willing-prefix",
         "stem-phrase", title="Football"),
    case("near-2-between", "Troops sent to Ukraine", "near"),
    case("near-3-between", "Troops were sent to Ukraine", "near"),
    case("near-4-between", "Troops have been sent to Ukraine"),
    case("near-reversed", "Ukraine asked for more soldiers", "near"),
    case("near-across-line-break", "troops\n\nin Ukraine", "near"),
    case("near-across-fields", "in Ukraine", title="Troops"),
    case("near-0-adjacent", "Peace talks Geneva summit", "near-phrase"),
    case("near-0-one-between", "Peace talks in Geneva"),
    case("title-scope-hit", "", "title-only", title="Ceasefire agreed"),
    case("title-scope-text-miss", "A ceasefire was agreed", title="Gaza latest"),
    case("author-scope", "New sanctions on oil", "author-q"),
    case("author-scope-wrong-author", "New sanctions on oil"),
    case("author-scope-in-text-miss", "Jane Doe reports new sanctions"),
    case("fields-text-only", "An embargo on arms", "fields-text"),
    case("fields-text-not-title", "", title="Arms embargo"),
    case("fields-author", "", "fields-author"),
    case("fields-author-not-text", "Reuters reports"),
    case("regex-y", "President Zelenskyy said", "regex", "accents"),
    case("regex-i", "President Zelenskiy said", "regex"),
    case("regex-case-folded", "ZELENSKY SAID", "regex"),
    case("regex-near-miss", "President Zelinsky said"),
    case("regex-and", "Russia launched 120 drones overnight", "regex-digits"),
    case("regex-and-missing", "Russia has 120 drones"),
    case("cased-hit", "The US said", "cased"),
    case("cased-lower-miss", "Tell us more"),
    case("cased-title-case-miss", "Us and them"),
    case("cased-may", "Theresa May spoke", "cased"),
    case("cased-may-verb", "It may rain"),
    case("cased-prefix-hit", "NATO's summit", "cased-prefix"),
    case("cased-prefix-miss", "nato summit"),
    case("accents-plain", "Zelenskyy spoke", "accents", "regex"),
    case("accents-marked", "Zélenskyy spoke", "accents"),  # the regex needs a plain e
    case("accents-marked-phrase", "Enrique Peña Nieto", "accents", "accents-strict"),
    case("accents-strict-miss", "Enrique Pena Nieto", "accents"),
    case("or-none-hit", "A truce was agreed", "or-none"),
    case("or-none-veto", "A truce in the football row"),
    case("lists-and-query", "The Chancellor's budget", "and-list-q"),
    case("lists-and-query-miss", "The budget is out"),
    case("stem-phrase-hit", "The coalition of the willingest", "willing-prefix", "stem-phrase"),
    case("markup-in-query-term", clean_text("a <b>trea</b>ty and a <i>truce</i>"), "or-none"),
    case("hyphen-in-query-term", "A cease-fire and a truce", "or-none"),
]


@pytest.mark.parametrize("c", QUERY_CASES, ids=[c.id for c in QUERY_CASES])
def test_query_table(c: Case) -> None:
    author = CASE_AUTHORS.get(c.id)
    matches = QUERY_MATCHER.match(c.feed, c.title, c.text, author)
    assert {m.rule for m in matches} == c.expected
    for m in matches:  # every hit lies inside its field's text
        for hit in m.hits:
            source = {"title": c.title, "text": c.text, "author": author or ""}[hit.field]
            assert 0 <= hit.start < hit.end <= len(source)


CASE_AUTHORS = {"author-scope": "Jane Doe", "author-scope-wrong-author": "John Doe",
                "fields-author": "Reuters staff"}


def test_table_size() -> None:
    assert len(CASES) + len(QUERY_CASES) >= 60


def test_query_hits_are_labelled_and_placed() -> None:
    text = "Zélenskyy: 120 drones launched; NATO's willingness"
    matcher = Matcher([rule("r", query="/\\d+ drones/ AND launched AND willing* AND NATO",
                            ignore_diacritics=True)])
    (match,) = matcher.match("f", "", text)
    assert [(h.term, text[h.start:h.end]) for h in match.hits] == [
        ("/\\d+ drones/", "120 drones"), ("launched", "launched"), ("NATO", "NATO"),
        ("willing*", "willing")]


def test_accent_offsets_map_to_clean_text() -> None:
    text = "Straße: Zélenskyy and  Zelenskyy"
    (match,) = Matcher([rule("r", any=["zelenskyy"], ignore_diacritics=True)]).match("f", "", text)
    assert [text[h.start:h.end] for h in match.hits] == ["Zélenskyy", "Zelenskyy"]


def test_case_sensitive_offsets_after_expansion() -> None:
    text = "Straße: the US said"
    (match,) = Matcher([rule("r", any=["US"], case_sensitive=True)]).match("f", "", text)
    assert [text[h.start:h.end] for h in match.hits] == ["US"]


def test_not_only_terms_are_not_highlighted() -> None:
    matcher = Matcher([rule("r", query="truce -football")])
    assert matcher.match("f", "", "truce, football") == []
    (match,) = matcher.match("f", "", "truce agreed")
    assert match.terms == frozenset({"truce"})


def test_pathological_regex_is_bounded() -> None:
    matcher = Matcher([rule("slow", query=r"/(\w+\s?)+$/"),
                       rule("fine", any=["drones"])])
    text = "drones " + "a" * 20_000 + "!"
    started = time.monotonic()
    matches = matcher.match("f", "", text)
    assert time.monotonic() - started < 2.0
    assert [m.rule for m in matches] == ["fine"]  # the timeout counts as no match


def test_alerts_for_sees_author() -> None:
    matcher = Matcher([rule("a", query='author:"Jane Doe" sanctions')])
    entry = Entry(id="1", url=None, title="", text="sanctions", author="Jane Doe")
    ev = Event(kind="new", feed="f", feed_url="https://x.org", entry=entry,
               version=entry.version, detected_at=0.0)
    assert [m.rule for m in matcher.alerts_for(ev)] == ["a"]
