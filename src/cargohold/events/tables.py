"""Tables of the event log: events, and every attempt to deliver one to a webhook. What is still owed to a
webhook is a `webhook` job on the job queue (see `events.delivery`)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, ForeignKey, Index, Integer, String, Table, Text

from cargohold.db.tables import metadata

ID = BigInteger().with_variant(Integer, "sqlite")

events = Table(
    "events",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("uuid", String(36), nullable=False, unique=True),
    Column("registry_id", Integer, ForeignKey("registries.id", ondelete="CASCADE"), nullable=False),
    Column("action", String(16), nullable=False),
    Column("repository", String(256), nullable=True),
    Column("payload", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_events_registry_id_id", "registry_id", "id"),
    sqlite_autoincrement=True,
)
"""Every change webhooks can report, written in the transaction that makes the change. `payload` is the JSON
ACR posts (id, timestamp, action, target, request)."""

delivery_attempts = Table(
    "delivery_attempts",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("event_id", ID, ForeignKey("events.id", ondelete="CASCADE"), nullable=False),
    Column("job_id", ID, nullable=False),
    Column("webhook_id", Integer, ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("request_uri", Text, nullable=False),
    Column("request_headers", Text, nullable=False),
    Column("request_body", Text, nullable=False),
    Column("response_status", Integer, nullable=True),
    Column("response_reason", String(200), nullable=True),
    Column("response_headers", Text, nullable=True),
    Column("response_body", Text, nullable=True),
    Column("error", Text, nullable=True),
    Column("duration_ms", Integer, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_delivery_attempts_webhook_id_id", "webhook_id", "id"),
    sqlite_autoincrement=True,
)
"""What was sent and what came back, for `listEvents`. Header values that may be secrets (custom headers
such as Authorization) are kept as they were sent: the history is readable only by the registry's
Contributors and Owners, who can read the webhook's configuration anyway."""
