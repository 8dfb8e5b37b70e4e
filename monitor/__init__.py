"""livewatch monitor: configuration, scheduling, fetching, parsing and diffing of live feeds."""

__version__ = "0.1.0"
