"""The pages' frame: jinja2 templates (autoescaped), the sign-in every page needs, CSRF checks
on form posts, read tokens kept from changes, and error pages (Redis down: 503, never a
traceback).

A page handler takes a `Page` (the request, the console's state, who is signed in and the
posted form) and is wrapped by `page()`: without a valid session cookie a GET is sent to the
sign-in page, a POST needs the session's CSRF token in its `csrf` field (else 403) and, for a
`change`, an admin token (else 403).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

import structlog
from aiohttp import web
from jinja2 import Environment, PackageLoader, StrictUndefined
from redis.exceptions import RedisError

from monitor.config.values import format_duration
from monitor.core.errors import StateError
from workers.console.api import SESSION_COOKIE, STATE, ConsoleState, Handler
from workers.console.auth import Principal
from workers.outbox.silences import iso

log = structlog.get_logger("livewatch.console")

LOGIN = "/console/login"
TEMPLATES: web.AppKey[Environment] = web.AppKey("console_templates", Environment)

#: Fixed notices a redirect after a change may ask for (`?done=code`), never free text.
NOTICES = {
    "acked": "Alert acknowledged.",
    "muted": "Rule muted on this feed for 1 h.",
    "retried": "Dead deliveries queued again.",
    "retry-none": "Nothing to retry: the delivery is no longer dead.",
    "silenced": "Silence created.",
    "expired": "Silence expired.",
    "signed-out": "Signed out.",
}


def environment() -> Environment:
    """The templates under `workers/console/templates`, autoescaped."""
    env = Environment(loader=PackageLoader("workers.console", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["when"] = when
    env.filters["iso"] = iso_or_blank
    env.filters["stamp"] = stamp
    env.filters["relative"] = relative
    env.filters["web_url"] = web_url
    return env


def when(at: float | None) -> str:
    """Epoch seconds as `2026-12-08 10:00:00 UTC`, `–` for none."""
    if not at:
        return "–"
    return iso(at).replace("T", " ").replace("Z", " UTC")


def stamp(text: str) -> str:
    """An ISO 8601 time (as acknowledgements keep it) written as `when` writes times."""
    try:
        return when(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())
    except (TypeError, ValueError):
        return str(text)


def iso_or_blank(at: float | None) -> str:
    """ISO 8601 UTC for a `<time datetime>`, "" for none."""
    return iso(at) if at else ""


def relative(at: float | None, now: float | None = None) -> str:
    """`in 4m`, `95s ago`, `–` for none."""
    if not at:
        return "–"
    delta = at - (time.time() if now is None else now)
    text = format_duration(abs(delta))
    return f"in {text}" if delta > 0 else f"{text} ago"


def web_url(url: str | None) -> str:
    """`url` when it is http(s), else "" (a feed's `javascript:` link is never made a link)."""
    if not url:
        return ""
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        return ""
    return url if scheme in ("http", "https") else ""


@dataclass(frozen=True)
class Page:
    """One request to a page: who asks, the posted form, and how to answer."""

    request: web.Request
    state: ConsoleState
    who: Principal
    csrf: str
    form: dict[str, str] = field(default_factory=dict)

    def render(self, template: str, status: int = 200, **values: Any) -> web.Response:
        """`template` with the frame's values (who, csrf, notice) and `values`."""
        notice = NOTICES.get(self.request.query.get("done", ""))
        return render(self.request, template, status, who=self.who, csrf=self.csrf,
                      notice=notice, **values)

    def fail(self, status: int, title: str, detail: str = "") -> web.Response:
        """An error page for the signed-in user."""
        return error_page(self.request, status, title, detail, who=self.who, csrf=self.csrf)


def render(request: web.Request, template: str, status: int = 200,
           **values: Any) -> web.Response:
    """`template` rendered as the answer."""
    values.setdefault("who", None)
    values.setdefault("csrf", "")
    values.setdefault("notice", None)
    body = request.app[TEMPLATES].get_template(template).render(path=request.path, **values)
    return web.Response(status=status, text=body, content_type="text/html", charset="utf-8")


def error_page(request: web.Request, status: int, title: str, detail: str = "",
               **values: Any) -> web.Response:
    """A page saying what went wrong, with `status`."""
    return render(request, "error.html", status, title=title, detail=detail, code=status,
                  **values)


def unavailable(request: web.Request, exc: Exception) -> web.Response:
    """503 while Redis cannot be reached (logged, not shown)."""
    log.warning("console: Redis unavailable", path=request.path, error=str(exc))
    return error_page(request, 503, "Service unavailable",
                      "The console cannot reach Redis right now. Try again in a moment.")


def ascii_only(text: str | None) -> str:
    """`text` if ASCII, else "" (the HMAC comparisons refuse other strings with TypeError)."""
    return text if text and text.isascii() else ""


PageHandler = Callable[[Page], Awaitable[web.StreamResponse]]


async def form_of(request: web.Request) -> dict[str, str]:
    """A posted form's text fields."""
    posted = await request.post()
    return {name: value for name, value in posted.items() if isinstance(value, str)}


def see_other(location: str) -> web.Response:
    """A 303 redirect (a response, so the security headers are added)."""
    return web.Response(status=303, headers={"Location": location})


def login_redirect(request: web.Request) -> web.Response:
    """To the sign-in page, coming back to this page afterwards."""
    target = LOGIN
    if request.method in ("GET", "HEAD"):
        target += "?next=" + quote(request.path_qs, safe="")
    return see_other(target)


def page(*, change: bool = False) -> Callable[[PageHandler], Handler]:
    """Wrap a page handler with the sign-in, CSRF and (for a `change`) admin checks."""
    def wrap(handler: PageHandler) -> Handler:
        @functools.wraps(handler)
        async def run(request: web.Request) -> web.StreamResponse:
            state = request.app[STATE]
            cookie = ascii_only(request.cookies.get(SESSION_COOKIE))
            who = state.auth.session(cookie)
            if who is None:
                return login_redirect(request)
            csrf = state.auth.csrf(cookie)
            form: dict[str, str] = {}
            if request.method == "POST":
                form = await form_of(request)
                if not state.auth.csrf_ok(cookie, ascii_only(form.get("csrf"))):
                    return error_page(request, 403, "Forbidden",
                                      "This form did not come from your console session "
                                      "(or the session changed). Reload the page and try "
                                      "again.", who=who, csrf=csrf)
                if change and not who.admin:
                    return error_page(request, 403, "Forbidden",
                                      f"Token {who.name!r} may only read.", who=who, csrf=csrf)
            try:
                return await handler(Page(request, state, who, csrf, form))
            except (StateError, RedisError) as exc:
                return unavailable(request, exc)
        return run
    return wrap


def public(handler: Handler) -> Handler:
    """A page anyone may open (sign-in, one-click links): only the 503 on Redis errors."""
    @functools.wraps(handler)
    async def run(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except (StateError, RedisError) as exc:
            return unavailable(request, exc)
    return run


def back(path: str, done: str) -> web.Response:
    """Redirect after a change to `path` with the notice `done`."""
    return see_other(f"{path}?done={done}")
