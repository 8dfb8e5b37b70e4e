"""Entry versions remembered from a feed's previous parse.

A changed live blog is parsed whole, though most of its updates are the same as last time; an
entry's `version` (a hash of its normalised title and text, `content_hash`) is the larger part
of reading an unchanged update. `parse_document(..., versions=previous)` looks each (title,
text) up in the versions of the feed's previous parse, by Python's string hash of the pair
(randomised per process, 64 bits: not craftable by a page), and hands back the versions of
this parse for the next one. The memo holds only integers and version strings, never texts.

A reader may also remember an entry by its raw content (`remember_raw`): when the next parse
finds the same raw content under an id the feed's fingerprints hold at that very version
(`known`, from Redis), the entry is unchanged, and `unchanged` hands back its version so its
text need not be made at all (the diff drops it). Only the poller passes `known`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from monitor.core.textnorm import content_hash

Versions = dict[int, str]
_Memo = tuple[Mapping[int, str], Versions, Mapping[str, str]]
_local = threading.local()


@contextmanager
def remembering(previous: Mapping[int, str] | None,
                known: Mapping[str, str] | None = None) -> Iterator[Versions]:
    """Within the block, `version_of` on this thread reuses `previous`, and `unchanged` knows
    the feed's fingerprints `known` (entry id -> version); yields the versions computed or
    reused meanwhile."""
    fresh: Versions = {}
    outer = getattr(_local, "memo", None)
    _local.memo = (previous or {}, fresh, known or {})
    try:
        yield fresh
    finally:
        _local.memo = outer


def version_of(title: str, text: str) -> str:
    """`content_hash(title, text)`, remembered while `remembering` is active on this thread."""
    memo: _Memo | None = getattr(_local, "memo", None)
    if memo is None:
        return content_hash(title, text)
    previous, fresh, _known = memo
    key = hash((title, text))
    version = fresh.get(key) or previous.get(key)
    if version is None:
        version = content_hash(title, text)
    fresh[key] = version
    return version


def unchanged(ident: str, raw: int) -> str | None:
    """The version of the entry `ident` whose raw content hashes to `raw`, when the previous
    parse remembered that content and the fingerprints hold `ident` at its version: then the
    entry is unchanged and its text is not needed. None otherwise (make the entry)."""
    memo: _Memo | None = getattr(_local, "memo", None)
    if memo is None:
        return None
    previous, fresh, known = memo
    version = previous.get(raw)
    if version is None or known.get(ident) != version:
        return None
    fresh[raw] = version
    return version


def remember_raw(raw: int, version: str) -> None:
    """Remember that raw content hashing to `raw` made an entry of `version`."""
    memo: _Memo | None = getattr(_local, "memo", None)
    if memo is not None:
        memo[1][raw] = version
