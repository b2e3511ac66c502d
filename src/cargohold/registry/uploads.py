"""Blob upload sessions: start, append chunks in order, report status, complete with a digest, cancel.

Bytes are hashed as they arrive, while they are written (`registry/pipeline.py`). The running sha256 state
lives in memory keyed by upload id and the size it covers; when that is missing or stale (a restart, another
node took a chunk) the staged bytes are re-read once. The metadata row's `size` is what was durably written
and acknowledged, so an upload interrupted by a crash resumes from the last acknowledged byte.

One request at a time writes to an upload: a PATCH or a completing PUT first takes the upload's lease in the
metadata row (a random token naming the holding process, and an expiry renewed while the request runs), on
every store and across nodes. A second request meanwhile is refused with 409 before its body is read. A lease
whose holder died is free at once when the holder ran on the same host (its process is gone: a crash and
restart), and otherwise when it expires after `LEASE_SECONDS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
import socket
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from threading import Lock

from sqlalchemy import delete, insert, select, update

from cargohold.blobs.store import UploadConflict, UploadOffsetMismatch, UploadWriter
from cargohold.db.engine import lock_digest, write_transaction
from cargohold.db.tables import repositories, uploads
from cargohold.oci.digest import Digest
from cargohold.oci.errors import (
    RegistryError,
    blob_upload_invalid,
    blob_upload_unknown,
    digest_invalid,
    range_invalid,
    size_invalid,
)
from cargohold.registry import locks
from cargohold.registry.blobs import link_blob
from cargohold.replication.copying import blob_committed
from cargohold.registry.pipeline import pump
from cargohold.kernel.context import RegistryContext, utcnow
from cargohold.registry.repositories import RepositoryRef, ensure_repository, find_repository_id, is_repository

READ_CHUNK = 1024 * 1024
RUNNING_ALGORITHM = "sha256"
LEASE_SECONDS = 30.0
"""How long an upload's lease lasts unless renewed; a request holding it renews it every third of this."""


@dataclass(frozen=True, slots=True)
class UploadState:
    id: str
    size: int


@dataclass(frozen=True, slots=True)
class ContentRange:
    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1


class _RunningHashes:
    """A bounded map from upload id to (bytes covered, hash state)."""

    def __init__(self, capacity: int = 4096) -> None:
        self._entries: OrderedDict[str, tuple[int, hashlib._Hash]] = OrderedDict()
        self._capacity = capacity
        self._lock = Lock()

    def take(self, upload_id: str, size: int) -> hashlib._Hash | None:
        with self._lock:
            entry = self._entries.pop(upload_id, None)
        if entry is None or entry[0] != size:
            return None
        return entry[1]

    def put(self, upload_id: str, size: int, state: hashlib._Hash) -> None:
        with self._lock:
            self._entries[upload_id] = (size, state)
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)

    def drop(self, upload_id: str) -> None:
        with self._lock:
            self._entries.pop(upload_id, None)


