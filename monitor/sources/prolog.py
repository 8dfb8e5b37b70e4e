r"""How the XML parsers livewatch runs read a document's prolog (what comes before its root
element), for the entity guard (`monitor.sources.guards.check_xml`).

A DTD declares entities in the prolog, so the guard has to find where the prolog ends the way
a parser does, whatever the prolog holds. Three things decide it:

* **XML's own rules** (expat; lxml on the fast path): a comment ends at the first `-->`, a
  processing instruction at the first `?>`, a DOCTYPE at the `>` after its quoted literals and
  its internal subset (`[…]`, whose literals, comments and PIs may hold `]` and `>`); the root
  is the first `<` followed by a name character outside all of these. Anything else the
  parser would reject is read leniently (a lower-case `<!doctype`, other `<!…>` declarations,
  CDATA), and an unterminated construct runs to the end of the document.
* **feedparser's rewrite** of the text before its parsers see it (`convert_to_utf8`,
  `replace_doctype`): the XML declaration ends at its first `>` and is replaced (or one is
  prepended), and each `<!DOCTYPE` that starts a line before the first `<\w` (its "head") is
  deleted up to its first `>`. A deletion can cut a comment's or literal's end away, so expat
  may read a different prolog than the bytes show: `feedparser_text` makes the same rewrite.
* **encodings**: feedparser decodes the bytes with the HTTP charset, the encoding its
  regex finds on the first line, or one sniffed from the first bytes (byte order marks,
  UTF-16/32 and EBCDIC `<?xm`), and hands expat the text re-encoded as UTF-8; in UTF-7 or
  UTF-16 `<!ENTITY` is not in the bytes at all. `declares_entities` reads the document in
  each of those encodings (all but punycode and IDNA, whose decoders are quadratic: refused).

Every scan is linear in the document (`str.find`, and regexes that match a fixed set of short
strings), whatever it holds: page content is untrusted.
"""

from __future__ import annotations

import codecs
import re

#: An entity declaration (any case, space after `<!` tolerated: lenient parsers).
ENTITY_DECL = re.compile(rb"<!\s*ENTITY", re.IGNORECASE)
#: What may start the root element: a name character (`\w` as feedparser's head ends, `:`,
#: non-ASCII). A `<` followed by something else is text to a lenient parser, an error to XML.
_ROOT_START = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_:"
                        + bytes(range(0x80, 0x100)))
_IN_DOCTYPE = re.compile(rb"[\"'\[>]")
_IN_SUBSET = re.compile(rb"[\"'\]]|<!--|<\?")
_CLOSERS = {b'"': b'"', b"'": b"'", b"<!--": b"-->", b"<?": b"?>"}
_WHITE = b" \t\n\r\f\v"  # `\s` in a bytes regex


def prolog_end(text: bytes) -> int:
    """Where the root element starts in `text` read as XML (`len(text)` if it never does)."""
    size = len(text)
    at = 0
    while at < size:
        lt = text.find(b"<", at)
        if lt < 0 or lt + 1 == size:
            return size
        after = text[lt + 1]
        if after == 0x3F:  # <?
            at = _past(text, b"?>", lt + 2)
        elif after == 0x21:  # <!
            if text.startswith(b"--", lt + 2):
                at = _past(text, b"-->", lt + 4)
            elif text[lt + 2:lt + 9].upper() == b"DOCTYPE":
                at = _doctype_end(text, lt + 9)
            elif text.startswith(b"[CDATA[", lt + 2):
                at = _past(text, b"]]>", lt + 9)
            else:
                at = _past(text, b">", lt + 2)
        elif after in _ROOT_START:
            return lt
        else:
            at = lt + 1
    return size


def _past(text: bytes, closer: bytes, start: int) -> int:
    """Just after the first `closer` from `start` (the end of `text` if there is none)."""
    end = text.find(closer, start)
    return len(text) if end < 0 else end + len(closer)


def _doctype_end(text: bytes, at: int) -> int:
    """Just after the DOCTYPE whose name starts at `at`."""
    while (mark := _IN_DOCTYPE.search(text, at)) is not None:
        token = mark.group()
        if token == b">":
            return mark.end()
        at = _subset_end(text, mark.end()) if token == b"[" else _past(text, token, mark.end())
    return len(text)


