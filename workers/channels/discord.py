"""Discord channel webhook: a short `content` line and one embed (title linked to the entry's
permalink through the embed's `url`, highlighted snippets as its description, rule/feed/terms as
fields). `allowed_mentions: {"parse": []}` and `workers.render.chat`'s Markdown escaping keep feed
text from pinging anyone or adding links or markup. Limits: content 2000 characters, embed title
256, description 4096, field value 1024 (we keep them far smaller), 6000 per embed in all.
"""

from __future__ import annotations

from typing import Any

from monitor.config.models import DiscordChannelSettings
from workers.channels.chathook import ChatWebhookChannel, with_sender
from workers.outbox.codec import Deliverable
from workers.render.alert import Alert, action_links, detected_at
from workers.render.chat import MARKDOWN, alert_text, digest_heading, digest_lines, notice_text
from workers.render.digest import digest_window
from workers.render.notices import OperatorNotice

CONTENT_MAX = 2000
TITLE_MAX = 256
DESCRIPTION_MAX = 4096
FIELD_MAX = 256
#: Discord's own limit on a field's value (the console links' field).
LINKS_MAX = 1024
#: Embed colours: alerts blue, notices amber.
ALERT_COLOUR = 0x3B82F6
NOTICE_COLOUR = 0xF59E0B


def _field(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "value": value[:FIELD_MAX] or "-", "inline": True}


def alert_embed(alert: Alert) -> dict[str, Any]:
    """The embed of one alert."""
    text = alert_text(alert, MARKDOWN, title_limit=TITLE_MAX, snippet_limit=1200)
    embed: dict[str, Any] = {"title": text.title, "color": ALERT_COLOUR,
                             "description": "\n\n".join(f"> {s}" for s in text.snippets),
                             "fields": [_field("Rule", text.rule), _field("Feed", text.feed),
                                        _field("Matched", text.terms)],
                             "timestamp": detected_at(alert).isoformat(),
                             "footer": {"text": f"livewatch · {text.event} · {alert.id}"}}
    if text.link:
        embed["url"] = text.link
    if text.sources:
        embed["fields"].append(_field("Carried by", text.sources))
    if alert.actions:
        embed["fields"].append({"name": "Console", "inline": False, "value": " · ".join(
            f"[{label}]({url})" for label, url in action_links(alert))[:LINKS_MAX]})
    return embed


def discord_payload(item: Deliverable, settings: DiscordChannelSettings) -> dict[str, Any]:
    """The webhook body for an alert, an operator notice or a digest."""
    if isinstance(item, Alert):
        text = alert_text(item, MARKDOWN)
        content = f"**{text.rule}** matched in **{text.feed}**"
        embeds = [alert_embed(item)]
    elif isinstance(item, OperatorNotice):
        headline, message = notice_text(item, MARKDOWN, CONTENT_MAX - 400)
        content = f"⚠️ **{headline}**\n{message}"
        embeds = []
    else:
        content = f"**{digest_heading(item, MARKDOWN)}**"
        embeds = [{"title": digest_window(item), "color": ALERT_COLOUR,
                   "description": "\n".join(digest_lines(item, MARKDOWN, DESCRIPTION_MAX))}]
    return with_sender({"content": content[:CONTENT_MAX], "embeds": embeds,
                        "allowed_mentions": {"parse": []}}, settings.username)


class DiscordChannel(ChatWebhookChannel[DiscordChannelSettings]):
    """Post each alert, notice or digest to a Discord webhook."""

    kind = "discord"
    settings_class = DiscordChannelSettings
    render = staticmethod(discord_payload)
