"""The pure diff step."""

from __future__ import annotations

from datetime import UTC, datetime

from monitor.core.models import Entry
from monitor.poll.diff import diff_entries


def entry(i: str, text: str = "body", minute: int | None = None) -> Entry:
    when = datetime(2026, 3, 2, 14, minute, tzinfo=UTC) if minute is not None else None
    return Entry(id=i, url=None, title="Update", text=text, published=when)


def test_baseline_records_everything_and_emits_nothing() -> None:
    changes = diff_entries({}, [entry("b"), entry("a")], baseline=True)
    assert [c.entry.id for c in changes] == ["a", "b"]
    assert not any(c.emit for c in changes)


def test_backfill_emits_only_the_newest_n() -> None:
    entries = [entry("c", minute=3), entry("a", minute=1), entry("b", minute=2)]
    changes = diff_entries({}, entries, baseline=True, backfill=2)
    assert [(c.entry.id, c.emit) for c in changes] == [("a", False), ("b", True), ("c", True)]


def test_new_and_updated_and_unchanged() -> None:
    old_a, old_b = entry("a", "one"), entry("b", "two")
    previous = {old_a.id: old_a.version, old_b.id: old_b.version}
    changes = diff_entries(previous, [entry("c", "three"), entry("b", "two!"), old_a],
                           baseline=False)
    assert [(c.entry.id, c.kind) for c in changes] == [("b", "updated"), ("c", "new")]
    assert changes[0].previous_version == old_b.version
    assert all(c.emit for c in changes)


def test_markup_and_whitespace_changes_are_not_edits() -> None:
    before = entry("a", "Coalition of the willing")
    after = entry("a", "Coalition  of the <em>willing</em>\n")
    assert diff_entries({"a": before.version}, [after], baseline=False) == []


def test_chronological_order_by_time_when_known() -> None:
    entries = [entry("x", minute=5), entry("y", minute=1), entry("z", minute=3)]
    changes = diff_entries({}, entries, baseline=False)
    assert [c.entry.id for c in changes] == ["y", "z", "x"]


def test_known_content_under_a_new_id_is_a_duplicate_not_an_event() -> None:
    old = entry("guid-1", "The same update")
    changes = diff_entries({old.id: old.version},
                           [entry("guid-2", "The same update"), entry("guid-3", "Fresh news")],
                           baseline=False)
    assert [(c.entry.id, c.emit, c.duplicate) for c in changes] == [
        ("guid-3", True, False), ("guid-2", False, True)]


def test_same_content_twice_in_one_document_emits_once() -> None:
    changes = diff_entries({}, [entry("a", "Repeated"), entry("b", "Repeated")], baseline=False)
    assert [c.emit for c in changes] == [True, False]
