"""What the Slack, Discord and Teams channels share: a JSON body built by a pure function of the
item and the channel's settings (`render`), POSTed to the service's incoming-webhook URL
(`workers.channels.httpsend` classifies the answer). The URL is the credential, so errors name
only its host."""

from __future__ import annotations

import json
from typing import Any, ClassVar, TypeVar

import httpx

from monitor.config.models import ChatWebhookSettings
from workers.channels.base import FromSettings
from workers.channels.httpsend import HttpTarget
from workers.outbox.codec import Deliverable

S = TypeVar("S", bound=ChatWebhookSettings)


def with_sender(body: dict[str, Any], username: str | None) -> dict[str, Any]:
    """`body` with the sender name `username` (Slack, Discord) when one is set."""
    if username:
        body["username"] = username
    return body


class ChatWebhookChannel(FromSettings[S]):
    """Base of the chat channels; a subclass names its `kind`, its settings class and the pure
    function `render(item, settings)` that builds the body."""

    kind: ClassVar[str]

    def __init__(self, settings: S, client: httpx.AsyncClient) -> None:
        super().__init__(settings)
        # A deleted Slack, Discord or Teams webhook answers 404 (Discord: "Unknown Webhook"):
        # as final as a 410, so the channel is disabled rather than retried.
        self._target = HttpTarget(self.kind, settings.name, settings.url, settings.timeout,
                                  client, gone=frozenset({404, 410}))

    @staticmethod
    def render(item: Deliverable, settings: Any) -> dict[str, Any]:
        """The JSON body for `item` under the channel's `settings` (pure)."""
        raise NotImplementedError

    def payload(self, item: Deliverable) -> dict[str, Any]:
        """The JSON body for `item`."""
        return self.render(item, self.settings)

    async def send(self, item: Deliverable) -> None:
        """POST the item's message; raise a `DeliveryError` unless it was accepted."""
        body = json.dumps(self.payload(item), ensure_ascii=False, separators=(",", ":"))
        await self._target.post(body.encode(), {"content-type": "application/json"})

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client is shared and closed by its owner."""
