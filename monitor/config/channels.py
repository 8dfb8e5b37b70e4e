"""Channel settings: one model per `type:` (webhook, email, slack, discord, teams, apprise),
each with the delivery policy every channel shares (digest, rate limit, quiet hours).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, get_args

from pydantic import AfterValidator, BeforeValidator, Field, SecretStr, model_validator

from monitor.config.values import DURATION_UNITS, Duration, HttpUrl, Model, Name
from monitor.core.redaction import url_shown

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*(s|m|h|d)\s*$")
_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def parse_rate(value: object) -> object:
    """`20/h` -> (20, 3600.0); `100/10m` -> (100, 600.0). Anything else is left to pydantic."""
    if isinstance(value, str):
        match = _RATE.match(value)
        if not match:
            raise ValueError(f"invalid rate {value!r}: use COUNT/UNIT such as 20/h or 100/10m")
        count, span = int(match.group(1)), float(match.group(2) or 1)
        if count < 1 or span <= 0:
            raise ValueError(f"invalid rate {value!r}: count and period must be positive")
        return (count, span * DURATION_UNITS[match.group(3)])
    return value


Rate = Annotated[tuple[int, float], BeforeValidator(parse_rate)]


def _check_clock(value: str) -> str:
    if not _CLOCK.match(value):
        raise ValueError(f"expected a time of day HH:MM (24-hour), got {value!r}")
    return value


def _check_zone(value: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (use an IANA name such as "
                         f"Europe/London)") from None
    return value


class QuietHours(Model):
    """A daily window (local time in `timezone`) when non-urgent alerts wait for a digest sent
    at its end. `start` after `end` spans midnight (22:00-07:00)."""

    start: Annotated[str, AfterValidator(_check_clock)]
    end: Annotated[str, AfterValidator(_check_clock)]
    timezone: Annotated[str, AfterValidator(_check_zone)] = "UTC"

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("`start` and `end` are equal: the window would be empty")
        return self


class _ChannelBase(Model):
    """What every channel type has: a name and its delivery policy."""

    name: Name
    #: Batch non-urgent alerts into one message per window (e.g. `10m`); None: send each now.
    digest: Duration | None = None
    #: At most COUNT alerts per period (`20/h`); the excess waits for the next digest.
    rate_limit: Rate | None = None
    quiet_hours: QuietHours | None = None


class WebhookChannelSettings(_ChannelBase):
    """POST signed JSON (Standard Webhooks) to `url`."""

    type: Literal["webhook"]
    url: HttpUrl
    secret: SecretStr | None = None
    timeout: Duration = 10.0
    headers: dict[str, str] = Field(default_factory=dict)

    @property
    def target(self) -> str:
        """Where alerts go, for listings."""
        return self.url


class SmtpSettings(Model):
    """How to reach the SMTP server. `ssl` is implicit TLS (port 465); `starttls` upgrades."""

    host: str
    port: Annotated[int, Field(ge=1, le=65535)] = 587
    starttls: bool | None = None
    ssl: bool = False
    username: str | None = None
    password: SecretStr | None = None
    timeout: Duration = 20.0

    @model_validator(mode="after")
    def _tls_modes(self) -> SmtpSettings:
        if self.ssl and self.starttls:
            raise ValueError("choose `ssl` (implicit TLS) or `starttls`, not both")
        if self.password is not None and self.username is None:
            raise ValueError("`password` is set but `username` is not")
        return self


class EmailChannelSettings(_ChannelBase):
    """Send a multipart text + HTML email per alert."""

    type: Literal["email"]
    to: list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]] = Field(min_length=1)
    sender: Annotated[str, Field(alias="from", pattern=r"^(.*<)?[^@\s<>]+@[^@\s<>]+>?$")]
    smtp: SmtpSettings
    subject_prefix: str = "[livewatch]"

    @property
    def target(self) -> str:
        """Where alerts go, for listings."""
        return ", ".join(self.to)


class ChatWebhookSettings(_ChannelBase):
    """A chat service's incoming webhook. Its URL is the credential: only its host is shown."""

    url: HttpUrl
    timeout: Duration = 10.0

    @property
    def target(self) -> str:
        """Where messages go, for listings (the URL's path is left out)."""
        return url_shown(self.url, "host")


class SlackChannelSettings(ChatWebhookSettings):
    """Post Block Kit messages to a Slack incoming webhook."""

    type: Literal["slack"]
    #: Sender name; honoured only by legacy (non-app) incoming webhooks.
    username: Annotated[str, Field(min_length=1, max_length=80)] | None = None


class DiscordChannelSettings(ChatWebhookSettings):
    """Post an embed to a Discord channel webhook (mentions never ping)."""

    type: Literal["discord"]
    #: Overrides the webhook's default name.
    username: Annotated[str, Field(min_length=1, max_length=80)] | None = None


class TeamsChannelSettings(ChatWebhookSettings):
    """Post an Adaptive Card to a Microsoft Teams Workflows (or incoming) webhook."""

    type: Literal["teams"]


def _apprise_url(value: SecretStr) -> SecretStr:
    scheme, sep, rest = value.get_secret_value().partition("://")
    if not sep or not rest or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme):
        raise ValueError("expected an Apprise URL such as tgram://TOKEN/CHAT or mailto://…")
    return value


class AppriseChannelSettings(_ChannelBase):
    """Notify any service Apprise supports; each URL holds credentials and is never shown."""

    type: Literal["apprise"]
    urls: list[Annotated[SecretStr, AfterValidator(_apprise_url)]] = Field(min_length=1)
    #: How long one notification (to every URL) may take.
    timeout: Duration = 30.0

    @property
    def target(self) -> str:
        """The URLs' schemes only (`tgram://…, mailto://…`)."""
        return ", ".join(url_shown(u.get_secret_value(), "scheme") for u in self.urls)


#: Every channel settings class; add new channel types here (and their channel class to
#: `workers.channels.CHANNEL_TYPES`).
AnyChannelSettings = (WebhookChannelSettings | EmailChannelSettings | SlackChannelSettings
                      | DiscordChannelSettings | TeamsChannelSettings | AppriseChannelSettings)
ChannelSettings = Annotated[AnyChannelSettings, Field(discriminator="type")]
#: The valid values of a channel's `type:`, in the order above.
CHANNEL_TYPE_NAMES: tuple[str, ...] = tuple(
    name for model in get_args(AnyChannelSettings)
    for name in get_args(model.model_fields["type"].annotation))
