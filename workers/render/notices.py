"""Operator notices (flood breaker tripped, feed failing or recovered, Redis state lost)
rendered for channels. Pure, no I/O; a notice is not an alert on content, so it has its own
payload."""

from __future__ import annotations

import hashlib
import html
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from monitor.config.models import EmailChannelSettings
from monitor.core.models import Notice
from workers.render.alert import header_text


@dataclass(frozen=True)
class OperatorNotice:
    """One notice addressed to one channel; `id` is stable across retries."""

    id: str
    notice: Notice
    channel: str
    feed_url: str | None


def make_notice(notice: Notice, channel: str, feed_url: str | None) -> OperatorNotice:
    """The notice for `channel`, with an id derived from what it reports and when."""
    key = json.dumps([notice.feed, notice.kind, notice.at, channel])
    ident = "lw_n_" + hashlib.sha256(key.encode()).hexdigest()[:32]
    return OperatorNotice(ident, notice, channel, feed_url)


def _when(item: OperatorNotice) -> datetime:
    return datetime.fromtimestamp(item.notice.at, UTC)


def notice_payload(item: OperatorNotice) -> dict[str, Any]:
    """Webhook body: `{"type": "notice", "id", "kind", "feed": {name, url}, "message", "at"}`."""
    return {"type": "notice", "id": item.id, "kind": item.notice.kind,
            "feed": {"name": item.notice.feed, "url": item.feed_url},
            "message": item.notice.message, "at": _when(item).isoformat()}


def notice_email(item: OperatorNotice, channel: EmailChannelSettings) -> EmailMessage:
    """A short text + HTML email about the notice."""
    notice = item.notice
    message = EmailMessage()
    message["Subject"] = header_text(
        f"{channel.subject_prefix} notice: feed {notice.feed}: {notice.kind}")
    message["From"] = channel.sender
    message["To"] = ", ".join(channel.to)
    message["Date"] = format_datetime(_when(item))
    message["Message-ID"] = f"<{item.id}@livewatch>"
    message["Auto-Submitted"] = "auto-generated"
    lines = [f"Feed: {notice.feed}" + (f" ({item.feed_url})" if item.feed_url else ""),
             f"Notice: {notice.kind}", f"At: {_when(item).isoformat()}", "", notice.message]
    message.set_content("\n".join(lines) + "\n")
    body = "".join(f"<p>{html.escape(line)}</p>" for line in lines if line)
    message.add_alternative(f"<!doctype html><html><body>{body}</body></html>", subtype="html")
    return message
