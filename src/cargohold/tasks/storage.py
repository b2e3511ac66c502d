"""What ACR Tasks keeps in the blob store outside any repository: uploaded build contexts and finished runs'
logs. They have no row in `blobs`, so `fsck` lists them as unused; garbage collection must keep these digests."""

from __future__ import annotations

from sqlalchemy import select, union
from sqlalchemy.engine import Connection

from cargohold.tasks.tables import build_sources, task_runs


def kept_among(conn: Connection, candidates: list[str]) -> set[str]:
    """Which of `candidates` a build source or a run's log still uses (garbage collection keeps those)."""
    if not candidates:
        return set()
    query = union(select(task_runs.c.log_digest.label("digest")).where(task_runs.c.log_digest.in_(candidates)),
                  select(build_sources.c.digest.label("digest")).where(build_sources.c.digest.in_(candidates)))
    return {str(digest) for digest in conn.execute(query).scalars()}
