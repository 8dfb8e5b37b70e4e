"""The console's pages in a real browser: headless Chromium (Debian's /usr/bin/chromium, driven
by playwright) against a real console server and a private redis-server; alerts produced as
the service makes them (see `test_pages.produce`).

With LW_SCREENSHOTS=DIR the tests save screenshots of the main pages there (docs/console/ has
the committed ones).
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from servers import WebhookReceiver
from test_pages import ADMIN, FEED_URL, MATCHING, console_config, produce, serving

from monitor.config.models import Config
from monitor.poll.role import make_state
from workers.outbox import deliveries
from workers.outbox.silences import SilenceMatcher, Silences, new_silence

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason=f"browser tests need Chromium at {CHROMIUM}")
playwright_api = pytest.importorskip("playwright.async_api")
Browser = playwright_api.Browser
Page = playwright_api.Page
expect = playwright_api.expect

#: How long the browser may take to show an alert once its delivery is queued.
ARRIVAL = 3.0


def screenshot_dir() -> Path | None:
    raw = os.environ.get("LW_SCREENSHOTS")
    if not raw:
        return None
    path = Path(raw)
    path.mkdir(parents=True, exist_ok=True)
    return path


async def snap(page: Page, name: str, *, full: bool = True) -> None:
    """Save a screenshot of `page` as NAME.png when LW_SCREENSHOTS is set."""
    where = screenshot_dir()
    if where is not None:
        await page.screenshot(path=str(where / f"{name}.png"), full_page=full,
                              animations="disabled")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with playwright_api.async_playwright() as driver:
        launched = await driver.chromium.launch(executable_path=str(CHROMIUM),
                                                args=["--no-sandbox"])
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def config(webhook_receiver: WebhookReceiver) -> Config:
    return console_config(webhook_receiver)


@pytest.fixture
async def console(config: Config, redis_client: aioredis.Redis) -> AsyncIterator[str]:
    async with serving(config, redis_client) as base:
        yield base


async def signed_in(browser: Browser, base: str, *, phone: bool = False) -> Page:
    """A new page signed in through the sign-in form (CSP violations fail the test)."""
    if phone:
        context = await browser.new_context(viewport={"width": 390, "height": 844},
                                            device_scale_factor=2, is_mobile=True,
                                            has_touch=True)
    else:
        context = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.problems = problems  # type: ignore[attr-defined]
    await page.goto(f"{base}/console/")
    await expect(page).to_have_url(f"{base}/console/login?next=%2Fconsole%2F")
    await page.get_by_label("Access token").fill(ADMIN)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{base}/console/")
    return page


def no_problems(page: Page) -> None:
    problems = page.problems  # type: ignore[attr-defined]
    assert problems == [], f"browser console errors: {problems}"


async def test_sign_in_and_watch_an_alert_arrive(
        browser: Browser, console: str, config: Config, redis_client: aioredis.Redis,
        http: httpx.AsyncClient) -> None:
    await produce(redis_client, config, http, entry_id="e0",
                  title="Leaders meet in Kyiv ahead of the summit",
                  text=MATCHING + " Talks continue.")
    page = await signed_in(browser, console)
    await expect(page.get_by_role("heading", name="Alerts", level=1)).to_be_visible()
    await expect(page.locator("#wall > li")).to_have_count(1)
    await expect(page.locator("#wall-status")).to_have_text("Live")

    await produce(redis_client, config, http, entry_id="e1",
                  title="Coalition of the willing takes shape, ministers say")
    queued = time.monotonic()
    row = page.locator("#wall > li").first
    await expect(row).to_contain_text("Coalition of the willing takes shape",
                                      timeout=ARRIVAL * 1000)
    arrived = time.monotonic() - queued
    assert arrived < ARRIVAL, f"the alert took {arrived:.2f} s to show"
    await expect(page.locator("#wall > li")).to_have_count(2)
    await expect(row).to_contain_text("hook: delivered")
    link = row.get_by_role("link", name="Coalition of the willing takes shape, ministers say",
                           exact=True)
    assert await link.get_attribute("href") == f"{FEED_URL}#e1"

    # an alert held by a silence shows live too, saying which silence held it
    silence = new_silence([SilenceMatcher("rule", "coalition")], ends_at=time.time() + 600,
                          created_by="alice", comment="desk covers the summit")
    await Silences(redis_client).add(silence)
    await produce(redis_client, config, http, entry_id="e2",
                  title="Coalition talks resume tomorrow in Brussels")
    held = page.locator("#wall > li").first
    await expect(held).to_contain_text("Coalition talks resume tomorrow",
                                       timeout=ARRIVAL * 1000)
    await expect(held).to_contain_text("hook: silenced")
    await expect(held).to_contain_text(f"Silenced by {silence.id[:8]}")
    await expect(page.locator("#wall > li")).to_have_count(3)
    await snap(page, "wall")
    row = page.locator("#wall > li").nth(1)

    # one alert's page: acknowledge it; the wall shows the change live
    await row.get_by_role("link", name="Details").click()
    await page.get_by_label("Comment (optional)").fill("on it")
    await page.get_by_role("button", name="Acknowledge").click()
    await expect(page.get_by_role("status")).to_have_text("Alert acknowledged.")
    await expect(page.locator("#ack-state")).to_contain_text("by alice")
    await snap(page, "alert")
    await page.get_by_role("link", name="Alerts").click()
    await expect(page.locator("#wall > li").nth(1)).to_contain_text("Acknowledged by alice")
    no_problems(page)

    phone = await signed_in(browser, console, phone=True)
    await expect(phone.locator("#wall > li")).to_have_count(3)
    await expect(phone.locator("#wall-status")).to_have_text("Live")
    width = await phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the wall is {width}px wide on a 390px phone"
    await snap(phone, "wall-phone", full=False)
    no_problems(phone)


async def test_create_and_expire_a_silence(browser: Browser, console: str,
                                           redis_client: aioredis.Redis) -> None:
    page = await signed_in(browser, console)
    await page.get_by_role("link", name="Silences").click()
    await page.get_by_label("Rule").fill("coalition")
    await page.get_by_label("Feed").fill("sum*")
    await page.get_by_label("For (e.g. 30m, 2h, 1d)").fill("2h")
    await page.get_by_label("Why").fill("Summit coverage handled by the desk")
    await page.get_by_role("button", name="Create silence").click()
    await expect(page.get_by_role("status")).to_have_text("Silence created.")
    (silence,) = await Silences(redis_client).all()
    row = page.locator(f"#s-{silence.id}")
    await expect(row).to_contain_text("Summit coverage handled by the desk")
    await expect(row).to_contain_text("active")
    await expect(row).to_contain_text("rule = coalition")
    await expect(row).to_contain_text("alice")
    await snap(page, "silences")
    await row.get_by_role("button", name="Expire").click()
    await expect(page.get_by_role("status")).to_have_text("Silence expired.")
    await expect(page.locator(f"#s-{silence.id}")).to_contain_text("expired by alice")
    no_problems(page)


async def test_retry_a_dead_letter(browser: Browser, console: str, config: Config,
                                   redis_client: aioredis.Redis, http: httpx.AsyncClient,
                                   webhook_receiver: WebhookReceiver) -> None:
    webhook_receiver.responder = lambda _: (400, {})
    await produce(redis_client, config, http, entry_id="e1",
                  title="Coalition of the willing: what we know")
    (dead,) = await deliveries.dead(redis_client)
    page = await signed_in(browser, console)
    await page.get_by_role("link", name="Deliveries").click()
    dead_row = page.locator(f'#dead tr[data-delivery="{dead.id}"]')
    await expect(dead_row).to_contain_text("HTTP 400")
    await snap(page, "deliveries")
    await dead_row.get_by_role("button", name="Retry").click()
    await expect(page.get_by_role("status")).to_have_text("Dead deliveries queued again.")
    await expect(page.locator(f'#queued tr[data-delivery="{dead.id}"]')).to_be_visible()
    await expect(page.locator("#dead")).to_contain_text("None.")
    assert await deliveries.dead(redis_client) == []
    no_problems(page)


async def test_rule_test_shows_match(browser: Browser, console: str) -> None:
    page = await signed_in(browser, console)
    await page.get_by_role("link", name="Rules").click()
    await page.get_by_label("Rule", exact=True).select_option("coalition")
    await page.get_by_label("Title (optional)").fill("Summit live")
    await page.get_by_label("Text").fill(MATCHING)
    await page.get_by_role("button", name="Test").click()
    await expect(page.locator(".verdict")).to_have_text("MATCH")
    await expect(page.locator(".explain").first).to_contain_text("coalition of the willing")
    await snap(page, "rules-test")
    await page.get_by_label("Text").fill("The coalition of the willing football team won.")
    await page.get_by_role("button", name="Test").click()
    await expect(page.locator(".verdict")).to_have_text("no match")
    no_problems(page)


async def test_feeds_page(browser: Browser, console: str, config: Config,
                          redis_client: aioredis.Redis, http: httpx.AsyncClient) -> None:
    await produce(redis_client, config, http, entry_id="e1", title="Coalition forms")
    await make_state(config, redis_client).record_failure("quiet", "HTTP 503 from upstream")
    page = await signed_in(browser, console)
    await page.get_by_role("link", name="Feeds").click()
    summit = page.locator("tr", has=page.get_by_role("link", name="summit"))
    await expect(summit).to_contain_text("ok")
    quiet = page.locator("tr", has=page.get_by_role("link", name="quiet"))
    await expect(quiet).to_contain_text("failing")
    await expect(quiet).to_contain_text("HTTP 503 from upstream")
    await snap(page, "feeds")
    await summit.get_by_role("link", name="summit").click()
    await expect(page.get_by_role("heading", name="Feed summit")).to_be_visible()
    await expect(page.locator(".entries li").first).to_contain_text("coalition")
    no_problems(page)
