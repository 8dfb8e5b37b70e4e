"""When to poll a feed next: pure, no I/O.

A live blog that is live (coverage not ended, changed recently) is polled at its interval. With
`min_interval`, one that *posted* (a new or edited entry) within `hot_for` is hot: polled every
`min_interval`; after that the wait grows with the time since the post (`min_interval` times
that time over `hot_for`) until it is the interval again. One that went quiet (no change for
`quiet_after`) backs off by half again per unchanged poll up to `max_interval`; one whose
`coverageEndTime` has passed is polled at `max_interval`. Any change brings it straight back
to its interval (a post: to `min_interval`). Cache-Control max-age and Retry-After are floors
on the wait, within [min_interval, max_interval]; failures back off exponentially from the
interval up to `max_backoff`.
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
    #: The wait while hot (`interval`: no hot polling).
    min_interval: float | None = None
    #: How long after a post a feed is hot.
    hot_for: float = 600.0


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
               max_age: float | None = None, since_post: float | None = None) -> float:
    """Seconds until the next poll.

    `since_change` is how long ago the feed last changed (a post, or its first poll);
    `quiet_polls` how many polls in a row found nothing new since it went quiet;
    `since_post` how long ago a poll last found a new or edited entry (None: never).
    """
    if failures:
        return backoff_delay(cadence.interval, failures, cadence.max_backoff, retry_after)
    ceiling = max(cadence.max_interval, cadence.interval)
    floor = cadence.interval
    if ended:
        delay = ceiling
    elif since_change >= cadence.quiet_after:
        delay = cadence.interval * 1.5 ** min(quiet_polls, 64)
    elif (cadence.min_interval is not None and cadence.min_interval < cadence.interval
          and since_post is not None):
        floor = cadence.min_interval
        cooling = max(since_post, 0.0) / max(cadence.hot_for, 1e-9)
        delay = min(cadence.interval, cadence.min_interval * max(cooling, 1.0))
    else:
        delay = cadence.interval
    for hint in (max_age, retry_after):
        if hint is not None:
            delay = max(delay, hint)
    return min(max(delay, floor), ceiling)
