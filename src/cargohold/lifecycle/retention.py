"""The retention policy: untagged manifests older than `policies.retentionPolicy.days` are deleted.

All untagged manifests count, however long ago they lost their tags (ACR counts only those untagged after the
policy was enabled, a known surprise). Never deleted: a locked manifest (`deleteEnabled` or `writeEnabled`
false, on it or on its repository), a child of an index that stays, a referrer whose subject stays. Each
deletion is an ordinary delete (one `delete` event) in its own transaction, which re-checks inside it that the
manifest is still untagged, old enough and unneeded, so a tag added meanwhile wins.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, select
from sqlalchemy.engine import Connection

from cargohold.db.tables import manifest_references, manifests, registries, repositories, tags
from cargohold.events.payload import RequestOrigin
from cargohold.kernel.clock import utcnow
from cargohold.kernel.context import RegistryContext
from cargohold.lifecycle.protection import Node, deletable, parents_first
from cargohold.management.resources import get_registry
from cargohold.oci.errors import RegistryError
from cargohold.registry.manifests import delete_manifest
from cargohold.registry.repositories import RepositoryRef

RETENTION_JOB = "retention"
log = logging.getLogger(__name__)


@dataclass
class RetentionReport:
    deleted: list[str] = field(default_factory=list)
    """`repository@digest` of each manifest deleted."""
    spared: int = 0
    """Planned deletions called off inside their transaction (tagged or needed meanwhile, or locked)."""


class _NoLongerEligible(Exception):
    pass


def enabled_policies(conn: Connection) -> list[tuple[int, str, int]]:
    """(registry id, login server, days) of every registry whose retention policy is enabled."""
    found = []
    for name in conn.execute(select(registries.c.name).order_by(registries.c.id)).scalars():
        registry = get_registry(conn, name)
        if registry is None:
            continue
        policy = registry.policies.get("retentionPolicy") or {}
        if policy.get("status") == "enabled":
            found.append((registry.id, registry.login_server, int(policy.get("days", 7))))
    return found


def apply_retention(ctx: RegistryContext) -> RetentionReport:
    """Apply every enabled retention policy once."""
    report = RetentionReport()
    with ctx.engine.connect() as conn:
        policies = enabled_policies(conn)
    for registry_id, login_server, days in policies:
        apply_policy(ctx, registry_id, login_server, utcnow() - timedelta(days=days), report)
    return report


def apply_policy(ctx: RegistryContext, registry_id: int, login_server: str, cutoff: datetime,
                 report: RetentionReport) -> None:
    with ctx.engine.connect() as conn:
        candidates = conn.execute(
            select(repositories.c.id, repositories.c.name).where(
                repositories.c.registry_id == registry_id, repositories.c.write_enabled.is_(True),
                repositories.c.delete_enabled.is_(True),
                exists().where(manifests.c.repository_id == repositories.c.id, manifests.c.updated_at < cutoff,
                               ~exists().where(tags.c.manifest_id == manifests.c.id)))
            .order_by(repositories.c.name)).all()
    for repository_id, name in candidates:
        with ctx.engine.connect() as conn:
            nodes, doomed = plan_repository(conn, repository_id, cutoff)
        ref = RepositoryRef(registry_id, name)
        for digest in parents_first(nodes, doomed):
            check = _recheck(repository_id, digest, cutoff)
            try:
                delete_manifest(ctx, ref, digest, RequestOrigin.internal(login_server, "DELETE"), check)
            except (_NoLongerEligible, RegistryError):
                report.spared += 1
                continue
            report.deleted.append(f"{name}@{digest}")


def plan_repository(conn: Connection, repository_id: int, cutoff: datetime) -> tuple[dict[str, Node], set[str]]:
    """Every manifest of the repository as a `Node`, and those retention deletes."""
    rows = conn.execute(select(
        manifests.c.id, manifests.c.digest, manifests.c.subject_digest, manifests.c.updated_at,
        manifests.c.write_enabled, manifests.c.delete_enabled,
        exists().where(tags.c.manifest_id == manifests.c.id).label("tagged"),
    ).where(manifests.c.repository_id == repository_id)).all()
    children: dict[int, set[str]] = {}
    for manifest_id, child in conn.execute(
            select(manifest_references.c.manifest_id, manifest_references.c.digest)
            .join(manifests, manifests.c.id == manifest_references.c.manifest_id)
            .where(manifests.c.repository_id == repository_id, manifest_references.c.kind == "manifest")):
        children.setdefault(manifest_id, set()).add(child)
    nodes = {row.digest: Node(row.digest, frozenset(children.get(row.id, ())), row.subject_digest) for row in rows}
    wanted = {row.digest for row in rows if not row.tagged and _older(row.updated_at, cutoff)
              and row.write_enabled and row.delete_enabled}
    return nodes, deletable(nodes, wanted)


def _older(moment: datetime, cutoff: datetime) -> bool:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=cutoff.tzinfo)
    return moment < cutoff


def _recheck(repository_id: int, digest: str, cutoff: datetime) -> Callable[[Connection, int], None]:
    """Inside the deleting transaction: still untagged, not updated since, no index lists it any more and its
    subject is gone (`parents_first` deleted those before)."""

    def check(conn: Connection, manifest_id: int) -> None:
        row = conn.execute(select(manifests.c.updated_at, manifests.c.subject_digest,
                                  exists().where(tags.c.manifest_id == manifest_id).label("tagged"))
                           .where(manifests.c.id == manifest_id)).one()
        if row.tagged or not _older(row.updated_at, cutoff):
            raise _NoLongerEligible(digest)
        parent = conn.execute(select(manifests.c.digest).join(
            manifest_references, and_(manifest_references.c.manifest_id == manifests.c.id,
                                      manifest_references.c.kind == "manifest"))
            .where(manifests.c.repository_id == repository_id, manifest_references.c.digest == digest)
            .limit(1)).first()
        if parent is not None:
            raise _NoLongerEligible(digest)
        if row.subject_digest and conn.execute(
                select(manifests.c.id).where(manifests.c.repository_id == repository_id,
                                             manifests.c.digest == row.subject_digest)).first() is not None:
            raise _NoLongerEligible(digest)

    return check
