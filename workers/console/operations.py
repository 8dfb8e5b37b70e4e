"""The console's operations pages: feeds and their recent entries, rules and the rule test,
deliveries (queued, retrying, dead letters, with retry) and silences (list, create, expire).
Changes are admins' form posts (`workers.console.frame.page(change=True)`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import structlog
from aiohttp import web

from monitor.config.models import Config
from monitor.config.values import parse_duration
from monitor.core.errors import LivewatchError
from monitor.ops.status import collect
from workers.console.frame import Page, back, page
from workers.console.queries import feed_entries, test_entries
from workers.match.explain import explain
from workers.match.matcher import Matcher
from workers.outbox import deliveries
from workers.outbox.silences import LABELS, SilenceMatcher, new_silence

log = structlog.get_logger("livewatch.console")

#: Deliveries per section of the deliveries page.
LISTED = 100
#: Largest pasted text a rule test takes (the API's limit).
MAX_TEST_TEXT = 200_000


def health(feed: dict[str, Any]) -> str:
    """A feed's health in a word: disabled, failing, waiting (never polled) or ok."""
    if not feed["enabled"]:
        return "disabled"
    if feed["consecutive_failures"]:
        return "failing"
    return "waiting" if feed["last_poll"] is None else "ok"


@page()
async def feeds_page(ctx: Page) -> web.StreamResponse:
    """GET /console/feeds: every feed's health."""
    report = await collect(ctx.state.client, ctx.state.config)
    return ctx.render("feeds.html", feeds=report["feeds"], health=health, now=time.time())


@page()
async def feed_page(ctx: Page) -> web.StreamResponse:
    """GET /console/feeds/{name}: a feed's recent entries and which rules matched each."""
    name = ctx.request.match_info["name"]
    feed = next((f for f in ctx.state.config.feeds if f.name == name), None)
    if feed is None:
        return ctx.fail(404, "No such feed", f"No feed named {name!r} is configured.")
    found = await feed_entries(ctx.state.client, ctx.state.matcher, name)
    return ctx.render("feed.html", feed=feed, entries=found)


@dataclass(frozen=True, slots=True)
class TestResult:
    """A rule test's verdict: MATCH when any entry matches; each entry's explanation."""

    rule: str
    matched: bool
    entries: list[tuple[str, bool, tuple[str, ...]]]
    error: str = ""


async def run_test(config: Config, matcher: Matcher, rule: str, text: str, title: str,
                   url: str) -> TestResult:
    """Test `rule` on a pasted text (and title) or on the entries read from `url`."""
    if rule not in {r.name for r in config.rules}:
        return TestResult(rule, False, [], f"No rule named {rule!r}.")
    if bool(text.strip()) == bool(url.strip()):
        return TestResult(rule, False, [], "Paste a text or give a URL (one of the two).")
    if len(text) > MAX_TEST_TEXT:
        return TestResult(rule, False, [], "The text is too long.")
    try:
        found = await test_entries(config, text, title, url)
    except LivewatchError as exc:
        return TestResult(rule, False, [], f"Cannot read {url.strip()}: {exc}")
    results = []
    for entry in found[:200]:
        verdict = explain(matcher, rule, entry)
        results.append((entry.title or entry.id, verdict.matched, verdict.lines))
    return TestResult(rule, any(m for _, m, _ in results), results)


def _rules(ctx: Page, result: TestResult | None, status: int = 200) -> web.Response:
    form = ctx.form
    return ctx.render("rules.html", status, rules=ctx.state.config.rules, result=result,
                      chosen=form.get("rule", ""), text=form.get("text", ""),
                      title=form.get("title", ""), url=form.get("url", ""))


@page()
async def rules_page(ctx: Page) -> web.StreamResponse:
    """GET /console/rules: the configured rules and the test form."""
    return _rules(ctx, None)


@page()
async def rules_test(ctx: Page) -> web.StreamResponse:
    """POST /console/rules/test: explain a rule on a pasted text or a URL (read tokens too)."""
    form = ctx.form
    result = await run_test(ctx.state.config, ctx.state.matcher, form.get("rule", ""),
                            form.get("text", ""), form.get("title", ""), form.get("url", ""))
    return _rules(ctx, result, 400 if result.error else 200)


