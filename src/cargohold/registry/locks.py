"""ACR's locks (changeable attributes) and the refusal they cause.

`writeEnabled: false` forbids changing and deleting; `deleteEnabled: false` forbids deleting; `readEnabled:
false` forbids pulling; `listEnabled: false` hides from listings. A repository's attributes apply to
everything in it. Refusals change nothing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.engine import Connection

from cargohold.db.tables import manifest_references, manifests, repositories, tags
from cargohold.oci.errors import RegistryError


def disallowed(what: str) -> RegistryError:
    return RegistryError("DENIED", "The operation is disallowed on this registry, repository or image.", 403,
                         {"reason": what})


def check_repository_writable(conn: Connection, repository_id: int) -> None:
    row = conn.execute(select(repositories.c.write_enabled).where(repositories.c.id == repository_id)).first()
    if row is not None and not row.write_enabled:
        raise disallowed("the repository is locked for writing")


def check_repository_deletable(conn: Connection, repository_id: int) -> None:
    row = conn.execute(select(repositories.c.write_enabled, repositories.c.delete_enabled)
                       .where(repositories.c.id == repository_id)).first()
    if row is not None and not (row.write_enabled and row.delete_enabled):
        raise disallowed("the repository is locked against deletion")


def check_manifest_deletable(conn: Connection, manifest_id: int) -> None:
    row = conn.execute(select(manifests.c.write_enabled, manifests.c.delete_enabled, manifests.c.digest,
                              manifests.c.repository_id).where(manifests.c.id == manifest_id)).first()
    if row is None:
        return
    if not (row.write_enabled and row.delete_enabled):
        raise disallowed("the manifest is locked against deletion")
    locked_tag = conn.execute(select(tags.c.name).where(
        tags.c.manifest_id == manifest_id, (tags.c.write_enabled.is_(False)) | (tags.c.delete_enabled.is_(False))
    ).limit(1)).first()
    if locked_tag is not None:
        raise disallowed(f"its tag {locked_tag.name} is locked against deletion")
    holder = locked_holder(conn, row.repository_id, row.digest, "manifest")
    if holder is not None:
        raise disallowed(f"{holder} refers to this manifest and is locked against deletion")


MAX_INDEX_DEPTH = 16
"""How many index levels `locked_holder` climbs; indexes nest one or two deep in practice."""


def locked_holder(conn: Connection, repository_id: int, digest: str, kind: str) -> str | None:
    """What protects `digest` (a blob, or a child manifest) in the repository: a manifest that needs it and is
    locked against writing or deletion, itself or by one of its tags, directly or through the indexes above it.

    Removing the blob or child would break that image, so a lock on the image holds for it as well."""
    needers = _needers(conn, repository_id, [digest], kind)
    seen: set[int] = set()
    for _ in range(MAX_INDEX_DEPTH):
        fresh = {row.id: row.digest for row in needers if row.id not in seen}
        if not fresh:
            return None
        seen |= fresh.keys()
        locked = conn.execute(select(manifests.c.digest).where(
            manifests.c.id.in_(list(fresh)),
            or_(manifests.c.write_enabled.is_(False), manifests.c.delete_enabled.is_(False))
        ).limit(1)).scalar_one_or_none()
        if locked is not None:
            return f"the manifest {locked}"
        locked_tag = conn.execute(select(tags.c.name).where(
            tags.c.manifest_id.in_(list(fresh)), or_(tags.c.write_enabled.is_(False), tags.c.delete_enabled.is_(False))
        ).limit(1)).scalar_one_or_none()
        if locked_tag is not None:
            return f"the tag {locked_tag}"
        needers = _needers(conn, repository_id, list(fresh.values()), "manifest")
    return None


def _needers(conn: Connection, repository_id: int, digests: list[str], kind: str) -> list[Any]:
    return list(conn.execute(
        select(manifests.c.id, manifests.c.digest)
        .join(manifest_references, manifest_references.c.manifest_id == manifests.c.id)
        .where(manifests.c.repository_id == repository_id, manifest_references.c.digest.in_(digests),
               manifest_references.c.kind == kind)).all())


def check_blob_deletable(conn: Connection, repository_id: int, digest: str) -> None:
    """Unlinking a blob from the repository: refused if the repository or an image needing the blob is locked."""
    check_repository_deletable(conn, repository_id)
    holder = locked_holder(conn, repository_id, digest, "blob")
    if holder is not None:
        raise disallowed(f"{holder} needs this blob and is locked against deletion")


def check_tag_deletable(tag: Any, manifest_write_enabled: bool) -> None:
    if not (tag.write_enabled and tag.delete_enabled):
        raise disallowed(f"the tag {tag.name} is locked against deletion")
    if not manifest_write_enabled:
        raise disallowed(f"the manifest tagged {tag.name} is locked for writing")


def check_tag_movable(conn: Connection, repository_id: int, tag_name: str, new_manifest_id: int) -> None:
    """Pointing `tag_name` at another manifest: refused if the tag, or the manifest it points at, is write-locked.
    Re-pushing the same manifest under the same tag is not a change and is allowed."""
    current = conn.execute(select(tags.c.manifest_id, tags.c.write_enabled, manifests.c.write_enabled.label("m_write"))
                           .join(manifests, manifests.c.id == tags.c.manifest_id)
                           .where(tags.c.repository_id == repository_id, tags.c.name == tag_name)).first()
    if current is None or current.manifest_id == new_manifest_id:
        return
    if not current.write_enabled:
        raise disallowed(f"the tag {tag_name} is locked for writing")
    if not current.m_write:
        raise disallowed(f"the manifest tagged {tag_name} is locked for writing")
