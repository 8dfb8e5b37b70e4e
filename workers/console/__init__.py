"""The operator console: a REST API under `/api/v1` and server-rendered pages under
`/console`, served by `livewatch run` and `livewatch console` where `console.listen` is set."""