class Uploads:
    def __init__(self, ctx: RegistryContext) -> None:
        self.ctx = ctx
        self._hashes = _RunningHashes()

    async def start(self, ref: RepositoryRef) -> UploadState:
        return await self.ctx.run(self._start, ref)

    def _start(self, ref: RepositoryRef) -> UploadState:
        upload_id = uuid.uuid4().hex
        now = utcnow()
        with write_transaction(self.ctx.engine) as conn:
            repository_id = ensure_repository(conn, ref, now)
            locks.check_repository_writable(conn, repository_id)
            conn.execute(insert(uploads).values(id=upload_id, repository_id=repository_id, size=0,
                                                created_at=now, updated_at=now))
            self.ctx.store.start_upload(upload_id)
        return UploadState(upload_id, 0)

    async def status(self, ref: RepositoryRef, upload_id: str) -> UploadState:
        return await self.ctx.run(self._status, ref, upload_id)

    def _status(self, ref: RepositoryRef, upload_id: str) -> UploadState:
        with self.ctx.engine.connect() as conn:
            size = conn.execute(
                select(uploads.c.size).join(repositories)
                .where(uploads.c.id == upload_id, is_repository(ref))
            ).scalar_one_or_none()
        if size is None:
            raise blob_upload_unknown(upload_id)
        return UploadState(upload_id, size)

    async def append(self, ref: RepositoryRef, upload_id: str, body: AsyncIterator[bytes],
                     content_range: ContentRange | None, content_length: int | None) -> UploadState:
        async with self._lease(ref, upload_id) as lease:
            return await self._append(lease, body, content_range, content_length, keep_lease=False)

    async def _append(self, lease: _Lease, body: AsyncIterator[bytes], content_range: ContentRange | None,
                      content_length: int | None, *, keep_lease: bool) -> UploadState:
        upload_id, size = lease.upload_id, lease.size
        if content_range is not None:
            if content_range.start != size:
                raise range_invalid(f"chunk starts at {content_range.start}, upload is at {size}", size)
            if content_length is not None and content_length != content_range.length:
                raise range_invalid("Content-Range and Content-Length disagree", size)
        writer, running = await self.ctx.run(self._open, upload_id, size)
        try:
            received = await pump(body, writer, running, self.ctx.executor)
        except BaseException:
            await self.ctx.run(writer.close)
            raise
        expected = content_range.length if content_range is not None else content_length
        if expected is not None and received != expected:
            await self.ctx.run(writer.close)
            raise size_invalid(f"expected {expected} bytes, received {received}")
        try:
            new_size = await self.ctx.run(writer.finish)
        except UploadConflict:
            raise changed_concurrently(upload_id) from None
        await self.ctx.run(self._record_size, lease, new_size, keep_lease)
        lease.size = new_size
        self._hashes.put(upload_id, new_size, running)
        return UploadState(upload_id, new_size)

    @contextlib.asynccontextmanager
    async def _lease(self, ref: RepositoryRef, upload_id: str) -> AsyncIterator[_Lease]:
        """Hold the upload's lease for the block: renewed in the background, released at the end unless the
        upload was completed (its row is gone then) or the lease was handed back with the new size."""
        lease = await self.ctx.run(self._acquire, ref, upload_id)
        renewing = asyncio.create_task(self._renew_while_held(lease))
        try:
            yield lease
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing
            if lease.held:
                await asyncio.shield(self.ctx.run(self._release, lease))

    def _acquire(self, ref: RepositoryRef, upload_id: str) -> _Lease:
        token = f"{secrets.token_hex(16)}@{process_identity()}"
        now = utcnow()
        with write_transaction(self.ctx.engine, signal=False) as conn:
            row = conn.execute(
                select(uploads.c.size, uploads.c.lease_token, uploads.c.lease_expires_at).join(repositories)
                .where(uploads.c.id == upload_id, is_repository(ref))
            ).one_or_none()
            if row is None:
                raise blob_upload_unknown(upload_id)
            size, holder, expires = row
            if holder is not None and _aware(expires) > now and holder_alive(holder) is not False:
                raise busy(upload_id)
            conn.execute(update(uploads).where(uploads.c.id == upload_id)
                         .values(lease_token=token, lease_expires_at=now + timedelta(seconds=LEASE_SECONDS)))
        return _Lease(upload_id, token, size)

    async def _renew_while_held(self, lease: _Lease) -> None:
        while True:
            await asyncio.sleep(LEASE_SECONDS / 3)
            if not await self.ctx.run(self._renew, lease):
                lease.held = False
                return

    def _renew(self, lease: _Lease) -> bool:
        with write_transaction(self.ctx.engine, signal=False) as conn:
            return bool(conn.execute(
                update(uploads).where(uploads.c.id == lease.upload_id, uploads.c.lease_token == lease.token)
                .values(lease_expires_at=utcnow() + timedelta(seconds=LEASE_SECONDS))
            ).rowcount)

    def _release(self, lease: _Lease) -> None:
        with write_transaction(self.ctx.engine, signal=False) as conn:
            conn.execute(update(uploads).where(uploads.c.id == lease.upload_id, uploads.c.lease_token == lease.token)
                         .values(lease_token=None, lease_expires_at=None))
        lease.held = False

    def _open(self, upload_id: str, size: int) -> tuple[UploadWriter, hashlib._Hash]:
        try:
            writer = self.ctx.store.open_upload(upload_id, size)
        except (FileNotFoundError, UploadOffsetMismatch):
            self._forget(upload_id)
            raise blob_upload_unknown(upload_id) from None
        except UploadConflict:
            raise changed_concurrently(upload_id) from None
        running = self._hashes.take(upload_id, size) or self._rehash(upload_id, RUNNING_ALGORITHM, size)
        return writer, running

    def _rehash(self, upload_id: str, algorithm: str, size: int) -> hashlib._Hash:
        hasher = hashlib.new(algorithm)
        remaining = size
        for chunk in self.ctx.store.read_upload(upload_id, READ_CHUNK):
            hasher.update(chunk[:remaining])
            remaining -= len(chunk)
            if remaining <= 0:
                break
        return hasher

    def _record_size(self, lease: _Lease, new_size: int, keep_lease: bool) -> None:
        """Acknowledge the new size if the lease is still ours (and the size what it was), releasing the lease
        in the same transaction unless the caller goes on to complete the upload."""
        values: dict[str, object] = {"size": new_size, "updated_at": utcnow()}
        if not keep_lease:
            values.update(lease_token=None, lease_expires_at=None)
        with write_transaction(self.ctx.engine) as conn:
            changed = conn.execute(
                update(uploads).where(uploads.c.id == lease.upload_id, uploads.c.size == lease.size,
                                      uploads.c.lease_token == lease.token)
                .values(**values)
            ).rowcount
        if not changed:
            lease.held = False
            raise changed_concurrently(lease.upload_id)
        if not keep_lease:
            lease.held = False

    async def complete(self, ref: RepositoryRef, upload_id: str, digest: Digest, body: AsyncIterator[bytes] | None,
                       content_range: ContentRange | None, content_length: int | None) -> Digest:
        async with self._lease(ref, upload_id) as lease:
            if body is not None:
                await self._append(lease, body, content_range, content_length, keep_lease=True)
            await self.ctx.run(self._commit, ref, upload_id, digest, lease.size)
            lease.held = False
        return digest

    def _commit(self, ref: RepositoryRef, upload_id: str, digest: Digest, size: int) -> None:
        self._check_writable(ref)
        running = self._hashes.take(upload_id, size) if digest.algorithm == RUNNING_ALGORITHM else None
        if running is None:
            if self.ctx.store.upload_size(upload_id) is None:
                self._forget(upload_id)
                raise blob_upload_unknown(upload_id)
            running = self._rehash(upload_id, digest.algorithm, size)
        if running.hexdigest() != digest.hex:
            if digest.algorithm == RUNNING_ALGORITHM:
                self._hashes.put(upload_id, size, running)
            raise digest_invalid("content does not match the digest", str(digest))
        self.ctx.store.commit(upload_id, digest)
        with write_transaction(self.ctx.engine) as conn:
            lock_digest(conn, str(digest))
            vanished = self.ctx.store.stat(digest) is None
            if not vanished:
                repository_id = ensure_repository(conn, ref, utcnow())
                locks.check_repository_writable(conn, repository_id)
                link_blob(conn, repository_id, digest, size)
                blob_committed(conn, ref.registry_id, str(digest), self.ctx.region)
            conn.execute(delete(uploads).where(uploads.c.id == upload_id))
        if vanished:
            self._hashes.drop(upload_id)
            raise blob_upload_invalid("the blob's bytes were removed as the upload finished (a registry holding "
                                      "them was deleted); upload it again")

    def _check_writable(self, ref: RepositoryRef) -> None:
        """The repository may have been write-locked since the upload started; refuse before the bytes are placed,
        and again in the transaction that links them, so the lock holds either way."""
        with self.ctx.engine.connect() as conn:
            repository_id = find_repository_id(conn, ref)
            if repository_id is not None:
                locks.check_repository_writable(conn, repository_id)

    async def cancel(self, ref: RepositoryRef, upload_id: str) -> None:
        await self.status(ref, upload_id)
        await self.ctx.run(self._forget, upload_id)

    def _forget(self, upload_id: str) -> None:
        self._hashes.drop(upload_id)
        with write_transaction(self.ctx.engine) as conn:
            conn.execute(delete(uploads).where(uploads.c.id == upload_id))
        self.ctx.store.discard_upload(upload_id)


