"""µs per encode and per decode of the stream and outbox payloads (Event, Notice and the outbox's
deliverables: Alert, OperatorNotice, Digest), three ways: the hand-written `json` codec livewatch
used before, pydantic's `TypeAdapter`, and msgspec (the codec livewatch uses now). Each reads the
same wire format. A few seconds on one core:

    python -m bench.codecs
"""

from __future__ import annotations

import json
import timeit
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter
from typing_extensions import TypedDict  # pydantic reads typing.TypedDict only from 3.12

from monitor.core.models import Entry, Event, Notice
from workers.match.matcher import Hit, RuleMatch
from workers.outbox import codec as digest
from workers.outbox.codec import Deliverable, Digest
from workers.render.alert import Alert
from workers.render.notices import OperatorNotice

_PARAGRAPH = ("The prime minister said the “coalition of the willing” would meet again in Paris "
              "— at the Élysée, with Zoë Brontë’s delegation — on Thursday; «no boots on the "
              "ground» yet, officials in Kraków and Malmö said. ")


def samples() -> dict[str, Any]:
    """Realistic payloads: an entry with a 2 KB text (curly quotes, dashes, non-ASCII)."""
    text = (_PARAGRAPH * 12)[:2048]
    entry = Entry(id="https://news.example.org/live/summit#post-4567",
                  url="https://news.example.org/live/summit#post-4567",
                  title="Leaders agree “coalition of the willing” plan", text=text,
                  author="Zoë Brontë", published=datetime(2026, 12, 7, 14, 5, tzinfo=UTC))
    event = Event("updated", "summit-live", "https://news.example.org/live/summit.rss", entry,
                  entry.version, 1796652483.946, entry.title, text[:1500])
    notice = Notice("flood", "summit-live", "Flood breaker tripped: 80 new entries recorded "
                    "without alerts.", 1796652483.946)
    hits = tuple(Hit(term, "text", start, start + len(term)) for term, start in
                 [("coalition of the willing", 28), ("boots on the ground", 160),
                  ("élysée", 88), ("paris", 75), ("kraków", 190)])
    alert = Alert("lw_" + "a" * 32, event, "coalition", "newsdesk",
                  RuleMatch("coalition", hits), ("summit-live", "wires"))
    operator = OperatorNotice("lw_n_" + "b" * 32, notice, "newsdesk",
                              "https://news.example.org/live/summit.rss")
    held = Digest("lw_dg_" + "c" * 32, "newsdesk", (alert,) * 10 + (operator,) * 2,
                  1796652000.0, 1796652600.0, "10-minute digest")
    return {"Event": event, "Notice": notice, "Alert": alert, "OperatorNotice": operator,
            "Digest (10 alerts, 2 notices)": held}


# --- before: json.dumps / json.loads of hand-built dicts (as livewatch did) ---

def _json_event(event: Event) -> str:
    return json.dumps({"kind": event.kind, "feed": event.feed, "feed_url": event.feed_url,
                       "entry": event.entry.to_dict(), "version": event.version,
                       "detected_at": event.detected_at, "previous_title": event.previous_title,
                       "previous_text": event.previous_text},
                      ensure_ascii=False, separators=(",", ":"))


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _json_event_back(payload: str) -> Event:
    data = json.loads(payload)
    e = data["entry"]
    entry = Entry(id=str(e["id"]), url=e.get("url"), title=e.get("title") or "",
                  text=e.get("text") or "", author=e.get("author"),
                  published=_dt(e.get("published")), updated=_dt(e.get("updated")))
    return Event(kind=data["kind"], feed=data["feed"], feed_url=data["feed_url"], entry=entry,
                 version=data["version"], detected_at=float(data["detected_at"]),
                 previous_title=data.get("previous_title"),
                 previous_text=data.get("previous_text"))


def _json_notice(notice: Notice) -> str:
    return json.dumps({"kind": notice.kind, "feed": notice.feed, "message": notice.message,
                       "at": notice.at}, ensure_ascii=False)


def _json_notice_back(payload: str) -> Notice:
    data = json.loads(payload)
    return Notice(str(data["kind"]), str(data["feed"]), str(data["message"]), float(data["at"]))


def _json_dict(item: Deliverable) -> dict[str, Any]:
    """The old `to_dict`, with its encode → decode of the event and the notice."""
    if isinstance(item, Alert):
        return {"type": "alert", "id": item.id, "channel": item.channel, "rule": item.rule,
                "event": json.loads(_json_event(item.event)), "sources": list(item.sources),
                "hits": [list(h) for h in item.match.hits]}
    if isinstance(item, OperatorNotice):
        return {"type": "notice", "id": item.id, "channel": item.channel,
                "notice": json.loads(_json_notice(item.notice)), "feed_url": item.feed_url}
    return {"type": "digest", "id": item.id, "channel": item.channel, "since": item.since,
            "until": item.until, "reason": item.reason,
            "items": [_json_dict(part) for part in item.items]}


