"""Failed-login throttling, kept in the database so all nodes agree.

Two counts: per client address and user name (a guesser trying passwords for one name), and per client
address alone (a flood of logins with ever new names, where every name is fresh and each attempt would cost
a password check). Either over its limit refuses the login before any password is checked.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, func, insert, or_, select
from sqlalchemy.engine import Connection

from cargohold.auth.tables import login_failures
from cargohold.kernel.clock import utcnow

WINDOW = timedelta(minutes=5)
MAX_FAILURES = 10
"""Per client address and user name, within WINDOW."""
MAX_SOURCE_FAILURES = 60
"""Per client address, whatever the names, within WINDOW: room for a few people behind one NAT mistyping."""


def throttle_key(client_ip: str, username: str) -> str:
    return f"{client_ip}|{username[:200]}"


def source_key(client_ip: str) -> str:
    """Never equal to a `throttle_key`, which always holds a `|`."""
    return f"source {client_ip}"


def is_throttled(conn: Connection, client_ip: str, username: str) -> bool:
    pair, source = throttle_key(client_ip, username), source_key(client_ip)
    counts = dict(conn.execute(
        select(login_failures.c.key, func.count()).where(
            or_(login_failures.c.key == pair, login_failures.c.key == source), login_failures.c.at > utcnow() - WINDOW)
        .group_by(login_failures.c.key)).tuples().all())
    return counts.get(pair, 0) >= MAX_FAILURES or counts.get(source, 0) >= MAX_SOURCE_FAILURES


def record_failure(conn: Connection, client_ip: str, username: str) -> None:
    now = utcnow()
    conn.execute(delete(login_failures).where(login_failures.c.at < now - WINDOW))
    conn.execute(insert(login_failures), [{"key": throttle_key(client_ip, username), "at": now},
                                          {"key": source_key(client_ip), "at": now}])
