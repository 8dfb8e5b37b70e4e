"""`livewatch test-rule RULE --text|--url|--file`: why a rule matches a text or not
(`workers.match.explain`), on entries read as the service reads them."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from monitor.cli import config_option, load_or_exit
from monitor.config.models import Config
from monitor.core.errors import LivewatchError, ParseError
from monitor.core.models import Entry
from monitor.core.textnorm import clean_text
from monitor.ops.logs import configure_logging
from monitor.sources import sniff_format
from monitor.sources.reading import fetch_document, read_document, read_file
from workers.match.explain import explain
from workers.match.matcher import Matcher


def _entries(config: Config, text: str | None, url: str | None, file: Path | None,
             title: str, author: str | None) -> list[Entry]:
    """The entries to test, read as the service reads them (`monitor.sources.reading`): a plain-text
    file is one text; a page or feed that the service reads to nothing is a ParseError."""
    if text is not None:
        return [Entry("text", None, clean_text(title), clean_text(text), author)]
    if file is not None:
        body = read_file(config, file)
        if sniff_format(body, None) == "unknown":  # plain text, not a document
            raw = body.decode("utf-8", errors="replace")
            return [Entry(file.name, None, clean_text(title), clean_text(raw), author)]
        return asyncio.run(read_document(config, str(file), "auto", body,
                                         file.resolve().as_uri(), None, None)).entries
    assert url is not None
    _, document = asyncio.run(fetch_document(config, url))
    return document.entries


@click.command("test-rule")
@config_option
@click.argument("rule")
@click.option("--text", help="The text to test (HTML allowed).")
@click.option("--url", help="Fetch a feed or page and test each entry.")
@click.option("--file", "file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A text, HTML, feed or live-blog file.")
@click.option("--title", default="", help="A title to go with --text or a plain --file.")
@click.option("--author", default=None, help="An author to go with --text.")
def test_rule(config_path: Path, rule: str, text: str | None, url: str | None,
              file: Path | None, title: str, author: str | None) -> None:
    """Explain why a rule matches a text or not; exit 0 on a match, 1 on none (as grep)."""
    if sum(x is not None for x in (text, url, file)) != 1:
        raise click.UsageError("give exactly one of --text, --url, --file")
    configure_logging("console", "WARNING")
    config = load_or_exit(config_path)
    if rule not in {r.name for r in config.rules}:
        click.echo(f"error: no rule {rule!r} in {config_path} "
                   f"(rules: {', '.join(r.name for r in config.rules) or 'none'})", err=True)
        sys.exit(2)
    matcher = Matcher([r for r in config.rules if r.name == rule])
    try:
        entries = _entries(config, text, url, file, title, author)
    except ParseError as exc:
        click.echo(f"error: the service reads {file or url} to no entries: {exc} (to test "
                   "a text as a whole, pass it with --text)", err=True)
        sys.exit(2)
    except LivewatchError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    matched = 0
    for entry in entries:
        if len(entries) > 1 or url:
            click.echo(f"\n== {entry.title or entry.id}" + (f" <{entry.url}>" if entry.url else ""))
        result = explain(matcher, rule, entry)
        matched += result.matched
        click.echo(str(result))
    if len(entries) != 1:
        click.echo(f"\n{matched} of {len(entries)} entries match")
    sys.exit(0 if matched else 1)
