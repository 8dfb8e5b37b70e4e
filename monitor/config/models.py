"""Strict configuration models (pydantic v2). Load files with `monitor.config.loader.load_config`.

Unknown keys are errors; every model is frozen. Value types (durations, sizes, names, URLs) are
in `monitor.config.values`, channel models in `monitor.config.channels`; both are re-exported
here, so `monitor.config.models` names every configuration model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PlainValidator,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from monitor import __version__
from monitor.config.channels import (
    AnyChannelSettings,
    AppriseChannelSettings,
    ChannelSettings,
    ChatWebhookSettings,
    DiscordChannelSettings,
    EmailChannelSettings,
    QuietHours,
    Rate,
    SlackChannelSettings,
    SmtpSettings,
    TeamsChannelSettings,
    WebhookChannelSettings,
    parse_rate,
)
from monitor.config.console import ConsoleSettings, ConsoleToken
from monitor.config.selectors import check_css, check_spec
from monitor.config.values import (
    ByteSize,
    Duration,
    HttpUrl,
    Listen,
    Model,
    Name,
    bind_address,
    format_duration,
    parse_duration,
    parse_size,
)
from monitor.config.websub import WebSubSettings
from monitor.core.errors import QuerySyntaxError
from monitor.core.rulesyntax import FIELDS, MatchField, parse_query, phrase_term
from monitor.core.textnorm import normalize_phrase

DEFAULT_USER_AGENT = f"livewatch/{__version__} (live-blog monitor)"


def _host_port(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return value


class SentinelSettings(Model):
    """Redis Sentinel: the sentinels are asked for the current master of `master` (again after
    a failover)."""

    master: Annotated[str, Field(min_length=1)]
    sentinels: list[Annotated[str, AfterValidator(_host_port)]] = Field(min_length=1)
    db: Annotated[int, Field(ge=0)] = 0
    #: Credentials of the master (and replicas).
    username: str | None = None
    password: SecretStr | None = None
    #: Password of the sentinels themselves, when they require one.
    sentinel_password: SecretStr | None = None

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """The sentinels as (host, port), IPv6 brackets removed."""
        out = []
        for value in self.sentinels:
            host, _, port = value.rpartition(":")
            out.append((host.strip("[]"), int(port)))
        return out


class RedisSettings(Model):
    """`url: embedded` (the default) starts a private redis-server with AOF in `data_dir`;
    `url: redis://…` uses a standalone server; `sentinel` finds the master through Sentinel;
    `cluster: true` treats `url` as one node of a Redis (or Valkey) Cluster."""

    url: str = "embedded"
    data_dir: Path = Path(".livewatch")
    sentinel: SentinelSettings | None = None
    #: `url` is a node of a Redis Cluster: the client finds the others and follows the slots.
    cluster: bool = False
    #: On a cluster, feeds are spread over this many partitions (each its own hash tag, events
    #: stream and worker read loop). Fixed for the life of the data: changing it moves every
    #: feed to new keys, where it baselines again.
    partitions: Annotated[int, Field(ge=1, le=1024)] = 16

    @model_validator(mode="after")
    def _one_way_to_connect(self) -> RedisSettings:
        if self.sentinel is not None and "url" in self.model_fields_set:
            raise ValueError("set either `url` or `sentinel`, not both")
        if self.cluster and (self.sentinel is not None or self.url in ("", "embedded")):
            raise ValueError("`cluster: true` needs `url` naming a cluster node "
                             "(not the embedded Redis, not Sentinel)")
        if self.cluster and urlsplit(self.url).path.strip("/") not in ("", "0"):
            raise ValueError("Redis Cluster has only database 0: drop the /N from `url`")
        return self

    @property
    def embedded(self) -> bool:
        """True when livewatch should run its own redis-server."""
        return self.sentinel is None and self.url in ("", "embedded")


class Defaults(Model):
    """Values every feed inherits unless it sets its own."""

    interval: Duration = 60.0
    timeout: Duration = 20.0
    jitter: Annotated[float, BeforeValidator(parse_duration), Field(ge=0)] | None = None
    user_agent: str = DEFAULT_USER_AGENT
    max_body: ByteSize = 10 * 1024 * 1024
    max_backoff: Duration = 1800.0
    max_concurrency: Annotated[int, Field(ge=1, le=10_000)] = 100
    #: Fetches in flight to one host at once (0: no limit beyond max_concurrency).
    max_per_host: Annotated[int, Field(ge=0, le=10_000)] = 0
    max_interval: Duration = 900.0
    #: A feed that posted within `hot_for` is polled every `min_interval` (unset: never
    #: faster than `interval`), then ever less often, back to `interval` (README "Cadence").
    min_interval: Duration | None = None
    hot_for: Duration = 600.0
    quiet_after: Duration = 1800.0
    flood_threshold: Annotated[int, Field(ge=1)] = 50

    @field_validator("min_interval")
    @classmethod
    def _min_within_interval(cls, value: float | None, info: ValidationInfo) -> float | None:
        return _not_above_interval(value, info)


def _not_above_interval(value: float | None, info: ValidationInfo) -> float | None:
    interval = info.data.get("interval")
    if value is not None and interval is not None and value > interval:
        raise ValueError(f"min_interval ({format_duration(value)}) is longer than interval "
                         f"({format_duration(interval)})")
    return value


#: `parse_processes: auto` runs at most this many (60-70 MB each; a container on a large
#: node sees all its cores).
AUTO_PARSERS = 2


def _processes(value: object) -> int | Literal["auto"]:
    if value == "auto":
        return "auto"
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 64:
        return value
    raise ValueError(f"expected an integer from 0 to 64 or `auto`, not {value!r}")


class FetchSettings(Model):
    """Limits on what one fetch may take and where it may connect (README "Security")."""

    max_redirects: Annotated[int, Field(ge=0, le=50)] = 10
    #: Entries read from one document (the first ones, as the document lists them).
    max_entries: Annotated[int, Field(ge=1, le=100_000)] = 1000
    #: Parsing one document may take this long before the poll fails.
    parse_timeout: Duration = 10.0
    #: Element nesting an HTML page may have before it is refused unparsed.
    max_html_depth: Annotated[int, Field(ge=64, le=100_000)] = 5000
    #: Processes that parse changed documents for the pollers ("auto": one per usable core up
    #: to `AUTO_PARSERS`, none on one core; 0: parse in threads of the poller's process).
    parse_processes: Annotated[int | Literal["auto"], PlainValidator(_processes)] = "auto"

    def parsers(self) -> int:
        """The number of parsing processes to run."""
        if self.parse_processes != "auto":
            return self.parse_processes
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
            else (os.cpu_count() or 1)
        return min(cores, AUTO_PARSERS) if cores > 1 else 0
    #: False: refuse loopback, private, link-local, CGNAT, NAT64 … addresses (multi-tenant).
    allow_private_networks: bool = True
    #: Hosts (as written in feed URLs) exempt from the private-network check.
    allow_hosts: list[str] = Field(default_factory=list)


Selector = Annotated[str, AfterValidator(check_spec)]


class SelectorSettings(Model):
    """Where the entries of a `kind: html` page are: `item` is a CSS selector of one entry;
    the others are relative to it, each a CSS selector optionally suffixed `@attr`."""

    item: Annotated[str, AfterValidator(check_css)]
    id: Selector | None = None
    title: Selector | None = None
    body: Selector | None = None
    time: Selector | None = None
    author: Selector | None = None
    link: Selector | None = None


FeedKind = Literal["auto", "rss", "atom", "jsonfeed", "liveblog", "html"]


class FeedSettings(Model):
    """One source to poll."""

    name: Name
    url: HttpUrl
    kind: FeedKind = "auto"
    interval: Duration | None = None
    timeout: Duration | None = None
    enabled: bool = True
    max_interval: Duration | None = None
    min_interval: Duration | None = None
    backfill: Annotated[int, Field(ge=0, le=1000)] = 0
    headers: dict[str, str] = Field(default_factory=dict)
    selectors: SelectorSettings | None = Field(default=None, validate_default=True)

    @field_validator("min_interval")
    @classmethod
    def _min_within_interval(cls, value: float | None, info: ValidationInfo) -> float | None:
        return _not_above_interval(value, info)

    @field_validator("selectors")
    @classmethod
    def _selectors_fit_kind(cls, value: SelectorSettings | None,
                            info: ValidationInfo) -> SelectorSettings | None:
        kind = info.data.get("kind")
        if kind == "html" and value is None:
            raise ValueError("`kind: html` needs `selectors` (at least `item`)")
        if value is not None and kind not in (None, "auto", "html"):
            raise ValueError(f"`selectors` are used only with `kind: html` or `auto`, not {kind}")
        return value


def _phrase(value: str) -> str:
    if not normalize_phrase(value.strip().removesuffix("*")):
        raise ValueError(f"phrase {value!r} is empty once normalised")
    try:
        phrase_term(value)
    except QuerySyntaxError as exc:
        raise ValueError(exc.reason) from None
    return value


Event = Literal["new", "updated"]
EVENTS: tuple[Event, ...] = ("new", "updated")

# Checked per item, so each empty phrase is reported at its own index (`rules[0].any[1]`).
Phrases = list[Annotated[str, AfterValidator(_phrase)]]


Severity = Literal["low", "normal", "urgent"]


class RuleSettings(Model):
    """A keyword rule: alert when an `any` phrase (or every `all` phrase) appears, no `none` one."""

    name: Name
    any: Phrases = Field(default_factory=list)
    all: Phrases = Field(default_factory=list)
    none: Phrases = Field(default_factory=list)
    feeds: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    channels: list[str] = Field(min_length=1)
    events: list[Event] = Field(default_factory=lambda: list(EVENTS), min_length=1)
    #: Boolean query (see README "Rule reference"); combined with the lists by AND.
    query: str | None = None
    case_sensitive: bool = False
    #: Fields unscoped terms are looked for in (`title:`/`text:`/`author:` in a query override).
    fields: list[MatchField] = Field(default_factory=lambda: list(FIELDS[:2]), min_length=1)
    #: Diacritics-insensitive matching: "Zelenskyy" in a rule matches "Zelénskyy" and back.
    ignore_diacritics: bool = False
    #: One alert for the same text carried by several feeds within this window.
    group_across_feeds: Duration | None = None
    #: `urgent` alerts skip digests, rate limits and quiet hours; `low`/`normal` do not.
    severity: Severity = "normal"

    @field_validator("query")
    @classmethod
    def _parse_query(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            try:
                parse_query(value)
            except QuerySyntaxError as exc:
                name = info.data.get("name", "?")
                caret = exc.caret().replace("\n", "\n      ")
                raise ValueError(f"rule {name!r}: query syntax error at column {exc.column}: "
                                 f"{exc.reason}\n      {caret}") from None
        return value

    @field_validator("fields")
    @classmethod
    def _distinct_fields(cls, value: list[MatchField]) -> list[MatchField]:
        return [f for f in FIELDS if f in value]

    @model_validator(mode="after")
    def _needs_terms(self) -> RuleSettings:
        if not self.any and not self.all and not self.query:
            raise ValueError("a rule needs at least one phrase in `any` or `all`, or a `query`")
        return self




class WorkerSettings(Model):
    """How workers consume the event stream and retry deliveries."""

    concurrency: Annotated[int, Field(ge=1, le=1000)] = 16
    claim_idle: Duration = 60.0
    max_deliveries: Annotated[int, Field(ge=1, le=100)] = 5
    #: Waits between delivery attempts after a failure (the first attempt is immediate); the
    #: Standard Webhooks schedule. After the last, the last wait repeats until `give_up_after`.
    retry_schedule: list[Duration] = Field(
        default_factory=lambda: [5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0],
        min_length=1)
    #: A delivery still failing this long after it was queued goes to the dead letters.
    give_up_after: Duration = 3 * 86400.0
    #: Random extra wait added to each retry, as a fraction of it (spreads a recovering
    #: receiver's load).
    retry_jitter: Annotated[float, Field(ge=0, le=1)] = 0.1
    #: How long a worker holds a delivery it is sending before another may take it over.
    delivery_lease: Duration = 60.0
    #: On SIGTERM, how long in-flight events may take before they are left pending.
    shutdown_timeout: Duration = 20.0


class StateSettings(Model):
    """Bounds on what is kept in Redis."""

    max_entries_per_feed: Annotated[int, Field(ge=10, le=1_000_000)] = 2000
    stream_maxlen: Annotated[int, Field(ge=100)] = 100_000
    #: Events older than this are trimmed from the stream (how far back `replay` can look).
    stream_retention: Duration = 7 * 86400.0
    delivered_ttl: Duration = 30 * 86400.0


class HttpSettings(Model):
    """The operations endpoint (`/healthz`, `/readyz`, `/metrics`); off unless `listen` is set."""

    listen: Listen | None = None

    @property
    def address(self) -> tuple[str, int] | None:
        """(host, port) to bind, IPv6 brackets removed; None when the endpoint is off."""
        return bind_address(self.listen)


class OperatorSettings(Model):
    """Where notices about sources go (flood breaker, failing feeds). Empty: to the channels of
    the rules that watch the feed."""

    channels: list[str] = Field(default_factory=list)
    #: After this many consecutive failed polls of a feed, one "failing" notice (and one
    #: "recovered" notice when it next succeeds); 0 turns these notices off.
    failing_after: Annotated[int, Field(ge=0, le=1000)] = 5


class Config(Model):
    """The whole livewatch configuration (one YAML file)."""

    redis: RedisSettings = Field(default_factory=RedisSettings)
    defaults: Defaults = Field(default_factory=Defaults)
    fetch: FetchSettings = Field(default_factory=FetchSettings)
    feeds: list[FeedSettings] = Field(default_factory=list)
    rules: list[RuleSettings] = Field(default_factory=list)
    channels: list[ChannelSettings] = Field(default_factory=list)
    workers: WorkerSettings = Field(default_factory=WorkerSettings)
    state: StateSettings = Field(default_factory=StateSettings)
    operator: OperatorSettings = Field(default_factory=OperatorSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    websub: WebSubSettings = Field(default_factory=WebSubSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)

    def feed(self, name: str) -> FeedSettings:
        """The feed called `name` (KeyError if none)."""
        for feed in self.feeds:
            if feed.name == name:
                return feed
        raise KeyError(name)

    def channel(self, name: str) -> AnyChannelSettings:
        """The channel called `name` (KeyError if none)."""
        for channel in self.channels:
            if channel.name == name:
                return channel
        raise KeyError(name)

    def interval(self, feed: FeedSettings) -> float:
        """The feed's poll interval in seconds."""
        return feed.interval or self.defaults.interval

    def min_interval(self, feed: FeedSettings) -> float:
        """The feed's poll interval while it is hot (`interval` when none is set)."""
        fastest = feed.min_interval or self.defaults.min_interval
        return self.interval(feed) if fastest is None else min(fastest, self.interval(feed))

    def timeout(self, feed: FeedSettings) -> float:
        """The feed's fetch timeout in seconds."""
        return feed.timeout or self.defaults.timeout

    def jitter(self, feed: FeedSettings) -> float:
        """Random delay added to each poll (default: a tenth of the interval, at most 30 s)."""
        if self.defaults.jitter is not None:
            return self.defaults.jitter
        return min(self.interval(feed) / 10, 30.0)


__all__ = [
    "DEFAULT_USER_AGENT", "AnyChannelSettings", "AppriseChannelSettings", "ByteSize",
    "ChannelSettings", "ChatWebhookSettings", "Config", "ConsoleSettings", "ConsoleToken",
    "Defaults", "DiscordChannelSettings",
    "Duration", "EmailChannelSettings", "FeedSettings", "FetchSettings", "HttpSettings",
    "HttpUrl", "Model", "Name", "OperatorSettings", "QuietHours", "Rate", "RedisSettings",
    "RuleSettings", "SelectorSettings", "SentinelSettings", "Severity", "SlackChannelSettings",
    "SmtpSettings", "StateSettings", "TeamsChannelSettings", "WebSubSettings",
    "WebhookChannelSettings", "WorkerSettings", "parse_duration", "parse_rate", "parse_size",
]
