"""Finding and creating repository rows."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from cargohold.db.tables import repositories


def find_repository_id(conn: Connection, name: str) -> int | None:
    return conn.execute(select(repositories.c.id).where(repositories.c.name == name)).scalar_one_or_none()


def ensure_repository(conn: Connection, name: str, now: datetime) -> int:
    """Return the repository's id, creating it inside the caller's write transaction if it is new."""
    existing = find_repository_id(conn, name)
    if existing is not None:
        return existing
    return conn.execute(
        insert(repositories).values(name=name, created_at=now, updated_at=now).returning(repositories.c.id)
    ).scalar_one()


def touch_repository(conn: Connection, repository_id: int, now: datetime) -> None:
    conn.execute(update(repositories).where(repositories.c.id == repository_id).values(updated_at=now))
