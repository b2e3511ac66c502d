"""Run records: ids in ACR's style (`ca1`, `ca2`, … per registry), the state machine, `$filter`, ARM JSON.

States: Queued → Running → Succeeded | Failed | Canceled | Error | Timeout, or Queued → Canceled. Every move
is a conditional update from the state it leaves, so two workers (or a worker and a cancel) never both win.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from cargohold.jobs.queue import enqueue
from cargohold.kernel.clock import utcnow
from cargohold.management.arm import ArmError, invalid
from cargohold.management.fields import iso
from cargohold.security.master_key import Sealer
from cargohold.tasks.tables import task_run_counters, task_runs

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELED, ERROR, TIMEOUT = (
    "Queued", "Running", "Succeeded", "Failed", "Canceled", "Error", "Timeout")
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELED, ERROR, TIMEOUT})
RUN_TYPES = ("QuickBuild", "QuickRun", "AutoBuild", "AutoRun")
RUN_JOB = "taskrun"
RUN_ID = re.compile(r"^ca(\d{1,9})$")
DEFAULT_TIMEOUT, MAX_TIMEOUT = 3600, 28800
JOB_ATTEMPTS = 1_000_000
"""A run's job is put back while its registry is at its concurrency limit; attempts count those waits."""


def job_kind(agent_pool: str | None) -> str:
    """Runs for an agent pool are a job kind of their own, taken only by that pool's workers."""
    return f"{RUN_JOB}:{agent_pool.lower()}" if agent_pool else RUN_JOB


@dataclass(frozen=True)
class Run:
    pk: int
    registry_id: int
    number: int
    status: str
    run_type: str
    task_name: str | None
    agent_pool: str | None
    platform: dict[str, Any]
    principal: str
    endpoint: str
    timeout: int
    is_archive_enabled: bool
    cancel_requested: bool
    output_images: list[dict[str, Any]]
    base_images: list[dict[str, Any]]
    error_message: str | None
    log_digest: str | None
    log_size: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def run_id(self) -> str:
        return f"ca{self.number}"

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL


def _from_row(row: Any) -> Run:
    return Run(row.id, row.registry_id, row.number, row.status, row.run_type, row.task_name, row.agent_pool,
               json.loads(row.platform), row.principal, row.endpoint, row.timeout, bool(row.is_archive_enabled),
               bool(row.cancel_requested), json.loads(row.output_images), json.loads(row.base_images),
               row.error_message, row.log_digest, int(row.log_size or 0), row.created_at, row.started_at,
               row.finished_at)


def create_run(conn: Connection, sealer: Sealer, registry_id: int, *, run_type: str, request: dict[str, Any],
               platform: dict[str, Any], principal: str, endpoint: str, timeout: int, task_name: str | None = None,
               agent_pool: str | None = None, is_archive_enabled: bool = False) -> Run:
    """Record a Queued run and put its job on the queue, in the caller's transaction."""
    number = _next_number(conn, registry_id)
    now = utcnow()
    pk = conn.execute(insert(task_runs).values(
        registry_id=registry_id, number=number, status=QUEUED, run_type=run_type, task_name=task_name,
        agent_pool=agent_pool, platform=json.dumps(platform), request_sealed=sealer.seal(json.dumps(request).encode()),
        principal=principal, endpoint=endpoint, timeout=timeout, is_archive_enabled=is_archive_enabled,
        cancel_requested=False, output_images="[]", base_images="[]", log_size=0, created_at=now,
    ).returning(task_runs.c.id)).scalar_one()
    job_id = enqueue(conn, job_kind(agent_pool), {"run": pk}, max_attempts=JOB_ATTEMPTS)
    conn.execute(update(task_runs).where(task_runs.c.id == pk).values(job_id=job_id))
    found = get_run_by_pk(conn, pk)
    assert found is not None
    return found


