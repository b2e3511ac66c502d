"""Manifests, tags, listings and referrers through a real server process."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.support.images import OCI_INDEX, OCI_MANIFEST, make_image, push_blob, push_image, sha256

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def test_push_and_pull_by_tag_and_digest(client: httpx.Client) -> None:
    image = make_image("pull")
    digest = push_image(client, "app/web", "v1", image)
    assert digest == image.digest
    for reference in ("v1", digest):
        response = client.get(f"/v2/app/web/manifests/{reference}", headers={"Accept": OCI_MANIFEST})
        assert response.status_code == 200
        assert response.content == image.manifest
        assert response.headers["Content-Type"] == OCI_MANIFEST
        assert response.headers["Docker-Content-Digest"] == digest
        head = client.head(f"/v2/app/web/manifests/{reference}")
        assert head.status_code == 200 and int(head.headers["Content-Length"]) == len(image.manifest)


def test_manifest_needs_its_blobs_in_the_repository(client: httpx.Client) -> None:
    image = make_image("missing")
    push_blob(client, "app/missing", image.config)
    response = client.put("/v2/app/missing/manifests/v1", content=image.manifest,
                          headers={"Content-Type": OCI_MANIFEST})
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN"
    assert client.get("/v2/app/missing/manifests/v1").status_code == 404


def test_declared_sizes_must_match(client: httpx.Client) -> None:
    image = make_image("sizes")
    for blob in [image.config, *image.layers]:
        push_blob(client, "app/sizes", blob)
    document = json.loads(image.manifest)
    document["layers"][0]["size"] += 1
    response = client.put("/v2/app/sizes/manifests/v1", content=json.dumps(document),
                          headers={"Content-Type": OCI_MANIFEST})
    assert response.status_code == 400 and response.json()["errors"][0]["code"] == "MANIFEST_INVALID"


def test_push_by_digest_must_match_the_content(client: httpx.Client) -> None:
    image = make_image("bydigest")
    for blob in [image.config, *image.layers]:
        push_blob(client, "app/bydigest", blob)
    wrong = sha256(b"something else")
    response = client.put(f"/v2/app/bydigest/manifests/{wrong}", content=image.manifest,
                          headers={"Content-Type": OCI_MANIFEST})
    assert response.status_code == 400 and response.json()["errors"][0]["code"] == "DIGEST_INVALID"
    tagged = client.put(f"/v2/app/bydigest/manifests/{image.digest}", params={"tag": ["a", "b"]},
                        content=image.manifest, headers={"Content-Type": OCI_MANIFEST})
    assert tagged.status_code == 201
    assert client.get("/v2/app/bydigest/tags/list").json()["tags"] == ["a", "b"]


def test_oversized_manifest_is_refused_with_413(client: httpx.Client) -> None:
    response = client.put("/v2/app/big/manifests/v1", content=b" " * (4 * 1024 * 1024 + 1),
                          headers={"Content-Type": OCI_MANIFEST})
    assert response.status_code == 413
    assert response.json()["errors"][0]["code"] == "SIZE_INVALID"


def test_content_negotiation_refuses_a_type_the_client_cannot_read(client: httpx.Client) -> None:
    children = [make_image(f"arch{i}", 1) for i in range(2)]
    for i, child in enumerate(children):
        push_image(client, "app/multi", f"child{i}", child)
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": c.digest, "size": len(c.manifest),
         "platform": {"architecture": arch, "os": "linux"}} for c, arch in zip(children, ["amd64", "arm64"])]})
    assert client.put("/v2/app/multi/manifests/latest", content=index,
                      headers={"Content-Type": OCI_INDEX}).status_code == 201
    assert client.get("/v2/app/multi/manifests/latest", headers={"Accept": DOCKER_MANIFEST}).status_code == 404
    both = client.get("/v2/app/multi/manifests/latest", headers=[("Accept", DOCKER_MANIFEST), ("Accept", OCI_INDEX)])
    assert both.status_code == 200 and both.headers["Content-Type"] == OCI_INDEX
    assert client.get("/v2/app/multi/manifests/latest", headers={"Accept": "*/*"}).status_code == 200


def test_index_children_must_exist(client: httpx.Client) -> None:
    ghost = sha256(b"ghost manifest")
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                        "manifests": [{"mediaType": OCI_MANIFEST, "digest": ghost, "size": 10}]})
    response = client.put("/v2/app/ghost/manifests/latest", content=index, headers={"Content-Type": OCI_INDEX})
    assert response.status_code == 400 and response.json()["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN"


def test_delete_by_tag_keeps_the_manifest_and_by_digest_removes_its_tags(client: httpx.Client) -> None:
    image = make_image("delete")
    digest = push_image(client, "app/delete", "one", image)
    push_image(client, "app/delete", "two", image)
    assert client.delete("/v2/app/delete/manifests/one").status_code == 202
    assert client.get("/v2/app/delete/manifests/one").status_code == 404
    assert client.get(f"/v2/app/delete/manifests/{digest}").status_code == 200
    assert client.delete(f"/v2/app/delete/manifests/{digest}").status_code == 202
    assert client.get("/v2/app/delete/manifests/two").status_code == 404
    assert client.get("/v2/app/delete/tags/list").json()["tags"] == []
    assert client.delete(f"/v2/app/delete/manifests/{digest}").status_code == 404


def test_tags_are_paginated_in_lexical_order_with_link_headers(client: httpx.Client) -> None:
    image = make_image("tags", 1)
    push_image(client, "app/tags", "seed", image)
    names = ["B", "a", "a1", "b", "v1.0", "v10", "v2", "_x"]
    for name in names:
        assert client.put(f"/v2/app/tags/manifests/{name}", content=image.manifest,
                          headers={"Content-Type": OCI_MANIFEST}).status_code == 201
    expected = sorted([*names, "seed"])
    collected: list[str] = []
    url: str | None = "/v2/app/tags/tags/list?n=3"
    while url:
        response = client.get(url)
        collected += response.json()["tags"]
        link = response.headers.get("Link")
        url = link[1:link.index(">")] if link else None
    assert collected == expected
    assert client.get("/v2/app/tags/tags/list", params={"last": "a1"}).json()["tags"] == expected[expected.index("a1") + 1:]


def test_catalog_lists_repositories_with_content(client: httpx.Client) -> None:
    for name in ("cat/b", "cat/a", "cat/c/d"):
        push_image(client, name, "v1", make_image(name, 1))
    client.post("/v2/cat/empty/blobs/uploads/")
    repositories = client.get("/v2/_catalog").json()["repositories"]
    assert {"cat/a", "cat/b", "cat/c/d"} <= set(repositories) and "cat/empty" not in repositories
    assert repositories == sorted(repositories)
    first = client.get("/v2/_catalog", params={"n": 1})
    assert len(first.json()["repositories"]) == 1 and 'rel="next"' in first.headers["Link"]


def test_referrers_are_listed_and_filtered_by_artifact_type(client: httpx.Client) -> None:
    subject = make_image("subject")
    subject_digest = push_image(client, "app/refs", "v1", subject)
    empty = push_blob(client, "app/refs", b"{}")
    sbom = push_blob(client, "app/refs", b'{"spdxVersion": "SPDX-2.3"}')
    artifact = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/spdx+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [{"mediaType": "application/spdx+json", "digest": sbom, "size": 27}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject_digest, "size": len(subject.manifest)},
        "annotations": {"org.example.kind": "sbom"},
    }).encode()
    put = client.put(f"/v2/app/refs/manifests/{sha256(artifact)}", content=artifact,
                     headers={"Content-Type": OCI_MANIFEST})
    assert put.status_code == 201 and put.headers["OCI-Subject"] == subject_digest
    listed = client.get(f"/v2/app/refs/referrers/{subject_digest}")
    assert listed.status_code == 200 and listed.headers["Content-Type"] == OCI_INDEX
    [entry] = listed.json()["manifests"]
    assert entry["digest"] == sha256(artifact) and entry["artifactType"] == "application/spdx+json"
    assert entry["annotations"] == {"org.example.kind": "sbom"}
    filtered = client.get(f"/v2/app/refs/referrers/{subject_digest}", params={"artifactType": "application/x-none"})
    assert filtered.json()["manifests"] == [] and filtered.headers["OCI-Filters-Applied"] == "artifactType"
    assert client.get(f"/v2/app/refs/manifests/{sha256(artifact)}").headers["OCI-Subject"] == subject_digest
    nowhere = client.get(f"/v2/nowhere/referrers/{subject_digest}")
    assert nowhere.status_code == 200 and nowhere.json()["manifests"] == []
    assert client.get("/v2/app/refs/referrers/sha256:nope").status_code == 400


def test_concurrent_pushes_to_one_tag_leave_one_winner(client: httpx.Client, server) -> None:
    images = [make_image(f"race{i}", 1) for i in range(8)]
    for image in images:
        for blob in [image.config, *image.layers]:
            push_blob(client, "app/race", blob)

    def put(image_manifest: bytes) -> int:
        with server.client() as own:
            return own.put("/v2/app/race/manifests/latest", content=image_manifest,
                           headers={"Content-Type": OCI_MANIFEST}).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(put, [i.manifest for i in images]))
    assert statuses == [201] * 8
    winner = client.get("/v2/app/race/manifests/latest").headers["Docker-Content-Digest"]
    assert winner in {i.digest for i in images}
    assert client.get("/v2/app/race/tags/list").json()["tags"] == ["latest"]


def test_a_page_of_zero_is_empty_and_has_no_link(client: httpx.Client) -> None:
    push_image(client, "app/zero", "v1", make_image("zero", 1))
    for path in ("/v2/app/zero/tags/list", "/v2/_catalog"):
        response = client.get(path, params={"n": 0})
        assert response.status_code == 200, response.text
        assert "Link" not in response.headers
        assert list(response.json().values())[-1] == []
