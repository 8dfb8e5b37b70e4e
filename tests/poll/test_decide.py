"""A poll's pure decisions (monitor/poll/decide.py), table-driven: no Redis, no network, no
clock. Each row is a case a person would recognise: a 304, an unchanged body, first sight of a
feed, a new entry, an edit, GUID churn, a flood, a coverage end set or cleared, a failure
streak. The script half of the baseline race is in tests/poll/test_state.py."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import pytest

from monitor.core.errors import ParseError
from monitor.core.models import Entry, Notice
from monitor.fetch.client import FetchResult
from monitor.poll.decide import (
    Plan,
    Snapshot,
    churning,
    failing_notice,
    plan_document,
    plan_fetch,
    recovered_notice,
    snapshot_after,
)
from monitor.poll.diff import Change
from monitor.sources import PageInfo, ParsedDocument

FEED = "summit"
NOW = 1_772_470_000.0
#: 2026-03-02 18:00 UTC, a live blog's coverageEndTime.
END_AT = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)
END = 1772474400.0


def entry(ident: str, title: str, text: str, minute: int) -> Entry:
    return Entry(id=ident, url=None, title=title, text=text,
                 published=datetime(2026, 3, 2, 14, minute, tzinfo=UTC))


def renamed(entries: list[Entry], prefix: str) -> list[Entry]:
    """The same entries under GUIDs that are new (a feed churning its ids)."""
    return [Entry(id=f"{prefix}-{e.id}", url=e.url, title=e.title, text=e.text,
                  published=e.published) for e in entries]


P1 = entry("p1", "Doors open", "Delegates arrive.", 1)
P2 = entry("p2", "First speech", "The chair opens the summit.", 2)
P3 = entry("p3", "Press pool", "Cameras wait outside.", 3)
P4 = entry("p4", "Lunch", "Talks break for lunch.", 4)
KNOWN = [P1, P2, P3, P4]
#: New entries, oldest first (minutes 5..11).
FRESH = [entry(f"n{i}", f"Vote {i}", f"Ballot {i} is counted.", 4 + i) for i in range(1, 8)]
P4_EDITED = entry("p4", "Lunch", "Talks break for a long lunch.", 4)
P3_EDITED = entry("p3", "Press pool", "Cameras wait outside the gate.", 3)


def h(e: Entry) -> str:
    """An entry's id under content identity."""
    return "h:" + e.version


def newest_first(entries: list[Entry]) -> list[Entry]:
    return sorted(entries, key=lambda e: e.published or END_AT, reverse=True)


def doc(entries: list[Entry], *, end: datetime | None = None, page: bool = True,
        kind: str = "liveblog") -> ParsedDocument:
    return ParsedDocument(kind, newest_first(entries),
                          PageInfo(coverage_end=end) if page else None)


def snap(entries: list[Entry] = KNOWN, *, baselined: bool = True, identity: str = "id",
         max_events: int = 0, coverage_end: float | None = None,
         body_hash: str | None = "old-hash") -> Snapshot:
    ids = h if identity == "content" else (lambda e: e.id)
    return Snapshot(baselined=baselined, fingerprints={ids(e): e.version for e in entries},
                    etag='"v1"', last_modified="Mon, 02 Mar 2026 14:00:00 GMT",
                    body_hash=body_hash, identity=identity, max_events=max_events,
                    coverage_end=coverage_end)


def fetched(body: bytes | None = b"<rss/>", *, etag: str | None = None,
            last_modified: str | None = None, max_age: float | None = None) -> FetchResult:
    return FetchResult(url="https://news.example/live", status=200 if body is not None else 304,
                       body=body, content_type="application/rss+xml", etag=etag,
                       last_modified=last_modified, not_modified=body is None, elapsed=0.01,
                       max_age=max_age)


BODY = b"<rss>the page as last parsed</rss>"
BODY_HASH = fetched(BODY).body_hash


# --- plan_fetch: what a poll records without parsing ----------------------------------------