def _next_number(conn: Connection, registry_id: int) -> int:
    bumped = conn.execute(update(task_run_counters).where(task_run_counters.c.registry_id == registry_id)
                          .values(last_number=task_run_counters.c.last_number + 1)
                          .returning(task_run_counters.c.last_number)).scalar_one_or_none()
    if bumped is not None:
        return int(bumped)
    conn.execute(insert(task_run_counters).values(registry_id=registry_id, last_number=1))
    return 1


def request_of(sealer: Sealer, conn: Connection, pk: int) -> dict[str, Any]:
    sealed = conn.execute(select(task_runs.c.request_sealed).where(task_runs.c.id == pk)).scalar_one()
    return dict(json.loads(sealer.unseal(sealed)))


def get_run_by_pk(conn: Connection, pk: int) -> Run | None:
    row = conn.execute(select(task_runs).where(task_runs.c.id == pk)).first()
    return _from_row(row) if row else None


def get_run(conn: Connection, registry_id: int, run_id: str) -> Run:
    match = RUN_ID.match(run_id)
    row = conn.execute(select(task_runs).where(task_runs.c.registry_id == registry_id,
                                               task_runs.c.number == int(match.group(1)))).first() if match else None
    if row is None:
        raise ArmError(404, "ResourceNotFound", f"The run '{run_id[:40]}' could not be found.")
    return _from_row(row)


def list_runs(conn: Connection, registry_id: int, where: list[ColumnElement[bool]], top: int) -> list[Run]:
    rows = conn.execute(select(task_runs).where(task_runs.c.registry_id == registry_id, *where)
                        .order_by(task_runs.c.number.desc()).limit(top)).all()
    return [_from_row(row) for row in rows]


def running_count(conn: Connection, registry_id: int) -> int:
    return int(conn.execute(select(func.count()).select_from(task_runs).where(
        task_runs.c.registry_id == registry_id, task_runs.c.status == RUNNING)).scalar_one())


def start(conn: Connection, pk: int) -> bool:
    """Queued → Running; False if the run is no longer queued (canceled meanwhile)."""
    return bool(conn.execute(update(task_runs).where(task_runs.c.id == pk, task_runs.c.status == QUEUED)
                             .values(status=RUNNING, started_at=utcnow())).rowcount)


def finish(conn: Connection, pk: int, status: str, *, error: str | None = None,
           output_images: list[dict[str, Any]] | None = None, base_images: list[dict[str, Any]] | None = None,
           log_digest: str | None = None, log_size: int = 0) -> bool:
    """Move an unfinished run to a final state."""
    assert status in TERMINAL
    values: dict[str, Any] = {"status": status, "finished_at": utcnow(), "error_message": error,
                              "log_digest": log_digest, "log_size": log_size}
    if output_images is not None:
        values["output_images"] = json.dumps(output_images)
    if base_images is not None:
        values["base_images"] = json.dumps(base_images)
    return bool(conn.execute(update(task_runs).where(task_runs.c.id == pk, task_runs.c.status.not_in(TERMINAL))
                             .values(**values)).rowcount)


def request_cancel(conn: Connection, run: Run) -> None:
    """A queued run ends at once; a running one is flagged, and its worker kills its processes."""
    if run.finished:
        return
    conn.execute(update(task_runs).where(task_runs.c.id == run.pk).values(cancel_requested=True))
    conn.execute(update(task_runs).where(task_runs.c.id == run.pk, task_runs.c.status == QUEUED)
                 .values(status=CANCELED, finished_at=utcnow()))


def cancel_requested(conn: Connection, pk: int) -> bool:
    return bool(conn.execute(select(task_runs.c.cancel_requested).where(task_runs.c.id == pk)).scalar_one())


def set_archive(conn: Connection, run: Run, enabled: bool) -> None:
    conn.execute(update(task_runs).where(task_runs.c.id == run.pk).values(is_archive_enabled=enabled))


# $filter ---------------------------------------------------------------------------------------------------------

