"""Blob uploads and downloads through a real server process."""

from __future__ import annotations

import hashlib
import os

import httpx

from tests.support.images import push_blob, sha256


def start(client: httpx.Client, repository: str) -> str:
    response = client.post(f"/v2/{repository}/blobs/uploads/")
    assert response.status_code == 202
    assert response.headers["Range"] == "0-0"
    assert response.headers["Docker-Upload-UUID"]
    return response.headers["Location"]


def test_base_endpoint_names_the_api_version(client: httpx.Client) -> None:
    response = client.get("/v2/")
    assert response.status_code == 200
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"


def test_monolithic_post_then_put(client: httpx.Client) -> None:
    data = os.urandom(100_000)
    location = start(client, "blobs/mono")
    response = client.put(location, params={"digest": sha256(data)}, content=data)
    assert response.status_code == 201
    assert response.headers["Docker-Content-Digest"] == sha256(data)
    fetched = client.get(response.headers["Location"])
    assert fetched.status_code == 200 and fetched.content == data
    assert fetched.headers["Docker-Content-Digest"] == sha256(data)


def test_chunked_upload_reports_progress_and_refuses_out_of_order_chunks(client: httpx.Client) -> None:
    data = os.urandom(3 * 65536 + 17)
    chunks = [data[i:i + 65536] for i in range(0, len(data), 65536)]
    location = start(client, "blobs/chunked")
    offset = 0
    for chunk in chunks:
        response = client.patch(location, content=chunk, headers={
            "Content-Range": f"{offset}-{offset + len(chunk) - 1}", "Content-Type": "application/octet-stream"})
        assert response.status_code == 202, response.text
        offset += len(chunk)
        assert response.headers["Range"] == f"0-{offset - 1}"
        location = response.headers["Location"]
        if offset == len(chunks[0]):
            stale = client.patch(location, content=b"xx", headers={"Content-Range": "0-1"})
            assert stale.status_code == 416
            assert stale.json()["errors"][0]["code"] == "BLOB_UPLOAD_INVALID"
    status = client.get(location)
    assert status.status_code == 204 and status.headers["Range"] == f"0-{len(data) - 1}"
    done = client.put(location, params={"digest": sha256(data)})
    assert done.status_code == 201
    assert client.get(f"/v2/blobs/chunked/blobs/{sha256(data)}").content == data


def test_sha512_uploads_are_verified_with_sha512(client: httpx.Client) -> None:
    data = os.urandom(5000)
    digest = "sha512:" + hashlib.sha512(data).hexdigest()
    response = client.post("/v2/blobs/sha512/blobs/uploads/", params={"digest": digest}, content=data)
    assert response.status_code == 201
    head = client.head(f"/v2/blobs/sha512/blobs/{digest}")
    assert head.status_code == 200 and head.headers["Docker-Content-Digest"] == digest


def test_digest_mismatch_is_refused_and_stores_nothing(client: httpx.Client) -> None:
    data, other = b"actual bytes", b"other bytes"
    response = client.post("/v2/blobs/mismatch/blobs/uploads/", params={"digest": sha256(other)}, content=data)
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "DIGEST_INVALID"
    assert client.head(f"/v2/blobs/mismatch/blobs/{sha256(other)}").status_code == 404
    assert client.head(f"/v2/blobs/mismatch/blobs/{sha256(data)}").status_code == 404


def test_cancelled_upload_is_gone(client: httpx.Client) -> None:
    location = start(client, "blobs/cancel")
    assert client.delete(location).status_code == 204
    response = client.get(location)
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"


def test_upload_of_another_repository_is_unknown(client: httpx.Client) -> None:
    location = start(client, "blobs/owner")
    foreign = location.replace("/blobs/owner/", "/blobs/intruder/")
    assert client.patch(foreign, content=b"x").status_code == 404


