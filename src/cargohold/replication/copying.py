"""Copies between regions as jobs on the queue.

Every (blob, region) copy is one `replicate` job, with an ordering key of its own so two jobs for the same copy
never run at once and the second finds the work done. A copy is resumable (its staged upload is named by the
blob and region, so a rerun continues what a dead worker left), verified by digest before it is committed, and
retried with backoff while a store fails. `replicate-backfill` owes a region everything one registry holds,
`replicate-release` frees a region's copies once no registry living there needs them, `replicate-purge`
removes a deleted blob's copy from a region.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, distinct, select, update
from sqlalchemy.engine import Connection

from cargohold.blobs.store import BlobStore
from cargohold.db.engine import lock_digest, write_transaction
from cargohold.db.tables import blobs, registries, repositories, repository_blobs
from cargohold.jobs.queue import PENDING, Job, enqueue, enqueue_many
from cargohold.jobs.tables import jobs
from cargohold.jobs.worker import JobFailed
from cargohold.kernel.clock import utcnow
from cargohold.kernel.context import RegistryContext
from cargohold.management.tables import replications
from cargohold.oci.digest import Digest
from cargohold.replication import presence
from cargohold.replication.regions import RegionStores, registered_regions, regions_needing, registry_regions
from cargohold.replication.tables import blob_locations, regional_pushes, regions

COPY_JOB = "replicate"
BACKFILL_JOB = "replicate-backfill"
RELEASE_JOB = "replicate-release"
PURGE_JOB = "replicate-purge"
COPY_ATTEMPTS = 10_000
"""A copy into a region whose store is down is retried (with capped backoff) until the region returns."""
CHUNK = 4 * 1024 * 1024
RELEASE_GRACE = timedelta(seconds=float(os.environ.get("CARGOHOLD_REPLICATION_RELEASE_GRACE_SECONDS", "60")))
"""How long a deleted replication's copies stay, so pulls that started in that region can finish."""


def _copy_key(digest: str, region: str) -> str:
    return "rep:" + hashlib.sha256(f"{region}\0{digest}".encode()).hexdigest()[:40]


def _upload_id(digest: str, region: str) -> str:
    return hashlib.sha256(f"replicate\0{region}\0{digest}".encode()).hexdigest()[:32]


def enqueue_copies(conn: Connection, digests: set[str] | list[str], targets: list[str]) -> int:
    """Owe each target region a copy of each blob it does not hold yet (and is not already owed)."""
    items: list[tuple[str | None, dict[str, Any]]] = []
    for region in targets:
        if not digests:
            break
        present = set(conn.execute(select(blob_locations.c.digest).where(
            blob_locations.c.region == region, blob_locations.c.digest.in_(sorted(digests)))).scalars())
        for digest in sorted(set(digests) - present):
            key = _copy_key(digest, region)
            owed = conn.execute(select(jobs.c.id).where(jobs.c.status == PENDING, jobs.c.ordering_key == key)
                                .limit(1)).first()
            if owed is None:
                items.append((key, {"digest": digest, "region": region}))
    enqueue_many(conn, COPY_JOB, items, max_attempts=COPY_ATTEMPTS)
    return len(items)


def enqueue_backfill(conn: Connection, registry_id: int, region: str) -> None:
    enqueue(conn, BACKFILL_JOB, {"registry": registry_id, "region": region},
            ordering_key=f"backfill:{registry_id}:{region}"[:100])


def enqueue_backfills_for_region(conn: Connection, region: str) -> None:
    """A region that (newly) has a store is owed the content of every registry that lives there."""
    homes = conn.execute(select(registries.c.id).where(registries.c.location == region)).scalars().all()
    replicas = conn.execute(select(replications.c.registry_id).where(replications.c.location == region)
                            ).scalars().all()
    for registry_id in sorted({*homes, *replicas}):
        enqueue_backfill(conn, registry_id, region)


