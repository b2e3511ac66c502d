"""Metadata storage: engine setup, shared tables and Alembic migrations."""
