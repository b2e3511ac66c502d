"""SIGKILL the server in the middle of uploads; after a restart nothing partial is visible and fsck is clean."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator

import httpx

from tests.support.images import sha256
from tests.support.server import RunningServer

MiB = 1024 * 1024


def slow_body(data: bytes, piece: int, started: threading.Event) -> Iterator[bytes]:
    for offset in range(0, len(data), piece):
        yield data[offset:offset + piece]
        started.set()
        time.sleep(0.02)


def send_in_background(method: str, url: str, body: Iterator[bytes], auth: tuple[str, str],
                       **kwargs: object) -> threading.Thread:
    def run() -> None:
        try:
            httpx.request(method, url, content=body, timeout=30, auth=auth, **kwargs)  # type: ignore[arg-type]
        except httpx.HTTPError:
            pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_kill_during_uploads_leaves_no_partial_blob_and_uploads_resume(fresh_server: RunningServer) -> None:
    server = fresh_server
    client = server.client()
    data = os.urandom(12 * MiB)
    digest = sha256(data)

    location = client.post("/v2/crash/chunked/blobs/uploads/").headers["Location"]
    first = client.patch(location, content=data[:MiB], headers={"Content-Range": f"0-{MiB - 1}"})
    assert first.status_code == 202

    chunk_started, mono_started = threading.Event(), threading.Event()
    chunk_thread = send_in_background(
        "PATCH", server.url + location, slow_body(data[MiB:], 256 * 1024, chunk_started), server.credentials,
        headers={"Content-Range": f"{MiB}-{len(data) - 1}"})
    mono_thread = send_in_background(
        "POST", f"{server.url}/v2/crash/mono/blobs/uploads/?digest={digest}",
        slow_body(data, 256 * 1024, mono_started), server.credentials)
    assert chunk_started.wait(10) and mono_started.wait(10)
    time.sleep(0.3)
    server.kill()
    chunk_thread.join(10)
    mono_thread.join(10)

    server.start()
    client = server.client()
    assert client.head(f"/v2/crash/mono/blobs/{digest}").status_code == 404
    assert client.head(f"/v2/crash/chunked/blobs/{digest}").status_code == 404

    status = client.get(location)
    assert status.status_code == 204
    assert status.headers["Range"] == f"0-{MiB - 1}", "only acknowledged bytes survive the crash"
    resumed = client.patch(location, content=data[MiB:], headers={"Content-Range": f"{MiB}-{len(data) - 1}"})
    assert resumed.status_code == 202
    done = client.put(resumed.headers["Location"], params={"digest": digest})
    assert done.status_code == 201
    assert hashlib.sha256(client.get(f"/v2/crash/chunked/blobs/{digest}").content).hexdigest() == digest[7:]

    restarted_mono = client.post("/v2/crash/mono/blobs/uploads/", params={"digest": digest}, content=data)
    assert restarted_mono.status_code == 201

    server.stop()
    report = server.fsck()
    assert report.returncode == 0, report.stdout
    assert "0 damaged" in report.stdout


def test_uploads_survive_a_clean_restart(fresh_server: RunningServer) -> None:
    client = fresh_server.client()
    data = os.urandom(300_000)
    location = client.post("/v2/restart/app/blobs/uploads/").headers["Location"]
    client.patch(location, content=data[:100_000], headers={"Content-Range": "0-99999"})
    fresh_server.stop()
    fresh_server.start()
    client = fresh_server.client()
    response = client.put(location, params={"digest": sha256(data)}, content=data[100_000:],
                          headers={"Content-Range": f"100000-{len(data) - 1}"})
    assert response.status_code == 201
    assert client.get(f"/v2/restart/app/blobs/{sha256(data)}").content == data
