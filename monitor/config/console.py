"""Settings of the operator console and API (`console:`), re-exported by
`monitor.config.models`."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, SecretStr, model_validator

from monitor.config.values import Duration, HttpUrl, Listen, Model, Name, bind_address

#: What a token may do: `read` (every GET, the wall, rule tests) or `admin` (also silences,
#: acknowledgements, retries).
Scope = Literal["read", "admin"]


def _network(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError as exc:
        raise ValueError(f"not an IP address or network: {value!r}") from exc
    return value


class ConsoleToken(Model):
    """One bearer token of the API and the console's sign-in."""

    name: Name
    token: Annotated[SecretStr, Field(min_length=1)]
    scope: Scope = "read"

    @model_validator(mode="after")
    def _long_enough(self) -> ConsoleToken:
        if len(self.token.get_secret_value()) < 16:
            raise ValueError("a console token needs at least 16 characters")
        return self


class ConsoleSettings(Model):
    """The operator console (web pages) and its REST API under `/api/v1`, served where
    `listen` is set (by `livewatch run` and `livewatch console`)."""

    #: `host:port` to bind; unset: no console in this process.
    listen: Listen | None = None
    #: The console's URL as people reach it (behind a proxy): used in one-click links in
    #: alerts and for secure cookies (https). Default: `http://{listen}`.
    public_url: HttpUrl | None = None
    tokens: list[ConsoleToken] = Field(default_factory=list)
    #: Signs session cookies, CSRF tokens and one-click links (HMAC-SHA256).
    signing_key: SecretStr | None = None
    #: How long a sign-in lasts.
    session: Duration = 12 * 3600.0
    #: How long a one-click link in an alert stays valid.
    link_ttl: Duration = 24 * 3600.0
    #: Reverse proxies (addresses or networks, `10.0.0.0/8`) whose `X-Forwarded-For` is
    #: believed: the sign-in rate limit then counts the client behind them, not the proxy.
    trusted_proxies: list[Annotated[str, AfterValidator(_network)]] = Field(
        default_factory=list)

    @model_validator(mode="after")
    def _usable(self) -> ConsoleSettings:
        if self.listen is None:
            return self
        if not self.tokens:
            raise ValueError("the console needs at least one entry in `tokens`")
        if self.signing_key is None or len(self.signing_key.get_secret_value()) < 32:
            raise ValueError("the console needs `signing_key` of at least 32 characters "
                             "(e.g. ${LW_CONSOLE_KEY})")
        names = [t.name for t in self.tokens]
        if len(set(names)) != len(names):
            raise ValueError("console token names must be unique")
        secrets = [t.token.get_secret_value() for t in self.tokens]
        if len(set(secrets)) != len(secrets):
            raise ValueError("two console tokens have the same value")
        return self

    @property
    def address(self) -> tuple[str, int] | None:
        """(host, port) to bind; None when this process serves no console."""
        return bind_address(self.listen)

    @property
    def base_url(self) -> str:
        """The console's public URL without a trailing slash."""
        if self.public_url:
            return self.public_url.rstrip("/")
        return f"http://{self.listen}"
