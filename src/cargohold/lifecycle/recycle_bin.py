"""Soft delete: with `policies.softDeletePolicy` enabled, a deleted manifest (by digest, by purge or retention,
or with its repository) goes to a recycle bin with the tags it had, for `retentionDays`; it can be listed
and restored with its tags, and is purged when its time is up.

Entering the bin happens inside the deleting transaction, so a manifest is either live or in the bin. While
it is there, garbage collection keeps the blobs it names (`deleted_manifest_references`); restoring links
them into the repository again, under each digest's lock, and refuses if one is gone. Restoring is refused
when a tag the manifest had now names another manifest, unless forced (the tag then moves back, a lock on it
permitting).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection

from cargohold.db.engine import lock_digest, write_transaction
from cargohold.db.tables import blobs, manifest_references, manifests, registries, repositories, tags
from cargohold.events.payload import PUSH, RequestOrigin, Target
from cargohold.events.record import record_event
from cargohold.kernel.clock import utcnow
from cargohold.kernel.context import RegistryContext
from cargohold.lifecycle.tables import deleted_manifest_references, deleted_manifests
from cargohold.oci.digest import Digest
from cargohold.oci.errors import RegistryError, manifest_unknown
from cargohold.registry import locks
from cargohold.registry.blobs import link_blob
from cargohold.registry.repositories import RepositoryRef, ensure_repository, touch_repository

_COPIED = ("digest", "media_type", "artifact_type", "subject_digest", "annotations", "size", "content",
           "config_media_type", "architecture", "os", "created_at")


def retention_days(conn: Connection, registry_id: int) -> int | None:
    """The registry's soft-delete retention in days, or None when soft delete is off."""
    settings = conn.execute(select(registries.c.settings).where(registries.c.id == registry_id)).scalar_one_or_none()
    policy = (json.loads(settings or "{}").get("policies") or {}).get("softDeletePolicy") or {}
    if policy.get("status") != "enabled":
        return None
    return int(policy.get("retentionDays", 7))


def keep_manifest(conn: Connection, registry_id: int, repository: str, manifest_id: int) -> None:
    """Inside a transaction deleting the manifest: put it in the bin if soft delete is on."""
    days = retention_days(conn, registry_id)
    if days is not None:
        _keep(conn, registry_id, repository, [manifest_id], days)


def keep_repository(conn: Connection, registry_id: int, repository: str, repository_id: int) -> None:
    """Inside a transaction deleting the repository: put every manifest of it in the bin if soft delete is on."""
    days = retention_days(conn, registry_id)
    if days is not None:
        ids = list(conn.execute(select(manifests.c.id).where(manifests.c.repository_id == repository_id)).scalars())
        _keep(conn, registry_id, repository, ids, days)


def _keep(conn: Connection, registry_id: int, repository: str, manifest_ids: list[int], days: int) -> None:
    now = utcnow()
    for manifest_id in manifest_ids:
        row = conn.execute(select(*(manifests.c[name] for name in _COPIED)).where(manifests.c.id == manifest_id)).one()
        tag_names = list(conn.execute(select(tags.c.name).where(tags.c.manifest_id == manifest_id)
                                      .order_by(tags.c.name)).scalars())
        deleted_id = conn.execute(insert(deleted_manifests).values(
            registry_id=registry_id, repository=repository, tags=json.dumps(tag_names), deleted_at=now,
            purge_after=now + timedelta(days=days), **row._asdict()).returning(deleted_manifests.c.id)).scalar_one()
        references = conn.execute(select(manifest_references.c.digest, manifest_references.c.kind)
                                  .where(manifest_references.c.manifest_id == manifest_id)).all()
        if references:
            conn.execute(insert(deleted_manifest_references),
                         [{"deleted_id": deleted_id, "digest": r.digest, "kind": r.kind} for r in references])


def _entry_json(row: Any) -> dict[str, Any]:
    from cargohold.management.fields import iso

    return {"repository": row.repository, "digest": row.digest, "mediaType": row.media_type,
            "imageSize": row.size, "tags": json.loads(row.tags), "createdTime": iso(row.created_at),
            "deletedTime": iso(row.deleted_at), "purgeTime": iso(row.purge_after)}


