"""A webhook's delivery history in ACR's `listEvents` shape, newest first."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from cargohold.events.tables import delivery_attempts, events
from cargohold.management.fields import iso

PAGE = 100


def list_attempts(conn: Connection, webhook_id: int, before: int | None) -> tuple[list[dict[str, Any]], int | None]:
    """One page of attempts, and the id to continue below when there are more."""
    query = (select(delivery_attempts, events.c.uuid)
             .join(events, events.c.id == delivery_attempts.c.event_id)
             .where(delivery_attempts.c.webhook_id == webhook_id)
             .order_by(delivery_attempts.c.id.desc()).limit(PAGE + 1))
    if before is not None:
        query = query.where(delivery_attempts.c.id < before)
    rows = conn.execute(query).all()
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    return [_attempt_json(row) for row in rows], (rows[-1].id if more else None)


def _attempt_json(row: Any) -> dict[str, Any]:
    response: dict[str, Any] = {"version": "1.1"}
    if row.response_status is not None:
        response.update(statusCode=str(row.response_status), reasonPhrase=row.response_reason or "",
                        headers=json.loads(row.response_headers or "{}"), content=row.response_body or "")
    else:
        response.update(statusCode="", reasonPhrase=row.error or "no response", headers={}, content="")
    return {
        "id": row.uuid,
        "eventRequestMessage": {"content": json.loads(row.request_body), "headers": json.loads(row.request_headers),
                                "method": "POST", "requestUri": row.request_uri, "version": "1.1"},
        "eventResponseMessage": response,
        "attempt": row.attempt,
        "durationMs": row.duration_ms,
        "timestamp": iso(row.at),
    }
