"""monitor.core.quickform: the quick match form (bytes, lazy offsets) equals `match_form` exactly,
and `content_hash` (monitor.core.textnorm: stored entry versions) keeps its value."""

from __future__ import annotations

import hashlib
import html
import random
import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core.cleantext import clean_text
from monitor.core.matchform import match_form
from monitor.core.quickform import SIMPLE_FORMS, quick_match_form
from monitor.core.textnorm import content_hash

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


def reference_hash(*parts: str) -> str:
    """`content_hash` as first written (entry versions stored in Redis were made by it)."""
    digest = hashlib.blake2b(digest_size=12)
    for part in parts:
        form = match_form(clean_text(part))[0]
        digest.update("".join(form.split()).encode())
        digest.update(b"\x1f")
    return digest.hexdigest()


@settings(max_examples=300)
@given(st.text(alphabet=TRICKY + "<p>&amp;", max_size=60), st.text(max_size=30))
def test_content_hash_keeps_its_value(title: str, text: str) -> None:
    assert content_hash(title, text) == reference_hash(title, text)


@pytest.mark.parametrize("text", FIXTURES)
def test_content_hash_keeps_its_value_on_live_blog_text(text: str) -> None:
    assert content_hash(text) == reference_hash(text)
    assert content_hash(text[:30], text) == reference_hash(text[:30], text)
    # values computed by the first implementation: a change to both would still fail here
    assert content_hash("Coalition of the  <b>willing</b>", "Heavy\u00a0lifting – “now”") == \
        "a9364e35222864e9f1d215d3"
    assert content_hash("Jabed Ahmed2 March 2025 17:34\n\nReal progress’ was made… £5bn",
                        "Straße ﬁnance — Élysée") == "250a884e441c425edc819c20"


def reference_clean(value: str) -> str:
    """`clean_text` as first written (entry versions hash its output)."""
    if "<" in value:
        value = re.sub(r"<(script|style|noscript|template)\b.*?</\1\s*>|<!--.*?-->", " ", value,
                       flags=re.IGNORECASE | re.DOTALL)
        value = re.sub(r"<\s*/?\s*(?:br|p|div|li|ul|ol|h[1-6]|blockquote|tr|table|section|"
                       r"article|figure|figcaption|pre|hr)\b[^>]*>", "\n", value,
                       flags=re.IGNORECASE)
        value = re.sub(r"<[!?/]?[A-Za-z][^>]*>", "", value)
    if "&" in value:
        value = html.unescape(value)
    value = re.sub("[\u00ad\u200b\u200c\u200d\u2060\ufeff]", "", value)
    value = unicodedata.normalize("NFC", value)
    value = value.replace("\r\n", "\n").replace("\r", "\n").replace("\u00a0", " ")
    value = re.sub(r"[^\S\n]+", " ", value)
    value = re.sub(r"\s*\n\s*(?:\n\s*)+", "\n\n", value)
    return "\n".join(line.strip() for line in value.strip().split("\n"))


#: Whitespace of every kind, line breaks, markup and entities.
SPACY = " \n\r\t\x0b\x0c\x1c\x1f\x85\u00a0\u2028\u2029\u2009\u3000\u200bab<p>&nbsp;<br/>"


@settings(max_examples=500)
@given(st.text(alphabet=SPACY + TRICKY, max_size=60))
def test_clean_text_keeps_its_output(text: str) -> None:
    assert clean_text(text) == reference_clean(text)


@settings(max_examples=200)
@given(st.text(max_size=60))
def test_clean_text_keeps_its_output_on_any_text(text: str) -> None:
    assert clean_text(text) == reference_clean(text)


@pytest.mark.parametrize("text", FIXTURES)
def test_clean_text_keeps_its_output_on_live_blog_text(text: str) -> None:
    for variant in (text, f"<p>{text}</p>\n\n <p> {text}</p>", text.replace(" ", "  \n ")):
        assert clean_text(variant) == reference_clean(variant)


#: Entities written in full, cut short, nested in `&amp;` and next to each other.
ENTITIES = ["&quot;", "&amp;", "&#39;", "&#039;", "&#x27;", "&#X27;", "&apos;", "&lt;", "&gt;",
            "&nbsp;", "&", "amp;", "quot", "&quot", "&amp", ";", "#39;", "&eacute;", "x", " ",
            "<b>"]


@settings(max_examples=1000)
@given(st.lists(st.sampled_from(ENTITIES), max_size=12).map("".join))
def test_clean_text_keeps_its_output_on_entities(text: str) -> None:
    assert clean_text(text) == reference_clean(text)


#: Markup pieces the linear scans of `clean_text` treat specially: blocks of each kind, opened
#: and closed in any case (`ſ`, `İ` and `ı` match `s`/`i` case-insensitively, not all alike),
#: unclosed; tags without their `>`; spaces and `/` inside tags.
MARKUP = ["<script", "<SCRİPT", "<ſcript", "<scrıpt", "<style", "<noScript", "<template",
          "</script", "</SCRIPT", "</ſcript", "</scrİpt", "</style", "</noscript", "</template",
          "<!--", "-->", "--", "<!", ">", "/>", "<", "</", " ", "\n", "/", "<p", "<BR", "<a",
          "x", "&amp;", "<?", "<div", "< / p>"]


@settings(max_examples=1000)
@given(st.lists(st.sampled_from(MARKUP), max_size=12).map("".join))
def test_clean_text_keeps_its_output_on_markup(text: str) -> None:
    assert clean_text(text) == reference_clean(text)


@pytest.mark.parametrize("text", [
    "<script>a<script>b</script>c<script>d", "<!-- a <!-- b --> c <!-- d", "<style>x</STYLE >y",
    "<script>x</ſcript>y</script>z", "<scrİpt>x</script>y", "<ſcript>x</ſcript><ſcript>y",
    "<a<a<a <b>x</b> <a<a", "<p<br/>x", "<  /  p  >x<  p", "<\n/\np\n>x", "a > b < c",
    "<script>" * 50 + "x" + "</script>" * 2, "<!--" * 50 + "-->" + "<!--" * 3,
])
def test_clean_text_keeps_its_output_on_unclosed_markup(text: str) -> None:
    assert clean_text(text) == reference_clean(text)