def list_deleted_repositories(conn: Connection, registry_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(select(deleted_manifests.c.repository, func.count().label("manifests"),
                               func.max(deleted_manifests.c.deleted_at).label("last_deleted"))
                        .where(deleted_manifests.c.registry_id == registry_id)
                        .group_by(deleted_manifests.c.repository).order_by(deleted_manifests.c.repository)).all()
    present = set(conn.execute(select(repositories.c.name).where(repositories.c.registry_id == registry_id,
                                                                 repositories.c.name.in_([r.repository for r in rows]))
                               ).scalars()) if rows else set()
    from cargohold.management.fields import iso

    return [{"name": r.repository, "deletedManifests": r.manifests, "lastDeletedTime": iso(r.last_deleted),
             "repositoryExists": r.repository in present} for r in rows]


def list_deleted_manifests(conn: Connection, registry_id: int, repository: str) -> list[dict[str, Any]]:
    rows = conn.execute(select(deleted_manifests).where(deleted_manifests.c.registry_id == registry_id,
                                                        deleted_manifests.c.repository == repository)
                        .order_by(deleted_manifests.c.deleted_at.desc(), deleted_manifests.c.id.desc())).all()
    return [_entry_json(row) for row in rows]


@dataclass(frozen=True)
class Restored:
    digest: str
    tags: list[str]


def conflict(message: str, detail: dict[str, Any]) -> RegistryError:
    return RegistryError("CONFLICT", message, 409, detail)


def restore_manifest(ctx: RegistryContext, ref: RepositoryRef, digest: str, force: bool,
                     origin: RequestOrigin | None = None) -> Restored:
    """Bring the most recently deleted copy of `digest` back into its repository with its tags."""
    with write_transaction(ctx.engine) as conn:
        entry = conn.execute(select(deleted_manifests).where(
            deleted_manifests.c.registry_id == ref.registry_id, deleted_manifests.c.repository == ref.name,
            deleted_manifests.c.digest == digest).order_by(deleted_manifests.c.id.desc()).limit(1)).first()
        if entry is None:
            raise manifest_unknown(digest)
        now = utcnow()
        repository_id = ensure_repository(conn, ref, now)
        locks.check_repository_writable(conn, repository_id)
        if conn.execute(select(manifests.c.id).where(manifests.c.repository_id == repository_id,
                                                     manifests.c.digest == digest)).first() is not None:
            raise conflict("the manifest is in the repository already", {"digest": digest})
        tag_names: list[str] = json.loads(entry.tags)
        reused = {row.name: row.digest for row in conn.execute(
            select(tags.c.name, manifests.c.digest).join(manifests, manifests.c.id == tags.c.manifest_id)
            .where(tags.c.repository_id == repository_id, tags.c.name.in_(tag_names)))}
        if reused and not force:
            raise conflict("a tag the manifest had names another manifest now; restore with force to move it back",
                           {"tags": sorted(reused)})
        references = conn.execute(select(deleted_manifest_references.c.digest, deleted_manifest_references.c.kind)
                                  .where(deleted_manifest_references.c.deleted_id == entry.id)).all()
        blob_digests = sorted({r.digest for r in references if r.kind == "blob"})
        for blob_digest in blob_digests:
            lock_digest(conn, blob_digest)
        present = set(conn.execute(select(blobs.c.digest).where(blobs.c.digest.in_(blob_digests))).scalars())
        missing = [d for d in blob_digests if d not in present or ctx.store.stat(Digest.parse(d)) is None]
        children = sorted({r.digest for r in references if r.kind == "manifest"})
        present_children = set(conn.execute(select(manifests.c.digest).where(
            manifests.c.repository_id == repository_id, manifests.c.digest.in_(children))).scalars())
        missing += [d for d in children if d not in present_children]
        if missing:
            raise conflict("content the manifest needs is gone (restore its child manifests first)",
                           {"missing": missing[:20]})
        for blob_digest in blob_digests:
            link_blob(conn, repository_id, Digest.parse(blob_digest), None)
        manifest_id = conn.execute(insert(manifests).values(
            repository_id=repository_id, updated_at=now,
            **{name: getattr(entry, name) for name in _COPIED}).returning(manifests.c.id)).scalar_one()
        if references:
            conn.execute(insert(manifest_references), [{"manifest_id": manifest_id, "digest": r.digest,
                                                        "kind": r.kind} for r in references])
        for tag_name in tag_names:
            if tag_name in reused:
                locks.check_tag_movable(conn, repository_id, tag_name, manifest_id)
                conn.execute(update(tags).where(tags.c.repository_id == repository_id, tags.c.name == tag_name)
                             .values(manifest_id=manifest_id, updated_at=now))
            else:
                conn.execute(insert(tags).values(repository_id=repository_id, name=tag_name,
                                                 manifest_id=manifest_id, created_at=now, updated_at=now))
        conn.execute(delete(deleted_manifests).where(deleted_manifests.c.id == entry.id))
        touch_repository(conn, repository_id, now)
        record_event(conn, ref.registry_id, PUSH, Target(ref.name, tag_names[0] if tag_names else None, digest,
                                                         entry.media_type, entry.size),
                     origin or RequestOrigin.internal("cargohold", "POST"))
    return Restored(digest, tag_names)


def purge_expired(ctx: RegistryContext) -> int:
    """Empty the bin of what has been there longer than its retention; returns how many manifests went."""
    purged = 0
    while True:
        with write_transaction(ctx.engine, signal=False) as conn:
            ids = list(conn.execute(select(deleted_manifests.c.id).where(deleted_manifests.c.purge_after < utcnow())
                                    .order_by(deleted_manifests.c.id).limit(500)).scalars())
            if not ids:
                return purged
            conn.execute(delete(deleted_manifest_references).where(deleted_manifest_references.c.deleted_id.in_(ids)))
            conn.execute(delete(deleted_manifests).where(deleted_manifests.c.id.in_(ids)))
            purged += len(ids)
