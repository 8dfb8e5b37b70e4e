"""The REST API under `/api/v1` (JSON; errors as `application/problem+json`; the contract is
`workers.console.openapi`). Reads and changes runtime state only: silences, acknowledgements,
retries of dead deliveries. Feeds, rules and channels come from the YAML.

Auth: `Authorization: Bearer TOKEN` (401 without a valid one, 403 for a `read` token on a
change), or the console's session cookie, which needs the session's CSRF token in
`X-CSRF-Token` for a change.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal

import redis.asyncio as aioredis
import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from redis.exceptions import RedisError

from monitor.config.models import Config
from monitor.core import keys
from monitor.core.errors import LivewatchError, StateError
from monitor.ops.status import collect
from workers.console import alerts, queries
from workers.console.auth import Auth, Principal
from workers.console.openapi import document
from workers.match.explain import explain
from workers.match.matcher import Matcher
from workers.outbox import deliveries
from workers.outbox.silences import SilenceMatcher, Silences, new_silence

log = structlog.get_logger("livewatch.console")

#: Cookie holding a signed-in session (`workers.console.auth`).
SESSION_COOKIE = "lw_session"
#: Delivery states `GET /deliveries?state=` takes (`retrying`: queued again after a failure).
STATES = ("queued", "sending", "retrying", "held", "delivered", "dead", "silenced", "digested")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ConsoleState:
    """What every request reads: the configuration (swapped on reload), its matcher and auth,
    and the Redis client."""

    def __init__(self, config: Config, client: aioredis.Redis) -> None:
        self.client = client
        self.silences = Silences(client)
        self.reconfigure(config)

    def reconfigure(self, config: Config) -> None:
        """Take a reloaded configuration (tokens and rules included)."""
        self.config, self.matcher, self.auth = config, Matcher(config.rules), \
            Auth(config.console)


STATE: web.AppKey[ConsoleState] = web.AppKey("console_state", ConsoleState)


def problem(status: int, title: str, detail: str | None = None,
            **extra: Any) -> web.Response:
    """An RFC 9457 problem document."""
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return web.Response(status=status, text=json.dumps(body),
                        content_type="application/problem+json")


def principal_of(request: web.Request) -> Principal | None:
    """The caller: a bearer token, else the session cookie."""
    state = request.app[STATE]
    return state.auth.bearer(request.headers.get("Authorization")) or \
        state.auth.session(request.cookies.get(SESSION_COOKIE))


@web.middleware
async def api_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Auth for `/api/v1` (the OpenAPI document is public) and problem+json for every error."""
    if not request.path.startswith("/api/"):
        return await handler(request)
    try:
        if request.path != "/api/v1/openapi.json":
            state = request.app[STATE]
            who = principal_of(request)
            if who is None:
                return problem(401, "Unauthorized", "a valid `Authorization: Bearer` token "
                               "is required", headers_hint="Bearer")
            if request.method not in ("GET", "HEAD"):
                if not who.admin:
                    return problem(403, "Forbidden", f"token {who.name!r} may only read")
                by_cookie = state.auth.bearer(request.headers.get("Authorization")) is None
                cookie = request.cookies.get(SESSION_COOKIE, "")
                if by_cookie and not state.auth.csrf_ok(cookie,
                                                        request.headers.get("X-CSRF-Token")):
                    return problem(403, "Forbidden", "missing or wrong X-CSRF-Token")
            request["principal"] = who
        return await handler(request)
    except Invalid as exc:
        return problem(400, "Bad Request", exc.detail, errors=exc.errors)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return problem(exc.status, exc.reason, exc.text if exc.text != exc.reason else None)
    except (StateError, RedisError, OSError) as exc:
        log.warning("console: Redis unavailable", error=str(exc))
        return problem(503, "Service Unavailable", "Redis is unavailable; try again")


async def _body(request: web.Request, model: type[BaseModel]) -> Any:
    try:
        raw = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise Invalid("the body is not JSON") from None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        errors = [{"field": ".".join(str(p) for p in e["loc"]), "reason": e["msg"]}
                  for e in exc.errors()]
        raise Invalid("; ".join(f"{e['field']}: {e['reason']}" for e in errors),
                   errors) from None


