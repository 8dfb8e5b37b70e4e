"""Text normalisation shared by parsing (display text, content hashes) and matching.

Two forms exist:

* **clean text** (`clean_text`, `monitor.core.cleantext`): what a reader sees, markup-free.
* **match form** (`match_form`, `monitor.core.matchform`; as bytes, faster,
  `monitor.core.quickform`): what rules are matched against: quotes, dashes and spaces
  unified, NFKC, case folded.

`content_hash` (entry versions) is defined here, over both; the names most callers need are
importable from here.
"""

from __future__ import annotations

import hashlib

from monitor.core.cleantext import clean_text
from monitor.core.matchform import match_form, match_form_lazy, normalize_phrase
from monitor.core.quickform import quick_match_form

__all__ = ["clean_text", "content_hash", "match_form", "normalize_phrase"]


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