@pytest.mark.parametrize(("snapshot", "result", "expected"), [
    pytest.param(snap(coverage_end=END), fetched(None), Plan("not_modified", coverage_end=END),
                 id="304: keep the validators, carry the coverage end"),
    pytest.param(snap(), fetched(None), Plan("not_modified", "keep"),
                 id="304 on a live feed without coverage end"),
    pytest.param(snap(baselined=False, body_hash=None), fetched(None), Plan("not_modified"),
                 id="304 on a feed never baselined: nothing to parse either"),
    pytest.param(snap(body_hash=BODY_HASH, coverage_end=END), fetched(BODY, etag='"v2"'),
                 Plan("unchanged", "touch", coverage_end=END),
                 id="200 with the body last parsed: touch the validators"),
    pytest.param(snap(baselined=False, body_hash=BODY_HASH), fetched(BODY), None,
                 id="same body but never baselined: parse it"),
    pytest.param(snap(body_hash=BODY_HASH), fetched(BODY + b" "), None,
                 id="a different body: parse it"),
    pytest.param(snap(body_hash=None), fetched(BODY), None,
                 id="no body hash recorded: parse it"),
])
def test_plan_fetch(snapshot: Snapshot, result: FetchResult, expected: Plan | None) -> None:
    assert plan_fetch(snapshot, result) == expected


def test_a_quiet_plan_is_never_a_baseline_plan() -> None:
    """The script checks the baseline only for `replace`: a 304 or an unchanged body never
    meets a moved baseline, whatever the snapshot said."""
    for snapshot in (snap(), snap(baselined=False)):
        plan = plan_fetch(snapshot, fetched(None))
        assert plan is not None and (plan.baseline, plan.validators, plan.changes) == \
            (False, "keep", ())


# --- plan_document: the changes of a parsed document ----------------------------------------

@dataclass
class Expect:
    status: str
    #: (id, kind, emit, duplicate), oldest first.
    changes: list[tuple[str, str, bool, bool]]
    would_emit: int
    previous: list[str | None] | None = None  # None: every change is new
    baseline: bool = False
    meta: dict[str, str] = field(default_factory=dict)
    flood: bool = False
    churned: int = 0
    coverage_end: float | None = None
    notice: Notice | None = None

    def __post_init__(self) -> None:
        if self.previous is None:
            self.previous = [None] * len(self.changes)

    @classmethod
    def of(cls, plan: Plan) -> Expect:
        return cls(plan.status, [(c.entry.id, c.kind, c.emit, c.duplicate) for c in plan.changes],
                   plan.would_emit, [c.previous_version for c in plan.changes],
                   plan.baseline, plan.meta, plan.flood, plan.churned, plan.coverage_end,
                   plan.notice)


def flood_notice(events: int, most_before: int) -> Notice:
    return Notice("flood", FEED, (
        f"{events} new or edited entries in one poll (the most before was {most_before}); "
        "recorded without alerting. The source may have been redesigned or reset."), NOW)


def new(e: Entry, emit: bool = True) -> tuple[str, str, bool, bool]:
    return (e.id, "new", emit, False)


def dup(ident: str) -> tuple[str, str, bool, bool]:
    return (ident, "new", False, True)


END_META = {"coverage_end": "1772474400.0"}

