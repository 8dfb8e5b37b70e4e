"""The exception tree of livewatch. Library errors are wrapped at the boundary (`raise … from e`).

    LivewatchError
    ├── ConfigError          bad YAML or settings; carries every problem (file, field path, reason)
    ├── QuerySyntaxError     a rule's query cannot be parsed (also a ValueError, for pydantic)
    ├── FetchError           a feed could not be fetched (network, HTTP status, size cap, timeout)
    │   └── BlockedAddressError      the network policy refused an address (monitor.fetch.netpolicy)
    ├── ParseError           a fetched document yielded no usable entries
    ├── StateError           Redis state is unusable (unreachable, script failure)
    └── ChannelError         a delivery channel failed
        ├── ChannelSetupError        settings a channel cannot be built from (also a ValueError)
        └── DeliveryError            a channel could not deliver an alert
            ├── RetryableDeliveryError   408/429/5xx, timeouts, connection errors: try again later
            └── PermanentDeliveryError   other 4xx, rejected recipients: retrying cannot help
                └── ChannelGoneError     HTTP 410 (chat webhooks: 404 too): channel disabled

Messages never carry secrets: `monitor.core.redaction` cuts URLs to their hosts (`hosts_only`) and
replaces known secret values.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.core.redaction import hosts_only

__all__ = ["BlockedAddressError", "ChannelError", "ChannelGoneError", "ChannelSetupError",
           "ConfigError", "ConfigProblem", "DeliveryError", "FetchError", "LivewatchError",
           "ParseError", "PermanentDeliveryError", "QuerySyntaxError", "RetryableDeliveryError",
           "StateError", "hosts_only"]


class LivewatchError(Exception):
    """Base of every error livewatch raises on purpose."""


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a configuration file."""

    file: str
    location: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.location}" if self.location else self.file
        return f"{where}: {self.reason}"


class ConfigError(LivewatchError):
    """A configuration file is invalid; `problems` lists every problem found."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class QuerySyntaxError(LivewatchError, ValueError):
    """A query that cannot be parsed; `column` is 1-based."""

    def __init__(self, query: str, column: int, reason: str) -> None:
        self.query, self.column, self.reason = query, column, reason
        super().__init__(f"{reason} at column {column}")

    def caret(self) -> str:
        """The query and a caret under the column, on two lines."""
        return f"{self.query}\n{' ' * (self.column - 1)}^"


class FetchError(LivewatchError):
    """A feed could not be fetched. `retry_after` (seconds) is set when the server asked for it.
    Its message names hosts only (`hosts_only`), whatever built it."""

    def __init__(self, reason: str, *, status: int | None = None,
                 retry_after: float | None = None) -> None:
        reason = hosts_only(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after
        super().__init__(reason)


class BlockedAddressError(FetchError):
    """A connection the network policy refused (`monitor.fetch.netpolicy`)."""

    def __init__(self, host: str, address: str, why: str) -> None:
        self.host = host
        self.address = address
        self.why = why
        target = address if host == address else f"{host} ({address})"
        super().__init__(f"blocked private address: {target} is {why}; "
                         "set fetch.allow_private_networks or fetch.allow_hosts to allow it")


class ParseError(LivewatchError):
    """A fetched document could not be parsed into entries."""


class StateError(LivewatchError):
    """Redis state could not be read or written."""


class ChannelError(LivewatchError):
    """A delivery channel failed: it could not be built, or could not deliver."""


class ChannelSetupError(ChannelError, ValueError):
    """A channel cannot be built from its settings (an unknown type, a malformed secret)."""


class DeliveryError(ChannelError):
    """A channel failed to deliver an alert."""

    retryable: bool = True

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        self.reason = reason
        self.retry_after = retry_after
        super().__init__(reason)


class RetryableDeliveryError(DeliveryError):
    """Delivery may succeed later (server error, rate limit, timeout, connection refused)."""

    retryable = True


class PermanentDeliveryError(DeliveryError):
    """Delivery cannot succeed by retrying (client error, rejected address)."""

    retryable = False


class ChannelGoneError(PermanentDeliveryError):
    """The destination no longer exists (HTTP 410 Gone): the channel is disabled until an
    operator re-enables it, and the operator is told."""
