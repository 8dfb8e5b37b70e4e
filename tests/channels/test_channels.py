"""workers.channels against real local servers: the webhook receiver and aiosmtpd."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.message import Message
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from alerts import body_parts
from conftest import SmtpServer
from servers import WebhookReceiver, recording, wait_until_sync
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from monitor.config.channels import CHANNEL_TYPE_NAMES
from monitor.config.models import EmailChannelSettings, RuleSettings, WebhookChannelSettings
from monitor.core.errors import (
    ChannelGoneError,
    ChannelSetupError,
    DeliveryError,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from monitor.core.models import Entry, Event, Notice
from monitor.ops.embedded import free_port
from workers.channels import CHANNEL_TYPES, EmailChannel, WebhookChannel, build_channel
from workers.channels.webhook import sign, signing_key, verify
from workers.match.matcher import Matcher
from workers.render.alert import Alert, make_alert, thread_root, webhook_payload
from workers.render.notices import make_notice

KEY = b"livewatch-test-key-0123456789abcdef"
SECRET = "whsec_" + base64.b64encode(KEY).decode()
TEXT = ("11.42am: The defence secretary said the coalition of the willing would not put "
        "“boots on the ground” before a ceasefire. <script>alert(1)</script> Costs: £1.5bn.")


def make_alert_for(channel: str, text: str = TEXT) -> Alert:
    entry = Entry(id="post-42", url="https://news.example.org/live/defence#post-42",
                  title="Defence live: coalition of the willing <b>meets</b>", text=text,
                  author="Westminster team", published=datetime(2025, 3, 2, 11, 42, tzinfo=UTC))
    event = Event(kind="new", feed="defence-live", feed_url="https://news.example.org/live/defence",
                  entry=entry, version=entry.version, detected_at=time.time())
    rules = [RuleSettings(name="coalition", any=["coalition of the willing"], channels=[channel])]
    (match,) = Matcher(rules).match(event.feed, entry.title, entry.text)
    return make_alert(event, match, channel)


def webhook(url: str, **kwargs: Any) -> WebhookChannelSettings:
    return WebhookChannelSettings.model_validate(
        {"name": "newsdesk", "type": "webhook", "url": url, **kwargs})


def email(port: int, **smtp: Any) -> EmailChannelSettings:
    return EmailChannelSettings.model_validate({
        "name": "editors", "type": "email", "to": ["desk@example.org"],
        "from": "livewatch@example.org", "smtp": {"host": "127.0.0.1", "port": port, **smtp}})


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


# --- webhook ----------------------------------------------------------------------------------

async def test_webhook_delivers_signed_json(webhook_receiver: WebhookReceiver,
                                            http: httpx.AsyncClient) -> None:
    settings = webhook(webhook_receiver.url("/hook"), secret=SECRET,
                       headers={"X-Desk": "politics", "webhook-id": "spoofed"})
    channel = WebhookChannel(settings, http)
    alert = make_alert_for("newsdesk")
    await channel.send(alert)
    webhook_receiver.wait_for(lambda got: len(got) == 1)
    (request,) = webhook_receiver.received
    assert request.path == "/hook"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["webhook-id"] == alert.id
    assert request.headers["x-desk"] == "politics"
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60
    payload = Webhook(SECRET).verify(request.body, request.headers)
    assert payload == webhook_payload(alert)
    assert payload["matches"][0]["term"] == "coalition of the willing"
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + base64.b64encode(b"another key entirely").decode()).verify(
            request.body, request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(request.body.replace(b"post-42", b"post-43"), request.headers)


async def test_webhook_plain_secret_uses_utf8_bytes(webhook_receiver: WebhookReceiver,
                                                    http: httpx.AsyncClient) -> None:
    channel = WebhookChannel(webhook(webhook_receiver.url("/h"), secret="not base64 £"), http)
    await channel.send(make_alert_for("newsdesk"))
    webhook_receiver.wait_for(lambda got: len(got) == 1)
    request = webhook_receiver.received[0]
    Webhook("not base64 £".encode()).verify(request.body, request.headers)


async def test_webhook_without_secret_is_unsigned(webhook_receiver: WebhookReceiver,
                                                  http: httpx.AsyncClient) -> None:
    await WebhookChannel(webhook(webhook_receiver.url("/h")), http).send(
        make_alert_for("newsdesk"))
    webhook_receiver.wait_for(lambda got: len(got) == 1)
    assert "webhook-signature" not in webhook_receiver.received[0].headers


async def test_webhook_retry_keeps_the_id(webhook_receiver: WebhookReceiver,
                                          http: httpx.AsyncClient) -> None:
    seen = recording(webhook_receiver, [(500, {})])
    channel = WebhookChannel(webhook(webhook_receiver.url("/h"), secret=SECRET), http)
    alert = make_alert_for("newsdesk")
    with pytest.raises(RetryableDeliveryError) as info:
        await channel.send(alert)
    assert info.value.retry_after is None and "500" in info.value.reason
    await channel.send(alert)
    webhook_receiver.wait_for(lambda got: len(got) == 1)
    assert [r.headers["webhook-id"] for r in seen] == [alert.id, alert.id]
    assert seen[0].body == seen[1].body


@pytest.mark.parametrize(("status", "headers", "error", "retry_after"), [
    (500, {}, RetryableDeliveryError, None),
    (502, {}, RetryableDeliveryError, None),
    (503, {"Retry-After": "12"}, RetryableDeliveryError, 12.0),
    (408, {}, RetryableDeliveryError, None),
    (429, {"Retry-After": "7"}, RetryableDeliveryError, 7.0),
    (400, {}, PermanentDeliveryError, None),
    (401, {}, PermanentDeliveryError, None),
    (404, {}, PermanentDeliveryError, None),
    (410, {}, ChannelGoneError, None),
    (422, {}, PermanentDeliveryError, None),
    (301, {"Location": "https://elsewhere.example.org/"}, PermanentDeliveryError, None),
])
async def test_webhook_status_classification(
        webhook_receiver: WebhookReceiver, http: httpx.AsyncClient, status: int,
        headers: dict[str, str], error: type[DeliveryError], retry_after: float | None) -> None:
    seen = recording(webhook_receiver, [(status, headers)])
    channel = WebhookChannel(webhook(webhook_receiver.url("/h/token123"), secret=SECRET), http)
    with pytest.raises(DeliveryError) as info:
        await channel.send(make_alert_for("newsdesk"))
    assert type(info.value) is error
    assert info.value.retry_after == retry_after
    assert str(status) in info.value.reason and "newsdesk" in info.value.reason
    assert SECRET not in str(info.value) and "token123" not in str(info.value)
    assert len(seen) == 1


async def test_webhook_429_retry_after_http_date(webhook_receiver: WebhookReceiver,
                                                 http: httpx.AsyncClient) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    recording(webhook_receiver, [(429, {"Retry-After": when})])
    channel = WebhookChannel(webhook(webhook_receiver.url("/h")), http)
    with pytest.raises(RetryableDeliveryError) as info:
        await channel.send(make_alert_for("newsdesk"))
    assert info.value.retry_after is not None and 100 < info.value.retry_after <= 120


async def test_webhook_connection_refused_is_retryable(http: httpx.AsyncClient) -> None:
    channel = WebhookChannel(webhook(f"http://127.0.0.1:{free_port()}/h", secret=SECRET), http)
    with pytest.raises(RetryableDeliveryError) as info:
        await channel.send(make_alert_for("newsdesk"))
    assert SECRET not in str(info.value) and KEY.decode() not in str(info.value)


async def test_webhook_timeout_is_retryable(stalled_receiver: WebhookReceiver,
                                            http: httpx.AsyncClient) -> None:
    channel = WebhookChannel(webhook(stalled_receiver.url("/h"), timeout=0.3), http)
    started = time.monotonic()
    with pytest.raises(RetryableDeliveryError) as info:
        await channel.send(make_alert_for("newsdesk"))
    assert time.monotonic() - started < 5
    assert "timed out" in info.value.reason


def test_signing_key_rules() -> None:
    assert signing_key(SECRET) == KEY
    assert signing_key("whsec_" + base64.b64encode(KEY).decode().rstrip("=")) == KEY
    assert signing_key("plain-secret") == b"plain-secret"
    with pytest.raises(ValueError) as info:
        signing_key("whsec_***not base64***")
    assert "not base64" not in str(info.value)
    assert isinstance(info.value, ChannelSetupError)


def test_sign_and_verify_are_standard_webhooks() -> None:
    body, timestamp = '{"type":"alert"}', int(time.time())
    header = sign(KEY, "msg_1", timestamp, body)
    Webhook(SECRET).verify(body, {"webhook-id": "msg_1", "webhook-timestamp": str(timestamp),
                                  "webhook-signature": header})
    assert verify(KEY, "msg_1", str(timestamp), body, f"v1,c29tZXRoaW5nIGVsc2U= {header}")
    assert not verify(KEY, "msg_2", timestamp, body, header)
    assert not verify(b"another key", "msg_1", timestamp, body, header)
    assert not verify(KEY, "msg_1", timestamp, body, "")




# --- email ------------------------------------------------------------------------------------

async def test_email_arrives_with_text_and_html(smtp_server: SmtpServer) -> None:
    channel = EmailChannel(email(smtp_server.port, starttls=None))
    alert = make_alert_for("editors")
    await channel.send(alert)
    await channel.send(alert)  # a retry: the same message again
    wait_until_sync(lambda: len(smtp_server.inbox.messages) == 2)
    first, second = smtp_server.inbox.messages
    assert isinstance(first, Message) and isinstance(second, Message)
    assert first["Message-ID"] == second["Message-ID"] == f"<{alert.id}@livewatch>"
    assert first["To"] == "desk@example.org" and first["From"] == "livewatch@example.org"
    assert first.get_content_type() == "multipart/alternative"
    parts = body_parts(first)
    assert set(parts) == {"text/plain", "text/html"}
    assert "coalition of the willing" in parts["text/plain"] and "£1.5bn" in parts["text/plain"]
    assert "<mark>coalition of the willing</mark>" in parts["text/html"]
    assert "<script>" not in parts["text/html"] and "<b>meets" not in parts["text/html"]
    assert "&lt;script&gt;" in parts["text/html"] and "&lt;b&gt;meets" in parts["text/html"]
    assert "https://news.example.org/live/defence#post-42" in parts["text/html"]


async def test_email_thread_headers_arrive(smtp_server: SmtpServer) -> None:
    channel = EmailChannel(email(smtp_server.port))
    first = make_alert_for("editors")
    second = make_alert_for("editors", text=TEXT + " Later: the coalition of the willing met.")
    notice = make_notice(Notice("failing", "defence-live", "5 polls failed", time.time()),
                         "editors", None)
    for item in (first, second, notice):
        await channel.send(item)
    wait_until_sync(lambda: len(smtp_server.inbox.messages) == 3)
    one, two, three = smtp_server.inbox.messages
    assert isinstance(one, Message) and isinstance(two, Message) and isinstance(three, Message)
    assert one["Message-ID"] != two["Message-ID"]
    root = thread_root("defence-live", datetime.now(UTC).date())
    assert one["In-Reply-To"] == one["References"] == two["References"] == root
    assert three["Message-ID"] == f"<{notice.id}@livewatch>"


async def test_email_required_starttls_unavailable_is_permanent(smtp_server: SmtpServer) -> None:
    channel = EmailChannel(email(smtp_server.port, starttls=True))
    with pytest.raises(PermanentDeliveryError):
        await channel.send(make_alert_for("editors"))
    assert smtp_server.inbox.messages == []


async def test_email_connection_refused_is_retryable() -> None:
    channel = EmailChannel(email(free_port(), password="hunter2-secret", username="lw",
                                 timeout=5))
    with pytest.raises(RetryableDeliveryError) as info:
        await channel.send(make_alert_for("editors"))
    assert "hunter2-secret" not in str(info.value)


class _Refusing:
    """An aiosmtpd handler that answers RCPT or DATA with a fixed reply."""

    def __init__(self, rcpt: str | None = None, data: str | None = None) -> None:
        self.rcpt, self.data = rcpt, data

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if self.rcpt:
            return self.rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return self.data or "250 OK"


@pytest.fixture
def refusing_smtp(request: pytest.FixtureRequest) -> Iterator[int]:
    port = free_port()
    controller = Controller(_Refusing(**request.param), hostname="127.0.0.1", port=port)
    controller.start()
    yield port
    controller.stop()


@pytest.mark.parametrize(("refusing_smtp", "error"), [
    ({"rcpt": "550 5.1.1 No such mailbox"}, PermanentDeliveryError),
    ({"rcpt": "451 4.3.0 Try again later"}, RetryableDeliveryError),
    ({"data": "554 5.6.0 Message rejected"}, PermanentDeliveryError),
    ({"data": "452 4.3.1 Insufficient storage"}, RetryableDeliveryError),
], indirect=["refusing_smtp"], ids=["rcpt-550", "rcpt-451", "data-554", "data-452"])
async def test_email_smtp_replies_are_classified(refusing_smtp: int,
                                                 error: type[DeliveryError]) -> None:
    channel = EmailChannel(email(refusing_smtp))
    with pytest.raises(DeliveryError) as info:
        await channel.send(make_alert_for("editors"))
    assert type(info.value) is error
    assert "editors" in info.value.reason


# --- registry ---------------------------------------------------------------------------------

async def test_build_channel_uses_the_registry(http: httpx.AsyncClient) -> None:
    assert set(CHANNEL_TYPES) == {"webhook", "email", "slack", "discord", "teams", "apprise"}
    assert tuple(CHANNEL_TYPES) == CHANNEL_TYPE_NAMES  # the registry and the config agree
    hook = build_channel(webhook("https://hooks.example.org/lw"), http)
    mail = build_channel(email(2525), http)
    assert isinstance(hook, WebhookChannel) and hook.name == "newsdesk"
    assert isinstance(mail, EmailChannel) and mail.name == "editors"
    await hook.aclose()
    await mail.aclose()
    assert not http.is_closed