class Invalid(Exception):
    """A request the API refuses with 400 and the fields at fault (`errors`)."""

    def __init__(self, detail: str, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(detail)
        self.detail, self.errors = detail, errors or []



def _limit(request: web.Request, default: int, most: int) -> int:
    raw = request.query.get("limit", str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= most:
        raise Invalid(f"limit must be an integer from 1 to {most}")
    return int(raw)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class MatcherIn(_In):
    name: Literal["rule", "feed", "channel"]
    value: Annotated[str, Field(min_length=1, max_length=500)]
    isRegex: bool = False


class SilenceIn(_In):
    matchers: Annotated[list[MatcherIn], Field(min_length=1, max_length=10)]
    startsAt: datetime | None = None
    endsAt: datetime
    createdBy: Annotated[str, Field(min_length=1, max_length=200)]
    comment: Annotated[str, Field(min_length=1, max_length=1000)]


class TestRuleIn(_In):
    rule: str
    text: Annotated[str, Field(max_length=200_000)] | None = None
    title: Annotated[str, Field(max_length=1000)] = ""
    url: Annotated[str, Field(max_length=2000)] | None = None


class AckIn(_In):
    comment: Annotated[str, Field(max_length=1000)] = ""


def _when(value: datetime) -> float:
    if value.tzinfo is None:
        raise Invalid("times need a UTC offset (e.g. 2026-12-08T10:00:00Z)")
    return value.timestamp()


async def feeds(request: web.Request) -> web.Response:
    """GET /feeds: every configured feed with its health."""
    state = request.app[STATE]
    report = await collect(state.client, state.config)
    return web.json_response({"feeds": report["feeds"], "workers": report["workers"]})


async def feed_entries(request: web.Request) -> web.Response:
    """GET /feeds/{name}/entries: the feed's most recent entries and the rules they match."""
    state = request.app[STATE]
    name = request.match_info["name"]
    if name not in {f.name for f in state.config.feeds}:
        raise web.HTTPNotFound(text=f"no feed {name!r}")
    found = await queries.feed_entries(state.client, state.matcher, name,
                                       _limit(request, 20, 200))
    return web.json_response({"feed": name, "entries": [
        {"id": e.id, "title": e.title, "text": e.text, "matched": e.matched} for e in found]})


async def alert_list(request: web.Request) -> web.Response:
    """GET /alerts?limit=N: the newest alerts first."""
    found = await alerts.recent_alerts(request.app[STATE].client, _limit(request, 50, 500))
    return web.json_response({"alerts": [a.api() for a in found]})


async def alert_one(request: web.Request) -> web.Response:
    """GET /alerts/{id}."""
    found = await alerts.find_alert(request.app[STATE].client, request.match_info["id"])
    if found is None:
        raise web.HTTPNotFound(text="no such alert among the recent ones")
    return web.json_response(found.api())


async def alert_ack(request: web.Request) -> web.Response:
    """POST /alerts/{id}/ack: acknowledge (the first acknowledgement is kept)."""
    body = await _body(request, AckIn)
    state = request.app[STATE]
    alert = request.match_info["id"]
    if await alerts.find_alert(state.client, alert) is None:
        raise web.HTTPNotFound(text="no such alert among the recent ones")
    who: Principal = request["principal"]
    record = await alerts.acknowledge(state.client, alert, who.name, body.comment)
    log.info("alert acknowledged", alert=alert, by=who.name)
    return web.json_response({"id": alert, "acknowledged": record})


def _delivery(record: deliveries.Delivery) -> dict[str, Any]:
    return {"id": record.id, "kind": record.kind, "channel": record.channel,
            "state": _shown_state(record), "attempts": record.attempts,
            "rule": record.rule or None, "feed": record.feed, "title": record.title,
            "created": record.created, "last_error": record.last_error,
            "last_attempt": record.last_attempt, "next_at": record.next_at,
            "delivered_at": record.delivered_at, "silenced_by": record.silenced_by}


def _shown_state(record: deliveries.Delivery) -> str:
    return "retrying" if record.state == "queued" and record.attempts > 0 else record.state


async def delivery_list(request: web.Request) -> web.Response:
    """GET /deliveries?state=S&limit=N: recent deliveries (dead letters with `state=dead`)."""
    wanted = request.query.get("state")
    if wanted is not None and wanted not in STATES:
        raise Invalid(f"state must be one of {', '.join(STATES)}")
    limit = _limit(request, 100, 1000)
    client = request.app[STATE].client
    if wanted == "dead":
        found = await deliveries.dead(client, limit)
    else:
        state = "queued" if wanted == "retrying" else wanted
        found = await deliveries.recent(client, limit * (3 if wanted == "retrying" else 1),
                                        state=state)
        found = [r for r in found if wanted != "retrying" or r.attempts > 0][:limit]
    return web.json_response({"deliveries": [_delivery(r) for r in found]})


async def delivery_retry(request: web.Request) -> web.Response:
    """POST /deliveries/{id}/retry: queue a dead delivery again (409 if it is not dead)."""
    delivery_id = request.match_info["id"]
    client = request.app[STATE].client
    if not await client.exists(keys.delivery(delivery_id)):
        raise web.HTTPNotFound(text="no such delivery")
    if not await deliveries.requeue(client, [delivery_id]):
        return problem(409, "Conflict", "only a dead delivery can be retried")
    log.info("delivery queued again from the console", delivery=delivery_id,
             by=request["principal"].name)
    return web.json_response({"id": delivery_id, "state": "queued"}, status=202)


async def silence_list(request: web.Request) -> web.Response:
    """GET /silences: active, pending and recently expired silences, newest first."""
    state = request.app[STATE]
    now = time.time()
    return web.json_response([s.api(now) for s in await state.silences.all(now)])


async def silence_create(request: web.Request) -> web.Response:
    """POST /silences: 201 {"id"}."""
    body: SilenceIn = await _body(request, SilenceIn)
    try:
        silence = new_silence(
            [SilenceMatcher(m.name, m.value, m.isRegex) for m in body.matchers],
            starts_at=_when(body.startsAt) if body.startsAt else None,
            ends_at=_when(body.endsAt), created_by=body.createdBy, comment=body.comment)
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    state = request.app[STATE]
    await state.silences.add(silence)
    log.info("silence created", silence=silence.id, by=request["principal"].name,
             created_by=silence.created_by)
    return web.json_response({"id": silence.id}, status=201)


async def silence_one(request: web.Request) -> web.Response:
    """GET /silences/{id}."""
    found = await request.app[STATE].silences.get(request.match_info["id"])
    if found is None:
        raise web.HTTPNotFound(text="no such silence")
    return web.json_response(found.api(time.time()))


async def silence_delete(request: web.Request) -> web.Response:
    """DELETE /silences/{id}: expire it now (alerts it held stay unsent)."""
    who: Principal = request["principal"]
    ended = await request.app[STATE].silences.expire(request.match_info["id"], who.name)
    if ended is None:
        raise web.HTTPNotFound(text="no such silence")
    log.info("silence expired", silence=ended.id, by=who.name)
    return web.json_response(ended.api(time.time()))


async def test_rule(request: web.Request) -> web.Response:
    """POST /test-rule: {"rule", "text" | "url", "title"?} -> {"matched", "explanation", …}."""
    body: TestRuleIn = await _body(request, TestRuleIn)
    state = request.app[STATE]
    if body.rule not in {r.name for r in state.config.rules}:
        raise web.HTTPNotFound(text=f"no rule {body.rule!r}")
    if (body.text is None) == (body.url is None):
        raise Invalid("give exactly one of text, url")
    try:
        found = await queries.test_entries(state.config, body.text or "", body.title,
                                           body.url or "")
    except LivewatchError as exc:
        return problem(422, "Unprocessable Content", f"cannot read {body.url}: {exc}")
    results = []
    for entry in found[:200]:
        verdict = explain(state.matcher, body.rule, entry)
        results.append({"entry": {"id": entry.id, "title": entry.title},
                        "matched": verdict.matched, "explanation": list(verdict.lines)})
    matched = any(r["matched"] for r in results)
    first = results[0] if results else {"explanation": []}
    return web.json_response({"rule": body.rule, "matched": matched,
                              "explanation": first["explanation"], "entries": results})


async def openapi(request: web.Request) -> web.Response:
    """GET /openapi.json."""
    return web.json_response(document(request.app[STATE].config.console.base_url))


def add_routes(app: web.Application) -> None:
    """The API's routes on `app` (which holds a `ConsoleState` under `STATE`)."""
    app.router.add_get("/api/v1/openapi.json", openapi)
    app.router.add_get("/api/v1/feeds", feeds)
    app.router.add_get("/api/v1/feeds/{name}/entries", feed_entries)
    app.router.add_get("/api/v1/alerts", alert_list)
    app.router.add_get("/api/v1/alerts/{id}", alert_one)
    app.router.add_post("/api/v1/alerts/{id}/ack", alert_ack)
    app.router.add_get("/api/v1/deliveries", delivery_list)
    app.router.add_post("/api/v1/deliveries/{id}/retry", delivery_retry)
    app.router.add_get("/api/v1/silences", silence_list)
    app.router.add_post("/api/v1/silences", silence_create)
    app.router.add_get("/api/v1/silences/{id}", silence_one)
    app.router.add_delete("/api/v1/silences/{id}", silence_delete)
    app.router.add_post("/api/v1/test-rule", test_rule)
