"""When to poll a feed next: pure, no I/O.

A live blog that is live (coverage not ended, changed recently) is polled at its interval. One
that went quiet (no change for `quiet_after`) backs off by half again per unchanged poll up to
`max_interval`; one whose `coverageEndTime` has passed is polled at `max_interval`. Any change
brings it straight back to its interval. Cache-Control max-age and Retry-After lengthen the wait
within [interval, max_interval]; failures back off exponentially up to `max_backoff`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Cadence:
    """The bounds of one feed's polling (seconds)."""

    interval: float
    max_interval: float
    quiet_after: float
    max_backoff: float


def backoff_delay(interval: float, failures: int, max_backoff: float,
                  retry_after: float | None = None) -> float:
    """Seconds until the next poll after `failures` consecutive failures (exponential)."""
    delay = interval * (2 ** min(max(failures - 1, 0), 32)) if failures else interval
    delay = min(delay, max(max_backoff, interval))
    if retry_after is not None:
        delay = max(delay, min(retry_after, max(max_backoff, interval)))
    return delay


def next_delay(cadence: Cadence, *, failures: int = 0, retry_after: float | None = None,
               ended: bool = False, since_change: float = 0.0, quiet_polls: int = 0,
               max_age: float | None = None) -> float:
    """Seconds until the next poll.

    `since_change` is how long ago the feed last changed; `quiet_polls` how many polls in a row
    found nothing new since it went quiet.
    """
    if failures:
        return backoff_delay(cadence.interval, failures, cadence.max_backoff, retry_after)
    ceiling = max(cadence.max_interval, cadence.interval)
    if ended:
        delay = ceiling
    elif since_change >= cadence.quiet_after:
        delay = cadence.interval * 1.5 ** min(quiet_polls, 64)
    else:
        delay = cadence.interval
    for hint in (max_age, retry_after):
        if hint is not None:
            delay = max(delay, hint)
    return min(max(delay, cadence.interval), ceiling)
