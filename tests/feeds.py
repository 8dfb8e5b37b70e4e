"""Build RSS documents for tests (our own text, shaped like a British live blog)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from xml.sax.saxutils import escape

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)


@dataclass
class Item:
    guid: str
    title: str
    html: str
    minute: int = 0
    author: str = "Hannah Lowe"

    @property
    def published(self) -> datetime:
        return T0 + timedelta(minutes=self.minute)


def rss(items: list[Item], title: str = "Summit: live") -> str:
    """An RSS 2.0 document, newest item first."""
    body = "".join(
        f'<item><guid isPermaLink="false">{escape(i.guid)}</guid>'
        f"<title>{escape(i.title)}</title>"
        f"<link>https://news.example.org/live/summit#{escape(i.guid)}</link>"
        f"<author>{escape(i.author)}</author><pubDate>{format_datetime(i.published)}</pubDate>"
        f"<description>{escape(i.html)}</description></item>"
        for i in sorted(items, key=lambda i: i.minute, reverse=True))
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>{escape(title)}</title><link>https://news.example.org/live/summit</link>"
            f"<description>Live coverage</description>{body}</channel></rss>")
