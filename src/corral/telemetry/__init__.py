"""Logs, metrics and metering of what functions did."""

# Invocation types, as metrics label them and metering records them.
SYNC = "sync"  # RequestResponse
EVENT = "event"  # Event, run from the queue
