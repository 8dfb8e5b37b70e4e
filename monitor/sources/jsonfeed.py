"""JSON Feed 1.0 and 1.1, read with the stdlib json module (feedparser 6 does not read it).

A document is a JSON Feed when its `version` is a jsonfeed.org version URL, https:// or
http:// (`VERSION_PREFIXES`).

Identity is the item `id`, else its canonical `url` (`monitor.core.urls`), else `h:` + a hash of the
normalised title and text.
Dates are RFC 3339; naive ones are taken as UTC. Relative URLs resolve against the feed URL.
"""

from __future__ import annotations

import html
import json
from typing import Any
from urllib.parse import urljoin

from monitor.core.errors import ParseError
from monitor.core.models import Entry
from monitor.core.textnorm import clean_text, content_hash
from monitor.core.urls import canonical_url
from monitor.sources.base import (
    MAX_ENTRIES,
    ParsedDocument,
    SourceOptions,
    parse_datetime,
    unique_entries,
)

#: The `version` URLs of JSON Feed: the spec writes https://, and feeds written to version 1
#: (Pixel Envy's among them) still say http://.
VERSION_PREFIXES = ("https://jsonfeed.org/version/", "http://jsonfeed.org/version/")


class JsonFeedSource:
    """A `Source` for JSON Feed documents."""

    kind = "jsonfeed"

    def parse(self, body: bytes, url: str, content_type: str | None,
              options: SourceOptions) -> ParsedDocument:
        """Entries of a JSON Feed; ParseError for invalid JSON or another JSON document."""
        data = load_json(body)
        if not is_json_feed(data) and not (isinstance(data, dict)
                                           and isinstance(data.get("items"), list)):
            raise ParseError("not a JSON Feed (no `version` and no `items` list)")
        return ParsedDocument(self.kind, json_feed_entries(data, url, options.max_entries))


def load_json(body: bytes) -> Any:
    """The decoded JSON document; ParseError if invalid or nested too deeply."""
    try:
        return json.loads(body)
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
        raise ParseError(f"invalid JSON: {e}") from e
    except RecursionError as e:
        raise ParseError("JSON nested too deeply; not parsed") from e


def is_json_feed(data: Any) -> bool:
    """True for a JSON object whose `version` names a JSON Feed version."""
    return isinstance(data, dict) and str(data.get("version", "")).startswith(VERSION_PREFIXES)


def json_feed_entries(data: dict[str, Any], url: str,
                      max_entries: int = MAX_ENTRIES) -> list[Entry]:
    """Entries of a decoded JSON Feed (first of each id kept, at most `max_entries`)."""
    items = data.get("items")
    if not isinstance(items, list):
        raise ParseError("JSON Feed has no `items` list")
    feed_authors = _authors(data)
    return unique_entries((_entry(item, url, feed_authors) for item in items
                           if isinstance(item, dict)), max_entries)


def _entry(item: dict[str, Any], base: str, feed_authors: str | None) -> Entry:
    title = _plain(item.get("title"))
    text = max((clean_text(_str(item.get("content_html"))), _plain(item.get("content_text")),
                _plain(item.get("summary"))), key=len)
    link = _str(item.get("url")) or _str(item.get("external_url"))
    link = urljoin(base, link) if link else ""
    raw_id = item.get("id")
    ident = str(raw_id).strip() if isinstance(raw_id, str | int) else ""
    return Entry(
        id=ident or (canonical_url(link) if link else "") or "h:" + content_hash(title, text),
        url=link or None, title=title,
        text=text, author=_authors(item) or feed_authors,
        published=parse_datetime(item.get("date_published")),
        updated=parse_datetime(item.get("date_modified")),
    )


def _authors(obj: dict[str, Any]) -> str | None:
    """Names from 1.1 `authors` or 1.0 `author`, joined with ", "."""
    found = obj.get("authors")
    people = found if isinstance(found, list) else [obj.get("author")]
    names: list[str] = []
    for person in people:
        name = _plain(person.get("name")) if isinstance(person, dict) else ""
        if name and name not in names:
            names.append(name)
    return ", ".join(names) or None


def _str(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _plain(value: Any) -> str:
    """Clean text of a plain-text field (a literal `<` or `&` stays as written)."""
    return clean_text(html.escape(_str(value), quote=False))
