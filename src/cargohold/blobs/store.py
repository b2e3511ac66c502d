"""The seam between the registry and where bytes live.

An upload is written to a staging object named by its upload id (one we generated, never a client string),
appended to in order, then committed under its digest. Commit is atomic: readers see either no blob or
the whole, verified blob. All methods are blocking; callers run them off the event loop.

Every piece of an upload's state lives in the store itself (or in the metadata), never in one process's
memory, so an upload begun on one node can be continued on another: a second store object over the same
backing storage sees the same staged bytes. No method holds a whole blob in memory.

Backends: `filesystem.FilesystemBlobStore` (the default), `azure.AzureBlobStore`, `s3.S3BlobStore`;
`factory.store_from_url` builds one from a storage URL.
"""

from __future__ import annotations

import io
import re
import threading
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cargohold.oci.digest import HEX_LENGTH, Digest

UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
"""Upload ids are ours (uuid4 hex); nothing else ever names a staged upload."""


class UploadOffsetMismatch(Exception):
    """The staged upload is shorter than the size the metadata says was acknowledged."""

    def __init__(self, current: int) -> None:
        super().__init__(f"upload is at offset {current}")
        self.current = current


class UploadConflict(Exception):
    """The staged upload changed under a writer (another writer appended to it at the same time).

    Raised by `open_upload` and `UploadWriter.finish` of stores that can tell (Azure); the writer's bytes were
    not added. The registry should answer it as it answers a lost race on the recorded size (409)."""


@dataclass(frozen=True, slots=True)
class StoredBlob:
    digest: Digest
    size: int
    path: Path | None
    """A local file the server may hand to the kernel (sendfile/pathsend); None for remote stores."""


class UploadWriter(Protocol):
    size: int
    batch_bytes: int
    """How many bytes the caller should gather before each `write`: small for a local file (the pipeline
    overlaps best), several MiB for a cloud store (each write is at least one request, and S3 copies only
    pieces of 5 MiB or more server-side)."""

    def write(self, pieces: Sequence[bytes | memoryview]) -> None:
        """Append the pieces in order. Pieces may be empty; the list may be empty."""

    def finish(self) -> int:
        """Make everything written durable, close, and return the staged size.

        Only after `finish` returns may the caller acknowledge the new size; a writer closed without
        `finish` leaves the upload at or past its previous size, and the next `open_upload` at the
        acknowledged offset drops whatever lies beyond it."""

    def close(self) -> None: ...


class BlobStore(Protocol):
    def start_upload(self, upload_id: str) -> None:
        """Create an empty staged upload (`upload_size` then answers 0)."""

    def open_upload(self, upload_id: str, offset: int) -> UploadWriter:
        """Append to the staged upload at `offset` (its acknowledged size); later bytes are dropped.

        FileNotFoundError if there is no such upload; UploadOffsetMismatch if it holds fewer than `offset`
        bytes."""

    def upload_size(self, upload_id: str) -> int | None:
        """Bytes staged (at least the acknowledged size; more after a write that was never finished), or
        None if there is no such upload."""

    def read_upload(self, upload_id: str, chunk_size: int) -> Iterator[bytes]:
        """The staged bytes in order, in pieces of at most about `chunk_size`. FileNotFoundError if missing."""

    def commit(self, upload_id: str, digest: Digest) -> None:
        """Move the staged bytes into place under `digest`; the caller has verified the digest.

        Atomic: a reader sees no blob or the whole one. If the digest is already present the staged bytes
        are discarded. The upload is gone afterwards."""

    def discard_upload(self, upload_id: str) -> None:
        """Remove the staged upload; nothing happens if it is missing."""

    def stat(self, digest: Digest) -> StoredBlob | None: ...

    def read(self, digest: Digest, chunk_size: int, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Stream the blob's bytes `[start, end)` (end exclusive, None: to the end of the blob) in pieces of
        at most `chunk_size`. FileNotFoundError, raised on the first iteration, if the blob is missing."""

    def download_url(self, digest: Digest, ttl_seconds: int) -> str | None:
        """A URL a client may GET the blob's bytes from directly for `ttl_seconds` (a signed, read-only URL
        of a cloud store), or None when the store has no such thing and the registry serves the bytes."""

    def delete(self, digest: Digest) -> None:
        """Remove the blob; nothing happens if it is missing."""

    def digests(self) -> Iterator[Digest]:
        """Every blob present, each once."""


def check_upload_id(upload_id: str) -> str:
    if not UPLOAD_ID.match(upload_id):
        raise ValueError("upload ids are 32 lower-case hex characters")
    return upload_id


def blob_name(digest: Digest) -> str:
    """Where an object store keeps a blob, below the store's prefix: `blobs/<algorithm>/<hex>`."""
    return f"blobs/{digest.algorithm}/{digest.hex}"


