"""`livewatch run --processes N`: a supervisor of N poller processes and one worker process.

The pure parts first (restart backoff, `--processes`, what a child's spec changes in its
configuration, a reload keeping it, the merged /metrics, a child ignoring SIGTERM killed after
the bound); then the service as real processes
on real Redis (the embedded one the supervisor starts, or the session's private server), a
real feed server and webhook receiver: one alert per phrase post with two pollers, three
children that SIGTERM stops together, a SIGKILLed child restarted without a lost or doubled
alert, children that stop when the supervisor is SIGKILLed, `--processes 1` in one process,
and an invalid file refused before any child starts.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from feeds import Item, rss
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families
from servers import FeedServer, WebhookReceiver
from service import Service, baselined, livewatch, stream_idle, wait_until

from monitor.config.loader import parse_config
from monitor.ops.child import ChildSpec
from monitor.ops.control import Control
from monitor.ops.embedded import EmbeddedRedis, free_port
from monitor.ops.gather import merge, render
from monitor.ops.supervisor import RESTART_MAX, Backoff, Child, process_count

PHRASE = "coalition of the willing"
FEED = "/summit.rss"
NAMES = {"poller-0", "poller-1", "worker"}


def config_yaml(redis: str, feeds: FeedServer, hook: WebhookReceiver, port: int | None = None,
                *, fetch: str = "", rule: str = PHRASE) -> str:
    http = f'http: {{listen: "127.0.0.1:{port}"}}' if port else ""
    return f"""
