"""Text normalisation shared by parsing (display text, content hashes) and matching.

Two forms exist:

* **clean text** (`clean_text`, `monitor.cleantext`): what a reader sees, markup-free.
* **match form** (`match_form`, `monitor.matchform`; as bytes, faster, `monitor.quickform`): what
  rules are matched against: quotes, dashes and spaces unified, NFKC, case folded.

`content_hash` (entry versions) is defined here, over both; the names most callers need are
importable from here.
"""

from __future__ import annotations

import hashlib

from monitor.cleantext import clean_text
from monitor.matchform import MATCH_TABLE as _MATCH_TABLE  # noqa: F401 (transitional, below)
from monitor.matchform import (
    RunMap,
    cased_form,
    match_form,
    match_form_lazy,
    normalize_phrase,
    normalize_phrase_stripped,
    strip_marks,
    unify_punctuation,
)
from monitor.quickform import QuickForm, quick_match_form

__all__ = ["clean_text", "content_hash", "match_form", "normalize_phrase"]
# Re-exported only until their few callers import them from their own modules (workers/scan.py,
# monitor/sources/join.py, tests/test_match_props.py, bench/match_bench.py); then delete.
__all__ += ["QuickForm", "RunMap", "cased_form", "match_form_lazy", "normalize_phrase_stripped",
            "quick_match_form", "strip_marks", "unify_punctuation"]


def content_hash(*parts: str) -> str:
    """Hash of the match form of `parts`, blind to markup, whitespace, case and quote style.

    (Stored as entry versions: its value must never change. The match form comes from
    `quick_match_form` where it applies, tested equal to `match_form`.)"""
    digest = hashlib.blake2b(digest_size=12)
    for part in parts:
        clean = clean_text(part)
        quick = quick_match_form(clean)
        form = quick.form.decode(quick.encoding) if quick is not None \
            else match_form_lazy(clean)[0]
        digest.update("".join(form.split()).encode())
        digest.update(b"\x1f")
    return digest.hexdigest()

