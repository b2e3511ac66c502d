"""A replication's status as ACR shows it: `Ready`, `Syncing` (how far behind, in items and bytes) or
`Unavailable` (the region has no store, or its store is failing), and where one image is complete."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, distinct, exists, func, select
from sqlalchemy.engine import Connection

from cargohold.db.tables import blobs, registries, repositories, repository_blobs
from cargohold.management.tables import replications
from cargohold.replication import presence
from cargohold.replication.regions import count_regions
from cargohold.replication.tables import blob_locations, regions

READY, SYNCING, UNAVAILABLE = "Ready", "Syncing", "Unavailable"


@dataclass(frozen=True)
class RegionStatus:
    display: str
    message: str | None
    items_behind: int
    bytes_behind: int


def region_status(conn: Connection, registry_id: int, location: str) -> RegionStatus:
    region = conn.execute(select(regions.c.name, regions.c.last_error).where(regions.c.name == location)).first()
    if region is None:
        if count_regions(conn) == 0:
            return RegionStatus(READY, None, 0, 0)
        return RegionStatus(UNAVAILABLE, f"No store is registered for region {location}: start a node with "
                            f"`cargohold serve --region {location} --storage-url ...`.", 0, 0)
    in_registry = select(repositories.c.id).where(repositories.c.registry_id == registry_id)
    digests = select(distinct(repository_blobs.c.digest)).where(repository_blobs.c.repository_id.in_(in_registry))
    row = conn.execute(select(func.count(), func.coalesce(func.sum(blobs.c.size), 0)).where(
        blobs.c.digest.in_(digests),
        ~exists().where(and_(blob_locations.c.digest == blobs.c.digest, blob_locations.c.region == location)))
    ).one()
    items, size = int(row[0]), int(row[1])
    if region.last_error and items:
        return RegionStatus(UNAVAILABLE, f"Copies into {location} are failing: {region.last_error}", items, size)
    if items:
        return RegionStatus(SYNCING, f"{items} items ({size} bytes) behind", items, size)
    return RegionStatus(READY, None, 0, 0)


def image_regions(conn: Connection, registry_id: int, manifest_digest: str) -> list[dict[str, Any]]:
    """Per location of the registry (home first): whether the manifest is complete in that region's store."""
    home = str(conn.execute(select(registries.c.location).where(registries.c.id == registry_id)).scalar_one())
    replicas = conn.execute(select(replications.c.location, replications.c.region_endpoint_enabled)
                            .where(replications.c.registry_id == registry_id)
                            .order_by(replications.c.location)).all()
    known = set(conn.execute(select(regions.c.name)).scalars())
    found = []
    for location, endpoint, is_home in [(home, True, True), *((r.location, r.region_endpoint_enabled, False)
                                                              for r in replicas)]:
        if location in known:
            missing = presence.missing_in(conn, manifest_digest, location)
        else:
            missing = presence.Missing(0, 0) if not known else presence.Missing(-1, 0)
        found.append({"region": location, "home": is_home, "complete": missing.complete,
                      "hasStore": location in known, "regionEndpointEnabled": bool(endpoint),
                      "missingBlobs": max(missing.items, 0), "missingBytes": missing.bytes})
    return found
