"""One copy between two stores, in process: resumed from what a dead worker staged, verified by digest."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from cargohold.blobs.filesystem import FilesystemBlobStore
from cargohold.jobs.worker import JobFailed
from cargohold.oci.digest import Digest
from cargohold.replication.copying import Replicator, _upload_id

pytestmark = pytest.mark.backend_independent


class Stores:
    own_region = "west"

    def __init__(self, stores: dict[str, Any]) -> None:
        self.stores = stores

    def get(self, region: str) -> Any:
        return self.stores[region]


class CountingStore(FilesystemBlobStore):
    """Remembers where each read started."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.starts: list[int] = []

    def read(self, digest: Digest, chunk_size: int, start: int = 0, end: int | None = None) -> Any:
        self.starts.append(start)
        return super().read(digest, chunk_size, start, end)


def _stored(store: FilesystemBlobStore, data: bytes) -> Digest:
    digest = Digest("sha256", hashlib.sha256(data).hexdigest())
    upload = os.urandom(16).hex()
    store.start_upload(upload)
    writer = store.open_upload(upload, 0)
    writer.write([data])
    writer.finish()
    writer.close()
    store.commit(upload, digest)
    return digest


def _stage(store: FilesystemBlobStore, upload: str, data: bytes) -> None:
    store.start_upload(upload)
    writer = store.open_upload(upload, 0)
    writer.write([data])
    writer.finish()
    writer.close()


def test_an_interrupted_copy_continues_where_it_stopped(tmp_path: Path) -> None:
    source, target = CountingStore(tmp_path / "west"), FilesystemBlobStore(tmp_path / "east")
    data = os.urandom(3_000_000)
    digest = _stored(source, data)
    _stage(target, _upload_id(str(digest), "east"), data[:1_000_000])
    Replicator(None, Stores({"west": source, "east": target}))._transfer(digest, ["west"], target, "east")  # type: ignore[arg-type]
    assert source.starts == [1_000_000]
    assert b"".join(target.read(digest, 1 << 20)) == data


def test_a_copy_that_does_not_match_its_digest_is_discarded_and_done_again(tmp_path: Path) -> None:
    source, target = FilesystemBlobStore(tmp_path / "west"), FilesystemBlobStore(tmp_path / "east")
    data = os.urandom(500_000)
    digest = _stored(source, data)
    upload = _upload_id(str(digest), "east")
    _stage(target, upload, b"garbage" + data[7:100_000])
    replicator = Replicator(None, Stores({"west": source, "east": target}))  # type: ignore[arg-type]
    with pytest.raises(JobFailed, match="did not match"):
        replicator._transfer(digest, ["west"], target, "east")
    assert target.stat(digest) is None and target.upload_size(upload) is None
    replicator._transfer(digest, ["west"], target, "east")
    assert b"".join(target.read(digest, 1 << 20)) == data
