"""Generic JSON webhook, signed the Standard Webhooks way (`webhook-id`, `-timestamp`,
`-signature`). 2xx is success; 408, 429, 5xx and network errors are retryable; any other status
is permanent (410 means the endpoint is gone). Error messages name the host, never the secret or
the URL path (which may hold a token).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

from monitor.errors import PermanentDeliveryError, RetryableDeliveryError
from monitor.fetch import parse_retry_after
from monitor.settings import EmailChannelSettings, WebhookChannelSettings
from workers.notices import OperatorNotice, notice_payload
from workers.render import Alert, webhook_payload

SECRET_PREFIX = "whsec_"
RETRYABLE_STATUSES = frozenset({408, 429})


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
            raise ValueError("a webhook secret starting 'whsec_' must be base64 after the "
                             "prefix") from None
    if not key:
        raise ValueError("the webhook secret is empty")
    return key


def sign(key: bytes, msg_id: str, timestamp: int, body: str) -> str:
    """The `webhook-signature` header value: `v1,<base64 HMAC-SHA256 of id.timestamp.body>`."""
    digest = hmac.new(key, f"{msg_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


class WebhookChannel:
    """POST each alert as JSON to one URL through a shared `httpx.AsyncClient`."""

    def __init__(self, settings: WebhookChannelSettings, client: httpx.AsyncClient) -> None:
        self.name = settings.name
        self.settings = settings
        self._client = client
        self._key = signing_key(settings.secret) if settings.secret is not None else None
        self._host = urlsplit(settings.url).hostname or "?"

    @classmethod
    def build(cls, settings: WebhookChannelSettings | EmailChannelSettings,
              http_client: httpx.AsyncClient) -> WebhookChannel:
        """Registry constructor (see `workers.channels.build_channel`)."""
        if not isinstance(settings, WebhookChannelSettings):
            raise TypeError(f"channel {settings.name!r} is not a webhook channel")
        return cls(settings, http_client)

    def _fail(self, reason: str) -> str:
        """An error message; scrubbed of the secret and URL even if a library echoed them."""
        secrets = [self.settings.url]
        if self.settings.secret is not None:
            secrets.append(self.settings.secret.get_secret_value())
        for value in secrets:
            reason = reason.replace(value, "***") if value else reason
        return f"webhook {self.name} ({self._host}): {reason}"

    async def send(self, alert: Alert | OperatorNotice) -> None:
        """POST the alert (or notice); raise RetryableDeliveryError or PermanentDeliveryError."""
        payload = (notice_payload(alert) if isinstance(alert, OperatorNotice)
                   else webhook_payload(alert))
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        timestamp = int(time.time())
        headers = httpx.Headers(self.settings.headers)
        headers["content-type"] = "application/json"
        headers["webhook-id"] = alert.id
        headers["webhook-timestamp"] = str(timestamp)
        if self._key is not None:
            headers["webhook-signature"] = sign(self._key, alert.id, timestamp, body)
        try:
            response = await self._client.post(
                self.settings.url, content=body.encode(), headers=headers,
                timeout=self.settings.timeout, follow_redirects=False)
        except httpx.TimeoutException as exc:
            raise RetryableDeliveryError(self._fail(
                f"timed out after {self.settings.timeout:g}s ({type(exc).__name__})")) from exc
        except httpx.HTTPError as exc:
            raise RetryableDeliveryError(self._fail(
                f"{type(exc).__name__}: {exc}".rstrip(": "))) from exc
        self._check(response)

    def _check(self, response: httpx.Response) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        reason = f"HTTP {status} {response.reason_phrase}".rstrip()
        if status in RETRYABLE_STATUSES or status >= 500:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            raise RetryableDeliveryError(self._fail(reason), retry_after=retry_after)
        if status == 410:
            raise PermanentDeliveryError(self._fail(f"{reason}: the endpoint is gone"))
        if 300 <= status < 400:
            raise PermanentDeliveryError(self._fail(f"{reason}: redirects are not followed"))
        raise PermanentDeliveryError(self._fail(reason))

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client is shared and closed by its owner."""
