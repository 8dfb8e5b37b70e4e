"""Chat message text shared by the Slack, Discord and Teams channels. Pure, no I/O.

Feed text is untrusted and must not reach a chat service as anything but text: the only link in a
message is the entry's own permalink (`safe_link`), written by us. Every piece of feed text is

1. *defused* the same way for every service: a zero-width space after an `@` that starts a word
   (no `@everyone`, `@here`, `@channel`), after a URL scheme's colon and before each dot of a
   host name, so no client auto-links `https://evil.example` or `evil.example`;
2. *escaped* for the service's dialect: Slack mrkdwn gets `&`, `<`, `>` as entities (no
   `<!channel>`, `<@U123>`, `<url|label>`) and look-alikes for `*`, `_`, `~`, backtick (mrkdwn has
   no escape for them); Markdown (Discord, Teams) gets a backslash before `\\ * _ ~ \\` | [ ] ( ) <
   > #` and before a list marker at the start (no `[click](javascript:…)`, `<@&role>`, headings).

Hits of the rule are then bolded (`*x*` in Slack, `**x**` in Markdown), and text is cut to a
service's limit without splitting an escape or leaving a bold open.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from workers.match.matcher import Span
from workers.outbox.codec import Digest
from workers.render.alert import Alert, alert_snippets, alert_title, detected_at, safe_link
from workers.render.digest import digest_summary
from workers.render.notices import OperatorNotice

ZWSP = "\u200b"
ELLIPSIS = "…"
#: A longer permalink is left out (the title is shown unlinked) so one line stays bounded.
LINK_MAX = 1000
_MENTION = re.compile(r"@(?=\w)")
_SCHEME = re.compile(r"(?i)\b[a-z][a-z0-9+.-]{0,30}:(?=//)")
_HOST_DOT = re.compile(r"(?i)(?<=[a-z0-9-])\.(?=[a-z][a-z0-9-]*[a-z](?![a-z0-9]))")
_EVENT_NAMES = {"new": "new entry", "updated": "updated entry"}


def defuse_points(text: str) -> frozenset[int]:
    """Indexes of `text` before which a zero-width space stops mentions and auto-links."""
    points = {m.end() for m in _MENTION.finditer(text)}
    points.update(m.end() for m in _SCHEME.finditer(text))
    points.update(m.start() for m in _HOST_DOT.finditer(text))
    return frozenset(points)


_SLACK_CHARS = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "*": "∗", "_": "ˍ", "~": "∼", "`": "ˋ"}
_MARKDOWN_SPECIALS = frozenset("\\*_~`|[]()<>#")
#: Characters a permalink keeps as they are inside Markdown's `(…)`; others are %-encoded.
_URL_SAFE = ":/?#@!$&'*+,;=%-._~"


def _slack_char(text: str, i: int) -> str:
    return _SLACK_CHARS.get(text[i], text[i])


def _markdown_char(text: str, i: int) -> str:
    c = text[i]
    if c in _MARKDOWN_SPECIALS:
        return "\\" + c
    if i == 0 and c in "-+=":  # a list marker or heading underline at the start of a line
        return "\\" + c
    if c in ".)" and i > 0 and text[:i].isdigit():  # "1." / "1)": an ordered list
        return "\\" + c
    return c


def _slack_link(label: str, url: str) -> str:
    url = url.replace("&", "&amp;").replace("<", "%3C").replace(">", "%3E").replace("|", "%7C")
    return f"<{url}|{label}>"


def _markdown_link(label: str, url: str) -> str:
    return f"[{label}]({quote(url, safe=_URL_SAFE)})"


@dataclass(frozen=True)
class Dialect:
    """How one chat service marks text up."""

    name: str
    #: The escaped form of `text[i]` (it may depend on the position).
    escape_char: Callable[[str, int], str]
    bold_open: str
    bold_close: str
    #: `link(escaped_label, url)`: the one link syntax we write ourselves.
    link: Callable[[str, str], str]
    bullet: str = "•"

    def escape(self, text: str) -> str:
        """`text` defused and escaped; safe anywhere in a message of this dialect."""
        return marked(text, (), self, None)

    def bold(self, escaped: str) -> str:
        """Already escaped text in bold."""
        return f"{self.bold_open}{escaped}{self.bold_close}" if escaped else ""


def _plain_char(text: str, i: int) -> str:
    return text[i]


def _plain_link(label: str, url: str) -> str:
    return f"{label} {url}"


SLACK = Dialect("slack", _slack_char, "*", "*", _slack_link)
MARKDOWN = Dialect("markdown", _markdown_char, "**", "**", _markdown_link)
#: Plain text (defused, not escaped, no bold) for services whose markup we do not control.
PLAIN = Dialect("plain", _plain_char, "", "", _plain_link, bullet="-")


def marked(text: str, spans: Sequence[Span], dialect: Dialect, limit: int | None) -> str:
    """`text` defused and escaped with `spans` (sorted, disjoint) in bold, at most `limit`
    characters (cut at a character boundary, bold closed, `…` added)."""
    points = defuse_points(text)
    bold_at: dict[int, int] = {start: end for start, end in spans if end > start}
    out: list[str] = []
    size = 0
    budget = None if limit is None else limit - len(ELLIPSIS)
    closing = ""
    bold_end = -1
    i = 0
    while i < len(text):
        if i == bold_end:
            out.append(closing)
            closing, bold_end = "", -1
        if i in bold_at and not closing:
            opener, closing, bold_end = dialect.bold_open, dialect.bold_close, bold_at[i]
            out.append(opener)
            size += len(opener) + len(closing)
        piece = (ZWSP if i in points else "") + dialect.escape_char(text, i)
        if budget is not None and size + len(piece) > budget:
            while out and out[-1].isspace():  # "**word **" would not be bold
                out.pop()
            if closing and out and out[-1] == dialect.bold_open:
                out.pop()
            elif closing:
                out.append(closing)
            return "".join(out).rstrip() + ELLIPSIS
        out.append(piece)
        size += len(piece)
        i += 1
    if closing:
        out.append(closing)
    return "".join(out)


@dataclass(frozen=True)
class AlertText:
    """The parts of an alert message, each escaped for one dialect."""

    title: str
    link: str | None
    #: Title linked to the permalink when there is one.
    headline: str
    snippets: tuple[str, ...]
    rule: str
    feed: str
    terms: str
    event: str
    detected: str
    sources: str | None


def alert_text(alert: Alert, dialect: Dialect, *, title_limit: int = 250,
               snippet_limit: int = 1000) -> AlertText:
    """`alert` laid out for `dialect`: every field escaped, hits bolded in the snippets."""
    event = alert.event
    title = marked(" ".join(alert_title(alert).split()), (), dialect, title_limit)
    link = safe_link(event.entry.url)
    link = link if link is not None and len(link) <= LINK_MAX else None
    snippets = tuple(marked(text, spans, dialect, snippet_limit)
                     for text, spans in alert_snippets(alert))
    sources = (dialect.escape(", ".join(alert.sources)) if len(alert.sources) > 1 else None)
    return AlertText(
        title=title, link=link, headline=dialect.link(title, link) if link else title,
        snippets=snippets, rule=dialect.escape(alert.rule), feed=dialect.escape(event.feed),
        terms=marked(", ".join(sorted(alert.match.terms)), (), dialect, 200),
        event=_EVENT_NAMES.get(event.kind, event.kind),
        detected=detected_at(alert).strftime("%Y-%m-%d %H:%M:%S UTC"), sources=sources)


def notice_text(item: OperatorNotice, dialect: Dialect, limit: int = 1500) -> tuple[str, str]:
    """(headline, message) of an operator notice, escaped for `dialect`."""
    notice = item.notice
    headline = (f"livewatch notice: feed {dialect.escape(notice.feed)}: "
                f"{dialect.escape(notice.kind)}")
    return headline, marked(notice.message, (), dialect, limit)


def digest_heading(digest: Digest, dialect: Dialect) -> str:
    """`12 alerts — 10-minute digest`, escaped for `dialect`."""
    return dialect.escape(digest_summary(digest))


def digest_line(item: Alert | OperatorNotice, dialect: Dialect) -> str:
    """One compact line of a digest: linked title, rule, feed, time (or a notice)."""
    if isinstance(item, OperatorNotice):
        headline, message = notice_text(item, dialect, 300)
        return f"{dialect.bullet} {headline}: {message}"
    text = alert_text(item, dialect, title_limit=150)
    when = detected_at(item).strftime("%H:%M UTC")
    return (f"{dialect.bullet} {text.headline} — {dialect.bold(text.rule)} · {text.feed} · "
            f"{when}")


def digest_lines(digest: Digest, dialect: Dialect, limit: int) -> list[str]:
    """The digest's items as lines, as many as fit in `limit` characters (joined by newlines),
    then `… and N more` for the rest."""
    lines: list[str] = []
    size = 0
    items = digest.items
    for index, item in enumerate(items):
        line = digest_line(item, dialect)
        left = len(items) - index - 1
        reserve = len(f"\n{ELLIPSIS} and {len(items)} more") if left else 0
        if size + len(line) + 1 + reserve > limit:
            lines.append(f"{ELLIPSIS} and {len(items) - index} more")
            return lines
        lines.append(line)
        size += len(line) + 1
    return lines
