"""Logs, and later metrics and metering, of what functions did."""
