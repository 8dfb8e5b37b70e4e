"""The operations endpoint (aiohttp, on the service's own event loop): `/healthz` (the process
answers), `/readyz` (Redis answers PING and every readiness check passes; 503 with the
reasons otherwise) and `/metrics` (Prometheus text format)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import redis.asyncio as aioredis
import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from redis.exceptions import RedisError

from monitor.core.errors import StateError
from monitor.ops import metrics

if TYPE_CHECKING:
    from monitor.ops.control import Control

log = structlog.get_logger("livewatch.http")

#: Longest a probe or scrape waits on Redis.
REDIS_TIMEOUT = 2.0


class _Endpoint:
    def __init__(self, control: Control, client: aioredis.Redis) -> None:
        self.control = control
        self.client = client

    async def healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(self, _request: web.Request) -> web.Response:
        reasons = []
        try:
            async with asyncio.timeout(REDIS_TIMEOUT):
                await self.client.ping()
        except (RedisError, OSError, TimeoutError) as exc:
            reasons.append(f"redis: {exc or 'no answer to PING'}")
        reasons += self.control.not_ready()
        if reasons:
            return web.json_response({"status": "not ready", "reasons": reasons}, status=503)
        return web.json_response({"status": "ready"})

    async def metrics(self, _request: web.Request) -> web.Response:
        try:
            async with asyncio.timeout(REDIS_TIMEOUT):
                await metrics.refresh(self.client, self.control.config)
            metrics.REDIS_UP.set(1)
        except (RedisError, OSError, TimeoutError):
            metrics.REDIS_UP.set(0)
        return web.Response(body=generate_latest(REGISTRY),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})


@contextlib.asynccontextmanager
async def ops_endpoint(control: Control, client: aioredis.Redis) -> AsyncIterator[None]:
    """Serve the endpoint while the context is open (nothing when `http.listen` is unset)."""
    address = control.config.http.address
    if address is None:
        yield
        return
    endpoint = _Endpoint(control, client)
    app = web.Application()
    app.router.add_get("/healthz", endpoint.healthz)
    app.router.add_get("/readyz", endpoint.readyz)
    app.router.add_get("/metrics", endpoint.metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, address[0], address[1])
        try:
            await site.start()
        except OSError as exc:
            raise StateError(f"cannot listen on {control.config.http.listen}: {exc}") from exc
        log.info("operations endpoint listening", listen=control.config.http.listen)
        yield
    finally:
        await runner.cleanup()
