"""Settings of WebSub push (`websub:`), re-exported by `monitor.config.models`."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field, model_validator

from monitor.config.values import (
    Duration,
    HttpUrl,
    Listen,
    Model,
    bind_address,
    parse_duration,
)


def _renew_before(value: object) -> object:
    """A fraction of the lease (a number in (0, 1)) or a duration (`1d`, `3600`)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < 1:
        return float(value)
    return parse_duration(value)


class WebSubSettings(Model):
    """WebSub push (README "Push (WebSub)"): where a feed advertises a hub, subscribe and
    take each notification as a poll of that feed at once. On when `callback_url` is set;
    `listen` makes a process also serve the callbacks (without it, a process subscribes,
    renews and takes notifications relayed by the processes that do)."""

    #: The public URL hubs call back (each feed gets `callback_url/<opaque id>`); unset:
    #: push is off.
    callback_url: HttpUrl | None = None
    #: `host:port` the callback server binds in this poller process; unset: no callback
    #: server here (needs `callback_url`).
    listen: Listen | None = None
    #: The lease asked of hubs (a hub may grant another).
    lease: Duration = 10 * 86400.0
    #: When to renew: a fraction of the lease before it ends (0.2: at 80%), or a duration.
    renew_before: Annotated[float, BeforeValidator(_renew_before), Field(gt=0)] = 0.2

    @model_validator(mode="after")
    def _callback_when_listening(self) -> WebSubSettings:
        if self.listen is not None and self.callback_url is None:
            raise ValueError("`listen` needs `callback_url` (the public URL hubs call back)")
        return self

    @property
    def address(self) -> tuple[str, int] | None:
        """(host, port) to bind, IPv6 brackets removed; None when this process serves no
        callbacks (`listen` unset)."""
        return bind_address(self.listen)

    def renew_after(self, lease_seconds: float) -> float:
        """Seconds after a verification to renew a lease of `lease_seconds` (at least half
        the lease when `renew_before` is a duration as long as the lease)."""
        if self.renew_before < 1:
            return lease_seconds * (1 - self.renew_before)
        return max(lease_seconds - self.renew_before, lease_seconds / 2)
