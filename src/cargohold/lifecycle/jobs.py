"""The lifecycle's job handlers: the retention policy and garbage collection, each on a schedule."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial

from cargohold.jobs.queue import Job
from cargohold.jobs.worker import Handler
from cargohold.kernel.context import RegistryContext
from cargohold.lifecycle.gc import RUNNING, Collector, CollectorBusy, GcSettings, holder_name
from cargohold.lifecycle.recycle_bin import purge_expired
from cargohold.lifecycle.retention import RETENTION_JOB, apply_retention
from cargohold.lifecycle.schedule import Schedule

GC_JOB = "gc"
SLICE_SECONDS = 10.0
log = logging.getLogger(__name__)


def retention_schedule() -> Schedule:
    return Schedule.from_env(RETENTION_JOB, "CARGOHOLD_RETENTION_INTERVAL_SECONDS", 3600)


class RetentionRunner:
    """Applies the retention policies, then empties the soft-delete recycle bin of what is due."""

    def __init__(self, ctx: RegistryContext, schedule: Schedule) -> None:
        self.ctx = ctx
        self.schedule = schedule

    async def __call__(self, job: Job) -> None:
        await self.ctx.run(self.schedule.next_after, self.ctx.engine, job)
        report = await self.ctx.run(apply_retention, self.ctx)
        if report.deleted or report.spared:
            log.info("retention deleted %d untagged manifests (%d spared at the last moment)",
                     len(report.deleted), report.spared)
        purged = await self.ctx.run(purge_expired, self.ctx)
        if purged:
            log.info("purged %d manifests from the recycle bin", purged)


def gc_schedule() -> Schedule:
    """Daily by default; the first run a while after the worker starts, not on every restart at once."""
    return Schedule.from_env(GC_JOB, "CARGOHOLD_GC_INTERVAL_SECONDS", 86400, first_delay=3600)


class GcRunner:
    """Runs (or resumes) a collection in slices of `SLICE_SECONDS`, so a stopping worker never waits long for
    it: an unfinished run is continued by the next job, enqueued at once. If another collector holds the run,
    leaves it to that one."""

    def __init__(self, ctx: RegistryContext, schedule: Schedule) -> None:
        self.ctx = ctx
        self.schedule = schedule
        self.holder = holder_name()

    async def __call__(self, job: Job) -> None:
        deadline = time.monotonic() + SLICE_SECONDS
        collector = Collector(self.ctx, GcSettings.from_env(), holder=self.holder,
                              stop=lambda: time.monotonic() > deadline)
        unfinished = False
        try:
            status = await self.ctx.run(collector.run)
        except CollectorBusy as busy:
            log.info("%s; leaving it to that collector", busy)
        else:
            unfinished = status.status == RUNNING
            if not unfinished:
                log.info("garbage collection run %d: %d blobs and %d files removed, %d bytes reclaimed",
                         status.id, status.blobs_removed, status.files_removed, status.bytes_reclaimed)
        await self.ctx.run(partial(self.schedule.next_after, self.ctx.engine, job, soon=unfinished))


def lifecycle_jobs(ctx: RegistryContext) -> tuple[dict[str, Handler], list[Callable[[], None]]]:
    """Handlers by job kind, and the chores that keep their schedules."""
    retention, gc = retention_schedule(), gc_schedule()
    return ({RETENTION_JOB: RetentionRunner(ctx, retention), GC_JOB: GcRunner(ctx, gc)},
            [lambda: retention.ensure(ctx.engine), lambda: gc.ensure(ctx.engine)])
