"""Blobs as files under one directory: `blobs/<alg>/<first two hex>/<hex>` and `uploads/<upload id>`.

Durability follows invariant 1: an upload's bytes are fsync'ed before commit, commit is a rename within one
file system, and the destination directory is fsync'ed after it, so a crash leaves no blob or a whole one.

A writer asks the kernel to start writing each batch back to the disk as soon as it is written
(`sync_file_range(SYNC_FILE_RANGE_WRITE)` on Linux, which does not wait), so the `fdatasync` that makes the
upload durable at the end finds most of it on the disk already instead of flushing the whole body at once.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from functools import cache
from pathlib import Path

from cargohold.blobs.store import StoredBlob, UploadOffsetMismatch
from cargohold.oci.digest import HEX_LENGTH, Digest

_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
_IOV_MAX = 512
_SYNC_FILE_RANGE_WRITE = 2


class FileUploadWriter:
    """Appends to one staged upload; `finish` makes the bytes durable and reports the new size."""

    batch_bytes = 1024 * 1024

    def __init__(self, fd: int, offset: int) -> None:
        self._fd = fd
        self.size = offset

    def write(self, pieces: Sequence[bytes | memoryview]) -> None:
        """Append the pieces in order with as few system calls and copies as the kernel allows, then start
        their write-back."""
        start = self.size
        views = [memoryview(piece) for piece in pieces if piece]
        while views:
            batch = views[:_IOV_MAX]
            written = os.writev(self._fd, batch)
            self.size += written
            while batch and written >= len(batch[0]):
                written -= len(batch[0])
                batch.pop(0)
                views.pop(0)
            if written:
                views[0] = views[0][written:]
        start_writeback = _writeback()
        if start_writeback is not None and self.size > start:
            start_writeback(self._fd, start, self.size - start, _SYNC_FILE_RANGE_WRITE)

    def finish(self) -> int:
        try:
            os.fdatasync(self._fd)
        finally:
            self.close()
        return self.size

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class FilesystemBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._blobs = root / "blobs"
        self._uploads = root / "uploads"
        self._blobs.mkdir(parents=True, exist_ok=True)
        self._uploads.mkdir(parents=True, exist_ok=True)

    def _upload_path(self, upload_id: str) -> Path:
        if not _UPLOAD_ID.match(upload_id):
            raise ValueError("upload ids are 32 lower-case hex characters")
        return self._uploads / upload_id

    def _blob_path(self, digest: Digest) -> Path:
        return self._blobs / digest.algorithm / digest.hex[:2] / digest.hex

    def start_upload(self, upload_id: str) -> None:
        path = self._upload_path(upload_id)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)

    def open_upload(self, upload_id: str, offset: int) -> FileUploadWriter:
        """Open the staged upload for appending at `offset`; bytes past it (unacknowledged) are dropped."""
        fd = os.open(self._upload_path(upload_id), os.O_WRONLY)
        current = os.fstat(fd).st_size
        if current < offset:
            os.close(fd)
            raise UploadOffsetMismatch(current)
        if current > offset:
            os.ftruncate(fd, offset)
        os.lseek(fd, offset, os.SEEK_SET)
        return FileUploadWriter(fd, offset)

    def upload_size(self, upload_id: str) -> int | None:
        try:
            return self._upload_path(upload_id).stat().st_size
        except FileNotFoundError:
            return None

    def read_upload(self, upload_id: str, chunk_size: int) -> Iterator[bytes]:
        yield from _read_file(self._upload_path(upload_id), chunk_size)

    def commit(self, upload_id: str, digest: Digest) -> None:
        source = self._upload_path(upload_id)
        target = self._blob_path(digest)
        if target.exists():
            source.unlink(missing_ok=True)
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(source, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(source, target)
        _fsync_directory(target.parent)

    def discard_upload(self, upload_id: str) -> None:
        self._upload_path(upload_id).unlink(missing_ok=True)

    def stat(self, digest: Digest) -> StoredBlob | None:
        path = self._blob_path(digest)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return None
        return StoredBlob(digest, size, path)

    def read(self, digest: Digest, chunk_size: int, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        yield from _read_file(self._blob_path(digest), chunk_size, start, end)

    def download_url(self, digest: Digest, ttl_seconds: int) -> str | None:
        """None: the registry serves a file store's bytes itself (with sendfile)."""
        return None

    def delete(self, digest: Digest) -> None:
        self._blob_path(digest).unlink(missing_ok=True)

    def digests(self) -> Iterator[Digest]:
        for algorithm, length in HEX_LENGTH.items():
            base = self._blobs / algorithm
            if not base.is_dir():
                continue
            for prefix in sorted(base.iterdir()):
                for entry in sorted(prefix.iterdir()):
                    if len(entry.name) == length:
                        yield Digest(algorithm, entry.name)


def _read_file(path: Path, chunk_size: int, start: int = 0, end: int | None = None) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        if start:
            handle.seek(start)
        remaining = None if end is None else max(0, end - start)
        while remaining is None or remaining > 0:
            chunk = handle.read(chunk_size if remaining is None else min(chunk_size, remaining))
            if not chunk:
                return
            if remaining is not None:
                remaining -= len(chunk)
            yield chunk


@cache
def _writeback() -> Callable[[int, int, int, int], int] | None:
    """libc's sync_file_range (from the symbols the interpreter already has), or None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function  # type: ignore[no-any-return]


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