PLANS = [
    # first sight
    pytest.param(snap([], baselined=False), doc(KNOWN), {"backfill": 0},
                 Expect("baseline", [new(e, False) for e in KNOWN], 0, baseline=True),
                 id="first sight: everything recorded, nothing emitted"),
    pytest.param(snap([], baselined=False), doc(KNOWN), {"backfill": 2},
                 Expect("baseline", [new(P1, False), new(P2, False), new(P3), new(P4)], 2,
                        baseline=True),
                 id="first sight with backfill 2: the newest two emitted"),
    pytest.param(snap([], baselined=False), doc(KNOWN[:2]), {"backfill": 5},
                 Expect("baseline", [new(P1), new(P2)], 2, baseline=True),
                 id="backfill larger than the document: all emitted"),
    pytest.param(snap([], baselined=False), doc(FRESH), {"flood_threshold": 1, "backfill": 7},
                 Expect("baseline", [new(e) for e in FRESH], 7, baseline=True),
                 id="no flood breaker on a baseline"),
    pytest.param(snap(KNOWN, baselined=False), doc(KNOWN), {"backfill": 1},
                 Expect("baseline", [new(P1, False), new(P2, False), new(P3, False), new(P4)],
                        1, baseline=True),
                 id="state lost (fingerprints but not baselined): baseline again"),
    # steady state
    pytest.param(snap(), doc([*KNOWN, FRESH[0]]), {},
                 Expect("changed", [new(FRESH[0])], 1), id="one new entry"),
    pytest.param(snap(), doc([P1, P2, P3, P4_EDITED]), {},
                 Expect("changed", [("p4", "updated", True, False)], 1, previous=[P4.version]),
                 id="an edit: updated, its previous version set"),
    pytest.param(snap(), doc([P1, P2, P3_EDITED, P4, FRESH[0]]), {},
                 Expect("changed", [("p3", "updated", True, False), new(FRESH[0])], 2,
                        previous=[P3.version, None]),
                 id="an edit and a new entry, oldest first"),
    pytest.param(snap(), doc(KNOWN), {}, Expect("unchanged", [], 0), id="nothing new"),
    pytest.param(snap(), doc(KNOWN[2:]), {}, Expect("unchanged", [], 0),
                 id="older entries dropped off the page: nothing new"),
    # GUID churn
    pytest.param(snap(), doc([*renamed(KNOWN, "g1"), FRESH[0]]), {},
                 Expect("changed", [dup(h(P1)), dup(h(P2)), dup(h(P3)), dup(h(P4)),
                                    (h(FRESH[0]), "new", True, False)], 1,
                        meta={"identity": "content"}, churned=4),
                 id="GUID churn: content identity, only the fresh entry emitted"),
    pytest.param(snap(), doc([*renamed(KNOWN[:3], "g1"), *FRESH[:3]]), {},
                 Expect("changed", [dup(h(P1)), dup(h(P2)), dup(h(P3)),
                                    *[(h(e), "new", True, False) for e in FRESH[:3]]], 3,
                        meta={"identity": "content"}, churned=3),
                 id="churn at the threshold: 3 duplicates, 3 fresh"),
    pytest.param(snap(), doc([*renamed(KNOWN[:3], "g1"), *FRESH[:4]]), {},
                 Expect("changed", [dup("g1-p1"), dup("g1-p2"), dup("g1-p3"),
                                    *[new(e) for e in FRESH[:4]]], 4),
                 id="3 duplicates but more fresh entries: ids kept"),
    pytest.param(snap(), doc(renamed(KNOWN[:2], "g1")), {},
                 Expect("changed", [dup("g1-p1"), dup("g1-p2")], 0),
                 id="2 duplicates: recorded, not emitted, ids kept"),
    pytest.param(snap([], baselined=False), doc([*KNOWN, *renamed(KNOWN, "g1")]), {},
                 Expect("baseline", [(ident, "new", False, False) for e in KNOWN
                                     for ident in (f"g1-{e.id}", e.id)], 0, baseline=True),
                 id="no churn decided on a baseline"),
    pytest.param(snap(identity="content"), doc([*renamed(KNOWN, "g2"), FRESH[0]]), {},
                 Expect("changed", [(h(FRESH[0]), "new", True, False)], 1),
                 id="already on content identity: new GUIDs of known content are nothing"),
    pytest.param(snap(identity="content"), doc([P1, P2, P3, P4_EDITED]), {},
                 Expect("changed", [(h(P4_EDITED), "new", True, False)], 1),
                 id="content identity: an edit is a new entry"),
    pytest.param(snap(identity="content"), doc(KNOWN), {}, Expect("unchanged", [], 0),
                 id="content identity: nothing new"),
    # flood breaker
    pytest.param(snap(), doc([*KNOWN, *FRESH[:4]]), {"flood_threshold": 3},
                 Expect("changed", [new(e, False) for e in FRESH[:4]], 4, flood=True,
                        notice=flood_notice(4, 0)),
                 id="flood: 4 new above a threshold of 3, nothing emitted"),
    pytest.param(snap(), doc([*KNOWN, *FRESH[:3]]), {"flood_threshold": 3},
                 Expect("changed", [new(e) for e in FRESH[:3]], 3),
                 id="just under the flood threshold: emitted"),
    pytest.param(snap(max_events=2), doc([*KNOWN, *FRESH[:7]]), {"flood_threshold": 3},
                 Expect("changed", [new(e, False) for e in FRESH[:7]], 7, flood=True,
                        notice=flood_notice(7, 2)),
                 id="flood above 3x the most before (7 > 3*2)"),
    pytest.param(snap(max_events=2), doc([*KNOWN, *FRESH[:6]]), {"flood_threshold": 3},
                 Expect("changed", [new(e) for e in FRESH[:6]], 6),
                 id="3x the most before is the limit (6 = 3*2): emitted"),
    pytest.param(snap(), doc([P1, P2, P3_EDITED, P4_EDITED, *FRESH[:2]]),
                 {"flood_threshold": 3},
                 Expect("changed", [("p3", "updated", False, False),
                                    ("p4", "updated", False, False),
                                    new(FRESH[0], False), new(FRESH[1], False)], 4,
                        previous=[P3.version, P4.version, None, None], flood=True,
                        notice=flood_notice(4, 0)),
                 id="edits count towards the flood"),
    pytest.param(snap(), doc([*renamed(KNOWN, "g1"), *FRESH[:4]]), {"flood_threshold": 3},
                 Expect("changed", [dup(h(e)) for e in KNOWN]
                        + [(h(e), "new", False, False) for e in FRESH[:4]], 4,
                        meta={"identity": "content"}, churned=4, flood=True,
                        notice=flood_notice(4, 0)),
                 id="churn and flood in one poll: only fresh entries count"),
    # coverage end
    pytest.param(snap(), doc(KNOWN, end=END_AT), {},
                 Expect("unchanged", [], 0, meta=END_META, coverage_end=END),
                 id="coverage end set"),
    pytest.param(snap(coverage_end=END), doc(KNOWN, end=END_AT), {},
                 Expect("unchanged", [], 0, coverage_end=END),
                 id="coverage end as before: no meta"),
    pytest.param(snap(coverage_end=END - 3600), doc(KNOWN, end=END_AT), {},
                 Expect("unchanged", [], 0, meta=END_META, coverage_end=END),
                 id="coverage end moved later"),
    pytest.param(snap(coverage_end=END), doc(KNOWN), {},
                 Expect("unchanged", [], 0, meta={"coverage_end": ""}),
                 id="coverage end cleared (page without one)"),
    pytest.param(snap(coverage_end=END), doc(KNOWN, page=False, kind="rss"), {},
                 Expect("unchanged", [], 0, meta={"coverage_end": ""}),
                 id="coverage end cleared (no page info at all)"),
    pytest.param(snap(), doc(KNOWN, page=False, kind="rss"), {}, Expect("unchanged", [], 0),
                 id="a plain feed: no coverage end, no meta"),
    pytest.param(snap([], baselined=False), doc(KNOWN[:1], end=END_AT), {},
                 Expect("baseline", [new(P1, False)], 0, baseline=True, meta=END_META,
                        coverage_end=END),
                 id="coverage end on first sight"),
]


