"""Live-blog pages (LiveBlogPosting JSON-LD) and HTML pages read with CSS selectors.

Golden files: tests/data/<name>.html + <name>.expected.json (entries), <name>.page.json (page
info of a live blog), <name>.selectors.json (the `selectors` of a `kind: html` feed).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.config.models import SelectorSettings
from monitor.core.errors import ParseError
from monitor.core.textnorm import content_hash
from monitor.sources import SOURCES, PageInfo, jsonld, parse_document
from monitor.sources.jsonld import load_json_ld, types_of

LIVE = "https://www.example.co.uk/news/live/"
HTML = "text/html; charset=utf-8"

# file stem, kind detected by auto
GOLDEN = [
    ("liveblog_list", "liveblog"),      # a list of liveBlogUpdate; authors as list/object/string
    ("liveblog_single", "liveblog"),    # ONE liveBlogUpdate object; @type list; top-level array
    ("liveblog_graph", "liveblog"),     # inside @graph
    ("liveblog_blogpost", "liveblog"),  # blogPost / blogPosts; url ids, blank node, no id
    ("liveblog_anchors", "liveblog"),   # relative "#update-123" ids, page URL with tracking
    ("liveblog_broken", "liveblog"),    # CDATA, comments, trailing commas, &quot;, raw controls
    ("liveblog_ended", "liveblog"),     # coverageEndTime
    ("article", "html"),                # <article> markup, read with article.selectors.json
]


def page_url(stem: str) -> str:
    # The anchors page is fetched with tracking parameters: ids must not carry them.
    return LIVE + stem + ("?at_medium=RSS&at_campaign=rss" if stem == "liveblog_anchors" else "")


def load(data_dir: Path, stem: str, suffix: str) -> Any:
    path = data_dir / f"{stem}.{suffix}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def selectors_of(data_dir: Path, stem: str) -> SelectorSettings | None:
    spec = load(data_dir, stem, "selectors")
    return SelectorSettings.model_validate(spec) if spec is not None else None


def page_dict(page: PageInfo | None) -> dict[str, str | None] | None:
    if page is None:
        return None
    return {key: (value.isoformat() if value else None) for key, value in (
        ("coverage_start", page.coverage_start), ("coverage_end", page.coverage_end),
        ("modified", page.modified))}


def parse(data_dir: Path, stem: str, kind: str = "auto", content_type: str | None = HTML,
          name: str | None = None) -> Any:
    body = (data_dir / f"{name or stem}.html").read_bytes()
    return parse_document(kind, body, page_url(stem), content_type, selectors_of(data_dir, stem))


@pytest.mark.parametrize(("stem", "kind"), GOLDEN)
def test_golden_auto(data_dir: Path, stem: str, kind: str) -> None:
    doc = parse(data_dir, stem)
    assert doc.kind == kind
    assert [e.to_dict() for e in doc.entries] == load(data_dir, stem, "expected")
    assert page_dict(doc.page) == load(data_dir, stem, "page")


@pytest.mark.parametrize(("stem", "kind"), GOLDEN)
def test_golden_explicit_kind(data_dir: Path, stem: str, kind: str) -> None:
    doc = parse(data_dir, stem, kind=kind, content_type=None)
    assert doc.kind == kind
    assert [e.to_dict() for e in doc.entries] == load(data_dir, stem, "expected")


@pytest.mark.parametrize(("stem", "kind"), GOLDEN)
def test_golden_entries_are_complete(data_dir: Path, stem: str, kind: str) -> None:
    doc = parse(data_dir, stem)
    assert doc.entries
    assert len({e.id for e in doc.entries}) == len(doc.entries)
    for entry in doc.entries:
        assert entry.title or entry.text
        assert entry.published is not None and entry.published.utcoffset() is not None


def test_page_info_of_an_ended_live_blog(data_dir: Path) -> None:
    page = parse(data_dir, "liveblog_ended").page
    assert page is not None and page.coverage_end is not None and page.coverage_start is not None
    assert page.coverage_end > page.coverage_start
    assert parse(data_dir, "liveblog_list").page.coverage_end is None


def test_feeds_have_no_page_info(data_dir: Path) -> None:
    body = (data_dir / "rss2.xml").read_bytes()
    assert parse_document("auto", body, LIVE, "application/rss+xml").page is None


@pytest.mark.parametrize("stem", ["liveblog_graph", "article"])
def test_markup_and_whitespace_changes_keep_ids_and_versions(data_dir: Path, stem: str) -> None:
    before = parse(data_dir, stem).entries
    after = parse(data_dir, stem, name=f"{stem}_reflowed").entries
    assert (data_dir / f"{stem}.html").read_bytes() != (data_dir / f"{stem}_reflowed.html"
                                                        ).read_bytes()
    assert [(e.id, e.version) for e in after] == [(e.id, e.version) for e in before]


# --- auto detection -----------------------------------------------------------------------------

def test_auto_prefers_live_blog_json_ld_over_selectors(data_dir: Path) -> None:
    body = (data_dir / "liveblog_list.html").read_bytes()
    selectors = SelectorSettings(item="main", title="h1")
    assert parse_document("auto", body, LIVE, HTML, selectors).kind == "liveblog"


def test_auto_uses_selectors_for_a_page_without_live_blog(data_dir: Path) -> None:
    body = (data_dir / "plain_page.html").read_bytes()
    doc = parse_document("auto", body, LIVE, None, SelectorSettings(item="article"))
    assert doc.kind == "html"
    assert [e.text for e in doc.entries] == ["Latest updates – refresh for more"]


@pytest.mark.parametrize("content_type", [HTML, None])
def test_auto_explains_how_to_read_a_plain_page(data_dir: Path, content_type: str | None) -> None:
    body = (data_dir / "plain_page.html").read_bytes()
    with pytest.raises(ParseError) as info:
        parse_document("auto", body, LIVE, content_type)
    message = str(info.value)
    assert "LiveBlogPosting" in message and "kind: html" in message
    assert "selectors" in message and "item" in message


def test_explicit_liveblog_without_json_ld_is_a_parse_error(data_dir: Path) -> None:
    with pytest.raises(ParseError, match=r"no schema\.org LiveBlogPosting"):
        parse_document("liveblog", (data_dir / "plain_page.html").read_bytes(), LIVE, HTML)


def test_explicit_html_without_selectors_is_a_parse_error(data_dir: Path) -> None:
    with pytest.raises(ParseError, match="needs `selectors`"):
        parse_document("html", (data_dir / "article.html").read_bytes(), LIVE, HTML)


def test_live_blog_without_updates_yet() -> None:
    body = (b'<html><head><script type="application/ld+json">{"@type": "LiveBlogPosting", '
            b'"headline": "Coverage starts at 9am", "coverageStartTime": "2026-03-04T09:00:00Z"}'
            b"</script></head></html>")
    doc = parse_document("auto", body, LIVE, None)
    assert (doc.kind, doc.entries) == ("liveblog", [])
    assert doc.page is not None and doc.page.coverage_start is not None


def test_page_starting_without_doctype_is_html() -> None:
    body = b'<head><script type="application/ld+json">{"@type":"LiveBlogPosting"}</script></head>'
    assert parse_document("auto", body, LIVE, "application/octet-stream").kind == "liveblog"


def test_registry_has_every_kind() -> None:
    assert set(SOURCES) == {"rss", "atom", "jsonfeed", "liveblog", "html"}
    for kind, source in SOURCES.items():
        assert source.kind == kind


# --- identity ------------------------------------------------------------------------------------

def _live(*updates: dict[str, Any]) -> bytes:
    blog = {"@context": "https://schema.org", "@type": "LiveBlogPosting",
            "liveBlogUpdate": list(updates)}
    return f'<html><script type="application/ld+json">{json.dumps(blog)}</script></html>'.encode()


def test_an_id_shared_by_different_updates_is_not_identity() -> None:
    # Some CMSs give every update the page URL, or one id to several updates.
    page = LIVE + "budget"
    body = _live({"@id": page, "headline": "One", "articleBody": "first"},
                 {"@id": page + "?utm_source=x", "headline": "Two", "articleBody": "second"},
                 {"@id": "#same", "headline": "Three", "articleBody": "third"},
                 {"@id": "#same", "headline": "Four", "articleBody": "fourth"},
                 {"@id": "#p5", "headline": "Five", "articleBody": "fifth"},
                 {"@id": "#p5", "headline": "Five", "articleBody": "fifth"})
    entries = parse_document("liveblog", body, page, None).entries
    assert [e.id for e in entries] == [
        "h:" + content_hash("One", "first"), "h:" + content_hash("Two", "second"),
        "h:" + content_hash("Three", "third"), "h:" + content_hash("Four", "fourth"),
        page + "#p5"]


def test_typed_prefixes_and_unusual_shapes() -> None:
    assert types_of({"@type": ["schema:LiveBlogPosting", "http://schema.org/NewsArticle"]}) == {
        "LiveBlogPosting", "NewsArticle"}
    body = (b'<html><script type="application/ld+json">{"@type": "WebPage", "mainEntity": '
            b'{"@type": "https://schema.org/LiveBlogPosting", "liveBlogUpdate": {"@id": "#u1", '
            b'"headline": ["Part one", "part two"], "author": [{"name": "A"}, "B", {"name": "A"}]'
            b"}}}</script></html>")
    (entry,) = parse_document("liveblog", body, LIVE, None).entries
    assert (entry.id, entry.title, entry.author) == (LIVE + "#u1", "Part one part two", "A, B")


# --- JSON-LD repair -----------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "value"), [
    ('{"a": [1, 2,], "b": {"c": 3,},}', {"a": [1, 2], "b": {"c": 3}}),
    ('<!--\n{"a": "x"}\n-->', {"a": "x"}),
    ('/*<![CDATA[*/{"a": "x // not a comment"}/*]]>*/', {"a": "x // not a comment"}),
    ('{"a": 1 // a comment\n, /* another */ "b": "/*kept*/"}', {"a": 1, "b": "/*kept*/"}),
    ('{&quot;a&quot;: &quot;fish &amp;amp; chips&quot;}', {"a": "fish &amp; chips"}),
    ('{"a": "line one\nline two\ttabbed"}', {"a": "line one\nline two\ttabbed"}),
    ('{"a": "it\\\'s"}', {"a": "it's"}),
    ('{"a": "trailing comma inside a string,]"}', {"a": "trailing comma inside a string,]"}),
])
def test_json_ld_repairs(text: str, value: Any) -> None:
    assert load_json_ld(text) == [value]


def test_json_ld_several_values_and_hopeless_blocks() -> None:
    assert load_json_ld('{"a": 1}\n{"b": 2};') == [{"a": 1}, {"b": 2}]
    assert load_json_ld('{"a": ') == []
    assert load_json_ld("not json at all") == []
    assert load_json_ld("[" * 100_000) == []


def test_a_hopeless_block_does_not_hide_the_others(data_dir: Path) -> None:
    # liveblog_broken.html has a block cut off mid-string between two repairable ones.
    assert len(parse(data_dir, "liveblog_broken").entries) == 2


# --- html selectors -----------------------------------------------------------------------------

def test_html_selector_details() -> None:
    body = (b"<html><body>"
            b'<div class="post" data-id="p1"><div class="t">Title <i>one</i></div>'
            b'<p>Body one</p><a href="/x?utm_source=y#p1">link</a> '
            b"<span class=when>2026-03-04T10:00:00+01:00</span></div>"
            b'<div class="post"><p>Body two, no title</p><a class="l" href="two">more</a></div>'
            b'<div class="post"><p>  </p></div>'
            b"</body></html>")
    selectors = SelectorSettings(item="div.post", id="@data-id", title="div", link="a",
                                 time=".when")
    first, second = parse_document("html", body, "https://example.org/live/", None,
                                   selectors).entries
    assert (first.id, first.title, first.url) == ("p1", "Title one", "https://example.org/x?"
                                                  "utm_source=y#p1")
    assert first.text == "Title one\n\nBody one\nlink 2026-03-04T10:00:00+01:00"  # whole item
    assert first.published is not None and first.published.isoformat() == (
        "2026-03-04T09:00:00+00:00")
    assert (second.id, second.title) == ("https://example.org/live/two", "")


def test_html_charset_from_meta() -> None:
    body = ('<html><head><meta charset="windows-1252"></head><body>'
            "<article>Tickets cost £5 – “cheap”</article></body></html>").encode("cp1252")
    (entry,) = parse_document("html", body, LIVE, "text/html",
                              SelectorSettings(item="article")).entries
    assert entry.text == "Tickets cost £5 – “cheap”"


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=300)
@given(st.lists(_JSON_VALUES, min_size=1, max_size=3),
       st.sampled_from([" ", ";", "\n", " ; "]), st.sampled_from(["", " ", ";", "NaN"]))
def test_json_ld_decoding_agrees_with_the_standard_library(
        values: list[object], separator: str, tail: str) -> None:
    text = separator.join(json.dumps(v) for v in values) + tail
    assert jsonld._decode_all(text) == jsonld._decode_each(text)
