"""Selector specs of `kind: html` feeds: a CSS selector, optionally suffixed `@attr`.

`"h2.title"` selects the first `h2.title` inside an item (its text); `"a.permalink@href"` the
`href` attribute of the first `a.permalink`; `"@data-id"` an attribute of the item element itself.
Selectors are compiled by selectolax (lexbor) so a bad one is reported when the config loads.
"""

from __future__ import annotations

import re
from functools import lru_cache

from selectolax.lexbor import LexborHTMLParser, SelectolaxError

_ATTR = re.compile(r"^[A-Za-z_:][\w:.-]*$")


def split_spec(spec: str) -> tuple[str, str | None]:
    """(css, attribute or None) of a spec; css is "" for the item element itself."""
    spec = spec.strip()
    css, at, attr = spec.rpartition("@")
    # An `@` inside an attribute selector (`a[href*="@"]`) is not a suffix.
    if at and _ATTR.match(attr) and css.count("[") == css.count("]"):
        return css.strip(), attr
    return spec, None


def check_css(css: str) -> str:
    """Return `css` if selectolax can compile it; ValueError naming the problem otherwise."""
    if not css.strip():
        raise ValueError("empty CSS selector")
    if not _compiles(css):
        raise ValueError(f"invalid CSS selector {css!r}")
    return css


def check_spec(spec: str) -> str:
    """Return `spec` if its CSS part (if any) compiles and its `@attr` is a valid name."""
    css, attr = split_spec(spec)
    if css:
        check_css(css)
    elif attr is None:
        raise ValueError("empty selector")
    return spec


@lru_cache(maxsize=256)
def _compiles(css: str) -> bool:
    try:
        _PROBE.css(css)
    except SelectolaxError:
        return False
    return True


_PROBE = LexborHTMLParser("<p></p>")
