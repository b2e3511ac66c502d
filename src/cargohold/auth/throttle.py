"""Failed-login throttling, per client address and user name, kept in the database so all nodes agree."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Connection

from cargohold.auth.tables import login_failures
from cargohold.kernel.clock import utcnow

WINDOW = timedelta(minutes=5)
MAX_FAILURES = 10


def throttle_key(client_ip: str, username: str) -> str:
    return f"{client_ip}|{username[:200]}"


def is_throttled(conn: Connection, key: str) -> bool:
    count = conn.execute(select(func.count()).select_from(login_failures).where(
        login_failures.c.key == key, login_failures.c.at > utcnow() - WINDOW)).scalar_one()
    return count >= MAX_FAILURES


def record_failure(conn: Connection, key: str) -> None:
    now = utcnow()
    conn.execute(delete(login_failures).where(login_failures.c.at < now - WINDOW))
    conn.execute(insert(login_failures).values(key=key, at=now))
