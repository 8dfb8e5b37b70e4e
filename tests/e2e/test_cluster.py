"""livewatch on a 3-master Redis Cluster: the pipeline, `status`, `replay` and data-loss checks
read and write every partition; a bad cluster setting is refused by name."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from feeds import Item, rss
from servers import FeedServer, WebhookReceiver
from service import Service, baselined, cluster_redis_yaml, livewatch, stream_idle, wait_until

from monitor.config.loader import parse_config
from monitor.core import keys
from monitor.core.errors import ConfigError
from monitor.core.models import Notice
from monitor.ops.embedded import LocalCluster
from monitor.poll.dataloss import EpochWatch
from monitor.poll.role import make_state

PHRASE = "<p>Envoys speak of a “coalition of the willing” forming tonight.</p>"
FEEDS = [f"desk{i}" for i in range(8)]


def config_yaml(redis: str, feeds: FeedServer, hook: WebhookReceiver) -> str:
    lines = [redis, "defaults: {interval: 0.3s, jitter: 0s, timeout: 3s}", "feeds:"]
    lines += [f'  - {{name: {name}, url: "{feeds.url(f"/{name}.rss")}"}}' for name in FEEDS]
    lines += ['rules: [{name: coalition, any: ["coalition of the willing"], channels: [hook]}]',
              f'channels: [{{name: hook, type: webhook, url: "{hook.url("/alerts")}"}}]',
              "workers: {claim_idle: 2s, retry_schedule: [100ms]}"]
    return "\n".join(lines) + "\n"


@pytest.mark.slow
async def test_run_on_a_cluster_alerts_once_and_status_and_replay_see_every_partition(
        redis_cluster: LocalCluster, cluster_client: aioredis.Redis, feed_server: FeedServer,
        webhook_receiver: WebhookReceiver, tmp_path: Path, running: list[Service]) -> None:
    spread = {keys.partition(name).events for name in FEEDS}
    assert len(spread) >= 4
    assert len({redis_cluster.slot_owner(stream) for stream in spread}) >= 2
    for name in FEEDS:
        feed_server.set(f"/{name}.rss", rss([Item(f"{name}-1", "Opening", PHRASE, 1)]))
    cfg = tmp_path / "livewatch.yaml"
    cfg.write_text(config_yaml(cluster_redis_yaml(redis_cluster.url), feed_server,
                               webhook_receiver))
    service = Service(["run", "--config", str(cfg)], tmp_path / "service.log")
    running.append(service)
    service.start()
    for name in FEEDS:  # what is there at first is the baseline: no alert
        await wait_until(lambda n=name: baselined(cluster_client, n), what=f"{name} baseline",
                         service=service)
    for name in FEEDS:
        feed_server.set(f"/{name}.rss", rss([Item(f"{name}-1", "Opening", PHRASE, 1),
                                             Item(f"{name}-2", "Later", PHRASE, 2)]))
    webhook_receiver.wait_for(lambda r: len(r) >= len(FEEDS))
    await wait_until(lambda: stream_idle(cluster_client), what="every partition acknowledged",
                     service=service)

    alerted = Counter((b["feed"]["name"], b["entry"]["id"]) for b in webhook_receiver.bodies())
    assert alerted == Counter({(name, f"{name}-2"): 1 for name in FEEDS})

    status = livewatch("status", "--json", "--config", str(cfg))
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert {f["name"]: f["entries"] for f in report["feeds"]} == dict.fromkeys(FEEDS, 2)
    assert len(report["workers"]) == 1 and report["dead_letters"] == 0
    streams = {s["stream"]: s for s in report["streams"]}
    assert spread <= set(streams)
    assert sum(streams[s]["length"] for s in spread) == len(FEEDS)

    replay = livewatch("replay", "--since", "1h", "--config", str(cfg))
    assert replay.returncode == 0, replay.stderr
    assert f"{len(FEEDS)} events in the last 1h; {len(FEEDS)} would alert" in replay.stdout
    assert all(f"{name}-2" in replay.stdout for name in FEEDS)
    assert service.stop() == 0


async def test_a_master_that_comes_back_empty_is_noticed(
        redis_cluster: LocalCluster, cluster_client: aioredis.Redis) -> None:
    """Each partition keeps its own epoch token: flushing one master (its slots' data gone)
    sends one state_lost notice, as a lost standalone server would."""
    from monitor.config.models import Config

    watch = EpochWatch(cluster_client, make_state(Config(), cluster_client))
    assert await watch.check() is False
    assert await watch.check() is False
    victim = redis_cluster.slot_owner(keys.partitions()[-1].epoch)
    node = aioredis.Redis(port=victim, decode_responses=True)
    await node.flushall()
    await node.aclose()
    assert await watch.check() is True
    assert await watch.check() is False
    notices = [Notice.decode(f["notice"]) for part in keys.partitions()
               for _, f in await cluster_client.xrange(part.notices)]
    assert [n.kind for n in notices] == ["state_lost"]


@pytest.mark.parametrize(("redis", "reason"), [
    ("{cluster: true}", "needs `url` naming a cluster node"),
    ('{url: "redis://127.0.0.1:7000/2", cluster: true}', "only database 0"),
    ('{url: "redis://127.0.0.1:7000", cluster: true, partitions: 0}', "greater than or equal"),
])
def test_bad_cluster_settings_are_refused_by_name(redis: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(f"redis: {redis}\n", "lw.yaml", {})
    (problem,) = info.value.problems
    assert problem.file == "lw.yaml" and problem.location.startswith("redis") \
        and reason in problem.reason, problem
