"""schema.org in HTML attributes: microdata (`itemscope`/`itemprop`) and RDFa (`typeof`/
`property`), read into the shape JSON-LD has, so one reader (`monitor.sources.liveblog`) maps
every syntax to entries.

An item is `{"@type": [...], "@id": ..., prop: value}`; a property given several times has a
list of values. A property's value is, by element (as the microdata spec says): `content` on
`meta` (and on any element that carries one, as real pages do), `href` on `a`/`link`/`area`,
`src` on media elements, `data` on `object`, `datetime` on `time` (else its text), `value` on
`data`/`meter`, a nested item when the element is itself an item, else the element's inner
HTML (cleaned by the reader: block elements become line breaks). RDFa property names and types
may carry a prefix (`schema:headline`); it is dropped. `itemref` is not followed.

Work is linear in the page: each element's owning item is found once (ancestors are memoised),
and at most `MAX_ITEMS` items and `MAX_PROPS` properties are read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from selectolax.lexbor import LexborHTMLParser, LexborNode

MAX_ITEMS = 5000
MAX_PROPS = 50000

_URL_ATTR = {"a": "href", "link": "href", "area": "href", "img": "src", "audio": "src",
             "video": "src", "source": "src", "embed": "src", "iframe": "src", "track": "src",
             "object": "data"}


@dataclass(frozen=True)
class _Syntax:
    scope: str          # the attribute that makes an element an item
    prop: str           # the attribute naming an element's properties
    type: str           # the attribute naming an item's types
    ids: tuple[str, ...]  # attributes naming an item's id, first present wins


MICRODATA = _Syntax("itemscope", "itemprop", "itemtype", ("itemid",))
RDFA = _Syntax("typeof", "property", "typeof", ("resource", "about"))


def microdata_items(tree: LexborHTMLParser) -> list[dict[str, Any]]:
    """Top-level microdata items of the page, in document order."""
    return _items(tree, MICRODATA)


def rdfa_items(tree: LexborHTMLParser) -> list[dict[str, Any]]:
    """Top-level RDFa (Lite) typed resources of the page, in document order."""
    return _items(tree, RDFA)


def _items(tree: LexborHTMLParser, syntax: _Syntax) -> list[dict[str, Any]]:
    scopes = tree.css(f"[{syntax.scope}]")[:MAX_ITEMS]
    if not scopes:
        return []
    items: dict[int, dict[str, Any]] = {}
    for node in scopes:
        items[node.mem_id] = _new_item(node, syntax)
    owners: dict[int, int | None] = {}  # element -> nearest enclosing item (memoised)
    nested: set[int] = set()
    for node in tree.css(f"[{syntax.prop}]")[:MAX_PROPS]:
        owner = _owner(node, items, owners)
        if owner is None:
            continue
        names = _local_names(node.attributes.get(syntax.prop))
        if not names:
            continue
        if node.mem_id in items:
            value: Any = items[node.mem_id]
            nested.add(node.mem_id)
        else:
            value = _value(node)
        for name in names:
            _add(items[owner], name, value)
    return [items[node.mem_id] for node in scopes if node.mem_id not in nested]


def _new_item(node: LexborNode, syntax: _Syntax) -> dict[str, Any]:
    attrs = node.attributes
    item: dict[str, Any] = {}
    types = (attrs.get(syntax.type) or "").split()
    if types:
        item["@type"] = types
    for name in syntax.ids:
        ident = (attrs.get(name) or "").strip()
        if ident:
            item["@id"] = ident
            break
    return item


def _owner(node: LexborNode, items: dict[int, dict[str, Any]],
           owners: dict[int, int | None]) -> int | None:
    """The nearest item element enclosing `node` (not `node` itself), or None."""
    path: list[int] = []
    parent = node.parent
    found: int | None = None
    while parent is not None:
        key = parent.mem_id
        if key in items:
            found = key
            break
        if key in owners:
            found = owners[key]
            break
        path.append(key)
        parent = parent.parent
    for key in path:
        owners[key] = found
    return found


def _local_names(value: str | None) -> list[str]:
    """Property names without a vocabulary prefix or URL (`schema:name`, `https://…/name`)."""
    names: list[str] = []
    for token in (value or "").split():
        name = token.rstrip("/").rsplit("/", 1)[-1].rsplit("#", 1)[-1].rsplit(":", 1)[-1]
        if name and name not in names:
            names.append(name)
    return names


def _value(node: LexborNode) -> str:
    attrs = node.attributes
    tag = node.tag or ""
    content = attrs.get("content")
    if content is not None:
        return content
    url_attr = _URL_ATTR.get(tag)
    if url_attr is not None and attrs.get(url_attr):
        return attrs.get(url_attr) or ""
    if tag == "time" and attrs.get("datetime"):
        return attrs.get("datetime") or ""
    if tag in ("data", "meter") and attrs.get("value") is not None:
        return attrs.get("value") or ""
    return node.inner_html or ""


def _add(item: dict[str, Any], name: str, value: Any) -> None:
    if name not in item:
        item[name] = value
    elif isinstance(item[name], list) and name != "@type":
        item[name].append(value)
    else:
        item[name] = [item[name], value]