def process_identity() -> str:
    """This process, as `<host>:<pid>:<start time>`: enough for a process on the same host to tell whether the
    holder of a lease is still running (after a crash and restart, it is not)."""
    global _IDENTITY
    if _IDENTITY is None:
        _IDENTITY = f"{socket.gethostname()}:{os.getpid()}:{_start_time(os.getpid())}"
    return _IDENTITY


_IDENTITY: str | None = None


def holder_alive(token: str) -> bool | None:
    """Whether the process that took a lease runs: True or False when it ran on this host, None (unknown) when
    it ran elsewhere, whose lease only its expiry ends."""
    identity = token.partition("@")[2]
    host, _, numbers = identity.partition(":")
    pid_text, _, started = numbers.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    return _start_time(int(pid_text)) == started


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), or "" where that cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rpartition(b")")[2].split()
    except OSError:
        return ""
    return fields[19].decode() if len(fields) > 19 else ""


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes for what was stored in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(slots=True)
class _Lease:
    """The right to write to one upload, held by one request."""
    upload_id: str
    token: str
    size: int
    """The acknowledged size when the lease was taken, then after each recorded write."""
    held: bool = True


def changed_concurrently(upload_id: str) -> RegistryError:
    return RegistryError("BLOB_UPLOAD_INVALID", "upload was changed concurrently", 409, {"uuid": upload_id})


def busy(upload_id: str) -> RegistryError:
    return RegistryError("BLOB_UPLOAD_INVALID", "another request is writing to this upload; retry when it has "
                         "finished", 409, {"uuid": upload_id})


def parse_content_range(header: str | None) -> ContentRange | None:
    """Parse a chunk's `Content-Range: <start>-<end>` (also tolerating a `bytes ` prefix and a `/total`)."""
    if header is None:
        return None
    text = header.strip()
    for prefix in ("bytes=", "bytes "):
        text = text.removeprefix(prefix)
    text = text.split("/", 1)[0]
    start_text, sep, end_text = text.partition("-")
    if not sep or not start_text.isdigit() or not end_text.isdigit():
        raise RegistryError("BLOB_UPLOAD_INVALID", "malformed Content-Range", 416, {"contentRange": header[:100]})
    start, end = int(start_text), int(end_text)
    if end < start:
        raise RegistryError("BLOB_UPLOAD_INVALID", "Content-Range ends before it starts", 416,
                            {"contentRange": header[:100]})
    return ContentRange(start, end)
