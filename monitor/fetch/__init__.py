"""Step 1 of a poll, fetching: the pooled aiohttp client (conditional GET, caps, redirects)
and the network policy it connects under."""
