"""Persistence: metadata in SQL and code packages on disk."""
