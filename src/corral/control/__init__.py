"""The configuration plane: functions (and later versions, aliases, policies, concurrency)."""
