"""Step 8: the durable delivery outbox in Redis (queue, lease, retry, dead letters, digests)
and its delivery policy."""
