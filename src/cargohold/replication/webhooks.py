"""Regional webhooks: a push event reaches the webhooks located in a region when the image is complete there.

At the push, webhooks in the push region (and those in locations without a store of their own) are owed the
event in the push's transaction, as before geo-replication. For each other region of the registry the event is
owed at once if the content is already complete there, else a `regional_pushes` row waits until the last
missing blob arrives (`settle`, called in the transaction that records the arrival)."""

from __future__ import annotations

import json

from sqlalchemy import delete, insert, or_, select
from sqlalchemy.engine import Connection

from cargohold.db.engine import lock_digest, lock_name
from cargohold.db.tables import manifest_references, manifests, registries
from cargohold.events.payload import RequestOrigin, Target
from cargohold.events.record import owe_event, record_event
from cargohold.events.tables import events
from cargohold.kernel.clock import utcnow
from cargohold.replication import presence
from cargohold.replication.copying import enqueue_copies
from cargohold.replication.regions import registry_regions
from cargohold.replication.tables import regional_pushes

SETTLE_LIMIT = 1000


def push_region(conn: Connection, registry_id: int, node_region: str | None) -> str:
    """Where a push landed: the node's region, or for a node without one the registry's home."""
    if node_region:
        return node_region
    return str(conn.execute(select(registries.c.location).where(registries.c.id == registry_id)).scalar_one())


def record_push(conn: Connection, node_region: str | None, registry_id: int, action: str, target: Target,
                origin: RequestOrigin, manifest_digest: str) -> int:
    """Record a push event (inside the push's transaction), owing it to each region's webhooks as soon as the
    manifest is complete there, and owe the other regions copies of what they lack."""
    others = [r for r in registry_regions(conn, registry_id) if r != push_region(conn, registry_id, node_region)]
    event_id = record_event(conn, registry_id, action, target, origin, defer_locations=frozenset(others))
    needed = presence.blobs_needed(conn, manifest_digest)
    if others:
        for digest in sorted(needed):
            lock_digest(conn, digest)
    now = utcnow()
    for region in others:
        if presence.missing_in(conn, manifest_digest, region).complete:
            owe_event(conn, registry_id, event_id, action, target.repository, target.tag,
                      locations=frozenset({region}))
        else:
            conn.execute(insert(regional_pushes).values(registry_id=registry_id, region=region, event_id=event_id,
                                                        manifest_digest=manifest_digest, created_at=now))
    if needed and others:
        enqueue_copies(conn, needed, others)
    return event_id


def settle(conn: Connection, digest: str, region: str) -> None:
    """A blob arrived in `region`: owe the region's webhooks the pushes that are now complete there. Only the
    pushes of manifests needing the blob (directly, or through an index one level up) are looked at.

    Arrivals of two blobs of one manifest can commit at once; each would see the other's as missing and neither
    would owe the push. So the checks take a lock per region (on PostgreSQL; SQLite serializes writers), held to
    the end of the transaction: the second arrival's checks then see the first one's commit."""
    direct = (select(manifests.c.digest).join(manifest_references, manifest_references.c.manifest_id == manifests.c.id)
              .where(manifest_references.c.digest == digest, manifest_references.c.kind == "blob"))
    parents = (select(manifests.c.digest).join(manifest_references,
                                               manifest_references.c.manifest_id == manifests.c.id)
               .where(manifest_references.c.kind == "manifest", manifest_references.c.digest.in_(direct)))
    query = select(regional_pushes).where(
        regional_pushes.c.region == region,
        or_(regional_pushes.c.manifest_digest.in_(direct), regional_pushes.c.manifest_digest.in_(parents)))
    if conn.execute(query.limit(1)).first() is None:
        return
    lock_name(conn, f"settle:{region}")
    waiting = conn.execute(query.order_by(regional_pushes.c.id).limit(SETTLE_LIMIT)).all()
    complete: dict[str, bool] = {}
    for row in waiting:
        if row.manifest_digest not in complete:
            complete[row.manifest_digest] = presence.missing_in(conn, row.manifest_digest, region).complete
        if not complete[row.manifest_digest]:
            continue
        event = conn.execute(select(events.c.action, events.c.repository, events.c.payload)
                             .where(events.c.id == row.event_id)).first()
        taken = conn.execute(delete(regional_pushes).where(regional_pushes.c.id == row.id)).rowcount
        if event is None or not taken:
            continue
        tag = (json.loads(event.payload).get("target") or {}).get("tag")
        owe_event(conn, row.registry_id, int(row.event_id), event.action, event.repository, tag,
                  locations=frozenset({region}))
