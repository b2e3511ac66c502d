"""The job queue's table."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Index, Integer, String, Table, Text

from cargohold.db.tables import metadata

jobs = Table(
    "jobs",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("ordering_key", String(100), nullable=True),
    Column("payload", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("max_attempts", Integer, nullable=False),
    Column("run_after", DateTime(timezone=True), nullable=False),
    Column("leased_until", DateTime(timezone=True), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Index("ix_jobs_status_run_after", "status", "run_after"),
    Index("ix_jobs_status_ordering_key_id", "status", "ordering_key", "id"),
    sqlite_autoincrement=True,
)
"""Background work: `pending` until a handler succeeds (`done`) or its attempts are spent (`failed`). Jobs
sharing an `ordering_key` run one at a time in id order; a job is leased while it runs, and a lease that
runs out (its worker died) makes the job available again."""
