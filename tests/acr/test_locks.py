"""Locks hold on every path: skopeo over /v2/ meets the same refusals as the /acr/v1 API."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.clients.oci_layout import write_image_layout
from tests.conftest import require_tool
from tests.support.images import OCI_INDEX, OCI_MANIFEST, make_image, push_image, sha256
from tests.support.server import RunningServer


@pytest.fixture(scope="module")
def skopeo() -> str:
    return require_tool("skopeo")


def skopeo_push(skopeo: str, server: RunningServer, layout: Path, target: str) -> subprocess.CompletedProcess[str]:
    client_id, secret = server.credentials
    return subprocess.run([skopeo, "copy", "--dest-tls-verify=false", "--dest-creds", f"{client_id}:{secret}",
                           f"oci:{layout}:v1", f"docker://{server.host}/{target}"],
                          capture_output=True, text=True, timeout=120)


def test_skopeo_cannot_overwrite_a_write_locked_tag(skopeo: str, server: RunningServer, client: httpx.Client,
                                                    tmp_path: Path) -> None:
    original = push_image(client, "locks/web", "stable", make_image("locked-original", 1))
    assert client.patch("/acr/v1/locks/web/_tags/stable", json={"writeEnabled": False}).status_code == 200
    write_image_layout(tmp_path / "new", "v1", make_image("locked-replacement", 2))
    refused = skopeo_push(skopeo, server, tmp_path / "new", "locks/web:stable")
    assert refused.returncode != 0
    assert "disallowed" in refused.stderr.lower() or "denied" in refused.stderr.lower()
    assert client.get("/v2/locks/web/manifests/stable").headers["Docker-Content-Digest"] == original
    assert client.get("/acr/v1/locks/web/_tags/stable").json()["tag"]["digest"] == original

    other_tag = skopeo_push(skopeo, server, tmp_path / "new", "locks/web:other")
    assert other_tag.returncode == 0, "only the locked tag is protected"

    assert client.delete("/v2/locks/web/manifests/stable").status_code == 403
    assert client.delete(f"/v2/locks/web/manifests/{original}").status_code == 403
    assert client.patch("/acr/v1/locks/web/_tags/stable", json={"deleteEnabled": False}).status_code == 403, \
        "a write-locked tag accepts only unlocking"
    assert client.patch("/acr/v1/locks/web/_tags/stable", json={"writeEnabled": True}).status_code == 200
    assert skopeo_push(skopeo, server, tmp_path / "new", "locks/web:stable").returncode == 0


def test_delete_locked_manifest(client: httpx.Client) -> None:
    digest = push_image(client, "locks/keep", "v1", make_image("delete-locked", 1))
    client.patch(f"/acr/v1/locks/keep/_manifests/{digest}", json={"deleteEnabled": False})
    response = client.delete(f"/v2/locks/keep/manifests/{digest}")
    assert response.status_code == 403 and response.json()["errors"][0]["code"] == "DENIED"
    assert client.delete("/acr/v1/locks/keep").status_code == 403
    assert client.get(f"/v2/locks/keep/manifests/{digest}").status_code == 200
    replacement = make_image("delete-locked-2", 1)
    push_image(client, "locks/keep", "v2", replacement)
    assert client.put("/v2/locks/keep/manifests/v1", content=replacement.manifest,
                      headers={"Content-Type": OCI_MANIFEST}).status_code == 201, "delete lock does not stop updates"


def test_read_and_list_locks(client: httpx.Client) -> None:
    push_image(client, "locks/hidden", "visible", make_image("visible", 1))
    hidden = push_image(client, "locks/hidden", "secret", make_image("secret", 1))
    client.patch("/acr/v1/locks/hidden/_tags/secret", json={"listEnabled": False})
    assert client.get("/v2/locks/hidden/tags/list").json()["tags"] == ["visible"]
    assert [t["name"] for t in client.get("/acr/v1/locks/hidden/_tags").json()["tags"]] == ["visible"]
    assert client.get("/v2/locks/hidden/manifests/secret").status_code == 200, "unlisted is still readable"
    client.patch(f"/acr/v1/locks/hidden/_manifests/{hidden}", json={"readEnabled": False})
    refused = client.get("/v2/locks/hidden/manifests/secret")
    assert refused.status_code == 403 and refused.json()["errors"][0]["code"] == "DENIED"
    client.patch("/acr/v1/locks/hidden", json={"listEnabled": False})
    assert "locks/hidden" not in client.get("/v2/_catalog").json()["repositories"]
    client.patch("/acr/v1/locks/hidden", json={"readEnabled": False})
    assert client.get("/v2/locks/hidden/manifests/visible").status_code == 403


def test_write_locked_repository_takes_no_pushes(client: httpx.Client) -> None:
    push_image(client, "locks/frozen", "v1", make_image("frozen", 1))
    client.patch("/acr/v1/locks/frozen", json={"writeEnabled": False})
    assert client.post("/v2/locks/frozen/blobs/uploads/").status_code == 403
    image = make_image("frozen-2", 1)
    assert client.put("/v2/locks/frozen/manifests/v2", content=image.manifest,
                      headers={"Content-Type": OCI_MANIFEST}).status_code in (400, 403)
    assert client.get("/v2/locks/frozen/tags/list").json()["tags"] == ["v1"]


def _index(*children: tuple[str, int]) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": digest, "size": size,
         "platform": {"architecture": f"arch{i}", "os": "linux"}} for i, (digest, size) in enumerate(children)]}
    ).encode()


def test_locked_image_keeps_its_blobs(client: httpx.Client) -> None:
    image = make_image("blob-locked", 2)
    digest = push_image(client, "locks/layers", "stable", image)
    layer = sha256(image.layers[0])
    client.patch("/acr/v1/locks/layers/_tags/stable", json={"writeEnabled": False, "deleteEnabled": False})
    refused = client.delete(f"/v2/locks/layers/blobs/{layer}")
    assert refused.status_code == 403 and refused.json()["errors"][0]["code"] == "DENIED"
    assert client.get(f"/v2/locks/layers/blobs/{layer}").content == image.layers[0]

    client.patch("/acr/v1/locks/layers/_tags/stable", json={"writeEnabled": True, "deleteEnabled": True})
    client.patch(f"/acr/v1/locks/layers/_manifests/{digest}", json={"deleteEnabled": False})
    assert client.delete(f"/v2/locks/layers/blobs/{sha256(image.config)}").status_code == 403
    client.patch(f"/acr/v1/locks/layers/_manifests/{digest}", json={"deleteEnabled": True})
    assert client.delete(f"/v2/locks/layers/blobs/{layer}").status_code == 202, "unlocked: the spec's delete"


def test_locked_index_keeps_its_children_and_their_blobs(client: httpx.Client) -> None:
    child = make_image("index-child", 1)
    child_digest = push_image(client, "locks/multi", child.digest, child)
    index = _index((child_digest, len(child.manifest)))
    assert client.put("/v2/locks/multi/manifests/v1", content=index,
                      headers={"Content-Type": OCI_INDEX}).status_code == 201
    client.patch("/acr/v1/locks/multi/_tags/v1", json={"deleteEnabled": False})
    assert client.delete(f"/v2/locks/multi/manifests/{child_digest}").status_code == 403
    assert client.delete(f"/v2/locks/multi/blobs/{sha256(child.layers[0])}").status_code == 403
    assert client.get(f"/v2/locks/multi/manifests/{child_digest}").status_code == 200


def test_upload_cannot_finish_after_the_repository_is_write_locked(client: httpx.Client) -> None:
    push_image(client, "locks/late", "v1", make_image("late", 1))
    data = b"late bytes" * 100
    started = client.post("/v2/locks/late/blobs/uploads/")
    assert started.status_code == 202
    location = started.headers["Location"]
    assert client.patch(location, content=data).status_code == 202
    client.patch("/acr/v1/locks/late", json={"writeEnabled": False})
    refused = client.put(location, params={"digest": sha256(data)})
    assert refused.status_code == 403 and refused.json()["errors"][0]["code"] == "DENIED"
    assert client.head(f"/v2/locks/late/blobs/{sha256(data)}").status_code == 404
    client.patch("/acr/v1/locks/late", json={"writeEnabled": True})
    assert client.put(location, params={"digest": sha256(data)}).status_code == 201, "the upload is kept"