def digest_of_blob_name(name: str) -> Digest | None:
    """The digest a `blobs/<algorithm>/<hex>` name stands for; None for anything else."""
    parts = name.split("/")
    if len(parts) != 3 or parts[0] != "blobs":
        return None
    algorithm, hex_part = parts[1], parts[2]
    if HEX_LENGTH.get(algorithm) != len(hex_part) or hex_part.strip("0123456789abcdef"):
        return None
    return Digest(algorithm, hex_part)


class PiecesReader(io.RawIOBase):
    """A read-only, seekable file over a list of byte pieces, without joining them.

    Cloud SDKs stream a request body from a file and seek back to retry or to checksum it first; handing
    them this instead of `b"".join(pieces)` saves a copy of every batch written."""

    def __init__(self, pieces: Sequence[bytes | bytearray | memoryview]) -> None:
        super().__init__()
        self._pieces = [memoryview(piece).cast("B") for piece in pieces if len(piece)]
        self._starts: list[int] = []
        total = 0
        for piece in self._pieces:
            self._starts.append(total)
            total += len(piece)
        self.size = total
        self._position = 0

    def __len__(self) -> int:
        return self.size - self._position

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def read(self, size: int | None = -1) -> bytes:
        """At most `size` bytes from one piece (a short read, as a raw file may give); b"" at the end."""
        if self._position >= self.size or size == 0:
            return b""
        index = bisect_right(self._starts, self._position) - 1
        within = self._position - self._starts[index]
        piece = self._pieces[index]
        if size is None or size < 0:
            size = self.size - self._position
        data = bytes(piece[within:within + size])
        self._position += len(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        memoryview(buffer).cast("B")[:len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        parts = []
        while data := self.read(1 << 20):
            parts.append(data)
        return b"".join(parts)


def split_pieces(pieces: Sequence[bytes | memoryview], limit: int) -> Iterator[list[memoryview]]:
    """Group the non-empty pieces into runs of at most `limit` bytes each, slicing (never copying) a piece
    that crosses a boundary."""
    group: list[memoryview] = []
    room = limit
    for piece in pieces:
        view = memoryview(piece).cast("B")
        while len(view):
            taken = view[:room]
            group.append(taken)
            room -= len(taken)
            view = view[len(taken):]
            if room == 0:
                yield group
                group, room = [], limit
    if group:
        yield group


PARALLEL_PIECES = 3
"""How many pieces of one upload a cloud store's writer sends at the same time."""
_piece_pool: ThreadPoolExecutor | None = None
_piece_pool_lock = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _piece_pool
    with _piece_pool_lock:
        if _piece_pool is None:
            _piece_pool = ThreadPoolExecutor(16, "cargohold-pieces")
        return _piece_pool


class OverlappedSends:
    """A cloud writer's piece uploads (Azure blocks, S3 piece objects), sent in the background, at most
    `limit` at a time, so that sending one overlaps receiving and hashing the next.

    A writer's `write` calls `send` and returns; its `finish` calls `wait` (which raises the first failure)
    before it makes anything visible, its `close` calls `abandon`, which waits too: no request of a closed
    writer may still land afterwards, where it could overwrite what a later writer of the upload stored."""

    def __init__(self, limit: int = PARALLEL_PIECES) -> None:
        self._limit = limit
        self._pending: deque[Future[Any]] = deque()

    def send(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        while len(self._pending) >= self._limit:
            self._pending.popleft().result()
        self._pending.append(_pool().submit(fn, *args, **kwargs))

    def wait(self) -> None:
        failure: BaseException | None = None
        while self._pending:
            try:
                self._pending.popleft().result()
            except BaseException as error:  # noqa: BLE001 - re-raised once all have ended
                failure = failure or error
        if failure is not None:
            raise failure

    def abandon(self) -> None:
        try:
            self.wait()
        except Exception:  # noqa: BLE001 - the writer is being closed without finishing
            pass
