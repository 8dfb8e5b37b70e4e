"""Per-channel delivery policy (digest windows, rate limits, quiet hours) and the retry schedule,
as pure functions of the settings and the clock. The outbox applies them; no I/O here.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from monitor.config.models import AnyChannelSettings, QuietHours, WorkerSettings
from monitor.config.values import format_duration


def quiet_until(quiet: QuietHours | None, now: float) -> float | None:
    """If `now` (epoch seconds) falls in the quiet hours, when they end (epoch); else None."""
    if quiet is None:
        return None
    zone = ZoneInfo(quiet.timezone)
    local = datetime.fromtimestamp(now, zone)
    start, end = _clock(quiet.start), _clock(quiet.end)
    today = local.time().replace(tzinfo=None)
    if start < end:
        inside = start <= today < end
        end_day = local.date()
    else:  # spans midnight: 22:00-07:00
        inside = today >= start or today < end
        end_day = local.date() + timedelta(days=1) if today >= start else local.date()
    if not inside:
        return None
    # Wall-clock end in the zone (fold=0 picks the first of a repeated hour at a DST change).
    return datetime.combine(end_day, end, tzinfo=zone).timestamp()


def _clock(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def rate_window(rate: tuple[int, float], now: float) -> tuple[int, float]:
    """The fixed window `now` falls in for a `count/period` limit: (its index, when it ends)."""
    _count, period = rate
    index = int(now // period)
    return index, (index + 1) * period


@dataclass(frozen=True)
class Route:
    """Where a new delivery goes: `send` now, or `hold` for a digest due at `due`.

    `keep_due` says how `due` combines with a digest already waiting: a digest window keeps
    the first item's deadline (a steady trickle must not postpone it forever); quiet hours and
    rate limits push it to the later of the two.
    """

    action: str
    due: float = 0.0
    reason: str = ""
    keep_due: bool = False


def route(channel: AnyChannelSettings, now: float, *, urgent: bool) -> Route:
    """Send now or hold, by the channel's quiet hours and digest (rate limits are counted
    atomically by the outbox: see `rate_spill`). Urgent items always go now."""
    if urgent:
        return Route("send")
    quiet = quiet_until(channel.quiet_hours, now)
    if quiet is not None:
        assert channel.quiet_hours is not None
        q = channel.quiet_hours
        return Route("hold", quiet, f"quiet hours {q.start}-{q.end} {q.timezone}")
    if channel.digest is not None:
        span = format_duration(channel.digest, exact=True)
        return Route("hold", now + channel.digest, f"{span} digest", keep_due=True)
    return Route("send")


def rate_spill(channel: AnyChannelSettings, now: float) -> tuple[str, int, int, float, str]:
    """For a rate-limited channel: (counter window key part, limit, counter TTL, when the
    window ends, reason text); limit 0 when the channel has no rate limit."""
    if channel.rate_limit is None:
        return ("", 0, 0, 0.0, "")
    count, period = channel.rate_limit
    index, end = rate_window(channel.rate_limit, now)
    return (str(index), count, int(period) + 60, end,
            f"rate limit {count}/{format_duration(period, exact=True)}")


def retry_delay(settings: WorkerSettings, attempts: int, retry_after: float | None,
                rng: random.Random | None = None) -> float:
    """Seconds to wait after the `attempts`-th failed attempt: the schedule's step (the last
    repeating), plus up to `retry_jitter` of it at random, and at least the server's
    Retry-After."""
    schedule = settings.retry_schedule
    step = schedule[min(max(attempts, 1), len(schedule)) - 1]
    delay = step * (1 + (rng or random).random() * settings.retry_jitter)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay
