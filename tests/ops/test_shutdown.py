"""Shutdown is bounded whatever a parse does: `livewatch run` SIGTERMed while a parsing thread
or process is deep in a document that takes a minute to parse exits within the shutdown bound,
says once what it abandoned, logs no traceback and leaves no process behind. A real process, a
real redis-server."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from servers import FeedServer, WebhookReceiver
from service import Service, wait_until

from monitor.ops.embedded import EmbeddedRedis

pytestmark = pytest.mark.slow

SLOW = "/slow.rss"
#: Raw markup in a description sends the document to feedparser's loose parser, which reads
#: it at ~10-35 us a character: about a minute for these 4 MB (every limit is respected).
BODY = ('<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><item><guid>g</guid>'
        "<title>t</title><description>" + "<a" * 2_000_000 + "</description></item>"
        "</channel></rss>")
#: `workers.shutdown_timeout` below; the pollers wait 10 s for polls in flight.
BOUND = 10.0 + 5.0


def _descendants(pid: int) -> set[int]:
    """Every live process below `pid` (Linux /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(
                    (entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pids: set[int]) -> bool:
    return any(Path(f"/proc/{pid}").exists() for pid in pids)


def _cpu_seconds(pid: int) -> float:
    """User + system time of `pid` (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.parametrize(("processes", "said"), [
    pytest.param(0, "exiting with a parse still running", id="parsing-thread"),
    pytest.param(2, "stopping the parsing processes with a parse still running",
                 id="parsing-process"),
])
async def test_sigterm_during_a_stuck_parse_exits_in_time(
        redis_server: EmbeddedRedis, feed_server: FeedServer,
        webhook_receiver: WebhookReceiver, tmp_path: Path, running: list[Service],
        processes: int, said: str) -> None:
    feed_server.set(SLOW, BODY, content_type="application/rss+xml")
    cfg = tmp_path / "livewatch.yaml"
    cfg.write_text(f"""
redis: {{url: "{redis_server.url}"}}
defaults: {{interval: 1s, jitter: 0s, timeout: 10s}}
fetch: {{parse_timeout: 120s, parse_processes: {processes}}}
feeds: [{{name: slow, url: "{feed_server.url(SLOW)}"}}]
rules: [{{name: any, any: ["coalition"], channels: [hook]}}]
channels: [{{name: hook, type: webhook, url: "{webhook_receiver.url('/a')}"}}]
workers: {{shutdown_timeout: 2s}}
""")
    service = Service(["run", "--config", str(cfg), "--log-format", "json"],
                      tmp_path / "service.log")
    running.append(service)
    service.start()

    assert service.process is not None
    pid = service.process.pid

    def cpu_seconds() -> float:  # of the service and its parsing processes
        return sum(_cpu_seconds(p) for p in {pid, *_descendants(pid)})

    async def fetched() -> bool:
        return feed_server.count(SLOW) >= 1 and '"pollers started"' in service.logs()

    await wait_until(fetched, what="the slow document fetched", service=service)
    after_fetch = cpu_seconds()

    async def parsing() -> bool:  # the parse is the only thing burning CPU now
        return cpu_seconds() - after_fetch > 2.0

    await wait_until(parsing, what="the parse under way", service=service)
    children = _descendants(pid)
    started = time.monotonic()
    assert service.stop(timeout=BOUND + 10) == 0
    took = time.monotonic() - started
    assert took < BOUND, f"shutdown took {took:.1f} s"
    logs = service.logs()
    assert "Traceback" not in logs and "CancelledError" not in logs
    assert logs.count("parse still running") == 1 and said in logs

    async def all_gone() -> bool:
        return not _alive(children)

    await wait_until(all_gone, timeout=10, what="its parsing processes gone")
