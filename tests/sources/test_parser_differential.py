"""The fast feed path (fastfeedparser, `monitor.sources.fastfeed`) against feedparser: on every
fixture and on generated RSS 2.0 / Atom variants, the fast path either declines the document
(feedparser then parses it) or yields exactly the entries feedparser's path yields (ids,
titles, text, links, authors, dates, after our normalisation).

The text and date policy both follow (text: the fullest content block or summary, a Media RSS
caption only when there is neither; `<dc:date>` a publication date) is pinned on fixtures in
real feeds' shapes, each with its expected entries: both paths must give exactly those."""

from __future__ import annotations

import importlib.util
import json
import random
import sys
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

from monitor.core.errors import ParseError
from monitor.core.models import Entry
from monitor.sources import parse_document
from monitor.sources.fastfeed import fast_feed
from monitor.sources.feeds import parse_feed
from monitor.sources.jsonfeed import is_json_feed

DATA = Path(__file__).parents[1] / "data"
URL = "https://news.example.org/live/feed"


def reference(body: bytes, content_type: str | None = None) -> tuple[str, list[Entry]] | str:
    try:
        return parse_feed(body, URL, content_type, fast=False)
    except ParseError as e:
        return f"ParseError: {e}"


def check(body: bytes, content_type: str | None = None) -> bool:
    """Assert the fast path agrees with feedparser; return whether it was taken."""
    fast = fast_feed(body, URL, content_type, 1000)
    if fast is None:
        return False
    expected = reference(body, content_type)
    assert not isinstance(expected, str), expected
    assert fast[0] == expected[0]
    for ours, theirs in zip(fast[1], expected[1], strict=True):
        assert ours == theirs
    return True


@pytest.mark.parametrize("name", sorted(p.name for p in DATA.glob("*")
                                        if p.suffix in (".xml", ".rdf")))
def test_fixtures(name: str) -> None:
    body = (DATA / name).read_bytes()
    check(body)
    expected = reference(body)
    if not isinstance(expected, str):  # and parse_document (fast or not) gives the same
        assert parse_document("auto", body, URL, None).entries == expected[1]


def expected_entries(name: str) -> list[dict[str, object]]:
    loaded: list[dict[str, object]] = json.loads(
        (DATA / f"{name.split('.')[0]}.expected.json").read_text(encoding="utf-8"))
    return loaded


#: Own documents in real feeds' shapes: a video channel whose only text is its
#: `media:group/media:description`; RSS items with a description (or content) and a photo
#: caption, direct, in `media:group` or in `media:content`, before or after the content;
#: items whose only text is a caption (HTML, plain and untyped); `<pubDate>` with `<dc:date>`
#: beside it, and `<dc:date>` alone.
POLICY_FIXTURES = ["media_channel.xml", "media_captions.xml", "media_only.xml", "dcdate.xml"]


@pytest.mark.parametrize("name", POLICY_FIXTURES)
def test_both_paths_read_real_shapes_by_one_policy(name: str) -> None:
    body = (DATA / name).read_bytes()
    fast = fast_feed(body, URL, None, 1000)
    assert fast is not None, "the fast path takes these shapes"
    reference = parse_feed(body, URL, None, fast=False)
    want = expected_entries(name)
    assert [e.to_dict() for e in reference[1]] == want
    assert [e.to_dict() for e in fast[1]] == want


def test_a_caption_is_the_text_only_when_there_is_no_other() -> None:
    entries = {e.id: e for e in parse_feed((DATA / "media_captions.xml").read_bytes(), URL,
                                           None, fast=False)[1]}
    valparaiso = entries["https://news.example.org/2026/03/04/world/valparaiso-port-floods.html"]
    assert "cranes" not in valparaiso.text  # the caption is longer than the description
    only = parse_feed((DATA / "media_only.xml").read_bytes(), URL, None)[1]
    assert [e.text.split()[0] for e in only] == ["Nebel", "Ebbe", "Containerbrücken"]


def test_dc_date_is_a_publication_date() -> None:
    for fast in (True, False):
        entries = parse_feed((DATA / "dcdate.xml").read_bytes(), URL, None, fast=fast)[1]
        assert all(e.updated is None for e in entries)
        assert entries[2].published == datetime(2026, 3, 7, 14, 45, tzinfo=UTC)  # dc:date only