def enqueue_release(conn: Connection, registry_id: int, region: str) -> None:
    """After a replication is deleted: stop what was owed to the region and free its copies after a grace."""
    if region not in registered_regions(conn):
        return
    enqueue(conn, RELEASE_JOB, {"registry": registry_id, "region": region}, run_after=utcnow() + RELEASE_GRACE)


def blob_committed(conn: Connection, registry_id: int, digest: str, region: str | None) -> None:
    """An upload committed in `region` (inside its transaction): the blob is there; the registry's other
    regions are owed copies."""
    if region is None or region not in registered_regions(conn):
        return
    presence.record_present(conn, digest, region)
    from cargohold.replication.webhooks import settle

    settle(conn, digest, region)
    enqueue_copies(conn, [digest], [r for r in registry_regions(conn, registry_id) if r != region])


def blobs_deleted(conn: Connection, digests: list[str], except_region: str | None) -> None:
    """Blobs removed from the metadata (inside that transaction): every region's copy is to be removed too."""
    for start in range(0, len(digests), 500):
        batch = digests[start:start + 500]
        rows = conn.execute(select(blob_locations.c.digest, blob_locations.c.region)
                            .where(blob_locations.c.digest.in_(batch))).all()
        conn.execute(delete(blob_locations).where(blob_locations.c.digest.in_(batch)))
        enqueue_many(conn, PURGE_JOB, [(None, {"digest": row.digest, "region": row.region})
                                       for row in rows if row.region != except_region])


def _registry_digests(conn: Connection, registry_id: int) -> list[str]:
    in_registry = select(repositories.c.id).where(repositories.c.registry_id == registry_id)
    return list(conn.execute(select(distinct(repository_blobs.c.digest))
                             .where(repository_blobs.c.repository_id.in_(in_registry))).scalars())


def mark_failing(conn: Connection, region: str, error: str) -> None:
    conn.execute(update(regions).where(regions.c.name == region, regions.c.failing_since.is_(None))
                 .values(failing_since=utcnow()))
    conn.execute(update(regions).where(regions.c.name == region).values(last_error=error[:2000]))


def mark_healthy(conn: Connection, region: str) -> None:
    conn.execute(update(regions).where(regions.c.name == region, regions.c.last_error.is_not(None))
                 .values(last_error=None, failing_since=None))


