"""Deleting a registry: its repositories, metadata, credentials and keys, and the blobs no other registry uses.

Everything happens in one write transaction, blob files included, holding each orphaned digest's lock
(`lock_digest`: SQLite serializes writers anyway; PostgreSQL takes advisory locks), so an upload finishing
in another registry either linked the blob before (it is then kept) or finds its file gone when it links it
(and fails rather than record a blob without bytes; see `uploads._commit`). A crash midway
rolls the metadata back; files already unlinked then show up in `fsck` as missing blobs of the deleted
registry only, since the shared ones are never touched.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, distinct, select
from sqlalchemy.engine import Connection

from cargohold.blobs.store import BlobStore
from cargohold.db.engine import lock_digest
from cargohold.db.tables import blobs, registries, repositories, repository_blobs, uploads
from cargohold.oci.digest import Digest
from cargohold.replication.copying import blobs_deleted


@dataclass(frozen=True)
class DeletedRegistry:
    repositories: int
    blobs_removed: int
    bytes_freed: int
    upload_ids: list[str]
    """Unfinished uploads whose files the caller discards after the transaction."""


def delete_registry(conn: Connection, store: BlobStore, registry_pk: int) -> DeletedRegistry:
    in_registry = select(repositories.c.id).where(repositories.c.registry_id == registry_pk)
    candidates = list(conn.execute(select(distinct(repository_blobs.c.digest))
                                   .where(repository_blobs.c.repository_id.in_(in_registry))).scalars())
    upload_ids = list(conn.execute(select(uploads.c.id).where(uploads.c.repository_id.in_(in_registry))).scalars())
    repository_count = len(conn.execute(in_registry).all())
    conn.execute(delete(registries).where(registries.c.id == registry_pk))
    still_used = set(conn.execute(select(distinct(repository_blobs.c.digest))
                                  .where(repository_blobs.c.digest.in_(candidates))).scalars()) if candidates else set()
    orphans = sorted(digest for digest in candidates if digest not in still_used)
    for digest in orphans:
        lock_digest(conn, digest)
    if orphans:
        still_used = set(conn.execute(select(distinct(repository_blobs.c.digest))
                                      .where(repository_blobs.c.digest.in_(orphans))).scalars())
        orphans = [digest for digest in orphans if digest not in still_used]
    freed = 0
    for start in range(0, len(orphans), 500):
        batch = orphans[start:start + 500]
        freed += sum(conn.execute(select(blobs.c.size).where(blobs.c.digest.in_(batch))).scalars())
        conn.execute(delete(blobs).where(blobs.c.digest.in_(batch)))
    blobs_deleted(conn, orphans, None)
    for digest in orphans:
        store.delete(Digest.parse(digest))
    return DeletedRegistry(repository_count, len(orphans), int(freed), upload_ids)
