"""Keeping secrets out of what livewatch shows: errors, logs, listings, `status`, notices.

A secret can be a known value (an environment variable's, a password, a webhook URL) or sit in
a URL: its userinfo, a chat webhook's path, a query or a fragment. `redact` replaces known
values; `hosts_only` cuts every URL in a text to its host; `url_shown` cuts one URL to the part
its kind may show.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

#: A URL in a message: scheme, optional userinfo (to the last `@` before a `/`), host[:port],
#: then everything up to white space: a path may hold `)`, `'` or `"` and a query after them.
_URL = re.compile(r"""\b([a-z][a-z0-9+.-]{0,30})://(?:[^/\s]*@)?([^/\s'"<>()?#@\\]*)\S*""",
                  re.IGNORECASE)

#: What `url_shown` keeps of a URL.
UrlPart = Literal["scheme", "host", "path", "all"]


def redact(text: str, values: Mapping[str, str]) -> str:
    """`text` with every (non-empty) key of `values` replaced by its value, longest first (so a
    secret that contains another is replaced whole)."""
    for value in sorted(values, key=len, reverse=True):
        if value:
            text = text.replace(value, values[value])
    return text


def hosts_only(text: str) -> str:
    """`text` with every URL cut to its scheme and host (a path, query or userinfo may hold a
    token): what errors, logs, `status` and notices may show."""
    return _URL.sub(r"\1://\2", text) if "://" in text else text


def url_shown(url: str, keep: UrlPart = "path") -> str:
    """`url` cut to what may be shown of it ("" if it cannot be parsed):

    - `scheme`: `tgram://…` (an Apprise URL: all after the scheme may be credentials);
    - `host`: `https://hooks.slack.com/…` (a chat webhook: its path is the token);
    - `path`: scheme, host[:port] and path, without userinfo, query and fragment;
    - `all`: all of it but a password, shown as `***` (a Redis URL).
    """
    if keep == "scheme":
        return url.partition("://")[0] + "://…"
    try:
        parts = urlsplit(url.strip() if keep == "path" else url)
        host = parts.netloc.rpartition("@")[2]
        if keep == "host":
            return f"{parts.scheme}://{parts.hostname or '?'}/…"
        if keep == "path":
            return urlunsplit((parts.scheme, host, parts.path, "", ""))
        if parts.password is None:
            return url
        return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))
    except ValueError:  # an invalid IPv6 literal
        return ""
