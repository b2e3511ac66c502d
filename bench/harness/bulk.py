"""Bulk rows for listing benchmarks, written straight into cargohold's own tables (cargohold.db.tables) through
SQLAlchemy, instead of 100,000 HTTP pushes. Every tag points at one manifest that was pushed normally; every
extra repository gets a copy of that manifest's row (the catalog lists only repositories holding a manifest).

Writes go through cargohold.db.engine.write_transaction, so on PostgreSQL they send the same NOTIFY a server
write sends and running nodes drop their caches; on SQLite `PRAGMA data_version` moves by itself.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import and_, func, literal, select
from sqlalchemy.engine import Engine

from cargohold.db.engine import make_engine, write_transaction
from cargohold.db.tables import manifests, registries, repositories, tags

BATCH = 5_000


def tag_name(index: int) -> str:
    return f"t-{index:06d}"


def repository_name(prefix: str, index: int) -> str:
    return f"{prefix}/r-{index:06d}"


class BulkLoader:
    """Grows one repository's tag count and the registry's repository count to given totals."""

    def __init__(self, db_url: str, repository: str, catalog_prefix: str) -> None:
        self.engine: Engine = make_engine(db_url)
        self.repository = repository
        self.catalog_prefix = catalog_prefix
        with self.engine.connect() as conn:
            self.registry_id = conn.execute(select(registries.c.id)).scalar_one()
            row = conn.execute(
                select(repositories.c.id).where(
                    and_(repositories.c.registry_id == self.registry_id, repositories.c.name == repository)
                )
            ).scalar_one()
            self.repository_id = int(row)
            self.manifest_id = int(
                conn.execute(
                    select(manifests.c.id).where(manifests.c.repository_id == self.repository_id)
                ).scalar_one()
            )
        self.tag_count = self._count_tags()
        self.repo_count = self._count_catalog_repos()

    def close(self) -> None:
        self.engine.dispose()

    def _count_tags(self) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).select_from(tags).where(tags.c.repository_id == self.repository_id)
                ).scalar_one()
            )

    def _count_catalog_repos(self) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(repositories)
                    .where(repositories.c.name.like(self.catalog_prefix + "/r-%"))
                ).scalar_one()
            )

    def grow_tags(self, total: int) -> None:
        """Add tags t-<n> (zero-padded, so lexical order is numeric order) until the repository has `total`.
        The pushed tag(s) count; new names start after the existing count."""
        now = datetime.now(UTC)
        start = self.tag_count
        for offset in range(start, total, BATCH):
            rows = [
                {
                    "repository_id": self.repository_id,
                    "name": tag_name(i),
                    "manifest_id": self.manifest_id,
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(offset, min(offset + BATCH, total))
            ]
            with write_transaction(self.engine) as conn:
                conn.execute(tags.insert(), rows)
        self.tag_count = self._count_tags()

    def grow_repositories(self, total: int) -> None:
        """Add repositories <prefix>/r-<n>, each with a copy of the pushed manifest's row, up to `total`."""
        now = datetime.now(UTC)
        start = self.repo_count
        for offset in range(start, total, BATCH):
            names = [
                repository_name(self.catalog_prefix, i) for i in range(offset, min(offset + BATCH, total))
            ]
            with write_transaction(self.engine) as conn:
                conn.execute(
                    repositories.insert(),
                    [
                        {"registry_id": self.registry_id, "name": name, "created_at": now, "updated_at": now}
                        for name in names
                    ],
                )
                # One INSERT … SELECT: the pushed manifest's row, once for each repository of this batch.
                source = manifests.alias("source")
                copy = (
                    select(
                        repositories.c.id,
                        source.c.digest,
                        source.c.media_type,
                        source.c.artifact_type,
                        source.c.size,
                        source.c.content,
                        source.c.config_media_type,
                        literal(now, manifests.c.created_at.type),
                        literal(now, manifests.c.updated_at.type),
                    )
                    .select_from(repositories.join(source, source.c.id == self.manifest_id))
                    .where(repositories.c.registry_id == self.registry_id, repositories.c.name.in_(names))
                )
                conn.execute(
                    manifests.insert().from_select(
                        [
                            "repository_id",
                            "digest",
                            "media_type",
                            "artifact_type",
                            "size",
                            "content",
                            "config_media_type",
                            "created_at",
                            "updated_at",
                        ],
                        copy,
                    )
                )
        self.repo_count = self._count_catalog_repos()
