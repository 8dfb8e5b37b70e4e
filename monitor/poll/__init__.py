"""Steps 2-4 of a poll around the parse: the scheduler and cadence, the per-feed lease, the
poller, its pure decisions (`decide`, `diff`) and the Redis state their plan is applied to."""
