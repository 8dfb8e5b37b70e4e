"""Pure rendering of a `Digest` (several alerts and notices for one channel, sent as one message)
as webhook JSON or as one email. No I/O; chat services lay digests out in `workers.render.chat`.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from monitor.config.models import EmailChannelSettings
from workers.outbox.codec import Digest
from workers.render.alert import (
    Alert,
    alert_snippets,
    alert_title,
    detected_at,
    header_text,
    mark_html,
    safe_link,
    title_html,
    webhook_payload,
)
from workers.render.notices import OperatorNotice, notice_payload

#: An email lists at most this many items; the rest are counted ("… and 12 more").
EMAIL_MAX_ITEMS = 200


def _when(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def digest_summary(digest: Digest) -> str:
    """`12 alerts, 1 notice — 10-minute digest` (plain text)."""
    counts = [f"{count} {noun}{'' if count == 1 else 's'}"
              for count, noun in ((len(digest.alerts), "alert"), (len(digest.notices), "notice"))
              if count]
    return f"{', '.join(counts) or 'nothing'} — {digest.reason}"


def digest_window(digest: Digest) -> str:
    """`2026-03-02 14:00 – 14:10 UTC` (the date repeated only when the window spans days)."""
    since, until = _when(digest.since), _when(digest.until)
    end = until.strftime("%H:%M" if since.date() == until.date() else "%Y-%m-%d %H:%M")
    return f"{since:%Y-%m-%d %H:%M} – {end} UTC"


def digest_payload(digest: Digest) -> dict[str, Any]:
    """Webhook body: `{"type": "digest", "id", "channel", "reason", "since", "until",
    "alerts": [webhook_payload…], "notices": [notice_payload…]}` (times ISO 8601, UTC)."""
    return {"type": "digest", "id": digest.id, "channel": digest.channel,
            "reason": digest.reason, "since": _when(digest.since).isoformat(),
            "until": _when(digest.until).isoformat(),
            "alerts": [webhook_payload(alert) for alert in digest.alerts],
            "notices": [notice_payload(notice) for notice in digest.notices]}


def _facts(alert: Alert) -> str:
    return (f"Rule: {alert.rule} · Feed: {alert.event.feed} · "
            f"Detected: {detected_at(alert):%Y-%m-%d %H:%M:%S} UTC")


def _notice_line(item: OperatorNotice) -> str:
    notice = item.notice
    return f"feed {notice.feed}: {notice.kind} — {notice.message}"


def digest_text(digest: Digest) -> str:
    """The plain-text body of a digest email."""
    lines = [digest_summary(digest), digest_window(digest), ""]
    alerts, notices = digest.alerts, digest.notices
    for number, alert in enumerate(alerts[:EMAIL_MAX_ITEMS], 1):
        lines.append(f"{number}. {' '.join(alert_title(alert).split())}")
        link = safe_link(alert.event.entry.url)
        if link:
            lines.append(f"   {link}")
        lines += [f"   > {text}" for text, _ in alert_snippets(alert)[:1]]
        lines += [f"   {_facts(alert)}", ""]
    if len(alerts) > EMAIL_MAX_ITEMS:
        lines += [f"… and {len(alerts) - EMAIL_MAX_ITEMS} more", ""]
    if notices:
        lines.append("Notices:")
        lines += [f"- {_notice_line(item)}" for item in notices[:EMAIL_MAX_ITEMS]]
        if len(notices) > EMAIL_MAX_ITEMS:
            lines.append(f"… and {len(notices) - EMAIL_MAX_ITEMS} more")
        lines.append("")
    lines.append(f"Digest id: {digest.id}")
    return "\n".join(lines) + "\n"


def digest_html(digest: Digest) -> str:
    """The HTML body of a digest email: all feed text escaped, hits in `<mark>`."""
    parts = ["<!DOCTYPE html>", '<html><head><meta charset="utf-8"></head><body>',
             f"<h2>{html.escape(digest_summary(digest))}</h2>",
             f"<p>{html.escape(digest_window(digest))}</p>"]
    alerts, notices = digest.alerts, digest.notices
    if alerts:
        parts.append("<ol>")
    for alert in alerts[:EMAIL_MAX_ITEMS]:
        title = title_html(alert)
        link = safe_link(alert.event.entry.url)
        if link:
            title = f'<a href="{html.escape(link, quote=True)}">{title}</a>'
        parts.append(f"<li><p><strong>{title}</strong></p>")
        parts += [f"<blockquote><p>{mark_html(text, spans)}</p></blockquote>"
                  for text, spans in alert_snippets(alert)[:1]]
        parts.append(f"<p><small>{html.escape(_facts(alert))}</small></p></li>")
    if alerts:
        parts.append("</ol>")
    if len(alerts) > EMAIL_MAX_ITEMS:
        parts.append(f"<p>… and {len(alerts) - EMAIL_MAX_ITEMS} more</p>")
    if notices:
        parts.append("<h3>Notices</h3><ul>")
        parts += [f"<li>{html.escape(_notice_line(item))}</li>"
                  for item in notices[:EMAIL_MAX_ITEMS]]
        parts.append("</ul>")
        if len(notices) > EMAIL_MAX_ITEMS:
            parts.append(f"<p>… and {len(notices) - EMAIL_MAX_ITEMS} more</p>")
    parts += [f"<p><small>Digest id {html.escape(digest.id)}</small></p>", "</body></html>"]
    return "\n".join(parts) + "\n"


def digest_email(digest: Digest, channel: EmailChannelSettings) -> EmailMessage:
    """One text + HTML email listing every item; the Message-ID is derived from the digest id."""
    message = EmailMessage()
    message["Subject"] = header_text(f"{channel.subject_prefix} {digest_summary(digest)}")
    message["From"] = channel.sender
    message["To"] = ", ".join(channel.to)
    message["Date"] = format_datetime(_when(digest.until))
    message["Message-ID"] = f"<{digest.id}@livewatch>"
    message["Auto-Submitted"] = "auto-generated"
    message["X-Livewatch-Digest"] = digest.id
    message.set_content(digest_text(digest))
    message.add_alternative(digest_html(digest), subtype="html")
    return message
