"""`group_across_feeds`: the same update carried by several feeds alerts once.

For a rule with a window, the first event carrying a text (by its normalised-text hash) becomes
the group's lead with `SET NX PX window`; it alerts at once, listing the feeds known by then.
Copies from other feeds within the window are added to the group's sources and not alerted.
Re-handling the lead (a retry, a re-claim) finds itself as the lead and alerts again, so the
usual delivered-key dedupe still applies; nothing is held back waiting for copies.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
import structlog

from monitor.config.models import RuleSettings
from monitor.core import keys
from monitor.core.models import Event
from monitor.core.textnorm import content_hash
from workers.match.matcher import RuleMatch

log = structlog.get_logger("livewatch.grouping")


def group_content(event: Event) -> str:
    """What makes two events "the same update": the normalised text (the title when empty)."""
    entry = event.entry
    return content_hash(entry.text) if entry.text.strip() else event.version


class CrossFeedGroups:
    """Decides which matches alert, for rules with `group_across_feeds`."""

    def __init__(self, client: aioredis.Redis, rules: Sequence[RuleSettings]) -> None:
        self.client = client
        self.windows = {r.name: r.group_across_feeds for r in rules if r.group_across_feeds}

    async def admit(self, event: Event,
                    matches: Sequence[RuleMatch]) -> list[tuple[RuleMatch, tuple[str, ...]]]:
        """The matches that alert, each with the feeds carrying its text (empty: ungrouped)."""
        out: list[tuple[RuleMatch, tuple[str, ...]]] = []
        for match in matches:
            window = self.windows.get(match.rule)
            if window is None:
                out.append((match, ()))
                continue
            content = group_content(event)
            me = f"{event.feed}|{event.entry.id}|{event.version}"
            lead, sources = keys.group_lead(match.rule, content), \
                keys.group_sources(match.rule, content)
            ttl = max(1, int(window * 1000))
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.set(lead, me, nx=True, px=ttl)
                pipe.get(lead)
                pipe.sadd(sources, event.feed)
                pipe.pexpire(sources, ttl)
                pipe.smembers(sources)
                result: list[Any] = await pipe.execute()
            if result[1] == me:
                out.append((match, tuple(sorted(result[4]))))
            else:
                log.info("copy folded into an earlier alert", rule=match.rule,
                         feed=event.feed, entry=event.entry.id, lead=result[1])
        return out
