"""One-click console links in alerts: every channel's message carries them, signed and
single-purpose; without a console nothing is added."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

from test_render import EMAIL, alert_for, make_event, parts

from monitor.config.loader import parse_config
from monitor.config.models import DiscordChannelSettings, SlackChannelSettings
from workers.channels.discord import discord_payload
from workers.channels.slack import slack_payload
from workers.channels.teams import teams_payload
from workers.console.alerts import group_id
from workers.console.auth import Auth
from workers.console.links import console_links
from workers.outbox.codec import decode, encode
from workers.render.alert import email_message, make_alert, webhook_payload

CONSOLE = """
console:
  listen: "127.0.0.1:9109"
  public_url: "https://lw.example.org/"
  tokens: [{name: desk, token: "desk-token-0123456789", scope: admin}]
  signing_key: "a-signing-key-of-at-least-32-characters"
"""


def linked_alert():  # type: ignore[no-untyped-def]
    config = parse_config(CONSOLE, "x.yaml", {})
    plain = alert_for(make_event())
    links = console_links(config)
    assert links is not None
    return config, make_alert(plain.event, plain.match, plain.channel, links=links)


def test_links_are_signed_single_purpose_and_survive_the_outbox() -> None:
    config, alert = linked_alert()
    actions = dict(alert.actions)
    assert actions["open"] == f"https://lw.example.org/console/alerts/{group_id(alert)}"
    auth = Auth(config.console)
    mute = parse_qs(urlsplit(actions["mute"]).query)["t"][0]
    assert auth.open_link(mute) == ("mute", {"rule": "coalition", "feed": "summit-live",
                                             "for": "3600", "channel": "editors"})
    ack = parse_qs(urlsplit(actions["ack"]).query)["t"][0]
    assert auth.open_link(ack) == ("ack", {"alert": group_id(alert), "channel": "editors"})
    assert decode(encode(alert)) == alert


def test_every_channel_shows_the_links() -> None:
    _, alert = linked_alert()
    urls = [url for _, url in alert.actions]
    mail = parts(email_message(alert, EMAIL))
    assert all(url in mail["text/plain"] for url in urls)
    assert "Mute this rule for 1 h" in mail["text/html"]
    assert all(url.replace("&", "&amp;") in mail["text/html"] for url in urls)
    slack = slack_payload(alert, SlackChannelSettings.model_validate(
        {"name": "s", "type": "slack", "url": "https://hooks.slack.com/services/T/B/x"}))
    buttons = next(b for b in slack["blocks"] if b["type"] == "actions")["elements"]
    assert [b["url"] for b in buttons] == urls
    discord = discord_payload(alert, DiscordChannelSettings.model_validate(
        {"name": "d", "type": "discord", "url": "https://discord.com/api/webhooks/1/x"}))
    assert all(url in json.dumps(discord) for url in urls)
    card = teams_payload(alert)["attachments"][0]["content"]
    assert [a["url"] for a in card["actions"]][1:] == urls
    assert webhook_payload(alert)["links"] == dict(alert.actions)


def test_no_console_no_links() -> None:
    assert console_links(parse_config("feeds: []\n", "x.yaml", {})) is None
    alert = alert_for(make_event())
    assert alert.actions == () and "links" not in webhook_payload(alert)
    assert "Mute" not in parts(email_message(alert, EMAIL))["text/plain"]
