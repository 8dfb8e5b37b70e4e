"""The embedded default: a private redis-server with AOF, state kept across restarts."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config.loader import parse_config
from monitor.core.errors import StateError
from monitor.ops.runtime import connect_redis


async def test_embedded_redis_keeps_state_across_restarts(tmp_path: Path) -> None:
    config = parse_config(f'redis: {{url: embedded, data_dir: "{tmp_path}"}}')
    async with connect_redis(config) as client:
        port = client.connection_pool.connection_kwargs["port"]
        assert port != 6379
        await client.set("lw:test", "kept")
    assert (tmp_path / "redis").is_dir()
    async with connect_redis(config) as client:
        assert await client.get("lw:test") == "kept"


async def test_one_data_dir_serves_one_process(tmp_path: Path) -> None:
    config = parse_config(f'redis: {{url: embedded, data_dir: "{tmp_path}"}}')
    async with connect_redis(config):
        with pytest.raises(StateError, match="another livewatch process"):
            async with connect_redis(config):
                pass


async def test_unreachable_redis_is_a_clear_error() -> None:
    from monitor.ops.embedded import free_port

    config = parse_config(f'redis: {{url: "redis://127.0.0.1:{free_port()}/0"}}')
    with pytest.raises(StateError, match="cannot reach Redis"):
        async with connect_redis(config):
            pass
