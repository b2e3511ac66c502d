"""A job queue in the metadata database for background work."""
