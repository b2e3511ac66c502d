"""Tables of the lifecycle feature: last pulls, garbage-collection runs and the marks of their sweep."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

from cargohold.db.tables import DIGEST, metadata

manifest_pulls = Table(
    "manifest_pulls",
    metadata,
    Column("manifest_id", Integer, ForeignKey("manifests.id", ondelete="CASCADE"), primary_key=True),
    Column("last_pulled_at", DateTime(timezone=True), nullable=False),
)
"""When a manifest was last pulled (GET), to within the flush interval of `pulls.PullRecorder`. Kept apart
from `manifests` so the frequent update never rewrites a row that carries the manifest's content."""

gc_runs = Table(
    "gc_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("status", String(16), nullable=False),
    Column("phase", String(16), nullable=False),
    Column("cursor", Text, nullable=True),
    Column("holder", String(200), nullable=True),
    Column("leased_until", DateTime(timezone=True), nullable=True),
    Column("grace_seconds", Integer, nullable=False),
    Column("upload_ttl_seconds", Integer, nullable=False),
    Column("uploads_expired", Integer, nullable=False, default=0),
    Column("links_removed", Integer, nullable=False, default=0),
    Column("blobs_removed", Integer, nullable=False, default=0),
    Column("files_removed", Integer, nullable=False, default=0),
    Column("bytes_reclaimed", BigInteger, nullable=False, default=0),
    Column("batches", Integer, nullable=False, default=0),
    Column("error", Text, nullable=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    sqlite_autoincrement=True,
)
"""One garbage collection: its phase and cursor (committed after each batch, so a run resumes where it
stopped), who holds it and until when, and what it reclaimed so far."""

gc_marks = Table(
    "gc_marks",
    metadata,
    Column("digest", DIGEST, primary_key=True),
    Column("marked_at", DateTime(timezone=True), nullable=False),
    Column("seen_at", DateTime(timezone=True), nullable=False),
)
"""Files in the blob store that no `blobs` row describes: when a collection first saw one so (`marked_at`) and
last did (`seen_at`). A file is removed only once it has stayed so for the grace period, and was seen so by the
run removing it (an upload moves its file into place before it records the blob)."""

deleted_manifests = Table(
    "deleted_manifests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("registry_id", Integer, ForeignKey("registries.id", ondelete="CASCADE"), nullable=False),
    Column("repository", String(256), nullable=False),
    Column("digest", DIGEST, nullable=False),
    Column("media_type", String(255), nullable=False),
    Column("artifact_type", String(255), nullable=True),
    Column("subject_digest", DIGEST, nullable=True),
    Column("annotations", Text, nullable=True),
    Column("size", BigInteger, nullable=False),
    Column("content", LargeBinary, nullable=False),
    Column("config_media_type", String(255), nullable=True),
    Column("architecture", String(64), nullable=True),
    Column("os", String(64), nullable=True),
    Column("tags", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("deleted_at", DateTime(timezone=True), nullable=False),
    Column("purge_after", DateTime(timezone=True), nullable=False),
    Index("ix_deleted_manifests_registry_id_repository", "registry_id", "repository"),
    Index("ix_deleted_manifests_purge_after", "purge_after"),
    sqlite_autoincrement=True,
)
"""The recycle bin of soft delete: a deleted manifest with the tags it had, until `purge_after`. Keyed by the
repository's name, as the repository itself may have been deleted."""

deleted_manifest_references = Table(
    "deleted_manifest_references",
    metadata,
    Column("deleted_id", Integer, ForeignKey("deleted_manifests.id", ondelete="CASCADE"), nullable=False),
    Column("digest", DIGEST, nullable=False),
    Column("kind", String(16), nullable=False),
    PrimaryKeyConstraint("deleted_id", "digest", "kind"),
    Index("ix_deleted_manifest_references_digest", "digest"),
)
"""What a manifest in the bin needs: garbage collection keeps these blobs until the entry is purged."""
