"""Entry versions reused from a feed's previous parse (`monitor.core.versionmemo`)."""

from __future__ import annotations

from pathlib import Path

from monitor.core.textnorm import content_hash
from monitor.core.versionmemo import remembering, version_of
from monitor.sources import parse_document

PAGE = Path(__file__).parents[1] / "data" / "pages" / "jsonld_noids.html"
URL = "https://news.example.org/live/page"


def test_a_reparse_reuses_versions_and_agrees_with_a_cold_one() -> None:
    body = PAGE.read_bytes()
    first = parse_document("auto", body, URL, "text/html")
    assert first.versions and all(isinstance(k, int) for k in first.versions)
    assert set(first.versions.values()) >= {e.version for e in first.entries}
    edited = body.replace(b"nessuna dichiarazione", b"breve dichiarazione")
    warm = parse_document("auto", edited, URL, "text/html", versions=first.versions)
    cold = parse_document("auto", edited, URL, "text/html")
    assert [(e.id, e.version) for e in warm.entries] == [(e.id, e.version) for e in cold.entries]
    assert warm.entries[1].version != first.entries[1].version  # the edit is seen


def test_versions_come_from_the_memo_only_inside_it() -> None:
    key = hash(("Title", "Text"))
    with remembering({key: "planted"}) as fresh:
        assert version_of("Title", "Text") == "planted"  # looked up, not recomputed
        assert version_of("Other", "Text") == content_hash("Other", "Text")
    assert fresh == {key: "planted", hash(("Other", "Text")): content_hash("Other", "Text")}
    assert version_of("Title", "Text") == content_hash("Title", "Text")
