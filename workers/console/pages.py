"""The console's pages under `/console`: server-rendered HTML (jinja2, autoescaped) with a
little JavaScript from `/console/static` (the CSP allows no inline script or style).

Sign-in: `POST /console/login` with a token sets the session cookie (`lw_session`: HttpOnly,
SameSite=Strict, Secure behind https, lasting `console.session`); failures are counted per
client address and answered 429 past the limit. Every page but the sign-in, the static files
and the one-click link page needs the session (`workers.console.frame`).

One-click links (`/console/act?t=TOKEN`, see `workers.console.links`): the signed token is the
credential, so no sign-in; a GET only says what the link will do, the change needs a POST with
a CSRF token bound to the link, so a mail scanner or a link preview changes nothing.

The pages: the alert wall and one alert (`workers.console.wall`); feeds, rules and their test,
deliveries, silences (`workers.console.operations`).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import structlog
from aiohttp import web

from workers.console import links, operations, wall
from workers.console.api import SESSION_COOKIE, STATE
from workers.console.auth import LinkError, client_address, login_allowed, login_failed
from workers.console.frame import (
    LOGIN,
    TEMPLATES,
    ascii_only,
    environment,
    error_page,
    form_of,
    public,
    render,
    see_other,
)

log = structlog.get_logger("livewatch.console")

STATIC = Path(__file__).parent / "static"
HOME = "/console/"


def _next(target: str | None) -> str:
    """Where to go after signing in: a console path only (no open redirect)."""
    if target and target.startswith("/console/") and "\\" not in target:
        return target
    return HOME


def _address(request: web.Request) -> str:
    return client_address(request.remote, request.headers.get("X-Forwarded-For"),
                          request.app[STATE].config.console.trusted_proxies)


@public
async def login_form(request: web.Request) -> web.StreamResponse:
    """GET /console/login: the sign-in form (straight on when signed in already)."""
    state = request.app[STATE]
    target = _next(request.query.get("next"))
    if state.auth.session(ascii_only(request.cookies.get(SESSION_COOKIE))) is not None:
        return see_other(target)
    notice = "Signed out." if request.query.get("done") == "signed-out" else None
    return render(request, "login.html", next=target, notice=notice, failed=False)


@public
async def login(request: web.Request) -> web.StreamResponse:
    """POST /console/login: sign in with a token."""
    state = request.app[STATE]
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        return error_page(request, 403, "Forbidden", "Sign in from the console's own page.")
    address = _address(request)
    if not await login_allowed(state.client, address):
        log.warning("console sign-in refused: too many failures", address=address)
        return error_page(request, 429, "Too many attempts",
                          "Too many failed sign-ins from your address. Wait a few minutes "
                          "and try again.")
    form = await form_of(request)
    target = _next(form.get("next"))
    cookie = state.auth.session_cookie(form.get("token", "").strip())
    if cookie is None:
        await login_failed(state.client, address)
        log.warning("console sign-in failed", address=address)
        return render(request, "login.html", 401, next=target, failed=True, notice=None)
    who = state.auth.session(cookie)
    log.info("console sign-in", token=who.name if who else "?", address=address)
    response = see_other(target)
    response.set_cookie(SESSION_COOKIE, cookie, max_age=int(state.auth.session_ttl), path="/",
                        httponly=True, samesite="Strict",
                        secure=state.config.console.base_url.startswith("https://"))
    return response


@public
async def logout(request: web.Request) -> web.StreamResponse:
    """POST /console/logout: end the session (with its CSRF token; without a session, just
    back to the sign-in page)."""
    state = request.app[STATE]
    cookie = ascii_only(request.cookies.get(SESSION_COOKIE, ""))
    who = state.auth.session(cookie)
    if who is not None:
        form = await form_of(request)
        if not state.auth.csrf_ok(cookie, ascii_only(form.get("csrf"))):
            return error_page(request, 403, "Forbidden", "Reload the page and try again.")
        log.info("console sign-out", token=who.name)
    response = see_other(LOGIN + "?done=signed-out")
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


def _expired(request: web.Request, token: str) -> bool:
    """True when `token` is a genuine link past its time (it opens when time is ignored)."""
    try:
        request.app[STATE].auth.open_link(token, now=0.0)
    except LinkError:
        return False
    return True


def _open(request: web.Request, token: str) -> tuple[str, dict[str, str], str] | web.Response:
    """(action, params, description) of a link token, or the page refusing it (400, 410)."""
    token = ascii_only(token)
    try:
        action, params = request.app[STATE].auth.open_link(token)
        return action, params, links.describe(action, params)
    except LinkError:
        if _expired(request, token):
            return error_page(request, 410, "This link has expired",
                              "One-click links in alerts last a limited time. Open the "
                              "console and act from the alert's page instead.")
    except (ValueError, KeyError):
        pass
    return error_page(request, 400, "This link is not valid",
                      "The link is malformed or was altered. Open the console instead.")


@public
async def act_form(request: web.Request) -> web.StreamResponse:
    """GET /console/act?t=TOKEN: what the link will do, and a button to confirm."""
    token = request.query.get("t", "")
    opened = _open(request, token)
    if isinstance(opened, web.Response):
        return opened
    _, _, description = opened
    csrf = request.app[STATE].auth.csrf("link:" + token)
    return render(request, "act.html", description=description, token=token, link_csrf=csrf,
                  result=None)


@public
async def act(request: web.Request) -> web.StreamResponse:
    """POST /console/act: do what a confirmed link says."""
    state = request.app[STATE]
    form = await form_of(request)
    token = form.get("t", "")
    opened = _open(request, token)
    if isinstance(opened, web.Response):
        return opened
    action, params, description = opened
    if not state.auth.csrf_ok("link:" + token, ascii_only(form.get("csrf"))):
        return error_page(request, 403, "Forbidden",
                          "Confirm from the link's own page: open the link again.")
    result = await links.perform(state, action, params)
    log.info("one-click link used", action=action, rule=params.get("rule"),
             alert=params.get("alert"), channel=params.get("channel"))
    return render(request, "act.html", description=description, token=token, link_csrf="",
                  result=result)


@public
async def not_found(request: web.Request) -> web.StreamResponse:
    """Any other /console path: the console's 404 page."""
    auth = request.app[STATE].auth
    cookie = ascii_only(request.cookies.get(SESSION_COOKIE))
    who = auth.session(cookie)
    return error_page(request, 404, "Not found", "There is no such page in the console.",
                      who=who, csrf=auth.csrf(cookie) if who else "")


async def _stop_streams(app: web.Application) -> None:
    app[wall.STOPPING].set()


def add_pages(app: web.Application) -> None:
    """The pages' routes and static files on `app` (which holds a `ConsoleState`)."""
    app[TEMPLATES] = environment()
    app[wall.STOPPING] = asyncio.Event()
    app.on_shutdown.append(_stop_streams)
    app.router.add_static("/console/static", STATIC, append_version=False)
    router = app.router
    router.add_get("/console", home)
    router.add_get(LOGIN, login_form)
    router.add_post(LOGIN, login)
    router.add_post("/console/logout", logout)
    router.add_get("/console/act", act_form)
    router.add_post("/console/act", act)
    wall.add_routes(router)
    operations.add_routes(router)
    router.add_route("*", "/console/{tail:.*}", not_found)


async def home(request: web.Request) -> web.StreamResponse:
    """GET /console: to /console/."""
    return see_other(HOME)
