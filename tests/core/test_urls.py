"""canonical_url: the identity form of links (tracking dropped, fragment kept)."""

from __future__ import annotations

import pytest

from monitor.core.urls import canonical_url
from monitor.sources import parse_document


@pytest.mark.parametrize(("url", "canonical"), [
    ("https://www.example.co.uk/live/budget#update-123",
     "https://www.example.co.uk/live/budget#update-123"),
    ("HTTPS://WWW.Example.CO.UK/Live/Budget", "https://www.example.co.uk/Live/Budget"),
    ("https://example.org/a?utm_source=x&utm_medium=social&id=7#p2", "https://example.org/a?id=7#p2"),
    ("https://example.org/a?fbclid=1&gclid=2&mc_cid=3&mc_eid=4&ocid=5&cmpid=6&CMP=7",
     "https://example.org/a"),
    ("https://example.org/a?at_medium=RSS&at_campaign=KARANGA&ref=rss&ref_src=twsrc",
     "https://example.org/a"),
    ("https://example.org/a?b=2&a=1&c=3", "https://example.org/a?a=1&b=2&c=3"),
    ("https://example.org/a?tag=z&tag=a", "https://example.org/a?tag=z&tag=a"),
    ("https://example.org/a?q=fish%20%26%20chips&UTM_Source=x", "https://example.org/a?q=fish%20%26%20chips"),
    ("https://example.org:443/a", "https://example.org/a"),
    ("http://example.org:80", "http://example.org/"),
    ("http://example.org:8080/a", "http://example.org:8080/a"),
    ("https://user@Example.org/a", "https://user@example.org/a"),
    ("  https://example.org/a?  ", "https://example.org/a"),
    ("https://[2001:DB8::1]:8443/a", "https://[2001:db8::1]:8443/a"),
    ("urn:uuid:1234", "urn:uuid:1234"),
    ("tag:example.org,2026:post-1", "tag:example.org,2026:post-1"),
    ("https://example.org:99999/a", "https://example.org:99999/a"),
])
def test_canonical_url(url: str, canonical: str) -> None:
    assert canonical_url(url) == canonical


def test_canonical_url_is_idempotent() -> None:
    url = "HTTP://Example.org:80/p?utm_source=a&z=1&b=2#Frag"
    assert canonical_url(canonical_url(url)) == canonical_url(url) == (
        "http://example.org/p?b=2&z=1#Frag")


def test_feed_link_ids_are_canonical_but_guids_are_not() -> None:
    body = (b'<rss version="2.0"><channel><title>x</title>'
            b"<item><title>A</title><link>https://Example.org/a?utm_source=rss&amp;id=1</link>"
            b"</item><item><guid isPermaLink='false'>https://Example.org/b?utm_source=rss</guid>"
            b"<title>B</title></item></channel></rss>")
    linked, guid = parse_document("rss", body, "https://example.org/feed", None).entries
    assert linked.id == "https://example.org/a?id=1"
    assert linked.url == "https://Example.org/a?utm_source=rss&id=1"
    assert guid.id == "https://Example.org/b?utm_source=rss"


def test_json_feed_url_ids_are_canonical_but_ids_are_not() -> None:
    body = (b'{"version": "https://jsonfeed.org/version/1.1", "items": ['
            b'{"url": "/a?fbclid=9#x", "title": "A"}, {"id": "/b?fbclid=9", "title": "B"}]}')
    linked, with_id = parse_document("jsonfeed", body, "https://example.org/feed.json",
                                     None).entries
    assert (linked.id, linked.url) == ("https://example.org/a#x", "https://example.org/a?fbclid=9#x")
    assert with_id.id == "/b?fbclid=9"
