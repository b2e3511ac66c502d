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
                 only_webhook: int | None = None, *, defer_locations: frozenset[str] = frozenset()) -> int:
    """Record one event and owe it to the registry's enabled webhooks whose actions and scope match (or, for a
    ping, to `only_webhook`). Webhooks located in `defer_locations` are owed it later, by `owe_event`, when the
    content is complete in their region (geo-replication). Returns the event's row id."""
    now = utcnow()
    event_uuid = str(uuid.uuid4())
    event_id = conn.execute(insert(events).values(
        uuid=event_uuid, registry_id=registry_id, action=action, repository=target.repository,
        payload=json.dumps(payload(event_uuid, now, action, target, origin)), created_at=now,
    ).returning(events.c.id)).scalar_one()
    owe_event(conn, registry_id, int(event_id), action, target.repository, target.tag, only_webhook=only_webhook,
              skip_locations=defer_locations)
    return int(event_id)


def owe_event(conn: Connection, registry_id: int, event_id: int, action: str, repository: str | None,
              tag: str | None, *, only_webhook: int | None = None, locations: frozenset[str] | None = None,
              skip_locations: frozenset[str] = frozenset()) -> None:
    """Enqueue a delivery of a recorded event to each matching webhook (only those located in `locations`,
    when given; none located in `skip_locations`)."""
    hooks = conn.execute(select(webhooks.c.id, webhooks.c.actions, webhooks.c.scope, webhooks.c.status,
                                webhooks.c.location)
                         .where(webhooks.c.registry_id == registry_id)).all()
    owed = [hook.id for hook in hooks
            if (locations is None or hook.location in locations) and hook.location not in skip_locations
            and (hook.id == only_webhook or (only_webhook is None and hook.status == "enabled"
                                             and action in json.loads(hook.actions)
                                             and in_scope(hook.scope, repository, tag)))]
    enqueue_many(conn, WEBHOOK_JOB, [(f"webhook:{hook_id}", {"event": event_id, "webhook": hook_id})
                                     for hook_id in owed], max_attempts=DELIVERY_ATTEMPTS)
