"""Blobs in an S3 bucket (AWS, MinIO, Ceph; moto's server in tests), with boto3.

Layout below the store's prefix in the bucket:

    uploads/<upload id>/started          an empty object: the upload exists
    uploads/<upload id>/<offset:020d>    the bytes one write appended at that offset (at most 16 MiB each)
    blobs/<algorithm>/<hex>              one object per digest

S3 objects are immutable and a multipart upload's parts must be at least 5 MiB (but the last), while a
registry client may send chunks of any size, and the next chunk may arrive at another node. So each write is
an object of its own, named by the offset it starts at. The staged bytes are the chain of pieces from
offset 0, each starting where the one before ended (found by one listing); every piece is durable when its
PUT returns, so there is nothing to flush and nothing held by a process. A write that never finished may
have left pieces past the acknowledged offset; `open_upload` at that offset deletes them (and rewrites a
piece that straddles it to its head), then new pieces overwrite or extend the chain. Retrying a write is
idempotent: the same offset names the same object.

Commit writes `blobs/<algorithm>/<hex>` in one request that makes it visible whole (S3 writes are atomic):
a server-side CopyObject when the upload is one piece, otherwise a multipart upload whose parts are
server-side copies (UploadPartCopy, ranges of pieces) wherever a run of at least 5 MiB is available, and
pieces smaller than that re-streamed through this process merged into parts of 5 MiB. So at most 10 MiB of
a blob passes through memory at once, and a client pushing in large chunks costs no download at all.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import boto3  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from cargohold.blobs.store import (
    OverlappedSends,
    PiecesReader,
    StoredBlob,
    UploadOffsetMismatch,
    blob_name,
    check_upload_id,
    digest_of_blob_name,
    split_pieces,
)
from cargohold.oci.digest import Digest

PIECE_MAX = 16 * 1024 * 1024
"""The largest object a write stores; rewriting a straddling piece's head reads at most this."""
MIN_PART = 5 * 1024 * 1024
"""S3's smallest multipart part (all but the last)."""
MAX_COPY_PART = 5 * 1024 * 1024 * 1024
"""S3's largest part and the largest object CopyObject copies."""
MAX_PARTS = 10_000
STARTED = "started"
OCTET_STREAM = "application/octet-stream"
_NOT_FOUND = {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}


@dataclass(frozen=True, slots=True)
class _Piece:
    offset: int
    size: int
    key: str

    @property
    def end(self) -> int:
        return self.offset + self.size


def client_for(endpoint_url: str | None = None, region: str | None = None,
               addressing_style: str | None = None, session: boto3.Session | None = None) -> Any:
    """An S3 client with credentials from the standard chain (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    AWS_SESSION_TOKEN, AWS_PROFILE, instance roles). Path-style addressing is the default with an endpoint
    URL (MinIO, moto, Ceph)."""
    style = addressing_style or ("path" if endpoint_url else "auto")
    config = Config(s3={"addressing_style": style}, retries={"mode": "standard", "max_attempts": 5},
                    signature_version="s3v4", max_pool_connections=32)
    return (session or boto3.Session()).client("s3", endpoint_url=endpoint_url, region_name=region,
                                               config=config)


class S3UploadWriter:
    """PUTs pieces in the background, a few at once (`OverlappedSends`); a gap left by a piece that never
    arrived ends the chain there, so nothing past it counts."""

    batch_bytes = 8 * 1024 * 1024

    def __init__(self, store: S3BlobStore, upload_id: str, offset: int) -> None:
        self._store = store
        self._upload_id = upload_id
        self._sends = OverlappedSends()
        self.size = offset

    def write(self, pieces: Sequence[bytes | memoryview]) -> None:
        for group in split_pieces(pieces, PIECE_MAX):
            body = PiecesReader(group)
            self._sends.send(self._store.client.put_object, Bucket=self._store.bucket,
                             Key=self._store._piece_key(self._upload_id, self.size),
                             Body=body, ContentLength=body.size, ContentType=OCTET_STREAM)
            self.size += body.size

    def finish(self) -> int:
        """Every piece is durable once its PUT returned."""
        self._sends.wait()
        return self.size

    def close(self) -> None:
        self._sends.abandon()


