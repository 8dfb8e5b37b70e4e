"""Running the service: Redis connection and embedded server, signals and reload, the
`/healthz` `/readyz` `/metrics` endpoint, logs, `status`, `inspect`."""