_FIELDS = {"status": task_runs.c.status, "taskname": task_runs.c.task_name, "runtype": task_runs.c.run_type,
           "createtime": task_runs.c.created_at, "starttime": task_runs.c.started_at,
           "finishtime": task_runs.c.finished_at, "runid": task_runs.c.number, "agentpoolname": task_runs.c.agent_pool,
           "isarchiveenabled": task_runs.c.is_archive_enabled}
_CLAUSE = re.compile(r"\s*(?P<field>[A-Za-z]+)\s+(?P<op>eq|ne|gt|ge|lt|le)\s+"
                     r"(?P<value>'(?:[^']|'')*'|[0-9TZ:.+-]+|true|false)\s*", re.IGNORECASE)
_CONTAINS = re.compile(r"\s*contains\(\s*\[(?P<values>[^\]]*)\]\s*,\s*(?P<field>[A-Za-z]+)\s*\)\s*", re.IGNORECASE)


def parse_filter(text: str | None) -> list[ColumnElement[bool]]:
    """ACR's `$filter` on runs: `field op value` clauses joined by `and`, and `contains(['a','b'], field)`.
    Fields: status, taskName, runType, runId, createTime, startTime, finishTime, agentPoolName,
    isArchiveEnabled; operators eq ne gt ge lt le."""
    if not text or not text.strip():
        return []
    if len(text) > 2000:
        raise invalid("$filter is too long")
    clauses: list[ColumnElement[bool]] = []
    for part in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE):
        contains = _CONTAINS.fullmatch(part)
        if contains:
            column = _column(contains["field"])
            options = [_value(contains["field"], v.strip()) for v in contains["values"].split(",") if v.strip()]
            clauses.append(column.in_(options))
            continue
        match = _CLAUSE.fullmatch(part)
        if match is None:
            raise invalid(f"$filter clause {part[:100]!r} is not `field op value`")
        column = _column(match["field"])
        value = _value(match["field"], match["value"])
        op = match["op"].lower()
        clauses.append({"eq": column == value, "ne": column != value, "gt": column > value, "ge": column >= value,
                        "lt": column < value, "le": column <= value}[op])
    return [and_(*clauses)] if clauses else []


def _column(name: str) -> Any:
    column = _FIELDS.get(name.lower())
    if column is None:
        raise invalid(f"$filter cannot filter on {name[:50]!r}; fields: status, taskName, runType, runId, "
                      "createTime, startTime, finishTime, agentPoolName, isArchiveEnabled")
    return column


def _value(field_name: str, raw: str) -> Any:
    text = raw[1:-1].replace("''", "'") if raw.startswith("'") else raw
    field_name = field_name.lower()
    if field_name.endswith("time"):
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise invalid(f"$filter: {text[:40]!r} is not a date and time") from None
    if field_name == "runid":
        match = RUN_ID.match(text)
        if match is None:
            raise invalid(f"$filter: {text[:40]!r} is not a run id")
        return int(match.group(1))
    if field_name == "isarchiveenabled":
        return text.lower() == "true"
    return text


# ARM JSON ----------------------------------------------------------------------------------------------------------

def run_json(registry_resource_id: str, run: Run) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "runId": run.run_id, "status": run.status, "runType": run.run_type, "createTime": iso(run.created_at),
        "lastUpdatedTime": iso(run.finished_at or run.started_at or run.created_at),
        "platform": run.platform, "agentConfiguration": {"cpu": 2},
        "outputImages": run.output_images, "isArchiveEnabled": run.is_archive_enabled,
        "provisioningState": "Succeeded",
    }
    if run.task_name:
        properties["task"] = run.task_name
    if run.agent_pool:
        properties["agentPoolName"] = run.agent_pool
    if run.started_at:
        properties["startTime"] = iso(run.started_at)
    if run.finished_at:
        properties["finishTime"] = iso(run.finished_at)
    if run.base_images:
        properties["baseImageDependencies"] = run.base_images
    if run.error_message:
        properties["runErrorMessage"] = run.error_message
    return {"id": f"{registry_resource_id}/runs/{run.run_id}", "name": run.run_id,
            "type": "Microsoft.ContainerRegistry/registries/runs", "properties": properties}
