"""Digests rendered for every channel type: webhook JSON (signed), one email, chat lists."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from email.header import decode_header, make_header
from email.message import Message
from typing import Any

import httpx
import pytest
from alerts import (
    DETECTED,
    HOSTILE,
    PERMALINK,
    body_parts,
    build_alert,
    build_digest,
    build_notice,
    many_alerts,
)
from conftest import SmtpServer
from pydantic import TypeAdapter
from servers import WebhookReceiver, wait_until_sync
from standardwebhooks.webhooks import Webhook

from monitor.config.models import AnyChannelSettings, ChannelSettings
from workers.channels import EmailChannel, build_channel
from workers.channels.discord import discord_payload
from workers.channels.slack import slack_payload
from workers.channels.teams import teams_payload
from workers.render.alert import webhook_payload
from workers.render.digest import digest_email, digest_payload, digest_summary
from workers.render.notices import notice_payload

SECRET = "whsec_" + base64.b64encode(b"digest-test-key-0123456789").decode()
ADAPTER: TypeAdapter[AnyChannelSettings] = TypeAdapter(ChannelSettings)


def settings(kind: str, **extra: Any) -> AnyChannelSettings:
    return ADAPTER.validate_python({"name": kind, "type": kind, **extra})


EMAIL = settings("email", to=["desk@example.org"], smtp={"host": "127.0.0.1", "port": 2525},
                 **{"from": "livewatch@example.org"})


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def test_summary_counts_alerts_and_notices() -> None:
    assert digest_summary(build_digest(many_alerts(12))) == "12 alerts — 10-minute digest"
    assert digest_summary(build_digest((build_alert(), build_notice()), reason="rate limit 20/h")
                          ) == "1 alert, 1 notice — rate limit 20/h"
    assert digest_summary(build_digest((build_notice(), build_notice()))).startswith("2 notices")


def test_webhook_digest_payload_shape() -> None:
    alerts, notice = many_alerts(2), build_notice()
    digest = build_digest((alerts[0], notice, alerts[1]))
    body = digest_payload(digest)
    assert json.loads(json.dumps(body)) == body
    assert body == {"type": "digest", "id": digest.id, "channel": "c",
                    "reason": "10-minute digest", "since": "2026-03-02T13:57:12+00:00",
                    "until": "2026-03-02T14:07:12+00:00",
                    "alerts": [webhook_payload(a) for a in alerts],
                    "notices": [notice_payload(notice)]}


async def test_webhook_sends_a_signed_digest(webhook_receiver: WebhookReceiver,
                                             http: httpx.AsyncClient) -> None:
    digest = build_digest((*many_alerts(3), build_notice()))
    channel = build_channel(settings("webhook", url=webhook_receiver.url("/h"), secret=SECRET),
                            http)
    await channel.send(digest)
    webhook_receiver.wait_for(lambda got: len(got) == 1)
    (request,) = webhook_receiver.received
    assert request.headers["webhook-id"] == digest.id
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60
    assert Webhook(SECRET).verify(request.body, request.headers) == digest_payload(digest)


async def test_email_digest_lists_every_alert(smtp_server: SmtpServer) -> None:
    alerts = (*many_alerts(3), build_alert(text=HOSTILE, entry_id="hostile",
                                           title="<b>Hostile</b> coalition of the willing"))
    digest = build_digest((*alerts, build_notice()))
    channel = EmailChannel(settings("email", to=["desk@example.org"],  # type: ignore[arg-type]
                                    smtp={"host": "127.0.0.1", "port": smtp_server.port},
                                    **{"from": "livewatch@example.org"}))
    await channel.send(digest)
    wait_until_sync(lambda: len(smtp_server.inbox.messages) == 1)
    (message,) = smtp_server.inbox.messages
    assert isinstance(message, Message)
    assert message["Message-ID"] == f"<{digest.id}@livewatch>"
    subject = str(make_header(decode_header(message["Subject"])))
    assert subject == "[livewatch] 4 alerts, 1 notice — 10-minute digest"
    parts = body_parts(message)
    assert set(parts) == {"text/plain", "text/html"}
    text, page = parts["text/plain"], parts["text/html"]
    for i in range(3):
        assert f"Update {i}: the coalition of the willing meets" in text
        assert f'<a href="{PERMALINK}-{i}">' in page
    assert text.count("Rule: coalition · Feed: summit-live") == 4
    assert "<mark>coalition of the willing</mark>" in page
    assert "<script>" not in page and "<b>Hostile" not in page and "&lt;b&gt;Hostile" in page
    assert "12 consecutive polls failed" in text and "Notices" in page
    assert "2026-03-02 13:57 – 14:07 UTC" in text


def test_email_digest_caps_its_length() -> None:
    message = digest_email(build_digest(many_alerts(205)), EMAIL)  # type: ignore[arg-type]
    text = message.get_body(("plain",))
    assert text is not None and "… and 5 more" in str(text.get_content())


# --- chat ---------------------------------------------------------------------------------------

def test_slack_digest() -> None:
    digest = build_digest((*many_alerts(2), build_notice()))
    body = slack_payload(digest, settings("slack", url="https://hooks.example.org/x"))  # type: ignore[arg-type]
    assert body["text"] == "2 alerts, 1 notice — 10-minute digest"
    head, items = body["blocks"]
    assert head["text"]["text"] == ("*2 alerts, 1 notice — 10-minute digest*\n"
                                    "2026-03-02 13:57 – 14:07 UTC")
    lines = items["text"]["text"].split("\n")
    assert lines[0] == (f"• <{PERMALINK}-0|Update 0: the coalition of the willing meets> — "
                        "*coalition* · summit-live · 14:07 UTC")
    assert lines[2].startswith("• livewatch notice: feed summit-live: failing")


def test_discord_digest() -> None:
    body = discord_payload(build_digest(many_alerts(2)),
                           settings("discord", url="https://hooks.example.org/x"))  # type: ignore[arg-type]
    assert body["content"] == "**2 alerts — 10-minute digest**"
    assert body["allowed_mentions"] == {"parse": []}
    (embed,) = body["embeds"]
    assert embed["title"] == "2026-03-02 13:57 – 14:07 UTC"
    assert embed["description"].split("\n")[1] == (
        f"• [Update 1: the coalition of the willing meets]({PERMALINK}-1) — **coalition** · "
        "summit-live · 14:07 UTC")


def test_teams_digest() -> None:
    card = teams_payload(build_digest(many_alerts(2)))["attachments"][0]["content"]
    head, window, first, _ = card["body"]
    assert head["text"] == "2 alerts — 10-minute digest" and window["isSubtle"] is True
    assert first["text"].startswith(f"• [Update 0: the coalition of the willing meets]"
                                    f"({PERMALINK}-0)")


@pytest.mark.parametrize("kind", ["slack", "discord", "teams"])
def test_chat_digest_is_truncated_with_a_count(kind: str) -> None:
    digest = build_digest(many_alerts(400))
    chat = settings(kind, url="https://hooks.example.org/x")
    if kind == "slack":
        body = slack_payload(digest, chat)  # type: ignore[arg-type]
        texts = [b["text"]["text"] for b in body["blocks"]]
        assert all(len(t) <= 3000 for t in texts)
        listing = "\n".join(texts[1:])
    elif kind == "discord":
        body = discord_payload(digest, chat)  # type: ignore[arg-type]
        listing = body["embeds"][0]["description"]
        assert len(listing) <= 4096
    else:
        body = teams_payload(digest)
        listing = "\n".join(b["text"] for b in body["attachments"][0]["content"]["body"][2:])
        assert len(json.dumps(body)) < 28_000
    last = listing.split("\n")[-1]
    shown = listing.count("Update ")
    assert 5 < shown < 400
    assert last == f"… and {400 - shown} more"


@pytest.mark.parametrize("kind", ["slack", "discord", "teams"])
async def test_chat_digest_is_delivered(kind: str, webhook_receiver: WebhookReceiver,
                                        http: httpx.AsyncClient) -> None:
    channel = build_channel(settings(kind, url=webhook_receiver.url("/d")), http)
    await channel.send(build_digest((build_alert(text=HOSTILE), build_notice())))
    webhook_receiver.wait_for(lambda got: len(got) == 1)
    text = webhook_receiver.received[0].body.decode()
    assert "1 alert, 1 notice" in text and "@everyone" not in text
    assert "evil.example" not in text


def test_detected_constant_is_the_window_end() -> None:
    assert build_digest(()).until == DETECTED
