"""Build RSS documents and live-blog pages for tests (our own text, shaped like a British
live blog)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from html import escape as escape_html
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


def rss(items: list[Item], title: str = "Summit: live", *, guids: bool = True,
        query: str = "") -> str:
    """An RSS 2.0 document, newest item first. Each item links to `…/live/summit?{query}#{guid}`;
    `guids=False` leaves out the `<guid>` elements (the link is then the identity)."""
    link = "https://news.example.org/live/summit" + (f"?{query}" if query else "")
    body = "".join(
        (f'<item><guid isPermaLink="false">{escape(i.guid)}</guid>' if guids else "<item>")
        + f"<title>{escape(i.title)}</title>"
        f"<link>{escape(link)}#{escape(i.guid)}</link>"
        f"<author>{escape(i.author)}</author><pubDate>{format_datetime(i.published)}</pubDate>"
        f"<description>{escape(i.html)}</description></item>"
        for i in sorted(items, key=lambda i: i.minute, reverse=True))
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>{escape(title)}</title><link>https://news.example.org/live/summit</link>"
            f"<description>Live coverage</description>{body}</channel></rss>")


@dataclass
class Update:
    """One update of a live-blog page; its `@id` is the relative anchor `#update-{n}`."""

    n: int
    headline: str
    html: str
    minute: int = 0
    author: str = "Hannah Lowe"

    @property
    def anchor(self) -> str:
        return f"#update-{self.n}"

    @property
    def published(self) -> datetime:
        return T0 + timedelta(minutes=self.minute)


def live_page(updates: list[Update], coverage_end: datetime | None = None, *,
              reflow: bool = False, title: str = "Summit: live") -> str:
    """An HTML live-blog page: schema.org LiveBlogPosting JSON-LD with one BlogPosting per
    update in `liveBlogUpdate` (newest first), and the updates in the page body.

    `reflow=True` renders the same content with other markup and whitespace (wrapper elements,
    indentation, a different page chrome), as a CMS re-render or template change would.
    """
    ordered = sorted(updates, key=lambda u: u.minute, reverse=True)

    def body(u: Update) -> str:
        if reflow:
            spaced = u.html.replace(" ", "  \n ")
            return f'<div class="block-body">\n  <span class="x">{spaced}</span>\n</div>'
        return u.html

    posting: dict[str, object] = {
        "@context": "https://schema.org",
        "@type": "LiveBlogPosting",
        "headline": title,
        "coverageStartTime": T0.isoformat(),
        "dateModified": max((u.published for u in updates), default=T0).isoformat(),
        "liveBlogUpdate": [{
            "@type": "BlogPosting",
            "@id": u.anchor,
            "headline": f"  {u.headline} " if reflow else u.headline,
            "articleBody": body(u),
            "datePublished": u.published.isoformat(),
            "author": {"@type": "Person", "name": u.author},
        } for u in ordered],
    }
    if coverage_end is not None:
        posting["coverageEndTime"] = coverage_end.isoformat()
    ld = json.dumps(posting, indent=4 if reflow else None, ensure_ascii=False)
    ld = ld.replace("</", "<\\/")  # never close the script element early
    blocks = "".join(
        f'<article id="{u.anchor[1:]}"><h2>{escape_html(u.headline)}</h2>{u.html}</article>'
        for u in ordered)
    chrome = '<nav class="v2">Live</nav>' if reflow else "<nav>Live</nav>"
    return (f'<!DOCTYPE html><html lang="en-GB"><head><meta charset="utf-8">'
            f"<title>{escape_html(title)}</title>"
            f'<script type="application/ld+json">{ld}</script></head>'
            f"<body>{chrome}<h1>{escape_html(title)}</h1>{blocks}</body></html>")


def login_wall(title: str = "Sign in") -> str:
    """What a live page turns into behind a login: HTML without any JSON-LD."""
    return (f'<!DOCTYPE html><html lang="en-GB"><head><meta charset="utf-8">'
            f"<title>{escape_html(title)}</title></head><body><form action=\"/login\">"
            f"<p>Sign in to keep reading.</p><input name=\"email\"></form></body></html>")
