"""`livewatch run --processes N` with N >= 2: a small supervisor of N poller processes and one
worker process (and one console process when `console.listen` is set).

Each child is `python -m monitor poller|worker --supervised SPEC`: a separate interpreter with
its own event loop, told by a `ChildSpec` (`monitor.ops.child`) what differs from the file.
The pollers share the feeds through the Redis leases, as any `livewatch poller` processes do;
the worker has a process of its own, so a burst of changed documents never delays a delivery.

- **Redis**: the supervisor connects first, starting the embedded server (once, holding its
  lock in `redis.data_dir`) when the file asks for it, and hands its URL to the children,
  which then do not start their own. With an external Redis or Sentinel they connect as the
  file says.
- **Operations endpoint**: only the supervisor binds `http.listen` (`monitor.ops.gather`);
  each child serves its own on a loopback port the supervisor picked, for the supervisor.
- **Parsing**: `fetch.parse_processes: auto` means 0 in the children (the pollers use the
  cores already); an explicit number is kept. `websub.listen` is bound by `poller-0` only
  (notifications reaching it are relayed to the lease holder).
- **Signals**: SIGTERM or SIGINT stops every child with SIGTERM and waits for them within the
  shutdown bounds (max(10 s, `workers.shutdown_timeout`) + 5 s), then kills what is left;
  SIGHUP is forwarded (each child reloads the file). The children run in their own process
  group, so a Ctrl-C at a terminal reaches the supervisor only, which stops them in order.
- **Restarts**: a child that exits without being asked to is logged and started again after
  1 s, 2 s, 4 s … up to 60 s; one that ran a minute starts from 1 s again.
- **No orphans**: each child holds the read end of a pipe whose write end only the
  supervisor has; when the supervisor dies (even by SIGKILL) the child reads EOF and stops as
  on SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import redis.asyncio as aioredis
import structlog

from monitor.config.models import Config
from monitor.ops.child import ChildRole, ChildSpec
from monitor.ops.embedded import free_port
from monitor.ops.runtime import connect_redis, install_stop_signals

log = structlog.get_logger("livewatch.supervisor")

T = TypeVar("T")

#: The first wait before restarting a child that died; doubled for each death in a row.
RESTART_FIRST = 1.0
#: The longest wait between restarts.
RESTART_MAX = 60.0
#: A child that ran this long before dying is restarted after RESTART_FIRST again.
STABLE_AFTER = 60.0
#: What the pollers give polls in flight on SIGTERM (`run_pollers`' shutdown_timeout).
POLLER_SHUTDOWN = 10.0
#: On top of the shutdown timeouts: releasing leases, stopping parsing processes, closing.
STOP_MARGIN = 5.0
#: The most `--processes` may ask for (as `fetch.parse_processes`).
MAX_PROCESSES = 64


def process_count(value: str) -> int:
    """`--processes`: a number from 1 to 64, or `auto` (one per usable core)."""
    if value == "auto":
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
            else (os.cpu_count() or 1)
        return min(cores, MAX_PROCESSES)
    if value.isdigit() and 1 <= int(value) <= MAX_PROCESSES:
        return int(value)
    raise ValueError(f"expected a number from 1 to {MAX_PROCESSES} or `auto`, not {value!r}")


@dataclass
class Backoff:
    """Restart delays of one child: RESTART_FIRST, doubled for each death in a row, capped."""

    deaths: int = 0

    def delay(self, ran_for: float) -> float:
        """Seconds to wait before starting again a child that died after `ran_for` seconds."""
        if ran_for >= STABLE_AFTER:
            self.deaths = 0
        wait = min(RESTART_FIRST * 2.0 ** self.deaths, RESTART_MAX)
        self.deaths += 1
        return wait


def _describe_exit(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return signal.Signals(-code).name
    return f"exit {code}"


class Child:
    """One supervised process: its current spec and process, and its restart record."""

    def __init__(self, name: str, role: ChildRole) -> None:
        self.name = name
        self.role = role
        self.spec: ChildSpec | None = None
        self.process: asyncio.subprocess.Process | None = None
        self.started = 0.0
        self.restarts = 0
        self.backoff = Backoff()
        #: When a dead child starts again (time.monotonic()), while it waits to.
        self.restart_at: float | None = None
        self._pipe: int | None = None  # the write end of its parent-death pipe

    @property
    def running(self) -> bool:
        """The process runs (or has not been reaped yet)."""
        return self.process is not None and self.process.returncode is None

    @property
    def ops_url(self) -> str | None:
        """Base URL of its own operations endpoint while it runs (None without one)."""
        if not self.running or self.spec is None or self.spec.listen is None:
            return None
        return f"http://{self.spec.listen}"

    def state(self) -> str:
        """Why it is not running, for /readyz."""
        if self.running:
            return "running"
        if self.restart_at is not None:
            wait = max(self.restart_at - time.monotonic(), 0.0)
            return f"not running (restarting in {wait:.0f} s)"
        return "not running"

    async def start(self, spec: ChildSpec, command: Sequence[str]) -> None:
        """Start the process for `spec` (its `parent_fd` is the pipe's read end, closed here
        once the child has it)."""
        self.spec, self.restart_at = spec, None
        try:
            self.process = await asyncio.create_subprocess_exec(
                *command, stdin=asyncio.subprocess.DEVNULL, pass_fds=(spec.parent_fd,),
                process_group=0)
        except BaseException:
            self._close_pipe()
            raise
        finally:
            os.close(spec.parent_fd)
        self.started = time.monotonic()
        log.info("child started", child=self.name, pid=self.process.pid)

    def take_pipe(self, write_end: int) -> None:
        """Keep the write end of the child's parent-death pipe (closed when it exits)."""
        self._close_pipe()
        self._pipe = write_end

    def send(self, sig: signal.Signals) -> None:
        """Send `sig` to the process if it runs."""
        if self.process is not None and self.running:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)

    async def wait(self) -> int:
        """Its exit code once it exits (-N: killed by signal N)."""
        assert self.process is not None
        code = await self.process.wait()
        self._close_pipe()
        return code

    async def stop(self, timeout: float) -> None:
        """SIGTERM, then SIGKILL if it still runs after `timeout` seconds."""
        if self.process is None or not self.running:
            self._close_pipe()
            return
        self.send(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(self.wait(), timeout)
        except TimeoutError:
            log.warning("child did not stop in time; killing it", child=self.name,
                        pid=self.process.pid, timeout_s=timeout)
            self.send(signal.SIGKILL)
            code = await self.wait()
        if code != 0:
            log.warning("child stopped", child=self.name, exit=_describe_exit(code))

    def _close_pipe(self) -> None:
        if self._pipe is not None:
            os.close(self._pipe)
            self._pipe = None


class Supervisor:
    """N pollers and one worker as child processes, kept running until stopped."""

    def __init__(self, config: Config, path: Path, pollers: int, log_args: Sequence[str],
                 redis_url: str | None) -> None:
        """`log_args` are the children's --log-format/--log-level; `redis_url` is the
        embedded server's (None: the children connect as the file says)."""
        self.config = config
        self.path = path
        self.log_args = list(log_args)
        self.redis_url = redis_url
        self.children = [Child(f"poller-{n}", "poller") for n in range(pollers)]
        self.children.append(Child("worker", "worker"))
        if config.console.listen is not None:  # `run` serves the console: a process of its own
            self.children.append(Child("console", "console"))
        self.stopping = False

    @property
    def stop_timeout(self) -> float:
        """How long children get to stop on SIGTERM before they are killed."""
        return max(POLLER_SHUTDOWN, self.config.workers.shutdown_timeout) + STOP_MARGIN

    def spec(self, child: Child, parent_fd: int) -> ChildSpec:
        """What `child` is told at this start (a fresh loopback port for its endpoint)."""
        listen = f"127.0.0.1:{free_port()}" if self.config.http.listen else None
        return ChildSpec(name=child.name, redis_url=self.redis_url, listen=listen,
                         websub_listen=child.name == "poller-0", parse_processes=0,
                         parent_fd=parent_fd)

    def command(self, child: Child, spec: ChildSpec) -> list[str]:
        """The child's command line."""
        return [sys.executable, "-m", "monitor", child.role, "--config", str(self.path),
                *self.log_args, "--supervised", spec.model_dump_json(exclude_defaults=True)]

    def forward(self, sig: signal.Signals) -> None:
        """Send `sig` to every running child."""
        log.info("forwarding signal", signal=sig.name)
        for child in self.children:
            child.send(sig)

    async def run(self, stop: asyncio.Event) -> None:
        """Start every child, restart those that die, and stop them all once `stop` is set."""
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self.forward, signal.SIGHUP)
        log.info("supervisor started", pollers=sum(c.role == "poller" for c in self.children),
                 workers=1, console=any(c.role == "console" for c in self.children),
                 embedded_redis=self.redis_url is not None)
        keepers = [asyncio.create_task(self._keep(child, stop)) for child in self.children]
        try:
            await stop.wait()
        finally:
            self.stopping = True
            loop.remove_signal_handler(signal.SIGHUP)
            await asyncio.gather(*keepers, return_exceptions=True)
            log.info("stopping children", timeout_s=self.stop_timeout)
            await asyncio.gather(*(child.stop(self.stop_timeout) for child in self.children))
            log.info("supervisor stopped")

    async def _keep(self, child: Child, stop: asyncio.Event) -> None:
        """Run `child` until `stop`, starting it again with backoff whenever it dies."""
        while not stop.is_set():
            try:
                await self._start(child)
                code: int | None = await _until(child.wait(), stop)
            except OSError as exc:  # it could not even start (a missing interpreter, fds)
                log.error("child could not start", child=child.name, error=str(exc))
                code = 127
            if code is None:
                return
            ran_for = time.monotonic() - child.started
            delay = child.backoff.delay(ran_for)
            child.restarts += 1
            child.restart_at = time.monotonic() + delay
            log.error("child exited unexpectedly; restarting", child=child.name,
                      exit=_describe_exit(code), ran_s=round(ran_for, 1), restart_in_s=delay,
                      restarts=child.restarts)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    async def _start(self, child: Child) -> None:
        read_end, write_end = os.pipe()
        child.take_pipe(write_end)
        spec = self.spec(child, read_end)
        await child.start(spec, self.command(child, spec))


async def _until(work: Coroutine[Any, Any, T], stop: asyncio.Event) -> T | None:
    """`work`'s result, or None (`work` cancelled) once `stop` is set."""
    task = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for future in (task, stopping):
            future.cancel()
    return None if stop.is_set() or task.cancelled() else task.result()


def embedded_url(config: Config, client: aioredis.Redis) -> str | None:
    """The URL of the embedded server `client` talks to (None when Redis is external)."""
    if not config.redis.embedded:
        return None
    found = client.connection_pool.connection_kwargs
    return f"redis://{found['host']}:{found['port']}/{found.get('db', 0)}"


async def supervise(config: Config, path: Path, pollers: int, log_args: Sequence[str]) -> None:
    """Run `pollers` poller processes and one worker process until SIGINT/SIGTERM, with the
    embedded Redis (if configured) and the operations endpoint (if `http.listen`) here."""
    from monitor.ops.gather import fleet_endpoint

    structlog.contextvars.bind_contextvars(process="supervisor")
    stop = asyncio.Event()
    install_stop_signals(stop)
    async with connect_redis(config) as client:
        supervisor = Supervisor(config, path, pollers, log_args, embedded_url(config, client))
        async with fleet_endpoint(supervisor, client):
            await supervisor.run(stop)
