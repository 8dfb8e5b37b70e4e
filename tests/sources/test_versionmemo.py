"""Entry versions reused from a feed's previous parse (`monitor.core.versionmemo`)."""

from __future__ import annotations

from pathlib import Path

from monitor.core.models import Entry
from monitor.core.textnorm import content_hash
from monitor.core.versionmemo import remembering, version_of
from monitor.sources import liveblog, parse_document
from monitor.sources.liveblog import forget_drafts

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


def test_updates_read_lately_are_reused_and_edits_still_seen() -> None:
    body = PAGE.read_bytes()
    forget_drafts()
    first = parse_document("auto", body, URL, "text/html")
    again = parse_document("auto", body, URL, "text/html")  # every update from the memo
    assert [e.to_dict() for e in again.entries] == [e.to_dict() for e in first.entries]
    assert again.versions == first.versions
    edited = body.replace(b"nessuna dichiarazione", b"breve dichiarazione")
    warm = parse_document("auto", edited, URL, "text/html")
    forget_drafts()
    cold = parse_document("auto", edited, URL, "text/html")
    assert [e.to_dict() for e in warm.entries] == [e.to_dict() for e in cold.entries]
    assert [e.version for e in warm.entries] == [e.version for e in cold.entries]
    assert warm.entries[1].text != first.entries[1].text  # the edit is seen
    elsewhere = parse_document("auto", body, "https://other.example.org/live/page", "text/html")
    assert elsewhere.entries[0].url != first.entries[0].url  # links resolve per page


def test_versions_come_from_the_memo_only_inside_it() -> None:
    key = hash(("Title", "Text"))
    with remembering({key: "planted"}) as fresh:
        assert version_of("Title", "Text") == "planted"  # looked up, not recomputed
        assert version_of("Other", "Text") == content_hash("Other", "Text")
    assert fresh == {key: "planted", hash(("Other", "Text")): content_hash("Other", "Text")}
    assert version_of("Title", "Text") == content_hash("Title", "Text")


def _rss(items: list[tuple[str, str, str]]) -> bytes:
    body = "".join(f"<item><guid isPermaLink=\"false\">{g}</guid><title>{t}</title>"
                   f"<link>https://news.example.org/live#{g}</link>"
                   f"<description>&lt;p&gt;{d}&lt;/p&gt;</description></item>"
                   for g, t, d in items)
    return (f"<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>Live</title>"
            f"<link>https://news.example.org/live</link>{body}</channel></rss>").encode()


def test_entries_unchanged_against_the_fingerprints_come_without_their_text() -> None:
    """The poller's case: raw content remembered from the last parse, under an id the
    fingerprints hold at that version, is not cleaned again; anything else is read whole."""
    items = [("u1", "Doors open", "Delegates arrive at the summit."),
             ("u2", "First speech", "The chair opens the session.")]
    first = parse_document("auto", _rss(items), URL, "application/rss+xml")
    known = {e.id: e.version for e in first.entries}
    later = [("u3", "Vote", "A vote is called on the motion."),
             ("u2", "First speech", "The chair opens the session early."),  # an edit
             *items[:1]]
    body = _rss(later)
    cold = parse_document("auto", body, URL, "application/rss+xml")
    warm = parse_document("auto", body, URL, "application/rss+xml", versions=first.versions,
                          known=known)
    assert [(e.id, e.version) for e in warm.entries] == [(e.id, e.version) for e in cold.entries]
    texts = {e.id: e.text for e in warm.entries}
    assert texts["u1"] == "" and warm.entries[2].title == ""  # unchanged: not made
    assert texts["u3"] == "A vote is called on the motion."
    assert texts["u2"] == "The chair opens the session early."
    # Without the fingerprints (any tool, or a feed seen for the first time) all is read.
    tool = parse_document("auto", body, URL, "application/rss+xml", versions=first.versions)
    assert [e.to_dict() for e in tool.entries] == [e.to_dict() for e in cold.entries]
    # Fingerprints holding another version of u1 (it was edited since): read whole.
    stale = parse_document("auto", body, URL, "application/rss+xml", versions=first.versions,
                           known={**known, "u1": "an-older-version"})
    assert stale.entries[2].text == "Delegates arrive at the summit."


def test_the_memo_of_updates_stays_within_its_bound() -> None:
    memo = liveblog._DraftMemo()
    text = "x" * 1000
    for n in range(5000):
        entry = Entry(id="", url=None, title=f"t{n}", text=text)
        memo.put(n, liveblog._Draft(entry, "", entry.version))
    assert memo._chars <= memo.MAX_CHARS
    assert memo.get(4999) is not None and memo.get(0) is None  # the oldest went first
    huge = Entry(id="", url=None, title="", text="y" * (memo.MAX_DRAFT_CHARS + 1))
    memo.put(-1, liveblog._Draft(huge, "", "v"))
    assert memo.get(-1) is None
