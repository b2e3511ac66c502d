"""The background worker: the job queue with the handlers of every kind of job. `serve` runs one in each server
process unless told not to; `cargohold worker` runs one on its own."""

from __future__ import annotations

from cargohold.events.delivery import DeliverySettings, WebhookDelivery
from cargohold.events.record import WEBHOOK_JOB
from cargohold.jobs.worker import JobWorker, WorkerSettings
from cargohold.management.import_jobs import IMPORT_JOB, ImportRunner
from cargohold.kernel.context import RegistryContext
from cargohold.replication.copying import Replicator
from cargohold.replication.regions import RegionStores
from cargohold.security.master_key import Sealer


def build_worker(ctx: RegistryContext, sealer: Sealer) -> tuple[JobWorker, WebhookDelivery]:
    delivery = WebhookDelivery(ctx, sealer, DeliverySettings.from_env())
    replicator = Replicator(ctx, RegionStores(ctx.engine, sealer, ctx.region, ctx.store))
    worker = JobWorker(ctx, {WEBHOOK_JOB: delivery, IMPORT_JOB: ImportRunner(ctx, sealer), **replicator.handlers()},
                       WorkerSettings.from_env(), housekeeping=[delivery.prune])
    return worker, delivery
