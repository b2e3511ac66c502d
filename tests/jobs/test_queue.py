"""The job queue on the suite's database (SQLite, or PostgreSQL in the second pass): claims are exclusive,
ordering keys hold back later jobs, failures back off and give up, and expired leases are taken over."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.engine import Engine

from cargohold.db.engine import make_engine, sqlite_url, write_transaction
from cargohold.db.migrate import upgrade
from cargohold.jobs import queue
from cargohold.jobs.tables import jobs
from cargohold.kernel.clock import utcnow
from tests.support.server import suite_database

LEASE = timedelta(seconds=30)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = suite_database() or sqlite_url(tmp_path)
    upgrade(url)
    made = make_engine(url)
    yield made
    made.dispose()


def enqueue(engine: Engine, kind: str, key: str | None = None, **payload: object) -> int:
    with write_transaction(engine) as conn:
        return queue.enqueue(conn, kind, dict(payload), ordering_key=key, max_attempts=3)


def claim(engine: Engine, limit: int = 10, lease: timedelta = LEASE) -> list[queue.Job]:
    with write_transaction(engine) as conn:
        return queue.claim(conn, ["work"], limit, lease, set())


def test_concurrent_claims_never_hand_out_a_job_twice(engine: Engine) -> None:
    ids = {enqueue(engine, "work", n=n) for n in range(40)}
    with ThreadPoolExecutor(8) as pool:
        batches = list(pool.map(lambda _: claim(engine, 5), range(16)))
    claimed = [job.id for batch in batches for job in batch]
    assert len(claimed) == len(set(claimed)) == 40 and set(claimed) == ids
    assert claim(engine) == []


def test_an_ordering_key_runs_one_job_at_a_time_in_order(engine: Engine) -> None:
    first = enqueue(engine, "work", "hook:1", n=1)
    second = enqueue(engine, "work", "hook:1", n=2)
    other = enqueue(engine, "work", "hook:2", n=3)
    claimed = {job.id: job for job in claim(engine)}
    assert set(claimed) == {first, other}
    assert claim(engine) == []
    with write_transaction(engine) as conn:
        queue.succeed(conn, claimed[first])
    assert [job.id for job in claim(engine)] == [second]


def test_failures_back_off_then_give_up_and_free_the_key(engine: Engine) -> None:
    failing = enqueue(engine, "work", "hook:9")
    waiting = enqueue(engine, "work", "hook:9")
    for attempt in (1, 2, 3):
        [job] = claim(engine)
        assert (job.id, job.attempt) == (failing, attempt)
        with write_transaction(engine) as conn:
            gave_up = queue.fail(conn, job, "boom", timedelta(seconds=0))
        assert gave_up is (attempt == 3)
    with write_transaction(engine) as conn:
        assert queue.job_status(conn, failing) == ("failed", "boom")
    assert [job.id for job in claim(engine)] == [waiting]


def test_a_backoff_delays_the_next_attempt(engine: Engine) -> None:
    job_id = enqueue(engine, "work")
    [job] = claim(engine)
    with write_transaction(engine) as conn:
        queue.fail(conn, job, "later", timedelta(minutes=5))
    assert claim(engine) == []
    with write_transaction(engine) as conn:
        conn.execute(update(jobs).where(jobs.c.id == job_id).values(run_after=utcnow()))
    assert [j.attempt for j in claim(engine)] == [2]


def test_a_dead_workers_lease_expires_and_the_job_is_taken_over(engine: Engine) -> None:
    job_id = enqueue(engine, "work")
    assert [job.id for job in claim(engine, lease=timedelta(seconds=-1))] == [job_id]  # its worker died at once
    [retaken] = claim(engine)
    assert (retaken.id, retaken.attempt) == (job_id, 2)
    assert claim(engine) == []


def test_cancelled_jobs_are_gone(engine: Engine) -> None:
    enqueue(engine, "work", "hook:5")
    enqueue(engine, "work", "hook:5")
    kept = enqueue(engine, "work", "hook:6")
    with write_transaction(engine) as conn:
        assert queue.cancel_jobs(conn, "hook:5") == 2
    assert [job.id for job in claim(engine)] == [kept]
