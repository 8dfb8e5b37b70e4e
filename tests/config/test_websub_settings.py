"""The `websub` settings: defaults, validation with field paths, renewal times."""

from __future__ import annotations

import pytest

from monitor.config.loader import parse_config
from monitor.config.models import Config, WebSubSettings
from monitor.core.errors import ConfigError


def test_websub_is_off_by_default() -> None:
    settings = Config().websub
    assert settings.listen is None and settings.callback_url is None
    assert settings.address is None
    assert settings.lease == 10 * 86400 and settings.renew_before == 0.2


def test_websub_settings_parse() -> None:
    config = parse_config("""
websub:
  callback_url: "https://lw.example.org/websub"
  listen: "[::]:9110"
  lease: 2d
  renew_before: 6h
""")
    assert config.websub.address == ("::", 9110)
    assert config.websub.lease == 2 * 86400 and config.websub.renew_before == 6 * 3600


@pytest.mark.parametrize(("renew_before", "lease", "after"), [
    (0.2, 1000.0, 800.0),          # a fraction: at 80%
    (0.5, 10.0, 5.0),
    ("1h", 86400.0, 82800.0),      # a duration before the end
    (3600, 86400.0, 82800.0),      # seconds
    ("2d", 86400.0, 43200.0),      # longer than the lease: at half of it
])
def test_renew_after(renew_before: object, lease: float, after: float) -> None:
    settings = WebSubSettings.model_validate({"renew_before": renew_before})
    assert settings.renew_after(lease) == pytest.approx(after)


@pytest.mark.parametrize(("yaml", "location", "reason"), [
    ('websub: {listen: "0.0.0.0:9110"}', "websub", "needs `callback_url`"),
    ('websub: {callback_url: "ftp://x.example/cb", listen: "0.0.0.0:9110"}',
     "websub.callback_url", "http:// or https://"),
    ('websub: {callback_url: "https://x.example/cb", listen: "9110"}', "websub.listen",
     "host:port"),
    ('websub: {callback_url: "https://x.example/cb", listen: "h:70000"}', "websub.listen",
     "host:port"),
    ("websub: {lease: 0s}", "websub.lease", "greater than zero"),
    ("websub: {renew_before: soon}", "websub.renew_before", "invalid duration"),
    ("websub: {renew_before: 0}", "websub.renew_before", "greater than 0"),
    ("websub: {secret: x}", "websub.secret", "unknown key"),
])
def test_bad_websub_settings(yaml: str, location: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(yaml + "\n", "test.yaml", {})
    (problem,) = info.value.problems
    assert problem.location == location, problem
    assert reason in problem.reason, problem
