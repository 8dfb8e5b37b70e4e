"""The parse-time guard (`monitor.sources.sandbox`): parsing processes, their deadline, crashes."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.core.errors import ParseError
from monitor.sources import parse_document
from monitor.sources.sandbox import guarded_parse, stop_processes, use_processes

PAGE = Path(__file__).parents[1] / "data" / "pages" / "jsonld_noids.html"
URL = "https://news.example.org/live/page"


def slow_parse(seconds: float) -> int:
    """Stands in for a parser stuck on a document: busy for `seconds`."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return os.getpid()


def pid() -> int:
    return os.getpid()


def crash() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.fixture
def processes() -> Iterator[None]:
    use_processes(2)
    try:
        yield
    finally:
        stop_processes()


async def test_a_document_parses_in_a_process_as_in_a_thread(processes: None) -> None:
    body = PAGE.read_bytes()
    threaded = parse_document("auto", body, URL, "text/html")
    document = await guarded_parse("live", 30, parse_document, "auto", body, URL, "text/html",
                                   versions=threaded.versions)
    assert [e.to_dict() for e in document.entries] == [e.to_dict() for e in threaded.entries]
    assert [e.version for e in document.entries] == [e.version for e in threaded.entries]
    # the memo comes back: keyed by string hashes, the same in every parsing process (forked
    # from one server), not those of this process
    assert set(document.versions.values()) == set(threaded.versions.values())
    again = await guarded_parse("live", 30, parse_document, "auto", body, URL, "text/html",
                                versions=document.versions)
    assert again.versions == document.versions
    assert document.strategy == threaded.strategy
    assert await guarded_parse("live", 30, pid) != os.getpid()


async def test_a_parse_past_its_deadline_is_stopped_and_the_others_go_on(
        processes: None) -> None:
    stuck_pid = asyncio.create_task(guarded_parse("hostile", 30, pid))
    worker = await stuck_pid
    started = time.monotonic()
    stuck = asyncio.create_task(guarded_parse("hostile", 0.5, slow_parse, 60))
    other = asyncio.create_task(guarded_parse("other", 30, slow_parse, 0.3))
    with pytest.raises(ParseError, match=r"longer than 0.5s \(stopped\)"):
        await stuck
    assert time.monotonic() - started < 5
    assert await other > 0  # finished, or submitted again to the new processes
    assert await guarded_parse("hostile", 30, pid) > 0  # the feed can be parsed again
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the stuck process was killed, not left running
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the parsing process of the stuck parse is still alive")


async def test_a_parser_that_kills_its_process_is_a_parse_error(processes: None) -> None:
    with pytest.raises(ParseError, match="parsing processes kept failing"):
        await guarded_parse("crashing", 30, crash)
    assert await guarded_parse("fine", 30, pid) > 0


async def test_parser_exceptions_are_parse_errors_there_too(processes: None) -> None:
    with pytest.raises(ParseError, match="empty document"):
        await guarded_parse("empty", 30, parse_document, "auto", b"  ", URL, None)


_KILLED_SERVICE = """
import asyncio, os, signal, sys
from monitor.sources.sandbox import guarded_parse, use_processes

def pid():
    return os.getpid()

async def main():
    use_processes(2)
    print(await guarded_parse("f", 10, pid), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer would: no cleanup at all

if __name__ == "__main__":
    asyncio.run(main())
"""


def test_parsing_processes_end_when_the_service_is_killed(tmp_path: Path) -> None:
    """A service killed outright cannot stop its pool: each parsing process notices its
    service is gone (within a second or two) and exits, and so does their forkserver."""
    import subprocess
    import sys

    script = tmp_path / "service.py"
    script.write_text(_KILLED_SERVICE)
    out = tmp_path / "out.txt"
    with out.open("w") as sink:  # not a pipe: the orphans would hold it open
        service = subprocess.Popen(
            [sys.executable, str(script)], stdout=sink, stderr=subprocess.STDOUT,
            cwd=Path(__file__).parents[2],
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
        assert service.wait(60) == -signal.SIGKILL, out.read_text()
    worker = int(out.read_text().split()[0])
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError(f"parsing process {worker} outlived its killed service")
