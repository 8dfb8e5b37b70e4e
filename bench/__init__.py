"""Benchmarks for livewatch (run with `python -m bench.run`)."""