redis: {redis}
{http}
defaults: {{interval: 0.5s, jitter: 0s, timeout: 3s, max_backoff: 1s}}
{fetch}
feeds: [{{name: summit, url: "{feeds.url(FEED)}"}}]
rules: [{{name: coalition, any: ["{rule}"], channels: [hook]}}]
channels: [{{name: hook, type: webhook, url: "{hook.url('/alerts')}"}}]
workers: {{claim_idle: 2s, retry_schedule: [100ms], shutdown_timeout: 1s}}
"""


# ---- pure parts ---------------------------------------------------------------------------

def test_restarts_back_off_and_start_over_after_a_stable_run() -> None:
    backoff = Backoff()
    assert [backoff.delay(ran_for=2) for _ in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert backoff.delay(ran_for=3600) == 1  # it had run an hour: a fresh failure
    assert backoff.delay(ran_for=1) == 2
    assert RESTART_MAX == 60


def test_processes_option_values() -> None:
    assert process_count("1") == 1 and process_count("3") == 3
    assert 1 <= process_count("auto") <= 64
    for bad in ("0", "-1", "x", "65", ""):
        with pytest.raises(ValueError, match="from 1 to 64 or `auto`"):
            process_count(bad)


BASE = """
redis: {url: embedded, data_dir: /tmp/lw-data}
http: {listen: "0.0.0.0:9108"}
fetch: {parse_processes: PARSE}
websub: {callback_url: "https://lw.example.org/websub", listen: "0.0.0.0:8080"}
feeds: [{name: a, url: "https://example.org/a.rss"}]
rules: [{name: r, any: [alpha], channels: [hook]}]
channels: [{name: hook, type: webhook, url: "https://hooks.example.org/x"}]
"""


def test_a_child_spec_narrows_the_configuration() -> None:
    config = parse_config(BASE.replace("PARSE", "auto"))
    spec = ChildSpec(name="poller-1", redis_url="redis://127.0.0.1:4242/0",
                     listen="127.0.0.1:4343", websub_listen=False, parse_processes=0,
                     parent_fd=9)
    child = spec.apply(config)
    assert not child.redis.embedded and child.redis.url == "redis://127.0.0.1:4242/0"
    assert child.redis.data_dir == config.redis.data_dir
    assert child.http.address == ("127.0.0.1", 4343)  # never the operator's http.listen
    assert child.websub.listen is None and child.websub.callback_url is not None
    assert child.fetch.parse_processes == 0 and child.fetch.parsers() == 0
    assert (child.feeds, child.rules, child.channels) == (config.feeds, config.rules,
                                                          config.channels)
    # poller-0 keeps websub.listen; an explicit parse_processes is respected
    first = ChildSpec(name="poller-0", listen=None, parse_processes=0, parent_fd=9)
    explicit = first.apply(parse_config(BASE.replace("PARSE", "3")))
    assert explicit.websub.listen == "0.0.0.0:8080" and explicit.fetch.parse_processes == 3
    assert explicit.http.address is None and explicit.redis.embedded  # no URL handed over
    assert ChildSpec.model_validate_json(spec.model_dump_json()) == spec


async def test_a_reload_keeps_the_child_spec(tmp_path: Path) -> None:
    path = tmp_path / "livewatch.yaml"
    path.write_text(BASE.replace("PARSE", "auto"))
    spec = ChildSpec(name="poller-1", redis_url="redis://127.0.0.1:4242/0",
                     listen="127.0.0.1:4343", websub_listen=False, parse_processes=0,
                     parent_fd=9)
    control = Control(spec.apply(parse_config(path.read_text())), path, spec.apply)
    path.write_text(BASE.replace("PARSE", "auto").replace("[alpha]", "[alpha, beta]"))
    assert await control.reload()
    assert control.config.rules[0].any == ["alpha", "beta"]
    assert control.config.redis.url == "redis://127.0.0.1:4242/0"
    assert control.config.websub.listen is None and control.config.fetch.parse_processes == 0


def test_merged_metrics_label_every_sample_with_its_process() -> None:
    polls = ('# HELP livewatch_polls_total Feed polls.\n# TYPE livewatch_polls_total counter\n'
             'livewatch_polls_total{outcome="ok"} N\n')
    lag = '# HELP livewatch_stream_lag Lag.\n# TYPE livewatch_stream_lag gauge\n' \
          'livewatch_stream_lag{stream="lw:events"} 0.0\n'
    restarts = CounterMetricFamily("livewatch_child_restarts", "Restarts.", labels=["process"])
    restarts.add_metric(["worker"], 2)
    up = GaugeMetricFamily("process_open_fds", "Open fds.", value=7)
    text = render(merge([restarts, up], {"poller-0": polls.replace("N", "3"),
                                         "poller-1": polls.replace("N", "4"),
                                         "worker": lag, "broken": "livewatch_polls_total{"}))
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text.decode()) for s in family.samples}
    assert samples == {
        ("livewatch_polls_total", (("outcome", "ok"), ("process", "poller-0"))): 3,
        ("livewatch_polls_total", (("outcome", "ok"), ("process", "poller-1"))): 4,
        ("livewatch_stream_lag", (("process", "worker"), ("stream", "lw:events"))): 0,
        ("livewatch_child_restarts_total", (("process", "worker"),)): 2,  # kept as named
        ("process_open_fds", (("process", "supervisor"),)): 7,
    }
    assert text.decode().count("# TYPE livewatch_polls_total counter") == 1


async def test_a_child_ignoring_sigterm_is_killed_after_the_bound(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    child = Child("worker", "worker")
    child.take_pipe(write_end)
    up = tmp_path / "up"
    code = ("import pathlib, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            f"pathlib.Path({str(up)!r}).touch(); time.sleep(60)")
    await child.start(ChildSpec(name="worker", parent_fd=read_end),
                      [sys.executable, "-c", code])

    async def started() -> bool:
        return up.exists()

    await wait_until(started, timeout=20, what="the child up")
    begun = time.monotonic()
    await child.stop(timeout=0.5)
    assert not child.running and child.process is not None
    assert child.process.returncode == -signal.SIGKILL
    assert 0.5 <= time.monotonic() - begun < 5


# ---- the service as real processes --------------------------------------------------------

def _children(pid: int) -> dict[int, list[str]]:
    """Live direct children of `pid` and their command lines (Linux /proc)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if parent == pid:
                found[int(entry.name)] = (entry / "cmdline").read_bytes().decode().split("\0")
        except (OSError, IndexError, ValueError):
            continue
    return found


def _descendants(pid: int) -> set[int]:
    out: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for p in frontier for child in _children(p)} - out
        out |= frontier
    return out


def supervised(pid: int) -> dict[str, int]:
    """The supervised children of `pid`: name -> process id."""
    out = {}
    for child, argv in _children(pid).items():
        if "--supervised" in argv:
            out[json.loads(argv[argv.index("--supervised") + 1])["name"]] = child
    return out


def _alive(pids: set[int]) -> bool:
    return any(Path(f"/proc/{pid}").exists() for pid in pids)


def log_events(service: Service) -> list[dict[str, object]]:
    return [json.loads(line) for line in service.logs().splitlines() if line.startswith("{")]


async def ready(port: int) -> bool:
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            return (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200
    except httpx.TransportError:
        return False


async def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"http://127.0.0.1:{port}/metrics")
    assert response.status_code == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text)
            for s in family.samples}


def post(feed_server: FeedServer, posts: list[Item], guid: str, phrase: bool = True) -> None:
    text = f"<p>Ministers said a {PHRASE} was forming.</p>" if phrase else "<p>Talks.</p>"
    posts.append(Item(guid, f"Update {guid}", text, len(posts)))
    feed_server.set(FEED, rss(posts))


