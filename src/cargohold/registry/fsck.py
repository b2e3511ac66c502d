"""Offline consistency check of the metadata and the blob store (`cargohold fsck`).

Damage is what makes a pull fail or return wrong bytes: a blob whose bytes are missing or do not hash to
its digest, a manifest whose content does not match its digest, or one that needs a blob the store lacks.
Warnings are states the registry allows but a person may want to know about.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from sqlalchemy import select

from cargohold.db.tables import blobs, manifest_references, manifests, repositories, repository_blobs
from cargohold.oci.digest import Digest
from cargohold.oci.errors import RegistryError
from cargohold.oci.manifest import parse_manifest
from cargohold.kernel.context import RegistryContext

READ_CHUNK = 1024 * 1024


@dataclass
class FsckReport:
    blobs_checked: int = 0
    manifests_checked: int = 0
    damage: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def check_store(ctx: RegistryContext) -> FsckReport:
    report = FsckReport()
    known, unusable = _check_blobs(ctx, report)
    _check_manifests(ctx, report, unusable)
    for digest in ctx.store.digests():
        if str(digest) not in known:
            report.warnings.append(f"blob file {digest} has no metadata (unused; garbage collection may remove it)")
    return report


def _check_blobs(ctx: RegistryContext, report: FsckReport) -> tuple[set[str], set[str]]:
    """Verify every recorded blob; return the recorded digests and those whose bytes are missing or wrong."""
    known: set[str] = set()
    unusable: set[str] = set()
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(blobs.c.digest, blobs.c.size).order_by(blobs.c.digest)).all()
    for row in rows:
        known.add(row.digest)
        report.blobs_checked += 1
        digest = Digest.parse(row.digest)
        stored = ctx.store.stat(digest)
        if stored is None:
            report.damage.append(f"blob {digest}: bytes missing from the store")
            unusable.add(row.digest)
            continue
        if stored.size != row.size:
            report.damage.append(f"blob {digest}: {stored.size} bytes stored, {row.size} recorded")
            unusable.add(row.digest)
            continue
        hasher = hashlib.new(digest.algorithm)
        for chunk in ctx.store.read(digest, READ_CHUNK):
            hasher.update(chunk)
        if hasher.hexdigest() != digest.hex:
            report.damage.append(f"blob {digest}: content does not match its digest")
            unusable.add(row.digest)
    return known, unusable


def _check_manifests(ctx: RegistryContext, report: FsckReport, unusable: set[str]) -> None:
    with ctx.engine.connect() as conn:
        linked = {(r.repository_id, r.digest) for r in conn.execute(select(repository_blobs))}
        present_blobs = set(conn.execute(select(blobs.c.digest)).scalars())
        present_manifests = {(r.repository_id, r.digest)
                             for r in conn.execute(select(manifests.c.repository_id, manifests.c.digest))}
        references: dict[int, list[tuple[str, str]]] = {}
        for ref in conn.execute(select(manifest_references)):
            references.setdefault(ref.manifest_id, []).append((ref.digest, ref.kind))
        rows = conn.execute(
            select(manifests.c.id, manifests.c.repository_id, manifests.c.digest, manifests.c.media_type,
                   manifests.c.content, repositories.c.name)
            .select_from(manifests.join(repositories)).order_by(manifests.c.id)
        )
        for row in rows:
            report.manifests_checked += 1
            where = f"manifest {row.name}@{row.digest}"
            digest = Digest.parse(row.digest)
            if hashlib.new(digest.algorithm, row.content).hexdigest() != digest.hex:
                report.damage.append(f"{where}: content does not match its digest")
                continue
            try:
                parse_manifest(row.content, row.media_type)
            except RegistryError as exc:
                report.damage.append(f"{where}: no longer parses ({exc})")
            for ref_digest, kind in references.get(row.id, []):
                if kind == "blob" and (ref_digest not in present_blobs or ref_digest in unusable):
                    report.damage.append(f"{where}: needs blob {ref_digest}, which is missing or damaged")
                elif kind == "blob" and (row.repository_id, ref_digest) not in linked:
                    report.warnings.append(f"{where}: blob {ref_digest} was deleted from the repository")
                elif kind == "manifest" and (row.repository_id, ref_digest) not in present_manifests:
                    report.warnings.append(f"{where}: child manifest {ref_digest} was deleted")
