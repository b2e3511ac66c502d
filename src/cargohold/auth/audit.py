"""The audit log: logins, pushes, pulls, deletes and refusals, with who, from where, and the outcome.

Pulls are many, so records are queued and written in one transaction at most a second later; a crash can
lose the last second of records, never change one. `flush` is called on shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection, Engine

from cargohold.auth.tables import audit_events
from cargohold.db.engine import write_transaction
from cargohold.registry.context import utcnow

FLUSH_INTERVAL = 1.0
MAX_QUEUE = 50_000
log = logging.getLogger("cargohold.audit")


@dataclass
class AuditEvent:
    action: str
    outcome: str
    registry: str | None = None
    identity: str | None = None
    client_ip: str | None = None
    repository: str | None = None
    reference: str | None = None
    detail: str | None = None
    at: datetime = field(default_factory=utcnow)


class AuditLog:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._queue: list[AuditEvent] = []
        self._flusher: asyncio.Task[None] | None = None

    def record(self, event: AuditEvent) -> None:
        if len(self._queue) >= MAX_QUEUE:
            log.warning("audit queue full; dropping %s of %s", event.action, event.identity)
            return
        self._queue.append(event)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        await asyncio.sleep(FLUSH_INTERVAL)
        await asyncio.get_running_loop().run_in_executor(None, self.flush)

    def flush(self) -> None:
        batch, self._queue = self._queue, []
        if not batch:
            return
        try:
            with write_transaction(self.engine) as conn:
                conn.execute(insert(audit_events), [asdict(event) for event in batch])
        except Exception:
            log.exception("could not write %d audit records", len(batch))


def query_events(conn: Connection, *, since: datetime | None = None, identity: str | None = None,
                 action: str | None = None, repository: str | None = None, limit: int = 100) -> list[dict[str, object]]:
    query = select(audit_events).order_by(audit_events.c.id.desc()).limit(limit)
    if since is not None:
        query = query.where(audit_events.c.at >= since)
    if identity is not None:
        query = query.where(audit_events.c.identity == identity)
    if action is not None:
        query = query.where(audit_events.c.action == action)
    if repository is not None:
        query = query.where(audit_events.c.repository == repository)
    return [dict(row._mapping) for row in conn.execute(query)]
