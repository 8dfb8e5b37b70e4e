"""`redis.sentinel`: livewatch finds the master through a real redis-sentinel (a private
redis-server in sentinel mode watching the test's private server) and leases and commits
through it; `livewatch status` reads through it too."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError
from service import commit, livewatch, wait_until

from monitor.config.loader import parse_config
from monitor.core import keys
from monitor.core.errors import ConfigError, StateError
from monitor.core.models import Entry
from monitor.ops.embedded import EmbeddedRedis, find_redis_server, free_port
from monitor.ops.runtime import connect_redis
from monitor.poll.diff import diff_entries
from monitor.poll.lease import FeedLeases
from monitor.poll.role import make_state

MASTER = "lwmaster"


@pytest.fixture
def sentinel(redis_server: EmbeddedRedis, tmp_path: Path) -> Iterator[int]:
    """A sentinel on 127.0.0.1 watching the session's redis-server as `lwmaster`."""
    port = free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
                    f"sentinel monitor {MASTER} 127.0.0.1 {redis_server.port} 1\n")
    process = subprocess.Popen([find_redis_server(), str(conf), "--sentinel"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    yield port
    process.terminate()
    process.wait(10)


def sentinel_yaml(port: int, master: str = MASTER) -> str:
    return f"""
redis: {{sentinel: {{master: {master}, sentinels: ["127.0.0.1:{port}"]}}}}
feeds: [{{name: f, url: "https://news.example.org/live"}}]
"""


async def test_leases_and_commits_through_sentinel(
        sentinel: int, redis_client: aioredis.Redis, tmp_path: Path) -> None:
    config = parse_config(sentinel_yaml(sentinel))
    assert not config.redis.embedded

    async def answering() -> bool:
        probe: aioredis.Redis = aioredis.from_url(f"redis://127.0.0.1:{sentinel}")
        try:
            return bool(await probe.ping())
        except (OSError, RedisError):
            return False
        finally:
            await probe.aclose()

    await wait_until(answering, timeout=10, what="the sentinel")
    async with connect_redis(config) as client:
        lease = await FeedLeases(client, "poller-a").acquire("f", 10)
        assert lease is not None
        state = make_state(config, client)
        entry = Entry(id="a", url="https://news.example.org/live#a", title="A", text="Body")
        result = await commit(state, "f", "u", diff_entries({}, [entry], baseline=True),
                                    baseline=True, etag=None, last_modified=None,
                                    body_hash="h", fence=lease.fence)
        assert not result.superseded
    # Written to the master the sentinel named: the test's private server.
    assert await redis_client.get(keys.fence("f")) == "1"
    assert await redis_client.hget(keys.meta("f"), "baselined") == "1"

    cfg = tmp_path / "livewatch.yaml"
    cfg.write_text(sentinel_yaml(sentinel))
    status = livewatch("status", "--config", str(cfg), "--json")
    assert status.returncode == 0, status.stderr
    assert f"sentinel://{MASTER}@127.0.0.1:{sentinel}" in status.stdout


async def test_unknown_master_is_a_clear_error(sentinel: int) -> None:
    config = parse_config(sentinel_yaml(sentinel, master="nosuchmaster"))
    with pytest.raises(StateError, match="cannot reach Redis"):
        async with connect_redis(config):
            pass


@pytest.mark.parametrize(("yaml", "problem"), [
    ('redis: {url: "redis://h:6379/0", sentinel: {master: m, sentinels: ["h:26379"]}}',
     "redis: set either `url` or `sentinel`, not both"),
    ('redis: {sentinel: {master: m, sentinels: ["h"]}}',
     "redis.sentinel.sentinels[0]: expected HOST:PORT, got 'h'"),
    ("redis: {sentinel: {master: m, sentinels: []}}", "redis.sentinel.sentinels"),
    ('redis: {sentinel: {sentinels: ["h:26379"]}}', "redis.sentinel.master"),
])
def test_sentinel_settings_are_checked(yaml: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(yaml + "\n")
    assert any(problem in str(p) for p in caught.value.problems), caught.value.problems


def test_sentinel_addresses() -> None:
    config = parse_config('redis: {sentinel: {master: m, sentinels: ["10.0.0.1:26379", '
                          '"[::1]:26380"]}}\n')
    assert config.redis.sentinel is not None and not config.redis.embedded
    assert config.redis.sentinel.addresses == [("10.0.0.1", 26379), ("::1", 26380)]
