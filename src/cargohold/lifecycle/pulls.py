"""Last-pull times of manifests, recorded without a write per pull.

A pull adds `(registry, repository, digest)` to a set in memory (a hash insert: manifest GET by tag is the
hottest path there is). At most `flush_interval` seconds later the set is written in one transaction: every
manifest in it gets the flush time as its last pull. A crash loses at most one interval of pull times, which
only makes a manifest look a little less recently pulled. `flush` is also called on shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import defaultdict

from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from cargohold.db.engine import insert_missing, write_transaction
from cargohold.db.tables import manifests, repositories
from cargohold.kernel.clock import utcnow
from cargohold.lifecycle.tables import manifest_pulls

FLUSH_INTERVAL = 10.0
BATCH = 500
log = logging.getLogger("cargohold.pulls")

PullKey = tuple[int, str, str]


class PullRecorder:
    def __init__(self, engine: Engine, flush_interval: float | None = None) -> None:
        self.engine = engine
        self.flush_interval = flush_interval if flush_interval is not None else float(
            os.environ.get("CARGOHOLD_PULL_FLUSH_SECONDS", FLUSH_INTERVAL))
        self._pulled: set[PullKey] = set()
        self._flusher: asyncio.Task[None] | None = None

    def record(self, registry_id: int, repository: str, digest: str) -> None:
        self._pulled.add((registry_id, repository, digest))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        await asyncio.sleep(self.flush_interval)
        await asyncio.get_running_loop().run_in_executor(None, self.flush)

    def flush(self) -> None:
        pulled, self._pulled = self._pulled, set()
        if not pulled:
            return
        try:
            write_pulls(self.engine, pulled)
        except Exception:
            log.exception("could not record the last pulls of %d manifests", len(pulled))


def write_pulls(engine: Engine, pulled: set[PullKey]) -> None:
    """Stamp the manifests named by `pulled` (those still present) with the current time, in one transaction.
    No cached answer depends on these rows, so other processes are not told to empty their caches."""
    by_repository: dict[tuple[int, str], list[str]] = defaultdict(list)
    for registry_id, repository, digest in pulled:
        by_repository[(registry_id, repository)].append(digest)
    now = utcnow()
    with write_transaction(engine, signal=False) as conn:
        ids: list[int] = []
        for (registry_id, repository), digests in by_repository.items():
            for start in range(0, len(digests), BATCH):
                ids += conn.execute(
                    select(manifests.c.id).join(repositories)
                    .where(repositories.c.registry_id == registry_id, repositories.c.name == repository,
                           manifests.c.digest.in_(digests[start:start + BATCH]))).scalars()
        for start in range(0, len(ids), BATCH):
            batch = ids[start:start + BATCH]
            conn.execute(update(manifest_pulls).where(manifest_pulls.c.manifest_id.in_(batch))
                         .values(last_pulled_at=now))
            insert_missing(conn, manifest_pulls, [{"manifest_id": i, "last_pulled_at": now} for i in batch],
                           ["manifest_id"])
