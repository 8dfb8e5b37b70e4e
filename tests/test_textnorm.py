"""monitor.textnorm: the quick match form (bytes, lazy offsets) equals `match_form` exactly."""

from __future__ import annotations

import random
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.textnorm import SIMPLE_FORMS, clean_text, match_form, quick_match_form

#: Characters the normaliser treats specially, plus simple and non-simple non-ASCII ones.
TRICKY = ("ab Z_1.,’'\"“”«»\n\t\r\u00a0\u2009\u202f-–—\u2212…½™ßÆŒéÉ£€čŁĳµ\u0301ﬁİ\0  ")
#: Live-blog shaped fragments (bylines glued to times, £ figures, quotes, dashes, ellipses).
FIXTURES = [
    "Sir Keir Starmer has said Europe will need to do the “heavy lifting”.",
    "Jabed Ahmed2 March 2025 17:34\n\nReal progress’ was made… but the PM can’t name them",
    "Watch | Starmer announces £1.6bn deal – “particularly around the coalition of the willing”",
    "10.42am\u00a0GMT\n\nThe Élysée said Zelenskyy’s team – and Łukasz Kovačević – agreed",
    "Straße ﬁnance — “ÆON” ½ price™ … µ-law\u202fkm",
]


def expected_span(form: str, offsets: list[int] | None, start: int, end: int) -> tuple[int, int]:
    if offsets is None:
        return start, end
    return offsets[start], offsets[end - 1] + 1


def check(text: str) -> None:
    """The quick form (when it applies) decodes to `match_form` and maps every span alike."""
    quick = quick_match_form(text)
    if quick is None:
        return
    form, offsets = match_form(text)
    assert quick.form.decode(quick.encoding) == form
    kept = quick_match_form(text, keep_ellipsis=True)
    assert kept is not None
    assert kept.form.decode(kept.encoding).replace("…", "...") == form
    # byte offset of each char boundary in the encoded form
    bounds = [0]
    for char in form:
        bounds.append(bounds[-1] + len(char.encode(quick.encoding)))
    for start in range(len(form)):
        for end in range(start + 1, min(len(form), start + 12) + 1):
            assert quick.span(bounds[start], bounds[end]) == \
                expected_span(form, offsets, start, end), (text, start, end)


@settings(max_examples=500)
@given(st.text(alphabet=TRICKY, max_size=40))
def test_quick_form_agrees_with_match_form(text: str) -> None:
    check(text)


@settings(max_examples=200)
@given(st.text(max_size=40))
def test_quick_form_agrees_on_any_text(text: str) -> None:
    check(text)


@pytest.mark.parametrize("text", FIXTURES)
def test_quick_form_agrees_on_live_blog_text(text: str) -> None:
    check(text)
    check(clean_text(text))


def test_quick_form_covers_live_blog_text() -> None:
    """cp1252 text takes the one-byte path, other Latin text UTF-8, anything else neither."""
    encodings = [getattr(quick_match_form(t), "encoding", None) for t in FIXTURES]
    assert encodings == ["cp1252", "cp1252", "cp1252", "utf-8", None]


def test_quick_form_on_random_long_text() -> None:
    rng = random.Random(5)
    for _ in range(50):
        check("".join(rng.choice(TRICKY) for _ in range(300)))


def test_simple_chars_fold_alone() -> None:
    """What makes the per-char forms exact: NFKC of a simple char never reaches across an ASCII
    or simple neighbour (so the whole-text fold is the concatenation of the per-char folds)."""
    ascii_ = [chr(c) for c in range(128)]
    simple = list(SIMPLE_FORMS)
    for char in simple:
        alone = unicodedata.normalize("NFKC", char)
        for other in ascii_:
            assert unicodedata.normalize("NFKC", char + other) == alone + other
            assert unicodedata.normalize("NFKC", other + char) == other + alone
    nfkc = {c: unicodedata.normalize("NFKC", c) for c in simple}
    for first in simple:
        for second in simple:
            assert unicodedata.normalize("NFKC", first + second) == nfkc[first] + nfkc[second]
