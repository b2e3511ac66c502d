"""Repository, tag and manifest properties in ACR's JSON shapes, and changes to their attributes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from cargohold.db.tables import manifests, repositories, tags, uploads
from cargohold.events.payload import QUARANTINE, RequestOrigin, Target
from cargohold.events.record import record_event
from cargohold.oci import jsonbody, mediatypes
from cargohold.oci.errors import RegistryError, manifest_unknown, name_unknown
from cargohold.registry import locks
from cargohold.kernel.clock import utcnow
from cargohold.lifecycle import recycle_bin
from cargohold.lifecycle.tables import manifest_pulls
from cargohold.registry.repositories import RepositoryRef, is_repository

ATTRIBUTES = {"deleteEnabled": "delete_enabled", "writeEnabled": "write_enabled", "readEnabled": "read_enabled",
              "listEnabled": "list_enabled"}
ORDERS = ("timeasc", "timedesc")


def tag_unknown(tag: str) -> RegistryError:
    return RegistryError("TAG_UNKNOWN", "the specified tag does not exist", 404, {"tag": tag[:128]})


def iso(moment: datetime) -> str:
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")


def attributes(row: Any, prefix: str = "") -> dict[str, Any]:
    return {key: bool(getattr(row, prefix + column)) for key, column in ATTRIBUTES.items()}


def parse_attributes(body: bytes) -> dict[str, bool]:
    """A PATCH body: some of deleteEnabled, writeEnabled, readEnabled, listEnabled, each a boolean."""
    try:
        document = jsonbody.loads(body or b"{}")
    except ValueError as exc:
        raise RegistryError("UNSUPPORTED", f"the body is not valid JSON: {str(exc)[:200]}", 400) from None
    if not isinstance(document, dict):
        raise RegistryError("UNSUPPORTED", "the body is a JSON object of changeable attributes", 400)
    changes: dict[str, bool] = {}
    for key, value in document.items():
        if key not in ATTRIBUTES:
            if key in ("teleportEnabled", "quarantineState", "quarantineDetails"):
                continue
            raise RegistryError("UNSUPPORTED", f"{key[:64]!r} is not a changeable attribute", 400)
        if value is None:
            continue
        if not isinstance(value, bool):
            raise RegistryError("UNSUPPORTED", f"{key} must be true or false", 400)
        changes[ATTRIBUTES[key]] = value
    return changes


def _check_change_allowed(current_write_enabled: bool, changes: dict[str, bool], what: str) -> None:
    """A write-locked item accepts one change only: unlocking it."""
    if not current_write_enabled and changes.get("write_enabled") is not True and changes:
        raise locks.disallowed(f"the {what} is locked for writing; set writeEnabled to true first")


# repositories -------------------------------------------------------------------------------------------------

def _repository(conn: Connection, ref: RepositoryRef) -> Any:
    row = conn.execute(select(repositories).where(is_repository(ref))).first()
    if row is None:
        raise name_unknown(ref.name)
    return row


def repository_properties(conn: Connection, ref: RepositoryRef, login_server: str) -> dict[str, Any]:
    row = _repository(conn, ref)
    manifest_count = conn.execute(select(func.count()).select_from(manifests)
                                  .where(manifests.c.repository_id == row.id)).scalar_one()
    tag_count = conn.execute(select(func.count()).select_from(tags).where(tags.c.repository_id == row.id)).scalar_one()
    return {"registry": login_server, "imageName": ref.name, "createdTime": iso(row.created_at),
            "lastUpdateTime": iso(row.updated_at), "manifestCount": manifest_count, "tagCount": tag_count,
            "changeableAttributes": {**attributes(row), "teleportEnabled": False}}


def update_repository(conn: Connection, ref: RepositoryRef, changes: dict[str, bool], login_server: str) -> dict[str, Any]:
    row = _repository(conn, ref)
    _check_change_allowed(row.write_enabled, changes, "repository")
    if changes:
        conn.execute(update(repositories).where(repositories.c.id == row.id).values(**changes, updated_at=utcnow()))
    return repository_properties(conn, ref, login_server)


def delete_repository(conn: Connection, ref: RepositoryRef) -> tuple[dict[str, list[str]], list[str]]:
    """Delete a repository with all its manifests and tags, unless it or anything in it is locked.

    Returns ACR's body and the ids of the repository's open uploads, whose staged bytes the caller discards."""
    row = _repository(conn, ref)
    locks.check_repository_deletable(conn, row.id)
    locked = conn.execute(select(manifests.c.digest).where(
        manifests.c.repository_id == row.id,
        or_(manifests.c.write_enabled.is_(False), manifests.c.delete_enabled.is_(False))).limit(1)).first()
    locked_tag = conn.execute(select(tags.c.name).where(
        tags.c.repository_id == row.id, or_(tags.c.write_enabled.is_(False), tags.c.delete_enabled.is_(False))
    ).limit(1)).first()
    if locked is not None or locked_tag is not None:
        raise locks.disallowed(f"{locked.digest if locked else locked_tag.name} is locked against deletion")
    digests = list(conn.execute(select(manifests.c.digest).where(manifests.c.repository_id == row.id)
                                .order_by(manifests.c.digest)).scalars())
    tag_names = list(conn.execute(select(tags.c.name).where(tags.c.repository_id == row.id)
                                  .order_by(tags.c.name)).scalars())
    upload_ids = list(conn.execute(select(uploads.c.id).where(uploads.c.repository_id == row.id)).scalars())
    recycle_bin.keep_repository(conn, ref.registry_id, ref.name, row.id)
    conn.execute(delete(repositories).where(repositories.c.id == row.id))
    return {"manifestsDeleted": digests, "tagsDeleted": tag_names}, upload_ids


# tags ---------------------------------------------------------------------------------------------------------

_TAG_COLUMNS = (tags.c.name, tags.c.created_at, tags.c.updated_at, tags.c.delete_enabled, tags.c.write_enabled,
                tags.c.read_enabled, tags.c.list_enabled, manifests.c.digest)


def _tag_json(row: Any) -> dict[str, Any]:
    return {"name": row.name, "digest": row.digest, "createdTime": iso(row.created_at),
            "lastUpdateTime": iso(row.updated_at), "signed": False, "changeableAttributes": attributes(row)}


def list_tags(conn: Connection, ref: RepositoryRef, login_server: str, orderby: str | None, n: int, last: str | None,
              digest: str | None) -> tuple[dict[str, Any], bool]:
    repository = _repository(conn, ref)
    query = (select(*_TAG_COLUMNS).join(manifests, manifests.c.id == tags.c.manifest_id)
             .where(tags.c.repository_id == repository.id, tags.c.list_enabled.is_(True)))
    if not repository.list_enabled:
        query = query.where(False)
    if digest:
        query = query.where(manifests.c.digest == digest)
    query = _page(conn, query, tags.c.name, tags.c.updated_at, orderby, last,
                  lambda name: select(tags.c.updated_at).where(tags.c.repository_id == repository.id,
                                                               tags.c.name == name))
    rows = conn.execute(query.limit(n + 1)).all()
    return ({"registry": login_server, "imageName": ref.name, "tags": [_tag_json(r) for r in rows[:n]]},
            len(rows) > n)


def _tag_row(conn: Connection, ref: RepositoryRef, tag: str) -> Any:
    repository = _repository(conn, ref)
    row = conn.execute(select(*_TAG_COLUMNS, tags.c.repository_id).join(manifests, manifests.c.id == tags.c.manifest_id)
                       .where(tags.c.repository_id == repository.id, tags.c.name == tag)).first()
    if row is None:
        raise tag_unknown(tag)
    return row


def tag_properties(conn: Connection, ref: RepositoryRef, login_server: str, tag: str) -> dict[str, Any]:
    return {"registry": login_server, "imageName": ref.name, "tag": _tag_json(_tag_row(conn, ref, tag))}


def update_tag(conn: Connection, ref: RepositoryRef, login_server: str, tag: str,
               changes: dict[str, bool]) -> dict[str, Any]:
    row = _tag_row(conn, ref, tag)
    _check_change_allowed(row.write_enabled, changes, "tag")
    if changes:
        conn.execute(update(tags).where(tags.c.repository_id == row.repository_id, tags.c.name == tag)
                     .values(**changes, updated_at=utcnow()))
    return tag_properties(conn, ref, login_server, tag)


# manifests ----------------------------------------------------------------------------------------------------

_MANIFEST_COLUMNS = (manifests.c.id, manifests.c.digest, manifests.c.size, manifests.c.media_type,
                     manifests.c.config_media_type, manifests.c.architecture, manifests.c.os, manifests.c.content,
                     manifests.c.created_at, manifests.c.updated_at, manifests.c.delete_enabled,
                     manifests.c.write_enabled, manifests.c.read_enabled, manifests.c.list_enabled,
                     manifests.c.quarantine_state, manifests.c.quarantine_details, manifests.c.repository_id,
                     manifests.c.subject_digest,
                     select(manifest_pulls.c.last_pulled_at).where(manifest_pulls.c.manifest_id == manifests.c.id)
                     .scalar_subquery().label("last_pulled_at"))


def _manifest_json(conn: Connection, row: Any, *, listing: bool = False) -> dict[str, Any]:
    """A manifest's properties. In a listing its tags are those that may be listed (`listEnabled`), as in ACR,
    where a tag hidden from listings stays readable by name."""
    query = select(tags.c.name).where(tags.c.manifest_id == row.id)
    if listing:
        query = query.where(tags.c.list_enabled.is_(True))
    tag_names = list(conn.execute(query.order_by(tags.c.name)).scalars())
    changeable = attributes(row)
    if row.quarantine_state:
        changeable["quarantineState"] = row.quarantine_state
        if row.quarantine_details:
            changeable["quarantineDetails"] = row.quarantine_details
    out: dict[str, Any] = {"digest": row.digest, "imageSize": row.size, "createdTime": iso(row.created_at),
                           "lastUpdateTime": iso(row.updated_at), "architecture": row.architecture, "os": row.os,
                           "mediaType": row.media_type, "configMediaType": row.config_media_type,
                           "tags": tag_names, "changeableAttributes": changeable}
    if row.media_type in mediatypes.INDEX_TYPES:
        out["references"] = _references(row.content)
    if row.subject_digest:
        out["subjectDigest"] = row.subject_digest
    if row.last_pulled_at is not None:
        out["lastPullTime"] = iso(row.last_pulled_at)
    return out


def _references(content: bytes) -> list[dict[str, Any]]:
    children = json.loads(content).get("manifests") or []
    return [{"digest": child.get("digest"), "architecture": (child.get("platform") or {}).get("architecture"),
             "os": (child.get("platform") or {}).get("os")} for child in children]


def list_manifests(conn: Connection, ref: RepositoryRef, login_server: str, orderby: str | None, n: int,
                   last: str | None) -> tuple[dict[str, Any], bool]:
    repository = _repository(conn, ref)
    query = select(*_MANIFEST_COLUMNS).where(manifests.c.repository_id == repository.id,
                                             manifests.c.list_enabled.is_(True))
    if not repository.list_enabled:
        query = query.where(False)
    query = _page(conn, query, manifests.c.digest, manifests.c.updated_at, orderby, last,
                  lambda digest: select(manifests.c.updated_at).where(manifests.c.repository_id == repository.id,
                                                                      manifests.c.digest == digest))
    rows = conn.execute(query.limit(n + 1)).all()
    return ({"registry": login_server, "imageName": ref.name,
             "manifests": [_manifest_json(conn, r, listing=True) for r in rows[:n]]}, len(rows) > n)


def _manifest_row(conn: Connection, ref: RepositoryRef, reference: str) -> Any:
    repository = _repository(conn, ref)
    if ":" in reference:
        condition: ColumnElement[bool] = manifests.c.digest == reference
    else:
        condition = manifests.c.id == select(tags.c.manifest_id).where(
            tags.c.repository_id == repository.id, tags.c.name == reference).scalar_subquery()
    row = conn.execute(select(*_MANIFEST_COLUMNS).where(manifests.c.repository_id == repository.id, condition)).first()
    if row is None:
        raise manifest_unknown(reference)
    return row


def manifest_properties(conn: Connection, ref: RepositoryRef, login_server: str, reference: str) -> dict[str, Any]:
    return {"registry": login_server, "imageName": ref.name,
            "manifest": _manifest_json(conn, _manifest_row(conn, ref, reference))}


def update_manifest(conn: Connection, ref: RepositoryRef, login_server: str, reference: str,
                    changes: dict[str, bool], quarantine: Quarantine | None = None,
                    origin: RequestOrigin | None = None) -> dict[str, Any]:
    """Change a manifest's attributes; a new quarantine state is recorded as a `quarantine` event."""
    row = _manifest_row(conn, ref, reference)
    _check_change_allowed(row.write_enabled, changes, "manifest")
    values: dict[str, Any] = dict(changes)
    if quarantine is not None and (quarantine.state, quarantine.details) != (row.quarantine_state,
                                                                             row.quarantine_details):
        values.update(quarantine_state=quarantine.state, quarantine_details=quarantine.details)
        record_event(conn, ref.registry_id, QUARANTINE, Target(ref.name, None, row.digest, row.media_type, row.size),
                     origin or RequestOrigin.internal(login_server, "PATCH"))
    if values:
        conn.execute(update(manifests).where(manifests.c.id == row.id).values(**values, updated_at=utcnow()))
    return manifest_properties(conn, ref, login_server, row.digest)


