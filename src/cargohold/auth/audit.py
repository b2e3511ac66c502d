"""The audit log: logins, pushes, pulls, deletes and refusals, with who, from where, and the outcome.

Records are queued and written in one transaction at most a second later; a crash can lose the last second
of records, never change one. `flush` is called on shutdown. Pulls are many: identical ones (same identity,
address, repository and reference) within one flush are written as one row with their `count`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection, Engine

from cargohold.auth.tables import audit_events
from cargohold.db.engine import write_transaction
from cargohold.kernel.clock import utcnow

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
    count: int = 1

    def row(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


PullKey = tuple[str | None, str | None, str | None, str, str]


class AuditLog:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._queue: list[AuditEvent] = []
        self._pulls: Counter[PullKey] = Counter()
        self._flusher: asyncio.Task[None] | None = None

    def record(self, event: AuditEvent) -> None:
        if len(self._queue) >= MAX_QUEUE:
            log.warning("audit queue full; dropping %s of %s", event.action, event.identity)
            return
        self._queue.append(event)
        self._schedule()

    def record_pull(self, registry: str | None, identity: str | None, client_ip: str | None, repository: str,
                    reference: str) -> None:
        self._pulls[(registry, identity, client_ip, repository, reference)] += 1
        self._schedule()

    def _schedule(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        await asyncio.sleep(FLUSH_INTERVAL)
        await asyncio.get_running_loop().run_in_executor(None, self.flush)

    def flush(self) -> None:
        batch, self._queue = self._queue, []
        pulls, self._pulls = self._pulls, Counter()
        now = utcnow()
        batch += [AuditEvent("pull", "success", registry, identity, ip, repository, reference, at=now, count=n)
                  for (registry, identity, ip, repository, reference), n in pulls.items()]
        if not batch:
            return
        try:
            with write_transaction(self.engine, signal=False) as conn:
                conn.execute(insert(audit_events), [event.row() for event in batch])
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
