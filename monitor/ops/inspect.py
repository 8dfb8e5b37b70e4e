"""`livewatch inspect URL|FILE|FEED`: how `kind: auto` reads a page, through the service's own
read path (`monitor.sources.reading`): the strategy taken and why the ones before it declined, the
number of updates, the first few, and `kind: html` selectors that pin the page."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click
import yaml
from rich.console import Console

from monitor.config.loader import load_config
from monitor.config.models import Config
from monitor.core.errors import ConfigError, LivewatchError
from monitor.sources import ParsedDocument
from monitor.sources.reading import fetch_document, read_document, read_file

#: What each strategy of `auto` on HTML means, for people.
STRATEGIES = {
    "json-ld": "schema.org LiveBlogPosting in JSON-LD",
    "microdata": "schema.org LiveBlogPosting in microdata",
    "rdfa": "schema.org LiveBlogPosting in RDFa",
    "selectors": "the feed's CSS selectors",
    "app-state": "the page's embedded app state (updates in its JSON)",
    "finder:blocks": "the update finder: repeated blocks in the markup, each with a time",
    "finder:ticker": "the update finder: time headings, each with the paragraphs after it",
}
_FEEDS = {"rss": "an RSS feed", "atom": "an Atom feed", "jsonfeed": "a JSON Feed",
          "liveblog": "schema.org LiveBlogPosting", "html": "the feed's CSS selectors"}
_JOINED = ", completed from the markup (full text where the structured data cuts it, ids " \
    "where it has none)"
_WORDS = 24


def describe(strategy: str, kind: str) -> str:
    """A strategy (`json-ld+markup`, …) in words; a feed's kind when there is none."""
    if not strategy:
        return _FEEDS.get(kind, kind)
    base, joined, _ = strategy.partition("+")
    return STRATEGIES.get(base, base) + (_JOINED if joined else "")


def report(document: ParsedDocument, show: int) -> list[str]:
    """The lines `inspect` prints for a read document."""
    lines = [f"read as: {document.kind}, by {describe(document.strategy, document.kind)}"]
    if document.declined:
        lines.append("declined before it:")
        lines.extend(f"  - {reason}" for reason in document.declined)
    page = document.page
    if page is not None and (page.coverage_start or page.coverage_end):
        start = page.coverage_start.isoformat() if page.coverage_start else "?"
        end = page.coverage_end.isoformat() if page.coverage_end else "open"
        lines.append(f"coverage: {start} .. {end}")
    count = len(document.entries)
    lines.append(f"{count} entr{'ies' if count != 1 else 'y'}"
                 + (f"; the first {min(show, count)}:" if count and show else ""))
    for number, entry in enumerate(document.entries[:show], 1):
        when = entry.published or entry.updated
        lines.append(f"  {number}. {when.isoformat() if when else '(no time)'}  "
                     f"{entry.title or '(untitled)'}")
        lines.append(f"     id: {entry.id}")
        words = entry.text.split()
        lines.append("     " + " ".join(words[:_WORDS]) + (" …" if len(words) > _WORDS else ""))
    if document.pin:
        lines.append("to pin this page to these blocks, in its feed:")
        snippet = yaml.safe_dump({"kind": "html", "selectors": document.pin}, sort_keys=False,
                                 allow_unicode=True)
        lines.extend("  " + line for line in snippet.splitlines())
    elif document.strategy.startswith(("app-state", "finder:ticker")):
        lines.append("no selectors to pin it: its updates are not one element each in the "
                     "markup")
    return lines


def _config(path: Path) -> Config:
    if not path.exists():
        return Config()
    try:
        return load_config(path)
    except ConfigError as exc:
        problems = "\n  ".join(map(str, exc.problems))
        raise click.ClickException(f"invalid configuration:\n  {problems}") from None


async def _read_file(config: Config, path: Path, body: bytes, uri: str
                     ) -> tuple[str, ParsedDocument]:
    heading = f"{path} ({len(body) / 1000:.0f} KB)"
    return heading, await read_document(config, str(path), "auto", body, uri, None, None,
                                        explain=True)


async def _fetch(config: Config, url: str) -> tuple[str, ParsedDocument]:
    result, document = await fetch_document(config, url, explain=True)
    size = len(result.body or b"") / 1000
    return f"{url} ({result.status}, {size:.0f} KB, {result.content_type or 'no type'})", \
        document


def _read(config: Config, target: str) -> tuple[str, ParsedDocument]:
    """Read `target`: a feed of the configuration (by name or URL), a file, or a URL."""
    feed = next((f for f in config.feeds if target in (f.name, str(f.url))), None)
    path = Path(target)
    if feed is None and path.is_file():
        return asyncio.run(_read_file(config, path, read_file(config, path),
                                      path.resolve().as_uri()))
    if feed is None and not target.startswith(("http://", "https://")):
        raise click.UsageError(f"{target!r} is not a file, an http(s) URL or a feed of the "
                               "configuration")
    return asyncio.run(_fetch(config, str(feed.url) if feed else target))


@click.command("inspect")
@click.option("--config", "-c", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("config/livewatch.yaml"), show_default=True,
              help="Configuration for fetch settings and limits (defaults when absent).")
@click.option("--show", default=5, show_default=True, help="How many updates to print.")
@click.argument("target")
def inspect_command(config_path: Path, show: int, target: str) -> None:
    """Show how a page, feed or file reads: strategy, updates, selectors to pin it. Exit 0
    when it gives entries, 1 when it gives none or fails."""
    out = Console(highlight=False, soft_wrap=True)
    config = _config(config_path)
    try:
        heading, document = _read(config, target)
    except LivewatchError as exc:
        out.print(f"no entries: {exc}", markup=False)
        sys.exit(1)
    out.print(heading, markup=False)
    for line in report(document, show):
        out.print(line, markup=False)
    sys.exit(0 if document.entries else 1)
