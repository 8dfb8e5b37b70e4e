"""Pure rendering: an alert (event × rule match × channel) as webhook JSON or an email. No I/O.

Every piece of feed text is untrusted: it is escaped in HTML, links are kept only with an http(s)
scheme, and header values are stripped of line breaks and control characters.
"""

from __future__ import annotations

import hashlib
import html
import json
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlsplit

from monitor.config.models import EmailChannelSettings
from monitor.core.models import Event
from workers.match.matcher import Hit, RuleMatch, Span, snippet, snippets

#: At most this many matches are listed in a webhook body (a common word can hit many times).
MAX_MATCHES = 50
SUBJECT_MAX = 200
SNIPPET_WIDTH = 200
_EVENT_NAMES = {"new": "new entry", "updated": "updated entry"}
_UNSAFE_HEADER_CHARS = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def alert_id(feed: str, entry_id: str, rule: str, channel: str, version: str) -> str:
    """Stable id of one alert on one channel: `lw_` + 32 hex chars of a SHA-256."""
    key = json.dumps([feed, entry_id, rule, channel, version], ensure_ascii=False)
    return "lw_" + hashlib.sha256(key.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Alert:
    """What one channel is told about one rule matching one version of one entry."""

    id: str
    event: Event
    rule: str
    channel: str
    match: RuleMatch
    #: Feeds that carried this text (rules with `group_across_feeds`); empty otherwise.
    sources: tuple[str, ...] = ()
    #: One-click console links, (`open` | `mute` | `ack`, URL), when the console is set up
    #: (`workers.console.links`); shown by email, Slack, Discord, Teams and the webhook.
    actions: tuple[tuple[str, str], ...] = ()


def make_alert(event: Event, match: RuleMatch, channel: str,
               sources: tuple[str, ...] = (),
               links: Callable[[Alert], tuple[tuple[str, str], ...]] | None = None) -> Alert:
    """The alert for `match` on `channel`; its id is the same on every retry and re-handling.
    `links` makes its one-click console links."""
    ident = alert_id(event.feed, event.entry.id, match.rule, channel, event.version)
    alert = Alert(id=ident, event=event, rule=match.rule, channel=channel, match=match,
                  sources=sources)
    return replace(alert, actions=links(alert)) if links is not None else alert


#: How each one-click link is labelled.
ACTION_LABELS = {"open": "Open in console", "mute": "Mute this rule for 1 h",
                 "ack": "Acknowledge"}


def action_links(alert: Alert) -> list[tuple[str, str]]:
    """(label, URL) of the alert's one-click links, in order."""
    return [(ACTION_LABELS.get(kind, kind), url) for kind, url in alert.actions]


def _field_text(event: Event, hit: Hit) -> str:
    if hit.field == "author":
        return event.entry.author or ""
    return event.entry.title if hit.field == "title" else event.entry.text


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def detected_at(alert: Alert) -> datetime:
    """When the event was detected, as an aware UTC datetime."""
    return datetime.fromtimestamp(alert.event.detected_at, UTC)


def webhook_payload(alert: Alert) -> dict[str, Any]:
    """The JSON body of the generic webhook (see "Webhook contract" in the architecture docs)."""
    event, entry = alert.event, alert.event.entry
    matches = []
    for hit in alert.match.hits[:MAX_MATCHES]:
        same_field = [h for h in alert.match.hits if h.field == hit.field and h is not hit]
        text, _ = snippet(_field_text(event, hit), [hit, *same_field], SNIPPET_WIDTH)
        matches.append({"term": hit.term, "field": hit.field, "start": hit.start,
                        "end": hit.end, "snippet": text})
    return {
        "type": "alert",
        "id": alert.id,
        "event": event.kind,
        "rule": alert.rule,
        "feed": {"name": event.feed, "url": event.feed_url},
        "entry": {"id": entry.id, "url": safe_link(entry.url), "title": entry.title,
                  "author": entry.author, "published": _iso(entry.published),
                  "updated": _iso(entry.updated), "text": entry.text},
        "matches": matches,
        "detected_at": detected_at(alert).isoformat(),
        **({"sources": list(alert.sources)} if alert.sources else {}),
        **({"links": dict(alert.actions)} if alert.actions else {}),
    }


def safe_link(url: str | None) -> str | None:
    """`url` if it is an absolute http(s) URL without whitespace or control characters."""
    if not url:
        return None
    url = url.strip()
    if any(c.isspace() or unicodedata.category(c) in _UNSAFE_HEADER_CHARS for c in url):
        return None
    parts = urlsplit(url)
    return url if parts.scheme.lower() in ("http", "https") and parts.netloc else None


def header_text(value: str, limit: int = SUBJECT_MAX) -> str:
    """One line of text for a header: controls and line breaks removed, spaces collapsed, capped."""
    cleaned = "".join(" " if unicodedata.category(c) in _UNSAFE_HEADER_CHARS else c
                      for c in value)
    line = " ".join(cleaned.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def alert_title(alert: Alert) -> str:
    """What to call the entry: its title, else the start of its text, else its id."""
    entry = alert.event.entry
    return entry.title or entry.text[:120] or entry.id


def mark_html(text: str, spans: Sequence[Span]) -> str:
    """`text` HTML-escaped with `spans` in `<mark>`."""
    out, pos = [], 0
    for start, end in spans:
        out += [html.escape(text[pos:start]), "<mark>", html.escape(text[start:end]), "</mark>"]
        pos = end
    out.append(html.escape(text[pos:]))
    return "".join(out)


def alert_snippets(alert: Alert) -> list[tuple[str, list[Span]]]:
    """Text snippets around the hits in the entry text (title hits are marked in the title)."""
    text_hits = [h for h in alert.match.hits if h.field == "text"]
    return snippets(alert.event.entry.text, text_hits, SNIPPET_WIDTH, limit=3)


def _facts(alert: Alert) -> list[tuple[str, str]]:
    event, entry = alert.event, alert.event.entry
    facts = [("Rule", alert.rule), ("Matched", ", ".join(sorted(alert.match.terms))),
             ("Feed", event.feed), ("Event", _EVENT_NAMES.get(event.kind, event.kind))]
    if len(alert.sources) > 1:
        facts.append(("Carried by", ", ".join(alert.sources)))
    if entry.author:
        facts.append(("Author", entry.author))
    for label, value in (("Published", entry.published), ("Updated", entry.updated)):
        if value is not None:
            facts.append((label, value.isoformat(sep=" ", timespec="minutes")))
    facts.append(("Detected", detected_at(alert).isoformat(sep=" ", timespec="seconds")))
    return facts


def email_text(alert: Alert) -> str:
    """The plain-text body of the alert email."""
    link = safe_link(alert.event.entry.url)
    lines = [alert_title(alert), ""]
    lines += [f"  {text}" for text, _ in alert_snippets(alert)]
    if link:
        lines += ["", f"Read it: {link}"]
    if alert.actions:
        lines.append("")
        lines += [f"{label}: {url}" for label, url in action_links(alert)]
    lines.append("")
    lines += [f"{label}: {value}" for label, value in _facts(alert)]
    lines += ["", f"Alert id: {alert.id}"]
    return "\n".join(lines) + "\n"


def title_html(alert: Alert) -> str:
    """The entry's title HTML-escaped, with title hits in `<mark>`."""
    entry = alert.event.entry
    title_hits = [h for h in alert.match.hits if h.field == "title"]
    if not entry.title:
        return html.escape(alert_title(alert))
    if not title_hits:
        return html.escape(entry.title)
    title_text, title_spans = snippet(entry.title, title_hits, len(entry.title) + 1)
    return mark_html(title_text, title_spans)


def email_html(alert: Alert) -> str:
    """The HTML body of the alert email; all feed text escaped, hits in `<mark>`."""
    entry = alert.event.entry
    title = title_html(alert)
    link = safe_link(entry.url)
    if link:
        title = f'<a href="{html.escape(link, quote=True)}">{title}</a>'
    parts = ["<!DOCTYPE html>", '<html><head><meta charset="utf-8"></head><body>',
             f"<h2>{title}</h2>"]
    parts += [f"<blockquote><p>{mark_html(text, spans)}</p></blockquote>"
              for text, spans in alert_snippets(alert)]
    if link:
        safe = html.escape(link, quote=True)
        parts.append(f'<p><a href="{safe}">{html.escape(link)}</a></p>')
    if alert.actions:
        parts.append("<p>" + " · ".join(
            f'<a href="{html.escape(url, quote=True)}">{html.escape(label)}</a>'
            for label, url in action_links(alert)) + "</p>")
    parts.append("<table>")
    parts += [f"<tr><th align=\"left\">{html.escape(label)}</th><td>{html.escape(value)}</td></tr>"
              for label, value in _facts(alert)]
    parts += ["</table>", f"<p><small>Alert id {html.escape(alert.id)}</small></p>",
              "</body></html>"]
    return "\n".join(parts) + "\n"


def email_subject(alert: Alert, prefix: str) -> str:
    """`{prefix} {rule}: {title}` on one line, at most SUBJECT_MAX characters."""
    return header_text(f"{prefix} {alert.rule}: {alert_title(alert)}")


def thread_root(feed: str, day: date) -> str:
    """The Message-ID of the (never sent) root message that threads `feed`'s alerts of `day`."""
    key = json.dumps([feed, day.isoformat()], ensure_ascii=False)
    return f"<lw-thread.{hashlib.sha256(key.encode()).hexdigest()[:32]}@livewatch>"


def email_message(alert: Alert, channel: EmailChannelSettings) -> EmailMessage:
    """A multipart/alternative (text + HTML) email; the Message-ID is derived from the alert id,
    and `In-Reply-To`/`References` name one thread per feed per UTC day (`thread_root`)."""
    message = EmailMessage()
    detected = detected_at(alert)
    root = thread_root(alert.event.feed, detected.date())
    message["Subject"] = email_subject(alert, channel.subject_prefix)
    message["From"] = channel.sender
    message["To"] = ", ".join(channel.to)
    message["Date"] = format_datetime(detected)
    message["Message-ID"] = f"<{alert.id}@livewatch>"
    message["In-Reply-To"] = root
    message["References"] = root
    message["Auto-Submitted"] = "auto-generated"
    message["X-Livewatch-Alert"] = alert.id
    message.set_content(email_text(alert))
    message.add_alternative(email_html(alert), subtype="html")
    return message
