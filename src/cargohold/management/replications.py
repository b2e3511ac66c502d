"""Replications as ARM resources (Premium only): where a registry is meant to have copies. Keeping the copies
in step is the geo-replication feature's job."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from cargohold.management import skus
from cargohold.management.arm import ArmError, invalid, not_found
from cargohold.management.fields import boolean, choice, iso, tags_of
from cargohold.management.resources import REGISTRY_TYPE, Registry
from cargohold.management.tables import replications
from cargohold.kernel.clock import utcnow
from cargohold.replication.copying import enqueue_backfill, enqueue_release
from cargohold.replication.regions import registered_regions
from cargohold.replication.status import RegionStatus, region_status

REPLICATION_TYPE = f"{REGISTRY_TYPE}/replications"
REPLICATION_NAME = re.compile(r"^[a-zA-Z0-9]{5,50}$")
LOCATION = re.compile(r"^[a-z0-9][a-z0-9 -]{0,62}$")


@dataclass(frozen=True)
class Replication:
    id: int
    name: str
    location: str
    region_endpoint_enabled: bool
    zone_redundancy: str
    tags: dict[str, str]
    created_at: Any
    status: RegionStatus | None = None
    """How far the region's copies are behind (geo-replication); filled in when read."""


def _from_row(row: Row[Any]) -> Replication:
    return Replication(row.id, row.name, row.location, row.region_endpoint_enabled, row.zone_redundancy,
                       json.loads(row.tags), row.created_at)


def list_replications(conn: Connection, registry: Registry) -> list[Replication]:
    rows = conn.execute(select(replications).where(replications.c.registry_id == registry.id)
                        .order_by(replications.c.name))
    return [_with_status(conn, registry, _from_row(row)) for row in rows]


def get_replication(conn: Connection, registry: Registry, name: str) -> Replication:
    row = conn.execute(select(replications).where(replications.c.registry_id == registry.id,
                                                  func.lower(replications.c.name) == name.lower())).first()
    if row is None:
        raise not_found("replication", name)
    return _with_status(conn, registry, _from_row(row))


def _with_status(conn: Connection, registry: Registry, replica: Replication) -> Replication:
    return replace(replica, status=region_status(conn, registry.id, replica.location))


def put_replication(conn: Connection, registry: Registry, name: str, body: dict[str, Any]) -> tuple[Replication, bool]:
    try:
        current = get_replication(conn, registry, name)
    except ArmError:
        return create_replication(conn, registry, name, body), True
    if body.get("location") and str(body["location"]).strip().lower() != current.location:
        raise ArmError(409, "InvalidResourceLocation",
                       f"The replication {name} already exists in location '{current.location}'.")
    return update_replication(conn, registry, name, body), False


def create_replication(conn: Connection, registry: Registry, name: str, body: dict[str, Any]) -> Replication:
    if not skus.SKUS[registry.sku].premium_features:
        raise ArmError(400, "GeoReplicationNotSupported",
                       f"Geo-replication is not supported for the SKU {registry.sku}; it needs Premium.")
    if not REPLICATION_NAME.match(name):
        raise invalid("Replication names are 5-50 alphanumeric characters.", "InvalidReplicationName")
    location = str(body.get("location") or "").strip().lower()
    if not LOCATION.match(location):
        raise invalid("The location of the replication is required.", "LocationRequired")
    if location == registry.location:
        raise ArmError(409, "ReplicationAlreadyExists",
                       f"The registry's home location '{location}' is its home replication already.")
    count = conn.execute(select(func.count()).select_from(replications)
                         .where(replications.c.registry_id == registry.id)).scalar_one()
    if count >= skus.REPLICATIONS_PREMIUM:
        raise ArmError(409, "QuotaExceeded", f"A registry has at most {skus.REPLICATIONS_PREMIUM} replications.")
    properties = body.get("properties") or {}
    try:
        with conn.begin_nested():
            conn.execute(insert(replications).values(
                registry_id=registry.id, name=name, location=location,
                region_endpoint_enabled=boolean("regionEndpointEnabled",
                                                 properties.get("regionEndpointEnabled", True)),
                zone_redundancy=choice("zoneRedundancy", properties.get("zoneRedundancy") or "Disabled",
                                        ("Enabled", "Disabled")),
                tags=json.dumps(tags_of(body)), created_at=utcnow()))
    except IntegrityError:
        raise ArmError(409, "ReplicationAlreadyExists",
                       f"The registry already has a replication in location '{location}'.") from None
    if location in registered_regions(conn):
        enqueue_backfill(conn, registry.id, location)
    return get_replication(conn, registry, name)


def update_replication(conn: Connection, registry: Registry, name: str, body: dict[str, Any]) -> Replication:
    current = get_replication(conn, registry, name)
    properties = body.get("properties") or {}
    values: dict[str, Any] = {}
    if properties.get("regionEndpointEnabled") is not None:
        values["region_endpoint_enabled"] = boolean("regionEndpointEnabled", properties["regionEndpointEnabled"])
    if body.get("tags") is not None:
        values["tags"] = json.dumps(tags_of(body))
    if values:
        conn.execute(update(replications).where(replications.c.id == current.id).values(**values))
    return get_replication(conn, registry, name)


def delete_replication(conn: Connection, registry: Registry, name: str) -> bool:
    """Remove the replication; copying into its region stops and, after a grace, its copies are freed."""
    try:
        location = get_replication(conn, registry, name).location
    except ArmError:
        return False
    conn.execute(delete(replications).where(replications.c.registry_id == registry.id,
                                            func.lower(replications.c.name) == name.lower()))
    enqueue_release(conn, registry.id, location)
    return True


def _status_json(replica: Replication) -> dict[str, Any]:
    status = replica.status
    found: dict[str, Any] = {"displayStatus": status.display if status else "Ready",
                             "timestamp": iso(utcnow() if status else replica.created_at)}
    if status is not None and status.message:
        found["message"] = status.message
    return found


def replication_json(registry: Registry, replica: Replication) -> dict[str, Any]:
    return {
        "id": f"{registry.resource_id}/replications/{replica.name}",
        "name": replica.name,
        "type": REPLICATION_TYPE,
        "location": replica.location,
        "tags": replica.tags,
        "properties": {
            "provisioningState": "Succeeded",
            "status": _status_json(replica),
            "regionEndpointEnabled": replica.region_endpoint_enabled,
            "zoneRedundancy": replica.zone_redundancy,
        },
    }
