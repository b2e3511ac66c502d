"""`/readyz`: can this process serve? The metadata database answers a query on the schema, and the blob store
can be reached (on the filesystem: its directories are there and take a write). Each check is bounded in time
so a hung backend makes the probe fail, not hang."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from cargohold.blobs.filesystem import FilesystemBlobStore
from cargohold.db.tables import registries
from cargohold.kernel.context import RegistryContext
from cargohold.oci.digest import Digest

CHECK_SECONDS = 3.0
_PROBE = Digest.parse("sha256:" + "0" * 64)


@dataclass(frozen=True)
class Readiness:
    database: str | None
    """None when fine, else what is wrong."""
    storage: str | None

    @property
    def ready(self) -> bool:
        return self.database is None and self.storage is None

    def to_json(self) -> dict[str, object]:
        return {"status": "ready" if self.ready else "unavailable",
                "checks": {"database": self.database or "ok", "storage": self.storage or "ok"}}


async def readiness(ctx: RegistryContext) -> Readiness:
    database, storage = await asyncio.gather(_bounded(ctx, _check_database), _bounded(ctx, _check_storage))
    return Readiness(database, storage)


async def _bounded(ctx: RegistryContext, check: object) -> str | None:
    try:
        await asyncio.wait_for(ctx.run(check, ctx), CHECK_SECONDS)  # type: ignore[arg-type]
    except TimeoutError:
        return f"no answer within {CHECK_SECONDS:g} s"
    except Exception as exc:  # noqa: BLE001 - whatever fails, the answer is "not ready" and why
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}".rstrip(": ")
    return None


def _check_database(ctx: RegistryContext) -> None:
    url = ctx.engine.url
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        # Open SQLite connections keep reading a file that was deleted or moved: look at the path itself.
        if not Path(url.database).is_file():
            raise FileNotFoundError(f"the database file {url.database} is missing")
    with ctx.engine.connect() as conn:
        conn.execute(select(registries.c.id).limit(1)).all()


def _check_storage(ctx: RegistryContext) -> None:
    store = ctx.store
    if isinstance(store, FilesystemBlobStore):
        for directory in (store.root / "blobs", store.root / "uploads"):
            if not directory.is_dir():
                raise FileNotFoundError(f"{directory} is not a directory")
        probe = store.root / "uploads" / f".readyz-{os.getpid()}"
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"ok")
        finally:
            os.close(fd)
            probe.unlink(missing_ok=True)
        return
    store.stat(_PROBE)
