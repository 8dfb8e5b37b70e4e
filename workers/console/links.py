"""One-click actions in alerts: signed (HMAC), single-purpose, expiring links to the console,
which shows what the link will do and acts only when that is confirmed (a POST with a CSRF
token bound to the link), so a mail scanner or a link preview that opens it changes nothing.

Actions: `mute` a rule (optionally on one feed) for a duration, `ack` an alert. "Open in
console" is a plain link to the alert's page (it needs a sign-in).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

from monitor.config.models import Config
from workers.console.alerts import acknowledge, group_id
from workers.console.auth import Auth
from workers.outbox.silences import SilenceMatcher, new_silence
from workers.render.alert import Alert

if TYPE_CHECKING:
    from workers.console.api import ConsoleState

#: The mute the alert's link offers.
MUTE_FOR = 3600.0
ACTIONS = ("mute", "ack")


@dataclass(frozen=True, slots=True)
class Links:
    """The console links one alert carries."""

    open: str
    mute: str
    ack: str


def console_links(config: Config) -> Callable[[Alert], tuple[tuple[str, str], ...]] | None:
    """What makes an alert's one-click links (`Alert.actions`), None when the console is not
    set up (no `console.listen` or `public_url`, or no signing key)."""
    settings = config.console
    if settings.signing_key is None or (settings.listen is None and settings.public_url is None):
        return None
    auth, base = Auth(settings), settings.base_url

    def make(alert: Alert) -> tuple[tuple[str, str], ...]:
        made = links_for(alert, auth, base)
        return (("open", made.open), ("mute", made.mute), ("ack", made.ack))

    return make


def links_for(alert: Alert, auth: Auth, base_url: str, now: float | None = None) -> Links:
    """Links for `alert`: open it, mute its rule on its feed for an hour, acknowledge it."""
    gid = group_id(alert)
    mute = auth.link("mute", {"rule": alert.rule, "feed": alert.event.feed,
                              "for": str(int(MUTE_FOR)), "channel": alert.channel}, now)
    ack = auth.link("ack", {"alert": gid, "channel": alert.channel}, now)
    return Links(open=f"{base_url}/console/alerts/{gid}",
                 mute=f"{base_url}/console/act?t={quote(mute)}",
                 ack=f"{base_url}/console/act?t={quote(ack)}")


def describe(action: str, params: dict[str, str]) -> str:
    """What a link will do, in words, for its confirmation page."""
    if action == "mute":
        hours = int(params.get("for", MUTE_FOR)) / 3600
        where = f" on feed {params['feed']}" if params.get("feed") else ""
        return f"Mute rule {params['rule']}{where} for {hours:g} h"
    if action == "ack":
        return f"Acknowledge alert {params['alert']}"
    raise ValueError(f"unknown action {action!r}")


async def perform(state: ConsoleState, action: str, params: dict[str, str],
                  now: float | None = None) -> str:
    """Do what a confirmed link says; returns what was done (for the page)."""
    now = time.time() if now is None else now
    who = f"one-click link ({params.get('channel', '?')})"
    if action == "mute":
        matchers = [SilenceMatcher("rule", params["rule"])]
        if params.get("feed"):
            matchers.append(SilenceMatcher("feed", params["feed"]))
        silence = new_silence(matchers, ends_at=now + float(params.get("for", MUTE_FOR)),
                              created_by=who, comment="muted from an alert's link", now=now)
        await state.silences.add(silence)
        return f"{describe(action, params)}: silence {silence.id} is active"
    if action == "ack":
        record = await acknowledge(state.client, params["alert"], who, now=now)
        return f"Alert {params['alert']} acknowledged by {record['by']} at {record['at']}"
    raise ValueError(f"unknown action {action!r}")
