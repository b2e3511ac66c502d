"""ARM long-running operations: a row per operation, read by the SDK's poller until it ends."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from cargohold.management.arm import PROVIDER, ArmError
from cargohold.management.fields import iso
from cargohold.management.tables import operations
from cargohold.kernel.clock import utcnow

IN_PROGRESS, SUCCEEDED, FAILED = "InProgress", "Succeeded", "Failed"


@dataclass(frozen=True)
class OperationPaths:
    subscription: str
    location: str
    id: str

    @property
    def status(self) -> str:
        return f"/subscriptions/{self.subscription}/providers/{PROVIDER}/locations/{self.location}/operationStatuses/{self.id}"

    @property
    def result(self) -> str:
        return f"/subscriptions/{self.subscription}/providers/{PROVIDER}/locations/{self.location}/operationResults/{self.id}"


@dataclass(frozen=True)
class Operation:
    paths: OperationPaths
    status: str
    started_at: datetime
    ended_at: datetime | None
    error_code: str | None
    error_message: str | None


def start_operation(conn: Connection, kind: str, resource_id: str, location: str) -> str:
    operation_id = str(uuid.uuid4())
    conn.execute(insert(operations).values(id=operation_id, kind=kind, resource_id=resource_id, location=location,
                                           status=IN_PROGRESS, started_at=utcnow()))
    return operation_id


def finish_operation(conn: Connection, operation_id: str, error: ArmError | None = None) -> None:
    conn.execute(update(operations).where(operations.c.id == operation_id).values(
        status=FAILED if error else SUCCEEDED, ended_at=utcnow(), error_code=error.code if error else None,
        error_message=error.message if error else None))


def get_operation(conn: Connection, subscription: str, operation_id: str) -> Operation | None:
    row = conn.execute(select(operations).where(operations.c.id == operation_id)).first()
    if row is None or not row.resource_id.startswith(f"/subscriptions/{subscription}/"):
        return None
    return Operation(OperationPaths(subscription, row.location, row.id), row.status, row.started_at, row.ended_at,
                     row.error_code, row.error_message)


def operation_json(operation: Operation) -> dict[str, Any]:
    body: dict[str, Any] = {"id": operation.paths.status, "name": operation.paths.id, "status": operation.status,
                            "startTime": iso(operation.started_at)}
    if operation.ended_at is not None:
        body["endTime"] = iso(operation.ended_at)
    if operation.error_code:
        body["error"] = {"code": operation.error_code, "message": operation.error_message}
    return body
