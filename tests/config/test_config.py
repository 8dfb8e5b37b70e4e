"""Configuration: every problem is reported with its exact field path; good files load."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from pydantic import SecretStr

from monitor.config.loader import load_config, parse_config
from monitor.config.models import DEFAULT_USER_AGENT, Config, EmailChannelSettings
from monitor.config.values import env_var_names
from monitor.core.errors import ConfigError, ConfigProblem

REPO = Path(__file__).resolve().parents[2]

# A small valid configuration; bad cases below are variations of it.
FEEDS = """\
feeds:
  - {name: ukraine-live, url: "https://example.org/live/ukraine"}
  - {name: world, url: "https://news.example.org/world.xml", kind: rss}
"""
CHANNELS = """\
channels:
  - {name: newsdesk, type: webhook, url: "https://hooks.example.org/lw"}
"""


def cfg(text: str) -> str:
    """Dedented YAML without the leading newline, so line numbers count from the first key."""
    return textwrap.dedent(text).lstrip("\n")


def problems_of(text: str, env: dict[str, str] | None = None) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "test.yaml", env or {})
    assert info.value.problems, "a ConfigError must carry at least one problem"
    assert all(p.file == "test.yaml" for p in info.value.problems)
    return info.value.problems


def parse(text: str, env: dict[str, str] | None = None) -> Config:
    return parse_config(cfg(text), "test.yaml", env or {})


# (id, yaml, env, exact location, reason substring)
BAD_CONFIGS = [
    ("unknown-top-level-key", FEEDS + "feedz: []\n", None,
     "feedz", "unknown key"),
    ("unknown-nested-key", FEEDS + cfg("""
        defaults:
          interval: 30s
          intervall: 5m
        """), None, "defaults.intervall", "unknown key"),
    ("unknown-key-in-list-item", cfg("""
        feeds:
          - {name: a, url: "https://example.org/a"}
          - {name: b, url: "https://example.org/b", backfil: 3}
        """), None, "feeds[1].backfil", "unknown key"),
    ("bad-duration-unit", cfg("""
        feeds:
          - {name: a, url: "https://example.org/a", interval: 5x}
        """), None, "feeds[0].interval", "invalid duration '5x'"),
    ("zero-duration", "defaults: {interval: 0s}\n", None,
     "defaults.interval", "greater than zero"),
    ("parse-processes-negative", "fetch: {parse_processes: -1}\n", None,
     "fetch.parse_processes", "an integer from 0 to 64 or `auto`, not -1"),
    ("parse-processes-word", "fetch: {parse_processes: many}\n", None,
     "fetch.parse_processes", "not 'many'"),
    ("min-interval-above-interval", "defaults: {interval: 30s, min_interval: 1m}\n", None,
     "defaults.min_interval", "min_interval (60s) is longer than interval (30s)"),
    ("feed-min-interval-above-its-interval", cfg("""
        feeds:
          - {name: a, url: "https://example.org/a", interval: 10s, min_interval: 20s}
        """), None, "feeds[0].min_interval", "is longer than interval (10s)"),
    ("negative-duration-number", "workers: {give_up_after: -1}\n", None,
     "workers.give_up_after", "greater than zero"),
    ("negative-duration-text", "state: {delivered_ttl: -5m}\n", None,
     "state.delivered_ttl", "invalid duration '-5m'"),
    ("bad-size", "defaults: {max_body: 10XB}\n", None,
     "defaults.max_body", "invalid size '10XB'"),
    ("bad-url-scheme", cfg("""
        feeds:
          - {name: a, url: "ftp://example.org/feed.xml"}
        """), None, "feeds[0].url", "http:// or https://"),
    ("webhook-url-without-host", cfg("""
        channels:
          - {name: hook, type: webhook, url: "https:///path"}
        """), None, "channels[0].url", "http:// or https://"),
    ("duplicate-feed-name", cfg("""
        feeds:
          - {name: a, url: "https://example.org/a"}
          - {name: b, url: "https://example.org/b"}
          - {name: a, url: "https://example.org/c"}
        """), None, "feeds[2].name", "duplicate name 'a' (also feeds[0])"),
    ("duplicate-channel-name", FEEDS + cfg("""
        channels:
          - {name: desk, type: webhook, url: "https://hooks.example.org/1"}
          - {name: desk, type: webhook, url: "https://hooks.example.org/2"}
        """), None, "channels[1].name", "duplicate name 'desk'"),
    ("duplicate-rule-name", FEEDS + CHANNELS + cfg("""
        rules:
          - {name: r, any: [x], channels: [newsdesk]}
          - {name: r, any: [y], channels: [newsdesk]}
        """), None, "rules[1].name", "duplicate name 'r'"),
    ("rule-names-missing-channel", FEEDS + CHANNELS + cfg("""
        rules:
          - {name: one, any: [x], channels: [newsdesk]}
          - {name: two, any: [y], channels: [newsdesk]}
          - {name: three, any: [z], channels: [editors, newsdesk]}
        """), None, "rules[2].channels[0]", "rule 'three' names unknown channel 'editors'"),
    ("rule-feed-glob-matches-nothing", FEEDS + CHANNELS + cfg("""
        rules:
          - {name: r, any: [x], feeds: ["ukraine-*", "gaza-*"], channels: [newsdesk]}
        """), None, "rules[0].feeds[1]", "'gaza-*' matches no feed"),
    ("rule-names-missing-feed", FEEDS + CHANNELS + cfg("""
        rules:
          - {name: r, any: [x], feeds: [world, europe], channels: [newsdesk]}
        """), None, "rules[0].feeds[1]", "'europe' is not a feed"),
    ("rule-without-any-or-all", FEEDS + CHANNELS + cfg("""
        rules:
          - {name: r, none: [football], channels: [newsdesk]}
        """), None, "rules[0]", "at least one phrase in `any` or `all`"),
    ("rule-without-channels", FEEDS + CHANNELS + cfg("""
        rules:
          - {name: r, any: [x]}
        """), None, "rules[0].channels", "field required"),
    ("phrase-empty-after-normalisation", FEEDS + CHANNELS + cfg("""
        rules:
          - {name: r, any: [ceasefire, "<b></b>"], channels: [newsdesk]}
        """), None, "rules[0].any[1]", "empty once normalised"),
    ("blank-phrase-in-none", FEEDS + CHANNELS + cfg("""
        rules:
          - {name: r, any: [x], none: ["   "], channels: [newsdesk]}
        """), None, "rules[0].none[0]", "empty once normalised"),
    ("unknown-event", FEEDS + CHANNELS + cfg("""
        rules:
          - {name: r, any: [x], events: [deleted], channels: [newsdesk]}
        """), None, "rules[0].events[0]", "'new' or 'updated'"),
    ("unknown-channel-type", cfg("""
        channels:
          - {name: chat, type: sms, url: "https://example.org"}
        """), None, "channels[0]",
     "type must be one of: webhook, email, slack, discord, teams, apprise"),
    ("missing-channel-type", cfg("""
        channels:
          - {name: chat, url: "https://example.org"}
        """), None, "channels[0]", "type is required (one of: webhook, email, slack"),
    ("chat-channel-error-location", cfg("""
        channels:
          - {name: chat, type: slack}
        """), None, "channels[0].url", "field required"),
    ("unknown-feed-kind", cfg("""
        feeds:
          - {name: a, url: "https://example.org/a", kind: xml}
        """), None, "feeds[0].kind", "'jsonfeed', 'liveblog' or 'html'"),
    ("html-kind-without-selectors", cfg("""
        feeds:
          - {name: a, url: "https://example.org/a", kind: html}
        """), None, "feeds[0].selectors", "`kind: html` needs `selectors`"),
    ("selectors-with-a-feed-kind", cfg("""
        feeds:
          - {name: a, url: "https://example.org/a", kind: rss, selectors: {item: article}}
        """), None, "feeds[0].selectors", "only with `kind: html` or `auto`"),
    ("selectors-without-item", cfg("""
        feeds:
          - {name: a, url: "https://example.org/a", kind: html, selectors: {title: h2}}
        """), None, "feeds[0].selectors.item", "field required"),
    ("invalid-item-selector", cfg("""
        feeds:
          - {name: a, url: "https://example.org/a", kind: html, selectors: {item: "div["}}
        """), None, "feeds[0].selectors.item", "invalid CSS selector 'div['"),
    ("invalid-sub-selector", cfg("""
        feeds:
          - name: a
            url: "https://example.org/a"
            kind: html
            selectors: {item: article, link: "a.permalink >@href"}
        """), None, "feeds[0].selectors.link", "invalid CSS selector 'a.permalink >'"),
    ("item-selector-with-attribute", cfg("""
        feeds:
          - {name: a, url: "https://example.org/a", kind: html, selectors: {item: "@id"}}
        """), None, "feeds[0].selectors.item", "invalid CSS selector"),
    ("unknown-selector-key", cfg("""
        feeds:
          - {name: a, url: "https://example.org/a", kind: html, selectors: {item: p, text: p}}
        """), None, "feeds[0].selectors.text", "unknown key"),
    ("name-with-space", cfg("""
        feeds:
          - {name: "my feed", url: "https://example.org/a"}
        """), None, "feeds[0].name", "no spaces"),
    ("backfill-too-large", cfg("""
        feeds:
          - {name: a, url: "https://example.org/a", backfill: 5000}
        """), None, "feeds[0].backfill", "less than or equal to 1000"),
    ("email-missing-smtp-host", cfg("""
        channels:
          - name: editors
            type: email
            to: [desk@example.org]
            from: lw@example.org
            smtp: {port: 587}
        """), None, "channels[0].smtp.host", "field required"),
    ("email-missing-from", cfg("""
        channels:
          - {name: editors, type: email, to: [desk@example.org], smtp: {host: smtp.example.org}}
        """), None, "channels[0].from", "field required"),
    ("email-bad-recipient", cfg("""
        channels:
          - name: editors
            type: email
            to: [desk@example.org, "not an address"]
            from: lw@example.org
            smtp: {host: smtp.example.org}
        """), None, "channels[0].to[1]", "should match pattern"),
    ("email-ssl-and-starttls", cfg("""
        channels:
          - name: editors
            type: email
            to: [desk@example.org]
            from: lw@example.org
            smtp: {host: smtp.example.org, port: 465, ssl: true, starttls: true}
        """), None, "channels[0].smtp", "not both"),
    ("email-password-without-username", cfg("""
        channels:
          - name: editors
            type: email
            to: [desk@example.org]
            from: lw@example.org
            smtp: {host: smtp.example.org, password: hunter2}
        """), None, "channels[0].smtp", "`password` is set but `username` is not"),
    ("missing-env-variable", cfg("""
        channels:
          - {name: hook, type: webhook, url: "https://hooks.example.org/lw",
             secret: "${LW_NOT_SET}"}
        """), {"LW_OTHER": "x"}, "channels[0].secret",
     "environment variable LW_NOT_SET is not set"),
    ("duplicate-yaml-key", cfg("""
        feeds:
          - name: a
            url: "https://example.org/a"
            url: "https://example.org/b"
        """), None, "line 4, column 5", "duplicate key 'url'"),
    ("duplicate-top-level-yaml-key", "feeds: []\nrules: []\nfeeds: []\n", None,
     "line 3, column 1", "duplicate key 'feeds'"),
    ("invalid-yaml-syntax", cfg("""
        feeds:
          - name: a
            url: [https://example.org/a
        """), None, "line 4, column 1", "invalid YAML"),
    ("invalid-yaml-tab-indent", "feeds:\n\t- name: a\n", None,
     "line 2, column 1", "invalid YAML"),
    ("unhashable-yaml-key", "? {a: 1}\n: 2\n", None,
     "line 1, column 3", "invalid YAML"),
    ("top-level-list", "- feeds\n- rules\n", None, "", "top level must be a mapping"),
    ("top-level-scalar", "just a string\n", None, "", "top level must be a mapping"),
    ("string-for-feeds-list", "feeds: https://example.org/feed\n", None,
     "feeds", "valid list"),
    ("string-for-rule-channels", FEEDS + CHANNELS + cfg("""
        rules:
          - {name: r, any: [x], channels: newsdesk}
        """), None, "rules[0].channels", "valid list"),
    ("string-for-email-to", cfg("""
        channels:
          - {name: e, type: email, to: desk@example.org, from: lw@example.org,
             smtp: {host: smtp.example.org}}
        """), None, "channels[0].to", "valid list"),
    ("mapping-for-defaults-scalar", "defaults: {max_concurrency: {a: 1}}\n", None,
     "defaults.max_concurrency", "valid integer"),
    ("bool-for-duration", "defaults: {timeout: true}\n", None,
     "defaults.timeout", "expected a duration"),
    ("channel-header-named-like-type-tag", cfg("""
        channels:
          - {name: hook, type: webhook, url: "https://example.org/h", headers: {email: 5}}
        """), None, "channels[0].headers.email", "valid string"),
]


@pytest.mark.parametrize(("text", "env", "location", "reason"),
                         [pytest.param(*case[1:], id=case[0]) for case in BAD_CONFIGS])
def test_bad_config_reports_field_path_and_reason(
        text: str, env: dict[str, str] | None, location: str, reason: str) -> None:
    problems = problems_of(text, env)
    at_location = [p for p in problems if p.location == location]
    assert at_location, f"no problem at {location!r}; got {problems}"
    assert any(reason in p.reason for p in at_location), (
        f"no reason containing {reason!r} at {location!r}; got {problems}")


def test_bad_config_table_is_wide() -> None:
    assert len(BAD_CONFIGS) >= 14
    assert len({case[0] for case in BAD_CONFIGS}) == len(BAD_CONFIGS)


def test_one_file_reports_every_problem_at_once() -> None:
    text = cfg("""
        defaults: {interval: 5x, timeout: 0}
        feeds:
          - {name: a, url: "https://example.org/a"}
          - {name: a, url: "gopher://example.org/b", colour: red}
        rules:
          - {name: r1, any: ["<i></i>"], feeds: ["nothing-*"], channels: [nobody]}
          - {name: r2, none: [x], channels: [hook]}
        channels:
          - {name: hook, type: webhook, url: "https://hooks.example.org/lw",
             secret: "${LW_MISSING}"}
          - name: mail
            type: email
            to: [desk@example.org]
            from: lw@example.org
            smtp: {host: smtp.example.org, ssl: true, starttls: true}
        """)
    with pytest.raises(ConfigError) as info:
        parse_config(text, "many.yaml", {})
    found = {(p.location, p.reason) for p in info.value.problems}
    expected = {
        ("defaults.interval", "invalid duration '5x'"),
        ("defaults.timeout", "greater than zero"),
        ("feeds[1].name", "duplicate name 'a'"),
        ("feeds[1].url", "http:// or https://"),
        ("feeds[1].colour", "unknown key"),
        ("rules[0].any[0]", "empty once normalised"),
        ("rules[0].feeds[0]", "matches no feed"),
        ("rules[0].channels[0]", "unknown channel 'nobody'"),
        ("rules[1]", "at least one phrase"),
        ("channels[0].secret", "LW_MISSING is not set"),
        ("channels[1].smtp", "not both"),
    }
    for location, reason in expected:
        assert any(loc == location and reason in why for loc, why in found), (
            f"missing {location}: {reason}; got {sorted(found)}")
    assert len(info.value.problems) == len(expected)
    message = str(info.value)
    assert len(message.splitlines()) == len(expected)
    assert all(line.startswith("many.yaml: ") for line in message.splitlines())
    assert "many.yaml: rules[0].channels[0]: rule 'r1' names unknown channel 'nobody'" in message


def test_problem_string_names_file_location_and_reason() -> None:
    assert str(ConfigProblem("c.yaml", "feeds[0].url", "bad")) == "c.yaml: feeds[0].url: bad"
    assert str(ConfigProblem("c.yaml", "", "bad")) == "c.yaml: bad"


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(missing, env={})
    [problem] = info.value.problems
    assert problem.file == str(missing)
    assert "cannot read file" in problem.reason


# --- good configurations -------------------------------------------------------------------

@pytest.mark.parametrize(("value", "seconds"), [
    ("500ms", 0.5), ("30s", 30.0), ("5m", 300.0), ("1h", 3600.0), ("1d", 86400.0),
    ("2.5s", 2.5), ("90", 90.0), (45, 45.0), (1.5, 1.5),
])
def test_durations(value: object, seconds: float) -> None:
    yaml_value = json.dumps(value)  # JSON is YAML: quoted strings, bare numbers
    config = parse(f"""
        defaults: {{interval: {yaml_value}, timeout: {yaml_value}}}
        workers: {{claim_idle: {yaml_value}}}
        """)
    assert config.defaults.interval == seconds
    assert config.defaults.timeout == seconds
    assert config.workers.claim_idle == seconds


@pytest.mark.parametrize(("value", "size"), [
    ("10MB", 10 * 1024 * 1024), ("512KB", 512 * 1024), ("1GiB", 1024**3), ("2k", 2048),
    ("100b", 100), (4096, 4096),
])
def test_sizes(value: object, size: int) -> None:
    config = parse(f"defaults: {{max_body: {value}}}\n")
    assert config.defaults.max_body == size


def test_env_interpolation_with_and_without_default() -> None:
    config = parse("""
        feeds:
          - name: a
            url: "https://${FEED_HOST}/live/${FEED_PATH:-ukraine}"
            interval: "${LW_INTERVAL:-45s}"
          - name: b
            url: "https://example.org/${UNSET_PATH:-world}"
            headers: {X-Token: "${TOKEN}"}
        """, env={"FEED_HOST": "news.example.org", "LW_INTERVAL": "2m", "TOKEN": "t0k"})
    assert config.feeds[0].url == "https://news.example.org/live/ukraine"
    assert config.feeds[0].interval == 120.0  # the variable wins over the default
    assert config.feeds[1].url == "https://example.org/world"
    assert config.feeds[1].headers == {"X-Token": "t0k"}


def test_env_interpolation_empty_default() -> None:
    config = parse("""redis: {url: "${LW_REDIS_URL:-}"}\n""")
    assert config.redis.url == ""
    assert config.redis.embedded


def test_defaults() -> None:
    config = parse_config("", env={})
    assert config.redis.url == "embedded"
    assert config.redis.embedded
    assert config.redis.data_dir == Path(".livewatch")
    assert config.defaults.interval == 60.0
    assert config.defaults.timeout == 20.0
    assert config.defaults.jitter is None
    assert config.defaults.user_agent == DEFAULT_USER_AGENT
    assert config.defaults.user_agent.startswith("livewatch/")
    assert config.defaults.max_body == 10 * 1024 * 1024
    assert config.defaults.max_backoff == 1800.0
    assert config.defaults.max_concurrency == 100
    assert (config.feeds, config.rules, config.channels) == ([], [], [])
    assert config.workers.concurrency == 16
    assert config.workers.claim_idle == 60.0
    assert config.workers.max_deliveries == 5
    assert config.workers.retry_schedule == [5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0,
                                              36000.0]
    assert config.workers.give_up_after == 3 * 86400.0
    assert config.state.max_entries_per_feed == 2000
    assert config.state.stream_maxlen == 100_000
    assert config.state.delivered_ttl == 30 * 86400.0


def test_external_redis_url() -> None:
    config = parse("""redis: {url: "redis://localhost:6379/0"}\n""")
    assert not config.redis.embedded


def test_feed_and_rule_defaults_and_per_feed_values() -> None:
    config = parse(FEEDS + CHANNELS + """
rules:
  - {name: r, any: [ceasefire], channels: [newsdesk]}
""")
    feed = config.feed("ukraine-live")
    assert (feed.kind, feed.enabled, feed.backfill, feed.headers) == ("auto", True, 0, {})
    assert config.interval(feed) == 60.0
    assert config.timeout(feed) == 20.0
    rule = config.rules[0]
    assert rule.feeds == ["*"]
    assert rule.events == ["new", "updated"]
    assert (rule.all, rule.none) == ([], [])
    assert config.channel("newsdesk").type == "webhook"
    with pytest.raises(KeyError):
        config.feed("nope")
    with pytest.raises(KeyError):
        config.channel("nope")


def test_selectors_of_an_html_feed() -> None:
    config = parse("""
feeds:
  - name: page
    url: "https://example.org/live"
    kind: html
    selectors: {item: "article.post", id: "@data-id", title: "h2", link: "a.permalink@href",
                time: "time@datetime", author: ".byline .name", body: "div.body"}
  - {name: sniffed, url: "https://example.org/other", selectors: {item: "li.update"}}
  - {name: blog, url: "https://example.org/blog", kind: liveblog}
""")
    selectors = config.feed("page").selectors
    assert selectors is not None
    assert (selectors.item, selectors.id, selectors.link) == (
        "article.post", "@data-id", "a.permalink@href")
    assert config.feed("sniffed").selectors is not None
    assert config.feed("blog").selectors is None


def test_jitter_default_is_a_tenth_of_the_interval_capped_at_30s() -> None:
    config = parse("""
        defaults: {interval: 2m}
        feeds:
          - {name: fast, url: "https://example.org/a", interval: 30s}
          - {name: normal, url: "https://example.org/b"}
          - {name: slow, url: "https://example.org/c", interval: 1h, timeout: 5s}
        """)
    fast, normal, slow = config.feeds
    assert config.jitter(fast) == pytest.approx(3.0)
    assert config.jitter(normal) == pytest.approx(12.0)
    assert config.jitter(slow) == 30.0
    assert config.interval(slow) == 3600.0
    assert config.timeout(slow) == 5.0
    assert config.timeout(normal) == 20.0


def test_explicit_jitter_applies_to_every_feed_and_may_be_zero() -> None:
    config = parse("""
        defaults: {jitter: 2500ms}
        feeds: [{name: a, url: "https://example.org/a", interval: 1h}]
        """)
    assert config.jitter(config.feeds[0]) == 2.5
    config = parse("defaults: {jitter: 0}\nfeeds: [{name: a, url: 'https://example.org/a'}]\n")
    assert config.jitter(config.feeds[0]) == 0.0


EMAIL = """
channels:
  - name: editors
    type: email
    to: [desk@example.org]
    from: "livewatch <livewatch@example.org>"
    smtp:
      host: smtp.example.org
      starttls: true
      username: lw
      password: "${LW_SMTP_PASSWORD}"
  - name: hook
    type: webhook
    url: "https://hooks.example.org/lw"
    secret: "${LW_WEBHOOK_SECRET}"
"""
SECRETS = {"LW_SMTP_PASSWORD": "smtp-pa55-Zq81", "LW_WEBHOOK_SECRET": "whsec-Kx29-vv"}


def test_email_from_alias_and_smtp_defaults() -> None:
    config = parse(EMAIL, env=SECRETS)
    channel = config.channel("editors")
    assert isinstance(channel, EmailChannelSettings)
    assert channel.sender == "livewatch <livewatch@example.org>"
    assert channel.subject_prefix == "[livewatch]"
    assert channel.smtp.port == 587
    assert channel.smtp.starttls is True
    assert channel.smtp.ssl is False
    assert channel.smtp.timeout == 20.0


def test_secrets_are_secretstr_and_never_shown() -> None:
    config = parse(EMAIL, env=SECRETS)
    email = config.channel("editors")
    hook = config.channel("hook")
    assert isinstance(email, EmailChannelSettings)
    assert isinstance(email.smtp.password, SecretStr)
    assert email.smtp.password.get_secret_value() == SECRETS["LW_SMTP_PASSWORD"]
    assert hook.type == "webhook"
    assert isinstance(hook.secret, SecretStr)
    assert hook.secret.get_secret_value() == SECRETS["LW_WEBHOOK_SECRET"]
    shown = [str(config), repr(config), str(email), repr(hook), config.model_dump_json()]
    for text in shown:
        for secret in SECRETS.values():
            assert secret not in text


def test_errors_never_show_env_values() -> None:
    # A bad webhook URL and a bad duration, both built from the environment, next to a secret.
    text = cfg("""
        feeds:
          - {name: a, url: "https://example.org/a", interval: "${LW_INTERVAL}"}
        channels:
          - {name: hook, type: webhook, url: "${LW_HOOK_URL}", secret: "${LW_WEBHOOK_SECRET}"}
          - name: mail
            type: email
            to: [desk@example.org]
            from: lw@example.org
            smtp: {host: smtp.example.org, password: "${LW_SMTP_PASSWORD}"}
        """)
    env = {**SECRETS, "LW_HOOK_URL": "ftp://hooks.example.org/T0KEN-in-path-77",
           "LW_INTERVAL": "every-Qv5-minutes"}
    with pytest.raises(ConfigError) as info:
        parse_config(text, "secret.yaml", env)
    locations = {p.location for p in info.value.problems}
    assert {"feeds[0].interval", "channels[0].url", "channels[1].smtp"} <= locations
    shown = str(info.value) + repr(info.value) + repr(info.value.problems)
    for value in env.values():
        assert value not in shown
    assert "${LW_HOOK_URL}" in shown  # the message still says where the value came from


def test_config_is_frozen() -> None:
    config = parse(FEEDS)
    with pytest.raises(ValueError, match="frozen"):
        config.feeds[0].interval = 5.0


# --- shipped configuration files -----------------------------------------------------------

CONFIG_FILES = sorted((REPO / "config").glob("*.yaml"))


def test_there_are_config_files() -> None:
    assert CONFIG_FILES, f"no config/*.yaml in {REPO}"
    assert REPO / "config" / "example.yaml" in CONFIG_FILES


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.name)
def test_shipped_config_files_validate(path: Path) -> None:
    names = set(env_var_names(path.read_text(encoding="utf-8")))
    env = {name: f"test-{name.lower()}" for name in names}
    config = load_config(path, env=env)
    assert isinstance(config, Config)
    for rule in config.rules:
        for channel in rule.channels:
            config.channel(channel)


def test_example_config_shows_the_documented_shape() -> None:
    config = load_config(REPO / "config" / "example.yaml",
                         env={"LW_WEBHOOK_SECRET": "w", "LW_SMTP_PASSWORD": "p"})
    assert config.redis.embedded
    assert {f.kind for f in config.feeds} >= {"auto", "rss", "atom", "liveblog", "html"}
    assert all(f.selectors for f in config.feeds if f.kind == "html")
    assert any(f.backfill for f in config.feeds)
    assert any(not f.enabled for f in config.feeds)
    assert {c.type for c in config.channels} == {"webhook", "email"}
    assert config.workers == Config().workers
    assert config.state == Config().state


def test_parse_processes_auto_is_one_per_core_up_to_two_and_none_on_one_core(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor.config import models
    fetch = models.FetchSettings()
    assert fetch.parse_processes == "auto"
    monkeypatch.setattr(models.os, "sched_getaffinity", lambda _pid: set(range(32)))
    assert fetch.parsers() == models.AUTO_PARSERS == 2  # not one per core of a large node
    monkeypatch.setattr(models.os, "sched_getaffinity", lambda _pid: {0})
    assert fetch.parsers() == 0
    assert models.FetchSettings(parse_processes=3).parsers() == 3