def test_json_feed_with_an_http_version_url_reads_under_auto() -> None:
    body = (DATA / "jsonfeed_v1_http.json").read_bytes()
    assert is_json_feed(json.loads(body))
    doc = parse_document("auto", body, URL, None)
    assert doc.kind == "jsonfeed"
    assert [e.to_dict() for e in doc.entries] == expected_entries("jsonfeed_v1_http.json")
    assert not is_json_feed({"version": "ftp://jsonfeed.org/version/1", "items": []})


def test_bench_farm_documents_take_the_fast_path() -> None:
    spec = importlib.util.spec_from_file_location("bench_farm", DATA.parent.parent / "bench"
                                                  / "farm.py")
    assert spec is not None and spec.loader is not None
    farm_module = importlib.util.module_from_spec(spec)
    sys.modules["bench_farm"] = farm_module  # dataclasses look their module up
    spec.loader.exec_module(farm_module)
    farm = farm_module.Farm(2, posts=50)
    for feed in farm.feeds:
        assert check(feed.document()), feed.kind


# --- generated variants ----------------------------------------------------------------------

WORDS = ["coalition", "of", "the", "willing", "M&S", "AT&T", "Q&A", "“quoted”", "don’t",
         "café", "naïve", "–", "£2.4bn", "5 < 6", "a > b", "x&y", "&copy", "    ", "\n",
         "tab\there", "emoji 🙂", "Zelenskyy", "ß"]
#: What feedparser's sanitizer reads its own way (the fast path must decline these).
QUIRKS = ["R&D;", "<script>alert('x &copy y')</script>", "<noscript>n</noscript>", "&bogus;"]
HTML_BITS = ["<p>{}</p>", "<em>{}</em>", "{}<br/>", "<a href=\"/rel/link\">{}</a>",
             "<div><span>{}</span></div>", "{}&nbsp;", "&amp;{}", "&#8217;{}",
             "<strong>{}</strong>", "<!-- {} -->", "<ul><li>{}</li></ul>"]