async def polled_again(feed_server: FeedServer, times: int) -> None:
    """Wait until the feed was fetched `times` more times (a duplicate would have shown)."""
    target = feed_server.count(FEED) + times

    async def done() -> bool:
        return feed_server.count(FEED) >= target

    await wait_until(done, timeout=20, what=f"{times} more polls")


def start(tmp_path: Path, config: str, running: list[Service], *args: str) -> Service:
    cfg = tmp_path / "livewatch.yaml"
    cfg.write_text(config)
    service = Service(["run", "--config", str(cfg), "--log-format", "json", *args],
                      tmp_path / "service.log")
    running.append(service)
    service.start()
    return service


slow = pytest.mark.slow


@slow
async def test_two_pollers_and_a_worker_alert_once_and_stop_together(
        feed_server: FeedServer, webhook_receiver: WebhookReceiver, tmp_path: Path,
        running: list[Service]) -> None:
    posts = [Item("p0", "Opening", "<p>The summit opens.</p>", 0)]
    feed_server.set(FEED, rss(posts))
    port, data = free_port(), tmp_path / "data"
    service = start(tmp_path, config_yaml(f'{{url: embedded, data_dir: "{data}"}}', feed_server,
                                          webhook_receiver, port), running, "--processes", "2")
    assert service.process is not None
    pid = service.process.pid
    await wait_until(lambda: ready(port), what="/readyz 200 from the supervisor",
                     service=service)

    # Three children, each its own interpreter; the embedded Redis started once (by the
    # supervisor); no parsing processes (`auto` is 0 under two pollers).
    children = supervised(pid)
    assert set(children) == NAMES
    others = [argv for child, argv in _children(pid).items() if child not in children.values()]
    assert len(others) == 1 and "redis-server" in others[0][0], others
    assert all(not _children(child) for child in children.values())
    url = (data / "redis.url").read_text().strip()
    assert all(f'"redis_url":"{url}"' in " ".join(argv)
               for argv in _children(pid).values() if "--supervised" in argv)

    client: aioredis.Redis = aioredis.from_url(url, decode_responses=True)
    try:
        await wait_until(lambda: baselined(client, "summit"), service=service)
        post(feed_server, posts, "p1")
        webhook_receiver.wait_for(lambda r: len(r) == 1)
        await wait_until(lambda: stream_idle(client), service=service)
        await polled_again(feed_server, 4)
    finally:
        await client.aclose()
    assert [(b["rule"], b["entry"]["id"]) for b in webhook_receiver.bodies()] == [
        ("coalition", "p1")]

    # One scrape for all: every child's series, labelled with its process.
    metrics = await scrape(port)
    polls = {labels for (name, labels) in metrics if name == "livewatch_polls_total"}
    assert {dict(labels)["process"] for labels in polls} <= {"poller-0", "poller-1"}
    assert metrics[("livewatch_deliveries_total", (("channel", "hook"),
                                                   ("outcome", "delivered"),
                                                   ("process", "worker")))] == 1
    assert {name: metrics[("livewatch_child_up", (("process", name),))]
            for name in NAMES} == dict.fromkeys(NAMES, 1)
    assert metrics[("livewatch_redis_up", (("process", "worker"),))] == 1

    # SIGHUP reaches every child, which reloads the file.
    service.process.send_signal(signal.SIGHUP)

    async def reloaded() -> bool:
        return {e.get("process") for e in log_events(service)
                if e["event"] == "configuration reloaded"} == NAMES

    await wait_until(reloaded, what="every child reloaded", service=service)

    # SIGTERM stops them all, the embedded Redis last; nothing is left running.
    everything = _descendants(pid)
    started = time.monotonic()
    assert service.stop() == 0, service.logs()[-3000:]
    assert time.monotonic() - started < 10
    assert not _alive(everything)
    assert not (data / "redis.url").exists()
    logs = service.logs()
    assert "Traceback" not in logs and "exited unexpectedly" not in logs
    assert {e.get("process") for e in log_events(service)
            if e["event"] in ("pollers stopped", "worker stopped")} == NAMES


