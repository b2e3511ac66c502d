"""Tables of the OCI data plane. Portable SQL only: the same definitions serve SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    true,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

DIGEST = String(160)
MEDIA_TYPE = String(255)


def changeable_attributes() -> list[Column[bool]]:
    """ACR's locks, on repositories, tags and manifests: all enabled unless someone turns one off."""
    return [Column(name, Boolean, nullable=False, default=True, server_default=true())
            for name in ("delete_enabled", "write_enabled", "read_enabled", "list_enabled")]


registries = Table(
    "registries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(50), nullable=False, unique=True),
    Column("login_server", String(255), nullable=False, unique=True),
    Column("anonymous_pull_enabled", Boolean, nullable=False, default=False),
    Column("admin_user_enabled", Boolean, nullable=False, default=False),
    Column("public_network_access", Boolean, nullable=False, default=True),
    Column("network_default_action", String(8), nullable=False, default="Allow"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("subscription", String(64), nullable=False, server_default="default"),
    Column("resource_group", String(90), nullable=False, server_default="default"),
    Column("location", String(64), nullable=False, server_default="local"),
    Column("sku", String(16), nullable=False, server_default="Standard"),
    Column("tags", Text, nullable=False, server_default="{}"),
    Column("settings", Text, nullable=False, server_default="{}"),
    sqlite_autoincrement=True,
)
"""A registry: a namespace of repositories with its own login server, keys, credentials and policies. Its id
names the admin user in tokens, so ids are never reused. As an ARM resource it sits in a subscription and
resource group (plain names) with a location and a SKU; `tags` is ARM's tag object and `settings` the JSON of
the properties cargohold keeps but does not enforce in this table's columns (policies, encryption,
zone redundancy, data endpoint, network bypass options)."""

repositories = Table(
    "repositories",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("registry_id", Integer, ForeignKey("registries.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(256).with_variant(String(256, collation="C"), "postgresql"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    *changeable_attributes(),
    UniqueConstraint("registry_id", "name"),
)

blobs = Table(
    "blobs",
    metadata,
    Column("digest", DIGEST, primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
"""Content present in the blob store, once per digest whatever the number of repositories using it."""

repository_blobs = Table(
    "repository_blobs",
    metadata,
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False),
    Column("digest", DIGEST, ForeignKey("blobs.digest"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("repository_id", "digest"),
    Index("ix_repository_blobs_digest", "digest"),
)
"""A blob is visible in a repository only through a row here: pushed or mounted into it."""

manifests = Table(
    "manifests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False),
    Column("digest", DIGEST, nullable=False),
    Column("media_type", MEDIA_TYPE, nullable=False),
    Column("artifact_type", MEDIA_TYPE, nullable=True),
    Column("subject_digest", DIGEST, nullable=True),
    Column("annotations", Text, nullable=True),
    Column("size", BigInteger, nullable=False),
    Column("content", LargeBinary, nullable=False),
    Column("config_media_type", MEDIA_TYPE, nullable=True),
    Column("architecture", String(64), nullable=True),
    Column("os", String(64), nullable=True),
    Column("quarantine_state", String(32), nullable=True),
    Column("quarantine_details", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    *changeable_attributes(),
    UniqueConstraint("repository_id", "digest"),
    Index("ix_manifests_repository_id_subject_digest", "repository_id", "subject_digest"),
)

manifest_references = Table(
    "manifest_references",
    metadata,
    Column("manifest_id", Integer, ForeignKey("manifests.id", ondelete="CASCADE"), nullable=False),
    Column("digest", DIGEST, nullable=False),
    Column("kind", String(16), nullable=False),
    PrimaryKeyConstraint("manifest_id", "digest", "kind"),
    Index("ix_manifest_references_digest", "digest"),
)
"""What a manifest needs: `blob` rows (config and layers) and `manifest` rows (an index's children)."""

tags = Table(
    "tags",
    metadata,
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(128).with_variant(String(128, collation="C"), "postgresql"), nullable=False),
    Column("manifest_id", Integer, ForeignKey("manifests.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    *changeable_attributes(),
    PrimaryKeyConstraint("repository_id", "name"),
    Index("ix_tags_manifest_id", "manifest_id"),
)

uploads = Table(
    "uploads",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("lease_token", String(200), nullable=True),
    Column("lease_expires_at", DateTime(timezone=True), nullable=True),
)
"""Open upload sessions. `size` counts the bytes durably written to the upload's staging file; the lease is
held by the one request writing to the upload (`registry/uploads.py`)."""
