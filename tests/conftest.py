"""Fixtures with real parts: a private redis-server, local HTTP servers, an aiosmtpd server."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import cast

import pytest
import redis.asyncio as aioredis
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Message as _MessageHandler
from redis.asyncio.cluster import RedisCluster
from servers import FeedServer, Received, WebhookReceiver
from service import CLUSTER_PARTITIONS, Service

from monitor.core import keys
from monitor.fetch.client import Fetcher
from monitor.ops.embedded import EmbeddedRedis, LocalCluster, free_port


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """One private redis-server (never the shared one on 6379) for the whole session."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), appendonly=False)
    assert server.port != 6379
    with server:
        yield server


@pytest.fixture
async def redis_client(redis_server: EmbeddedRedis) -> AsyncIterator[aioredis.Redis]:
    """A client on a flushed private database."""
    client: aioredis.Redis = aioredis.from_url(redis_server.url, decode_responses=True)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A private 3-master Redis Cluster (redis-server --cluster-enabled, joined by redis-cli
    --cluster create) for the whole session, started by the first test that asks for it."""
    with LocalCluster(tmp_path_factory.mktemp("cluster")) as cluster:
        yield cluster


@pytest.fixture
async def cluster_client(redis_cluster: LocalCluster) -> AsyncIterator[aioredis.Redis]:
    """A client of the flushed test cluster, with `monitor.core.keys` in the cluster layout
    (`CLUSTER_PARTITIONS`) until the test ends."""
    keys.use_cluster(CLUSTER_PARTITIONS)
    client = RedisCluster.from_url(redis_cluster.url, decode_responses=True)
    try:
        await client.flushall(target_nodes=RedisCluster.PRIMARIES)
        yield cast(aioredis.Redis, client)
    finally:
        await client.aclose()
        keys.use_cluster(None)


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    server = FeedServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver()
    server.start()
    yield server
    server.stop()


class _Inbox(_MessageHandler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[object] = []

    def handle_message(self, message: object) -> None:
        self.messages.append(message)


class SmtpServer:
    """An aiosmtpd server on 127.0.0.1; `inbox.messages` holds email.message.Message objects."""

    def __init__(self) -> None:
        self.inbox = _Inbox()
        self.port = free_port()
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.controller.start()
    yield server
    server.controller.stop()


@pytest.fixture
async def fetcher() -> AsyncIterator[Fetcher]:
    """A real Fetcher with a test User-Agent."""
    async with Fetcher(user_agent="livewatch-test/1.0", max_concurrency=8) as f:
        yield f


@pytest.fixture
def data_dir() -> Path:
    return Path(__file__).parent / "data"


@pytest.fixture
def stalled_receiver(webhook_receiver: WebhookReceiver) -> Iterator[WebhookReceiver]:
    """The webhook receiver holding every request (up to 10 s) until the test ends."""
    release = threading.Event()

    def stall(_: Received) -> tuple[int, dict[str, str]]:
        release.wait(10)
        return 200, {}

    webhook_receiver.responder = stall
    yield webhook_receiver
    release.set()


@pytest.fixture
def running() -> Iterator[list[Service]]:
    """Services a test starts (append them); killed at teardown whatever happened."""
    services: list[Service] = []
    yield services
    for service in services:
        service.kill()
