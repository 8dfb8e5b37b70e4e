"""Secrets in the configuration file: spot literal ones in a world-readable file, and redact
values that came from `${VAR}` out of anything printed.

Secret fields are a webhook channel's `secret`, an email channel's `smtp.password`, a chat
channel's (Slack, Discord, Teams) `url` and an Apprise channel's `urls`; the first two and the
last are pydantic `SecretStr`, so they print as `**********`; chat URLs print as host only.
Other values can still carry a secret from the environment (a token in a URL): `env_values`
maps every substituted value to its `${NAME}`, for `monitor.core.redaction.redact`.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from monitor.config.values import ENV_VAR, env_var_names
from monitor.core.redaction import redact

__all__ = ["env_values", "literal_secret_fields", "redact", "world_readable_secrets"]

#: Channel types whose `url` holds the credential (anyone with it can post).
_URL_IS_SECRET = frozenset({"slack", "discord", "teams"})
#: Shorter values are too common to redact meaningfully ("1", "true").
_MIN_REDACT = 4


def _raw(path: Path) -> Any:
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None


def _literal(value: object) -> bool:
    """A value written in the file (not empty, not a `${VAR}` reference)."""
    return value not in (None, "") and not (isinstance(value, str) and ENV_VAR.search(value))


def literal_secret_fields(raw: Any) -> list[str]:
    """Paths of secret fields holding a literal value rather than a `${VAR}` reference."""
    found: list[str] = []
    redis = raw.get("redis") if isinstance(raw, dict) else None
    sentinel = redis.get("sentinel") if isinstance(redis, dict) else None
    if isinstance(sentinel, dict):
        found += [f"redis.sentinel.{key}" for key in ("password", "sentinel_password")
                  if _literal(sentinel.get(key))]
    channels = raw.get("channels") if isinstance(raw, dict) else None
    for index, channel in enumerate(channels if isinstance(channels, list) else []):
        if not isinstance(channel, dict):
            continue
        smtp = channel.get("smtp")
        candidates = [(f"channels[{index}].secret", channel.get("secret"))]
        if isinstance(smtp, dict):
            candidates.append((f"channels[{index}].smtp.password", smtp.get("password")))
        if channel.get("type") in _URL_IS_SECRET:  # a chat webhook URL is its credential
            candidates.append((f"channels[{index}].url", channel.get("url")))
        urls = channel.get("urls")
        if channel.get("type") == "apprise" and isinstance(urls, list):
            candidates += [(f"channels[{index}].urls[{n}]", url) for n, url in enumerate(urls)]
        found += [where for where, value in candidates if _literal(value)]
    return found


def world_readable_secrets(path: str | Path) -> str | None:
    """A warning when `path` is readable by every user and holds literal secrets, else None."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if not mode & stat.S_IROTH:
        return None
    fields = literal_secret_fields(_raw(path))
    if not fields:
        return None
    return (f"{path} is world-readable (mode {stat.S_IMODE(mode):o}) and holds literal secrets "
            f"in {', '.join(fields)}: use ${{VAR}} references to environment variables, or "
            f"chmod o-r {path}")


def env_values(path: str | Path, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Value -> `${NAME}` for every environment variable the file references and that is set."""
    env = os.environ if env is None else env
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    return {env[name]: f"${{{name}}}" for name in env_var_names(text)
            if len(env.get(name, "")) >= _MIN_REDACT}

