"""The background worker: the job queue with the handlers of every kind of job. `serve` runs one in each server
process unless told not to; `cargohold worker` runs one on its own."""

from __future__ import annotations

from cargohold.events.delivery import DeliverySettings, WebhookDelivery
from cargohold.events.record import WEBHOOK_JOB
from cargohold.jobs.worker import JobWorker, WorkerSettings
from cargohold.lifecycle.jobs import lifecycle_jobs
from cargohold.management.import_jobs import IMPORT_JOB, ImportRunner
from cargohold.kernel.context import RegistryContext
from cargohold.security.master_key import Sealer


def build_worker(ctx: RegistryContext, sealer: Sealer) -> tuple[JobWorker, WebhookDelivery]:
    delivery = WebhookDelivery(ctx, sealer, DeliverySettings.from_env())
    lifecycle_handlers, lifecycle_chores = lifecycle_jobs(ctx)
    worker = JobWorker(ctx, {WEBHOOK_JOB: delivery, IMPORT_JOB: ImportRunner(ctx, sealer), **lifecycle_handlers},
                       WorkerSettings.from_env(), housekeeping=[delivery.prune, *lifecycle_chores])
    return worker, delivery
