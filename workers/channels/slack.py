"""Slack incoming webhook: Block Kit `section`/`context` blocks in mrkdwn plus a `text` fallback
for notifications. Every mrkdwn text object is `verbatim` (Slack auto-links and auto-mentions
nothing) and feed text is escaped by `workers.render.chat` (`SLACK` dialect); the title links to the
entry's permalink, the only link. A section's text is at most 3000 characters.
"""

from __future__ import annotations

from typing import Any

from monitor.config.models import SlackChannelSettings
from workers.channels.chathook import ChatWebhookChannel, with_sender
from workers.outbox.codec import Deliverable
from workers.render.alert import Alert, action_links, alert_title
from workers.render.chat import (
    SLACK,
    alert_text,
    digest_heading,
    digest_lines,
    marked,
    notice_text,
)
from workers.render.digest import digest_summary, digest_window
from workers.render.notices import OperatorNotice

SECTION_MAX = 3000
#: Characters of digest lines in all (spread over sections of at most SECTION_MAX).
DIGEST_MAX = 12_000
FALLBACK_MAX = 300


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _mrkdwn(text)}


def _pack(lines: list[str], limit: int = SECTION_MAX) -> list[str]:
    """Lines joined into as few texts of at most `limit` characters as they fit in."""
    texts: list[str] = []
    for line in lines:
        if texts and len(texts[-1]) + 1 + len(line) <= limit:
            texts[-1] += "\n" + line
        else:
            texts.append(line[:limit])
    return texts


def alert_blocks(alert: Alert) -> list[dict[str, Any]]:
    """Title (linked), quoted snippets with the hits in bold, then rule, feed and time."""
    text = alert_text(alert, SLACK, title_limit=250, snippet_limit=900)
    blocks = [_section(f"*{text.headline}*")]
    if text.snippets:
        blocks.append(_section("\n".join(f"> {s}" for s in text.snippets)))
    facts = [f"Rule *{text.rule}*", f"Feed *{text.feed}*", text.event,
             f"Matched: {text.terms}", f"Detected {text.detected}"]
    if text.sources:
        facts.append(f"Carried by {text.sources}")
    blocks.append({"type": "context", "elements": [_mrkdwn(" · ".join(facts)[:SECTION_MAX])]})
    if alert.actions:
        blocks.append({"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": label}, "url": url,
             "action_id": f"lw_{kind}"}
            for (kind, url), (label, _) in zip(alert.actions, action_links(alert),
                                               strict=True)]})
    return blocks


def slack_payload(item: Deliverable, settings: SlackChannelSettings) -> dict[str, Any]:
    """The webhook body for an alert, an operator notice or a digest."""
    if isinstance(item, Alert):
        fallback = f"{item.rule}: {' '.join(alert_title(item).split())}"
        blocks = alert_blocks(item)
    elif isinstance(item, OperatorNotice):
        headline, message = notice_text(item, SLACK, SECTION_MAX - 400)
        fallback = f"livewatch notice: {item.notice.feed}: {item.notice.kind}"
        blocks = [_section(f":warning: *{headline}*\n{message}")]
    else:
        fallback = digest_summary(item)
        blocks = [_section(f"*{digest_heading(item, SLACK)}*\n{digest_window(item)}")]
        blocks += [_section(text) for text in _pack(digest_lines(item, SLACK, DIGEST_MAX))]
    return with_sender({"text": marked(fallback, (), SLACK, FALLBACK_MAX), "blocks": blocks,
                        "unfurl_links": False, "unfurl_media": False}, settings.username)


class SlackChannel(ChatWebhookChannel[SlackChannelSettings]):
    """Post each alert, notice or digest to a Slack incoming webhook."""

    kind = "slack"
    settings_class = SlackChannelSettings
    render = staticmethod(slack_payload)
