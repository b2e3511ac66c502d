"""Manifests and tags: put (validated against what the repository holds), get, delete, and referrers."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from cargohold.db.engine import lock_digest, write_transaction
from cargohold.db.tables import blobs, manifest_references, manifests, repositories, repository_blobs, tags
from cargohold.events.payload import CHART_DELETE, CHART_PUSH, DELETE, PUSH, RequestOrigin, Target, is_chart
from cargohold.events.record import record_event
from cargohold.lifecycle import recycle_bin
from cargohold.oci import jsonbody, mediatypes
from cargohold.oci.digest import Digest, is_digest
from cargohold.oci.errors import (
    RegistryError,
    digest_invalid,
    manifest_blob_unknown,
    manifest_invalid,
    manifest_unknown,
    name_unknown,
)
from cargohold.oci.manifest import Descriptor, ParsedManifest, parse_manifest
from cargohold.oci.reference import validate_tag
from cargohold.registry import locks
from cargohold.kernel.context import RegistryContext, utcnow
from cargohold.replication.webhooks import record_push
from cargohold.registry.repositories import (
    RepositoryRef,
    ensure_repository,
    find_repository_id,
    is_repository,
    touch_repository,
)

WRITE_ATTEMPTS = 5
MAX_CONFIG_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class StoredManifest:
    digest: str
    media_type: str
    content: bytes
    subject_digest: str | None
    readable: bool
    """False when the repository, the manifest or the tag it was found by has `readEnabled: false`."""


@dataclass(frozen=True, slots=True)
class PutResult:
    digest: str
    subject_digest: str | None


_MANIFEST_COLUMNS = (manifests.c.digest, manifests.c.media_type, manifests.c.content, manifests.c.subject_digest,
                     (repositories.c.read_enabled & manifests.c.read_enabled).label("readable"))
_BY_DIGEST = (select(*_MANIFEST_COLUMNS).select_from(manifests.join(repositories))
              .where(repositories.c.registry_id == bindparam("registry"), repositories.c.name == bindparam("name"),
                     manifests.c.digest == bindparam("reference")))
_BY_TAG = (select(*_MANIFEST_COLUMNS[:-1],
                  (repositories.c.read_enabled & manifests.c.read_enabled & tags.c.read_enabled).label("readable"))
           .select_from(tags.join(repositories).join(manifests, manifests.c.id == tags.c.manifest_id))
           .where(repositories.c.registry_id == bindparam("registry"), repositories.c.name == bindparam("name"),
                  tags.c.name == bindparam("reference")))


def find_manifest(conn: Connection, ref: RepositoryRef, reference: str) -> StoredManifest:
    """Look a manifest up by tag or digest: one indexed query, the hot path of every pull."""
    query = _BY_DIGEST if is_digest(reference) else _BY_TAG
    row = conn.execute(query, {"registry": ref.registry_id, "name": ref.name, "reference": reference}).first()
    if row is None:
        raise manifest_unknown(reference)
    return StoredManifest(row.digest, row.media_type, row.content, row.subject_digest, bool(row.readable))


def put_manifest(ctx: RegistryContext, ref: RepositoryRef, reference: str, body: bytes, content_type: str | None,
                 extra_tags: list[str], origin: RequestOrigin | None = None) -> PutResult:
    parsed = parse_manifest(body, content_type)
    if is_digest(reference):
        wanted = Digest.parse(reference)
        digest = f"{wanted.algorithm}:{hashlib.new(wanted.algorithm, body).hexdigest()}"
        if digest != reference:
            raise digest_invalid("the manifest's content does not match the digest in the URL", reference)
        tag_names = [validate_tag(t) for t in extra_tags]
    else:
        digest = f"sha256:{hashlib.sha256(body).hexdigest()}"
        tag_names = [validate_tag(reference), *(validate_tag(t) for t in extra_tags)]
    platform = _image_platform(ctx, parsed)
    for attempt in range(WRITE_ATTEMPTS):
        try:
            with write_transaction(ctx.engine) as conn:
                _store_manifest(conn, ref, digest, body, parsed, tag_names, platform)
                chart = is_chart(parsed.config.media_type if parsed.config else None)
                tag = tag_names[0] if tag_names else None
                record_push(conn, ctx.region, ref.registry_id, CHART_PUSH if chart else PUSH, Target(
                    ref.name, tag, digest, parsed.media_type, len(body),
                    *((ref.name.rsplit("/", 1)[-1], tag) if chart else (None, None))),
                    origin or RequestOrigin.internal("cargohold", "PUT"), digest)
            break
        except IntegrityError:
            if attempt == WRITE_ATTEMPTS - 1:
                raise
    return PutResult(digest, parsed.subject.digest if parsed.subject else None)


def _image_platform(ctx: RegistryContext, parsed: ParsedManifest) -> tuple[str | None, str | None]:
    """Architecture and OS of an image, from its config blob, for ACR's manifest properties."""
    config = parsed.config
    if config is None or config.media_type not in mediatypes.IMAGE_CONFIG_TYPES or config.size > MAX_CONFIG_BYTES:
        return None, None
    try:
        digest = Digest.parse(config.digest)
        if ctx.store.stat(digest) is None:
            return None, None
        document = jsonbody.loads(b"".join(ctx.store.read(digest, MAX_CONFIG_BYTES)))
    except (RegistryError, ValueError, OSError):
        return None, None
    if not isinstance(document, dict):
        return None, None
    return _short_string(document.get("architecture")), _short_string(document.get("os"))