@pytest.mark.parametrize(("snapshot", "document", "settings", "expected"), PLANS)
def test_plan_document(snapshot: Snapshot, document: ParsedDocument, settings: dict[str, int],
                       expected: Expect) -> None:
    options: dict[str, Any] = {"backfill": 0, "flood_threshold": 50, **settings}
    plan = plan_document(snapshot, document, feed=FEED, now=NOW, **options)
    assert Expect.of(plan) == expected
    assert (plan.validators, plan.kind, plan.entries) == \
        ("replace", document.kind, len(document.entries))
    assert plan.emitted == sum(1 for *_, emit, _dup in expected.changes if emit)


@pytest.mark.parametrize(("snapshot", "message"), [
    pytest.param(snap(), "no entries found (had 4): the page may have changed shape or be "
                 "behind a login or paywall", id="feed with history: a login wall"),
    pytest.param(snap(identity="content"), "no entries found (had 4): the page may have "
                 "changed shape or be behind a login or paywall", id="content identity"),
    pytest.param(snap(baselined=False), "no entries found (had 4): the page may have changed "
                 "shape or be behind a login or paywall", id="not baselined, fingerprints kept"),
])
def test_no_entries_after_history_is_a_parse_error(snapshot: Snapshot, message: str) -> None:
    with pytest.raises(ParseError) as raised:
        plan_document(snapshot, doc([]), backfill=0, flood_threshold=50, feed=FEED, now=NOW)
    assert str(raised.value) == message


