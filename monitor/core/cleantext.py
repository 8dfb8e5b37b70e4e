"""The reader's text of an HTML or plain-text fragment (`clean_text`): tags and comments
removed (block elements become line breaks), entities decoded, Unicode NFC, soft hyphens and
zero-width characters dropped, runs of spaces collapsed, at most one blank line between
paragraphs. Every pattern runs in linear time on untrusted page content.
"""

from __future__ import annotations

import html
import re
import unicodedata

# Page content is untrusted: each pattern is applied so the work stays linear (`_drop_blocks`,
# `_sub_tags`), never restarting a scan that already failed to find its end.
_DROP_BLOCKS = re.compile(r"<(script|style|noscript|template)\b.*?</\1\s*>|<!--.*?-->",
                          re.IGNORECASE | re.DOTALL)
#: Where a `_DROP_BLOCKS` match can start (group 1: the element's name).
_BLOCK_START = re.compile(r"<(?:(script|style|noscript|template)\b|!--)", re.IGNORECASE)
# `\s*(?:/\s*)?`, not `\s*/?\s*`: two adjacent `\s*` backtrack quadratically on `<` + spaces.
_BLOCK_TAG = re.compile(
    r"<\s*(?:/\s*)?(?:br|p|div|li|ul|ol|h[1-6]|blockquote|tr|table|section|article|figure|"
    r"figcaption|pre|hr)\b[^>]*>", re.IGNORECASE)
_TAG = re.compile(r"<[!?/]?[A-Za-z][^>]*>")
_INVISIBLE_RE = re.compile("[\u00ad\u200b\u200c\u200d\u2060\ufeff]")
_SPACES = re.compile(r"[^\S\n]+")
#: Two or more line breaks with only spaces between (the spaces around go with `strip` per line).
_NEWLINE_RUN = re.compile(r"\n[ \n]*\n")
_SPACE_RUN = re.compile(r"  +")  # two or more spaces (faster than " {2,}")


def clean_text(value: str) -> str:
    """Return the reader's text of an HTML or plain-text fragment (see module docstring)."""
    if "<" in value:
        value = _drop_blocks(value)
        value = _sub_tags(_BLOCK_TAG, "\n", value)
        value = _sub_tags(_TAG, "", value)
    if "&" in value:
        value = unescape(value)
    if not value.isascii():  # a character class finds them ~15x faster than str.translate
        value = _INVISIBLE_RE.sub("", value)
    value = unicodedata.normalize("NFC", value)
    value = value.replace("\r\n", "\n").replace("\r", "\n").replace("\u00a0", " ")
    # Every whitespace char but " " is unprintable: when "\n" is the only other one, just
    # collapse space runs (the Unicode class below costs ~25 ns a char).
    if not value.replace("\n", "").isprintable():
        value = _SPACES.sub(" ", value)
    elif "  " in value:
        value = _SPACE_RUN.sub(" ", value)
    if value.count("\n") > 1:
        value = _NEWLINE_RUN.sub("\n\n", value)
    return "\n".join(line.strip() for line in value.strip().split("\n"))


#: Entities most text carries, each written in full; `&amp;` last, so that `&amp;lt;` stays `&lt;`.
_COMMON_ENTITIES = (("&quot;", '"'), ("&#39;", "'"), ("&#039;", "'"), ("&#x27;", "'"),
                    ("&apos;", "'"),
                    ("&lt;", "<"), ("&gt;", ">"), ("&nbsp;", "\u00a0"), ("&amp;", "&"))


def unescape(value: str) -> str:
    """`html.unescape(value)`: with `str.replace` when every `&` starts one of the common
    entities (those `html.escape` writes and a few more; no prefix of one is another), as in
    most text, else `html.unescape` itself (a Python callback per entity: ~2 µs each)."""
    if sum(value.count(entity) for entity, _ in _COMMON_ENTITIES) != value.count("&"):
        return html.unescape(value)
    for entity, char in _COMMON_ENTITIES:
        value = value.replace(entity, char)
    return value


def _drop_blocks(value: str) -> str:
    """`_DROP_BLOCKS.sub(" ", value)` in linear time.

    A lazy `.*?` scan that finds no end tag runs to the end of the text, and `sub` would start
    it again at every later `<script` (or `<!--`): thousands of unclosed ones are quadratic.
    Once a block of one kind has no end, no later block of that kind has one, so it is tried
    once per kind (the name lowercased: the case-insensitive `\\1` compares lowercase chars).
    """
    parts: list[str] = []
    copied = at = 0
    unclosed: set[str] = set()
    while (start := _BLOCK_START.search(value, at)) is not None:
        kind = (start.group(1) or "!--").lower()
        if kind not in unclosed:
            block = _DROP_BLOCKS.match(value, start.start())
            if block is not None:
                parts += (value[copied:start.start()], " ")
                copied = at = block.end()
                continue
            unclosed.add(kind)
        at = start.start() + 1
    if not parts:
        return value
    parts.append(value[copied:])
    return "".join(parts)


def _sub_tags(pattern: re.Pattern[str], repl: str, value: str) -> str:
    """`pattern.sub(repl, value)` for a tag pattern ending `[^>]*>`, in linear time: `sub`
    would scan from every `<` after the last `>` to the end of the text (`<a<a<a…` is
    quadratic), so only the text up to the last `>` is searched, where each `[^>]*` stops at
    a `>` and matches; no match can end after it."""
    end = value.rfind(">") + 1
    if end == len(value):
        return pattern.sub(repl, value)
    return pattern.sub(repl, value[:end]) + value[end:] if end else value
