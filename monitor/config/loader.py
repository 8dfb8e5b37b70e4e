"""Load a YAML file into `Config`, reporting every problem with the file, field path and reason.

`${VAR}` (or `${VAR:-default}`) in any string is replaced from the environment; a missing
variable is an error naming it, and substituted values never appear in error messages.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Hashable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from monitor.config.channels import CHANNEL_TYPE_NAMES
from monitor.config.models import Config
from monitor.config.values import ENV_VAR
from monitor.core.errors import ConfigError, ConfigProblem
from monitor.core.redaction import redact

_TYPES = ", ".join(CHANNEL_TYPE_NAMES)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys instead of keeping the last one."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if not isinstance(key, Hashable):
            continue  # construct_mapping reports "found unhashable key" as a YAML error
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def format_location(loc: tuple[int | str, ...]) -> str:
    """`("rules", 2, "channels", 0)` -> `rules[2].channels[0]`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _interpolate(value: Any, loc: tuple[int | str, ...], env: Mapping[str, str],
                 problems: list[tuple[tuple[int | str, ...], str]],
                 used: dict[str, str]) -> Any:
    if isinstance(value, str):
        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                if env[name]:
                    used[env[name]] = f"${{{name}}}"
                return env[name]
            if default is not None:
                return default
            problems.append((loc, f"environment variable {name} is not set"))
            return ""
        return ENV_VAR.sub(substitute, value)
    if isinstance(value, dict):
        return {k: _interpolate(v, (*loc, k), env, problems, used) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, (*loc, i), env, problems, used) for i, v in enumerate(value)]
    return value


def _named(raw: dict[str, Any], section: str) -> Iterator[tuple[int, dict[str, Any]]]:
    items = raw.get(section)
    if isinstance(items, list):
        for index, item in enumerate(items):
            if isinstance(item, dict):
                yield index, item


def _cross_check(raw: dict[str, Any]) -> list[tuple[tuple[int | str, ...], str]]:
    """Duplicate names and references to missing feeds or channels, on the raw data."""
    problems: list[tuple[tuple[int | str, ...], str]] = []
    names: dict[str, set[str]] = {}
    for section in ("feeds", "rules", "channels"):
        seen: dict[str, int] = {}
        for index, item in _named(raw, section):
            name = item.get("name")
            if isinstance(name, str):
                if name in seen:
                    problems.append(((section, index, "name"),
                                     f"duplicate name {name!r} (also {section}[{seen[name]}])"))
                else:
                    seen[name] = index
        names[section] = set(seen)
    operator = raw.get("operator")
    op_channels = operator.get("channels") if isinstance(operator, dict) else None
    for pos, channel in enumerate(op_channels if isinstance(op_channels, list) else []):
        if isinstance(channel, str) and channel not in names["channels"]:
            problems.append((("operator", "channels", pos),
                             f"operator notices name unknown channel {channel!r}"))
    for index, rule in _named(raw, "rules"):
        label = rule.get("name", f"#{index}")
        for pos, pattern in enumerate(rule.get("feeds") or []):
            if not isinstance(pattern, str):
                continue
            if not any(fnmatch.fnmatchcase(feed, pattern) for feed in names["feeds"]):
                what = "matches no feed" if any(c in pattern for c in "*?[") else "is not a feed"
                problems.append((("rules", index, "feeds", pos),
                                 f"rule {label!r}: {pattern!r} {what}"))
        channels = rule.get("channels")
        for pos, channel in enumerate(channels if isinstance(channels, list) else []):
            if isinstance(channel, str) and channel not in names["channels"]:
                problems.append((("rules", index, "channels", pos),
                                 f"rule {label!r} names unknown channel {channel!r}"))
    return problems


def parse_config(text: str, file: str = "<config>",
                 env: Mapping[str, str] | None = None) -> Config:
    """Validate YAML text; raise ConfigError listing every problem."""
    try:
        raw = yaml.load(text, Loader=_StrictLoader)  # safe: a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([ConfigProblem(file, where, f"invalid YAML: {reason}")]) from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([ConfigProblem(file, "", "the top level must be a mapping")])
    found: list[tuple[tuple[int | str, ...], str]] = []
    used: dict[str, str] = {}  # substituted value -> `${NAME}`, redacted from every message
    raw = _interpolate(raw, (), os.environ if env is None else env, found, used)
    found.extend(_cross_check(raw))
    config: Config | None = None
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        for error in exc.errors(include_input=False, include_url=False):
            loc = tuple(error["loc"])
            if len(loc) > 2 and loc[0] == "channels" and loc[2] in CHANNEL_TYPE_NAMES:
                loc = loc[:2] + loc[3:]  # drop the discriminated-union tag, nothing else
            if error["type"] == "union_tag_invalid":
                message = f"type must be one of: {_TYPES}"
            elif error["type"] == "union_tag_not_found":
                message = f"type is required (one of: {_TYPES})"
            elif error["type"] == "missing":
                message = "field required"
            elif error["type"] == "extra_forbidden":
                message = "unknown key"
            else:
                message = error["msg"].removeprefix("Value error, ")
            found.append((loc, message))
    if found:
        seen: set[tuple[str, str]] = set()
        problems = []
        for loc, message in found:
            key = (format_location(loc), redact(message, used))
            if key not in seen:
                seen.add(key)
                problems.append(ConfigProblem(file, *key))
        raise ConfigError(problems)
    assert config is not None
    return config


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a YAML configuration file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigProblem(str(path), "", f"cannot read file: {exc}")]) from exc
    return parse_config(text, str(path), env)
