"""Adaptive polling decisions (pure)."""

from __future__ import annotations

import pytest

from monitor.poll.cadence import Cadence, backoff_delay, next_delay

C = Cadence(interval=30, max_interval=600, quiet_after=900, max_backoff=1800)


@pytest.mark.parametrize(("kwargs", "expected"), [
    pytest.param({}, 30, id="live: the interval"),
    pytest.param({"since_change": 100, "quiet_polls": 5}, 30, id="changed recently: still live"),
    pytest.param({"since_change": 900, "quiet_polls": 0}, 30, id="just went quiet"),
    pytest.param({"since_change": 900, "quiet_polls": 2}, 67.5,
                 id="quiet from exactly quiet_after"),
    pytest.param({"since_change": 899, "quiet_polls": 2}, 30,
                 id="a second before quiet_after: still live"),
    pytest.param({"since_change": 1000, "quiet_polls": 1}, 45, id="backs off by half again"),
    pytest.param({"since_change": 1000, "quiet_polls": 4}, 30 * 1.5 ** 4, id="quiet 4 polls"),
    pytest.param({"since_change": 1000, "quiet_polls": 7}, 30 * 1.5 ** 7,
                 id="quiet 7 polls: the last step under the ceiling"),
    pytest.param({"since_change": 1000, "quiet_polls": 8}, 600,
                 id="quiet 8 polls: capped at max_interval"),
    pytest.param({"since_change": 5000, "quiet_polls": 40}, 600, id="up to the ceiling"),
    pytest.param({"since_change": 10**6, "quiet_polls": 10**6}, 600,
                 id="quiet for ages: still the ceiling"),
    pytest.param({"since_change": 1000, "quiet_polls": 1, "max_age": 120}, 120,
                 id="quiet, max-age longer than the quiet step"),
    pytest.param({"ended": True}, 600, id="coverage ended: the ceiling"),
    pytest.param({"ended": True, "since_change": 0}, 600, id="ended even if it just changed"),
    pytest.param({"ended": True, "max_age": 86400}, 600, id="ended, max-age over the ceiling"),
    pytest.param({"max_age": 120}, 120, id="Cache-Control max-age honoured"),
    pytest.param({"max_age": 5}, 30, id="max-age never faster than the interval"),
    pytest.param({"max_age": 86400}, 600, id="max-age never slower than the ceiling"),
    pytest.param({"retry_after": 300}, 300, id="Retry-After without a failure lengthens"),
    pytest.param({"retry_after": 5000}, 600, id="Retry-After without a failure: the ceiling"),
    pytest.param({"failures": 1}, 30, id="first failure: the interval"),
    pytest.param({"failures": 2}, 60, id="second failure: doubled"),
    pytest.param({"failures": 3}, 120, id="third failure: doubled again"),
    pytest.param({"failures": 3, "retry_after": 1000}, 1000, id="Retry-After honoured"),
    pytest.param({"failures": 3, "retry_after": 10}, 120,
                 id="a shorter Retry-After does not cut the backoff"),
    pytest.param({"failures": 1, "retry_after": 5000}, 1800,
                 id="Retry-After capped by max_backoff"),
    pytest.param({"failures": 20}, 1800, id="capped by max_backoff"),
    pytest.param({"failures": 10**6}, 1800, id="a huge streak: still max_backoff"),
    pytest.param({"failures": 2, "ended": True}, 60, id="failing after the coverage ended"),
    pytest.param({"failures": 2, "since_change": 5000, "quiet_polls": 40}, 60,
                 id="failing while quiet: the backoff, not the quiet step"),
    pytest.param({"failures": 2, "max_age": 1000}, 60, id="failing: max-age not applied"),
])
def test_next_delay(kwargs: dict[str, float], expected: float) -> None:
    assert next_delay(C, **kwargs) == pytest.approx(expected)  # type: ignore[arg-type]


def test_ceiling_below_interval_never_polls_faster_than_interval() -> None:
    slow = Cadence(interval=120, max_interval=60, quiet_after=10, max_backoff=60)
    assert next_delay(slow, ended=True) == 120
    assert next_delay(slow, since_change=100, quiet_polls=3) == 120


@pytest.mark.parametrize(("interval", "failures", "max_backoff", "retry_after", "expected"), [
    pytest.param(30, 0, 1800, None, 30, id="no failure: the interval"),
    pytest.param(30, 4, 1800, None, 240, id="four failures: 8x"),
    pytest.param(30, 7, 1800, None, 1800, id="capped by max_backoff"),
    pytest.param(120, 5, 60, None, 120, id="max_backoff below the interval: the interval"),
    pytest.param(120, 5, 60, 500, 120, id="Retry-After capped by the interval then"),
    pytest.param(30, 1, 1800, 90, 90, id="Retry-After longer than the backoff"),
])
def test_backoff_delay(interval: float, failures: int, max_backoff: float,
                       retry_after: float | None, expected: float) -> None:
    assert backoff_delay(interval, failures, max_backoff, retry_after) == expected


HOT = Cadence(interval=30, max_interval=600, quiet_after=900, max_backoff=1800,
              min_interval=5, hot_for=600)


@pytest.mark.parametrize(("kwargs", "expected"), [
    pytest.param({}, 30, id="never posted (or a restart): the interval, not hot"),
    pytest.param({"since_post": 0}, 5, id="just posted: min_interval"),
    pytest.param({"since_post": 599, "since_change": 599}, 5, id="within hot_for: still hot"),
    pytest.param({"since_post": 1200, "since_change": 800}, 10,
                 id="twice hot_for since the post: twice min_interval"),
    pytest.param({"since_post": 3000, "since_change": 800}, 25, id="cooling down"),
    pytest.param({"since_post": 4000, "since_change": 800}, 30,
                 id="cooled down: the interval, never more while live"),
    pytest.param({"since_post": 100, "since_change": 900, "quiet_polls": 2}, 67.5,
                 id="quiet since quiet_after wins over a post counted earlier"),
    pytest.param({"since_post": 0, "max_age": 20}, 20, id="max-age is a floor while hot"),
    pytest.param({"since_post": 0, "max_age": 2}, 5, id="never faster than min_interval"),
    pytest.param({"since_post": 0, "retry_after": 60}, 60, id="Retry-After is a floor too"),
    pytest.param({"since_post": 0, "ended": True}, 600, id="ended: the ceiling, not hot"),
    pytest.param({"since_post": 0, "failures": 2}, 60,
                 id="failing while hot: backoff from the interval"),
    pytest.param({"since_post": -5}, 5, id="a clock step back: still hot, not faster"),
])
def test_next_delay_hot(kwargs: dict[str, float], expected: float) -> None:
    assert next_delay(HOT, **kwargs) == pytest.approx(expected)  # type: ignore[arg-type]


def test_min_interval_at_or_above_the_interval_changes_nothing() -> None:
    for fastest in (30, 45):
        same = Cadence(interval=30, max_interval=600, quiet_after=900, max_backoff=1800,
                       min_interval=fastest)
        assert next_delay(same, since_post=0) == 30