@pytest.mark.parametrize(("snapshot", "status"), [
    pytest.param(snap([], baselined=False), "baseline", id="first sight of an empty feed"),
    pytest.param(snap([]), "unchanged", id="baselined, still empty"),
])
def test_no_entries_without_history_is_not_an_error(snapshot: Snapshot, status: str) -> None:
    plan = plan_document(snapshot, doc([]), backfill=0, flood_threshold=50, feed=FEED, now=NOW)
    assert (plan.status, plan.changes, plan.entries) == (status, (), 0)


# --- the baseline race, pure half ----------------------------------------------------------

@pytest.mark.parametrize(("meta", "baseline", "status"), [
    pytest.param({}, True, "baseline", id="meta without baselined: a baseline plan"),
    pytest.param({"baselined": "0"}, True, "baseline", id="baselined 0: a baseline plan"),
    pytest.param({"baselined": "1"}, False, "unchanged", id="baselined: not a baseline plan"),
])
def test_a_plan_says_which_baseline_state_it_was_made_on(
        meta: dict[str, str], baseline: bool, status: str) -> None:
    """The script refuses a plan whose `baseline` does not match the feed's meta (another
    poller baselined meanwhile; tests/poll/test_state.py::test_baseline_race_is_reported), so
    the plan must say which state it was made on."""
    snapshot = Snapshot.read(meta, {e.id: e.version for e in KNOWN})
    plan = plan_document(snapshot, doc(KNOWN), backfill=0, flood_threshold=50, feed=FEED,
                         now=NOW)
    assert (plan.baseline, plan.status) == (baseline, status)


# --- Snapshot.read, churning, Plan.ended ----------------------------------------------------

@pytest.mark.parametrize(("meta", "expected"), [
    pytest.param({}, Snapshot(False, {}, None, None, None), id="a feed never polled"),
    pytest.param({"baselined": "1", "etag": '"v1"', "last_modified": "Mon, 02 Mar 2026",
                  "body_hash": "abc", "identity": "content", "max_events": "7",
                  "coverage_end": "1772474400.0"},
                 Snapshot(True, {}, '"v1"', "Mon, 02 Mar 2026", "abc", "content", 7, END),
                 id="every field"),
    pytest.param({"baselined": "1", "identity": "", "max_events": "", "coverage_end": ""},
                 Snapshot(True, {}, None, None, None, "id", 0, None),
                 id="empty fields: defaults (coverage end cleared)"),
])
def test_snapshot_read(meta: dict[str, str], expected: Snapshot) -> None:
    assert Snapshot.read(meta) == expected


def test_snapshot_read_keeps_the_fingerprints() -> None:
    assert Snapshot.read({"baselined": "1"}, {"p1": P1.version}).fingerprints == \
        {"p1": P1.version}


def change(ident: str, *, previous: str | None = None, duplicate: bool = False) -> Change:
    return Change(P1.with_id(ident), P1.version, previous, not duplicate, duplicate)


@pytest.mark.parametrize(("changes", "expected"), [
    pytest.param([], False, id="no changes"),
    pytest.param([change(f"d{i}", duplicate=True) for i in range(2)], False,
                 id="2 duplicates"),
    pytest.param([change(f"d{i}", duplicate=True) for i in range(3)], True,
                 id="3 duplicates, nothing fresh"),
    pytest.param([change(f"d{i}", duplicate=True) for i in range(3)]
                 + [change(f"n{i}") for i in range(3)], True, id="3 duplicates, 3 fresh"),
    pytest.param([change(f"d{i}", duplicate=True) for i in range(3)]
                 + [change(f"n{i}") for i in range(4)], False, id="3 duplicates, 4 fresh"),
    pytest.param([change(f"d{i}", duplicate=True) for i in range(3)]
                 + [change(f"e{i}", previous="old") for i in range(5)], True,
                 id="edits are not fresh entries"),
])
def test_churning(changes: list[Change], expected: bool) -> None:
    assert churning(changes) is expected