def _short_string(value: object) -> str | None:
    """A config's architecture or OS as a column may hold it: short, and printable (PostgreSQL refuses NUL)."""
    return value[:64] if isinstance(value, str) and value[:64].isprintable() else None


def _store_manifest(conn: Connection, ref: RepositoryRef, digest: str, body: bytes, parsed: ParsedManifest,
                    tag_names: list[str], platform: tuple[str | None, str | None]) -> None:
    now = utcnow()
    repository_id = ensure_repository(conn, ref, now)
    locks.check_repository_writable(conn, repository_id)
    for blob_digest in sorted({d.digest for d in parsed.blob_references()}):
        lock_digest(conn, blob_digest)
    _check_references(conn, repository_id, parsed)
    manifest_id = conn.execute(
        select(manifests.c.id).where(manifests.c.repository_id == repository_id, manifests.c.digest == digest)
    ).scalar_one_or_none()
    if manifest_id is None:
        manifest_id = conn.execute(
            insert(manifests).values(
                repository_id=repository_id, digest=digest, media_type=parsed.media_type,
                artifact_type=parsed.artifact_type,
                subject_digest=parsed.subject.digest if parsed.subject else None,
                annotations=json.dumps(parsed.annotations) if parsed.annotations else None,
                size=len(body), content=body, config_media_type=parsed.config.media_type if parsed.config else None,
                architecture=platform[0], os=platform[1], created_at=now, updated_at=now,
            ).returning(manifests.c.id)
        ).scalar_one()
        references = {(d.digest, "blob") for d in parsed.blob_references()}
        references |= {(d.digest, "manifest") for d in parsed.manifests}
        if references:
            conn.execute(insert(manifest_references),
                         [{"manifest_id": manifest_id, "digest": d, "kind": k} for d, k in sorted(references)])
    else:
        conn.execute(update(manifests).where(manifests.c.id == manifest_id).values(updated_at=now))
    for tag_name in tag_names:
        locks.check_tag_movable(conn, repository_id, tag_name, manifest_id)
        _point_tag(conn, repository_id, tag_name, manifest_id, now)
    touch_repository(conn, repository_id, now)


def _check_references(conn: Connection, repository_id: int, parsed: ParsedManifest) -> None:
    """Invariant 2: every blob and child manifest must be in this repository, with the declared size."""
    wanted_blobs = parsed.blob_references()
    if wanted_blobs:
        present = dict(conn.execute(
            select(blobs.c.digest, blobs.c.size).select_from(repository_blobs.join(blobs))
            .where(repository_blobs.c.repository_id == repository_id,
                   repository_blobs.c.digest.in_({d.digest for d in wanted_blobs}))
        ).all())
        _compare(wanted_blobs, present)
    if parsed.manifests:
        present = dict(conn.execute(
            select(manifests.c.digest, manifests.c.size)
            .where(manifests.c.repository_id == repository_id,
                   manifests.c.digest.in_({d.digest for d in parsed.manifests}))
        ).all())
        _compare(list(parsed.manifests), present)


def _compare(wanted: list[Descriptor], present: dict[str, int]) -> None:
    for descriptor in wanted:
        size = present.get(descriptor.digest)
        if size is None:
            raise manifest_blob_unknown(descriptor.digest)
        if size != descriptor.size:
            raise manifest_invalid(f"{descriptor.digest} is {size} bytes, the manifest says {descriptor.size}")


