"""Worker-side commands of the `livewatch` CLI: run, worker, poll-once, alerts, replay, demo."""
