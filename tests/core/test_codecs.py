"""The JSON codecs of the streams and the outbox (msgspec): payloads written by the encoders they
replaced (`json.dumps` of hand-built dicts, kept here as literals) still decode, and every type
round-trips."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from monitor.core.models import Entry, Event, Notice
from workers.match.matcher import Hit, RuleMatch
from workers.outbox.codec import Digest, decode, encode
from workers.render.alert import Alert
from workers.render.notices import OperatorNotice

# Written by the pre-msgspec encoders (Event.encode, Notice.encode, workers.outbox.codec.encode).
OLD_EVENT = (
    '{"kind":"updated","feed":"summit-live","feed_url":"https://news.example.org/live.rss",'
    '"entry":{"id":"urn:lw:1","url":"https://news.example.org/live/1","title":"Leaders back '
    '“coalition of the willing”","text":"Zoë said: “boots on the ground” — not yet.\\n\\nMore…",'
    '"author":"Zoë Brontë","published":"2026-05-08T00:15:00+00:00",'
    '"updated":"2026-05-08T00:20:30.250000+05:30"},"version":"v1","detected_at":1778199300.5,'
    '"previous_title":"Leaders meet","previous_text":"Zoë said: nothing yet."}')
OLD_NOTICE = ('{"kind": "flood", "feed": "summit-live", "message": "Flood breaker: 80 new '
              'entries held", "at": 1778199301.25}')
OLD_ALERT = (
    '{"type":"alert","id":"lw_a1","channel":"hook","rule":"coalition","event":' + OLD_EVENT
    + ',"sources":["summit-live","wires"],"hits":[["coalition of the willing","title",14,40],'
    '["boots on the ground","text",11,30]]}')
OLD_OPERATOR_NOTICE = (
    '{"type":"notice","id":"lw_n_1","channel":"desk","notice":{"kind":"flood","feed":'
    '"summit-live","message":"Flood breaker: 80 new entries held","at":1778199301.25},'
    '"feed_url":"https://news.example.org/live.rss"}')
#: As the FLUSH script joins held items (numbers from `stamp`).
OLD_DIGEST = ('{"type":"digest","id":"lw_dg_1","channel":"hook","since":1778199000.000000,'
              '"until":1778199600.000000,"reason":"10-minute digest","items":['
              + OLD_ALERT + "," + OLD_OPERATOR_NOTICE + "]}")

ENTRY = Entry(id="urn:lw:1", url="https://news.example.org/live/1",
              title="Leaders back “coalition of the willing”",
              text="Zoë said: “boots on the ground” — not yet.\n\nMore…", author="Zoë Brontë",
              published=datetime(2026, 5, 8, 0, 15, tzinfo=UTC),
              updated=datetime(2026, 5, 8, 0, 20, 30, 250000,
                               tzinfo=timezone(timedelta(hours=5, minutes=30))))
EVENT = Event("updated", "summit-live", "https://news.example.org/live.rss", ENTRY, "v1",
              1778199300.5, "Leaders meet", "Zoë said: nothing yet.")
NOTICE = Notice("flood", "summit-live", "Flood breaker: 80 new entries held", 1778199301.25)
ALERT = Alert("lw_a1", EVENT, "coalition", "hook",
              RuleMatch("coalition", (Hit("coalition of the willing", "title", 14, 40),
                                      Hit("boots on the ground", "text", 11, 30))),
              ("summit-live", "wires"))
OPERATOR_NOTICE = OperatorNotice("lw_n_1", NOTICE, "desk", "https://news.example.org/live.rss")
DIGEST = Digest("lw_dg_1", "hook", (ALERT, OPERATOR_NOTICE), 1778199000.0, 1778199600.0,
                "10-minute digest")


def test_payloads_of_the_old_encoders_decode() -> None:
    assert Event.decode(OLD_EVENT) == EVENT
    assert Event.decode(OLD_EVENT.encode()) == EVENT
    assert Notice.decode(OLD_NOTICE) == NOTICE
    assert decode(OLD_ALERT) == ALERT
    assert decode(OLD_OPERATOR_NOTICE) == OPERATOR_NOTICE
    assert decode(OLD_DIGEST) == DIGEST


def test_every_type_round_trips() -> None:
    assert Event.decode(EVENT.encode()) == EVENT
    assert Notice.decode(NOTICE.encode()) == NOTICE
    for item in (ALERT, OPERATOR_NOTICE, DIGEST):
        assert decode(encode(item)) == item
    bare = Event("new", "f", "u", Entry(id="1", url=None, title="", text="x"), "v", 1.0)
    assert Event.decode(bare.encode()) == bare
    assert "“coalition" in EVENT.encode()  # UTF-8, not \\u escapes


def test_an_offset_in_seconds_is_read_as_the_same_instant() -> None:
    """`isoformat` wrote offsets with seconds, which RFC 3339 (msgspec) does not read."""
    payload = OLD_EVENT.replace("+05:30", "+05:30:15")
    updated = Event.decode(payload).entry.updated
    assert updated == ENTRY.updated - timedelta(seconds=15)  # type: ignore[operator]


@pytest.mark.parametrize("payload", [
    OLD_EVENT.replace('"kind":"updated"', '"kind":"deleted"'),
    OLD_EVENT.replace('"feed":"summit-live",', ""),
    OLD_EVENT.replace('"version":"v1"', '"version":1'),
    OLD_EVENT[:-1],
    "[]",
])
def test_a_malformed_event_is_a_value_error(payload: str) -> None:
    with pytest.raises(ValueError):
        Event.decode(payload)


@pytest.mark.parametrize("payload", [
    OLD_ALERT.replace('"type":"alert"', '"type":"memo"'),
    OLD_ALERT.replace('"title",14', '"body",14'),
    OLD_DIGEST.replace(OLD_OPERATOR_NOTICE, OLD_DIGEST),  # a digest within a digest
    '{"id":"x"}',
])
def test_a_malformed_deliverable_is_a_value_error(payload: str) -> None:
    with pytest.raises(ValueError):
        decode(payload)
