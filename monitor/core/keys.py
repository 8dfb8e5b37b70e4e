"""Every Redis key and stream name livewatch uses; nothing else spells a key.

Two layouts. On one Redis server (or Sentinel) a feed's keys share the hash tag `{feed}` and
all feeds' events go to one stream. On Redis Cluster (`use_cluster`) feeds are spread over a
fixed number of partitions (by CRC32 of the name): a feed's keys and its partition's event,
notice and dead-letter streams share the partition's hash tag `{pK}`, so a poll's commit (one
Lua script over the feed's keys and its events stream) stays on one slot, and workers read
every partition. The delivery outbox stays on its one tag `{outbox}` (one master carries it),
WebSub subscriptions on `{websub}`.
"""

from __future__ import annotations

import zlib
from functools import lru_cache
from typing import NamedTuple

PREFIX = "lw"

#: Stream of `new`/`updated` events, consumed by workers through `CONSUMER_GROUP`.
EVENTS_STREAM = f"{PREFIX}:events"
#: Events a worker failed to handle `max_deliveries` times, with the last error.
DEAD_EVENTS_STREAM = f"{PREFIX}:events:dead"
CONSUMER_GROUP = "workers"
#: Operator notices (flood breaker tripped, feed failing, recovered, Redis state lost).
NOTICES_STREAM = f"{PREFIX}:notices"
#: A token written once into an empty Redis: a poller that sees it change knows Redis lost its
#: data (`monitor.poll.dataloss`).
EPOCH = f"{PREFIX}:epoch"
#: Hash: `{channel}:{outcome}` -> count of deliveries (`delivered`, `retry`, `dead`), for status.
CHANNEL_STATS = f"{PREFIX}:stats:channels"




class Partition(NamedTuple):
    """The streams of one partition of feeds (the whole of them on one Redis server)."""

    #: `new`/`updated` events of the partition's feeds.
    events: str
    #: Operator notices about them (and, in partition 0, about no feed in particular).
    notices: str
    #: Events and notices dead-lettered by workers.
    dead: str
    #: The data-loss token (`monitor.poll.dataloss`) of the node holding the partition.
    epoch: str


def _streams(parts: tuple[Partition, ...]) -> dict[str, tuple[Partition, str]]:
    out: dict[str, tuple[Partition, str]] = {}
    for part in parts:
        out[part.events], out[part.notices] = (part, "event"), (part, "notice")
    return out


_STANDALONE = (Partition(EVENTS_STREAM, NOTICES_STREAM, DEAD_EVENTS_STREAM, EPOCH),)
_partitions: tuple[Partition, ...] = _STANDALONE
_by_stream = _streams(_STANDALONE)


def use_cluster(partitions: int | None) -> None:
    """Use the Redis Cluster layout with `partitions` partitions (None: the one-server layout).
    Called once per process before any key is spelled (`monitor.ops.runtime.redis_client`)."""
    global _partitions, _by_stream
    if partitions is None:
        _partitions = _STANDALONE
    else:
        tags = [f"{PREFIX}:{{p{k}}}" for k in range(partitions)]
        _partitions = tuple(Partition(f"{tag}:events", f"{tag}:notices", f"{tag}:events:dead",
                                      f"{tag}:epoch") for tag in tags)
    _by_stream = _streams(_partitions)
    _feed.cache_clear()


def partitions() -> tuple[Partition, ...]:
    """Every partition, in order (one on a single Redis server)."""
    return _partitions


def _index(feed: str) -> int:
    return zlib.crc32(feed.encode()) % len(_partitions)


def partition(feed: str) -> Partition:
    """The partition holding `feed`'s keys and events."""
    return _partitions[_index(feed)]


def by_stream() -> dict[str, tuple[Partition, str]]:
    """Each consumed stream -> its partition and the field its messages carry."""
    return _by_stream


@lru_cache(maxsize=1 << 17)
def _feed(feed: str, suffix: str) -> str:
    if _partitions is _STANDALONE:
        return f"{PREFIX}:{{{feed}}}:{suffix}"
    return f"{PREFIX}:{{p{_index(feed)}}}:{feed}:{suffix}"


def fingerprints(feed: str) -> str:
    """Hash: entry id -> content version of every entry seen (capped)."""
    return _feed(feed, "fp")


def texts(feed: str) -> str:
    """Hash: entry id -> JSON {title, text} of the last version seen (for edit comparison)."""
    return _feed(feed, "text")


def order(feed: str) -> str:
    """Sorted set: entry id scored by first-seen sequence, to evict the oldest past the cap."""
    return _feed(feed, "order")


