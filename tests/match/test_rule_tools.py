"""`livewatch test-rule` (exit codes, as subprocesses), `replay` and `group_across_feeds` on a
real redis-server with a local webhook receiver."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from servers import WebhookReceiver
from service import livewatch

from monitor.config.loader import parse_config
from monitor.config.models import Config
from monitor.core import keys
from monitor.core.models import Entry, Event
from monitor.ops.embedded import EmbeddedRedis
from workers.channels import ChannelSet
from workers.commands.replay import replay_events
from workers.consume.consumer import Consumer
from workers.match.explain import explain
from workers.match.matcher import Matcher

FEED_URL = "https://news.example.org/live"


def config_text(hook_url: str = "https://hooks.example.org/x",
                redis_url: str = "redis://127.0.0.1:1/0", window: str = "10m") -> str:
    return f"""
redis: {{url: "{redis_url}"}}
feeds:
  - {{name: summit, url: "{FEED_URL}"}}
  - {{name: wires, url: "https://wires.example.org/feed"}}
rules:
  - name: coalition
    any: ["coalition of the willing", "boots on the ground"]
    none: [football]
    channels: [hook]
  - name: troops
    query: '(troops OR soldiers) NEAR/3 Ukraine -football'
    channels: [hook]
  - name: wire
    any: [ceasefire]
    group_across_feeds: {window}
    channels: [hook]
channels:
  - {{name: hook, type: webhook, url: "{hook_url}"}}
workers: {{retry_schedule: [10ms], give_up_after: 100ms}}
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "livewatch.yaml"
    path.write_text(config_text())
    return path


@pytest.mark.parametrize(("args", "status", "says"), [
    (["coalition", "--text", "A <b>Coalition</b> of the\nwilling"], 0, "MATCH"),
    (["coalition", "--text", "the coalition of the unwilling"], 1, "not found"),
    (["coalition", "--text", "coalition of the willing at the football"], 1, "football"),
    (["troops", "--text", "Soldiers were sent to Ukraine"], 0, "NEAR/3"),
    (["troops", "--text", "Soldiers have now been sent to Ukraine"], 1, "no pair close"),
    (["nope", "--text", "x"], 2, "no rule 'nope'"),
    (["coalition"], 2, "exactly one of"),
    (["coalition", "--text", "x", "--file", "/etc/hostname"], 2, "exactly one of"),
])
def test_test_rule_exit_codes(config_file: Path, args: list[str], status: int,
                              says: str) -> None:
    result = livewatch("test-rule", "--config", str(config_file), *args)
    assert result.returncode == status, result.stdout + result.stderr
    assert says in result.stdout + result.stderr


def test_test_rule_bad_config_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(config_text().replace("'(troops OR soldiers)", "'(troops OR"))
    result = livewatch("test-rule", "--config", str(bad), "troops", "--text", "x")
    assert result.returncode == 2
    assert "rules[1].query" in result.stderr and "column" in result.stderr


def test_test_rule_file_feed_tests_each_entry(config_file: Path, tmp_path: Path) -> None:
    feed = tmp_path / "feed.xml"
    feed.write_text("""<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>
<item><guid>1</guid><title>One</title><description>Boots on the ground ruled out</description>
</item>
<item><guid>2</guid><title>Two</title><description>Nothing here</description></item>
</channel></rss>""")
    result = livewatch("test-rule", "--config", str(config_file), "coalition", "--file",
                       str(feed))
    assert result.returncode == 0, result.stderr
    assert "1 of 2 entries match" in result.stdout
    assert "[Boots on the ground]" in result.stdout


def test_explain_near_miss_and_field() -> None:
    config = parse_config(config_text())
    entry = Entry("1", None, "Summit", "Doubts about the coalition of the willingness")
    result = explain(Matcher(config.rules), "coalition", entry)
    assert not result.matched
    assert "only as part of longer words: 'coalition of the willingness' in text" in str(result)


# --- replay ----------------------------------------------------------------------------------

def event(text: str, feed: str = "summit", entry_id: str = "e1", title: str = "Live") -> Event:
    entry = Entry(id=entry_id, url=f"{FEED_URL}#{entry_id}", title=title, text=text)
    return Event(kind="new", feed=feed, feed_url=FEED_URL, entry=entry, version=entry.version,
                 detected_at=time.time())


async def add(client: aioredis.Redis, ev: Event, age: float = 0.0) -> None:
    ms = int((time.time() - age) * 1000)
    await client.xadd(keys.EVENTS_STREAM, {"event": ev.encode()}, id=f"{ms}-*")


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def consumer(config: Config, client: aioredis.Redis, http: httpx.AsyncClient) -> Consumer:
    return Consumer(config, client, ChannelSet(http).update(config.channels), name="test")


async def test_replay_prints_matches_in_the_window(redis_client: aioredis.Redis) -> None:
    config = parse_config(config_text())
    await add(redis_client, event("old coalition of the willing", entry_id="old"), age=8 * 3600)
    await add(redis_client, event("boots on the ground again", entry_id="a"), age=3600)
    await add(redis_client, event("nothing to see", entry_id="b"), age=60)
    await redis_client.xadd(keys.EVENTS_STREAM, {"event": "{broken"})
    lines: list[str] = []
    result = await replay_events(config, redis_client, 6 * 3600, echo=lines.append)
    assert (result.events, result.alerts, result.undecodable) == (2, 1, 1)
    assert result.note is None
    assert "rule coalition" in lines[0] and "boots on the ground again" in lines[1]


