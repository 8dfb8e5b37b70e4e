"""Value types every configuration model shares: durations, sizes, names, URLs, and the strict
frozen base model. Durations accept seconds as a number or `500ms`, `30s`, `5m`, `1h`, `1d`
(`format_duration` writes them back for people); sizes accept bytes or `512KB`, `10MB`, `1GiB`.
`ENV_VAR` is the `${VAR}` / `${VAR:-default}` reference the loader substitutes.
"""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
#: `${NAME}` or `${NAME:-default}`: group 1 the name, group 2 the default (None if absent).
ENV_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_UNIT_NAMES = {"s": "s", "m": "m", "h": "h", "d": "d"}
_SPACED_UNIT_NAMES = {"s": " s", "m": " min", "h": " h", "d": " d"}
_ONE = {"d": "day", "h": "hour", "m": "minute"}


def env_var_names(text: str) -> list[str]:
    """The names of the `${VAR}` references in `text`, in order (repeats kept)."""
    return [match.group(1) for match in ENV_VAR.finditer(text)]


def parse_duration(value: object) -> object:
    """`30s` -> 30.0; numbers are seconds. Anything else is left for pydantic to reject."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m or 1h")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(f"invalid duration {value!r}: use a number with ms, s, m, h or d")
        return float(match.group(1)) * DURATION_UNITS[match.group(2)]
    return value


def format_duration(seconds: float, *, exact: bool = False, spaced: bool = False) -> str:
    """A duration for people. Rounded (default): seconds under 2 minutes, minutes under 2 hours,
    else hours to one decimal: `95s`, `5m`, `2.5h`. `exact`: the largest unit that divides it,
    one of a unit as a word: `10m`, `2h`, `hour`, `day`, else seconds (`45s`, `0.5s`). `spaced`
    writes `95 s`, `5 min`, `2.5 h`."""
    names = _SPACED_UNIT_NAMES if spaced else _UNIT_NAMES
    if exact:
        for unit in ("d", "h", "m"):
            size = DURATION_UNITS[unit]
            if seconds >= size and seconds % size == 0:
                amount = int(seconds // size)
                return _ONE[unit] if amount == 1 else f"{amount}{names[unit]}"
        return f"{seconds:g}{names['s']}"
    if seconds < 120:
        return f"{seconds:.0f}{names['s']}"
    if seconds < 7200:
        return f"{seconds / 60:.0f}{names['m']}"
    return f"{seconds / 3600:.1f}{names['h']}"


def parse_size(value: object) -> object:
    """`10MB` -> 10485760 (binary multiples); integers are bytes."""
    if isinstance(value, str):
        match = _SIZE.match(value)
        if not match:
            raise ValueError(f"invalid size {value!r}: use bytes or KB, MB, GB")
        unit = (match.group(2) or "b").lower()[0]
        return int(float(match.group(1)) * {"b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit])
    return value


def _positive(value: float) -> float:
    if value <= 0:
        raise ValueError("must be greater than zero")
    return value


def _check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError("names use letters, digits, '.', '_' and '-' (at most 64, no spaces)")
    return value


def _check_http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
    return value


Duration = Annotated[float, BeforeValidator(parse_duration), AfterValidator(_positive)]
ByteSize = Annotated[int, BeforeValidator(parse_size), Field(gt=0)]
Name = Annotated[str, AfterValidator(_check_name)]
HttpUrl = Annotated[str, AfterValidator(_check_http_url)]


class Model(BaseModel):
    """Strict (unknown keys are errors) and frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _check_listen(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"expected host:port (e.g. 127.0.0.1:9108, 0.0.0.0:9108, [::1]:9108), "
                         f"got {value!r}")
    if host.startswith("[") != host.endswith("]"):
        raise ValueError(f"unbalanced brackets in {value!r}: write IPv6 hosts as [::1]:9108")
    return value


#: `host:port` a server binds (`[::1]:9108` for IPv6).
Listen = Annotated[str, AfterValidator(_check_listen)]


def bind_address(listen: str | None) -> tuple[str, int] | None:
    """(host, port) of a `Listen` value, IPv6 brackets removed; None when unset."""
    if listen is None:
        return None
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)
