"""Delivery channels: the `Channel` protocol, a registry from `type:` in config to class, and
`ChannelSet`, the one place channels are built from a configuration."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from types import TracebackType
from typing import Protocol, Self

import httpx

from monitor.config.models import AnyChannelSettings
from monitor.core.errors import ChannelSetupError
from workers.channels.apprise import AppriseChannel
from workers.channels.base import Channel
from workers.channels.discord import DiscordChannel
from workers.channels.email import EmailChannel
from workers.channels.slack import SlackChannel
from workers.channels.teams import TeamsChannel
from workers.channels.webhook import WebhookChannel

__all__ = ["CHANNEL_TYPES", "AppriseChannel", "Channel", "ChannelSet", "ChannelType",
           "DiscordChannel", "EmailChannel", "SlackChannel", "TeamsChannel", "WebhookChannel",
           "build_channel"]


class ChannelType(Protocol):
    """A channel class: builds a channel from its settings and the shared HTTP client."""

    def build(self, settings: AnyChannelSettings, http_client: httpx.AsyncClient) -> Channel:
        """Construct the channel (TypeError if `settings` is for another type)."""
        ...


#: One class per `type:` of `monitor.config.channels.CHANNEL_TYPE_NAMES`.
CHANNEL_TYPES: dict[str, ChannelType] = {
    "webhook": WebhookChannel,
    "email": EmailChannel,
    "slack": SlackChannel,
    "discord": DiscordChannel,
    "teams": TeamsChannel,
    "apprise": AppriseChannel,
}


def build_channel(settings: AnyChannelSettings, http_client: httpx.AsyncClient) -> Channel:
    """The channel configured by `settings` (`type:` picks the class from CHANNEL_TYPES);
    `ChannelSetupError` if it cannot be built."""
    try:
        kind = CHANNEL_TYPES[settings.type]
    except KeyError:
        raise ChannelSetupError(f"channel {settings.name!r}: unknown type "
                                f"{settings.type!r}") from None
    return kind.build(settings, http_client)


class ChannelSet:
    """Channels built from settings, sharing one HTTP client. `update` (again on a reload)
    rebuilds only those whose settings changed; `aclose` (or leaving `async with`) closes every
    channel built, replaced ones included."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.built: dict[str, tuple[AnyChannelSettings, Channel]] = {}
        self.every: list[Channel] = []

    def update(self, channels: Iterable[AnyChannelSettings]) -> dict[str, Channel]:
        """The channel of each of `channels` by name, built unless already built as it is."""
        built = {}
        for settings in channels:
            old = self.built.get(settings.name)
            if old is not None and old[0] == settings:
                built[settings.name] = old
            else:
                channel = build_channel(settings, self.http)
                self.every.append(channel)
                built[settings.name] = (settings, channel)
        self.built = built
        return {name: channel for name, (_, channel) in built.items()}

    async def aclose(self) -> None:
        """Close every channel built (errors are ignored: each is closed)."""
        for channel in self.every:
            with contextlib.suppress(Exception):
                await channel.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> None:
        await self.aclose()