def _subset_end(text: bytes, at: int) -> int:
    """Just after the `]` that closes the internal subset starting at `at`."""
    while (mark := _IN_SUBSET.search(text, at)) is not None:
        token = mark.group()
        if token == b"]":
            return mark.end()
        at = _past(text, _CLOSERS[token], mark.end())
    return len(text)


# --- feedparser's rewrite -------------------------------------------------------------------

#: The declaration feedparser puts first (`feedparser.encodings.convert_to_utf8`).
_FEEDPARSER_DECL = b"<?xml version='1.0' encoding='utf-8'?>"
_WORD_TAG = re.compile(rb"<\w")


def feedparser_text(text: bytes) -> tuple[bytes, bytes]:
    """(head, rewritten): `text` (UTF-8, as feedparser decoded it) as feedparser 6 rewrites it
    for its parsers, and the head of it that `replace_doctype` searches for entity
    declarations (what comes before the first `<\\w`)."""
    if text.startswith(b"<?xml") and (close := text.find(b">", 5)) >= 0:
        text = _FEEDPARSER_DECL + text[close + 1:]
    else:
        text = _FEEDPARSER_DECL + b"\n" + text
    word = _WORD_TAG.search(text)
    if word is None:
        return b"", text
    head = text[:word.start() + 1]
    return head, _drop_doctypes(head) + text[word.start() + 1:]


def _drop_doctypes(head: bytes) -> bytes:
    r"""`head` after `re.sub(rb"^\s*<!DOCTYPE([^>]*?)>", b"", head, flags=re.MULTILINE)`, in
    linear time (the regex itself is quadratic on runs of blank lines)."""
    parts = []
    kept = floor = 0  # `kept`: where the next match may start; `floor`: where a run may begin
    while (found := head.find(b"<!DOCTYPE", floor)) >= 0:
        run = floor + len(head[floor:found].rstrip(_WHITE))  # the white space before it
        if run == 0 or head[run - 1] == 0x0A:
            start = run
        else:
            newline = head.find(b"\n", run, found)
            start = newline + 1 if newline >= 0 else -1
        if start < 0:  # not at the start of a line
            floor = found + 9
            continue
        close = head.find(b">", found + 9)
        if close < 0:
            break
        parts.append(head[kept:start])
        kept = floor = close + 1
    parts.append(head[kept:])
    return b"".join(parts)


# --- encodings ----------------------------------------------------------------------------------

#: Codecs (as `codecs.lookup` names them) that read ASCII bytes as ASCII and never make ASCII
#: out of other bytes: the document's own bytes are their reading.
_ASCII_SAFE = re.compile(r"ascii|utf-8(?:-sig)?|iso8859-\d+|cp125\d|koi8-[ru]")
#: Codecs whose decoder is quadratic (feedparser would try them too): refused.
UNREADABLE = frozenset({"punycode", "idna"})
#: How far a reading is decoded before the rest is: the prolog is usually much shorter.
_FIRST = 65536
_MARGIN = 64  # bytes of look-ahead a prolog scan may use past where it stopped
_ENCODING_ATTR = re.compile(rb"encoding=[\"']")
_QUOTE = re.compile(rb"[\"']")
_BOMS = ((codecs.BOM_UTF32_BE, "utf-32be"), (codecs.BOM_UTF32_LE, "utf-32le"),
         (codecs.BOM_UTF16_BE, "utf-16be"), (codecs.BOM_UTF16_LE, "utf-16le"),
         (codecs.BOM_UTF8, "utf-8"))
#: First bytes without a byte order mark (the XML specification, appendix F; `<` and `<?`).
_MARKERS = ((b"\x00\x00\x00\x3c", "utf-32be"), (b"\x3c\x00\x00\x00", "utf-32le"),
            (b"\x00\x3c", "utf-16be"), (b"\x3c\x00", "utf-16le"),
            (b"\x4c\x6f\xa7\x94", "cp037"))


