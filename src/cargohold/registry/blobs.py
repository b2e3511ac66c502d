"""Blob presence per repository: stat, delete (unlink from the repository) and cross-repository mount."""

from __future__ import annotations

from sqlalchemy import bindparam, delete, select
from sqlalchemy.engine import Connection

from cargohold.blobs.store import BlobStore, StoredBlob
from cargohold.db.engine import insert_missing, lock_digest, write_transaction
from cargohold.db.tables import blobs, repositories, repository_blobs
from cargohold.oci.digest import Digest
from cargohold.oci.errors import blob_unknown
from cargohold.registry import locks
from cargohold.kernel.context import RegistryContext, utcnow
from cargohold.registry.repositories import RepositoryRef, ensure_repository, find_repository_id

_BLOB_SIZE = (select(blobs.c.size, repositories.c.read_enabled)
              .select_from(repository_blobs.join(repositories).join(blobs))
              .where(repositories.c.registry_id == bindparam("registry"), repositories.c.name == bindparam("name"),
                     repository_blobs.c.digest == bindparam("digest")))


def find_blob(conn: Connection, ref: RepositoryRef, digest: Digest) -> int:
    """The size of a blob pushed or mounted into the repository; BLOB_UNKNOWN otherwise."""
    row = conn.execute(_BLOB_SIZE, {"registry": ref.registry_id, "name": ref.name, "digest": str(digest)}).first()
    if row is None:
        raise blob_unknown(str(digest))
    if not row.read_enabled:
        raise locks.disallowed("the repository is locked against reading")
    return int(row.size)


def blob_source(ctx: RegistryContext, digest: Digest) -> tuple[BlobStore, StoredBlob]:
    """The store to read a blob from: this region's, or (geo-replication with read-through) another region's
    while the copy is on its way."""
    try:
        stored = ctx.store.stat(digest)
    except OSError:
        if ctx.read_through is None:
            raise
        stored = None
    if stored is not None:
        return ctx.store, stored
    if ctx.read_through is not None:
        other = ctx.read_through(digest)
        if other is not None and (stored := other.stat(digest)) is not None:
            return other, stored
    raise blob_unknown(str(digest))


def delete_blob(ctx: RegistryContext, ref: RepositoryRef, digest: Digest) -> None:
    """Remove the blob from the repository; its bytes stay until garbage collection finds them unused."""
    with write_transaction(ctx.engine) as conn:
        repository_id = find_repository_id(conn, ref)
        removed = 0
        if repository_id is not None:
            locks.check_blob_deletable(conn, repository_id, str(digest))
            removed = conn.execute(
                delete(repository_blobs).where(repository_blobs.c.repository_id == repository_id,
                                               repository_blobs.c.digest == str(digest))
            ).rowcount
    if not removed:
        raise blob_unknown(str(digest))


def repositories_holding(conn: Connection, registry_id: int, digest: Digest, limit: int = 20) -> list[str]:
    """Names of repositories of the registry the blob was pushed or mounted into: candidate mount sources."""
    return list(conn.execute(
        select(repositories.c.name).join(repository_blobs)
        .where(repository_blobs.c.digest == str(digest), repositories.c.registry_id == registry_id)
        .order_by(repositories.c.name).limit(limit)).scalars())


def mount_blob(ctx: RegistryContext, ref: RepositoryRef, digest: Digest, sources: list[str]) -> bool:
    """Link a blob held by one of `sources` (repositories the caller may read) into `ref`. False if none does."""
    if not sources:
        return False
    with write_transaction(ctx.engine) as conn:
        lock_digest(conn, str(digest))
        held = conn.execute(
            select(repository_blobs.c.digest).join(repositories)
            .where(repository_blobs.c.digest == str(digest), repositories.c.registry_id == ref.registry_id,
                   repositories.c.name.in_(sources)).limit(1)).first()
        if held is None or ctx.store.stat(digest) is None:
            return False
        repository_id = ensure_repository(conn, ref, utcnow())
        locks.check_repository_writable(conn, repository_id)
        link_blob(conn, repository_id, digest, None)
    return True


def link_blob(conn: Connection, repository_id: int, digest: Digest, size: int | None) -> None:
    """Make a stored blob visible in a repository, recording the blob itself first if it is new."""
    now = utcnow()
    if size is not None:
        insert_missing(conn, blobs, [{"digest": str(digest), "size": size, "created_at": now}], ["digest"])
    insert_missing(conn, repository_blobs, [{"repository_id": repository_id, "digest": str(digest),
                                             "created_at": now}], ["repository_id", "digest"])
