"""What the console's API and pages both read: a feed's recent entries with the rules they
match, and the entries a rule test runs on."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import cast

import redis.asyncio as aioredis

from monitor.config.models import Config
from monitor.core import keys
from monitor.core.models import Entry
from monitor.core.textnorm import clean_text
from monitor.sources.reading import fetch_document
from workers.match.matcher import Matcher
from workers.outbox.store import state_errors

#: Entries shown of a feed by default.
FEED_ENTRIES = 30


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """One recent entry of a feed and the rules it matches."""

    id: str
    title: str
    text: str
    matched: list[str]


@state_errors
async def feed_entries(client: aioredis.Redis, matcher: Matcher, feed: str,
                       limit: int = FEED_ENTRIES) -> list[FeedEntry]:
    """The feed's most recent entries (as last seen), newest first, with the rules matching."""
    ids = cast(list[str], await client.zrevrange(keys.order(feed), 0, limit - 1))
    texts = await client.hmget(keys.texts(feed), ids) if ids else []
    out = []
    for entry_id, raw in zip(ids, texts, strict=True):
        data = json.loads(raw) if raw else {}
        title, text = str(data.get("title", "")), str(data.get("text", ""))
        out.append(FeedEntry(entry_id, title, text[:600],
                             [m.rule for m in matcher.match(feed, title, text)]))
    return out


async def test_entries(config: Config, text: str, title: str, url: str) -> list[Entry]:
    """The entries a rule test runs on: a pasted text (with its title) as one entry, else the
    entries read from `url` as the service reads them (LivewatchError when it cannot be)."""
    if text.strip() or not url.strip():
        return [Entry("text", None, clean_text(title), clean_text(text), None)]
    _, document = await fetch_document(config, url.strip())
    return document.entries