@pytest.mark.parametrize(("coverage_end", "now", "expected"), [
    pytest.param(None, NOW, False, id="no coverage end"),
    pytest.param(END, END - 1, False, id="before the end"),
    pytest.param(END, END, False, id="at the end"),
    pytest.param(END, END + 1, True, id="after the end"),
])
def test_plan_ended(coverage_end: float | None, now: float, expected: bool) -> None:
    assert Plan("unchanged", coverage_end=coverage_end).ended(now) is expected


# --- snapshot_after: what the lease holder knows at its next turn -------------------------

BEFORE = replace(snap(max_events=5, coverage_end=END), fingerprints={"p1": P1.version})
NEW_BODY = fetched(BODY, etag='"v2"', last_modified="Mon, 02 Mar 2026 15:00:00 GMT")


@pytest.mark.parametrize(("plan", "result", "appended", "expected"), [
    pytest.param(Plan("not_modified", coverage_end=END), fetched(None), 0, BEFORE,
                 id="keep (304): the snapshot as it was"),
    pytest.param(Plan("unchanged", "touch", coverage_end=END), NEW_BODY, 0,
                 replace(BEFORE, fingerprints={}, etag='"v2"',
                         last_modified="Mon, 02 Mar 2026 15:00:00 GMT"),
                 id="touch: the validators sent replace the old ones"),
    pytest.param(Plan("unchanged", "touch", coverage_end=END), fetched(BODY), 0,
                 replace(BEFORE, fingerprints={}),
                 id="touch without validators: the old ones kept"),
    pytest.param(Plan("unchanged", "touch"), fetched(BODY, etag='"v3"'), 0,
                 replace(BEFORE, fingerprints={}, etag='"v3"'),
                 id="touch: only the etag sent"),
    pytest.param(Plan("changed", "replace", coverage_end=END), NEW_BODY, 2,
                 Snapshot(True, {}, '"v2"', "Mon, 02 Mar 2026 15:00:00 GMT", BODY_HASH, "id",
                          5, END),
                 id="replace: validators and body hash replaced, max events kept (2 < 5)"),
    pytest.param(Plan("changed", "replace"), fetched(BODY), 9,
                 Snapshot(True, {}, None, None, BODY_HASH, "id", 9, None),
                 id="replace: validators not sent are dropped, max events raised to 9"),
    pytest.param(Plan("changed", "replace", flood=True, coverage_end=END), NEW_BODY, 0,
                 Snapshot(True, {}, '"v2"', "Mon, 02 Mar 2026 15:00:00 GMT", BODY_HASH, "id",
                          5, END),
                 id="replace after a flood: max events not raised"),
    pytest.param(Plan("changed", "replace", flood=True), fetched(BODY), 9,
                 Snapshot(True, {}, None, None, BODY_HASH, "id", 5, None),
                 id="a flood's count never raises max events (as apply.lua)"),
    pytest.param(Plan("changed", "replace", meta={"identity": "content"}), NEW_BODY, 1,
                 Snapshot(True, {}, '"v2"', "Mon, 02 Mar 2026 15:00:00 GMT", BODY_HASH,
                          "content", 5, None),
                 id="replace: identity from the meta, coverage end cleared"),
])
def test_snapshot_after(plan: Plan, result: FetchResult, appended: int,
                        expected: Snapshot) -> None:
    assert snapshot_after(BEFORE, plan, result, appended) == expected


