"""The parse-time guard: parsing runs off the event loop with a deadline, in parsing
processes when the service runs them (`use_processes`; `fetch.parse_processes`), else in
worker threads (the tools: one parse is not worth starting a process).

In a process, a parse holds neither the service's interpreter (the event loop, the worker's
deliveries and the other polls go on at full speed while a burst of changed documents is
parsed) nor its memory, and a parse past its deadline is killed: the pool is replaced (its
other parses are submitted again to the new one) and the process exits whatever the parser
was doing. A thread cannot be killed, so there the deadline only frees the poll ("parse took
longer than 10s"); what bounds the thread itself is its input (`defaults.max_body`, the entry
cap and the nesting limits of `monitor.sources.guards`). While a timed-out parse of a feed is
still running, the next poll of that feed fails at once instead of starting a second one, so
one hostile feed occupies at most one parsing thread. Parsers' own crashes (RecursionError,
an unexpected exception in a library) become a ParseError for that feed, never a crashed
poller.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

import structlog

from monitor.core.errors import ParseError

T = TypeVar("T")
#: How often a parsing process checks that the service that started it is still there.
PARENT_CHECK = 1.0

#: Parsing threads, apart from asyncio's default executor (DNS lookups use that one).
_EXECUTOR = concurrent.futures.ThreadPoolExecutor(
    max_workers=min(32, (os.cpu_count() or 1) + 4), thread_name_prefix="livewatch-parse")
#: Parses that outlived their deadline, by feed.
_orphans: dict[str, concurrent.futures.Future[Any]] = {}
#: Every parse submitted to a thread and not finished yet -> its feed (what shutdown would
#: wait for).
_running: dict[concurrent.futures.Future[Any], str] = {}
#: The same for parses in parsing processes (stopped with them).
_in_processes: dict[concurrent.futures.Future[Any], str] = {}


class _Processes:
    """The parsing processes of a service (forkserver: no fork of a threaded process)."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.pool = self._new()

    def _new(self) -> concurrent.futures.ProcessPoolExecutor:
        return concurrent.futures.ProcessPoolExecutor(
            max_workers=self.count, mp_context=multiprocessing.get_context("forkserver"),
            initializer=_warm, initargs=(os.getpid(),))

    def replace(self, broken: concurrent.futures.ProcessPoolExecutor) -> None:
        """Kill the processes of `broken` (a parse in it outlived its deadline) and start a
        new pool, unless that was done already."""
        if broken is not self.pool:
            return
        self.pool = self._new()
        _kill(broken)

    def close(self) -> None:
        _kill(self.pool)


_processes: _Processes | None = None
#: Seconds parsing processes may take to start and import the parsers.
_START_TIMEOUT = 30.0


def use_processes(count: int) -> None:
    """Parse in `count` processes from now on (0: in threads again); the service calls it."""
    global _processes
    if _processes is not None:
        _processes.close()
    _processes = _Processes(count) if count > 0 else None
    if _processes is None:
        return
    # Start them now, not at the first changed document, and make sure they can parse: a
    # process that cannot start (a main module it cannot import again, no /dev/shm) would fail
    # every parse; then parse in threads, said once.
    warming = [_processes.pool.submit(_ready) for _ in range(count)]
    try:
        for future in warming:
            future.result(timeout=_START_TIMEOUT)
    except Exception as exc:  # whatever stops them, threads still work
        structlog.get_logger("livewatch.sandbox").warning(
            "parsing processes could not start; parsing in threads",
            error=f"{type(exc).__name__}: {exc}"[:300])
        _processes.close()
        _processes = None


def parsing_processes() -> list[int]:
    """The process ids of the parsing processes running now (benchmarks count their CPU)."""
    if _processes is None:
        return []
    return [p.pid for p in (getattr(_processes.pool, "_processes", None) or {}).values()
            if p.pid is not None]


def stop_processes() -> None:
    """Kill the parsing processes (at shutdown: a parse still running is abandoned, said
    once)."""
    stuck = sorted({feed for future, feed in list(_in_processes.items()) if not future.done()})
    if _processes is not None and stuck:
        structlog.get_logger("livewatch.sandbox").warning(
            "stopping the parsing processes with a parse still running; it is abandoned",
            feeds=stuck)
    use_processes(0)


