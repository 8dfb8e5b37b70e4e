"""The console's HTTP server: the API (`workers.console.api`) and the pages
(`workers.console.pages`) on `console.listen`, in `livewatch run` and `livewatch console`."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
import structlog
from aiohttp import web

from monitor.config.models import Config
from monitor.core.errors import StateError
from monitor.ops.control import Control
from monitor.ops.endpoints import listening
from workers.console.api import STATE, ConsoleState, Handler, add_routes, api_guard

log = structlog.get_logger("livewatch.console")

#: Largest request body taken (a rule test's text is the biggest).
MAX_BODY = 256 * 1024


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Headers every answer carries: no framing, no sniffing, no referrer (one-click links
    carry their token in the URL), scripts and styles only from the console itself."""
    response = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault(
        "Content-Security-Policy", "default-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
    if request.path.startswith(("/api/", "/console")) and \
            not request.path.startswith("/console/static/"):
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def build_app(state: ConsoleState) -> web.Application:
    """The console application over `state`."""
    from workers.console.pages import add_pages

    app = web.Application(middlewares=[security_headers, api_guard], client_max_size=MAX_BODY)
    app[STATE] = state
    add_routes(app)
    add_pages(app)
    return app


async def run_console(config: Config, client: aioredis.Redis, stop: asyncio.Event, *,
                      control: Control | None = None) -> None:
    """Serve the console on `console.listen` until `stop` is set; a reload swaps tokens,
    rules and feeds (a new `listen` needs a restart)."""
    address = config.console.address
    if address is None:
        raise StateError("the console needs console.listen")
    state = ConsoleState(config, client)
    try:
        async with listening(build_app(state), address,
                             f"console.listen {config.console.listen}",
                             shutdown_timeout=2.0, handler_cancellation=True):
            if control is not None:
                async def reload(new: Config) -> None:
                    if new.console.listen != config.console.listen:
                        log.warning("console.listen changes only on restart; running value kept")
                    state.reconfigure(new)

                control.on_reload(reload)
            log.info("console listening", listen=config.console.listen,
                     url=config.console.base_url + "/console/")
            await stop.wait()
    finally:
        log.info("console stopped")
