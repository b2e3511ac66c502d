"""Lifecycle of stored content: last-pull times, the retention policy, purge planning and online garbage
collection."""