@pytest.mark.parametrize(("before", "document", "appended", "expected"), [
    pytest.param(snap([], baselined=False, body_hash=None), doc(KNOWN), 0,
                 Snapshot(True, {}, '"v2"', "Mon, 02 Mar 2026 15:00:00 GMT", BODY_HASH, "id",
                          0, None),
                 id="after the baseline: baselined"),
    pytest.param(snap(), doc([*renamed(KNOWN, "g1"), FRESH[0]]), 1,
                 Snapshot(True, {}, '"v2"', "Mon, 02 Mar 2026 15:00:00 GMT", BODY_HASH,
                          "content", 1, None),
                 id="after GUID churn: content identity"),
    pytest.param(snap(max_events=1), doc([*KNOWN, *FRESH[:4]], end=END_AT), 0,
                 Snapshot(True, {}, '"v2"', "Mon, 02 Mar 2026 15:00:00 GMT", BODY_HASH, "id",
                          1, END),
                 id="after a flood with a coverage end"),
])
def test_snapshot_after_a_planned_document(before: Snapshot, document: ParsedDocument,
                                           appended: int, expected: Snapshot) -> None:
    plan = plan_document(before, document, backfill=0, flood_threshold=3, feed=FEED, now=NOW)
    after = snapshot_after(before, plan, NEW_BODY, appended)
    assert after == expected
    # What the next poll decides from it: the body it just parsed is not parsed again.
    assert plan_fetch(after, NEW_BODY) == \
        Plan("unchanged", "touch", coverage_end=after.coverage_end)


# --- failure streaks ----------------------------------------------------------------------

def failing(streak: int, reason: str = "HTTP 503") -> Notice:
    return Notice("failing", FEED, (
        f"Feed {FEED} failed {streak} polls in a row; it keeps being retried with backoff. "
        f"Last error: {reason}"), NOW)


@pytest.mark.parametrize(("streak", "failing_after", "reason", "expected"), [
    pytest.param(1, 5, "HTTP 503", None, id="first failure: nothing yet"),
    pytest.param(4, 5, "HTTP 503", None, id="one below the threshold"),
    pytest.param(5, 5, "HTTP 503", failing(5), id="the poll that reaches it: one notice"),
    pytest.param(6, 5, "HTTP 503", None, id="above it: already told"),
    pytest.param(1, 1, "timeout", failing(1, "timeout"), id="failing_after 1: the first one"),
    pytest.param(5, 0, "HTTP 503", None, id="failing_after 0: never"),
    pytest.param(0, 0, "HTTP 503", None, id="failing_after 0, streak 0: never"),
    pytest.param(3, 3, "x" * 400, failing(3, "x" * 300), id="the reason cut at 300 characters"),
])
def test_failing_notice(streak: int, failing_after: int, reason: str,
                        expected: Notice | None) -> None:
    assert failing_notice(FEED, streak, failing_after, reason, NOW) == expected


@pytest.mark.parametrize(("streak", "failing_since", "text"), [
    pytest.param(5, NOW - 95, "after 5 failed polls (failing for 95 s)", id="seconds"),
    pytest.param(7, NOW - 300, "after 7 failed polls (failing for 5 min)", id="minutes"),
    pytest.param(40, NOW - 9000, "after 40 failed polls (failing for 2.5 h)", id="hours"),
    pytest.param(5, None, "after 5 failed polls (failing for a while)",
                 id="failing since unknown"),
    pytest.param(0, NOW - 300, "after several failed polls (failing for 5 min)",
                 id="streak unknown"),
])
def test_recovered_notice(streak: int, failing_since: float | None, text: str) -> None:
    assert recovered_notice(FEED, streak, failing_since, NOW) == Notice(
        "recovered", FEED, f"Feed {FEED} is polled fine again {text}.", NOW)


# --- suspected bug --------------------------------------------------------------------------

PHOTOS = [entry(f"photo{i}", "Photo", "", 4 + i) for i in range(1, 5)]


def test_fresh_entries_repeating_each_other_are_not_guid_churn() -> None:
    """Four new image-only posts titled "Photo" on a feed with stable GUIDs: they repeat each
    other, not recorded content, so the feed keeps its ids."""
    plan = plan_document(snap(), doc([*KNOWN, *PHOTOS]), backfill=0, flood_threshold=50,
                         feed=FEED, now=NOW)
    assert (plan.meta, plan.churned) == ({}, 0)
