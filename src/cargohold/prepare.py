"""Bring a data directory's metadata database to the newest schema and bootstrap it (first start: the default
registry, keys, the Owner). Run by the server process itself before it listens when it serves alone (its app
imports already hold everything this needs, so start-up pays for them once), else by `serve` before it execs
the server."""

from __future__ import annotations

import os
import subprocess
import sys

from typing import TYPE_CHECKING

from cargohold.config import Settings

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from cargohold.security.master_key import Sealer

PREPARE_ENV = "CARGOHOLD_PREPARE"
"""Set by `serve` for a server that prepares the database itself: registry name, login server and the
address it serves on, one a line."""


def prepare(settings: Settings, registry_name: str, login_server: str, where: str) -> None:
    from cargohold.auth.bootstrap import bootstrap
    from cargohold.db.engine import make_engine
    from cargohold.db.migrate import upgrade
    from cargohold.security.master_key import load_sealer

    upgrade(settings.db_url)
    engine = make_engine(settings.db_url)
    try:
        sealer = load_sealer(settings.data_dir)
        started = bootstrap(engine, sealer, settings.data_dir, registry_name, login_server, settings.region)
        if settings.region is not None:
            _register_region(engine, sealer, settings)
    finally:
        engine.dispose()
    if started.credentials_file is not None:
        print(f"created an Owner service principal; its credentials are in {started.credentials_file}",
              file=sys.stderr)
    print(f"cargohold serving registry {started.registry.name} ({started.registry.login_server}) from {where}",
          file=sys.stderr, flush=True)


def _register_region(engine: Engine, sealer: Sealer, settings: Settings) -> None:
    """Record this node's region and its store, so every node can copy into and out of it."""
    from cargohold.blobs.factory import store_from_url
    from cargohold.replication.regions import register_serving_region, store_record

    assert settings.region is not None
    register_serving_region(engine, sealer, settings.region, store_from_url(settings.storage_url, settings.blob_root),
                            store_record(settings.storage_url or "", settings.blob_root))


def prepare_from_env() -> None:
    """What `serve` asked this server process to prepare (nothing when it prepared the database itself).

    A database that is not at the newest schema is migrated by a child process, so that Alembic (about 12 MB,
    needed only then) never stays loaded in the long-lived server."""
    request = os.environ.pop(PREPARE_ENV, "")
    if not request:
        return
    from cargohold.db.migrate import is_current

    settings = Settings.from_env()
    if not is_current(settings.db_url):
        migration = subprocess.run([sys.executable, "-m", "cargohold.prepare"], stdin=subprocess.DEVNULL,
                                   check=False)
        if migration.returncode != 0:
            sys.exit(f"error: migrating the metadata database failed (exit status {migration.returncode})")
    registry_name, login_server, where = (request.split("\n") + ["", "", ""])[:3]
    prepare(settings, registry_name, login_server, where)


if __name__ == "__main__":
    from cargohold.db.migrate import upgrade

    upgrade(Settings.from_env().db_url)
