"""Blobs in an Azure Blob Storage container (Azurite in tests), with the sync `azure-storage-blob` SDK.

Layout below the store's prefix in the container:

    uploads/<upload id>        a block blob per upload in progress: its committed blocks are the staged bytes
    blobs/<algorithm>/<hex>    a block blob per digest

An upload is a block blob whose *committed* block list is exactly the bytes written and finished so far.
`write` stages the new bytes as uncommitted blocks (at most 16 MiB each); `finish` commits the block list
(the old blocks followed by the new ones) on the condition that the blob's ETag is the one seen when the
writer was opened. So:

- All state lives in the container: any node's store object sees the same committed size and bytes.
- A write that never finished (a crash, a dropped connection) changed nothing: its blocks stay uncommitted,
  are never named in a block list, and Azure discards them at the next commit (or after a week). Retrying
  the write is therefore idempotent. Block ids are `<offset:020d><writer nonce>`: derived from the offset,
  as ordered as the bytes, and unique to the writer, so two writers never replace each other's blocks.
- Two writers racing to append to one upload cannot interleave: the second `finish` fails its ETag condition
  and raises `UploadConflict`, leaving the first writer's bytes.
- `open_upload` at an offset below the committed size (the metadata acknowledged less than was committed, a
  crash between `finish` and recording the size) commits a shorter block list, re-staging the head of a
  block that straddles the offset.

Commit copies the staged blob to its digest's name with a server-side Copy Blob (within one storage account
authorized by the account's own key; no bytes pass through this process) and waits for the copy to succeed.
A blob is visible only when it exists and its copy state is absent or `success`: `stat` and `digests`
ignore a destination whose copy is pending or failed, so a reader sees no blob or the whole one, and a
copy that failed or never finished is simply redone by the next commit of that digest. A read is one ranged
GET streamed as the bytes arrive (resumed at the byte where it broke off if the connection fails).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    IncompleteReadError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceResponseError,
)
from azure.storage.blob import (
    BlobBlock,
    BlobClient,
    BlobProperties,
    BlobSasPermissions,
    BlobServiceClient,
    ContainerClient,
    generate_blob_sas,
)

from cargohold.blobs.store import (
    OverlappedSends,
    PiecesReader,
    StoredBlob,
    UploadConflict,
    UploadOffsetMismatch,
    blob_name,
    check_upload_id,
    digest_of_blob_name,
    split_pieces,
)
from cargohold.oci.digest import Digest

BLOCK_MAX = 16 * 1024 * 1024
"""The largest block a write stages (Azure allows 4000 MiB); re-staging a block's head reads at most this."""
GET_CHUNK = 4 * 1024 * 1024
"""Bytes per GET of the SDK's own downloader (reads here stream one GET per call instead)."""
STREAM_RETRIES = 3
"""How often a read resumes a GET that broke off midway."""
COPY_POLL_SECONDS = 0.2
COPY_TIMEOUT_SECONDS = 3600.0
CLIENT_OPTIONS: dict[str, Any] = {
    "max_single_get_size": GET_CHUNK,
    "max_chunk_get_size": GET_CHUNK,
    "connection_timeout": 20,
    "read_timeout": 120,
}
"""Client settings every store's `BlobServiceClient` should have: reads are streamed in `GET_CHUNK` pieces
(the SDK's default first GET is 32 MiB, held whole in memory)."""


def service_from_connection_string(connection_string: str) -> BlobServiceClient:
    return BlobServiceClient.from_connection_string(connection_string, **CLIENT_OPTIONS)


def service_from_account(account_url: str, credential: Any) -> BlobServiceClient:
    """`credential`: an account key as `{"account_name": ..., "account_key": ...}`, a SAS string, or a token
    credential (signed download URLs need the account key)."""
    return BlobServiceClient(account_url, credential=credential, **CLIENT_OPTIONS)


class AzureUploadWriter:
    """Stages blocks in the background, a few at once (`OverlappedSends`); `finish` waits for them, then
    commits the block list."""

    batch_bytes = 8 * 1024 * 1024

    def __init__(self, blob: BlobClient, blocks: list[str], offset: int, etag: str) -> None:
        self._blob = blob
        self._blocks = blocks
        self._new: list[str] = []
        self._etag = etag
        self._nonce = secrets.token_hex(8)
        self._sends = OverlappedSends()
        self.size = offset

    def write(self, pieces: Sequence[bytes | memoryview]) -> None:
        for group in split_pieces(pieces, BLOCK_MAX):
            body = PiecesReader(group)
            block_id = f"{self.size:020d}{self._nonce}"
            self._sends.send(self._blob.stage_block, block_id, body, length=body.size)
            self._new.append(block_id)
            self.size += body.size

    def finish(self) -> int:
        self._sends.wait()
        if self._new:
            self._etag = _commit_blocks(self._blob, self._blocks + self._new, self._etag)
            self._blocks += self._new
            self._new = []
        return self.size

    def close(self) -> None:
        """Wait for blocks still being sent; blocks never committed are discarded by Azure."""
        self._sends.abandon()
        self._new = []


