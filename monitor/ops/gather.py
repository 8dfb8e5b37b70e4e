"""The operations endpoint of `livewatch run --processes N`: the supervisor alone binds
`http.listen` and answers for all its children, each of which serves its own endpoint on a
loopback port the supervisor picked (`ChildSpec.listen`), so the probes and the scrape look
as they do for one process.

- `/healthz`: 200 `{"status": "alive"}` while the supervisor runs. A child that dies is the
  supervisor's to restart, not a reason for an orchestrator to restart them all.
- `/readyz`: 200 when Redis answers the supervisor's PING and every child runs and answers
  its own `/readyz` with 200; else 503 with the reasons, each prefixed with the child's name
  (`poller-1: scheduler: stopped`, `worker: not running (restarting in 4 s)`).
- `/metrics`: every child's series with a `process` label (`poller-0` … `worker`), the
  supervisor's own `process_*`/`python_*` series (`process="supervisor"`), and per child
  `livewatch_child_up` and `livewatch_child_restarts_total`. Sum counters over `process`
  (`sum by (outcome) (rate(livewatch_polls_total[5m]))`); the gauges read from Redis are the
  same in every child (aggregate them with `max`). A child that does not answer in time is
  left out of that scrape; a restarted child's counters start from 0, which Prometheus takes
  as a counter reset of that `process`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import aiohttp
import redis.asyncio as aioredis
import structlog
from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from redis.exceptions import RedisError

from monitor.ops.endpoints import REDIS_TIMEOUT, listening, probes_app

if TYPE_CHECKING:
    from monitor.ops.supervisor import Child, Supervisor

log = structlog.get_logger("livewatch.http")

#: Longest the supervisor waits for a child's /readyz or /metrics (its own Redis reads take
#: up to REDIS_TIMEOUT).
CHILD_TIMEOUT = REDIS_TIMEOUT + 1.0


def merge(own: Iterable[Metric], children: Mapping[str, str]) -> list[Metric]:
    """One exposition from many: the families of each child's text (by child name), every
    sample labelled `process=<name>`, and `own` (the supervisor's), labelled
    `process="supervisor"` unless a sample names its `process` already."""
    families: dict[str, Metric] = {}

    def add(family: Metric, process: str) -> None:
        merged = families.get(family.name)
        if merged is None:
            merged = families[family.name] = Metric(family.name, family.documentation,
                                                    family.type)
        for found in family.samples:
            labels = found.labels if "process" in found.labels \
                else {**found.labels, "process": process}
            merged.add_sample(found.name, labels, found.value, found.timestamp)

    for family in own:
        add(family, "supervisor")
    for name, text in children.items():
        try:
            parsed = list(text_string_to_metric_families(text))
        except ValueError as exc:  # a truncated answer: that child is left out of this scrape
            log.debug("unreadable metrics of a child", child=name, error=str(exc))
            continue
        for family in parsed:
            add(family, name)
    return list(families.values())


def render(families: Sequence[Metric]) -> bytes:
    """`families` in the Prometheus text format."""

    class Fixed:
        def collect(self) -> Iterable[Metric]:
            return families

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Fixed())
    return generate_latest(registry)


def children_families(children: Sequence[Child]) -> list[Metric]:
    """`livewatch_child_up` and `livewatch_child_restarts_total`, per child."""
    up = GaugeMetricFamily("livewatch_child_up", "1 while the supervised process runs.",
                           labels=["process"])
    restarts = CounterMetricFamily(
        "livewatch_child_restarts", "Times the supervisor started a process again after it "
        "exited unexpectedly.", labels=["process"])
    for child in children:
        up.add_metric([child.name], 1 if child.running else 0)
        restarts.add_metric([child.name], child.restarts)
    return [up, restarts]


class _Fleet:
    def __init__(self, supervisor: Supervisor, client: aioredis.Redis,
                 session: aiohttp.ClientSession) -> None:
        self.supervisor = supervisor
        self.client = client
        self.session = session

    async def _get(self, child: Child, path: str) -> tuple[int, str] | None:
        """A child's answer on `path` (None: no endpoint or no answer)."""
        url = child.ops_url
        if url is None:
            return None
        try:
            async with asyncio.timeout(CHILD_TIMEOUT), self.session.get(url + path) as answer:
                return answer.status, await answer.text()
        except (aiohttp.ClientError, OSError, TimeoutError):
            return None

    async def healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(self, _request: web.Request) -> web.Response:
        reasons = ["process: stopping"] if self.supervisor.stopping else []
        try:
            async with asyncio.timeout(REDIS_TIMEOUT):
                await self.client.ping()
        except (RedisError, OSError, TimeoutError) as exc:
            reasons.append(f"redis: {exc or 'no answer to PING'}")
        children = self.supervisor.children
        for child, said in zip(children, await asyncio.gather(
                *(self._child_ready(child) for child in children)), strict=True):
            reasons += [f"{child.name}: {reason}" for reason in said]
        if reasons:
            return web.json_response({"status": "not ready", "reasons": reasons}, status=503)
        return web.json_response({"status": "ready"})

    async def _child_ready(self, child: Child) -> list[str]:
        if not child.running:
            return [child.state()]
        answer = await self._get(child, "/readyz")
        if answer is None:
            return ["no answer from its endpoint (starting?)"]
        status, body = answer
        if status == 200:
            return []
        try:
            reasons = json.loads(body).get("reasons") or [f"HTTP {status}"]
        except (ValueError, AttributeError):
            reasons = [f"HTTP {status}"]
        return [str(reason) for reason in reasons]

    async def metrics(self, _request: web.Request) -> web.Response:
        children = self.supervisor.children
        answers = await asyncio.gather(*(self._get(child, "/metrics") for child in children))
        texts = {child.name: answer[1] for child, answer in zip(children, answers, strict=True)
                 if answer is not None and answer[0] == 200}
        own = [*PROCESS_COLLECTOR.collect(), *PLATFORM_COLLECTOR.collect(),
               *GC_COLLECTOR.collect(), *children_families(children)]
        return web.Response(body=render(merge(own, texts)),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})


@contextlib.asynccontextmanager
async def fleet_endpoint(supervisor: Supervisor, client: aioredis.Redis) -> AsyncIterator[None]:
    """Serve the supervisor's endpoint on `http.listen` while the context is open (nothing
    when it is unset)."""
    listen = supervisor.config.http.listen
    address = supervisor.config.http.address
    if address is None:
        yield
        return
    async with aiohttp.ClientSession(trust_env=False) as session:
        app = probes_app(_Fleet(supervisor, client, session))
        async with listening(app, address, str(listen)):
            log.info("operations endpoint listening", listen=listen,
                     children=[child.name for child in supervisor.children])
            yield
