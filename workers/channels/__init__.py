"""Delivery channels: the `Channel` protocol and a registry from `type:` in config to class."""

from __future__ import annotations

from typing import Protocol

import httpx

from monitor.settings import AnyChannelSettings
from workers.channels.apprise import AppriseChannel
from workers.channels.base import Channel
from workers.channels.discord import DiscordChannel
from workers.channels.email import EmailChannel
from workers.channels.slack import SlackChannel
from workers.channels.teams import TeamsChannel
from workers.channels.webhook import WebhookChannel

__all__ = ["CHANNEL_TYPES", "AppriseChannel", "Channel", "ChannelType", "DiscordChannel",
           "EmailChannel", "SlackChannel", "TeamsChannel", "WebhookChannel", "build_channel"]


class ChannelType(Protocol):
    """A channel class: builds a channel from its settings and the shared HTTP client."""

    def build(self, settings: AnyChannelSettings, http_client: httpx.AsyncClient) -> Channel:
        """Construct the channel (TypeError if `settings` is for another type)."""
        ...


CHANNEL_TYPES: dict[str, ChannelType] = {
    "webhook": WebhookChannel,
    "email": EmailChannel,
    "slack": SlackChannel,
    "discord": DiscordChannel,
    "teams": TeamsChannel,
    "apprise": AppriseChannel,
}


def build_channel(settings: AnyChannelSettings, http_client: httpx.AsyncClient) -> Channel:
    """The channel configured by `settings` (`type:` picks the class from CHANNEL_TYPES)."""
    try:
        kind = CHANNEL_TYPES[settings.type]
    except KeyError:
        raise ValueError(f"channel {settings.name!r}: unknown type {settings.type!r}") from None
    return kind.build(settings, http_client)
