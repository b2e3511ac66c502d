"""The upload pipeline (hashing and writing at once) and the per-upload lease, on every blob store.

One server per store (filesystem, Azure Blob on Azurite, S3 on moto's server), each with its own data
directory; the properties an upload must keep are checked through HTTP on each: a digest mismatch is
refused and stores nothing, an interrupted chunk leaves the upload at its last acknowledged byte and it
resumes from there, a crash mid-push leaves no blob, and a second request writing to an upload while
another one does is refused (the lease) instead of interleaving bytes.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest

from tests.blobs.conftest import Azurite, MotoS3, azurite, moto_s3  # noqa: F401 - fixtures used by name
from tests.support.images import sha256
from tests.support.server import RunningServer

MiB = 1024 * 1024
STORES = ["filesystem", "azure", "s3"]


@pytest.fixture(scope="module", params=STORES)
def store_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[RunningServer]:
    data_dir = tmp_path_factory.mktemp(f"pipeline-{request.param}") / "data"
    prefix = uuid.uuid4().hex[:12]
    with pytest.MonkeyPatch.context() as patch:
        if request.param == "filesystem":
            storage_url = f"file://{quote(str(data_dir.parent / 'blobs'))}"
        elif request.param == "azure":
            emulator: Azurite = request.getfixturevalue("azurite")
            patch.setenv("AZURE_STORAGE_CONNECTION_STRING", emulator.connection_string)
            storage_url = f"azure://pipeline/{prefix}"
        else:
            moto: MotoS3 = request.getfixturevalue("moto_s3")
            for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION"):
                patch.delenv(name, raising=False)
            patch.setenv("AWS_ACCESS_KEY_ID", "testing")
            patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
            patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
            storage_url = f"s3://pipeline/{prefix}?endpoint_url={moto.endpoint_url}&region=us-east-1"
        running = RunningServer(data_dir, storage_url=storage_url, extra_args=["--blob-downloads", "proxy"])
        running.start(timeout=60)
        yield running
        running.stop()


@pytest.fixture
def client(store_server: RunningServer) -> Iterator[httpx.Client]:
    with store_server.client() as http:
        yield http


def slow_body(data: bytes, piece: int, started: threading.Event, pause: float = 0.05) -> Iterator[bytes]:
    for offset in range(0, len(data), piece):
        yield data[offset:offset + piece]
        started.set()
        time.sleep(pause)


def in_background(method: str, url: str, body: Iterator[bytes], auth: tuple[str, str],
                  **kwargs: object) -> tuple[threading.Thread, list[httpx.Response]]:
    answers: list[httpx.Response] = []

    def run() -> None:
        try:
            answers.append(httpx.request(method, url, content=body, timeout=60,
                                         auth=auth, **kwargs))  # type: ignore[arg-type]
        except httpx.HTTPError:
            pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, answers


def test_large_pushes_in_every_shape_arrive_whole(client: httpx.Client) -> None:
    """Bodies of many batches, monolithic, single-POST and in uneven chunks, are stored byte for byte."""
    data = os.urandom(21 * MiB + 12345)
    digest = sha256(data)
    location = client.post("/v2/pipe/mono/blobs/uploads/").headers["Location"]
    assert client.put(location, params={"digest": digest}, content=data).status_code == 201
    single = client.post("/v2/pipe/single/blobs/uploads/", params={"digest": digest}, content=data)
    assert single.status_code == 201

    location = client.post("/v2/pipe/chunked/blobs/uploads/").headers["Location"]
    offset = 0
    for size in (3 * MiB + 7, 9 * MiB, 1, 5 * MiB - 8):
        answer = client.patch(location, content=data[offset:offset + size],
                              headers={"Content-Range": f"{offset}-{offset + size - 1}"})
        assert answer.status_code == 202, answer.text
        offset += size
        location = answer.headers["Location"]
    assert client.put(location, params={"digest": digest}, content=data[offset:],
                      headers={"Content-Range": f"{offset}-{len(data) - 1}"}).status_code == 201
    for repository in ("mono", "single", "chunked"):
        got = client.get(f"/v2/pipe/{repository}/blobs/{digest}")
        assert got.status_code == 200
        assert hashlib.sha256(got.content).hexdigest() == digest[7:]


def test_digest_mismatch_is_refused_and_stores_nothing(client: httpx.Client) -> None:
    data = os.urandom(9 * MiB)
    wrong = sha256(data + b"x")
    refused = client.post("/v2/pipe/mismatch/blobs/uploads/", params={"digest": wrong}, content=data)
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["code"] == "DIGEST_INVALID"
    location = client.post("/v2/pipe/mismatch/blobs/uploads/").headers["Location"]
    whole = client.patch(location, content=data, headers={"Content-Range": f"0-{len(data) - 1}"})
    assert whole.status_code == 202
    assert client.put(location, params={"digest": wrong}).status_code == 400
    assert client.head(f"/v2/pipe/mismatch/blobs/{wrong}").status_code == 404
    assert client.head(f"/v2/pipe/mismatch/blobs/{sha256(data)}").status_code == 404


def test_an_interrupted_chunk_leaves_the_last_acknowledged_byte(client: httpx.Client) -> None:
    data = os.urandom(10 * MiB)
    location = client.post("/v2/pipe/resume/blobs/uploads/").headers["Location"]
    first = client.patch(location, content=data[:MiB], headers={"Content-Range": f"0-{MiB - 1}"})
    assert first.status_code == 202
    short = client.patch(first.headers["Location"], content=iter([data[MiB:4 * MiB], data[4 * MiB:6 * MiB]]),
                         headers={"Content-Range": f"{MiB}-{len(data) - 1}"})
    assert short.status_code == 400, "5 of the 9 MiB announced arrived (written, never acknowledged)"
    status = client.get(location)
    assert status.status_code == 204 and status.headers["Range"] == f"0-{MiB - 1}"
    resumed = client.patch(location, content=data[MiB:], headers={"Content-Range": f"{MiB}-{len(data) - 1}"})
    assert resumed.status_code == 202, resumed.text
    assert client.put(resumed.headers["Location"], params={"digest": sha256(data)}).status_code == 201
    assert client.get(f"/v2/pipe/resume/blobs/{sha256(data)}").content == data


def test_a_second_writer_to_an_upload_is_refused_while_one_writes(store_server: RunningServer,
                                                                   client: httpx.Client) -> None:
    data = os.urandom(4 * MiB)
    location = client.post("/v2/pipe/race/blobs/uploads/").headers["Location"]
    started = threading.Event()
    thread, answers = in_background(
        "PATCH", store_server.url + location, slow_body(data, 128 * 1024, started, pause=0.08),
        store_server.credentials, headers={"Content-Range": f"0-{len(data) - 1}", "Content-Length": str(len(data))})
    assert started.wait(10)
    time.sleep(0.3)
    second = client.patch(location, content=data, headers={"Content-Range": f"0-{len(data) - 1}"})
    assert second.status_code == 409
    assert second.json()["errors"][0]["code"] == "BLOB_UPLOAD_INVALID"
    completing = client.put(location, params={"digest": sha256(data)}, content=data,
                            headers={"Content-Range": f"0-{len(data) - 1}"})
    assert completing.status_code == 409
    thread.join(30)
    assert answers and answers[0].status_code == 202, answers and answers[0].text
    assert client.get(location).headers["Range"] == f"0-{len(data) - 1}"
    late = client.patch(location, content=data, headers={"Content-Range": f"0-{len(data) - 1}"})
    assert late.status_code == 416, "once the first writer is done, a stale chunk is out of order"
    assert client.put(location, params={"digest": sha256(data)}).status_code == 201
    assert client.get(f"/v2/pipe/race/blobs/{sha256(data)}").content == data


def test_a_crash_mid_push_leaves_no_blob_and_the_upload_resumes(store_server: RunningServer) -> None:
    client = store_server.client()
    data = os.urandom(8 * MiB)
    digest = sha256(data)
    location = client.post("/v2/pipe/crash/blobs/uploads/").headers["Location"]
    first = client.patch(location, content=data[:MiB], headers={"Content-Range": f"0-{MiB - 1}"})
    assert first.status_code == 202
    client.close()
    started = threading.Event()
    thread, _ = in_background(
        "PATCH", store_server.url + location, slow_body(data[MiB:], 256 * 1024, started),
        store_server.credentials, headers={"Content-Range": f"{MiB}-{len(data) - 1}", "Content-Length": str(len(data) - MiB)})
    mono_started = threading.Event()
    mono, _ = in_background("POST", f"{store_server.url}/v2/pipe/crash-mono/blobs/uploads/?digest={digest}",
                            slow_body(data, 256 * 1024, mono_started), store_server.credentials,
                            headers={"Content-Length": str(len(data))})
    assert started.wait(10) and mono_started.wait(10)
    time.sleep(0.4)
    store_server.kill()
    thread.join(10)
    mono.join(10)
    store_server.start(timeout=60)
    with store_server.client() as client:
        assert client.head(f"/v2/pipe/crash/blobs/{digest}").status_code == 404
        assert client.head(f"/v2/pipe/crash-mono/blobs/{digest}").status_code == 404
        status = client.get(location)
        assert status.status_code == 204 and status.headers["Range"] == f"0-{MiB - 1}"
        resumed = client.patch(location, content=data[MiB:],
                               headers={"Content-Range": f"{MiB}-{len(data) - 1}"})
        assert resumed.status_code == 202, "the dead server's lease does not hold up the resumed upload"
        assert client.put(resumed.headers["Location"], params={"digest": digest}).status_code == 201
        assert client.get(f"/v2/pipe/crash/blobs/{digest}").content == data