class Replicator:
    """The handlers of the replication jobs."""

    def __init__(self, ctx: RegistryContext, stores: RegionStores) -> None:
        self.ctx = ctx
        self.stores = stores

    def handlers(self) -> dict[str, Any]:
        return {COPY_JOB: self.copy, BACKFILL_JOB: self.backfill, RELEASE_JOB: self.release, PURGE_JOB: self.purge}

    async def copy(self, job: Job) -> None:
        await self.ctx.run(self._copy, str(job.payload["digest"]), str(job.payload["region"]))

    async def backfill(self, job: Job) -> None:
        await self.ctx.run(self._backfill, int(job.payload["registry"]), str(job.payload["region"]))

    async def release(self, job: Job) -> None:
        await self.ctx.run(self._release, int(job.payload["registry"]), str(job.payload["region"]))

    async def purge(self, job: Job) -> None:
        await self.ctx.run(self._purge, str(job.payload["digest"]), str(job.payload["region"]))

    def _copy(self, digest: str, region: str) -> None:
        with self.ctx.engine.connect() as conn:
            if presence.is_present(conn, digest, region):
                return
            size = conn.execute(select(blobs.c.size).where(blobs.c.digest == digest)).scalar_one_or_none()
            if size is None or region not in regions_needing(conn, digest):
                return
            sources = [r for r in presence.present_regions(conn, digest) if r != region]
        if not sources:
            raise JobFailed(f"no region holds {digest} yet", retry_after=timedelta(seconds=1))
        try:
            target = self.stores.get(region)
            self._transfer(Digest.parse(digest), sources, target, region)
        except JobFailed:
            raise
        except Exception as exc:
            with write_transaction(self.ctx.engine) as conn:
                mark_failing(conn, region, f"{type(exc).__name__}: {exc}")
            raise JobFailed(f"copying {digest} into {region} failed: {type(exc).__name__}: {exc}") from exc
        with write_transaction(self.ctx.engine) as conn:
            lock_digest(conn, digest)
            if conn.execute(select(blobs.c.digest).where(blobs.c.digest == digest)).first() is None:
                return
            presence.record_present(conn, digest, region)
            mark_healthy(conn, region)
            from cargohold.replication.webhooks import settle

            settle(conn, digest, region)

    def _transfer(self, digest: Digest, sources: list[str], target: BlobStore, region: str) -> None:
        if target.stat(digest) is not None:
            return
        upload_id = _upload_id(str(digest), region)
        staged = target.upload_size(upload_id)
        if staged is None:
            target.start_upload(upload_id)
            staged = 0
        hasher = hashlib.new(digest.algorithm)
        if staged:
            remaining = staged
            for chunk in target.read_upload(upload_id, CHUNK):
                hasher.update(chunk[:remaining])
                remaining -= len(chunk)
                if remaining <= 0:
                    break
        source = self._source(digest, sources)
        writer = target.open_upload(upload_id, staged)
        try:
            with ThreadPoolExecutor(1, "cargohold-copy-hash") as hashing:
                for chunk in source.read(digest, CHUNK, start=staged):
                    hashed = hashing.submit(hasher.update, chunk)
                    writer.write([chunk])
                    hashed.result()
            writer.finish()
        finally:
            writer.close()
        if hasher.hexdigest() != digest.hex:
            target.discard_upload(upload_id)
            raise JobFailed(f"the copy of {digest} into {region} did not match its digest; copying again")
        target.commit(upload_id, digest)

    def _source(self, digest: Digest, sources: list[str]) -> BlobStore:
        """A source store that holds the blob: this node's own region first, then the others in order."""
        ordered = sorted(sources, key=lambda r: r != self.stores.own_region)
        errors = []
        for region in ordered:
            try:
                store = self.stores.get(region)
                if store.stat(digest) is not None:
                    return store
                errors.append(f"{region}: missing")
            except Exception as exc:  # noqa: BLE001 - a source region that is down: try the next
                errors.append(f"{region}: {type(exc).__name__}: {exc}")
        raise JobFailed(f"no source region could give {digest} ({'; '.join(errors)})")

    def _backfill(self, registry_id: int, region: str) -> None:
        with write_transaction(self.ctx.engine, signal=False) as conn:
            if region not in registry_regions(conn, registry_id):
                return
            digests = _registry_digests(conn, registry_id)
            for start in range(0, len(digests), 500):
                enqueue_copies(conn, digests[start:start + 500], [region])

    def _release(self, registry_id: int, region: str) -> None:
        with self.ctx.engine.connect() as conn:
            digests = _registry_digests(conn, registry_id)
        try:
            store = self.stores.get(region)
        except KeyError:
            return
        for digest in digests:
            with write_transaction(self.ctx.engine) as conn:
                lock_digest(conn, digest)
                if region in regions_needing(conn, digest) or not presence.is_present(conn, digest, region):
                    continue
                conn.execute(delete(blob_locations).where(blob_locations.c.digest == digest,
                                                          blob_locations.c.region == region))
                store.delete(Digest.parse(digest))
        with write_transaction(self.ctx.engine) as conn:
            conn.execute(delete(regional_pushes).where(regional_pushes.c.registry_id == registry_id,
                                                       regional_pushes.c.region == region))

    def _purge(self, digest: str, region: str) -> None:
        try:
            store = self.stores.get(region)
        except KeyError:
            return
        with write_transaction(self.ctx.engine) as conn:
            lock_digest(conn, digest)
            if presence.is_present(conn, digest, region):
                return
            store.delete(Digest.parse(digest))