@dataclass(frozen=True)
class Quarantine:
    state: str
    details: str | None


def parse_quarantine(body: bytes) -> Quarantine | None:
    """`quarantineState` (and `quarantineDetails`) of a manifest PATCH, as a scanner sets them."""
    try:
        document = jsonbody.loads(body or b"{}")
    except ValueError as exc:
        raise RegistryError("UNSUPPORTED", f"the body is not valid JSON: {str(exc)[:200]}", 400) from None
    state = document.get("quarantineState") if isinstance(document, dict) else None
    if state is None:
        return None
    details = document.get("quarantineDetails")
    if not isinstance(state, str) or not 0 < len(state) <= 32 or not state.isprintable() or (
            details is not None and (not isinstance(details, str) or len(details) > 4096 or "\x00" in details)):
        raise RegistryError("UNSUPPORTED", "quarantineState is a short string (such as Quarantined or Passed) and "
                            "quarantineDetails a string", 400)
    return Quarantine(state, details)


def _page(conn: Connection, query: Any, name_column: Any, time_column: Any, orderby: str | None,
          last: str | None, time_of: Any) -> Any:
    """Order by name (default) or by last update time, continuing after `last` (the last item's name)."""
    if orderby not in (None, "", "none", *ORDERS):
        raise RegistryError("UNSUPPORTED", "orderby is timeasc, timedesc or none", 400, {"orderby": orderby[:20]})
    if orderby in (None, "", "none"):
        if last:
            query = query.where(name_column > last)
        return query.order_by(name_column)
    descending = orderby == "timedesc"
    if last:
        moment = conn.execute(time_of(last)).scalar_one_or_none()
        if moment is not None:
            after = (time_column < moment) if descending else (time_column > moment)
            tie = and_(time_column == moment, name_column > last)
            query = query.where(or_(after, tie))
    ordering = time_column.desc() if descending else time_column.asc()
    return query.order_by(ordering, name_column)
