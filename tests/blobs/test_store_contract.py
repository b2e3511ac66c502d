"""The BlobStore contract, held by every backend: the filesystem, Azure Blob (Azurite) and S3 (moto's server).

Each store is built from its storage URL (`blobs.factory`); "another node" is a second store object built
from the same URL, sharing nothing with the first but the backing storage.
"""

from __future__ import annotations

import hashlib
import os
import random
import time
import tracemalloc
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from cargohold.blobs.factory import StorageUrlError, redacted, store_from_url
from cargohold.blobs.store import BlobStore, UploadConflict, UploadOffsetMismatch
from cargohold.oci.digest import Digest, compute
from tests.blobs.conftest import AZURITE_KEY, Azurite, MotoS3

MiB = 1024 * 1024
KINDS = ["filesystem", "azure", "s3"]


@dataclass
class Backend:
    kind: str
    url: str
    root: Path

    def node(self) -> BlobStore:
        """A store object of its own over the same storage: another server node."""
        return store_from_url(self.url, self.root)

    @property
    def remote(self) -> bool:
        return self.kind != "filesystem"


@pytest.fixture(params=KINDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Backend:
    prefix = f"t{uuid.uuid4().hex[:12]}"
    if request.param == "filesystem":
        return Backend("filesystem", f"file://{quote(str(tmp_path / 'store'))}", tmp_path / "unused")
    if request.param == "azure":
        azurite: Azurite = request.getfixturevalue("azurite")
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
        return Backend("azure", f"azure://contract/{prefix}", tmp_path)
    moto: MotoS3 = request.getfixturevalue("moto_s3")
    _aws_env(monkeypatch)
    return Backend("s3", f"s3://contract/{prefix}?endpoint_url={moto.endpoint_url}&region=us-east-1", tmp_path)


def _aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


def new_upload(store: BlobStore) -> str:
    upload_id = uuid.uuid4().hex
    store.start_upload(upload_id)
    return upload_id


def append(store: BlobStore, upload_id: str, offset: int, pieces: Sequence[bytes]) -> int:
    writer = store.open_upload(upload_id, offset)
    try:
        writer.write(pieces)
    except BaseException:
        writer.close()
        raise
    return writer.finish()


def staged(store: BlobStore, upload_id: str, chunk_size: int = 7) -> bytes:
    return b"".join(store.read_upload(upload_id, chunk_size))


def commit_bytes(store: BlobStore, data: bytes) -> Digest:
    upload_id = new_upload(store)
    append(store, upload_id, 0, [data])
    digest = compute(data)
    store.commit(upload_id, digest)
    return digest


def test_staged_upload_in_several_writes_continues_on_another_node(backend: Backend) -> None:
    first, second = backend.node(), backend.node()
    upload_id = new_upload(first)
    assert first.upload_size(upload_id) == 0
    assert second.upload_size(upload_id) == 0
    assert second.upload_size(uuid.uuid4().hex) is None

    writer = first.open_upload(upload_id, 0)
    writer.write([b"alpha ", b"", b"beta "])
    writer.write([])
    writer.write([b"gamma "])
    assert writer.finish() == 17
    assert append(first, upload_id, 17, [b"delta "]) == 23

    assert second.upload_size(upload_id) == 23
    assert append(second, upload_id, 23, [b"epsilon"]) == 30
    assert first.upload_size(upload_id) == 30
    assert staged(first, upload_id) == b"alpha beta gamma delta epsilon"
    assert all(len(piece) <= 7 for piece in first.read_upload(upload_id, 7))

    with pytest.raises(UploadOffsetMismatch) as mismatch:
        second.open_upload(upload_id, 31)
    assert mismatch.value.current == 30
    with pytest.raises(FileNotFoundError):
        second.open_upload(uuid.uuid4().hex, 0)
    with pytest.raises(FileNotFoundError):
        staged(second, uuid.uuid4().hex)


def test_bytes_beyond_the_acknowledged_offset_are_dropped(backend: Backend) -> None:
    first, second = backend.node(), backend.node()
    upload_id = new_upload(first)
    acknowledged = append(first, upload_id, 0, [b"0123456789"])
    # A write finished but never acknowledged (the node died before recording the size) ...
    append(first, upload_id, acknowledged, [b"LOST", b"LOST"])
    # ... and one that never finished (the connection dropped mid-chunk).
    broken = first.open_upload(upload_id, first.upload_size(upload_id) or 0)
    broken.write([b"TORN"])
    broken.close()
    assert (first.upload_size(upload_id) or 0) >= acknowledged

    # Another node continues at the acknowledged offset: everything after it is gone.
    writer = second.open_upload(upload_id, acknowledged)
    assert second.upload_size(upload_id) == acknowledged
    writer.write([b"abc"])
    assert writer.finish() == 13
    assert staged(first, upload_id) == b"0123456789abc"

    # An acknowledged offset in the middle of an earlier write keeps that write's head.
    append(second, upload_id, 13, [b"defghij"])
    assert append(first, upload_id, 16, [b"XY"]) == 18
    assert staged(second, upload_id) == b"0123456789abcdefXY"
    assert first.upload_size(upload_id) == 18


def test_uneven_writes_commit_whole(backend: Backend) -> None:
    """Writes of many sizes, small and above S3's 5 MiB part minimum, in one blob (S3 assembles it from
    server-side part copies and small pieces merged into parts)."""
    store = backend.node()
    rng = random.Random(7)
    sizes = [3 * MiB, 12 * MiB + 5, 1024, 1, 8 * MiB, 6 * MiB + 3]
    hasher = hashlib.sha256()
    upload_id = new_upload(store)
    offset = 0
    for size in sizes:
        data = rng.randbytes(size)
        hasher.update(data)
        offset = append(store, upload_id, offset, [data[: size // 3], data[size // 3:]])
    digest = Digest("sha256", hasher.hexdigest())
    committer = backend.node()
    calls: list[str] = []
    if backend.kind == "s3":
        committer.client.meta.events.register(  # type: ignore[attr-defined]
            "before-call.s3", lambda model, **_: calls.append(model.name))
    committer.commit(upload_id, digest)
    stored = store.stat(digest)
    assert stored is not None and stored.size == sum(sizes)
    if backend.kind == "s3":
        # Parts: 3 MiB + the next piece's first 2 MiB re-streamed; its other 10 MiB copied by S3; the tiny
        # pieces + most of the 8 MiB one; its last 3 MiB + the last piece's first 2 MiB; the rest copied.
        assert calls.count("UploadPartCopy") == 2 and calls.count("UploadPart") == 3, calls
    check = hashlib.sha256()
    for chunk in store.read(digest, MiB):
        assert len(chunk) <= MiB
        check.update(chunk)
    assert check.hexdigest() == digest.hex


def test_commit_then_stat_read_and_ranges(backend: Backend) -> None:
    store, other = backend.node(), backend.node()
    data = bytes(range(256)) * 40 + b"tail"
    upload_id = new_upload(store)
    append(store, upload_id, 0, [data[:1000]])
    append(other, upload_id, 1000, [data[1000:]])
    digest = compute(data)
    assert other.stat(digest) is None
    store.commit(upload_id, digest)

    assert store.upload_size(upload_id) is None
    stored = other.stat(digest)
    assert stored is not None and stored.size == len(data) and stored.digest == digest
    if backend.remote:
        assert stored.path is None
    else:
        assert stored.path is not None and stored.path.read_bytes() == data

    assert b"".join(other.read(digest, 1000)) == data
    assert all(len(chunk) <= 1000 for chunk in other.read(digest, 1000))
    size = len(data)
    for start, end in [(0, 1), (5, None), (size - 1, size), (100, 3000), (0, size), (3, 3), (size, None)]:
        assert b"".join(other.read(digest, 333, start, end)) == data[start:end], (start, end)
    assert digest in set(other.digests())


def test_empty_blob(backend: Backend) -> None:
    store = backend.node()
    upload_id = new_upload(store)
    assert append(store, upload_id, 0, []) == 0
    digest = compute(b"")
    store.commit(upload_id, digest)
    stored = store.stat(digest)
    assert stored is not None and stored.size == 0
    assert b"".join(store.read(digest, 1024)) == b""


def test_commit_of_a_digest_already_present(backend: Backend) -> None:
    store, other = backend.node(), backend.node()
    data = b"the same layer, pushed twice"
    digest = commit_bytes(store, data)
    upload_id = new_upload(other)
    append(other, upload_id, 0, [data])
    other.commit(upload_id, digest)
    assert other.upload_size(upload_id) is None
    assert b"".join(store.read(digest, 1024)) == data
    assert list(store.digests()).count(digest) == 1


def test_discard_upload(backend: Backend) -> None:
    store, other = backend.node(), backend.node()
    upload_id = new_upload(store)
    append(store, upload_id, 0, [b"x" * 1000, b"y" * 10])
    other.discard_upload(upload_id)
    assert store.upload_size(upload_id) is None
    with pytest.raises(FileNotFoundError):
        staged(store, upload_id)
    with pytest.raises(FileNotFoundError):
        store.open_upload(upload_id, 0)
    other.discard_upload(upload_id)
    other.discard_upload(uuid.uuid4().hex)


def test_delete(backend: Backend) -> None:
    store, other = backend.node(), backend.node()
    digest = commit_bytes(store, b"doomed")
    kept = commit_bytes(store, b"kept")
    other.delete(digest)
    assert store.stat(digest) is None
    with pytest.raises(FileNotFoundError):
        b"".join(store.read(digest, 1024))
    other.delete(digest)
    assert set(store.digests()) == {kept}


def test_digests_lists_blobs_only(backend: Backend) -> None:
    store = backend.node()
    contents = [b"one", b"two", b"three"]
    expected = {commit_bytes(store, data) for data in contents}
    sha512 = Digest("sha512", hashlib.sha512(b"four").hexdigest())
    upload_id = new_upload(store)
    append(store, upload_id, 0, [b"four"])
    store.commit(upload_id, sha512)
    expected.add(sha512)
    new_upload(store)  # an upload in progress is not a blob
    found = list(backend.node().digests())
    assert len(found) == len(set(found))
    assert set(found) == expected


def test_download_url(backend: Backend) -> None:
    store = backend.node()
    data = os.urandom(100_000)
    digest = commit_bytes(store, data)
    url = backend.node().download_url(digest, 60)
    if not backend.remote:
        assert url is None
        return
    assert url is not None
    with httpx.Client(timeout=30) as http:
        response = http.get(url)
        assert response.status_code == 200
        assert response.content == data
        ranged = http.get(url, headers={"Range": "bytes=10-19"})
        assert ranged.status_code == 206 and ranged.content == data[10:20]

        if backend.kind == "s3":
            # moto does not enforce presigned URLs' expiry or signatures; check what the URL asks for.
            assert "X-Amz-Expires=60" in url and "X-Amz-Signature=" in url
            return
        tampered = url.replace("sig=", "sig=AAAA")
        assert http.get(tampered).status_code == 403
        short = store.download_url(digest, 1)
        assert short is not None
        time.sleep(2.2)
        assert http.get(short).status_code == 403


def test_a_large_blob_is_never_held_in_memory(backend: Backend) -> None:
    """20 MiB in 8 MiB writes, staged, committed and read back; each step's own allocations stay far below
    the blob's size. The pieces written are views of one 1 MiB buffer (in shuffled order), so what the test
    holds is small and the peak measures the store's data path."""
    store, other = backend.node(), backend.node()
    base = os.urandom(MiB)
    piece = 64 * 1024
    slices = [memoryview(base)[at:at + piece] for at in range(0, MiB, piece)]
    rng = random.Random(20)
    total, batch_size = 20 * MiB, 8 * MiB
    hasher = hashlib.sha256()
    upload_id = new_upload(store)

    tracemalloc.start()
    try:
        writer = store.open_upload(upload_id, 0)
        written = 0
        while written < total:
            count = min(batch_size, total - written) // piece
            batch = [rng.choice(slices) for _ in range(count)]
            for part in batch:
                hasher.update(part)
            writer.write(batch)
            written += count * piece
        assert writer.finish() == total
        write_peak = tracemalloc.get_traced_memory()[1]

        tracemalloc.reset_peak()
        digest = Digest("sha256", hasher.hexdigest())
        other.commit(upload_id, digest)
        commit_peak = tracemalloc.get_traced_memory()[1]

        tracemalloc.reset_peak()
        check = hashlib.sha256()
        for chunk in store.read(digest, MiB):
            check.update(chunk)
        read_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert check.hexdigest() == digest.hex
    stored = store.stat(digest)
    assert stored is not None and stored.size == total
    limit = 4 * MiB
    assert write_peak < limit, f"writing held {write_peak / MiB:.1f} MiB"
    assert commit_peak < limit, f"committing held {commit_peak / MiB:.1f} MiB"
    assert read_peak < limit, f"reading held {read_peak / MiB:.1f} MiB"


def test_azure_refuses_a_second_concurrent_writer(azurite: Azurite, monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    """Two nodes appending at one offset at once: the second `finish` fails, the first one's bytes stay."""
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    url = f"azure://contract/t{uuid.uuid4().hex[:12]}"
    first, second = store_from_url(url, tmp_path), store_from_url(url, tmp_path)
    upload_id = new_upload(first)
    append(first, upload_id, 0, [b"base-"])
    one, two = first.open_upload(upload_id, 5), second.open_upload(upload_id, 5)
    one.write([b"first"])
    two.write([b"other"])
    assert one.finish() == 10
    with pytest.raises(UploadConflict):
        two.finish()
    assert staged(second, upload_id) == b"base-first"


# the factory


def test_storage_urls_build_each_store(azurite: Azurite, moto_s3: MotoS3, monkeypatch: pytest.MonkeyPatch,
                                       tmp_path: Path) -> None:
    from cargohold.blobs.azure import AzureBlobStore
    from cargohold.blobs.filesystem import FilesystemBlobStore
    from cargohold.blobs.s3 import S3BlobStore

    assert isinstance(store_from_url(None, tmp_path / "default"), FilesystemBlobStore)
    assert (tmp_path / "default" / "blobs").is_dir()
    assert isinstance(store_from_url(f"file://{tmp_path}/elsewhere", tmp_path), FilesystemBlobStore)
    assert (tmp_path / "elsewhere" / "uploads").is_dir()

    # An account URL with the key in the environment; the account name is the emulator's first path segment.
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    monkeypatch.setenv("AZURE_STORAGE_KEY", AZURITE_KEY)
    container = f"made{uuid.uuid4().hex[:8]}"
    azure = store_from_url(f"azure://{container}/some/prefix?account_url={azurite.account_url}", tmp_path)
    assert isinstance(azure, AzureBlobStore)
    assert azure.service.get_container_client(container).exists()
    digest = commit_bytes(azure, b"via account key")
    assert azure.download_url(digest, 60) is not None
    blob_names = [b.name for b in azure.service.get_container_client(container).list_blobs()]
    assert blob_names == [f"some/prefix/blobs/sha256/{digest.hex}"]

    _aws_env(monkeypatch)
    bucket = f"made-{uuid.uuid4().hex[:8]}"
    s3 = store_from_url(f"s3://{bucket}?endpoint_url={moto_s3.endpoint_url}", tmp_path)
    assert isinstance(s3, S3BlobStore)
    s3.client.head_bucket(Bucket=bucket)
    digest = commit_bytes(s3, b"no prefix")
    assert [o["Key"] for o in s3.client.list_objects_v2(Bucket=bucket)["Contents"]] == [
        f"blobs/sha256/{digest.hex}"]


@pytest.mark.parametrize("url, message", [
    ("ftp://x", "unknown storage URL scheme"),
    ("file://relative/path", "without a host"),
    ("file:///abs?x=1", "without a host or parameters"),
    ("azure://Bad_Container", "not an Azure container name"),
    ("azure://good?account_url=https://acct.blob.core.windows.net", "AZURE_STORAGE_KEY"),
    ("azure://good", "AZURE_STORAGE_CONNECTION_STRING"),
    ("azure://good?accountkey=x", "unknown storage URL parameter"),
    ("s3://b", "not an S3 bucket name"),
    ("s3://bucket?endpoint_url=ftp://x", "endpoint_url"),
    ("s3://bucket?addressing_style=weird", "addressing_style"),
    ("s3://bucket/a/../b", "bad prefix"),
])
def test_bad_storage_urls_say_what_to_fix(url: str, message: str, monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    for name in ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_KEY", "AZURE_STORAGE_ACCOUNT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(StorageUrlError, match=message):
        store_from_url(url, tmp_path)


def test_redacted_hides_connection_strings() -> None:
    url = "azure://c?connection_string=AccountName%3Da%3BAccountKey%3Dsecret"
    assert "secret" not in redacted(url)
    assert redacted("s3://b/p?endpoint_url=http://h:9000") == "s3://b/p?endpoint_url=http://h:9000"


def test_azure_reads_through_the_public_downloader_too(azurite: Azurite, monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    """Reads stream through the SDK's generated download operation; should a later SDK move it, the public
    downloader takes over with the same results."""
    from cargohold.blobs import azure

    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    store = store_from_url(f"azure://contract/t{uuid.uuid4().hex[:12]}", tmp_path)
    data = os.urandom(10_000)
    digest = commit_bytes(store, data)
    monkeypatch.setattr(azure, "_get_range", azure._public_download)
    assert b"".join(store.read(digest, 4096)) == data
    assert b"".join(store.read(digest, 4096, 100, 5000)) == data[100:5000]
    assert b"".join(store.read(digest, 4096, 9_999)) == data[9_999:]
    assert b"".join(store.read(digest, 4096, 10_000)) == b""
    store.delete(digest)
    with pytest.raises(FileNotFoundError):
        b"".join(store.read(digest, 4096))
