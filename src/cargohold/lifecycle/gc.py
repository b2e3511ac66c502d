"""Online garbage collection: reclaim what nothing refers to while the registry serves pushes and pulls.

A run goes through phases, each in batches; every batch is one write transaction that also records the run's
progress (phase, cursor, counters), so a run killed at any moment resumes after its last batch and never
counts anything twice.

1. `uploads`: upload sessions untouched for `upload_ttl` end, with their staged bytes.
2. `links`:   a blob pushed or mounted into a repository but named by none of its manifests, for longer than
              the grace period, is unlinked from it (this is what a deleted manifest leaves behind). Locked
              repositories are left alone.
3. `blobs`:   a blob linked to no repository and named by no manifest (live or in the soft-delete recycle
              bin) is deleted, row and bytes.
4. `mark`:    files in the store without a `blobs` row are marked (first seen, last seen).
5. `files`:   a marked file seen by this run and marked longer ago than the grace period is deleted.

Every removal re-checks, inside its transaction and under the digest's lock (`db.engine.lock_digest`), that
nothing refers to the blob. Uploads, mounts, imports and manifest pushes take the same lock (a manifest push
for every blob it names), so a push either sees the blob and links or references it before the collector
looks, or waits and finds it gone and fails (MANIFEST_BLOB_UNKNOWN, or an upload asked to start again); a
manifest never ends up naming a blob whose bytes are gone. Bytes are deleted inside the transaction that
deletes their row: a crash between the two leaves a row without bytes that nothing may refer to (no link, no
manifest), which the next run removes.

One run at a time: a run is held by one collector (`holder`) under a lease renewed by every batch; another
collector takes it over once the lease ran out, or at once if the holder was a process on this host that
has died.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

from sqlalchemy import and_, delete, exists, insert, or_, select, update
from sqlalchemy.engine import Connection

from cargohold.db.engine import insert_missing, lock_digest, write_transaction
from cargohold.db.tables import blobs, manifest_references, manifests, repositories, repository_blobs, uploads
from cargohold.kernel.clock import utcnow
from cargohold.kernel.context import RegistryContext
from cargohold.lifecycle.tables import deleted_manifest_references, gc_marks, gc_runs
from cargohold.oci.digest import Digest
from cargohold.tasks import storage as task_storage

PHASES = ("uploads", "links", "blobs", "mark", "files")
RUNNING, DONE = "running", "done"


@dataclass(frozen=True)
class GcSettings:
    grace: timedelta = timedelta(hours=1)
    """How long something must have been unreferenced before it goes: longer than any push takes from its
    first blob to its manifest."""
    upload_ttl: timedelta = timedelta(days=7)
    batch_size: int = 200
    pause: float = 0.0
    """Seconds to wait between batches, to go easy on a busy registry."""
    lease: timedelta = timedelta(seconds=60)

    @classmethod
    def from_env(cls) -> GcSettings:
        def number(name: str, default: float) -> float:
            return float(os.environ.get(f"CARGOHOLD_GC_{name}", default))
        return cls(grace=timedelta(seconds=number("GRACE_SECONDS", cls.grace.total_seconds())),
                   upload_ttl=timedelta(seconds=number("UPLOAD_TTL_SECONDS", cls.upload_ttl.total_seconds())),
                   batch_size=int(number("BATCH_SIZE", cls.batch_size)), pause=number("PAUSE_SECONDS", 0.0))


@dataclass(frozen=True)
class RunStatus:
    id: int
    status: str
    phase: str
    holder: str | None
    uploads_expired: int
    links_removed: int
    blobs_removed: int
    files_removed: int
    bytes_reclaimed: int
    batches: int
    started_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    error: str | None

    @classmethod
    def of(cls, row: Any) -> RunStatus:
        return cls(**{f.name: getattr(row, f.name) for f in fields(cls)})


class CollectorBusy(Exception):
    """Another live collector holds the unfinished run."""

    def __init__(self, run: RunStatus) -> None:
        super().__init__(f"garbage collection run {run.id} is held by {run.holder} (phase {run.phase})")
        self.run = run


class LostLease(Exception):
    """Another collector took the run over (this one stalled past its lease)."""


def holder_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def latest_runs(conn: Connection, limit: int = 10) -> list[RunStatus]:
    return [RunStatus.of(row) for row in conn.execute(select(gc_runs).order_by(gc_runs.c.id.desc()).limit(limit))]


Progress = Callable[[RunStatus, bool], None]
"""Told after every batch; the flag says whether the run was resumed rather than started."""


class Collector:
    def __init__(self, ctx: RegistryContext, settings: GcSettings, holder: str | None = None,
                 progress: Progress | None = None, stop: Callable[[], bool] | None = None) -> None:
        self.ctx = ctx
        self.settings = settings
        self.holder = holder or holder_name()
        self.progress = progress
        self.stop = stop or (lambda: False)
        self._listing: tuple[str | None, Iterator[Digest]] | None = None

    def run(self) -> RunStatus:
        """Start a run, or resume the unfinished one, and take it to the end (or until `stop` says so)."""
        run_id, resumed = self._claim()
        while True:
            status = self._batch(run_id)
            if self.progress is not None:
                self.progress(status, resumed)
            if status.status != RUNNING or self.stop():
                return status
            if self.settings.pause:
                time.sleep(self.settings.pause)

    # holding the run ---------------------------------------------------------------------------------------

    def _claim(self) -> tuple[int, bool]:
        now = utcnow()
        with write_transaction(self.ctx.engine, signal=False) as conn:
            row = conn.execute(select(gc_runs).where(gc_runs.c.status == RUNNING)
                               .order_by(gc_runs.c.id.desc()).limit(1)).first()
            if row is None:
                run_id = conn.execute(insert(gc_runs).values(
                    status=RUNNING, phase=PHASES[0], cursor=None, holder=self.holder,
                    leased_until=now + self.settings.lease, grace_seconds=int(self.settings.grace.total_seconds()),
                    upload_ttl_seconds=int(self.settings.upload_ttl.total_seconds()), uploads_expired=0,
                    links_removed=0, blobs_removed=0, files_removed=0, bytes_reclaimed=0, batches=0,
                    started_at=now, updated_at=now).returning(gc_runs.c.id)).scalar_one()
                return int(run_id), False
            if row.holder != self.holder and _aware(row.leased_until) > now and _alive(row.holder):
                raise CollectorBusy(RunStatus.of(row))
            conn.execute(update(gc_runs).where(gc_runs.c.id == row.id)
                         .values(holder=self.holder, leased_until=now + self.settings.lease, updated_at=now))
            return int(row.id), True

    def _batch(self, run_id: int) -> RunStatus:
        with write_transaction(self.ctx.engine, signal=False) as conn:
            row = conn.execute(select(gc_runs).where(gc_runs.c.id == run_id)).one()
            if row.holder != self.holder or row.status != RUNNING:
                raise LostLease(f"run {run_id} is now held by {row.holder}")
            step = getattr(self, f"_{row.phase}")
            cursor = json.loads(row.cursor) if row.cursor else None
            counts, next_cursor = step(conn, row, cursor)
            values: dict[str, Any] = {name: getattr(row, name) + amount for name, amount in counts.items()}
            values.update(batches=row.batches + 1, updated_at=utcnow(),
                          leased_until=utcnow() + self.settings.lease,
                          cursor=json.dumps(next_cursor) if next_cursor is not None else None)
            if next_cursor is None:
                following = PHASES.index(row.phase) + 1
                if following < len(PHASES):
                    values["phase"] = PHASES[following]
                else:
                    values.update(status=DONE, phase=DONE, finished_at=utcnow(), holder=None, leased_until=None)
            changed = conn.execute(update(gc_runs).where(gc_runs.c.id == run_id, gc_runs.c.holder == self.holder)
                                   .values(**values)).rowcount
            if not changed:
                raise LostLease(f"run {run_id} was taken over")
            return RunStatus.of(conn.execute(select(gc_runs).where(gc_runs.c.id == run_id)).one())

    def _cutoff(self, run: Any) -> datetime:
        return utcnow() - timedelta(seconds=run.grace_seconds)

    # the phases: each takes one batch and returns its counts and where the next batch starts (None: done) -----

    def _uploads(self, conn: Connection, run: Any, cursor: Any) -> tuple[dict[str, int], Any]:
        stale = uploads.c.updated_at < utcnow() - timedelta(seconds=run.upload_ttl_seconds)
        found = conn.execute(select(uploads.c.id).where(stale).order_by(uploads.c.id)
                             .limit(self.settings.batch_size)).scalars().all()
        if not found:
            return {}, None
        conn.execute(delete(uploads).where(uploads.c.id.in_(found), stale))
        for upload_id in found:
            self.ctx.store.discard_upload(upload_id)
        return {"uploads_expired": len(found)}, {"more": True}

    def _links(self, conn: Connection, run: Any, cursor: Any) -> tuple[dict[str, int], Any]:
        cutoff = self._cutoff(run)
        query = (select(repository_blobs.c.repository_id, repository_blobs.c.digest)
                 .join(repositories, repositories.c.id == repository_blobs.c.repository_id)
                 .where(_unreferenced_link(cutoff), repositories.c.write_enabled.is_(True),
                        repositories.c.delete_enabled.is_(True))
                 .order_by(repository_blobs.c.repository_id, repository_blobs.c.digest)
                 .limit(self.settings.batch_size))
        if cursor is not None:
            query = query.where(or_(repository_blobs.c.repository_id > cursor[0],
                                    and_(repository_blobs.c.repository_id == cursor[0],
                                         repository_blobs.c.digest > cursor[1])))
        found = conn.execute(query).all()
        if not found:
            return {}, None
        for digest in sorted({row.digest for row in found}):
            lock_digest(conn, digest)
        removed = 0
        for repository_id, digest in found:
            removed += conn.execute(delete(repository_blobs).where(
                repository_blobs.c.repository_id == repository_id, repository_blobs.c.digest == digest,
                _unreferenced_link(cutoff))).rowcount
        last = found[-1]
        return {"links_removed": removed}, [last.repository_id, last.digest]

    def _blobs(self, conn: Connection, run: Any, cursor: Any) -> tuple[dict[str, int], Any]:
        query = (select(blobs.c.digest).where(_unused_blob()).order_by(blobs.c.digest)
                 .limit(self.settings.batch_size))
        if cursor is not None:
            query = query.where(blobs.c.digest > cursor)
        found = conn.execute(query).scalars().all()
        if not found:
            return {}, None
        removed = reclaimed = 0
        for digest in sorted(found):
            lock_digest(conn, digest)
            size = conn.execute(select(blobs.c.size).where(blobs.c.digest == digest, _unused_blob())).scalar()
            if size is None:
                continue
            conn.execute(delete(blobs).where(blobs.c.digest == digest))
            self._remove_bytes(digest)
            removed += 1
            reclaimed += int(size)
        return {"blobs_removed": removed, "bytes_reclaimed": reclaimed}, found[-1]

    def _mark(self, conn: Connection, run: Any, cursor: Any) -> tuple[dict[str, int], Any]:
        if self._listing is None or self._listing[0] != cursor:
            self._listing = (cursor, self._digests_after(cursor))
        listed = [str(d) for d in islice(self._listing[1], self.settings.batch_size)]
        if not listed:
            self._listing = None
            return {}, None
        self._listing = (listed[-1], self._listing[1])
        recorded = set(conn.execute(select(blobs.c.digest).where(blobs.c.digest.in_(listed))).scalars())
        recorded |= task_storage.kept_among(conn, [d for d in listed if d not in recorded])
        unrecorded = [d for d in listed if d not in recorded]
        now = utcnow()
        if recorded:
            conn.execute(delete(gc_marks).where(gc_marks.c.digest.in_(recorded)))
        if unrecorded:
            conn.execute(update(gc_marks).where(gc_marks.c.digest.in_(unrecorded)).values(seen_at=now))
            insert_missing(conn, gc_marks, [{"digest": d, "marked_at": now, "seen_at": now} for d in unrecorded],
                           ["digest"])
        return {}, listed[-1]

    def _digests_after(self, cursor: str | None) -> Iterator[Digest]:
        """The store's digests after `cursor`. Every backend lists in order of algorithm, then hex."""
        for digest in self.ctx.store.digests():
            if cursor is None or str(digest) > cursor:
                yield digest

    def _files(self, conn: Connection, run: Any, cursor: Any) -> tuple[dict[str, int], Any]:
        query = select(gc_marks).order_by(gc_marks.c.digest).limit(self.settings.batch_size)
        if cursor is not None:
            query = query.where(gc_marks.c.digest > cursor)
        found = conn.execute(query).all()
        if not found:
            return {}, None
        cutoff = self._cutoff(run)
        removed = reclaimed = 0
        for mark in sorted(found, key=lambda m: m.digest):
            lock_digest(conn, mark.digest)
            in_use = (conn.execute(select(blobs.c.digest).where(blobs.c.digest == mark.digest)).first() is not None
                      or bool(task_storage.kept_among(conn, [mark.digest])))
            unseen = _aware(mark.seen_at) < _aware(run.started_at)
            if in_use or unseen:
                conn.execute(delete(gc_marks).where(gc_marks.c.digest == mark.digest))
                continue
            if _aware(mark.marked_at) >= cutoff:
                continue
            digest = Digest.parse(mark.digest)
            stored = self.ctx.store.stat(digest)
            conn.execute(delete(gc_marks).where(gc_marks.c.digest == mark.digest))
            if stored is not None:
                self._remove_bytes(mark.digest)
                removed += 1
                reclaimed += stored.size
        return {"files_removed": removed, "bytes_reclaimed": reclaimed}, found[-1].digest

    def _remove_bytes(self, digest: str) -> None:
        """Delete a blob's bytes from the registry's store (the caller holds the digest's lock). Geo-replication
        hooks here to remove the copies in other regions."""
        self.ctx.store.delete(Digest.parse(digest))


def _unreferenced_link(cutoff: datetime) -> Any:
    """A repository's blob link older than `cutoff` that no manifest of that repository names."""
    named = (select(manifest_references.c.manifest_id)
             .join(manifests, manifests.c.id == manifest_references.c.manifest_id)
             .where(manifest_references.c.digest == repository_blobs.c.digest,
                    manifests.c.repository_id == repository_blobs.c.repository_id))
    return and_(repository_blobs.c.created_at < cutoff, ~exists(named))


def _unused_blob() -> Any:
    return and_(~exists().where(repository_blobs.c.digest == blobs.c.digest),
                ~exists().where(manifest_references.c.digest == blobs.c.digest),
                ~exists().where(deleted_manifest_references.c.digest == blobs.c.digest))


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _alive(holder: str | None) -> bool:
    """Whether the holder may still be working: a process of this host that is gone is not."""
    if not holder:
        return False
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
