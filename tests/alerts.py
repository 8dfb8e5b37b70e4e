"""Build alerts, notices and digests for channel tests, and look inside chat payloads."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import Message
from typing import Any

from monitor.config.models import RuleSettings
from monitor.core.models import Entry, Event, Notice
from workers.match.matcher import Matcher
from workers.outbox.codec import Digest
from workers.render.alert import Alert, make_alert
from workers.render.notices import OperatorNotice, make_notice

PERMALINK = "https://news.example.org/live/summit#post-42"
#: 2026-03-02 14:07:12 UTC
DETECTED = datetime(2026, 3, 2, 14, 7, 12, tzinfo=UTC).timestamp()
HOSTILE = ("<!channel> <!here> @everyone @here <@U123ABC> <@&987654> <#C42> "
           "[click](javascript:alert(1)) <script>alert(1)</script> read https://evil.example/x "
           "or evil.example now **bold** __under__ ~~gone~~ `code` ||spoiler|| "
           "# heading <https://evil.example|masked> and the coalition of the willing met.")
RULES = [RuleSettings(name="coalition", any=["coalition of the willing"], channels=["c"])]


def build_alert(channel: str = "c", *, text: str = "The PM said the coalition of the willing "
                "would meet at noon.", title: str = "Summit live: leaders arrive",
                feed: str = "summit-live", url: str | None = PERMALINK,
                detected_at: float = DETECTED, entry_id: str = "post-42") -> Alert:
    entry = Entry(id=entry_id, url=url, title=title, text=text, author="Politics desk",
                  published=datetime(2026, 3, 2, 14, 5, tzinfo=UTC))
    event = Event(kind="new", feed=feed, feed_url=f"https://news.example.org/{feed}.rss",
                  entry=entry, version=entry.version, detected_at=detected_at)
    (match,) = Matcher(RULES).match(feed, title, text)
    return make_alert(event, match, channel)


def build_notice(channel: str = "c", message: str = "12 consecutive polls failed: HTTP 503"
                 ) -> OperatorNotice:
    return make_notice(Notice(kind="failing", feed="summit-live", message=message,
                              at=DETECTED), channel, "https://news.example.org/summit.rss")


def build_digest(items: tuple[Alert | OperatorNotice, ...], channel: str = "c",
                 reason: str = "10-minute digest") -> Digest:
    return Digest(id="lw_d_0123456789abcdef", channel=channel, items=items,
                  since=DETECTED - 600, until=DETECTED, reason=reason)


def many_alerts(count: int, channel: str = "c") -> tuple[Alert, ...]:
    return tuple(build_alert(channel, entry_id=f"post-{i}", url=f"{PERMALINK}-{i}",
                             title=f"Update {i}: the coalition of the willing meets")
                 for i in range(count))


def strings(value: Any, skip: frozenset[str] = frozenset({"$schema"})) -> Iterator[str]:
    """Every string in a JSON value (keys in `skip` left out)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            if key not in skip:
                yield from strings(item, skip)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item, skip)


URL = re.compile(r"[a-z][a-z0-9+.-]*://[^\s<>|()\]\\]*", re.IGNORECASE)


def body_parts(message: Message) -> dict[str, str]:
    """Content type -> decoded text of each leaf part of an email."""
    out = {}
    for part in message.walk():
        if not part.is_multipart():
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            out[part.get_content_type()] = payload.decode(part.get_content_charset() or "utf-8")
    return out
