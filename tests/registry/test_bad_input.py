"""Hostile and malformed requests get spec-shaped errors, never a 500, and change nothing."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.support.images import make_image, push_blob, push_image


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


LONG_TAG = "a" * 129


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE"])
def test_a_tag_longer_than_128_characters_is_invalid_not_unknown(client: httpx.Client, method: str) -> None:
    image = make_image("longtag", 1)
    response = client.request(method, f"/v2/bad/long/manifests/{LONG_TAG}", content=image.manifest,
                              headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert response.status_code == 400, response.text
    if method != "HEAD":
        assert response.json()["errors"][0]["code"] == "TAG_INVALID"
    assert client.get(f"/v2/bad/long/manifests/{'a' * 128}").json()["errors"][0]["code"] in ("MANIFEST_UNKNOWN",
                                                                                            "NAME_UNKNOWN")


def test_null_layers_are_an_invalid_manifest(client: httpx.Client) -> None:
    image = make_image("nulllayers", 1)
    push_image(client, "bad/null", "ok", image)
    document = json.loads(image.manifest)
    document["layers"] = None
    response = client.put("/v2/bad/null/manifests/null", content=json.dumps(document),
                          headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["code"] == "MANIFEST_INVALID"
    assert client.get("/v2/bad/null/tags/list").json()["tags"] == ["ok"]


DEEP = ("[" * 1000 + "]" * 1000).encode()


def test_deeply_nested_manifests_and_patches_are_refused(client: httpx.Client) -> None:
    image = make_image("deep", 1)
    push_image(client, "bad/deep", "v1", image)
    response = client.put("/v2/bad/deep/manifests/v2", content=DEEP,
                          headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert response.status_code == 400 and response.json()["errors"][0]["code"] == "MANIFEST_INVALID"
    digest = client.head("/v2/bad/deep/manifests/v1").headers["Docker-Content-Digest"]
    for path in ("/acr/v1/bad/deep", "/acr/v1/bad/deep/_tags/v1", f"/acr/v1/bad/deep/_manifests/{digest}"):
        response = client.patch(path, content=DEEP, headers={"Content-Type": "application/json"})
        assert response.status_code == 400, (path, response.text)
        assert response.json()["errors"][0]["code"] == "UNSUPPORTED"


def test_a_deeply_nested_image_config_does_not_break_the_push(client: httpx.Client) -> None:
    config = b'{"architecture": "amd64", "os": "linux", "x": ' + DEEP + b"}"
    image = make_image("deepconfig", 1)
    document = json.loads(image.manifest)
    document["config"] = {"mediaType": "application/vnd.oci.image.config.v1+json",
                          "digest": push_blob(client, "bad/deepconfig", config), "size": len(config)}
    for layer in image.layers:
        push_blob(client, "bad/deepconfig", layer)
    response = client.put("/v2/bad/deepconfig/manifests/v1", content=json.dumps(document),
                          headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert response.status_code == 201, response.text


def test_an_unprintable_architecture_in_a_config_is_not_recorded(client: httpx.Client) -> None:
    config = json.dumps({"architecture": "amd\u000064", "os": "linux\ud83d\ude00"}).encode()
    image = make_image("nularch", 1)
    document = json.loads(image.manifest)
    document["config"] = {"mediaType": "application/vnd.oci.image.config.v1+json",
                          "digest": push_blob(client, "bad/nularch", config), "size": len(config)}
    for layer in image.layers:
        push_blob(client, "bad/nularch", layer)
    response = client.put("/v2/bad/nularch/manifests/v1", content=json.dumps(document),
                          headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert response.status_code == 201, response.text
    shown = client.get("/acr/v1/bad/nularch/_manifests/v1").json()["manifest"]
    assert (shown["architecture"], shown["os"]) == (None, "linux\U0001f600")


def test_quarantine_details_must_be_storable(client: httpx.Client) -> None:
    digest = push_image(client, "bad/quarantine", "v1", make_image("quarantine", 1))
    for body in ({"quarantineState": "Quaran\u0000tined"}, {"quarantineState": "Passed", "quarantineDetails": "a\u0000"}):
        response = client.patch(f"/acr/v1/bad/quarantine/_manifests/{digest}", content=json.dumps(body),
                                headers={"Content-Type": "application/json"})
        assert response.status_code == 400, response.text