class Doc:
    """Per-document choices: feeds come from templates, so an element is on every entry or on
    none, but one document in five mixes them (or carries a sanitizer quirk)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.mixed = rng.random() < 0.2
        self.quirky = rng.random() < 0.15
        self.on = {name: rng.random() < 0.7 for name in (
            "title", "link", "author", "date", "summary", "content", "published", "updated")}
        self.on.update({name: rng.random() < 0.3 for name in ("caption", "dcdate")})
        #: How captions are written and where they go: most templates put them in the media
        #: elements at the end of the item.
        self.caption_form = rng.randrange(4)
        self.caption_kind = rng.choice(["", "", "plain", "html"])  # most write no type
        self.atom_dcdate = rng.random() < 0.1  # rare in Atom
        self.captions_last = rng.random() < 0.75

    def has(self, name: str) -> bool:
        return self.rng.random() < 0.5 if self.mixed else self.on[name]

    def words(self, n: int) -> str:
        chosen = [self.rng.choice(WORDS) for _ in range(n)]
        if self.quirky and self.rng.random() < 0.3:
            chosen.append(self.rng.choice(QUIRKS))
        return " ".join(chosen)

    def html(self) -> str:
        return "".join(self.rng.choice(HTML_BITS).format(self.words(4))
                       for _ in range(self.rng.randint(1, 4)))


def caption(doc: Doc, forms: int) -> str:
    """A Media RSS caption, typed or not: inside `media:group` or `media:content`, or direct
    (the last of the `forms` first)."""
    rng = doc.rng
    kind = rng.choice(["", "plain", "html"]) if doc.mixed else doc.caption_kind
    value = doc.html() if kind == "html" else doc.words(6)
    attr = f' type="{kind}"' if kind else ""
    body = escape(value) if rng.random() < 0.7 else f"<![CDATA[{value}]]>"
    element = f"<media:description{attr}>{body}</media:description>"
    image = f'<media:content url="https://img.example.org/{rng.randint(0, 99)}.jpg"'
    written = [f"<media:group>{element}{image}/></media:group>",
               f"{image}>{element}<media:credit>Desk</media:credit></media:content>",
               f"{image}/>{element}", element]
    return written[(rng.randrange(4) if doc.mixed else doc.caption_form) % forms]


def with_captions(doc: Doc, parts: list[str], first: int, forms: int) -> list[str]:
    """`parts` of an item or entry with its captions, at the end or anywhere after `first`."""
    if not doc.has("caption"):
        return parts
    for _ in range(1 if doc.rng.random() < 0.8 else 2):
        at = len(parts) if doc.captions_last else doc.rng.randint(first, len(parts))
        parts.insert(at, caption(doc, forms))
    return parts


def w3c_date(rng: random.Random, moment: datetime) -> str:
    """A `<dc:date>`: W3C-DTF, in UTC or with an offset."""
    zone = rng.choice([UTC, timezone(timedelta(hours=1)), timezone(timedelta(hours=-5))])
    return moment.astimezone(zone).isoformat().replace("+00:00", "Z")


def when(rng: random.Random) -> datetime:
    return datetime(2026, 3, 1, tzinfo=UTC) + timedelta(seconds=rng.randint(0, 10**7))


def rss_date(rng: random.Random, moment: datetime) -> str:
    zone = rng.choice([UTC, timezone(timedelta(hours=1)), timezone(timedelta(hours=-5))])
    text = format_datetime(moment.astimezone(zone), usegmt=zone is UTC)
    return text.replace("+0000", "GMT") if rng.random() < 0.2 else text


def rss_item(doc: Doc, i: int, guids: str) -> str:
    rng = doc.rng
    parts = []
    if guids == "false":
        parts.append(f'<guid isPermaLink="false">post-{i}-{rng.randint(0, 9)}</guid>')
    elif guids == "link":
        parts.append(f"<guid>https://news.example.org/live/feed#p{i}</guid>")
    if doc.has("title"):
        title = doc.words(5)
        parts.append(f"<title>{escape(title)}</title>" if rng.random() < 0.7
                     else f"<title><![CDATA[{title}]]></title>")
    if doc.has("link"):
        href = rng.choice([f"https://news.example.org/live/feed#p{i}", f"/live/feed#p{i}",
                           f"https://news.example.org/live/feed?utm_source=x#p{i}"])
        parts.append(f"<link>{href}</link>")
    if doc.has("author"):
        name = rng.choice(WORDS)  # unescaped one time in ten: malformed XML, as in the wild
        name = escape(name) if rng.random() < 0.9 else name
        parts.append(rng.choice([f"<author>desk@example.org (Reporter {i})</author>",
                                 f"<dc:creator>Jane {name}</dc:creator>"]))
    moment = when(rng)
    if doc.has("date"):
        parts.append(f"<pubDate>{rss_date(rng, moment)}</pubDate>")
    if doc.has("dcdate"):  # the same instant as <pubDate>, or not
        parts.append(f"<dc:date>{w3c_date(rng, rng.choice([moment, when(rng)]))}</dc:date>")
    if doc.has("summary"):
        body = doc.html()
        parts.append(f"<description>{escape(body)}</description>" if rng.random() < 0.6
                     else f"<description><![CDATA[{body}]]></description>")
    if doc.has("content"):
        parts.append(f"<content:encoded><![CDATA[{doc.html()}]]></content:encoded>")
    rng.shuffle(parts)
    return "<item>" + "".join(with_captions(doc, parts, 0, 4)) + "</item>"


def rss(rng: random.Random) -> bytes:
    doc = Doc(rng)
    guids = rng.choice(["false", "link", "none"])
    items = "".join(rss_item(doc, i, guids) for i in range(rng.randint(1, 12)))
    declaration = rng.choice(['<?xml version="1.0" encoding="utf-8"?>', '<?xml version="1.0"?>',
                              ""])
    return (f'{declaration}<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/" '
            f'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
            f'xmlns:media="http://search.yahoo.com/mrss/"><channel>'
            f"<title>Live</title><link>https://news.example.org/live</link>"
            f"<description>d</description>{items}</channel></rss>").encode()


def atom_entry(doc: Doc, i: int, title_type: str, summary_type: str) -> str:
    rng = doc.rng
    parts = [f"<id>tag:news.example.org,2026:e{i}</id>"]
    if title_type == "html":
        parts.append(f'<title type="html">{escape(doc.html())}</title>')
    else:
        attr = rng.choice(["", ' type="text"'])
        parts.append(f"<title{attr}>{escape(doc.words(5))}</title>")
    if doc.has("link"):
        href = rng.choice([f"https://news.example.org/live#e{i}", f"/live#e{i}"])
        parts.append(f'<link rel="alternate" href="{href}"/>' if rng.random() < 0.5
                     else f'<link href="{href}"/>')
    moment = when(rng)
    if doc.has("published"):
        parts.append(f"<published>{moment.isoformat().replace('+00:00', 'Z')}</published>")
    if doc.has("updated"):
        later = moment + timedelta(minutes=rng.randint(0, 90))
        parts.append(f"<updated>{later.astimezone(timezone(timedelta(hours=2))).isoformat()}"
                     "</updated>")
    if doc.has("author"):
        parts.append(f"<author><name>{escape(doc.words(2))}</name></author>")
    if summary_type == "html" and doc.has("summary"):
        parts.append(f'<summary type="html">{escape(doc.html())}</summary>')
    elif summary_type == "text" and doc.has("summary"):
        parts.append(f"<summary>{escape(doc.words(8))}</summary>")
    if doc.has("content"):
        content_type = rng.choice(["html", "text"])
        value = doc.html() if content_type == "html" else doc.words(9)
        parts.append(f'<content type="{content_type}">{escape(value)}</content>')
    if doc.atom_dcdate and doc.has("dcdate"):
        parts.append(f"<dc:date>{w3c_date(rng, moment)}</dc:date>")
    # Atom templates (video channels) group their captions; a direct one is in mixed documents
    return "<entry>" + "".join(with_captions(doc, parts, 1, 2)) + "</entry>"


def atom(rng: random.Random) -> bytes:
    doc = Doc(rng)
    title_type = rng.choice(["text", "html"])
    summary_type = rng.choice(["text", "html"])
    entries = "".join(atom_entry(doc, i, title_type, summary_type)
                      for i in range(rng.randint(1, 12)))
    return ('<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom" '
            'xmlns:media="http://search.yahoo.com/mrss/" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/">'
            "<id>urn:live</id><title>Live</title><updated>2026-03-01T00:00:00Z</updated>"
            f"{entries}</feed>").encode()


@pytest.mark.parametrize("seed", range(150))
def test_generated_rss(seed: int) -> None:
    check(rss(random.Random(seed)))


@pytest.mark.parametrize("seed", range(150))
def test_generated_atom(seed: int) -> None:
    check(atom(random.Random(seed)))


def test_generated_documents_mostly_take_the_fast_path() -> None:
    """The fast path is taken for the plain documents (not mixed, no quirks), so the
    comparisons above are not vacuous."""
    taken = [check(make(random.Random(seed))) for make in (rss, atom) for seed in range(150)]
    assert sum(taken) >= 0.5 * len(taken)


@pytest.mark.parametrize("body", [
    b'<?xml version="1.0" encoding="iso-8859-1"?><rss version="2.0"><channel><title>t</title>'
    b"<item><guid>g</guid><title>caf\xe9</title></item></channel></rss>",
    b'<rss version="2.0" xml:base="https://other.example.org/"><channel><title>t</title>'
    b"<item><link>/x</link><title>x</title></item></channel></rss>",
    b'<rss version="2.0"><channel><title>t</title><item><guid>g</guid><title>x</title>',
    b'<rss version="2.0"><channel><title>t</title><item><guid>g</guid><title>a & b</title>'
    b"</item></channel></rss>",
    b'<rss version="0.91"><channel><title>t</title><item><title>x</title></item></channel></rss>',
    b'<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>i</id><title type="xhtml">'
    b'<div xmlns="http://www.w3.org/1999/xhtml">x</div></title></entry></feed>',
    b'<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>i</id><title>x</title><author>'
    b"<name>A</name></author><author><name>B</name></author></entry></feed>",
])
def test_documents_the_fast_path_declines(body: bytes) -> None:
    assert fast_feed(body, URL, None, 1000) is None


def test_declared_charset_other_than_utf8_declines() -> None:
    body = (DATA / "rss2_noguid.xml").read_bytes()
    assert fast_feed(body, URL, "application/rss+xml", 1000) is not None
    assert fast_feed(body, URL, "application/rss+xml; charset=windows-1252", 1000) is None


def test_limits_apply_to_the_fast_path_too() -> None:
    items = "".join(f'<item><guid isPermaLink="false">g{i}</guid><title>t{i}</title></item>'
                    for i in range(2500))
    body = f'<rss version="2.0"><channel><title>t</title>{items}</channel></rss>'.encode()
    assert fast_feed(body, URL, None, 5000) is not None  # plain: the fast path reads it
    kind, entries = parse_feed(body, URL, None, max_entries=1000)  # cut before either parser
    assert kind == "rss" and [e.id for e in entries] == [f"g{i}" for i in range(1000)]
    entity = (b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "b">]><rss version="2.0">'
              b"<channel><title>t</title><item><guid>g</guid><title>&a;</title></item>"
              b"</channel></rss>")
    assert fast_feed(entity, URL, None, 1000) is None
    with pytest.raises(ParseError, match="entity declarations"):
        parse_feed(entity, URL, None)
