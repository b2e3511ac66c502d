"""Periodic jobs on the job queue: one pending job per kind, which enqueues its successor when it runs.

`ensure` is a housekeeping chore of every worker (run at its start and hourly), so a schedule comes back
after its job failed for good or its row was removed; the per-kind lock keeps several workers from each
adding one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine

from cargohold.db.engine import lock_name, write_transaction
from cargohold.jobs.queue import PENDING, Job, enqueue
from cargohold.jobs.tables import jobs
from cargohold.kernel.clock import utcnow


@dataclass(frozen=True)
class Schedule:
    kind: str
    interval: timedelta
    first_delay: timedelta = timedelta(0)

    @classmethod
    def from_env(cls, kind: str, variable: str, default_seconds: float, first_delay: float = 0.0) -> Schedule:
        seconds = float(os.environ.get(variable, default_seconds))
        return cls(kind, timedelta(seconds=seconds), timedelta(seconds=min(first_delay, seconds)))

    def ensure(self, engine: Engine) -> None:
        with write_transaction(engine, signal=False) as conn:
            lock_name(conn, f"schedule:{self.kind}")
            if not self._pending(conn, None):
                enqueue(conn, self.kind, {}, ordering_key=self.kind, max_attempts=3,
                        run_after=utcnow() + self.first_delay)

    def next_after(self, engine: Engine, job: Job, *, soon: bool = False) -> None:
        """Called by the running job: enqueue the next run (at once with `soon`, to continue unfinished work)
        unless one is pending already."""
        with write_transaction(engine, signal=False) as conn:
            lock_name(conn, f"schedule:{self.kind}")
            if not self._pending(conn, job.id):
                enqueue(conn, self.kind, {}, ordering_key=self.kind, max_attempts=3,
                        run_after=utcnow() + (timedelta(0) if soon else self.interval))

    def _pending(self, conn: Connection, other_than: int | None) -> bool:
        query = select(jobs.c.id).where(jobs.c.kind == self.kind, jobs.c.status == PENDING)
        if other_than is not None:
            query = query.where(jobs.c.id != other_than)
        return conn.execute(query.limit(1)).first() is not None
