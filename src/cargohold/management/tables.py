"""Tables of the management plane: webhooks, replications, and long-running operations."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from cargohold.db.tables import metadata

webhooks = Table(
    "webhooks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("registry_id", Integer, ForeignKey("registries.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(50), nullable=False),
    Column("location", String(64), nullable=False),
    Column("callback_sealed", LargeBinary, nullable=False),
    Column("actions", Text, nullable=False),
    Column("scope", String(300), nullable=False, default=""),
    Column("status", String(16), nullable=False, default="enabled"),
    Column("tags", Text, nullable=False, default="{}"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("registry_id", "name"),
    sqlite_autoincrement=True,
)
"""A registry's webhooks. Ids are never reused: delivery jobs name their webhook by id. The service URI and custom headers may hold secrets (ACR shows them only through
`getCallbackConfig`), so they are kept together as one JSON document sealed with the master key."""

replications = Table(
    "replications",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("registry_id", Integer, ForeignKey("registries.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(50), nullable=False),
    Column("location", String(64), nullable=False),
    Column("region_endpoint_enabled", Boolean, nullable=False, default=True),
    Column("zone_redundancy", String(16), nullable=False, default="Disabled"),
    Column("tags", Text, nullable=False, default="{}"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("registry_id", "name"),
    UniqueConstraint("registry_id", "location"),
)

operations = Table(
    "operations",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("resource_id", String(400), nullable=False),
    Column("location", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("error_code", String(64), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True), nullable=True),
)
"""ARM long-running operations (importImage): what the SDK's poller reads at `operationStatuses/{id}`."""
