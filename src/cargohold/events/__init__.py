"""The event log and webhook delivery."""
