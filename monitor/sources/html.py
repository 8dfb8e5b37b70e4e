"""Any HTML page, read through the feed's CSS `selectors` (selectolax/lexbor).

Each element matching `selectors.item` is one entry. The other selectors are relative to it and
take the first match *inside* the item (`@attr` reads an attribute, a bare `@attr` one of the
item itself). Text is `clean_text` of the element's HTML, so inline markup goes and block
elements become line breaks. `time` is ISO 8601 from the `datetime` attribute or the text;
`link` (the `href` unless an `@attr` says otherwise) resolves against the page. Identity is
`id`, else the canonical link, else `h:` + a hash of the normalised title and body. The body is
the `body` selector's text, or the whole item's text when there is no `body` selector. Items
with neither title nor body are skipped.
"""

from __future__ import annotations

from urllib.parse import urljoin

from selectolax.lexbor import LexborHTMLParser, LexborNode

from monitor.config.models import SelectorSettings
from monitor.config.selectors import split_spec
from monitor.core.errors import ParseError
from monitor.core.models import Entry
from monitor.core.textnorm import clean_text
from monitor.core.urls import canonical_url
from monitor.core.versionmemo import version_of
from monitor.sources.base import (
    MAX_ENTRIES,
    ParsedDocument,
    SourceOptions,
    html_tree,
    page_base,
    parse_datetime,
    unique_entries,
)


class HtmlSource:
    """A `Source` for HTML pages read with the feed's `selectors`."""

    kind = "html"

    def parse(self, body: bytes, url: str, content_type: str | None,
              options: SourceOptions) -> ParsedDocument:
        """Entries selected from the page; ParseError without `options.selectors`."""
        if options.selectors is None:
            raise ParseError("`kind: html` needs `selectors` (at least `item`) in the feed")
        tree = html_tree(body, content_type, options.max_html_depth)
        return ParsedDocument(self.kind, select_entries(tree, url, options.selectors,
                                                        options.max_entries))


def select_entries(tree: LexborHTMLParser, url: str, selectors: SelectorSettings,
                   max_entries: int = MAX_ENTRIES) -> list[Entry]:
    """The entries of a parsed page (first of each id kept, at most `max_entries`)."""
    base = page_base(tree, url)
    return unique_entries((_entry(item, base, selectors) for item in tree.css(selectors.item)),
                          max_entries)


def _entry(item: LexborNode, base: str, sel: SelectorSettings) -> Entry | None:
    title = _text(item, sel.title)
    text = _text(item, sel.body) if sel.body else clean_text(item.html or "")
    if not title and not text:
        return None
    href = _value(item, sel.link, default_attr="href")
    link = urljoin(base, href) if href else None
    ident = _value(item, sel.id)
    if not ident:
        ident = canonical_url(link) if link else "h:" + version_of(title, text)
    return Entry(id=ident, url=link, title=title, text=text,
                 author=_text(item, sel.author) or None,
                 published=parse_datetime(_value(item, sel.time, default_attr="datetime")))


def _target(item: LexborNode, css: str) -> LexborNode | None:
    """The first element matching `css` inside `item` ("" is the item itself)."""
    if not css:
        return item
    # lexbor's node.css() also matches the node itself; sub-selectors look inside it.
    return next((node for node in item.css(css) if node != item), None)


def _selected(item: LexborNode, spec: str | None) -> tuple[LexborNode, str | None] | None:
    """The element `spec` selects inside `item` and the attribute it names, if any."""
    if not spec:
        return None
    css, attr = split_spec(spec)
    node = _target(item, css)
    return None if node is None else (node, attr)


def _text(item: LexborNode, spec: str | None) -> str:
    """Clean text of the selected element, or of the selected attribute."""
    selected = _selected(item, spec)
    if selected is None:
        return ""
    node, attr = selected
    if attr is not None:
        return clean_text(node.attributes.get(attr) or "")
    return clean_text(node.html or "")


def _value(item: LexborNode, spec: str | None, default_attr: str | None = None) -> str:
    """The selected attribute (or `default_attr` if the element has it, else its text)."""
    selected = _selected(item, spec)
    if selected is None:
        return ""
    node, attr = selected
    attrs = node.attributes
    if attr is None and default_attr is not None and attrs.get(default_attr):
        attr = default_attr
    if attr is not None:
        return (attrs.get(attr) or "").strip()
    return clean_text(node.html or "").strip()
