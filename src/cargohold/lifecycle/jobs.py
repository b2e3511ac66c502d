"""The lifecycle's job handlers: the retention policy and garbage collection, each on a schedule."""

from __future__ import annotations

import logging
from collections.abc import Callable

from cargohold.jobs.queue import Job
from cargohold.jobs.worker import Handler
from cargohold.kernel.context import RegistryContext
from cargohold.lifecycle.retention import RETENTION_JOB, apply_retention
from cargohold.lifecycle.schedule import Schedule

log = logging.getLogger(__name__)


def retention_schedule() -> Schedule:
    return Schedule.from_env(RETENTION_JOB, "CARGOHOLD_RETENTION_INTERVAL_SECONDS", 3600)


class RetentionRunner:
    def __init__(self, ctx: RegistryContext, schedule: Schedule) -> None:
        self.ctx = ctx
        self.schedule = schedule

    async def __call__(self, job: Job) -> None:
        await self.ctx.run(self.schedule.next_after, self.ctx.engine, job)
        report = await self.ctx.run(apply_retention, self.ctx)
        if report.deleted or report.spared:
            log.info("retention deleted %d untagged manifests (%d spared at the last moment)",
                     len(report.deleted), report.spared)


def lifecycle_jobs(ctx: RegistryContext) -> tuple[dict[str, Handler], list[Callable[[], None]]]:
    """Handlers by job kind, and the chores that keep their schedules."""
    retention = retention_schedule()
    return ({RETENTION_JOB: RetentionRunner(ctx, retention)},
            [lambda: retention.ensure(ctx.engine)])
