"""The background worker: the job queue with the handlers of every kind of job. `serve` runs one in each server
process unless told not to; `cargohold worker` runs one on its own."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cargohold.events.delivery import DeliverySettings, WebhookDelivery
from cargohold.events.record import WEBHOOK_JOB
from cargohold.jobs.worker import Handler, JobWorker, WorkerSettings
from cargohold.lifecycle.jobs import lifecycle_jobs
from cargohold.management.import_jobs import IMPORT_JOB, ImportRunner
from cargohold.kernel.context import RegistryContext
from cargohold.replication.copying import Replicator
from cargohold.replication.regions import RegionStores
from cargohold.security.master_key import Sealer
from cargohold.tasks.runner import make_handlers


def build_worker(ctx: RegistryContext, sealer: Sealer, *, data_dir: Path | None = None,
                 agent_pool: str | None = None) -> tuple[JobWorker, WebhookDelivery]:
    """With `data_dir`, the worker also runs ACR Tasks runs (workspaces under it); with `agent_pool`, it runs
    only that pool's runs and nothing else."""
    delivery = WebhookDelivery(ctx, sealer, DeliverySettings.from_env())
    handlers: dict[str, Handler] = {} if agent_pool else {WEBHOOK_JOB: delivery, IMPORT_JOB: ImportRunner(ctx, sealer)}
    chores: list[Callable[[], None]] = [] if agent_pool else [delivery.prune]
    if not agent_pool:
        replicator = Replicator(ctx, RegionStores(ctx.engine, sealer, ctx.region, ctx.store))
        handlers.update(replicator.handlers())
        lifecycle_handlers, lifecycle_chores = lifecycle_jobs(ctx)
        handlers.update(lifecycle_handlers)
        chores += lifecycle_chores
    handlers.update(make_handlers(ctx, sealer, data_dir, agent_pool))
    worker = JobWorker(ctx, handlers, WorkerSettings.from_env(), housekeeping=chores)
    return worker, delivery
