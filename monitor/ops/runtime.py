"""Process plumbing shared by every role: the Redis connection (embedded or remote), signals."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, cast

import redis.asyncio as aioredis
import structlog
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import RedisError

from monitor.config.models import Config, RedisSettings
from monitor.core import keys
from monitor.core.errors import StateError
from monitor.ops.embedded import EmbeddedRedis

log = structlog.get_logger("livewatch.runtime")


@contextlib.contextmanager
def _exclusive(data_dir: Path) -> Iterator[None]:
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / "livewatch.lock").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise StateError(f"another livewatch process uses the embedded Redis in "
                             f"{data_dir}; stop it or set redis.url") from exc
        yield


def _publish_url(data_dir: Path, url: str) -> Callable[[], None]:
    """Write the embedded server's URL to `data_dir/redis.url` (for `livewatch status`);
    returns the function that removes it."""
    target = data_dir / "redis.url"
    temporary = target.with_suffix(".tmp")
    temporary.write_text(url + "\n", encoding="utf-8")
    temporary.replace(target)
    return lambda: target.unlink(missing_ok=True)


@contextlib.asynccontextmanager
async def redis_client(settings: RedisSettings, url: str | None = None, *,
                       max_connections: int = 100,
                       **options: Any) -> AsyncIterator[aioredis.Redis]:
    """A decoded-responses client: through Sentinel when `settings.sentinel` is set (the
    client asks the sentinels for the master again after a failover), a cluster client when
    `settings.cluster` (which also switches `monitor.core.keys` to the cluster layout), else
    for `url` (by default `settings.url`), whose pool makes a burst of commands wait (up to
    20 s) for one of `max_connections` connections instead of failing. Closed, with the
    sentinel connections, on exit."""
    async with contextlib.AsyncExitStack() as stack:
        found = settings.sentinel
        if found is not None:
            secret = found.sentinel_password
            sentinel = Sentinel(found.addresses, sentinel_kwargs={  # type: ignore[no-untyped-call, unused-ignore]
                "password": secret.get_secret_value() if secret else None, **options})
            for watcher in sentinel.sentinels:
                stack.push_async_callback(watcher.aclose)
            password = found.password.get_secret_value() if found.password else None
            client: aioredis.Redis = sentinel.master_for(
                found.master, db=found.db, username=found.username, password=password,
                decode_responses=True, max_connections=max_connections, **options)
        elif settings.cluster:
            keys.use_cluster(settings.partitions)
            cluster = RedisCluster.from_url(url or settings.url, decode_responses=True,
                                            max_connections=max_connections, **options)
            client = cast(aioredis.Redis, cluster)  # the commands livewatch uses are common
        else:
            pool = aioredis.BlockingConnectionPool.from_url(
                url or settings.url, decode_responses=True, max_connections=max_connections,
                timeout=20, **options)
            client = aioredis.Redis.from_pool(pool)
        stack.push_async_callback(client.aclose)
        yield client


@contextlib.asynccontextmanager
async def connect_redis(config: Config) -> AsyncIterator[aioredis.Redis]:
    """A decoded-responses client for the configured Redis; starts the embedded one if asked."""
    async with contextlib.AsyncExitStack() as stack:
        url = config.redis.url
        if config.redis.embedded:
            data_dir = config.redis.data_dir
            stack.enter_context(_exclusive(data_dir))
            server = EmbeddedRedis(data_dir / "redis")
            await asyncio.to_thread(server.start)
            stack.callback(server.stop)
            url = server.url
            stack.callback(_publish_url(data_dir, url))
            log.info("embedded redis started", data_dir=str(server.data_dir),
                     port=server.port)
        client = await stack.enter_async_context(redis_client(
            config.redis, url, max_connections=config.defaults.max_concurrency + 100))
        try:
            await client.ping()
        except (RedisError, OSError) as exc:
            raise StateError(f"cannot reach Redis: {exc}") from exc
        yield client


def install_stop_signals(stop: asyncio.Event) -> None:
    """Set `stop` on SIGINT or SIGTERM (a second signal is handled the same way)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
