"""The seam between the registry and where bytes live.

An upload is written to a staging object named by its upload id (one we generated, never a client string),
appended to in order, then committed under its digest. Commit is atomic: readers see either no blob or
the whole, verified blob. All methods are blocking; callers run them off the event loop.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cargohold.oci.digest import Digest


class UploadOffsetMismatch(Exception):
    """The staged upload is shorter than the size the metadata says was acknowledged."""

    def __init__(self, current: int) -> None:
        super().__init__(f"upload is at offset {current}")
        self.current = current


@dataclass(frozen=True, slots=True)
class StoredBlob:
    digest: Digest
    size: int
    path: Path | None
    """A local file the server may hand to the kernel (sendfile/pathsend); None for remote stores."""


class UploadWriter(Protocol):
    size: int

    def write(self, pieces: Sequence[bytes]) -> None:
        """Append the pieces in order."""

    def finish(self) -> int:
        """Make everything written durable, close, and return the staged size."""

    def close(self) -> None: ...


class BlobStore(Protocol):
    def start_upload(self, upload_id: str) -> None: ...

    def open_upload(self, upload_id: str, offset: int) -> UploadWriter:
        """Append to the staged upload at `offset` (its acknowledged size); later bytes are dropped."""

    def upload_size(self, upload_id: str) -> int | None: ...

    def read_upload(self, upload_id: str, chunk_size: int) -> Iterator[bytes]: ...

    def commit(self, upload_id: str, digest: Digest) -> None:
        """Move the staged bytes into place under `digest`; the caller has verified the digest."""

    def discard_upload(self, upload_id: str) -> None: ...

    def stat(self, digest: Digest) -> StoredBlob | None: ...

    def read(self, digest: Digest, chunk_size: int) -> Iterator[bytes]: ...

    def delete(self, digest: Digest) -> None: ...

    def digests(self) -> Iterator[Digest]: ...