class S3BlobStore:
    def __init__(self, client: Any, bucket: str, prefix: str = "", *, create: bool = True) -> None:
        self.client = client
        self.bucket = bucket
        prefix = prefix.strip("/")
        self.prefix = f"{prefix}/" if prefix else ""
        if create:
            self._ensure_bucket()

    def _ensure_bucket(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as error:
            if _code(error) not in _NOT_FOUND:
                raise
        region = self.client.meta.region_name
        arguments: dict[str, Any] = {"Bucket": self.bucket}
        if region and region != "us-east-1":
            arguments["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self.client.create_bucket(**arguments)
        except ClientError as error:
            if _code(error) not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise

    # names

    def _upload_prefix(self, upload_id: str) -> str:
        return f"{self.prefix}uploads/{check_upload_id(upload_id)}/"

    def _piece_key(self, upload_id: str, offset: int) -> str:
        return f"{self._upload_prefix(upload_id)}{offset:020d}"

    def _blob_key(self, digest: Digest) -> str:
        return self.prefix + blob_name(digest)

    def _list(self, prefix: str) -> Iterator[dict[str, Any]]:
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            yield from page.get("Contents", ())

    def _staged(self, upload_id: str) -> tuple[bool, list[_Piece], list[str]]:
        """Whether the upload exists, the chain of pieces from offset 0, and every other key under it."""
        prefix = self._upload_prefix(upload_id)
        exists = False
        pieces: dict[int, _Piece] = {}
        for item in self._list(prefix):
            name = item["Key"][len(prefix):]
            if name == STARTED:
                exists = True
            elif len(name) == 20 and name.isdigit():
                pieces[int(name)] = _Piece(int(name), int(item["Size"]), item["Key"])
        chain: list[_Piece] = []
        position = 0
        while (piece := pieces.pop(position, None)) is not None and piece.size:
            chain.append(piece)
            position = piece.end
        return exists, chain, [piece.key for piece in pieces.values()]

    def _get(self, key: str, start: int = 0, end: int | None = None) -> Any:
        """The streaming body of `key`'s bytes [start, end)."""
        arguments: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if start or end is not None:
            arguments["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        return self.client.get_object(**arguments)["Body"]

    def _delete_keys(self, keys: list[str]) -> None:
        for at in range(0, len(keys), 1000):
            batch = keys[at:at + 1000]
            self.client.delete_objects(Bucket=self.bucket,
                                       Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True})

    # uploads

    def start_upload(self, upload_id: str) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._upload_prefix(upload_id) + STARTED, Body=b"")

    def open_upload(self, upload_id: str, offset: int) -> S3UploadWriter:
        exists, chain, strays = self._staged(upload_id)
        if not exists:
            raise FileNotFoundError(f"no upload {upload_id}")
        size = chain[-1].end if chain else 0
        if size < offset:
            raise UploadOffsetMismatch(size)
        beyond = [piece.key for piece in chain if piece.offset >= offset]
        if beyond or strays:
            self._delete_keys(beyond + strays)
        straddling = next((piece for piece in chain if piece.offset < offset < piece.end), None)
        if straddling is not None:
            body = self._get(straddling.key, 0, offset - straddling.offset)
            try:
                head = body.read()
            finally:
                body.close()
            self.client.put_object(Bucket=self.bucket, Key=straddling.key, Body=head, ContentType=OCTET_STREAM)
        return S3UploadWriter(self, upload_id, offset)

    def upload_size(self, upload_id: str) -> int | None:
        exists, chain, _ = self._staged(upload_id)
        if not exists:
            return None
        return chain[-1].end if chain else 0

    def read_upload(self, upload_id: str, chunk_size: int) -> Iterator[bytes]:
        exists, chain, _ = self._staged(upload_id)
        if not exists:
            raise FileNotFoundError(f"no upload {upload_id}")
        for piece in chain:
            yield from _iterate(self._get(piece.key), chunk_size)

    def commit(self, upload_id: str, digest: Digest) -> None:
        target = self._blob_key(digest)
        if self._head(target) is None:
            exists, chain, _ = self._staged(upload_id)
            if not exists:
                raise FileNotFoundError(f"no upload {upload_id}")
            if not chain:
                self.client.put_object(Bucket=self.bucket, Key=target, Body=b"", ContentType=OCTET_STREAM)
            elif len(chain) == 1 and chain[0].size <= MAX_COPY_PART:
                self.client.copy_object(Bucket=self.bucket, Key=target, ContentType=OCTET_STREAM,
                                        MetadataDirective="REPLACE",
                                        CopySource={"Bucket": self.bucket, "Key": chain[0].key})
            else:
                self._assemble(target, chain)
        self.discard_upload(upload_id)

    def _assemble(self, target: str, chain: list[_Piece]) -> None:
        """One multipart upload: server-side copies of runs of at least 5 MiB, small pieces merged through
        a buffer of at most 5 MiB."""
        upload = self.client.create_multipart_upload(Bucket=self.bucket, Key=target, ContentType=OCTET_STREAM)
        upload_id = upload["UploadId"]
        parts: list[dict[str, Any]] = []

        def add_bytes(data: bytes | bytearray) -> None:
            number = len(parts) + 1
            answer = self.client.upload_part(Bucket=self.bucket, Key=target, UploadId=upload_id,
                                             PartNumber=number, Body=PiecesReader([data]))
            parts.append({"PartNumber": number, "ETag": answer["ETag"]})

        def add_copy(piece: _Piece, start: int, end: int) -> None:
            number = len(parts) + 1
            arguments: dict[str, Any] = {}
            if start or end != piece.size:
                arguments["CopySourceRange"] = f"bytes={start}-{end - 1}"
            answer = self.client.upload_part_copy(Bucket=self.bucket, Key=target, UploadId=upload_id,
                                                  PartNumber=number,
                                                  CopySource={"Bucket": self.bucket, "Key": piece.key},
                                                  **arguments)
            parts.append({"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]})

        def fetch(piece: _Piece, start: int, end: int) -> bytes:
            body = self._get(piece.key, start, end)
            try:
                return body.read()
            finally:
                body.close()

        try:
            buffer = bytearray()
            for index, piece in enumerate(chain):
                last = index == len(chain) - 1
                position = 0
                if buffer:
                    position = min(MIN_PART - len(buffer), piece.size)
                    buffer += fetch(piece, 0, position)
                    if len(buffer) >= MIN_PART:
                        add_bytes(buffer)
                        buffer = bytearray()
                rest = piece.size - position
                if not rest:
                    continue
                if rest >= MIN_PART or last:
                    count = -(-rest // MAX_COPY_PART)
                    step = -(-rest // count)
                    for start in range(position, piece.size, step):
                        add_copy(piece, start, min(start + step, piece.size))
                else:
                    buffer += fetch(piece, position, piece.size)
            if buffer:
                add_bytes(buffer)
            if len(parts) > MAX_PARTS:
                raise OSError(f"{target} would need {len(parts)} parts, S3 allows {MAX_PARTS}")
            self.client.complete_multipart_upload(Bucket=self.bucket, Key=target, UploadId=upload_id,
                                                  MultipartUpload={"Parts": parts})
        except BaseException:
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=target, UploadId=upload_id)
            except ClientError:
                pass
            raise

    def discard_upload(self, upload_id: str) -> None:
        prefix = self._upload_prefix(upload_id)
        self.client.delete_object(Bucket=self.bucket, Key=prefix + STARTED)
        self._delete_keys([item["Key"] for item in self._list(prefix)])

    # blobs

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if _code(error) in _NOT_FOUND:
                return None
            raise

    def stat(self, digest: Digest) -> StoredBlob | None:
        head = self._head(self._blob_key(digest))
        return None if head is None else StoredBlob(digest, int(head["ContentLength"]), None)

    def read(self, digest: Digest, chunk_size: int, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        if end is not None and end <= start:
            return
        try:
            body = self._get(self._blob_key(digest), start, end)
        except ClientError as error:
            if _code(error) in _NOT_FOUND:
                raise FileNotFoundError(str(digest)) from None
            if _code(error) == "InvalidRange":
                return
            raise
        yield from _iterate(body, chunk_size)

    def download_url(self, digest: Digest, ttl_seconds: int) -> str | None:
        """A presigned GET (SigV4; at most seven days)."""
        return str(self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self._blob_key(digest)},
            ExpiresIn=ttl_seconds))

    def delete(self, digest: Digest) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._blob_key(digest))

    def digests(self) -> Iterator[Digest]:
        for item in self._list(f"{self.prefix}blobs/"):
            digest = digest_of_blob_name(item["Key"][len(self.prefix):])
            if digest is not None:
                yield digest


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _iterate(body: Any, chunk_size: int) -> Iterator[bytes]:
    try:
        while data := body.read(chunk_size):
            yield data
    finally:
        body.close()
