"""Engine creation and the one place that knows SQL dialects differ.

SQLite gets WAL, a busy timeout, foreign keys, and transactions we begin ourselves: a write transaction
starts with `BEGIN IMMEDIATE`, so two writers queue on the lock instead of one failing when it upgrades a
read snapshot. PostgreSQL (through psycopg 3) takes its defaults, and every write transaction sends a
`NOTIFY` that other server processes listen for to drop what they cached (see `ChangeListener`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Table, create_engine, event, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import ColumnElement


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'metadata.db'}"


CHANNEL = "cargohold_metadata"


def sqlalchemy_url(url: str) -> str:
    """`postgresql://…` means psycopg 3 here (SQLAlchemy's default driver for it would be psycopg2)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def libpq_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def make_engine(url: str) -> Engine:
    url = sqlalchemy_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                               pool_size=16, max_overflow=16)
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_size=16, max_overflow=16, pool_pre_ping=True)


@contextmanager
def write_transaction(engine: Engine, *, signal: bool = True) -> Iterator[Connection]:
    """A write transaction. `signal=False` is for writes no cached answer depends on (audit records, the job
    queue's bookkeeping): they do not tell other processes to empty their caches."""
    with engine.execution_options(immediate=True).begin() as connection:
        if signal and connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"NOTIFY {CHANNEL}")
        yield connection
    if signal:
        local_writes.bump()


def lock_name(connection: Connection, name: str) -> None:
    """Serialize, until the transaction ends, every transaction that takes the lock of this name. SQLite's write
    transactions are serialized already; PostgreSQL takes a transaction-scoped advisory lock."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:name, 0))"), {"name": name})


def lock_digest(connection: Connection, digest: str) -> None:
    """Serialize the transactions that add or remove this blob."""
    lock_name(connection, f"blob:{digest}")


def insert_missing(connection: Connection, table: Table, rows: list[dict[str, Any]],
                   keys: list[str]) -> None:
    """Insert rows, leaving alone those whose `keys` exist already, without failing when a concurrent
    transaction inserts the same row first."""
    if not rows:
        return
    if connection.dialect.name == "postgresql":
        connection.execute(postgresql_insert(table).values(rows).on_conflict_do_nothing(index_elements=keys))
    else:
        connection.execute(sqlite_insert(table).values(rows).on_conflict_do_nothing(index_elements=keys))


class _Counter:
    """Counts this process's committed write transactions; read with the listener's count."""

    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def bump(self) -> None:
        with self._lock:
            self.value += 1


local_writes = _Counter()


class ChangeListener:
    """Counts commits of any process to a PostgreSQL database, from its NOTIFY messages, on a thread of its own.

    A lost connection counts as a change (anything may have happened meanwhile) and is reopened.
    """

    def __init__(self, url: str) -> None:
        self.url = libpq_url(url)
        self.count = 0
        self._thread = threading.Thread(target=self._listen, name="cargohold-listen", daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        import psycopg

        while True:
            try:
                with psycopg.connect(self.url, autocommit=True) as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    self.count += 1
                    for _ in connection.notifies():
                        self.count += 1
            except psycopg.Error:
                self.count += 1
                time.sleep(0.5)


def reads_inline(engine: Engine) -> bool:
    """Whether short indexed reads may run on the event loop: yes for an embedded SQLite file (microseconds,
    never blocked by writers under WAL), no for a database across a network."""
    return engine.dialect.name == "sqlite"


def change_counter(connection: Connection) -> int | None:
    """A number that changes whenever another connection commits to the database, or None if the database
    cannot tell cheaply. On SQLite it is `PRAGMA data_version`, read through the raw driver (about 2 µs)."""
    if connection.dialect.name != "sqlite":
        return None
    raw = connection.connection.driver_connection
    return int(raw.execute("PRAGMA data_version").fetchone()[0])


def binary_order(column: ColumnElement[Any], connection: Connection) -> ColumnElement[Any]:
    """Order strings by their bytes, as the OCI spec's lexical order for tags and repositories asks."""
    if connection.dialect.name == "postgresql":
        return column.collate("C")
    return column


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    options = connection.get_execution_options()
    if options.get("isolation_level") == "AUTOCOMMIT":
        return
    connection.exec_driver_sql("BEGIN IMMEDIATE" if options.get("immediate", False) else "BEGIN")
