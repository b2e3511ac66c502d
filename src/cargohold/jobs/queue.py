"""Putting jobs on the queue and taking them off, inside the caller's transactions.

Claiming is safe with many workers on one database: candidates are read with `FOR UPDATE SKIP LOCKED` on
PostgreSQL (SQLite serializes write transactions), and each is leased by a conditional update, so a job never
runs twice at once. Payloads are JSON; secrets in them must be sealed by the caller.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from cargohold.jobs.tables import jobs
from cargohold.kernel.clock import utcnow

PENDING, DONE, FAILED = "pending", "done", "failed"


@dataclass(frozen=True)
class Job:
    id: int
    kind: str
    ordering_key: str | None
    payload: dict[str, Any]
    attempt: int
    """1 for the first run."""
    max_attempts: int


def enqueue(conn: Connection, kind: str, payload: dict[str, Any], *, ordering_key: str | None = None,
            max_attempts: int = 10, run_after: datetime | None = None) -> int:
    now = utcnow()
    return int(conn.execute(insert(jobs).values(
        kind=kind, ordering_key=ordering_key, payload=json.dumps(payload), status=PENDING, attempts=0,
        max_attempts=max_attempts, run_after=run_after or now, created_at=now).returning(jobs.c.id)).scalar_one())


def enqueue_many(conn: Connection, kind: str, items: list[tuple[str | None, dict[str, Any]]], *,
                 max_attempts: int = 10) -> None:
    if not items:
        return
    now = utcnow()
    conn.execute(insert(jobs), [{"kind": kind, "ordering_key": key, "payload": json.dumps(payload),
                                 "status": PENDING, "attempts": 0, "max_attempts": max_attempts,
                                 "run_after": now, "created_at": now} for key, payload in items])


def work_is_due(conn: Connection, now: datetime, kinds: list[str]) -> bool:
    """A cheap read before taking the write lock to claim."""
    return conn.execute(select(jobs.c.id).where(
        jobs.c.status == PENDING, jobs.c.kind.in_(kinds), jobs.c.run_after <= now,
        or_(jobs.c.leased_until.is_(None), jobs.c.leased_until < now)).limit(1)).first() is not None


def claim(conn: Connection, kinds: list[str], limit: int, lease: timedelta, skip: set[int]) -> list[Job]:
    """Lease up to `limit` due jobs: for each ordering key only its oldest pending job."""
    now = utcnow()
    heads = (select(func.min(jobs.c.id)).where(jobs.c.status == PENDING, jobs.c.ordering_key.is_not(None))
             .group_by(jobs.c.ordering_key))
    candidates = conn.execute(
        select(jobs.c.id, jobs.c.kind, jobs.c.ordering_key, jobs.c.payload, jobs.c.attempts, jobs.c.max_attempts)
        .where(jobs.c.status == PENDING, jobs.c.kind.in_(kinds), jobs.c.run_after <= now,
               or_(jobs.c.leased_until.is_(None), jobs.c.leased_until < now),
               or_(jobs.c.ordering_key.is_(None), jobs.c.id.in_(heads)))
        .order_by(jobs.c.id).limit(limit + len(skip)).with_for_update(skip_locked=True, of=jobs)).all()
    claimed = []
    for row in candidates:
        if row.id in skip or len(claimed) >= limit:
            continue
        leased = conn.execute(update(jobs).where(
            jobs.c.id == row.id, jobs.c.status == PENDING,
            or_(jobs.c.leased_until.is_(None), jobs.c.leased_until < now),
        ).values(leased_until=now + lease, attempts=row.attempts + 1)).rowcount
        if leased:
            claimed.append(Job(row.id, row.kind, row.ordering_key, json.loads(row.payload), row.attempts + 1,
                               row.max_attempts))
    return claimed


def succeed(conn: Connection, job: Job) -> None:
    conn.execute(update(jobs).where(jobs.c.id == job.id).values(status=DONE, leased_until=None,
                                                                finished_at=utcnow(), last_error=None))


def fail(conn: Connection, job: Job, error: str, backoff: timedelta, *, permanent: bool = False) -> bool:
    """Record a failed run: retry after `backoff`, or give up when the attempts are spent. True if given up."""
    now = utcnow()
    if permanent or job.attempt >= job.max_attempts:
        conn.execute(update(jobs).where(jobs.c.id == job.id).values(status=FAILED, leased_until=None,
                                                                    finished_at=now, last_error=error[:2000]))
        return True
    conn.execute(update(jobs).where(jobs.c.id == job.id).values(leased_until=None, run_after=now + backoff,
                                                                last_error=error[:2000]))
    return False


def job_status(conn: Connection, job_id: int) -> tuple[str, str | None] | None:
    row = conn.execute(select(jobs.c.status, jobs.c.last_error).where(jobs.c.id == job_id)).first()
    return (row.status, row.last_error) if row else None


def cancel_jobs(conn: Connection, ordering_key: str) -> int:
    """Drop the pending jobs of an ordering key (their subject is gone)."""
    return conn.execute(delete(jobs).where(jobs.c.ordering_key == ordering_key, jobs.c.status == PENDING)).rowcount


def pending_payloads(conn: Connection, kind: str) -> list[dict[str, Any]]:
    return [json.loads(payload) for payload in conn.execute(
        select(jobs.c.payload).where(jobs.c.kind == kind, jobs.c.status == PENDING)).scalars()]
