"""schema.org JSON-LD of an HTML page: read every `<script type="application/ld+json">`.

Real sites serve broken JSON-LD, so a block that `json` rejects is repaired in a bounded way
(linear passes, each block at most `MAX_SCRIPT_CHARS`): a CDATA or HTML-comment wrapper is
removed; JavaScript comments, trailing commas and invalid backslash escapes are dropped; raw
control characters inside strings are accepted; a block that is HTML-escaped as a whole
(`{&quot;@type&quot;: …}`) is unescaped; several values in one block (`{…}{…}`, `{…};`) are all
read. A block beyond repair is skipped; the other blocks are still used. So is a block nested
deeper than the interpreter's recursion limit (~1,000 levels).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import msgspec
from selectolax.lexbor import LexborHTMLParser

from monitor.core.cleantext import unescape

MAX_SCRIPT_CHARS = 5_000_000
MAX_SCRIPTS = 100
#: How deep `typed_nodes` looks for typed objects (JSON-LD nests a few levels, not hundreds).
MAX_DEPTH = 12
_VOCABULARY_SEP = re.compile(r"[/:#]")

#: How a wrapper opens and closes (each optionally after `//` or inside `/* */`).
_WRAPPER_OPEN = ("<![CDATA[", "<!--")
_WRAPPER_CLOSE = ("]]>", "-->")
_JS_COMMENT = ("//", "/*")
_DECODER = json.JSONDecoder(strict=False)  # strict=False: raw control characters in strings
_ESCAPABLE = frozenset('"\\/bfnrtu')
_SPECIAL = re.compile(r'["/\]}]')
_STRING_SPECIAL = re.compile(r'["\\]')


def json_ld_blocks(tree: LexborHTMLParser) -> list[Any]:
    """Every JSON value in the page's JSON-LD scripts, in document order."""
    values: list[Any] = []
    for script in tree.css("script[type]")[:MAX_SCRIPTS * 4]:
        media = (script.attributes.get("type") or "").split(";")[0].strip().lower()
        if media != "application/ld+json":
            continue
        text = script.text(deep=True)
        if text and len(text) <= MAX_SCRIPT_CHARS:
            values.extend(load_json_ld(text))
        if len(values) >= MAX_SCRIPTS:
            break
    return values


def load_json_ld(text: str) -> list[Any]:
    """The JSON values of one script's text, repaired if needed; [] if beyond repair."""
    text = strip_wrapper(text)
    for attempt in _attempts(text):
        values = _decode_all(attempt)
        if values is not None:
            return values
    return []


def strip_wrapper(text: str) -> str:
    """`text` stripped, without a CDATA or HTML-comment wrapper (`<![CDATA[ … ]]>`,
    `<!-- … -->`; each marker optionally after `//` or inside `/* */`: `//<![CDATA[`,
    `/*<![CDATA[*/`). String methods, not regexes: page content controls the whitespace, and
    a `\\s*` next to a `\\s*` backtracks quadratically on a run of it."""
    start = text.lstrip()
    if start.startswith(_JS_COMMENT):
        start = start[2:].lstrip()
    for marker in _WRAPPER_OPEN:
        if start.startswith(marker):
            text = start[len(marker):].lstrip().removeprefix("*/")
            break
    end = text.rstrip().removesuffix("*/").rstrip()  # a closing marker ends ">", not "*/"
    if end.endswith(_WRAPPER_CLOSE):
        end = end[:-3].rstrip()
        text = end[:-2] if end.endswith(_JS_COMMENT) else end
    return text.strip()


def _attempts(text: str) -> Iterator[str]:
    """The text as it is, then repaired, then HTML-unescaped: each made only if the one
    before failed (repairing a 50 KB block costs more than decoding it)."""
    yield text
    yield _repair(text)
    if "&" in text:
        unescaped = unescape(text)
        yield unescaped
        yield _repair(unescaped)


def types_of(node: dict[str, Any]) -> set[str]:
    """The node's `@type`s without a vocabulary prefix (`schema:X`, `https://schema.org/X`)."""
    found = node.get("@type")
    names = found if isinstance(found, list) else [found]
    return {_local_name(name) for name in names if isinstance(name, str)}


def _local_name(name: str) -> str:
    return _VOCABULARY_SEP.split(name.strip())[-1]


def typed_nodes(value: Any, type_name: str, depth: int = 0) -> Iterator[dict[str, Any]]:
    """The JSON objects of `@type` `type_name` in `value` (arrays, `@graph` and nested
    properties), outermost first; the inside of one found is not searched (a live blog's
    hundreds of updates are not walked to find the live blog)."""
    if depth > MAX_DEPTH:
        return
    if isinstance(value, list):
        for item in value:
            if isinstance(item, dict | list):
                yield from typed_nodes(item, type_name, depth + 1)
    elif isinstance(value, dict):
        found = value.get("@type")
        if found is not None and (found == type_name or type_name in types_of(value)):
            yield value
            return
        for item in value.values():
            if isinstance(item, dict | list):
                yield from typed_nodes(item, type_name, depth + 1)


def _decode_all(text: str) -> list[Any] | None:
    """All JSON values in `text` (separated by whitespace or `;`); None if any is invalid.
    One value, as most blocks hold, is decoded by msgspec (2.5x faster than `json` on an
    800 KB block); anything it refuses (several values, `NaN`, huge numbers) by `json`."""
    try:
        return [msgspec.json.decode(text)]
    except (msgspec.DecodeError, RecursionError):
        return _decode_each(text)


def _decode_each(text: str) -> list[Any] | None:
    """`_decode_all` by the standard library, value after value."""
    values: list[Any] = []
    pos = 0
    while True:
        while pos < len(text) and (text[pos].isspace() or text[pos] in ";,"):
            pos += 1
        if pos >= len(text):
            return values or None
        try:
            value, pos = _DECODER.raw_decode(text, pos)
        except (ValueError, RecursionError):  # RecursionError: nested too deeply
            return None
        values.append(value)


def _repair(text: str) -> str:
    """`text` without JS comments, trailing commas and invalid escapes (strings kept intact)."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        found = _SPECIAL.search(text, i)
        if found is None:
            out.append(text[i:])
            break
        if found.start() > i:
            out.append(text[i:found.start()])
        i = found.start()
        if text[i] == '"':
            i = _copy_string(text, i, out)
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        else:
            if text[i] in "]}":
                _drop_trailing_comma(out)
            out.append(text[i])
            i += 1
    return "".join(out)


def _copy_string(text: str, start: int, out: list[str]) -> int:
    """Append the string literal at `start` to `out`; return the index after it."""
    parts = ['"']
    i, n = start + 1, len(text)
    while i < n:
        found = _STRING_SPECIAL.search(text, i)
        if found is None:
            parts.append(text[i:])
            i = n
            break
        parts.append(text[i:found.start()])
        i = found.start()
        if text[i] == '"':
            break
        following = text[i + 1:i + 2]
        parts.append("\\" + following if following in _ESCAPABLE else following)
        i += 2
    parts.append('"')
    out.append("".join(parts))
    return i + 1


def _drop_trailing_comma(out: list[str]) -> None:
    """Remove a `,` that only whitespace separates from the end of `out` (strings start `"`)."""
    for j in range(len(out) - 1, -1, -1):
        piece = out[j].rstrip()
        if not piece:
            continue
        if not piece.startswith('"') and piece.endswith(","):
            out[j] = piece[:-1]
        return