@slow
async def test_a_killed_child_is_restarted_and_alerts_arrive_once(
        redis_server: EmbeddedRedis, redis_client: aioredis.Redis, feed_server: FeedServer,
        webhook_receiver: WebhookReceiver, tmp_path: Path, running: list[Service]) -> None:
    posts = [Item("p0", "Opening", "<p>The summit opens.</p>", 0)]
    feed_server.set(FEED, rss(posts))
    port = free_port()
    service = start(tmp_path, config_yaml(f'{{url: "{redis_server.url}"}}', feed_server,
                                          webhook_receiver, port), running, "--processes", "2")
    assert service.process is not None
    pid = service.process.pid
    await wait_until(lambda: ready(port), what="/readyz 200", service=service)
    await wait_until(lambda: baselined(redis_client, "summit"), service=service)
    post(feed_server, posts, "p1")
    webhook_receiver.wait_for(lambda r: len(r) == 1)
    await wait_until(lambda: stream_idle(redis_client), service=service)

    before = supervised(pid)
    for name in ("worker", "poller-1"):
        os.kill(before[name], signal.SIGKILL)

    async def restarted() -> bool:
        now = supervised(pid)
        return (set(now) == NAMES and now["worker"] != before["worker"]
                and now["poller-1"] != before["poller-1"] and await ready(port))

    await wait_until(restarted, what="both children started again and ready", service=service)
    assert supervised(pid)["poller-0"] == before["poller-0"]
    deaths = [e for e in log_events(service) if e["event"] == "child exited unexpectedly; "
              "restarting"]
    assert sorted((e["child"], e["exit"]) for e in deaths) == [("poller-1", "SIGKILL"),
                                                                 ("worker", "SIGKILL")]

    post(feed_server, posts, "p2")
    post(feed_server, posts, "p3", phrase=False)
    webhook_receiver.wait_for(lambda r: len(r) == 2)
    await wait_until(lambda: stream_idle(redis_client), service=service)
    await polled_again(feed_server, 4)
    bodies = webhook_receiver.bodies()
    assert sorted(b["entry"]["id"] for b in bodies) == ["p1", "p2"]
    assert len({r.headers["webhook-id"] for r in webhook_receiver.received}) == 2
    metrics = await scrape(port)
    assert metrics[("livewatch_child_restarts_total", (("process", "worker"),))] == 1
    assert metrics[("livewatch_child_restarts_total", (("process", "poller-0"),))] == 0
    assert service.stop() == 0


@slow
async def test_children_stop_when_the_supervisor_dies(
        redis_server: EmbeddedRedis, redis_client: aioredis.Redis, feed_server: FeedServer,
        webhook_receiver: WebhookReceiver, tmp_path: Path, running: list[Service]) -> None:
    feed_server.set(FEED, rss([Item("p0", "Opening", "<p>The summit opens.</p>", 0)]))
    service = start(tmp_path, config_yaml(f'{{url: "{redis_server.url}"}}', feed_server,
                                          webhook_receiver), running, "--processes", "2")
    assert service.process is not None
    pid = service.process.pid

    async def all_started() -> bool:
        return {e.get("process") for e in log_events(service)
                if e["event"] in ("pollers started", "worker started")} == NAMES

    await wait_until(all_started, what="three children started", service=service)
    children = set(supervised(pid).values())
    assert len(children) == 3
    service.kill()  # SIGKILL: no chance to stop them

    async def gone() -> bool:
        return not _alive(children)

    await wait_until(gone, timeout=15, what="the children gone with the supervisor",
                     service=service)
    said = {e.get("process") for e in log_events(service)
            if e["event"] == "supervisor gone; stopping"}
    assert said == NAMES


@slow
async def test_one_process_keeps_pollers_and_worker_in_process(
        redis_server: EmbeddedRedis, redis_client: aioredis.Redis, feed_server: FeedServer,
        webhook_receiver: WebhookReceiver, tmp_path: Path, running: list[Service]) -> None:
    posts = [Item("p0", "Opening", "<p>The summit opens.</p>", 0)]
    feed_server.set(FEED, rss(posts))
    service = start(tmp_path, config_yaml(f'{{url: "{redis_server.url}"}}', feed_server,
                                          webhook_receiver, fetch="fetch: {parse_processes: 0}"),
                    running, "--processes", "1")
    assert service.process is not None
    await wait_until(lambda: baselined(redis_client, "summit"), service=service)
    post(feed_server, posts, "p1")
    webhook_receiver.wait_for(lambda r: len(r) == 1)
    assert _children(service.process.pid) == {}  # no supervisor, no child process
    events = [e["event"] for e in log_events(service)]
    assert "pollers started" in events and "worker started" in events
    assert "supervisor started" not in events
    assert service.stop() == 0


def test_an_invalid_file_exits_2_before_any_child(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: [{name: r, any: [x], channels: [nowhere]}]\n")
    result = livewatch("run", "--processes", "2", "--config", str(bad), timeout=30)
    assert result.returncode == 2
    assert "invalid configuration" in result.stderr and "unknown channel 'nowhere'" in (
        result.stderr)
    assert "child started" not in result.stderr + result.stdout
    usage = livewatch("run", "--processes", "0", "--config", str(bad), timeout=30)
    assert usage.returncode == 2 and "from 1 to 64 or `auto`" in usage.stderr