def _point_tag(conn: Connection, repository_id: int, tag_name: str, manifest_id: int, now: Any) -> None:
    moved = conn.execute(
        update(tags).where(tags.c.repository_id == repository_id, tags.c.name == tag_name)
        .values(manifest_id=manifest_id, updated_at=now)
    ).rowcount
    if not moved:
        conn.execute(insert(tags).values(repository_id=repository_id, name=tag_name, manifest_id=manifest_id,
                                         created_at=now, updated_at=now))


def delete_manifest(ctx: RegistryContext, ref: RepositoryRef, reference: str,
                    origin: RequestOrigin | None = None,
                    check: Callable[[Connection, int], None] | None = None) -> None:
    """By digest: the manifest and every tag on it. By tag: only the tag (OCI Distribution 1.1). Locks hold.
    Either way one `delete` (or `chart_delete`) event is recorded. `check(conn, manifest_id)`, if given, runs
    inside the transaction before a delete by digest and may raise to call it off (retention re-checks there
    that the manifest is still untagged and unprotected)."""
    with write_transaction(ctx.engine) as conn:
        repository_id = find_repository_id(conn, ref)
        if repository_id is None:
            raise name_unknown(ref.name)
        locks.check_repository_deletable(conn, repository_id)
        if is_digest(reference):
            found = conn.execute(select(manifests.c.id, manifests.c.media_type, manifests.c.size,
                                        manifests.c.config_media_type).where(
                manifests.c.repository_id == repository_id, manifests.c.digest == reference)).first()
            if found is None:
                raise manifest_unknown(reference)
            locks.check_manifest_deletable(conn, found.id)
            if check is not None:
                check(conn, found.id)
            chart_version = conn.execute(select(tags.c.name).where(tags.c.manifest_id == found.id)
                                         .order_by(tags.c.name).limit(1)).scalar_one_or_none()
            recycle_bin.keep_manifest(conn, ref.registry_id, ref.name, found.id)
            conn.execute(delete(manifests).where(manifests.c.id == found.id))
            tag_name = None
        else:
            tag = conn.execute(select(tags.c.name, tags.c.write_enabled, tags.c.delete_enabled,
                                      manifests.c.write_enabled.label("manifest_write_enabled"),
                                      manifests.c.media_type, manifests.c.size, manifests.c.digest,
                                      manifests.c.config_media_type)
                               .join(manifests, manifests.c.id == tags.c.manifest_id)
                               .where(tags.c.repository_id == repository_id, tags.c.name == reference)).first()
            if tag is None:
                raise manifest_unknown(reference)
            locks.check_tag_deletable(tag, tag.manifest_write_enabled)
            conn.execute(delete(tags).where(tags.c.repository_id == repository_id, tags.c.name == reference))
            found, tag_name = tag, reference
            chart_version = reference
        touch_repository(conn, repository_id, utcnow())
        chart = is_chart(found.config_media_type)
        record_event(conn, ref.registry_id, CHART_DELETE if chart else DELETE, Target(
            ref.name, tag_name, found.digest if tag_name else reference, found.media_type, found.size,
            *((ref.name.rsplit("/", 1)[-1], chart_version) if chart else (None, None))),
            origin or RequestOrigin.internal("cargohold", "DELETE"))


def referrers(ctx: RegistryContext, ref: RepositoryRef, subject: Digest, artifact_type: str | None) -> dict[str, Any]:
    """The image index of manifests in the repository whose subject is `subject`, optionally of one artifact type."""
    query = (select(manifests.c.digest, manifests.c.media_type, manifests.c.size, manifests.c.artifact_type,
                    manifests.c.annotations)
             .select_from(manifests.join(repositories))
             .where(is_repository(ref), manifests.c.subject_digest == str(subject))
             .order_by(manifests.c.id))
    if artifact_type is not None:
        query = query.where(manifests.c.artifact_type == artifact_type)
    with ctx.engine.connect() as conn:
        rows = conn.execute(query).all()
    descriptors = [
        Descriptor(row.media_type, row.digest, row.size, row.artifact_type,
                   json.loads(row.annotations) if row.annotations else None).to_json()
        for row in rows
    ]
    return {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": descriptors}


def accepts(accept_header: str | None, media_type: str) -> bool:
    """Content negotiation: refuse only when the client names manifest types and the stored one is not among them."""
    if not accept_header:
        return True
    offered = {part.split(";", 1)[0].strip().lower() for part in accept_header.split(",")}
    offered.discard("")
    if not offered or media_type in offered:
        return True
    return not offered <= mediatypes.KNOWN_MANIFEST_TYPES | {mediatypes.DOCKER_MANIFEST_V1_SIGNED}
