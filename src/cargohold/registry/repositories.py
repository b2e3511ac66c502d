"""Finding and creating repository rows. A repository is named within its registry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from cargohold.db.engine import insert_missing
from cargohold.db.tables import repositories


@dataclass(frozen=True, slots=True)
class RepositoryRef:
    registry_id: int
    name: str


def is_repository(ref: RepositoryRef) -> ColumnElement[bool]:
    """The SQL condition selecting `ref`'s row of `repositories`."""
    return and_(repositories.c.registry_id == ref.registry_id, repositories.c.name == ref.name)


def find_repository_id(conn: Connection, ref: RepositoryRef) -> int | None:
    return conn.execute(select(repositories.c.id).where(is_repository(ref))).scalar_one_or_none()


def ensure_repository(conn: Connection, ref: RepositoryRef, now: datetime) -> int:
    """Return the repository's id, creating it inside the caller's write transaction if it is new."""
    existing = find_repository_id(conn, ref)
    if existing is not None:
        return existing
    insert_missing(conn, repositories, [{"registry_id": ref.registry_id, "name": ref.name, "created_at": now,
                                         "updated_at": now}], ["registry_id", "name"])
    created = find_repository_id(conn, ref)
    assert created is not None
    return created


def touch_repository(conn: Connection, repository_id: int, now: datetime) -> None:
    conn.execute(update(repositories).where(repositories.c.id == repository_id).values(updated_at=now))
