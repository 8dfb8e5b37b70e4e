"""Entry versions remembered from a feed's previous parse.

A changed live blog is parsed whole, though most of its updates are the same as last time; an
entry's `version` (a hash of its normalised title and text, `content_hash`) is the larger part
of reading an unchanged update. `parse_document(..., versions=previous)` looks each (title,
text) up in the versions of the feed's previous parse, by Python's string hash of the pair
(randomised per process, 64 bits: not craftable by a page), and hands back the versions of
this parse for the next one. The memo holds only integers and version strings, never texts.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from monitor.core.textnorm import content_hash

Versions = dict[int, str]
_local = threading.local()


@contextmanager
def remembering(previous: Mapping[int, str] | None) -> Iterator[Versions]:
    """Within the block, `version_of` on this thread reuses `previous`; yields the versions
    computed or reused meanwhile."""
    fresh: Versions = {}
    outer = getattr(_local, "memo", None)
    _local.memo = (previous or {}, fresh)
    try:
        yield fresh
    finally:
        _local.memo = outer


def version_of(title: str, text: str) -> str:
    """`content_hash(title, text)`, remembered while `remembering` is active on this thread."""
    memo: tuple[Mapping[int, str], Versions] | None = getattr(_local, "memo", None)
    if memo is None:
        return content_hash(title, text)
    previous, fresh = memo
    key = hash((title, text))
    version = fresh.get(key) or previous.get(key)
    if version is None:
        version = content_hash(title, text)
    fresh[key] = version
    return version
