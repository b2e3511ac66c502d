"""`importImage` as a queued job, so an import outlives the request and a restart. The source password, if
any, is sealed with the master key in the job's payload."""

from __future__ import annotations

import logging
from dataclasses import asdict, replace
from typing import Any

from sqlalchemy.engine import Connection

from cargohold.db.engine import write_transaction
from cargohold.jobs.queue import Job, enqueue
from cargohold.management import operations
from cargohold.management.arm import ArmError
from cargohold.management.importing import ImportRequest, ImportSource, import_image
from cargohold.kernel.context import RegistryContext
from cargohold.security.master_key import Sealer

IMPORT_JOB = "import"
ATTEMPTS = 3
log = logging.getLogger(__name__)


def enqueue_import(conn: Connection, sealer: Sealer, operation_id: str, registry_pk: int,
                   request: ImportRequest) -> int:
    source = asdict(request.source)
    password = source.pop("password")
    source["sealedPassword"] = sealer.seal(password.encode()).decode() if password is not None else None
    payload = {"operation": operation_id, "registry": registry_pk, "source": source,
               "targetTags": request.target_tags, "untagged": request.untagged_target_repositories,
               "force": request.force}
    return enqueue(conn, IMPORT_JOB, payload, max_attempts=ATTEMPTS)


def _request(sealer: Sealer, payload: dict[str, Any]) -> ImportRequest:
    source = dict(payload["source"])
    sealed = source.pop("sealedPassword")
    password = sealer.unseal(sealed.encode()).decode() if sealed is not None else None
    return ImportRequest(replace(ImportSource(**source), password=password), list(payload["targetTags"]),
                         list(payload["untagged"]), bool(payload["force"]))


class ImportRunner:
    """The handler of `import` jobs: copy, then end the ARM operation the SDK's poller watches."""

    def __init__(self, ctx: RegistryContext, sealer: Sealer) -> None:
        self.ctx = ctx
        self.sealer = sealer

    async def __call__(self, job: Job) -> None:
        payload = job.payload
        request = _request(self.sealer, payload)
        error: ArmError | None = None
        try:
            await self.ctx.run(import_image, self.ctx, int(payload["registry"]), request)
        except ArmError as exc:
            error = exc
        except Exception:
            if job.attempt < job.max_attempts:
                raise
            log.exception("import of %s failed", request.source.source_image)
            error = ArmError(500, "InternalServerError", "The import failed unexpectedly; see the server log.")
        await self.ctx.run(self._finish, str(payload["operation"]), error)

    def _finish(self, operation_id: str, error: ArmError | None) -> None:
        with write_transaction(self.ctx.engine) as conn:
            operations.finish_operation(conn, operation_id, error)
