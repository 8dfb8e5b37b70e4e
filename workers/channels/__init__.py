"""Delivery channels: the `Channel` protocol and a registry from `type:` in config to class."""

from __future__ import annotations

from typing import Protocol

import httpx

from monitor.settings import EmailChannelSettings, WebhookChannelSettings
from workers.channels.base import Channel
from workers.channels.email import EmailChannel
from workers.channels.webhook import WebhookChannel

__all__ = ["CHANNEL_TYPES", "Channel", "ChannelType", "EmailChannel", "WebhookChannel",
           "build_channel"]


class ChannelType(Protocol):
    """A channel class: builds a channel from its settings and the shared HTTP client."""

    def build(self, settings: WebhookChannelSettings | EmailChannelSettings,
              http_client: httpx.AsyncClient) -> Channel:
        """Construct the channel (TypeError if `settings` is for another type)."""
        ...


CHANNEL_TYPES: dict[str, ChannelType] = {
    "webhook": WebhookChannel,
    "email": EmailChannel,
}


def build_channel(settings: WebhookChannelSettings | EmailChannelSettings,
                  http_client: httpx.AsyncClient) -> Channel:
    """The channel configured by `settings` (`type:` picks the class from CHANNEL_TYPES)."""
    try:
        kind = CHANNEL_TYPES[settings.type]
    except KeyError:
        raise ValueError(f"channel {settings.name!r}: unknown type {settings.type!r}") from None
    return kind.build(settings, http_client)
