"""Tables of geo-replication: regions and their stores, where each blob is present, and pushes still owed to a
region's webhooks."""

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
    Text,
    Table,
)

from cargohold.db.tables import DIGEST, metadata

regions = Table(
    "regions",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("store_sealed", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("last_error", Text, nullable=True),
    Column("failing_since", DateTime(timezone=True), nullable=True),
)
"""Locations with a blob store of their own. `store_sealed` is a JSON document (the storage URL and the
environment secrets it needs, such as an Azure connection string) sealed with the master key, so every node can
open every region's store. `last_error` is set while copies into the region fail (its store is down)."""

blob_locations = Table(
    "blob_locations",
    metadata,
    Column("digest", DIGEST, nullable=False),
    Column("region", String(64), ForeignKey("regions.name", ondelete="CASCADE"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("digest", "region"),
    Index("ix_blob_locations_region", "region"),
)
"""Which region's store holds which blob: written when an upload commits in a region and when a copy into a
region is verified; removed when a region's copy is freed."""

regional_pushes = Table(
    "regional_pushes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("registry_id", Integer, ForeignKey("registries.id", ondelete="CASCADE"), nullable=False),
    Column("region", String(64), nullable=False),
    Column("event_id", BigInteger, nullable=False),
    Column("manifest_digest", DIGEST, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_regional_pushes_region_manifest_digest", "region", "manifest_digest"),
)
"""A push event owed to the webhooks located in `region`, once the manifest is complete there."""
