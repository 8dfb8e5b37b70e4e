"""The `Channel` protocol every delivery channel implements, and how a channel class is built
from its settings (`FromSettings.build`, which the registry in `workers.channels` calls)."""

from __future__ import annotations

from typing import ClassVar, Generic, Protocol, Self, TypeVar

import httpx

from monitor.config.models import AnyChannelSettings
from workers.outbox.codec import Deliverable

S = TypeVar("S")


class _Named(Protocol):
    @property
    def name(self) -> str: ...


#: A channel class's settings type.
Settings = TypeVar("Settings", bound=_Named)


class Channel(Protocol):
    """Delivers alerts to one destination.

    `send` returns only once the destination accepted the alert; otherwise it raises
    `RetryableDeliveryError` (try again later; `retry_after` set when the server asked) or
    `PermanentDeliveryError` (retrying cannot help). Retries belong to the caller, and the
    alert id is sent unchanged on every attempt so the destination can deduplicate.
    """

    name: str

    async def send(self, item: Deliverable) -> None:
        """Deliver an alert, an operator notice or a digest, or raise a `DeliveryError`
        (`ChannelGoneError` when the destination no longer exists, e.g. HTTP 410)."""
        ...

    async def aclose(self) -> None:
        """Release resources the channel owns (not shared clients)."""
        ...


def settings_as(settings: AnyChannelSettings, kind: type[S]) -> S:
    """`settings` as the settings class a channel class is built from (for its `build`)."""
    if not isinstance(settings, kind):
        raise TypeError(f"channel {settings.name!r} has {type(settings).__name__}, "
                        f"not {kind.__name__}")
    return settings


class FromSettings(Generic[Settings]):
    """A channel class built from its `settings_class` and the shared HTTP client (which a
    subclass's `__init__` uses or not)."""

    settings_class: ClassVar[type[AnyChannelSettings]]

    def __init__(self, settings: Settings, http_client: httpx.AsyncClient | None = None) -> None:
        self.name = settings.name
        self.settings = settings

    @classmethod
    def build(cls, settings: AnyChannelSettings, http_client: httpx.AsyncClient) -> Self:
        """Registry constructor (see `workers.channels.build_channel`); TypeError if
        `settings` are another type's."""
        # `settings_class` is the class's `Settings` (a ClassVar cannot say so to mypy).
        return cls(settings_as(settings, cls.settings_class), http_client)  # type: ignore[arg-type]
