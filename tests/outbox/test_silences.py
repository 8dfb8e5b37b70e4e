"""Silences: matching (table-driven, pure), and in the outbox on a real redis-server with a
real webhook receiver: a silenced alert is recorded with its silence and never sent, notices
are never silenced, and ending a silence sends nothing retroactively."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio as aioredis
from servers import WebhookReceiver

from monitor.config.loader import parse_config
from monitor.config.models import Config
from monitor.core.models import Entry, Event, Notice
from workers.channels import ChannelSet
from workers.consume.consumer import Consumer
from workers.outbox import deliveries
from workers.outbox.silences import Silence, SilenceMatcher, Silences, new_silence

FEED_URL = "https://news.example.org/live/summit"
NOW = 1_800_000_000.0
LABELS = {"rule": "coalition", "feed": "summit-live", "channel": "desk-slack"}


@pytest.mark.parametrize(("matchers", "holds"), [
    ([("rule", "coalition", False)], True),
    ([("rule", "coal*", False)], True),
    ([("rule", "Coalition", False)], False),  # globs are case-sensitive, as names are
    ([("rule", "coalition", False), ("feed", "summit-*", False)], True),
    ([("rule", "coalition", False), ("feed", "market", False)], False),  # all must match
    ([("channel", "desk-?lack", False)], True),
    ([("channel", "desk-[st]*", False)], True),
    ([("feed", "summit", True)], False),  # a regex matches the whole value
    ([("feed", "summit-.*", True)], True),
    ([("rule", "*", False)], True),
])
def test_matchers(matchers: list[tuple[str, str, bool]], holds: bool) -> None:
    silence = new_silence([SilenceMatcher(n, v, r) for n, v, r in matchers],  # type: ignore[arg-type]
                          ends_at=NOW + 60, created_by="desk", comment="c", now=NOW)
    assert silence.holds(LABELS, NOW + 1) is holds


def test_a_silence_holds_only_between_its_start_and_end() -> None:
    silence = new_silence([SilenceMatcher("rule", "coalition")], starts_at=NOW + 10,
                          ends_at=NOW + 20, created_by="desk", comment="c", now=NOW)
    assert [silence.state(NOW + t) for t in (0, 10, 19.9, 20)] == \
        ["pending", "active", "active", "expired"]
    assert [silence.holds(LABELS, NOW + t) for t in (0, 15, 20)] == [False, True, False]


@pytest.mark.parametrize(("kwargs", "reason"), [
    ({"ends_at": NOW - 1}, "past"),
    ({"ends_at": NOW + 5, "starts_at": NOW + 10}, "after startsAt"),
    ({"ends_at": NOW + 5, "comment": " "}, "required"),
])
def test_silences_that_would_never_hold_are_refused(kwargs: dict[str, object],
                                                    reason: str) -> None:
    base: dict[str, object] = {"created_by": "desk", "comment": "c", "now": NOW, **kwargs}
    with pytest.raises(ValueError, match=reason):
        new_silence([SilenceMatcher("rule", "x")], **base)  # type: ignore[arg-type]


@pytest.mark.parametrize(("name", "value", "regex", "reason"), [
    ("entry", "x", False, "one of"), ("rule", "", False, "1 to"),
    ("rule", "(", True, "bad regular expression")])
def test_bad_matchers(name: str, value: str, regex: bool, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        SilenceMatcher(name, value, regex)  # type: ignore[arg-type]


def test_encode_round_trip() -> None:
    silence = new_silence([SilenceMatcher("feed", "s.*", True)], ends_at=NOW + 60,
                          created_by="desk", comment="über", now=NOW)
    assert Silence.decode(silence.encode()) == silence
    assert silence.api(NOW)["matchers"] == [{"name": "feed", "value": "s.*", "isRegex": True}]
    assert silence.api(NOW)["endsAt"] == "2027-01-15T08:01:00Z"


def config(hook: WebhookReceiver) -> Config:
    return parse_config(f"""
feeds: [{{name: summit, url: "{FEED_URL}"}}, {{name: market, url: "{FEED_URL}/m"}}]
rules: [{{name: coalition, any: ["coalition of the willing"], channels: [hook, ops]}}]
channels:
  - {{name: hook, type: webhook, url: "{hook.url('/hook')}"}}
  - {{name: ops, type: webhook, url: "{hook.url('/ops')}"}}
operator: {{channels: [ops]}}
workers: {{retry_schedule: [50ms]}}
""")


def event(feed: str, entry_id: str) -> Event:
    entry = Entry(id=entry_id, url=f"{FEED_URL}#{entry_id}", title=f"Post {entry_id}",
                  text="A coalition of the willing meets.")
    return Event(kind="new", feed=feed, feed_url=FEED_URL, entry=entry, version=entry.version,
                 detected_at=time.time())


@pytest.fixture
async def worker(redis_client: aioredis.Redis,
                 webhook_receiver: WebhookReceiver) -> AsyncIterator[Consumer]:
    async with httpx.AsyncClient() as http:
        cfg = config(webhook_receiver)
        yield Consumer(cfg, redis_client, ChannelSet(http).update(cfg.channels), name="w1")


def sent(hook: WebhookReceiver) -> list[tuple[str, str]]:
    return sorted((r.path, r.json().get("entry", {}).get("id", r.json()["type"]))
                  for r in hook.received)


async def test_silenced_alerts_are_recorded_not_sent_and_nothing_comes_back(
        redis_client: aioredis.Redis, webhook_receiver: WebhookReceiver,
        worker: Consumer) -> None:
    silences = Silences(redis_client)
    mute = new_silence([SilenceMatcher("feed", "summit"), SilenceMatcher("channel", "hook")],
                       ends_at=time.time() + 3600, created_by="desk", comment="noisy")
    await silences.add(mute)

    await worker.handle(event("summit", "s1"))  # hook silenced, ops not
    await worker.handle(event("market", "m1"))  # neither
    await worker.handle_notice(Notice("failing", "summit", "summit keeps failing", time.time()))
    await worker.outbox.run_until_idle(timeout=5)
    assert sent(webhook_receiver) == [("/hook", "m1"), ("/ops", "m1"), ("/ops", "notice"),
                                      ("/ops", "s1")]
    held = [d for d in await deliveries.recent(redis_client) if d.state == "silenced"]
    assert [(d.feed, d.channel, d.silenced_by) for d in held] == [("summit", "hook", mute.id)]

    # The same event handled again (a re-claim) queues nothing twice and sends nothing.
    await worker.handle(event("summit", "s1"))
    expired = await silences.expire(mute.id, "desk")
    assert expired is not None and expired.state(time.time()) == "expired"
    assert expired.expired_by == "desk"
    await worker.handle(event("summit", "s1"))
    await worker.outbox.run_until_idle(timeout=5)
    assert len(webhook_receiver.received) == 4  # the held one stays unsent
    await worker.handle(event("summit", "s2"))
    await worker.outbox.run_until_idle(timeout=5)
    assert ("/hook", "s2") in sent(webhook_receiver)
    assert ("/hook", "s1") not in sent(webhook_receiver)
    assert [s.id for s in await silences.all()] == [mute.id]
