"""`livewatch inspect` and the tools that must read pages as the service does (`test-rule
--file/--url`), run as subprocesses against files and a page server on 127.0.0.1."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from servers import FeedServer
from service import livewatch

from monitor.config.models import SelectorSettings
from monitor.sources import parse_document

PAGES = Path(__file__).parents[1] / "data" / "pages"
ARTICLE = """<!doctype html><html><head><title>Opinion</title></head><body><article>
<h1>Why the coalition of the willing matters</h1><p>An essay that says the coalition of the
willing matters, at length, and is not a live blog of any kind.</p></article></body></html>"""


def config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "livewatch.yaml"
    path.write_text(f"""
feeds:
  - {{name: summit, url: "https://news.example.org/live"}}
rules:
  - {{name: coalition, any: ["coalition of the willing", "coalizione dei volenterosi"],
     channels: [hook]}}
channels:
  - {{name: hook, type: webhook, url: "https://hooks.example.org/x"}}
{extra}
""")
    return path


def test_inspect_a_joined_page(tmp_path: Path) -> None:
    result = livewatch("inspect", "--config", str(tmp_path / "absent.yaml"), "--show", "2",
                       str(PAGES / "jsonld_noids.html"))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "JSON-LD, completed from the markup" in out
    assert "3 entries; the first 2:" in out
    assert "#55123_event3" in out and "#55123_event1" not in out
    snippet = yaml.safe_load(out.split("in its feed:\n", 1)[1])
    assert snippet["kind"] == "html"
    # the printed selectors read the same updates
    pinned = parse_document("html", (PAGES / "jsonld_noids.html").read_bytes(),
                            "https://x.org/p", None, SelectorSettings(**snippet["selectors"]))
    assert pinned.entries[0].title.startswith("Accordo sulla")
    assert len(pinned.entries) == 3


def test_inspect_says_why_each_strategy_declined(tmp_path: Path) -> None:
    result = livewatch("inspect", str(PAGES / "microdata_container.html"))
    assert result.returncode == 0, result.stderr
    assert "repeated blocks in the markup" in result.stdout
    declined = result.stdout.split("declined before it:\n", 1)[1]
    assert "microdata: a LiveBlogPosting without updates" in declined
    assert "app-state: no embedded app state" in declined
    result = livewatch("inspect", str(PAGES / "appstate_next.html"))
    assert "embedded app state" in result.stdout and "no selectors to pin it" in result.stdout


def test_inspect_a_url_with_the_service_limits(tmp_path: Path, feed_server: FeedServer) -> None:
    feed_server.set("/live", (PAGES / "microdata_container.html").read_bytes(),
                    content_type="text/html; charset=utf-8")
    url = feed_server.url("/live")
    strict = config(tmp_path, "fetch: {allow_private_networks: false}")
    refused = livewatch("inspect", "--config", str(strict), url)
    assert refused.returncode == 1 and "allow_private_networks" in refused.stdout
    capped = config(tmp_path, "fetch: {max_entries: 2}")
    result = livewatch("inspect", "--config", str(capped), url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\(200, \d+ KB, text/html", result.stdout)
    assert "2 entries" in result.stdout  # fetch.max_entries applies, as in the service


def test_inspect_an_article(tmp_path: Path) -> None:
    page = tmp_path / "article.html"
    page.write_text(ARTICLE)
    result = livewatch("inspect", str(page))
    assert result.returncode == 1
    assert "no entries: not a feed and no live blog" in result.stdout


def test_test_rule_file_reads_pages_as_the_service(tmp_path: Path) -> None:
    """An article the service reads to nothing is an error, not a MATCH of the whole page; a
    plain-text file is one text; a live blog is tested per entry, with the service's limits."""
    page = tmp_path / "article.html"
    page.write_text(ARTICLE)
    path = config(tmp_path)
    result = livewatch("test-rule", "--config", str(path), "coalition", "--file", str(page))
    assert result.returncode == 2
    assert "reads" in result.stderr and "to no entries" in result.stderr
    assert "--text" in result.stderr
    text = tmp_path / "note.txt"
    text.write_text("Talk of a coalition of the willing again.")
    result = livewatch("test-rule", "--config", str(path), "coalition", "--file", str(text))
    assert result.returncode == 0 and "MATCH" in result.stdout
    capped = config(tmp_path, "fetch: {max_entries: 1}")
    result = livewatch("test-rule", "--config", str(capped), "coalition", "--file",
                       str(PAGES / "jsonld_noids.html"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("rule 'coalition'") == 1  # one entry tested, not the page
