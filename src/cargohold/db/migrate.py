"""Run Alembic migrations programmatically, so `serve` and the tests bring any database to the newest schema.

A database already at the newest schema (every start but the first after an upgrade) is recognised with one
query, without loading Alembic: its head revisions are read from the migration files' `revision` and
`down_revision` lines. That saves `serve` about a quarter of its start-up.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
_REVISION = re.compile(r"^revision\s*=\s*['\"]([^'\"]+)['\"]", re.MULTILINE)
_DOWN_REVISION = re.compile(r"^down_revision\s*=\s*(.+)$", re.MULTILINE)
_QUOTED = re.compile(r"['\"]([^'\"]+)['\"]")


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str) -> None:
    if is_current(url):
        return
    from alembic import command

    command.upgrade(alembic_config(url), "head")


def head_revisions() -> set[str]:
    """Revisions no other migration names as its `down_revision`; empty if a file cannot be read so."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        source = path.read_text()
        revision, down = _REVISION.search(source), _DOWN_REVISION.search(source)
        if revision is None or down is None:
            return set()
        revisions.add(revision.group(1))
        parents.update(_QUOTED.findall(down.group(1)))
    return revisions - parents


def is_current(url: str) -> bool:
    """Whether the database's `alembic_version` holds exactly the head revisions (False when unsure)."""
    from cargohold.db.engine import make_engine

    heads = head_revisions()
    if not heads:
        return False
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            current = set(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())
    except DBAPIError:
        return False
    finally:
        engine.dispose()
    return current == heads