def _json_item(data: dict[str, Any]) -> Deliverable:
    if data["type"] == "alert":
        hits = tuple(Hit(str(t), f, int(s), int(e)) for t, f, s, e in data["hits"])
        return Alert(data["id"], _json_event_back(json.dumps(data["event"])), data["rule"],
                     data["channel"], RuleMatch(data["rule"], hits), tuple(data["sources"]))
    if data["type"] == "notice":
        return OperatorNotice(data["id"], _json_notice_back(json.dumps(data["notice"])),
                              data["channel"], data.get("feed_url"))
    return Digest(data["id"], data["channel"],
                  tuple(_json_item(p) for p in data["items"]),
                  float(data["since"]), float(data["until"]), str(data["reason"]))


# --- pydantic TypeAdapter over the same wire records ---

class _PAlert(TypedDict):
    type: Literal["alert"]
    id: str
    channel: str
    rule: str
    event: Event
    sources: tuple[str, ...]
    hits: tuple[Hit, ...]


class _PNotice(TypedDict):
    type: Literal["notice"]
    id: str
    channel: str
    notice: Notice
    feed_url: str | None


class _PDigest(TypedDict):
    type: Literal["digest"]
    id: str
    channel: str
    since: float
    until: float
    reason: str
    items: list[Annotated[_PAlert | _PNotice, Field(discriminator="type")]]


_PRecord = TypeAdapter(Annotated[_PAlert | _PNotice | _PDigest, Field(discriminator="type")])
_PEvent, _PNoticeAdapter = TypeAdapter(Event), TypeAdapter(Notice)


def _p_record(item: Deliverable) -> dict[str, Any]:
    if isinstance(item, Alert):
        return {"type": "alert", "id": item.id, "channel": item.channel, "rule": item.rule,
                "event": item.event, "sources": item.sources, "hits": item.match.hits}
    if isinstance(item, OperatorNotice):
        return {"type": "notice", "id": item.id, "channel": item.channel,
                "notice": item.notice, "feed_url": item.feed_url}
    return {"type": "digest", "id": item.id, "channel": item.channel, "since": item.since,
            "until": item.until, "reason": item.reason,
            "items": [_p_record(part) for part in item.items]}


def _p_item(data: Any) -> Deliverable:
    if data["type"] == "alert":
        return Alert(data["id"], data["event"], data["rule"], data["channel"],
                     RuleMatch(data["rule"], data["hits"]), data["sources"])
    if data["type"] == "notice":
        return OperatorNotice(data["id"], data["notice"], data["channel"], data["feed_url"])
    return Digest(data["id"], data["channel"], tuple(_p_item(p) for p in data["items"]),
                  data["since"], data["until"], data["reason"])


Codec = tuple[Callable[[Any], str | bytes], Callable[[Any], Any]]


def codecs(kind: str) -> dict[str, Codec]:
    """(encode, decode) of each implementation for one payload type."""
    if kind == "Event":
        return {"json": (_json_event, _json_event_back),
                "pydantic": (_PEvent.dump_json, _PEvent.validate_json),
                "msgspec": (Event.encode, Event.decode)}
    if kind == "Notice":
        return {"json": (_json_notice, _json_notice_back),
                "pydantic": (_PNoticeAdapter.dump_json, _PNoticeAdapter.validate_json),
                "msgspec": (Notice.encode, Notice.decode)}
    return {"json": (lambda i: json.dumps(_json_dict(i), ensure_ascii=False,
                                          separators=(",", ":")),
                     lambda p: _json_item(json.loads(p))),
            "pydantic": (lambda i: _PRecord.dump_json(_p_record(i)),
                         lambda p: _p_item(_PRecord.validate_json(p))),
            "msgspec": (digest.encode, digest.decode)}


def per_call_us(call: Callable[[], object], budget: float = 0.03) -> float:
    """Best of 5 runs of about `budget` seconds each, in µs per call."""
    timer = timeit.Timer(call)
    number = max(1, int(budget / max(timer.timeit(10) / 10, 1e-7)))
    return min(timer.repeat(5, number)) / number * 1e6


def main() -> None:
    """Print the table: bytes on the wire, then µs per encode / decode per implementation."""
    names = ("json", "pydantic", "msgspec")
    print(f"{'payload':<31}{'bytes':>7}  " + "  ".join(f"{n + ' enc/dec µs':>22}" for n in names))
    for kind, item in samples().items():
        family = kind.split()[0] if kind.split()[0] in ("Event", "Notice") else "Deliverable"
        row = []
        wire = b""
        for name, (enc, dec) in codecs(family).items():
            payload = enc(item)
            assert dec(payload) == item, f"{name} does not round-trip {kind}"
            wire = payload.encode() if isinstance(payload, str) else payload
            row.append(f"{per_call_us(partial(enc, item)):>10.1f} /"
                       f"{per_call_us(partial(dec, payload)):>9.1f}")
        assert names == tuple(codecs(family))
        print(f"{kind:<31}{len(wire):>7}  " + "  ".join(f"{cell:>22}" for cell in row))


if __name__ == "__main__":
    main()
