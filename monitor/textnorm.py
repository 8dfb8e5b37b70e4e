"""Text normalisation shared by parsing (display text, content hashes) and matching.

Two forms exist:

* **clean text** (`clean_text`): what a reader sees. HTML tags and comments removed (block
  elements become line breaks), entities decoded, Unicode NFC, soft hyphens and zero-width
  characters dropped, runs of spaces collapsed, at most one blank line between paragraphs.
* **match form** (`match_form`): what rules are matched against. The clean text with curly and
  straight quotes and apostrophes unified, hyphens and every dash character, line breaks and
  non-breaking spaces made plain spaces (so "coalition-of-the-willing" and "cease–fire" match
  the phrases "coalition of the willing" and "cease-fire"), then Unicode NFKC and case
  folding. `match_form` also returns a map from match-form offsets back to clean-text
  offsets (None when they are equal), so highlights land on the reader's text.
"""

from __future__ import annotations

import hashlib
import html
import re
import unicodedata

_DROP_BLOCKS = re.compile(r"<(script|style|noscript|template)\b.*?</\1\s*>|<!--.*?-->",
                          re.IGNORECASE | re.DOTALL)
_BLOCK_TAG = re.compile(
    r"<\s*/?\s*(?:br|p|div|li|ul|ol|h[1-6]|blockquote|tr|table|section|article|figure|"
    r"figcaption|pre|hr)\b[^>]*>", re.IGNORECASE)
_TAG = re.compile(r"<[!?/]?[A-Za-z][^>]*>")
_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u2060\ufeff"), None)
_SPACES = re.compile(r"[^\S\n]+")
_NEWLINES = re.compile(r"\s*\n\s*(?:\n\s*)+")
_SPACE_RUN = re.compile(r" {2,}")

#: One-to-one character mappings applied before NFKC: quotes, apostrophes, dashes, spaces.
_MATCH_TABLE = str.maketrans({
    **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032\u02bc\u0060\u00b4", "'"),
    **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb", '"'),
    **dict.fromkeys("-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d", " "),
    **dict.fromkeys("\n\r\t\u00a0\u2007\u202f\u2009\u200a\u3000", " "),
})


def clean_text(value: str) -> str:
    """Return the reader's text of an HTML or plain-text fragment (see module docstring)."""
    if "<" in value:
        value = _DROP_BLOCKS.sub(" ", value)
        value = _BLOCK_TAG.sub("\n", value)
        value = _TAG.sub("", value)
    if "&" in value:
        value = html.unescape(value)
    value = unicodedata.normalize("NFC", value.translate(_INVISIBLE))
    value = value.replace("\r\n", "\n").replace("\r", "\n").replace("\u00a0", " ")
    value = _SPACES.sub(" ", value)
    value = _NEWLINES.sub("\n\n", value)
    return "\n".join(line.strip() for line in value.strip().split("\n"))


def match_form(clean: str) -> tuple[str, list[int] | None]:
    """Return the match form of clean text and its offset map (None when offsets are equal)."""
    translated = clean.translate(_MATCH_TABLE)
    if translated.isascii():
        folded = translated.lower()
    else:
        folded = unicodedata.normalize("NFKC", translated).casefold()
    if len(folded) == len(translated):  # one char for one char: only spaces may collapse
        if "  " not in folded:
            return folded, None
        return _collapse_spaces_mapped(folded)
    # Rare: a character expanded (e.g. 'ß' -> 'ss', 'ﬁ' -> 'fi'). Equal lengths after collapsing
    # spaces do not prove equal offsets (an expansion can cancel a collapse), so map every char.
    out: list[str] = []
    offsets: list[int] = []
    prev_space = False
    for index, char in enumerate(translated):
        piece = unicodedata.normalize("NFKC", char).casefold()
        for folded_char in piece:
            is_space = folded_char == " "
            if is_space and prev_space:
                continue
            prev_space = is_space
            out.append(folded_char)
            offsets.append(index)
    return "".join(out), offsets


def _collapse_spaces_mapped(value: str) -> tuple[str, list[int]]:
    """Collapse runs of spaces in one-to-one folded text, keeping the offset of every kept char."""
    out: list[str] = []
    offsets: list[int] = []
    pos = 0
    for run in _SPACE_RUN.finditer(value):
        out.append(value[pos:run.start() + 1])
        offsets.extend(range(pos, run.start() + 1))
        pos = run.end()
    out.append(value[pos:])
    offsets.extend(range(pos, len(value)))
    return "".join(out), offsets


def normalize_phrase(phrase: str) -> str:
    """Return the match form of a rule phrase (stripped, single-spaced)."""
    return match_form(clean_text(phrase))[0].strip()


def content_hash(*parts: str) -> str:
    """Hash of the match form of `parts`, blind to markup, whitespace, case and quote style."""
    digest = hashlib.blake2b(digest_size=12)
    for part in parts:
        form = match_form(clean_text(part))[0]
        digest.update("".join(form.split()).encode())
        digest.update(b"\x1f")
    return digest.hexdigest()