async def test_replay_says_when_the_window_was_trimmed(redis_client: aioredis.Redis) -> None:
    config = parse_config(config_text())
    for age in (5 * 3600, 4 * 3600, 60):
        await add(redis_client, event("coalition of the willing", entry_id=str(age)), age=age)
    await redis_client.xtrim(keys.EVENTS_STREAM, maxlen=1, approximate=False)
    result = await replay_events(config, redis_client, 6 * 3600, echo=lambda _: None)
    assert result.note is not None and "trimmed" in result.note
    assert result.events == 1
    short = await replay_events(config, redis_client, 30, echo=lambda _: None)
    assert short.note is None  # starts after the oldest kept event: nothing of it is missing


async def test_replay_send_delivers_once(redis_client: aioredis.Redis, http: httpx.AsyncClient,
                                         webhook_receiver: WebhookReceiver) -> None:
    config = parse_config(config_text(webhook_receiver.url("/hook")))
    await add(redis_client, event("coalition of the willing", entry_id="x"), age=120)
    sender = consumer(config, redis_client, http)
    first = await replay_events(config, redis_client, 3600, send=True, echo=lambda _: None,
                                consumer=sender)
    again = await replay_events(config, redis_client, 3600, send=True, echo=lambda _: None,
                                consumer=sender)
    assert first.alerts == again.alerts == 1
    assert [b["rule"] for b in webhook_receiver.bodies()] == ["coalition"]  # delivered once


def test_replay_command(redis_server: EmbeddedRedis, tmp_path: Path) -> None:
    async def seed() -> None:
        client: aioredis.Redis = aioredis.from_url(redis_server.url, decode_responses=True)
        await client.flushdb()
        await add(client, event("Soldiers sent to Ukraine", entry_id="t"), age=300)
        await client.aclose()

    asyncio.run(seed())
    path = tmp_path / "c.yaml"
    path.write_text(config_text(redis_url=redis_server.url))
    result = livewatch("replay", "--config", str(path), "--since", "1h", "--rule", "troops")
    assert result.returncode == 0, result.stderr
    assert "rule troops" in result.stdout and "1 events in the last 1h; 1 would alert" \
        in result.stdout
    bad = livewatch("replay", "--config", str(path), "--since", "soon")
    assert bad.returncode == 2


# --- group_across_feeds ----------------------------------------------------------------------

async def test_group_across_feeds_alerts_once_listing_sources(
        redis_client: aioredis.Redis, http: httpx.AsyncClient,
        webhook_receiver: WebhookReceiver) -> None:
    config = parse_config(config_text(webhook_receiver.url("/hook"), window="1s"))
    worker = consumer(config, redis_client, http)
    text = "A ceasefire takes effect at noon, officials said."
    lead = event(text, feed="summit", entry_id="s1", title="Summit live")
    copy = event(text, feed="wires", entry_id="w9", title="WIRE: ceasefire at noon")
    await worker.handle(lead)
    await worker.handle(copy)  # the same text from another feed: folded, not alerted
    await worker.handle(lead)  # re-handling the lead: still the lead, queued once
    await worker.outbox.drain()
    bodies = webhook_receiver.bodies()
    assert [(b["feed"]["name"], b["sources"]) for b in bodies] == [("summit", ["summit"])]
    other = event("A ceasefire is rejected.", feed="wires", entry_id="w10")
    await worker.handle(other)  # different text: its own alert
    await worker.outbox.drain()
    assert len(webhook_receiver.bodies()) == 2
    members = await redis_client.smembers(keys.group_sources("wire", "x"))
    assert members == set()
    ttl = await redis_client.pttl(keys.group_lead("wire", _content(lead)))
    assert 0 < ttl <= 1000
    await asyncio.sleep(1.1)  # the window is over: a later copy alerts again
    await worker.handle(copy)
    await worker.outbox.drain()
    assert [b["feed"]["name"] for b in webhook_receiver.bodies()] == ["summit", "wires", "wires"]


async def test_group_lead_lists_copies_known_when_re_sent(
        redis_client: aioredis.Redis, http: httpx.AsyncClient,
        webhook_receiver: WebhookReceiver) -> None:
    config = parse_config(config_text(webhook_receiver.url("/hook")))
    worker = consumer(config, redis_client, http)
    text = "Ceasefire talks resume in Doha."
    lead, copy = event(text, "summit", "s1"), event(text, "wires", "w1")
    admitted = await worker.groups.admit(lead, worker.matcher.alerts_for(lead))
    assert [s for _, s in admitted] == [("summit",)]
    assert await worker.groups.admit(copy, worker.matcher.alerts_for(copy)) == []
    again = await worker.groups.admit(lead, worker.matcher.alerts_for(lead))
    assert [s for _, s in again] == [("summit", "wires")]
    ungrouped = event("coalition of the willing", "wires", "w2")
    assert [(m.rule, s) for m, s in await worker.groups.admit(
        ungrouped, worker.matcher.alerts_for(ungrouped))] == [("coalition", ())]


def _content(ev: Event) -> str:
    from workers.consume.grouping import group_content

    return group_content(ev)


def test_email_and_webhook_highlight_query_terms() -> None:
    from workers.render.alert import email_html, make_alert, webhook_payload

    config = parse_config(config_text())
    ev = event("Soldiers were sent to Ukraine on Tuesday.", title="Troops latest")
    (match,) = Matcher(config.rules).alerts_for(ev)
    alert = make_alert(ev, match, "hook")
    body = email_html(alert)
    assert "<mark>Soldiers</mark> were sent to <mark>Ukraine</mark>" in body
    assert [(m["term"], m["snippet"]) for m in webhook_payload(alert)["matches"]] == [
        ("troops", "Troops latest"),  # title hits first
        ("soldiers", "Soldiers were sent to Ukraine on Tuesday."),
        ("Ukraine", "Soldiers were sent to Ukraine on Tuesday.")]
