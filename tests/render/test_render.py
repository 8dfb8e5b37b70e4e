"""workers.render.alert: alert ids, the webhook body, and the text + HTML email."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from email.message import EmailMessage

import pytest

from monitor.config.models import EmailChannelSettings, RuleSettings
from monitor.core.models import Entry, Event
from workers.match.matcher import Matcher, RuleMatch
from workers.render.alert import (
    SUBJECT_MAX,
    Alert,
    alert_id,
    email_message,
    header_text,
    make_alert,
    safe_link,
    thread_root,
    webhook_payload,
)

RULES = [RuleSettings(name="coalition", any=["coalition of the willing", "£2bn"],
                      channels=["desk"])]
TEXT = ("Ministers briefed MPs at 11.05am.\n\nThe PM said the “coalition of the willing” would "
        "need £2bn a year, a figure the Treasury has not confirmed.")
EMAIL = EmailChannelSettings.model_validate({
    "name": "editors", "type": "email", "to": ["desk@example.org", "night@example.org"],
    "from": "Livewatch <livewatch@example.org>", "smtp": {"host": "127.0.0.1", "port": 2525}})


def make_event(title: str = "Summit live: PM’s statement", text: str = TEXT,
               url: str | None = "https://news.example.org/live/summit#p7",
               author: str | None = "Political staff") -> Event:
    entry = Entry(id="p7", url=url, title=title, text=text, author=author,
                  published=datetime(2025, 3, 2, 11, 5, tzinfo=UTC))
    return Event(kind="new", feed="summit-live", feed_url="https://news.example.org/live/summit",
                 entry=entry, version=entry.version, detected_at=1_740_913_500.0)


def alert_for(event: Event, channel: str = "editors") -> Alert:
    (match,) = Matcher(RULES).match(event.feed, event.entry.title, event.entry.text)
    return make_alert(event, match, channel)


def parts(message: EmailMessage) -> dict[str, str]:
    return {part.get_content_type(): str(part.get_content())
            for part in message.iter_parts()}


def test_alert_id_is_stable_and_distinct() -> None:
    ident = alert_id("feed", "entry", "rule", "chan", "v1")
    assert ident == alert_id("feed", "entry", "rule", "chan", "v1")
    assert ident.startswith("lw_") and len(ident) == 35
    int(ident[3:], 16)
    others = {alert_id("feed", "entry", "rule", "chan2", "v1"),
              alert_id("feed", "entry", "rule", "chan", "v2"),
              alert_id("feed", "entry", "rule2", "chan", "v1"),
              alert_id("feed2", "entry", "rule", "chan", "v1"),
              alert_id("feed", "entryrule", "", "chan", "v1")}
    assert ident not in others and len(others) == 5


def test_make_alert_uses_event_version() -> None:
    event = make_event()
    alert = alert_for(event)
    assert alert.id == alert_id("summit-live", "p7", "coalition", "editors", event.version)
    assert alert.id == alert_for(make_event()).id
    assert alert.id != alert_for(make_event(text=TEXT + " Update.")).id
    assert alert.id != alert_for(event, channel="newsdesk").id


def test_webhook_payload_shape() -> None:
    alert = alert_for(make_event())
    body = webhook_payload(alert)
    assert json.loads(json.dumps(body)) == body
    assert set(body) == {"type", "id", "event", "rule", "feed", "entry", "matches", "detected_at"}
    assert body["type"] == "alert" and body["id"] == alert.id and body["event"] == "new"
    assert body["rule"] == "coalition"
    assert body["feed"] == {"name": "summit-live", "url": "https://news.example.org/live/summit"}
    assert body["entry"] == {
        "id": "p7", "url": "https://news.example.org/live/summit#p7",
        "title": "Summit live: PM’s statement", "author": "Political staff",
        "published": "2025-03-02T11:05:00+00:00", "updated": None, "text": TEXT}
    assert [(m["term"], m["field"]) for m in body["matches"]] == [
        ("coalition of the willing", "text"), ("£2bn", "text")]
    for m in body["matches"]:
        assert set(m) == {"term", "field", "start", "end", "snippet"}
        assert TEXT[m["start"]:m["end"]].lower() == m["term"].lower()
        assert "<" not in m["snippet"] and "\n" not in m["snippet"]
        assert TEXT[m["start"]:m["end"]] in m["snippet"]
    assert body["detected_at"] == "2025-03-02T11:05:00+00:00"


def test_email_is_multipart_with_stable_headers() -> None:
    alert = alert_for(make_event())
    message = email_message(alert, EMAIL)
    assert message.get_content_type() == "multipart/alternative"
    body = parts(message)
    assert set(body) == {"text/plain", "text/html"}
    assert message["Message-ID"] == f"<{alert.id}@livewatch>"
    assert email_message(alert, EMAIL)["Message-ID"] == message["Message-ID"]
    assert message["From"] == "Livewatch <livewatch@example.org>"
    assert message["To"] == "desk@example.org, night@example.org"
    assert message["Subject"] == "[livewatch] coalition: Summit live: PM’s statement"
    assert message["Date"]
    text, page = body["text/plain"], body["text/html"]
    for needle in ("Summit live: PM’s statement", "coalition of the willing", "£2bn",
                   "https://news.example.org/live/summit#p7", "Political staff", "summit-live",
                   "new entry", "2025-03-02 11:05"):
        assert needle in text
    assert "**" not in text and "<" not in text
    assert "<mark>coalition of the willing</mark>" in page and "<mark>£2bn</mark>" in page
    assert 'href="https://news.example.org/live/summit#p7"' in page


HOSTILE_TEXT = ('<script>alert("x")</script> The coalition of the willing & “friends” '
                "<img src=x onerror=alert(1)>")


def test_email_html_escapes_feed_text() -> None:
    event = make_event(title='<script>steal()</script> "Coalition"', text=HOSTILE_TEXT,
                       author="<b>Staff</b>", url='https://news.example.org/a?x="><script>')
    page = parts(email_message(alert_for(event), EMAIL))["text/html"]
    assert "<script" not in page and "<img" not in page and "<b>" not in page
    assert "&lt;script&gt;steal()&lt;/script&gt;" in page
    assert "&lt;b&gt;Staff&lt;/b&gt;" in page
    assert 'href="https://news.example.org/a?x=&quot;&gt;&lt;script&gt;"' in page
    assert "<mark>coalition of the willing</mark> &amp; “friends”" in page


@pytest.mark.parametrize("url", [
    "javascript:alert(document.cookie)", " JavaScript:alert(1)", "data:text/html,<b>x</b>",
    "//evil.example.org/x", "vbscript:msgbox", "https://ok.example.org/\nx", None, ""])
def test_email_drops_unsafe_links(url: str | None) -> None:
    message = email_message(alert_for(make_event(url=url)), EMAIL)
    body = parts(message)
    assert "href" not in body["text/html"]
    assert "javascript" not in body["text/html"].lower()
    assert "Read it:" not in body["text/plain"]
    assert safe_link(url) is None


def test_subject_strips_line_breaks_and_controls() -> None:
    title = "Coalition latest\r\nBcc: victim@example.org\x00\x1b[31m\u2028next"
    message = email_message(alert_for(make_event(title=title)), EMAIL)
    subject = str(message["Subject"])
    assert "\n" not in subject and "\r" not in subject and "\x00" not in subject
    assert subject == "[livewatch] coalition: Coalition latest Bcc: victim@example.org [31m next"
    assert "Bcc" not in {k for k in message}


def test_subject_is_capped() -> None:
    message = email_message(alert_for(make_event(title="Coalition update " * 40)), EMAIL)
    subject = str(message["Subject"])
    assert len(subject) <= SUBJECT_MAX and subject.endswith("…")


def test_header_text() -> None:
    assert header_text("a\tb\n\nc\x7f d") == "a b c d"
    assert header_text("x" * 10, limit=5) == "xxxx…"


def test_title_hits_are_marked_in_html() -> None:
    event = make_event(title="Coalition of the willing: live", text="No detail yet.")
    matches = Matcher(RULES).match(event.feed, event.entry.title, event.entry.text)
    alert = make_alert(event, matches[0], "editors")
    page = parts(email_message(alert, EMAIL))["text/html"]
    assert "<mark>Coalition of the willing</mark>: live" in page


def test_empty_match_renders() -> None:
    alert = make_alert(make_event(), RuleMatch("coalition", ()), "editors")
    assert webhook_payload(alert)["matches"] == []
    assert set(parts(email_message(alert, EMAIL))) == {"text/plain", "text/html"}


def test_webhook_payload_drops_non_http_entry_links() -> None:
    from monitor.core.models import Entry, Event
    from workers.match.matcher import Hit, RuleMatch
    from workers.render.alert import make_alert, webhook_payload

    entry = Entry(id="x", url="javascript:alert(1)", title="t", text="coalition")
    event = Event(kind="new", feed="f", feed_url="https://example.org/f", entry=entry,
                  version=entry.version, detected_at=1.0)
    alert = make_alert(event, RuleMatch("r", (Hit("coalition", "text", 0, 9),)), "c")
    assert webhook_payload(alert)["entry"]["url"] is None


def test_email_threads_one_feed_per_utc_day() -> None:
    def thread(feed: str = "summit-live", detected_at: float = 1_740_913_500.0,
               entry: str = "p7") -> tuple[str, str, str]:
        base = make_event()
        event = Event(kind="new", feed=feed, feed_url=base.feed_url,
                      entry=Entry(id=entry, url=base.entry.url, title=base.entry.title,
                                  text=base.entry.text), version=base.version,
                      detected_at=detected_at)
        message = email_message(alert_for(event), EMAIL)
        return message["Message-ID"], message["In-Reply-To"], message["References"]

    first_id, root, refs = thread()
    assert root == refs and root.startswith("<lw-thread.") and root.endswith("@livewatch>")
    assert root == thread_root("summit-live", date(2025, 3, 2))
    # another entry of the feed later the same (UTC) day: another message, the same thread
    later_id, later_root, _ = thread(entry="p8", detected_at=1_740_913_500.0 + 10 * 3600)
    assert later_id != first_id and later_root == root
    # another feed, or the next day: another thread
    assert thread(feed="wires")[1] != root
    assert thread(detected_at=1_740_913_500.0 + 86400)[1] != root
    assert thread_root("summit-live", date(2025, 3, 3)) != root
