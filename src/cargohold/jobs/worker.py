"""Running queued jobs: claim, run the kind's handler, record the outcome, retry with backoff.

A worker keeps the leases of its running jobs alive while they run; if it dies, the leases run out and another
worker takes the jobs again (handlers must therefore tolerate running again: at-least-once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, update

from cargohold.db.engine import write_transaction
from cargohold.jobs import queue
from cargohold.jobs.tables import jobs
from cargohold.kernel.context import RegistryContext, utcnow

log = logging.getLogger(__name__)

Handler = Callable[[queue.Job], Awaitable[None]]


class JobFailed(Exception):
    """A run that did not succeed. `permanent` gives up at once; `retry_after` overrides the backoff."""

    def __init__(self, message: str, *, permanent: bool = False, retry_after: timedelta | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


@dataclass(frozen=True)
class WorkerSettings:
    concurrency: int = 16
    poll_interval: float = 0.1
    lease: timedelta = timedelta(seconds=30)
    backoff_base: float = 1.0
    backoff_cap: float = 300.0
    keep_finished: timedelta = timedelta(days=7)

    @classmethod
    def from_env(cls) -> WorkerSettings:
        def number(name: str, default: float) -> float:
            return float(os.environ.get(f"CARGOHOLD_JOBS_{name}", default))
        return cls(concurrency=int(number("CONCURRENCY", cls.concurrency)),
                   backoff_base=number("RETRY_BASE_SECONDS", cls.backoff_base),
                   backoff_cap=number("RETRY_CAP_SECONDS", cls.backoff_cap))

    def backoff(self, attempt: int) -> timedelta:
        return timedelta(seconds=min(self.backoff_cap, self.backoff_base * 2 ** max(0, attempt - 1)))


class JobWorker:
    def __init__(self, ctx: RegistryContext, handlers: dict[str, Handler], settings: WorkerSettings,
                 housekeeping: list[Callable[[], None]] | None = None) -> None:
        self.ctx = ctx
        self.handlers = handlers
        self.housekeeping = housekeeping or []
        self.settings = settings
        self._wake = asyncio.Event()
        self._running: dict[int, asyncio.Task[None]] = {}
        self._stopping = False
        self._last_cleanup: float | None = None

    def wake(self) -> None:
        """Look for work now rather than at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        renewing = asyncio.create_task(self._renew_leases())
        try:
            while not self._stopping:
                try:
                    await self._round()
                except Exception:
                    log.exception("job queue round failed")
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.settings.poll_interval)
            if self._running:
                await asyncio.wait(list(self._running.values()), timeout=10)
        finally:
            renewing.cancel()

    async def _round(self) -> None:
        room = self.settings.concurrency - len(self._running)
        kinds = list(self.handlers)
        loop = asyncio.get_running_loop()
        if self._last_cleanup is None or loop.time() - self._last_cleanup > 3600:
            self._last_cleanup = loop.time()
            await self.ctx.run(self._clean_up)
        if room <= 0 or not await self.ctx.read(queue.work_is_due, utcnow(), kinds):
            return
        for job in await self.ctx.run(self._claim, kinds, room, set(self._running)):
            self._running[job.id] = asyncio.create_task(self._run(job))

    def _claim(self, kinds: list[str], limit: int, skip: set[int]) -> list[queue.Job]:
        with write_transaction(self.ctx.engine, signal=False) as conn:
            return queue.claim(conn, kinds, limit, self.settings.lease, skip)

    async def _run(self, job: queue.Job) -> None:
        try:
            try:
                await self.handlers[job.kind](job)
            except JobFailed as exc:
                gave_up = await self.ctx.run(self._record_failure, job, str(exc),
                                             exc.retry_after or self.settings.backoff(job.attempt), exc.permanent)
                if gave_up:
                    log.warning("job %s (%s) failed for good: %s", job.id, job.kind, exc)
            except Exception as exc:
                log.exception("job %s (%s) raised", job.id, job.kind)
                await self.ctx.run(self._record_failure, job, f"{type(exc).__name__}: {exc}",
                                   self.settings.backoff(job.attempt), False)
            else:
                await self.ctx.run(self._record_success, job)
        finally:
            self._running.pop(job.id, None)
            self._wake.set()

    def _record_success(self, job: queue.Job) -> None:
        with write_transaction(self.ctx.engine, signal=False) as conn:
            queue.succeed(conn, job)

    def _record_failure(self, job: queue.Job, error: str, backoff: timedelta, permanent: bool) -> bool:
        with write_transaction(self.ctx.engine, signal=False) as conn:
            return queue.fail(conn, job, error, backoff, permanent=permanent)

    async def _renew_leases(self) -> None:
        while True:
            await asyncio.sleep(self.settings.lease.total_seconds() / 3)
            if self._running:
                with contextlib.suppress(Exception):
                    await self.ctx.run(self._renew, list(self._running))

    def _renew(self, job_ids: list[int]) -> None:
        with write_transaction(self.ctx.engine, signal=False) as conn:
            conn.execute(update(jobs).where(jobs.c.id.in_(job_ids), jobs.c.status == queue.PENDING)
                         .values(leased_until=utcnow() + self.settings.lease))

    def _clean_up(self) -> None:
        cutoff = utcnow() - self.settings.keep_finished
        with write_transaction(self.ctx.engine, signal=False) as conn:
            conn.execute(delete(jobs).where(jobs.c.status != queue.PENDING, jobs.c.finished_at < cutoff))
        for chore in self.housekeeping:
            try:
                chore()
            except Exception:
                log.exception("housekeeping %s failed", getattr(chore, "__qualname__", chore))
