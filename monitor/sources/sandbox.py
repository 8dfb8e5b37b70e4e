"""The parse-time guard: parsing runs in a worker thread with a deadline.

A thread cannot be killed, so the deadline only frees the poll ("parse took longer than
10s"); what bounds the thread itself is its input (`defaults.max_body`, the entry cap and the
nesting limits of `monitor.sources.guards`). While a timed-out parse of a feed is still running,
the next poll of that feed fails at once instead of starting a second one, so one hostile feed
occupies at most one parsing thread. Parsers' own crashes (RecursionError, an unexpected
exception in a library) become a ParseError for that feed, never a crashed poller.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import structlog

from monitor.core.errors import ParseError

T = TypeVar("T")

#: Parsing threads, apart from asyncio's default executor (DNS lookups use that one).
_EXECUTOR = concurrent.futures.ThreadPoolExecutor(
    max_workers=min(32, (os.cpu_count() or 1) + 4), thread_name_prefix="livewatch-parse")
#: Parses that outlived their deadline, by feed.
_orphans: dict[str, concurrent.futures.Future[Any]] = {}
#: Every parse submitted and not finished yet -> its feed (what shutdown would wait for).
_running: dict[concurrent.futures.Future[Any], str] = {}


async def guarded_parse(feed: str, timeout: float, func: Callable[..., T], *args: object,
                        **kwargs: object) -> T:
    """`func(*args, **kwargs)` in a parsing thread; ParseError after `timeout` seconds, when
    the previous parse of `feed` is still running, or when the parser itself crashes."""
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


def _finished(future: concurrent.futures.Future[Any]) -> None:
    _running.pop(future, None)


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
