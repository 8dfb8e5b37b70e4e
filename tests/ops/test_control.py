"""Operations pieces in process: `http.listen` validation, the endpoint's answers, reload
(validation, fixed sections, scheduler reconciliation, consumer swap) and `status` data."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from service import record_success

from monitor.config.loader import parse_config
from monitor.config.models import Config
from monitor.core import keys
from monitor.core.errors import ConfigError
from monitor.fetch.client import Fetcher
from monitor.ops.control import Control, describe_changes
from monitor.ops.embedded import free_port
from monitor.ops.endpoints import ops_endpoint
from monitor.ops.status import collect, redact
from monitor.poll.poller import Poller
from monitor.poll.role import make_state
from monitor.poll.scheduler import FeedScheduler
from workers.channels import ChannelSet
from workers.consume.consumer import Consumer


def config_text(*, feeds: str = "a, b", rules: str = "", listen: str | None = None,
                redis: str = "redis://127.0.0.1:1/0", interval: str = "1h") -> str:
    feed_lines = "\n".join(f'  - {{name: {n.strip()}, url: "http://127.0.0.1:9/{n.strip()}"}}'
                           for n in feeds.split(","))
    http = f'http: {{listen: "{listen}"}}' if listen else ""
    return f"""
redis: {{url: "{redis}"}}
{http}
defaults: {{interval: {interval}}}
feeds:
{feed_lines}
rules:
  - {{name: r1, any: [alpha], channels: [hook]}}
{rules}
channels:
  - {{name: hook, type: webhook, url: "https://hooks.example.org/x"}}
