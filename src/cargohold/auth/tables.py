"""Tables of identities, credentials, permissions, signing keys, login throttling and the audit log."""

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
    String,
    Table,
    Text,
    UniqueConstraint,
)

from cargohold.db.tables import metadata

identities = Table(
    "identities",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(24), nullable=False),
    Column("name", String(128), nullable=False),
    Column("client_id", String(64), nullable=False, unique=True),
    Column("secret_hash", String(255), nullable=False),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    sqlite_autoincrement=True,
)
"""Users and service principals, tenant-wide as in Azure AD. `client_id` is the user name for basic auth.
Ids are never reused (AUTOINCREMENT): tokens name their principal by id, and a deleted identity's tokens
must not come alive for the next one."""

role_assignments = Table(
    "role_assignments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("identity_id", Integer, ForeignKey("identities.id", ondelete="CASCADE"), nullable=False),
    Column("registry_id", Integer, ForeignKey("registries.id", ondelete="CASCADE"), nullable=True),
    Column("repository", String(257), nullable=True),
    Column("role", String(32), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("identity_id", "registry_id", "repository", "role"),
)
"""A role at subscription scope (no registry), registry scope, or repository scope (a name or `prefix/*`)."""

scope_maps = Table(
    "scope_maps",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("registry_id", Integer, ForeignKey("registries.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(50), nullable=False),
    Column("description", Text, nullable=True),
    Column("actions", Text, nullable=False),
    Column("system", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("registry_id", "name"),
)
"""`actions` is a JSON list of ACR action strings, `repositories/<name or pattern>/<content|metadata>/<verb>`."""

registry_tokens = Table(
    "registry_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("registry_id", Integer, ForeignKey("registries.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(50), nullable=False),
    Column("scope_map_id", Integer, ForeignKey("scope_maps.id"), nullable=False),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("password1_hash", String(255), nullable=True),
    Column("password1_created_at", DateTime(timezone=True), nullable=True),
    Column("password1_expires_at", DateTime(timezone=True), nullable=True),
    Column("password2_hash", String(255), nullable=True),
    Column("password2_created_at", DateTime(timezone=True), nullable=True),
    Column("password2_expires_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("registry_id", "name"),
    sqlite_autoincrement=True,
)
"""ACR's repository-scoped tokens: a name, a scope map, two passwords that may each expire. Ids are never
reused, as for identities."""

admin_credentials = Table(
    "admin_credentials",
    metadata,
    Column("registry_id", Integer, ForeignKey("registries.id", ondelete="CASCADE"), primary_key=True),
    Column("slot", String(16), primary_key=True),
    Column("password_hash", String(255), nullable=False),
    Column("password_sealed", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
"""The admin user's two passwords. ACR shows them back (`credential show`), so besides the hash that is
checked, each is kept sealed with the server's master key; never in plain text."""

signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("registry_id", Integer, ForeignKey("registries.id", ondelete="CASCADE"), nullable=True),
    Column("algorithm", String(16), nullable=False),
    Column("private_key_sealed", LargeBinary, nullable=False),
    Column("public_key_pem", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("retired_at", DateTime(timezone=True), nullable=True),
    Index("ix_signing_keys_registry_id", "registry_id"),
)
"""Token signing keys: one set per registry, and one (registry NULL) for the identity provider."""

login_failures = Table(
    "login_failures",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(300), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_login_failures_key_at", "key", "at"),
)
"""Recent failed logins per (client address, user name), kept in the database so every node sees them."""

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("registry", String(50), nullable=True),
    Column("action", String(32), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("identity", String(200), nullable=True),
    Column("client_ip", String(64), nullable=True),
    Column("repository", String(256), nullable=True),
    Column("reference", String(200), nullable=True),
    Column("detail", Text, nullable=True),
    Column("count", Integer, nullable=False, default=1),
    Index("ix_audit_events_at", "at"),
    Index("ix_audit_events_identity", "identity"),
)

network_rules = Table(
    "network_rules",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("registry_id", Integer, ForeignKey("registries.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("cidr", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("registry_id", "kind", "cidr"),
)
"""Per-registry `allow` rules (client addresses let in when the default action is Deny) and `proxy` rules
(peers trusted to report the client's address in X-Forwarded-For)."""
