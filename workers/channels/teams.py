"""Microsoft Teams: an Adaptive Card (1.4) in a `message` envelope, which both Workflows
("Post to a channel when a webhook request is received") and the older incoming webhooks
accept. The title links to the entry's permalink (also an "Open entry" button); feed text is
escaped by `workers.render.chat`'s Markdown dialect, and a card stays well under Teams' 28 KB.
"""

from __future__ import annotations

from typing import Any

from monitor.config.models import TeamsChannelSettings
from workers.channels.chathook import ChatWebhookChannel
from workers.outbox.codec import Deliverable
from workers.render.alert import Alert, action_links
from workers.render.chat import MARKDOWN, alert_text, digest_heading, digest_lines, notice_text
from workers.render.digest import digest_window
from workers.render.notices import OperatorNotice

CARD_VERSION = "1.4"
SNIPPET_MAX = 1500
DIGEST_MAX = 16_000


def _block(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def _card(body: list[dict[str, Any]], actions: list[dict[str, Any]]) -> dict[str, Any]:
    card: dict[str, Any] = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                            "type": "AdaptiveCard", "version": CARD_VERSION, "body": body,
                            "msteams": {"width": "Full"}}
    if actions:
        card["actions"] = actions
    return {"type": "message", "attachments": [
        {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None,
         "content": card}]}


def alert_card(alert: Alert) -> dict[str, Any]:
    """Title (linked), snippets with the hits in bold, and a fact set."""
    text = alert_text(alert, MARKDOWN, title_limit=250, snippet_limit=SNIPPET_MAX)
    body = [_block(text.headline, size="Medium", weight="Bolder")]
    body += [_block(s, spacing="Small") for s in text.snippets]
    facts = [("Rule", text.rule), ("Feed", text.feed), ("Matched", text.terms),
             ("Event", text.event), ("Detected", text.detected)]
    if text.sources:
        facts.append(("Carried by", text.sources))
    body.append({"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in facts]})
    actions = ([{"type": "Action.OpenUrl", "title": "Open entry", "url": text.link}]
               if text.link else [])
    actions += [{"type": "Action.OpenUrl", "title": label, "url": url}
                for label, url in action_links(alert)]
    return _card(body, actions)


def teams_payload(item: Deliverable) -> dict[str, Any]:
    """The webhook body for an alert, an operator notice or a digest."""
    if isinstance(item, Alert):
        return alert_card(item)
    if isinstance(item, OperatorNotice):
        headline, message = notice_text(item, MARKDOWN, SNIPPET_MAX)
        return _card([_block(f"⚠️ {headline}", weight="Bolder", color="Warning"),
                      _block(message)], [])
    body = [_block(digest_heading(item, MARKDOWN), size="Medium", weight="Bolder"),
            _block(digest_window(item), isSubtle=True, spacing="None")]
    body += [_block(line, spacing="Small") for line in digest_lines(item, MARKDOWN, DIGEST_MAX)]
    return _card(body, [])


class TeamsChannel(ChatWebhookChannel[TeamsChannelSettings]):
    """Post each alert, notice or digest as an Adaptive Card to a Teams webhook."""

    kind = "teams"
    settings_class = TeamsChannelSettings

    def payload(self, item: Deliverable) -> dict[str, Any]:
        """The JSON body for `item`."""
        return teams_payload(item)