class UnreadableEncoding(Exception):
    """The document names an encoding whose decoder is too slow to run on it."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        super().__init__(encoding)


def declares_entities(body: bytes, content_type: str | None = None) -> bool:
    """Whether `body` declares entities before its root element in any reading: its bytes, or
    decoded with an encoding sniffed from its first bytes, declared on its first line (as
    feedparser finds it) or named by the HTTP `content_type`, each read as XML and as
    feedparser rewrites it. A decoded reading is scanned in its first 64 KB first, and whole
    only when its prolog goes on past them. UnreadableEncoding for punycode or IDNA."""
    sniffed, rest = _sniff(body)
    if _reads_entities(rest if sniffed == "utf-8" else body, None):
        return True
    first = _decoded(rest, sniffed, _FIRST) if sniffed else rest
    seen: set[str] = set()
    for name in (sniffed, _declared(first), charset_of(content_type)):
        codec = _codec(name)
        if codec is None or codec in seen or _ASCII_SAFE.fullmatch(codec):
            continue
        seen.add(codec)
        if codec in UNREADABLE:
            raise UnreadableEncoding(codec)
        if _reads_entities(rest, codec):
            return True
    return False


def _reads_entities(data: bytes, codec: str | None) -> bool:
    """Whether `data` read with `codec` (None: as it is) declares entities: its first 64 KB
    are scanned, and the whole only if the prolog may go on past them."""
    found, settled = _scan(data[:_FIRST] if codec is None else _decoded(data, codec, _FIRST))
    if found or settled or len(data) <= _FIRST:
        return found
    return _scan(data if codec is None else _decoded(data, codec, None))[0]


def _scan(text: bytes) -> tuple[bool, bool]:
    """(found, settled) for one reading (ASCII-compatible bytes): whether it declares entities
    before its root element, read as XML or as feedparser rewrites it, and whether the scans
    stopped well before its end (then a longer text starting with `text` reads the same)."""
    end = prolog_end(text)
    if ENTITY_DECL.search(text, 0, end):
        return True, True
    head, rewritten = feedparser_text(text)
    end_rewritten = prolog_end(rewritten)
    if ENTITY_DECL.search(head) or ENTITY_DECL.search(rewritten, 0, end_rewritten):
        return True, True
    # `rewritten` ends with the same bytes as `text`, the head ends at the first `<\w`
    tail = len(text) - _MARGIN
    settled = (bool(head) and len(head) < len(rewritten) - _MARGIN
               and max(end, end_rewritten - len(rewritten) + len(text)) < tail)
    return False, settled


def _sniff(body: bytes) -> tuple[str, bytes]:
    """(encoding, body without its byte order mark) from the first bytes ("" if ASCII-like)."""
    for bom, name in _BOMS:
        if body.startswith(bom):
            return name, body[len(bom):]
    for marker, name in _MARKERS:
        if body.startswith(marker):
            return name, body
    return "", body


def _decoded(data: bytes, codec: str, limit: int | None) -> bytes:
    """`data` (its first `limit` bytes) decoded with `codec` and re-encoded as UTF-8."""
    try:
        if limit is None:
            return data.decode(codec, "replace").encode("utf-8", "replace")
        decoder = codecs.getincrementaldecoder(codec)("replace")
        return decoder.decode(data[:limit], final=False).encode("utf-8", "replace")
    except (UnicodeError, LookupError, TypeError, ValueError):
        return b""  # a decoder that fails outright: no parser reads the document this way


def _codec(name: str) -> str | None:
    if not name:
        return None
    try:
        return codecs.lookup(name).name
    except (LookupError, ValueError):
        return None


def _declared(text: bytes) -> str:
    """The encoding feedparser reads from `text`'s first line, linearly: the value of the last
    `encoding="…"` on it whose closing quote comes before a `?>`, when the line starts with
    `<?` (`^<\\?.*encoding=['"](.*?)['"].*\\?>`, a regex that is cubic on such lines)."""
    if not text.startswith(b"<?"):
        return ""
    newline = text.find(b"\n")
    line = text if newline < 0 else text[:newline]
    close = line.rfind(b"?>", 2)
    attrs = [m.end() for m in _ENCODING_ATTR.finditer(line, 2, max(close, 2))]
    for start in reversed(attrs):
        quote = _QUOTE.search(line, start, close)
        if quote is not None:
            return line[start:quote.start()].decode("latin-1")
    return ""


def charset_of(content_type: str | None) -> str:
    """The `charset` of a Content-Type as written ("" when it names none), as feedparser
    reads it."""
    for chunk in (content_type or "").split(";")[1:]:
        key, _, value = chunk.partition("=")
        if key.strip().lower() == "charset":
            return value.strip().strip("\"'")
    return ""