class AzureBlobStore:
    def __init__(self, service: BlobServiceClient, container: str, prefix: str = "", *,
                 create: bool = True) -> None:
        self.service = service
        self.container_name = container
        self.prefix = _normal_prefix(prefix)
        self._container: ContainerClient = service.get_container_client(container)
        if create:
            try:
                self._container.create_container()
            except ResourceExistsError:
                pass

    @classmethod
    def from_connection_string(cls, connection_string: str, container: str, prefix: str = "",
                               *, create: bool = True) -> AzureBlobStore:
        return cls(service_from_connection_string(connection_string), container, prefix, create=create)

    # names

    def _upload(self, upload_id: str) -> BlobClient:
        return self._container.get_blob_client(f"{self.prefix}uploads/{check_upload_id(upload_id)}")

    def _blob(self, digest: Digest) -> BlobClient:
        return self._container.get_blob_client(self.prefix + blob_name(digest))

    # uploads

    def start_upload(self, upload_id: str) -> None:
        self._upload(upload_id).commit_block_list([], match_condition=MatchConditions.IfMissing)

    def open_upload(self, upload_id: str, offset: int) -> AzureUploadWriter:
        blob = self._upload(upload_id)
        properties = _properties(blob)
        if properties is None:
            raise FileNotFoundError(f"no upload {upload_id}")
        if properties.size < offset:
            raise UploadOffsetMismatch(properties.size)
        etag = properties.etag
        try:
            committed, _ = blob.get_block_list("committed")
        except ResourceNotFoundError:
            raise FileNotFoundError(f"no upload {upload_id}") from None
        blocks: list[str] = []
        position = 0
        for block in committed:
            if position + block.size > offset:
                break
            blocks.append(block.id)
            position += block.size
        if position < offset or len(blocks) < len(committed):
            if position < offset:
                head = b"".join(_stream(blob, GET_CHUNK, position, offset))
                head_id = f"{position:020d}{secrets.token_hex(8)}"
                blob.stage_block(head_id, head, length=len(head))
                blocks.append(head_id)
            etag = _commit_blocks(blob, blocks, etag)
        return AzureUploadWriter(blob, blocks, offset, etag)

    def upload_size(self, upload_id: str) -> int | None:
        properties = _properties(self._upload(upload_id))
        return None if properties is None else properties.size

    def read_upload(self, upload_id: str, chunk_size: int) -> Iterator[bytes]:
        yield from _stream(self._upload(upload_id), chunk_size, 0, None)

    def commit(self, upload_id: str, digest: Digest) -> None:
        source = self._upload(upload_id)
        target = self._blob(digest)
        deadline = time.monotonic() + COPY_TIMEOUT_SECONDS
        present = _properties(target)
        if present is not None and _copy_status(present) == "pending":
            present = _settle(target, deadline)  # another node is committing the same bytes
        if present is not None and _copy_status(present) in (None, "success"):
            self.discard_upload(upload_id)
            return
        if _properties(source) is None:
            raise FileNotFoundError(f"no upload {upload_id}")
        copy = target.start_copy_from_url(source.url)
        if copy.get("copy_status") != "success":
            settled = _settle(target, deadline)
            status = None if settled is None else _copy_status(settled)
            if status not in (None, "success"):
                raise OSError(f"copying upload {upload_id} to {target.blob_name} ended {status or 'without a blob'}")
        self.discard_upload(upload_id)

    def discard_upload(self, upload_id: str) -> None:
        try:
            self._upload(upload_id).delete_blob()
        except ResourceNotFoundError:
            pass

    # blobs

    def stat(self, digest: Digest) -> StoredBlob | None:
        properties = _properties(self._blob(digest))
        if properties is None or _copy_status(properties) not in (None, "success"):
            return None
        return StoredBlob(digest, properties.size, None)

    def read(self, digest: Digest, chunk_size: int, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        yield from _stream(self._blob(digest), chunk_size, start, end)

    def download_url(self, digest: Digest, ttl_seconds: int) -> str | None:
        """A read-only SAS URL signed with the account key; None when the store was given no account key."""
        credential = self.service.credential
        account_key = getattr(credential, "account_key", None)
        account_name = getattr(credential, "account_name", None)
        if not account_key or not account_name:
            return None
        blob = self._blob(digest)
        token = generate_blob_sas(
            account_name=account_name, container_name=self.container_name, blob_name=blob.blob_name,
            account_key=account_key, permission=BlobSasPermissions(read=True),
            expiry=datetime.now(UTC) + timedelta(seconds=ttl_seconds),
            content_type="application/octet-stream",
        )
        return f"{blob.url}?{token}"

    def delete(self, digest: Digest) -> None:
        try:
            self._blob(digest).delete_blob()
        except ResourceNotFoundError:
            pass

    def digests(self) -> Iterator[Digest]:
        for item in self._container.list_blobs(name_starts_with=f"{self.prefix}blobs/", include=["copy"]):
            digest = digest_of_blob_name(item.name[len(self.prefix):])
            if digest is not None and _copy_status(item) in (None, "success"):
                yield digest


def _normal_prefix(prefix: str) -> str:
    prefix = prefix.strip("/")
    return f"{prefix}/" if prefix else ""


def _properties(blob: BlobClient) -> BlobProperties | None:
    try:
        return blob.get_blob_properties()
    except ResourceNotFoundError:
        return None


def _copy_status(properties: BlobProperties) -> str | None:
    copy = getattr(properties, "copy", None)
    status = getattr(copy, "status", None) if copy is not None else None
    return None if status is None else str(getattr(status, "value", status))


def _settle(target: BlobClient, deadline: float) -> BlobProperties | None:
    """Wait while a copy into `target` is pending; its properties once it ended (None if it is gone)."""
    while True:
        properties = _properties(target)
        if properties is None or _copy_status(properties) != "pending":
            return properties
        if time.monotonic() > deadline:
            raise TimeoutError(f"copy into {target.blob_name} still pending")
        time.sleep(COPY_POLL_SECONDS)


def _commit_blocks(blob: BlobClient, blocks: list[str], etag: str) -> str:
    """Commit `blocks` (ids, in order) if the blob still has `etag`; return the new ETag.

    Every block is named as "latest" (the staged block of that id if there is one, else the committed one):
    ids are unique per writer, so that is unambiguous, and the SDK keeps the order only within one kind."""
    try:
        result = blob.commit_block_list([BlobBlock(block) for block in blocks], etag=etag,
                                        match_condition=MatchConditions.IfNotModified)
    except ResourceModifiedError:
        raise UploadConflict(f"upload {blob.blob_name} was changed by another writer") from None
    except ResourceNotFoundError:
        raise FileNotFoundError(f"upload {blob.blob_name} is gone") from None
    return str(result["etag"])


def _stream(blob: BlobClient, chunk_size: int, start: int, end: int | None) -> Iterator[bytes]:
    """The bytes [start, end) of `blob` from one streamed GET, resumed where it broke off (a few times) if the
    connection fails midway."""
    if end is not None and end <= start:
        return
    position = start
    failures = 0
    while True:
        try:
            pieces = _get_range(blob, position, end)
        except ResourceNotFoundError:
            raise FileNotFoundError(blob.blob_name) from None
        except HttpResponseError as error:
            if error.status_code == 416:
                return
            raise
        try:
            for piece in pieces:
                for at in range(0, len(piece), chunk_size):
                    part = piece[at:at + chunk_size] if len(piece) > chunk_size else piece
                    position += len(part)
                    yield part
            return
        except (ServiceResponseError, IncompleteReadError):
            failures += 1
            if failures > STREAM_RETRIES:
                raise


def _get_range(blob: BlobClient, start: int, end: int | None) -> Iterator[bytes]:
    """A streamed GET of [start, end).

    The SDK's public downloader (`download_blob`) holds each GET of up to `max_chunk_get_size` whole, and
    `list()`s the response first, whose length hint makes CPython allocate 8 bytes per byte of the chunk.
    The generated operation it calls itself streams the response as it arrives; use that, and the public
    downloader only if a future SDK moves it."""
    byte_range = f"bytes={start}-{'' if end is None else end - 1}" if start or end is not None else None
    operation = getattr(getattr(getattr(blob, "_client", None), "blob", None), "download", None)
    if operation is None:
        return _public_download(blob, start, end)
    return iter(operation(range=byte_range, decompress=False))


def _public_download(blob: BlobClient, start: int, end: int | None) -> Iterator[bytes]:
    length = None if end is None else end - start
    downloader = blob.download_blob(offset=start if start or length is not None else None, length=length)
    return iter(lambda: downloader.read(GET_CHUNK), b"")
