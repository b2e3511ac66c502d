"""Writing events: inside the transaction of the change they report, with a delivery job for every webhook
that wants the event, so an event is never lost and never invented."""

from __future__ import annotations

import json
import os
import uuid

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from cargohold.events.payload import RequestOrigin, Target, in_scope, payload
from cargohold.events.tables import events
from cargohold.jobs.queue import enqueue_many
from cargohold.management.tables import webhooks
from cargohold.kernel.clock import utcnow

WEBHOOK_JOB = "webhook"
DELIVERY_ATTEMPTS = int(os.environ.get("CARGOHOLD_WEBHOOK_MAX_ATTEMPTS", "10"))


def record_event(conn: Connection, registry_id: int, action: str, target: Target, origin: RequestOrigin,
                 only_webhook: int | None = None) -> int:
    """Record one event and owe it to the registry's enabled webhooks whose actions and scope match (or, for a
    ping, to `only_webhook`). Returns the event's row id."""
    now = utcnow()
    event_uuid = str(uuid.uuid4())
    event_id = conn.execute(insert(events).values(
        uuid=event_uuid, registry_id=registry_id, action=action, repository=target.repository,
        payload=json.dumps(payload(event_uuid, now, action, target, origin)), created_at=now,
    ).returning(events.c.id)).scalar_one()
    hooks = conn.execute(select(webhooks.c.id, webhooks.c.actions, webhooks.c.scope, webhooks.c.status)
                         .where(webhooks.c.registry_id == registry_id)).all()
    owed = [hook.id for hook in hooks
            if hook.id == only_webhook or (only_webhook is None and hook.status == "enabled"
                                           and action in json.loads(hook.actions)
                                           and in_scope(hook.scope, target.repository, target.tag))]
    enqueue_many(conn, WEBHOOK_JOB, [(f"webhook:{hook_id}", {"event": int(event_id), "webhook": hook_id})
                                     for hook_id in owed], max_attempts=DELIVERY_ATTEMPTS)
    return int(event_id)

