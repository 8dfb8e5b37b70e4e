"""Property tests (hypothesis): normalisation is idempotent and unchanged by the fast paths;
markup or whitespace inserted into a text never changes which rules match."""

from __future__ import annotations

import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.config.models import RuleSettings
from monitor.core.matchform import MATCH_TABLE, match_form_lazy
from monitor.core.textnorm import clean_text, content_hash, match_form, normalize_phrase
from workers.match.matcher import Matcher

TRICKY = "ab Z ’'\"“”\n\t\u00a0-–—ßﬁİé\u0301£_1.,"


def reference_match_form(clean: str) -> tuple[str, list[int] | None]:
    """The original implementation (str.translate, eager offsets): the fast paths must agree."""
    translated = clean.translate(MATCH_TABLE)
    folded = translated.lower() if translated.isascii() else \
        unicodedata.normalize("NFKC", translated).casefold()
    out: list[str] = []
    offsets: list[int] = []
    prev_space = False
    one_to_one = len(folded) == len(translated)
    chars = enumerate(folded) if one_to_one else (
        (i, piece) for i, c in enumerate(translated)
        for piece in unicodedata.normalize("NFKC", c).casefold())
    for index, char in chars:
        if char == " " and prev_space:
            continue
        prev_space = char == " "
        out.append(char)
        offsets.append(index)
    form = "".join(out)
    if one_to_one and offsets == list(range(len(folded))):
        return form, None
    return form, offsets


@given(st.text(alphabet=TRICKY, max_size=40) | st.text(max_size=40))
def test_match_form_agrees_with_reference(text: str) -> None:
    assert match_form(text) == reference_match_form(text)
    form, lazy = match_form_lazy(text)
    assert (form, list(lazy) if lazy is not None else None) == reference_match_form(text)


# Without combining marks: "ß\u0301" folds to "ss\u0301", which NFKC recomposes to "sś" on a
# second pass (NFKC then casefold is not closed). Fixing that would change content hashes of
# stored entries, so it is left as is: NFC clean text rarely has a mark after such a letter.
@given(st.text(alphabet=TRICKY.replace("\u0301", ""), max_size=40))
def test_normalisation_is_idempotent(text: str) -> None:
    form = match_form(text)[0]
    assert match_form(form)[0] == form
    phrase = normalize_phrase(text)
    assert normalize_phrase(phrase) == phrase
    assert content_hash(form) == content_hash(text)


WORDS = ["coalition", "of", "the", "willing", "unwilling", "boots", "on", "ground", "Straße",
         "truce", "football", "O’Brien", "cease-fire", "Troops", "Ukraine", "willingness"]
RULES = [
    RuleSettings(name="a", any=["coalition of the willing", "boots on the ground"],
                 none=["football"], channels=["d"]),
    RuleSettings(name="b", query="(truce OR cease-fire) NOT football", channels=["d"]),
    RuleSettings(name="c", query="troops NEAR/2 Ukraine OR willing*", channels=["d"]),
    RuleSettings(name="d", any=["O'Brien", "strasse"], channels=["d"]),
]
MATCHER = Matcher(RULES)
INLINE = ["<b>", "</b>", "<em>", "</em>", '<a href="x">', "</a>", "<span class='k'>"]
# Comments count as a space (clean_text, shared with content hashes), so only at gaps.
GAPS = [" ", "  ", "\n", "\n\n", "\t", "&nbsp;", "<br>", "<p>", "</p><p>", " <div> ",
        "<!-- c -->"]


def outcome(text: str) -> list[tuple[str, frozenset[str]]]:
    return [(m.rule, m.terms) for m in MATCHER.match("f", "", clean_text(text))]


@settings(max_examples=300)
@given(st.lists(st.sampled_from(WORDS), min_size=1, max_size=12), st.data())
def test_markup_and_whitespace_never_change_a_match(words: list[str], data: st.DataObject) -> None:
    plain = " ".join(words)
    pieces: list[str] = []
    for index, word in enumerate(words):
        if index:  # a word gap: any whitespace, a line or block break, or inline markup
            pieces.append(data.draw(st.sampled_from(GAPS)))
        cut = data.draw(st.integers(0, len(word)))  # inline markup may split a word
        tag = data.draw(st.sampled_from(["", *INLINE]))
        pieces.append(word[:cut] + tag + word[cut:])
    assert outcome("".join(pieces)) == outcome(plain)
