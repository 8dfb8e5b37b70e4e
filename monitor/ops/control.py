"""A running process's control surface: readiness checks, reload on SIGHUP, and `serve`, which
runs one role (pollers, workers or both) with its signals, Redis and operations endpoint.

Reload: the YAML is read and validated again; an invalid file is rejected (every problem
logged) and the running configuration kept. A valid one is handed to each registered reloader
(the scheduler reconciles its jobs, the consumer swaps rules and channels between messages).
Settings that need a restart (`redis`, `http`) keep their running values, with a warning.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import structlog

from monitor.config.loader import load_config
from monitor.config.models import Config
from monitor.core.errors import ConfigError
from monitor.ops.metrics import RELOADS
from monitor.ops.runtime import connect_redis, install_stop_signals

log = structlog.get_logger("livewatch.control")

#: A readiness check: None when fine, else the reason the process is not ready.
Check = Callable[[], str | None]
#: Called with the new configuration on reload; must not raise for a valid config.
Reloader = Callable[[Config], Awaitable[None]]
#: One role of the service, as run by `serve`.
Role = Callable[[Config, aioredis.Redis, asyncio.Event, "Control"], Awaitable[None]]

#: Sections that cannot change without a restart; a reload keeps their running values.
_FIXED = ("redis", "http")
#: Settings read once at start; a reload logs that they need a restart.
_AT_START = (("workers", "concurrency"), ("defaults", "user_agent"),
             ("defaults", "max_concurrency"), ("defaults", "max_per_host"))


class Control:
    """Readiness checks and reload subscribers of one process."""

    def __init__(self, config: Config, path: Path | None = None,
                 adjust: Callable[[Config], Config] | None = None) -> None:
        """`adjust` is applied to every reloaded file, as it was to `config` (a supervised
        child's `ChildSpec.apply`)."""
        self.config = config
        self.path = path
        self._adjust = adjust or (lambda new: new)
        self._checks: dict[str, Check] = {}
        self._reloaders: list[Reloader] = []
        self._lock = asyncio.Lock()
        self._pending: set[asyncio.Task[bool]] = set()

    def add_check(self, name: str, check: Check) -> None:
        """Make readiness depend on `check`."""
        self._checks[name] = check

    def on_reload(self, reloader: Reloader) -> None:
        """Call `reloader` with each new valid configuration."""
        self._reloaders.append(reloader)

    def not_ready(self) -> list[str]:
        """Reasons this process is not ready (empty when ready)."""
        reasons = []
        for name, check in self._checks.items():
            reason = check()
            if reason:
                reasons.append(f"{name}: {reason}")
        return reasons

    def request_reload(self) -> None:
        """Schedule a reload (the SIGHUP handler)."""
        task = asyncio.get_running_loop().create_task(self.reload())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def reload(self) -> bool:
        """Re-read the file and apply it; False (old config kept) if it is invalid."""
        if self.path is None:
            return False
        async with self._lock:
            log.info("reloading configuration", file=str(self.path))
            try:
                new = await asyncio.to_thread(load_config, self.path)
            except ConfigError as exc:
                RELOADS.labels("rejected").inc()
                log.error("configuration reload rejected; keeping the running one",
                          file=str(self.path), problems=[str(p) for p in exc.problems])
                return False
            new = await self._keep_fixed(self._adjust(new))
            changes = describe_changes(self.config, new)
            failed = False
            for reloader in self._reloaders:
                try:
                    await reloader(new)
                except Exception as exc:  # a bug; the other parts still get the new config
                    failed = True
                    log.exception("reload step failed", error=str(exc))
            self.config = new
            RELOADS.labels("failed" if failed else "applied").inc()
            log.info("configuration reloaded", **changes)
            return not failed

    async def _keep_fixed(self, new: Config) -> Config:
        old = self.config
        restart = [section for section in _FIXED if getattr(old, section) != getattr(new, section)]
        restart += [f"{section}.{key}" for section, key in _AT_START
                    if getattr(getattr(old, section), key) != getattr(getattr(new, section), key)]
        if restart:
            log.warning("these settings change only on restart; running values kept",
                        settings=restart)
        return new.model_copy(update={section: getattr(old, section) for section in _FIXED})


def describe_changes(old: Config, new: Config) -> dict[str, Any]:
    """Names of feeds, rules and channels added, removed or changed (non-empty lists only)."""
    out: dict[str, Any] = {}
    for section in ("feeds", "rules", "channels"):
        before = {item.name: item for item in getattr(old, section)}
        after = {item.name: item for item in getattr(new, section)}
        for what, names in (("added", after.keys() - before.keys()),
                            ("removed", before.keys() - after.keys()),
                            ("changed", {n for n in before.keys() & after.keys()
                                         if before[n] != after[n]})):
            if names:
                out[f"{section}_{what}"] = sorted(names)
    return out


async def serve(config: Config, path: Path | None, role: Role, *,
                adjust: Callable[[Config], Config] | None = None) -> None:
    """Run `role` until SIGINT/SIGTERM, reloading on SIGHUP, with the operations endpoint when
    `http.listen` is set. `config` is already adjusted; `adjust` is for the reloaded ones."""
    from monitor.ops.endpoints import ops_endpoint

    stop = asyncio.Event()
    install_stop_signals(stop)
    control = Control(config, path, adjust)
    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, control.request_reload)
    control.add_check("process", lambda: "stopping" if stop.is_set() else None)
    async with connect_redis(config) as client, ops_endpoint(control, client):
        await role(config, client, stop, control)