@page()
async def deliveries_page(ctx: Page) -> web.StreamResponse:
    """GET /console/deliveries: queued (and sending), retrying, dead letters."""
    client = ctx.state.client
    queued = await deliveries.recent(client, LISTED * 2, state="queued")
    sending = await deliveries.recent(client, LISTED, state="sending")
    dead = await deliveries.dead(client, LISTED)
    fresh = [d for d in queued if d.attempts == 0]
    retrying = [d for d in queued if d.attempts > 0]
    return ctx.render("deliveries.html", queued=(sending + fresh)[:LISTED],
                      retrying=retrying[:LISTED], dead=dead, now=time.time())


@page(change=True)
async def delivery_retry(ctx: Page) -> web.StreamResponse:
    """POST /console/deliveries/{id}/retry: queue a dead delivery again."""
    delivery_id = ctx.request.match_info["id"]
    count = await deliveries.requeue(ctx.state.client, [delivery_id])
    log.info("delivery queued again from the console", delivery=delivery_id, count=count,
             by=ctx.who.name)
    return back("/console/deliveries", "retried" if count else "retry-none")


@page()
async def silences_page(ctx: Page) -> web.StreamResponse:
    """GET /console/silences: every silence, and the form to create one."""
    now = time.time()
    found = await ctx.state.silences.all(now)
    return ctx.render("silences.html", silences=found, now=now, error="",
                      values={"duration": "1h"}, labels=LABELS)


def _ends(form: dict[str, str], now: float) -> float:
    """The end a silence form asks for: `ends` (UTC, `YYYY-MM-DDTHH:MM`) else `duration`."""
    if form.get("ends", "").strip():
        try:
            ends = datetime.fromisoformat(form["ends"].strip())
        except ValueError:
            raise ValueError("the end time must look like 2026-12-08T10:00") from None
        return (ends if ends.tzinfo else ends.replace(tzinfo=UTC)).timestamp()
    return now + float(cast(float, parse_duration(form.get("duration", "").strip() or "1h")))


@page(change=True)
async def silence_create(ctx: Page) -> web.StreamResponse:
    """POST /console/silences: a silence of the matchers given (globs, or regular expressions
    where ticked), until an end time or for a duration, made by the signed-in token."""
    form, now = ctx.form, time.time()
    try:
        matchers = [SilenceMatcher(label, form[label].strip(), bool(form.get(f"{label}_regex")))
                    for label in LABELS if form.get(label, "").strip()]
        silence = new_silence(matchers, ends_at=_ends(form, now), created_by=ctx.who.name,
                              comment=form.get("comment", ""), now=now)
    except ValueError as exc:
        found = await ctx.state.silences.all(now)
        return ctx.render("silences.html", 400, silences=found, now=now, error=str(exc),
                          values=form, labels=LABELS)
    await ctx.state.silences.add(silence)
    log.info("silence created", silence=silence.id, by=ctx.who.name)
    return back("/console/silences", "silenced")


@page(change=True)
async def silence_expire(ctx: Page) -> web.StreamResponse:
    """POST /console/silences/{id}/expire: end it now."""
    ended = await ctx.state.silences.expire(ctx.request.match_info["id"], ctx.who.name)
    if ended is None:
        return ctx.fail(404, "No such silence")
    log.info("silence expired", silence=ended.id, by=ctx.who.name)
    return back("/console/silences", "expired")


def add_routes(router: web.UrlDispatcher) -> None:
    """The operations pages' routes."""
    router.add_get("/console/feeds", feeds_page)
    router.add_get("/console/feeds/{name}", feed_page)
    router.add_get("/console/rules", rules_page)
    router.add_post("/console/rules/test", rules_test)
    router.add_get("/console/deliveries", deliveries_page)
    router.add_post("/console/deliveries/{id}/retry", delivery_retry)
    router.add_get("/console/silences", silences_page)
    router.add_post("/console/silences", silence_create)
    router.add_post("/console/silences/{id}/expire", silence_expire)
