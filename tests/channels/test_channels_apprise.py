"""The apprise channel for real: Apprise's `json://` plugin posting to a local receiver."""

from __future__ import annotations

import threading

import pytest
from alerts import HOSTILE, PERMALINK, URL, build_alert, build_digest, build_notice, many_alerts
from servers import Received, WebhookReceiver

from monitor.config.models import AppriseChannelSettings
from monitor.core.errors import PermanentDeliveryError, RetryableDeliveryError
from monitor.ops.embedded import free_port
from workers.channels import AppriseChannel

TOKEN = "s3cr3t-token-value"


def apprise(*urls: str, **extra: object) -> AppriseChannel:
    return AppriseChannel(AppriseChannelSettings.model_validate(
        {"name": "phones", "type": "apprise", "urls": list(urls), **extra}))


def json_url(receiver: WebhookReceiver, path: str = f"/notify/{TOKEN}") -> str:
    return f"json://127.0.0.1:{receiver.httpd.server_address[1]}{path}"


async def test_alert_reaches_the_receiver(webhook_receiver: WebhookReceiver) -> None:
    await apprise(json_url(webhook_receiver)).send(build_alert())
    webhook_receiver.wait_for(lambda got: len(got) == 1)
    (request,) = webhook_receiver.received
    assert request.path == f"/notify/{TOKEN}"
    body = request.json()
    assert body["title"] == "coalition: Summit live: leaders arrive"
    assert body["type"] == "info"
    assert "The PM said the coalition of the willing would meet at noon." in body["message"]
    assert "Feed: summit-live" in body["message"] and PERMALINK in body["message"]


async def test_notice_and_digest(webhook_receiver: WebhookReceiver) -> None:
    channel = apprise(json_url(webhook_receiver))
    await channel.send(build_notice())
    await channel.send(build_digest((*many_alerts(3), build_notice())))
    webhook_receiver.wait_for(lambda got: len(got) == 2)
    notice, digest = (r.json() for r in webhook_receiver.received)
    assert notice["type"] == "warning" and "summit-live" in notice["title"]
    assert "HTTP 503" in notice["message"]
    assert digest["title"] == "3 alerts, 1 notice — 10-minute digest"
    assert digest["message"].count("Update ") == 3 and "failing" in digest["message"]


async def test_hostile_text_is_defused(webhook_receiver: WebhookReceiver) -> None:
    await apprise(json_url(webhook_receiver)).send(
        build_alert(text=HOSTILE, title="@everyone https://evil.example"))
    webhook_receiver.wait_for(lambda got: len(got) == 1)
    body = webhook_receiver.received[0].json()
    for text in (body["title"], body["message"]):
        assert "@everyone" not in text and "evil.example" not in text
        assert all(url.startswith(PERMALINK) for url in URL.findall(text))


async def test_receiver_error_is_retryable_and_hides_the_url(
        webhook_receiver: WebhookReceiver) -> None:
    webhook_receiver.responder = lambda _: (500, {})
    with pytest.raises(RetryableDeliveryError) as info:
        await apprise(json_url(webhook_receiver)).send(build_alert())
    assert "phones" in str(info.value) and TOKEN not in str(info.value)


async def test_connection_refused_is_retryable() -> None:
    with pytest.raises(RetryableDeliveryError) as info:
        await apprise(f"json://127.0.0.1:{free_port()}/{TOKEN}").send(build_alert())
    assert TOKEN not in str(info.value)


async def test_unknown_scheme_is_permanent() -> None:
    with pytest.raises(PermanentDeliveryError) as info:
        await apprise(f"nosuchservice://{TOKEN}@example.org").send(build_alert())
    assert "urls[0]" in str(info.value) and TOKEN not in str(info.value)


async def test_timeout_is_retryable(webhook_receiver: WebhookReceiver) -> None:
    release = threading.Event()

    def stall(_: Received) -> tuple[int, dict[str, str]]:
        release.wait(10)
        return 200, {}

    webhook_receiver.responder = stall
    channel = apprise(json_url(webhook_receiver), timeout=0.5)
    try:
        with pytest.raises(RetryableDeliveryError) as info:
            await channel.send(build_alert())
    finally:
        release.set()  # lets Apprise's thread finish before the event loop closes
    assert "timed out" in info.value.reason


def test_urls_are_secret() -> None:
    settings = AppriseChannelSettings.model_validate(
        {"name": "phones", "type": "apprise", "urls": [f"tgram://{TOKEN}/12345"]})
    assert TOKEN not in repr(settings) and TOKEN not in settings.model_dump_json()
    assert settings.target == "tgram://…"
    with pytest.raises(ValueError, match="Apprise URL"):
        AppriseChannelSettings.model_validate(
            {"name": "phones", "type": "apprise", "urls": ["not a url"]})
    with pytest.raises(ValueError):
        AppriseChannelSettings.model_validate({"name": "phones", "type": "apprise", "urls": []})