"""


def config(**kwargs: str) -> Config:
    return parse_config(config_text(**kwargs))  # type: ignore[arg-type]


@pytest.mark.parametrize("listen, address", [
    ("127.0.0.1:9108", ("127.0.0.1", 9108)), ("0.0.0.0:80", ("0.0.0.0", 80)),
    ("[::1]:9108", ("::1", 9108)), ("localhost:65535", ("localhost", 65535))])
def test_http_listen_parses(listen: str, address: tuple[str, int]) -> None:
    assert config(listen=listen).http.address == address


@pytest.mark.parametrize("listen", ["9108", ":9108", "host:0", "host:70000", "host:x",
                                    "[::1:9108"])
def test_http_listen_is_validated(listen: str) -> None:
    with pytest.raises(ConfigError) as info:
        config(listen=listen)
    assert [p.location for p in info.value.problems] == ["http.listen"]


def test_http_is_off_by_default() -> None:
    assert config().http.address is None


def test_describe_changes() -> None:
    old = config()
    new = config(feeds="b, c", rules="  - {name: r2, any: [beta], channels: [hook]}",
                 interval="1h")
    assert describe_changes(old, new) == {"feeds_added": ["c"], "feeds_removed": ["a"],
                                          "rules_added": ["r2"]}


async def test_reload_rejects_an_invalid_file_and_keeps_fixed_sections(tmp_path: Path) -> None:
    path = tmp_path / "lw.yaml"
    path.write_text(config_text(listen="127.0.0.1:9108"))
    control = Control(parse_config(path.read_text()), path)
    seen: list[Config] = []

    async def reloader(new: Config) -> None:
        seen.append(new)

    control.on_reload(reloader)
    path.write_text(config_text() + "unknown: 1\n")
    assert await control.reload() is False and seen == []

    path.write_text(config_text(feeds="a, b, c", redis="redis://elsewhere:6379/0",
                                listen="127.0.0.1:9999"))
    assert await control.reload() is True
    assert [f.name for f in seen[0].feeds] == ["a", "b", "c"]
    assert seen[0].redis.url == "redis://127.0.0.1:1/0"  # needs a restart: kept
    assert control.config.http.listen == "127.0.0.1:9108"


async def test_endpoint_answers(redis_client: aioredis.Redis) -> None:
    cfg = config(listen=f"127.0.0.1:{free_port()}")
    control = Control(cfg)
    broken = {"on": False}
    control.add_check("thing", lambda: "broken" if broken["on"] else None)
    base = f"http://{cfg.http.listen}"
    async with ops_endpoint(control, redis_client), httpx.AsyncClient() as http:
        assert (await http.get(base + "/healthz")).status_code == 200
        assert (await http.get(base + "/readyz")).json() == {"status": "ready"}
        broken["on"] = True
        answer = await http.get(base + "/readyz")
        assert answer.status_code == 503
        assert answer.json() == {"status": "not ready", "reasons": ["thing: broken"]}
        metrics = (await http.get(base + "/metrics")).text
        assert "livewatch_feeds 2.0" in metrics and "livewatch_redis_up 1.0" in metrics
        assert (await http.get(base + "/nothing")).status_code == 404


async def test_endpoint_reports_redis_down() -> None:
    cfg = config(listen=f"127.0.0.1:{free_port()}")
    dead: aioredis.Redis = aioredis.from_url(f"redis://127.0.0.1:{free_port()}/0")
    async with ops_endpoint(Control(cfg), dead), httpx.AsyncClient() as http:
        answer = await http.get(f"http://{cfg.http.listen}/readyz")
        assert answer.status_code == 503 and answer.json()["reasons"][0].startswith("redis:")
        assert "livewatch_redis_up 0.0" in (await http.get(
            f"http://{cfg.http.listen}/metrics")).text
    await dead.aclose()


@pytest.fixture
async def scheduler(redis_client: aioredis.Redis) -> AsyncIterator[FeedScheduler]:
    cfg = config()
    async with Fetcher(user_agent="test") as fetcher:
        scheduler = FeedScheduler(cfg, Poller(cfg, make_state(cfg, redis_client), fetcher))
        scheduler.start()
        yield scheduler
        await scheduler.shutdown(1)


async def test_scheduler_reconciles_jobs(scheduler: FeedScheduler) -> None:
    assert scheduler.running
    a_job = scheduler.scheduler.get_job("a")
    new = parse_config(config_text(feeds="a, c") + "")
    changed = new.model_copy(update={"feeds": [
        new.feeds[0].model_copy(update={"interval": 120.0}), new.feeds[1]]})
    assert scheduler.reconcile(changed) == {"added": ["c"], "removed": ["b"], "changed": ["a"]}
    assert sorted(job.id for job in scheduler.scheduler.get_jobs()) == ["a", "c"]
    job = scheduler.scheduler.get_job("a")
    assert job is a_job or job.id == "a"
    assert job.trigger.interval.total_seconds() == 120 and job.args[0].interval == 120
    assert scheduler.poller.config is changed
    assert scheduler.reconcile(changed) == {"added": [], "removed": [], "changed": []}


async def test_consumer_swaps_rules_and_keeps_removed_channels(
        redis_client: aioredis.Redis) -> None:
    old = config()
    new = parse_config(config_text().replace("name: hook", "name: desk")
                       .replace("channels: [hook]", "channels: [desk]"))
    async with httpx.AsyncClient() as http, ChannelSet(http) as channels:
        first = channels.update(old.channels)
        consumer = Consumer(old, redis_client, first, name="t")
        second = channels.update(new.channels)
        consumer.reconfigure(new, second)
        assert consumer.channels is second and consumer.outbox.retired == first
        assert consumer.rules["r1"].channels == ["desk"]
        assert consumer.config is new and not consumer.alive()


async def test_status_collect(redis_client: aioredis.Redis) -> None:
    cfg = config()
    state = make_state(cfg, redis_client)
    await state.record_failure("a", "HTTP 500")
    await record_success(state, "b", "ok", kind="rss")
    await redis_client.hincrby(keys.CHANNEL_STATS, "hook:delivered", 3)
    report = await collect(redis_client, cfg)
    feeds = {f["name"]: f for f in report["feeds"]}
    assert feeds["a"]["consecutive_failures"] == 1 and feeds["a"]["last_error"] == "HTTP 500"
    assert feeds["b"]["detected_kind"] == "rss" and feeds["b"]["result"] == "ok"
    assert report["channels"][0]["delivered"] == 3
    assert report["workers"] == [] and report["dead_letters"] == 0


def test_redact() -> None:
    assert redact("redis://:pw@host:6379/0") == "redis://:***@host:6379/0"
    assert redact("redis://host:6379/0") == "redis://host:6379/0"