def _kill(pool: concurrent.futures.ProcessPoolExecutor) -> None:
    # The executor has no way to stop a running task: kill its processes (private, stable
    # since 3.8), then let it clean up without waiting for them.
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.kill()
    pool.shutdown(wait=False, cancel_futures=True)


def _warm(service: int) -> None:
    """Import the parsers in a new parsing process before its first document, and end it
    when the `service` process is gone (killed outright, it cannot stop its pool)."""
    import monitor.sources  # noqa: F401

    threading.Thread(target=_watch, args=(service,), name="lw-parent-watch",
                     daemon=True).start()


def _ready() -> bool:
    """Run in each new parsing process once, to start it and prove it can take work."""
    return True


def _watch(service: int) -> None:
    while True:
        time.sleep(PARENT_CHECK)
        if not _alive(service):
            os._exit(0)


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, killed and not yet reaped, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True


async def guarded_parse(feed: str, timeout: float, func: Callable[..., T], *args: object,
                        **kwargs: object) -> T:
    """`func(*args, **kwargs)` in a parsing process (`use_processes`) or thread; ParseError
    after `timeout` seconds, when the previous parse of `feed` is still running (threads),
    or when the parser itself crashes."""
    if _processes is not None:
        return await _in_process(_processes, feed, timeout, func, args, kwargs)
    orphan = _orphans.get(feed)
    if orphan is not None:
        if not orphan.done():
            raise ParseError("the previous parse of this feed timed out and is still running")
        del _orphans[feed]
    future = _EXECUTOR.submit(_call, func, args, kwargs)
    _running[future] = feed
    future.add_done_callback(_finished)
    try:
        async with asyncio.timeout(timeout):
            return await asyncio.wrap_future(future)
    except TimeoutError as exc:
        _orphans[feed] = future
        raise ParseError(f"parse took longer than {timeout:g}s") from exc


async def _in_process(processes: _Processes, feed: str, timeout: float,
                      func: Callable[..., T], args: tuple[object, ...],
                      kwargs: dict[str, object]) -> T:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    for _attempt in range(2):  # again in a new pool when another parse's kill broke this one
        pool = processes.pool
        try:
            future = pool.submit(_call, func, args, kwargs)
        except (BrokenProcessPool, RuntimeError):  # replaced (shut down) meanwhile
            continue
        _in_processes[future] = feed
        future.add_done_callback(_finished)
        try:
            async with asyncio.timeout_at(deadline):
                return await asyncio.wrap_future(future)
        except TimeoutError as exc:
            processes.replace(pool)
            raise ParseError(f"parse took longer than {timeout:g}s (stopped)") from exc
        except BrokenProcessPool:
            processes.replace(pool)  # a parsing process died (killed, out of memory)
    raise ParseError("the parsing processes kept failing")


def _finished(future: concurrent.futures.Future[Any]) -> None:
    _running.pop(future, None)
    _in_processes.pop(future, None)


def running_parses() -> list[str]:
    """Feeds whose parse is still running in a parsing thread (a thread cannot be stopped:
    the process exits without waiting for them, see `exit_abandoning_parses`)."""
    return sorted({feed for future, feed in list(_running.items()) if not future.done()})


def exit_abandoning_parses(status: int = 0) -> None:
    """End the process now if a parse is still running (Python would wait for its thread at
    exit, however long the parse takes); return otherwise."""
    stuck = running_parses()
    if not stuck:
        return
    structlog.get_logger("livewatch.sandbox").warning(
        "exiting with a parse still running; it is abandoned", feeds=stuck)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _call(func: Callable[..., T], args: tuple[object, ...], kwargs: dict[str, object]) -> T:
    try:
        return func(*args, **kwargs)
    except ParseError:
        raise
    except RecursionError as exc:
        raise ParseError("document nested too deeply; not parsed") from exc
    except MemoryError as exc:
        raise ParseError("out of memory while parsing") from exc
    except Exception as exc:  # a parser library's bug must not take the poller down
        raise ParseError(f"parser failed: {type(exc).__name__}: {exc}"[:300]) from exc
