"""Blob upload sessions: start, append chunks in order, report status, complete with a digest, cancel.

Bytes are hashed as they arrive. The running sha256 state lives in memory keyed by upload id and the size
it covers; when that is missing or stale (a restart, another node took a chunk) the staged bytes are
re-read once. The metadata row's `size` is what was durably written and acknowledged, so an upload
interrupted by a crash resumes from the last acknowledged byte.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
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
from cargohold.kernel.context import RegistryContext, utcnow
from cargohold.registry.repositories import RepositoryRef, ensure_repository, find_repository_id, is_repository

WRITE_BATCH = 8 * 1024 * 1024
READ_CHUNK = 1024 * 1024
RUNNING_ALGORITHM = "sha256"


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
        state = await self.status(ref, upload_id)
        if content_range is not None:
            if content_range.start != state.size:
                raise range_invalid(f"chunk starts at {content_range.start}, upload is at {state.size}", state.size)
            if content_length is not None and content_length != content_range.length:
                raise range_invalid("Content-Range and Content-Length disagree", state.size)
        writer, running = await self.ctx.run(self._open, upload_id, state.size)
        try:
            received = await self._pump(body, writer, running)
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
        await self.ctx.run(self._record_size, upload_id, state.size, new_size)
        self._hashes.put(upload_id, new_size, running)
        return UploadState(upload_id, new_size)

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

    async def _pump(self, body: AsyncIterator[bytes], writer: UploadWriter, running: hashlib._Hash) -> int:
        """Hash and write the body in batches on the pool while the event loop receives the next batch.

        Chunks are handed over as they came, never joined: on two cores every copy costs throughput.
        """
        pending: asyncio.Future[None] | None = None
        batch: list[bytes] = []
        batched = received = 0
        loop = asyncio.get_running_loop()

        def consume(pieces: list[bytes]) -> None:
            for piece in pieces:
                running.update(piece)
            writer.write(pieces)

        async for chunk in body:
            if not chunk:
                continue
            batch.append(chunk)
            batched += len(chunk)
            received += len(chunk)
            if batched >= WRITE_BATCH:
                if pending is not None:
                    await pending
                pending = loop.run_in_executor(self.ctx.executor, consume, batch)
                batch, batched = [], 0
        if pending is not None:
            await pending
        if batch:
            await loop.run_in_executor(self.ctx.executor, consume, batch)
        return received

    def _record_size(self, upload_id: str, old_size: int, new_size: int) -> None:
        with write_transaction(self.ctx.engine) as conn:
            changed = conn.execute(
                update(uploads).where(uploads.c.id == upload_id, uploads.c.size == old_size)
                .values(size=new_size, updated_at=utcnow())
            ).rowcount
        if not changed:
            raise changed_concurrently(upload_id)

    async def complete(self, ref: RepositoryRef, upload_id: str, digest: Digest, body: AsyncIterator[bytes] | None,
                       content_range: ContentRange | None, content_length: int | None) -> Digest:
        if body is not None:
            state = await self.append(ref, upload_id, body, content_range, content_length)
        else:
            state = await self.status(ref, upload_id)
        await self.ctx.run(self._commit, ref, upload_id, digest, state.size)
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


def changed_concurrently(upload_id: str) -> RegistryError:
    return RegistryError("BLOB_UPLOAD_INVALID", "upload was changed concurrently", 409, {"uuid": upload_id})


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
