"""The operations endpoint (aiohttp, on the service's own event loop): `/healthz` (the process
answers), `/readyz` (Redis answers PING and every readiness check passes; 503 with the
reasons otherwise) and `/metrics` (Prometheus text format)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Protocol

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


class Probes(Protocol):
    """What an operations endpoint answers."""

    async def healthz(self, request: web.Request, /) -> web.Response: ...

    async def readyz(self, request: web.Request, /) -> web.Response: ...

    async def metrics(self, request: web.Request, /) -> web.Response: ...


@contextlib.asynccontextmanager
async def listening(app: web.Application, address: tuple[str, int], what: str,
                    **runner: Any) -> AsyncIterator[None]:
    """Serve `app` on `address` while the context is open; StateError naming `what` (the
    setting, e.g. `http.listen 0.0.0.0:9108`) when the address cannot be bound. `runner` goes
    to aiohttp's AppRunner (no access log)."""
    app_runner = web.AppRunner(app, access_log=None, **runner)
    await app_runner.setup()
    try:
        try:
            await web.TCPSite(app_runner, address[0], address[1]).start()
        except OSError as exc:
            raise StateError(f"cannot listen on {what}: {exc}") from exc
        yield
    finally:
        await app_runner.cleanup()


def probes_app(probes: Probes) -> web.Application:
    """/healthz, /readyz and /metrics answered by `probes`."""
    app = web.Application()
    app.router.add_get("/healthz", probes.healthz)
    app.router.add_get("/readyz", probes.readyz)
    app.router.add_get("/metrics", probes.metrics)
    return app


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
    listen = control.config.http.listen
    async with listening(probes_app(_Endpoint(control, client)), address, str(listen)):
        log.info("operations endpoint listening", listen=listen)
        yield
