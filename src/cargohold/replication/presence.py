"""Where content is: recording a blob's arrival in a region, and whether a manifest is complete in one."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, bindparam, exists, select
from sqlalchemy.engine import Connection

from cargohold.db.engine import insert_missing
from cargohold.db.tables import blobs, manifest_references, manifests
from cargohold.kernel.clock import utcnow
from cargohold.replication.tables import blob_locations

MAX_DEPTH = 4
"""Indexes of indexes are followed this deep."""


@dataclass(frozen=True)
class Missing:
    items: int
    bytes: int

    @property
    def complete(self) -> bool:
        return self.items == 0


def record_present(conn: Connection, digest: str, region: str) -> None:
    insert_missing(conn, blob_locations, [{"digest": digest, "region": region, "created_at": utcnow()}],
                   ["digest", "region"])


def is_present(conn: Connection, digest: str, region: str) -> bool:
    return conn.execute(select(blob_locations.c.digest).where(blob_locations.c.digest == digest,
                                                              blob_locations.c.region == region)).first() is not None


def present_regions(conn: Connection, digest: str) -> list[str]:
    return list(conn.execute(select(blob_locations.c.region).where(blob_locations.c.digest == digest)
                             .order_by(blob_locations.c.region)).scalars())


_REFERENCES = (select(manifest_references.c.digest, manifest_references.c.kind)
               .join(manifests, manifests.c.id == manifest_references.c.manifest_id)
               .where(manifests.c.digest == bindparam("digest")).distinct())
_MISSING_BLOBS = (select(blobs.c.digest, blobs.c.size)
                  .where(blobs.c.digest.in_(bindparam("digests", expanding=True)),
                         ~exists().where(and_(blob_locations.c.digest == blobs.c.digest,
                                              blob_locations.c.region == bindparam("region")))))


def blobs_needed(conn: Connection, manifest_digest: str) -> set[str]:
    """Every blob a manifest needs, through its children if it is an index."""
    needed: set[str] = set()
    seen: set[str] = set()
    frontier = [manifest_digest]
    for _ in range(MAX_DEPTH):
        children: list[str] = []
        for digest in frontier:
            if digest in seen:
                continue
            seen.add(digest)
            for row in conn.execute(_REFERENCES, {"digest": digest}):
                (needed.add(row.digest) if row.kind == "blob" else children.append(row.digest))
        if not children:
            break
        frontier = children
    return needed


def missing_in(conn: Connection, manifest_digest: str, region: str) -> Missing:
    """The blobs of a manifest the region's store does not hold yet, counted and summed."""
    needed = blobs_needed(conn, manifest_digest)
    if not needed:
        return Missing(0, 0)
    rows = conn.execute(_MISSING_BLOBS, {"digests": sorted(needed), "region": region}).all()
    return Missing(len(rows), sum(int(row.size) for row in rows))


def complete_in(conn: Connection, manifest_digest: str, region: str) -> bool:
    return missing_in(conn, manifest_digest, region).complete
