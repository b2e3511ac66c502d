"""Tables of ACR Tasks: runs and their live logs, uploaded build sources, saved tasks, taskRuns, agent pools."""

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

from cargohold.db.tables import DIGEST, metadata

task_runs = Table(
    "task_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("registry_id", Integer, ForeignKey("registries.id", ondelete="CASCADE"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("run_type", String(16), nullable=False),
    Column("task_name", String(50), nullable=True),
    Column("agent_pool", String(50), nullable=True),
    Column("platform", Text, nullable=False),
    Column("request_sealed", LargeBinary, nullable=False),
    Column("principal", String(80), nullable=False),
    Column("endpoint", String(300), nullable=False),
    Column("timeout", Integer, nullable=False),
    Column("is_archive_enabled", Boolean, nullable=False, default=False),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("output_images", Text, nullable=False, default="[]"),
    Column("base_images", Text, nullable=False, default="[]"),
    Column("error_message", Text, nullable=True),
    Column("log_digest", DIGEST, nullable=True),
    Column("log_size", BigInteger, nullable=False, default=0),
    Column("job_id", BigInteger, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("registry_id", "number"),
    Index("ix_task_runs_registry_id_status", "registry_id", "status"),
    sqlite_autoincrement=True,
)
"""One row per run. `number` makes ACR's run id (`ca<number>`), counted per registry; the request (which may
hold secret build arguments and values) is sealed with the master key. While a run goes its log grows in
`task_run_log_chunks`; when it ends the log moves to the blob store (`log_digest`)."""

task_run_counters = Table(
    "task_run_counters",
    metadata,
    Column("registry_id", Integer, ForeignKey("registries.id", ondelete="CASCADE"), primary_key=True),
    Column("last_number", Integer, nullable=False),
)

task_run_log_chunks = Table(
    "task_run_log_chunks",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("run_id", Integer, ForeignKey("task_runs.id", ondelete="CASCADE"), nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("content", LargeBinary, nullable=False),
    Index("ix_task_run_log_chunks_run_id_position", "run_id", "position"),
    sqlite_autoincrement=True,
)
"""The live log of a running run, in the order written: any node can serve it while the run goes."""

build_sources = Table(
    "build_sources",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("registry_id", Integer, ForeignKey("registries.id", ondelete="CASCADE"), nullable=False),
    Column("relative_path", String(200), nullable=False, unique=True),
    Column("digest", DIGEST, nullable=True),
    Column("size", BigInteger, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
"""Build contexts a client uploaded (`listBuildSourceUploadUrl`): the tar.gz bytes live in the blob store."""

tasks = Table(
    "tasks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("registry_id", Integer, ForeignKey("registries.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(50), nullable=False),
    Column("location", String(64), nullable=False),
    Column("tags", Text, nullable=False, default="{}"),
    Column("properties", Text, nullable=False),
    Column("credentials_sealed", LargeBinary, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("registry_id", "name"),
)
"""Saved tasks. `properties` is the task's ARM properties without credentials, which are sealed apart."""

task_run_resources = Table(
    "task_run_resources",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("registry_id", Integer, ForeignKey("registries.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(50), nullable=False),
    Column("location", String(64), nullable=False),
    Column("tags", Text, nullable=False, default="{}"),
    Column("request_sealed", LargeBinary, nullable=False),
    Column("force_update_tag", String(200), nullable=True),
    Column("run_id", Integer, ForeignKey("task_runs.id", ondelete="SET NULL"), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("registry_id", "name"),
)
"""ARM `taskRuns`: a named run request and the run it last started."""

agent_pools = Table(
    "agent_pools",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("registry_id", Integer, ForeignKey("registries.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(20), nullable=False),
    Column("location", String(64), nullable=False),
    Column("tags", Text, nullable=False, default="{}"),
    Column("count", Integer, nullable=False, default=1),
    Column("tier", String(8), nullable=False, default="S1"),
    Column("os", String(16), nullable=False, default="Linux"),
    Column("subnet", String(400), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("registry_id", "name"),
)
"""A named group of workers (`cargohold worker --agent-pool NAME`); runs that name it wait for those workers."""