def meta(feed: str) -> str:
    """Hash: `baselined`, `seq`, `body_hash`, HTTP validators `etag` and `last_modified`,
    `identity` (`content` for feeds that churn ids), `max_events`, `coverage_end`."""
    return _feed(feed, "meta")


def health(feed: str) -> str:
    """Hash: poll health (consecutive failures, last status and error, timestamps)."""
    return _feed(feed, "health")


def lease(feed: str) -> str:
    """String (expiring): `{owner} {fence}` of the poller whose turn it is to poll the feed."""
    return _feed(feed, "lease")


def lease_wanted(feed: str) -> str:
    """String (expiring): set by a poller refused the lease, so the holder hands it over."""
    return _feed(feed, "wanted")


def fence(feed: str) -> str:
    """Counter: the newest fencing token issued with the feed's lease (INCR, never reset); a
    commit carrying an older token is refused."""
    return _feed(feed, "fence")


#: Delivery outbox keys share the hash tag `{outbox}`: one slot, so its scripts are atomic.
_OUTBOX = f"{PREFIX}:{{outbox}}"
#: Sorted set: delivery id -> when it is next due (queued), or when its sender's lease ends.
OUTBOX_DUE = f"{_OUTBOX}:due"
#: Sorted set: delivery id -> when it was queued (the most recent, for `alerts list`).
OUTBOX_RECENT = f"{_OUTBOX}:recent"
#: Sorted set: delivery id -> when it was dead-lettered.
OUTBOX_DEAD = f"{_OUTBOX}:dead"
#: Hash: silence id -> JSON of the silence (`workers.outbox.silences`).
SILENCES = f"{_OUTBOX}:silences"
#: Hash: channel -> JSON {reason, at, fingerprint} of channels disabled after HTTP 410.
DISABLED_CHANNELS = f"{_OUTBOX}:disabled"
#: Set: channels with held (digest, rate-limited, quiet-hours) deliveries.
HELD_CHANNELS = f"{_OUTBOX}:held"


def delivery(delivery_id: str) -> str:
    """Hash: one delivery (item JSON, channel, state, attempts, times, last error)."""
    return f"{_OUTBOX}:d:{delivery_id}"


def ack(alert: str) -> str:
    """String (expiring): JSON {by, at, comment} of an alert's acknowledgement (the alert id of
    `workers.console.alerts`)."""
    return f"{_OUTBOX}:ack:{alert}"


def held(channel: str) -> str:
    """List: ids of deliveries held for the channel's next digest, oldest first."""
    return f"{_OUTBOX}:held:{channel}"


def hold(channel: str) -> str:
    """Hash: `due` (when the held deliveries go out as one digest), `since`, `reasons`."""
    return f"{_OUTBOX}:hold:{channel}"


def rate(channel: str, window: str) -> str:
    """Counter (expiring): deliveries sent at once to `channel` in rate-limit window `window`."""
    return f"{_OUTBOX}:rate:{channel}:{window}"


def _group(rule: str, content: str, suffix: str) -> str:
    return f"{PREFIX}:group:{{{rule}:{content}}}:{suffix}"


def group_lead(rule: str, content: str) -> str:
    """String (TTL = the rule's `group_across_feeds`): `feed|entry|version` of the event that
    alerts for this content; copies from other feeds within the window are folded into it."""
    return _group(rule, content, "lead")


def group_sources(rule: str, content: str) -> str:
    """Set (same TTL): names of the feeds that carried this content within the window."""
    return _group(rule, content, "sources")


#: WebSub keys share the hash tag `{websub}`: a subscription and its indexes change together.
_WEBSUB = f"{PREFIX}:{{websub}}"
#: Hash: WebSub callback token (the opaque last segment of a feed's callback URL) -> feed name.
WEBSUB_CALLBACKS = f"{_WEBSUB}:callbacks"
#: Sorted set: feed -> when its WebSub subscription next needs work (renewal, a retry).
WEBSUB_DUE = f"{_WEBSUB}:due"
#: Pub/sub channel: a feed name, published by the process a notification reached when another
#: poller holds the feed's lease (that one polls it).
PUSH_CHANNEL = f"{PREFIX}:push"


def login_failures(client: str) -> str:
    """Counter (expiring): failed console sign-ins from one client address."""
    return f"{PREFIX}:console:login:{client}"


def websub(feed: str) -> str:
    """Hash: the feed's WebSub subscription: `hub`, `topic`, `secret`, `token`, `state`
    (pending, verified, denied, unsubscribing), `requested` (the mode awaiting the hub's
    verification), `lease_seconds`, `lease_until`, `attempts`, `old_hub`/`old_topic`."""
    return f"{_WEBSUB}:sub:{feed}"
