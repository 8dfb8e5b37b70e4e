"""What a supervised child of `livewatch run --processes N` is told by its supervisor
(`monitor.ops.supervisor`): one `ChildSpec`, passed as the hidden `--supervised` option of
`livewatch poller` / `livewatch worker` and applied to the configuration the child loads.

The spec only narrows what the file says, never adds to it: the supervisor's embedded Redis
instead of starting one, a loopback port for the child's own operations endpoint instead of
`http.listen` (the supervisor serves that one), `websub.listen` kept in one poller only, and
what `fetch.parse_processes: auto` means when the cores are already taken by pollers. It is
applied again to every reloaded file (`Control(adjust=…)`), so a SIGHUP keeps it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from typing import Annotated, Literal

import structlog
from pydantic import Field

from monitor.config.models import Config, HttpSettings
from monitor.config.values import Listen, Model

log = structlog.get_logger("livewatch.child")

#: The command a child runs.
ChildRole = Literal["poller", "worker", "console"]


class ChildSpec(Model):
    """One child's overrides and its link to the supervisor."""

    #: `poller-0` … `poller-{N-1}`, `worker`: the `process` of its log lines and metrics.
    name: Annotated[str, Field(pattern=r"^[a-z]+(-[0-9]+)?$")]
    #: The supervisor's embedded Redis (None: connect as the file says).
    redis_url: str | None = None
    #: Where this child serves /healthz, /readyz and /metrics for the supervisor (None: no
    #: endpoint, as when `http.listen` is unset).
    listen: Listen | None = None
    #: False: no WebSub callback server here (another poller binds `websub.listen`).
    websub_listen: bool = True
    #: What `fetch.parse_processes: auto` means here (None: as it always does); an explicit
    #: number in the file is kept.
    parse_processes: Annotated[int, Field(ge=0, le=64)] | None = None
    #: Read end of a pipe only the supervisor writes to: EOF means the supervisor is gone.
    parent_fd: Annotated[int, Field(ge=0)]

    def apply(self, config: Config) -> Config:
        """`config` as this child runs it."""
        update: dict[str, object] = {"http": HttpSettings(listen=self.listen)}
        if self.redis_url is not None:
            update["redis"] = config.redis.model_copy(update={"url": self.redis_url})
        if not self.websub_listen and config.websub.listen is not None:
            update["websub"] = config.websub.model_copy(update={"listen": None})
        if self.parse_processes is not None and config.fetch.parse_processes == "auto":
            update["fetch"] = config.fetch.model_copy(
                update={"parse_processes": self.parse_processes})
        return config.model_copy(update=update)


@contextlib.contextmanager
def watching_parent(spec: ChildSpec, stop: asyncio.Event) -> Iterator[None]:
    """Set `stop` (a graceful stop, as on SIGTERM) when the supervisor's end of the pipe
    closes: the supervisor died, even by SIGKILL, so no child outlives it."""
    loop = asyncio.get_running_loop()
    fd = spec.parent_fd

    def readable() -> None:
        try:
            data = os.read(fd, 64)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)
            if not stop.is_set():
                log.warning("supervisor gone; stopping")
                stop.set()

    os.set_blocking(fd, False)
    loop.add_reader(fd, readable)
    try:
        yield
    finally:
        loop.remove_reader(fd)