def test_range_requests(client: httpx.Client) -> None:
    data = bytes(range(256)) * 16
    digest = push_blob(client, "blobs/range", data)
    partial = client.get(f"/v2/blobs/range/blobs/{digest}", headers={"Range": "bytes=10-19"})
    assert partial.status_code == 206 and partial.content == data[10:20]
    assert partial.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    beyond = client.get(f"/v2/blobs/range/blobs/{digest}", headers={"Range": f"bytes={len(data)}-{len(data) + 5}"})
    assert beyond.status_code == 416
    backwards = client.get(f"/v2/blobs/range/blobs/{digest}", headers={"Range": "bytes=500-0"})
    assert backwards.status_code == 416
    suffix = client.get(f"/v2/blobs/range/blobs/{digest}", headers={"Range": "bytes=-6"})
    assert suffix.status_code == 206 and suffix.content == data[-6:]


def test_unknown_range_units_are_ignored_and_bad_ranges_refused_in_the_spec_shape(client: httpx.Client) -> None:
    data = bytes(range(256)) * 4
    digest = push_blob(client, "blobs/badrange", data)
    url = f"/v2/blobs/badrange/blobs/{digest}"
    for header in ("items=0-1", "pages=1-"):
        whole = client.get(url, headers={"Range": header})
        assert whole.status_code == 200 and whole.content == data, header
    for header in ("bytes=--1", "bytes=abc", "bytes=-", "bytes=1-2-3", "bytes=5", "bytes 0-1", f"bytes={len(data)}-",
                   "bytes=" + "9" * 5000 + "-"):
        refused = client.get(url, headers={"Range": header})
        assert refused.status_code == 416, header
        assert refused.headers["Content-Type"] == "application/json", header
        assert refused.json()["errors"][0]["code"] == "RANGE_INVALID", header
        assert refused.headers["Content-Range"] == f"bytes */{len(data)}", header
    stale = client.get(url, headers={"Range": "bytes=--1", "If-Range": '"sha256:other"'})
    assert stale.status_code == 200 and stale.content == data, "a stale If-Range means the whole blob"


def test_a_blob_is_visible_only_where_it_was_pushed_or_mounted(client: httpx.Client) -> None:
    data = os.urandom(1000)
    digest = push_blob(client, "blobs/source", data)
    assert client.head(f"/v2/blobs/elsewhere/blobs/{digest}").status_code == 404
    mounted = client.post("/v2/blobs/elsewhere/blobs/uploads/", params={"mount": digest, "from": "blobs/source"})
    assert mounted.status_code == 201
    assert mounted.headers["Location"] == f"/v2/blobs/elsewhere/blobs/{digest}"
    assert client.get(f"/v2/blobs/elsewhere/blobs/{digest}").content == data


def test_mount_without_from_and_fallback_to_an_upload(client: httpx.Client) -> None:
    digest = push_blob(client, "blobs/anywhere", b"mount me anywhere")
    assert client.post("/v2/blobs/automount/blobs/uploads/", params={"mount": digest}).status_code == 201
    unknown = sha256(b"never pushed")
    fallback = client.post("/v2/blobs/automount/blobs/uploads/", params={"mount": unknown, "from": "blobs/anywhere"})
    assert fallback.status_code == 202 and "/blobs/uploads/" in fallback.headers["Location"]


def test_deleting_a_blob_unlinks_it_from_the_repository_only(client: httpx.Client) -> None:
    digest = push_blob(client, "blobs/del-a", b"shared bytes")
    push_blob(client, "blobs/del-b", b"shared bytes")
    assert client.delete(f"/v2/blobs/del-a/blobs/{digest}").status_code == 202
    assert client.head(f"/v2/blobs/del-a/blobs/{digest}").status_code == 404
    assert client.head(f"/v2/blobs/del-b/blobs/{digest}").status_code == 200
    assert client.delete(f"/v2/blobs/del-a/blobs/{digest}").status_code == 404
