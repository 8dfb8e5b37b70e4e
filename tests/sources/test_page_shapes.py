"""Live-blog pages without JSON-LD: microdata, timed blocks and heading tickers, read under
`kind: auto` with no selectors; ordinary articles must still give no entries.

Fixtures are written here (invented text, the shapes of real pages).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitor.core.errors import ParseError
from monitor.sources import parse_document
from monitor.sources.timetext import leading_time

URL = "https://news.example.org/live/summit"

MICRODATA = """<!doctype html><html><head><title>Summit live</title></head><body>
<div itemscope itemtype="https://schema.org/LiveBlogPosting">
<meta itemprop="coverageStartTime" content="2025-03-02T08:00:00+00:00">
<ul>""" + "".join(f"""
<li id="u{n}"><div itemprop="liveBlogUpdate" itemscope itemtype="https://schema.org/BlogPosting">
<meta itemprop="url" content="{URL}#u{n}">
<meta itemprop="datePublished" content="2025-03-02T1{n}:05:00+00:00">
<meta itemprop="headline" content="Update number {n}">
<span itemprop="author" itemscope itemtype="https://schema.org/Person">
<meta itemprop="name" content="Desk Writer"></span>
<div itemprop="articleBody"><p>Leaders spoke about the coalition of the willing, part {n}.</p>
</div></div></li>""" for n in range(1, 5)) + "</ul></div></body></html>"

TICKER = """<!doctype html><html><head>
<meta name="last-modified" content="2025-03-02T18:10:00+01:00"></head><body><main>
<h2>Live-Ticker</h2><h2>Sonntag, 2.&nbsp;3.</h2>
<h5 id="t-3"><span>17.34 Uhr: Gipfel endet mit „Koalition der Willigen“</span></h5>
<p>Die Teilnehmer einigten sich am Abend auf eine gemeinsame Erklärung zur Sicherheit.</p>
<div class="ad"></div>
<p>Weitere Gespräche sollen in der kommenden Woche folgen, hiess es aus Delegationskreisen.</p>
<h5 id="t-2"><span>12.05 Uhr: Delegationen treffen ein</span></h5>
<p>Am Mittag trafen die ersten Regierungschefs am Tagungsort ein und wurden begrüsst.</p>
<h2>Samstag, 1.&nbsp;3.</h2>
<h5 id="t-1"><span>9.15 Uhr: Vorbereitungen laufen</span></h5>
<p>Sicherheitskräfte sperrten am Morgen mehrere Strassen rund um das Konferenzzentrum.</p>
<section class="more"><h2>Mehr zum Thema</h2><p>Ein anderer Artikel</p></section>
</main></body></html>"""

BLOCKS = """<!doctype html><html><body><div class="entries">""" + "".join(f"""
<div class="entry" id="{700 + n}" data-post-time="{1740916800000 + n * 60000}">
<div class="info"><time>1{n}:00</time><span class="by">Reporter</span></div>
<h3>Headline {n}</h3><p>Ministers met again and discussed a ceasefire plan, item {n}.</p>
<ul><li>first point {n}</li><li>second point {n}</li></ul>
<button>Share</button></div>""" for n in range(1, 5)) + "</div></body></html>"

ARTICLE = """<!doctype html><html><head><meta property="article:published_time"
content="2025-03-02T09:00:00Z"></head><body><article><h1>A long read</h1>
<p class="byline">By A Writer, <time datetime="2025-03-02T09:00:00Z">2 March 2025</time></p>
<p>First paragraph of an ordinary news article with plenty of words in it.</p>
<h2>Background</h2><p>Second paragraph, also long enough to look like real prose here.</p>
<h2>What next</h2><p>Third paragraph that closes the story for the reader today.</p>
</article><aside class="related">""" + "".join(f"""
<div class="card"><a href="/story/{n}">Related story {n} with a headline</a>
<time datetime="2025-03-0{n}T10:00:00Z">{n} March</time></div>""" for n in range(1, 6)) + """
</aside></body></html>"""

ARTICLE_COMMENTS = """<!doctype html><html><body><article><h1>Opinion</h1>
<p>An opinion piece with a few paragraphs of argument and nothing live about it.</p>
</article><section id="comments">""" + "".join(f"""
<div class="comment"><span class="when">{n} hours ago</span><p>Reader comment number {n}
agreeing at length with the piece and adding thoughts.</p></div>""" for n in range(1, 6)) + """
</section></body></html>"""

ARTICLE_TIMELINE_LINKS = """<!doctype html><html><body><h1>Story</h1><p>Body text of a
story that is long enough to be an article but has no updates.</p><ul class="index">""" + \
    "".join(f"""<li><time>1{n}:00</time> <a href="#e{n}">Key event {n} of the day</a></li>"""
            for n in range(1, 6)) + "</ul></body></html>"


def parse(body: str) -> list[dict[str, object]]:
    doc = parse_document("auto", body.encode(), URL, "text/html; charset=utf-8")
    assert doc.kind == "liveblog"
    return [e.to_dict() for e in doc.entries]


def test_microdata_live_blog() -> None:
    entries = parse(MICRODATA)
    assert [e["id"] for e in entries] == [f"{URL}#u{n}" for n in range(1, 5)]
    assert entries[0]["title"] == "Update number 1"
    assert entries[0]["author"] == "Desk Writer"
    assert "coalition of the willing, part 1" in str(entries[0]["text"])
    assert entries[0]["published"] == "2025-03-02T11:05:00+00:00"


def test_heading_ticker_with_date_headings() -> None:
    entries = parse(TICKER)
    assert [e["id"] for e in entries] == [f"{URL}#t-{n}" for n in (3, 2, 1)]
    first = entries[0]
    assert first["title"] == "Gipfel endet mit „Koalition der Willigen“"
    assert "gemeinsame Erklärung" in str(first["text"])
    assert "kommenden Woche" in str(first["text"])  # every paragraph up to the next heading
    assert first["published"] == "2025-03-02T16:34:00+00:00"  # the page's +01:00 offset
    assert entries[2]["published"] == "2025-03-01T08:15:00+00:00"  # the date heading's day
    assert "anderer Artikel" not in str(entries[2]["text"])  # a page section ends it


def test_timed_blocks() -> None:
    entries = parse(BLOCKS)
    assert [e["id"] for e in entries] == [f"{URL}#{700 + n}" for n in range(1, 5)]
    first = entries[0]
    assert first["title"] == "Headline 1"
    assert "ceasefire plan, item 1" in str(first["text"])
    assert "second point 1" in str(first["text"])  # lists are body text
    assert "Share" not in str(first["text"]) and "11:00" not in str(first["text"])
    assert first["published"] == datetime.fromtimestamp(1740916860, UTC).isoformat()


def test_ids_do_not_depend_on_position() -> None:
    shifted = BLOCKS.replace(' id="701"', "").replace(' id="702"', "")
    new = shifted.replace('<div class="entries">', '<div class="entries"><div class="entry">'
                          '<time>09:00</time><h3>Newest</h3><p>A brand new update on top of '
                          'the others, about talks.</p></div>')
    before = {e["title"]: e["id"] for e in parse(shifted)}
    after = {e["title"]: e["id"] for e in parse(new)}
    assert all(after[title] == ident for title, ident in before.items())
    assert str(before["Headline 1"]).startswith("h:")


@pytest.mark.parametrize("page", [ARTICLE, ARTICLE_COMMENTS, ARTICLE_TIMELINE_LINKS],
                         ids=["related-rail", "comments", "index-of-links"])
def test_ordinary_articles_give_no_entries(page: str) -> None:
    with pytest.raises(ParseError, match="no live blog"):
        parse_document("auto", page.encode(), URL, "text/html")


@pytest.mark.parametrize(("text", "day", "clock", "rest"), [
    ("11.04 Uhr: Drohne", None, (11, 4), "Drohne"),
    ("2 March 2025 17:34 Talks", (2025, 3, 2), (17, 34), "Talks"),
    ("March 2, 2025, 5:34 PM – Talks", (2025, 3, 2), (17, 34), "Talks"),
    ("18 juillet à 17h34 Le sommet", (None, 7, 18), (17, 34), "Le sommet"),
    ("18:16 (IST), Oct 02", (None, 10, 2), (18, 16), ""),
    ("Donnerstag, 18.\u00a07.", (None, 7, 18), None, ""),
])
def test_written_times(text: str, day: object, clock: object, rest: str) -> None:
    found = leading_time(text)
    assert found is not None
    assert (found.day, found.clock, text[found.end:]) == (day, clock, rest)


@pytest.mark.parametrize("text", ["2.50 euros for bread", "3.5 million people",
                                  "10 Downing Street said", "12 people died"])
def test_figures_are_not_times(text: str) -> None:
    assert leading_time(text) is None
