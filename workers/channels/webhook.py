"""Generic JSON webhook, signed the Standard Webhooks way (`webhook-id`, `-timestamp`,
`-signature`). Statuses are classified by `workers.channels.httpsend`: 2xx is success; 408, 429,
5xx and network errors are retryable; 410 means the endpoint is gone; any other is permanent.
Error messages name the host, never the secret or the URL path (which may hold a token).

The body is `webhook_payload` for an alert, `notice_payload` for an operator notice and
`digest_payload` for a digest; `webhook-id` is the item's id in each case. `sign` and `verify`
are the one signature pair (the demo's receiver checks with `verify`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from typing import Any

import httpx
from pydantic import SecretStr

from monitor.config.models import WebhookChannelSettings
from monitor.core.errors import ChannelSetupError
from workers.channels.base import FromSettings
from workers.channels.httpsend import HttpTarget
from workers.outbox.codec import Deliverable, Digest
from workers.render.alert import webhook_payload
from workers.render.digest import digest_payload
from workers.render.notices import OperatorNotice, notice_payload

SECRET_PREFIX = "whsec_"


def signing_key(secret: SecretStr | str) -> bytes:
    """The HMAC key: base64-decoded after a `whsec_` prefix, else the secret's UTF-8 bytes."""
    value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    if not value.startswith(SECRET_PREFIX):
        key = value.encode()
    else:
        encoded = value[len(SECRET_PREFIX):].strip()
        try:
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise ChannelSetupError("a webhook secret starting 'whsec_' must be base64 after "
                                    "the prefix") from None
    if not key:
        raise ChannelSetupError("the webhook secret is empty")
    return key


def sign(key: bytes, msg_id: str, timestamp: int | str, body: str) -> str:
    """The `webhook-signature` header value: `v1,<base64 HMAC-SHA256 of id.timestamp.body>`."""
    digest = hmac.new(key, f"{msg_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(key: bytes, msg_id: str, timestamp: int | str, body: str, header: str) -> bool:
    """Whether `header` (a `webhook-signature` value: space-separated signatures) holds the
    signature `sign` makes. Compared in constant time; the timestamp's age is not checked."""
    expected = sign(key, msg_id, timestamp, body)
    return any(hmac.compare_digest(expected, given) for given in header.split())


def payload(item: Deliverable) -> dict[str, Any]:
    """The JSON body for an alert, an operator notice or a digest."""
    if isinstance(item, OperatorNotice):
        return notice_payload(item)
    if isinstance(item, Digest):
        return digest_payload(item)
    return webhook_payload(item)


class WebhookChannel(FromSettings[WebhookChannelSettings]):
    """POST each item as JSON to one URL through a shared `httpx.AsyncClient`."""

    settings_class = WebhookChannelSettings

    def __init__(self, settings: WebhookChannelSettings, client: httpx.AsyncClient) -> None:
        super().__init__(settings)
        self._key = signing_key(settings.secret) if settings.secret is not None else None
        secrets = [settings.secret.get_secret_value()] if settings.secret is not None else []
        self._target = HttpTarget("webhook", settings.name, settings.url, settings.timeout,
                                  client, secrets)

    async def send(self, item: Deliverable) -> None:
        """POST the item; raise a `DeliveryError` unless it was accepted."""
        body = json.dumps(payload(item), ensure_ascii=False, separators=(",", ":"))
        timestamp = int(time.time())
        headers = httpx.Headers(self.settings.headers)
        headers["content-type"] = "application/json"
        headers["webhook-id"] = item.id
        headers["webhook-timestamp"] = str(timestamp)
        if self._key is not None:
            headers["webhook-signature"] = sign(self._key, item.id, timestamp, body)
        await self._target.post(body.encode(), headers)

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client is shared and closed by its owner."""
