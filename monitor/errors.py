"""The exception tree of livewatch. Library errors are wrapped at the boundary (`raise … from e`).

    LivewatchError
    ├── ConfigError          bad YAML or settings; carries every problem (file, field path, reason)
    ├── FetchError           a feed could not be fetched (network, HTTP status, size cap, timeout)
    ├── ParseError           a fetched document yielded no usable entries
    ├── StateError           Redis state is unusable (unreachable, script failure)
    └── DeliveryError        a channel could not deliver an alert
        ├── RetryableDeliveryError   408/429/5xx, timeouts, connection errors: try again later
        └── PermanentDeliveryError   other 4xx, rejected recipients: retrying cannot help
"""

from __future__ import annotations

import re
from dataclasses import dataclass


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


#: A URL in a message: scheme, optional userinfo (to the last `@` before a `/`), host[:port],
#: then everything up to white space: a path may hold `)`, `'` or `"` and a query after them.
_URL = re.compile(r"""\b([a-z][a-z0-9+.-]{0,30})://(?:[^/\s]*@)?([^/\s'"<>()?#@\\]*)\S*""",
                  re.IGNORECASE)


def hosts_only(text: str) -> str:
    """`text` with every URL cut to its scheme and host (a path, query or userinfo may hold a
    token): what errors, logs, `status` and notices may show."""
    return _URL.sub(r"\1://\2", text) if "://" in text else text


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


class ParseError(LivewatchError):
    """A fetched document could not be parsed into entries."""


class StateError(LivewatchError):
    """Redis state could not be read or written."""


class DeliveryError(LivewatchError):
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
