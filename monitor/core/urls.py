"""URL identity: `canonical_url` turns a link into the form used as an entry id.

Two links that differ only in tracking parameters, parameter order, the case of the scheme or
host, or a default port name the same entry. The `#fragment` is kept: on a live blog the anchor
*is* the update (`/live/budget#update-123`).
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import unquote_plus, urlsplit, urlunsplit

from monitor.core.redaction import url_shown

#: Query parameters that track a click rather than name a resource (compared case-insensitively).
TRACKING_PARAMS = frozenset({
    "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "twclid", "igshid",
    "mc_cid", "mc_eid", "ocid", "cmpid", "cmp", "ref", "ref_src", "ref_url", "_ga", "_gl",
    "mkt_tok", "spm", "smid", "sr_share",
})
#: Prefixes of tracking parameters: `utm_source`, `at_medium`, `at_campaign`, `at_custom1`, ….
TRACKING_PREFIXES = ("utm_", "at_")

_DEFAULT_PORTS = {"http": 80, "https": 443}


@lru_cache(maxsize=8192)  # a changed live blog names its hundreds of unchanged updates again
def canonical_url(url: str) -> str:
    """The identity form of an http(s) URL; other URLs (`urn:`, `tag:`) come back stripped."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # an invalid port or IPv6 literal: leave it as written
        return url
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return url
    host = parts.hostname  # already lowercase
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{host}" if userinfo else host
    return urlunsplit((scheme, netloc, parts.path or "/", _clean_query(parts.query),
                       parts.fragment))


def _clean_query(query: str) -> str:
    """`query` without tracking parameters, sorted by name (repeated names keep their order)."""
    kept = [pair for pair in query.split("&") if pair and not _is_tracking(pair)]
    kept.sort(key=_name)
    return "&".join(kept)


def _name(pair: str) -> str:
    return unquote_plus(pair.partition("=")[0])


def _is_tracking(pair: str) -> bool:
    name = _name(pair).lower()
    return name in TRACKING_PARAMS or name.startswith(TRACKING_PREFIXES)


def without_secrets(url: str) -> str:
    """`url` without userinfo, query and fragment (where tokens go): safe to show in notices
    (`url_shown(url, "path")`)."""
    return url_shown(url, "path")
