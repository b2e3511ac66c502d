"""`cargohold fsck` finds damage a user would hit on pull, and is quiet on a healthy store."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.images import make_image, push_image
from tests.support.server import RunningServer


def blob_file(server: RunningServer, digest: str) -> Path:
    algorithm, hex_digest = digest.split(":")
    return server.data_dir / "storage" / "blobs" / algorithm / hex_digest[:2] / hex_digest


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[RunningServer]:
    """This test damages blob files, so its server keeps them on the filesystem whatever the suite runs on."""
    running = RunningServer(tmp_path / "data", local_store=True).start()
    yield running
    running.stop()


def test_fsck_reports_corrupt_and_missing_blobs(fresh_server: RunningServer) -> None:
    image = make_image("fsck")
    with fresh_server.client() as client:
        push_image(client, "fsck/app", "v1", image)
    fresh_server.stop()
    healthy = fresh_server.fsck()
    assert healthy.returncode == 0 and "0 damaged" in healthy.stdout

    layer_digest = "sha256:" + hashlib.sha256(image.layers[0]).hexdigest()
    path = blob_file(fresh_server, layer_digest)
    path.write_bytes(b"X" + path.read_bytes()[1:])
    config_digest = "sha256:" + hashlib.sha256(image.config).hexdigest()
    blob_file(fresh_server, config_digest).unlink()

    damaged = fresh_server.fsck()
    assert damaged.returncode == 1
    assert f"blob {layer_digest}: content does not match its digest" in damaged.stdout
    assert f"blob {config_digest}: bytes missing from the store" in damaged.stdout
    assert f"needs blob {config_digest}" in damaged.stdout
