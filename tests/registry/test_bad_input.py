"""Hostile and malformed requests get spec-shaped errors, never a 500, and change nothing."""

from __future__ import annotations

import httpx
import pytest

from tests.support.images import make_image, push_image


@pytest.mark.parametrize("method,path,status,code", [
    ("GET", "/v2/UPPER/manifests/latest", 400, "NAME_INVALID"),
    ("GET", "/v2/a..b/tags/list", 400, "NAME_INVALID"),
    ("GET", "/v2/x/blobs/sha256:short", 400, "DIGEST_INVALID"),
    ("GET", "/v2/x/blobs/md5:d41d8cd98f00b204e9800998ecf8427e", 400, "DIGEST_INVALID"),
    ("GET", "/v2/x/manifests/sha256:baddigeststring", 400, "DIGEST_INVALID"),
    ("PUT", "/v2/x/manifests/sha256:baddigeststring", 400, "DIGEST_INVALID"),
    ("GET", "/v2/x/tags/list?n=abc", 400, "PAGINATION_NUMBER_INVALID"),
    ("GET", "/v2/never/tags/list", 404, "NAME_UNKNOWN"),
    ("GET", "/v2/never/manifests/latest", 404, "MANIFEST_UNKNOWN"),
    ("GET", "/v2/x/blobs/uploads/00000000000000000000000000000000", 404, "BLOB_UPLOAD_UNKNOWN"),
    ("GET", "/v2/x/blobs/uploads/..%2f..%2fetc%2fpasswd", 404, "NOT_FOUND"),
    ("PATCH", "/v2/x/blobs/uploads/not-an-id", 404, "BLOB_UPLOAD_UNKNOWN"),
    ("PUT", "/v2/x/blobs/uploads/not-an-id", 400, "DIGEST_INVALID"),
    ("DELETE", "/v2/", 405, "UNSUPPORTED"),
    ("GET", "/v3/", 404, "NOT_FOUND"),
])
def test_bad_requests_get_spec_shaped_errors(client: httpx.Client, method: str, path: str, status: int,
                                             code: str) -> None:
    response = client.request(method, path)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["errors"][0]["code"] == code
    assert set(body["errors"][0]) == {"code", "message", "detail"}
    assert "Traceback" not in response.text


def test_invalid_tag_on_push_is_refused(client: httpx.Client) -> None:
    image = make_image("badtag", 1)
    push_image(client, "bad/tag", "ok", image)
    response = client.put("/v2/bad/tag/manifests/-bad", content=image.manifest,
                          headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert response.status_code == 400
    assert client.get("/v2/bad/tag/tags/list").json()["tags"] == ["ok"]


@pytest.mark.parametrize("body", [b"", b"{", b"null", b'{"schemaVersion": 2}', b"\xff\xfe", b'{"schemaVersion":2,"config":7}'])
def test_garbage_manifests_do_not_disturb_what_is_stored(client: httpx.Client, body: bytes) -> None:
    image = make_image("keep", 1)
    digest = push_image(client, "bad/keep", "latest", image)
    response = client.put("/v2/bad/keep/manifests/latest", content=body,
                          headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "MANIFEST_INVALID"
    assert client.get("/v2/bad/keep/manifests/latest").headers["Docker-Content-Digest"] == digest


def test_malformed_content_range_is_refused(client: httpx.Client) -> None:
    location = client.post("/v2/bad/range/blobs/uploads/").headers["Location"]
    for header in ("abc", "5-1", "-1"):
        response = client.patch(location, content=b"x", headers={"Content-Range": header})
        assert response.status_code == 416
    assert client.get(location).headers["Range"] == "0-0"
