"""Engine creation and the one place that knows SQL dialects differ.

SQLite gets WAL, a busy timeout, foreign keys, and transactions we begin ourselves: a write transaction
starts with `BEGIN IMMEDIATE`, so two writers queue on the lock instead of one failing when it upgrades a
read snapshot. PostgreSQL takes its defaults.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import ColumnElement


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'metadata.db'}"


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                               pool_size=16, max_overflow=16)
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_size=16, max_overflow=16, pool_pre_ping=True)


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    with engine.execution_options(immediate=True).begin() as connection:
        yield connection


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
