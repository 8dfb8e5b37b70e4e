"""Adaptive polling decisions (pure)."""

from __future__ import annotations

import pytest

from monitor.poll.cadence import Cadence, next_delay

C = Cadence(interval=30, max_interval=600, quiet_after=900, max_backoff=1800)


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({}, 30),                                                  # live: the interval
    ({"since_change": 100, "quiet_polls": 5}, 30),             # changed recently: still live
    ({"since_change": 900, "quiet_polls": 0}, 30),             # just went quiet
    ({"since_change": 1000, "quiet_polls": 1}, 45),            # backs off by half again
    ({"since_change": 1000, "quiet_polls": 4}, 30 * 1.5 ** 4),
    ({"since_change": 5000, "quiet_polls": 40}, 600),          # up to the ceiling
    ({"ended": True}, 600),                                    # coverage ended: the ceiling
    ({"max_age": 120}, 120),                                   # Cache-Control max-age honoured
    ({"max_age": 5}, 30),                                      # never faster than the interval
    ({"max_age": 86400}, 600),                                 # never slower than the ceiling
    ({"failures": 1}, 30),                                     # failures: exponential backoff
    ({"failures": 3}, 120),
    ({"failures": 3, "retry_after": 1000}, 1000),              # Retry-After honoured
    ({"failures": 20}, 1800),                                  # capped by max_backoff
])
def test_next_delay(kwargs: dict[str, float], expected: float) -> None:
    assert next_delay(C, **kwargs) == pytest.approx(expected)  # type: ignore[arg-type]


def test_ceiling_below_interval_never_polls_faster_than_interval() -> None:
    slow = Cadence(interval=120, max_interval=60, quiet_after=10, max_backoff=60)
    assert next_delay(slow, ended=True) == 120
    assert next_delay(slow, since_change=100, quiet_polls=3) == 120
