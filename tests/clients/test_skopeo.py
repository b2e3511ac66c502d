"""skopeo, a real OCI client, through the real token flow."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.clients.oci_layout import read_layout_manifest, write_image_layout, write_index_layout
from tests.conftest import require_tool
from tests.support.images import make_image
from tests.support.server import RunningServer

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


@pytest.fixture(scope="module")
def skopeo() -> str:
    return require_tool("skopeo")


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def creds(server: RunningServer) -> str:
    client_id, secret = server.credentials
    return f"{client_id}:{secret}"


def test_copies_a_multi_layer_image_in_and_out_with_identical_digests(skopeo: str, server: RunningServer,
                                                                       tmp_path: Path) -> None:
    image = make_image("skopeo-layers", layer_count=4)
    source_digest = write_image_layout(tmp_path / "src", "v1", image)
    pushed = run(skopeo, "copy", "--dest-tls-verify=false", "--dest-creds", creds(server),
                 "--digestfile", str(tmp_path / "digest"), f"oci:{tmp_path / 'src'}:v1",
                 f"docker://{server.host}/skopeo/web:v1")
    assert pushed.returncode == 0, pushed.stderr
    assert (tmp_path / "digest").read_text().strip() == source_digest

    raw = run(skopeo, "inspect", "--raw", "--tls-verify=false", "--creds", creds(server),
              f"docker://{server.host}/skopeo/web:v1")
    assert raw.returncode == 0, raw.stderr
    assert "sha256:" + hashlib.sha256(raw.stdout.encode()).hexdigest() == source_digest

    pulled = run(skopeo, "copy", "--src-tls-verify=false", "--src-creds", creds(server),
                 f"docker://{server.host}/skopeo/web:v1", f"oci:{tmp_path / 'out'}:v1")
    assert pulled.returncode == 0, pulled.stderr
    out_digest, out_manifest = read_layout_manifest(tmp_path / "out")
    assert out_digest == source_digest and out_manifest == image.manifest
    for layer in image.layers:
        blob = tmp_path / "out" / "blobs" / "sha256" / hashlib.sha256(layer).hexdigest()
        assert blob.read_bytes() == layer


def test_copies_a_multi_arch_index_with_all(skopeo: str, server: RunningServer, tmp_path: Path) -> None:
    children = {"amd64": make_image("multi-amd64", 2, "amd64"), "arm64": make_image("multi-arm64", 2, "arm64")}
    index_digest, _ = write_index_layout(tmp_path / "src", "latest", children)
    pushed = run(skopeo, "copy", "--all", "--dest-tls-verify=false", "--dest-creds", creds(server),
                 "--digestfile", str(tmp_path / "digest"), f"oci:{tmp_path / 'src'}:latest",
                 f"docker://{server.host}/skopeo/multi:latest")
    assert pushed.returncode == 0, pushed.stderr
    assert (tmp_path / "digest").read_text().strip() == index_digest
    with server.client() as client:
        head = client.head("/v2/skopeo/multi/manifests/latest",
                           headers={"Accept": "application/vnd.oci.image.index.v1+json"})
        assert head.headers["Docker-Content-Digest"] == index_digest
        for image in children.values():
            child = client.get(f"/v2/skopeo/multi/manifests/{image.digest}")
            assert child.status_code == 200 and child.content == image.manifest
        properties = client.get(f"/acr/v1/skopeo/multi/_manifests/{index_digest}").json()["manifest"]
        assert {(r["architecture"], r["os"]) for r in properties["references"]} == {("amd64", "linux"),
                                                                                  ("arm64", "linux")}


def test_lists_tags_and_deletes(skopeo: str, server: RunningServer, tmp_path: Path) -> None:
    write_image_layout(tmp_path / "src", "v1", make_image("skopeo-tags", 1))
    for tag in ("v1", "v2", "latest"):
        copied = run(skopeo, "copy", "--dest-tls-verify=false", "--dest-creds", creds(server),
                     f"oci:{tmp_path / 'src'}:v1", f"docker://{server.host}/skopeo/tags:{tag}")
        assert copied.returncode == 0, copied.stderr
    listed = run(skopeo, "list-tags", "--tls-verify=false", "--creds", creds(server),
                 f"docker://{server.host}/skopeo/tags")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["Tags"] == ["latest", "v1", "v2"]

    deleted = run(skopeo, "delete", "--tls-verify=false", "--creds", creds(server),
                  f"docker://{server.host}/skopeo/tags:v1")
    assert deleted.returncode == 0, deleted.stderr
    with server.client() as client:
        assert client.get("/v2/skopeo/tags/manifests/v1").status_code == 404
    gone = run(skopeo, "inspect", "--tls-verify=false", "--creds", creds(server),
               f"docker://{server.host}/skopeo/tags:v2")
    assert gone.returncode != 0, "deleting by tag deletes the manifest, so every tag on it is gone"


def test_docker_schema_2_is_stored_as_such(skopeo: str, server: RunningServer, tmp_path: Path) -> None:
    write_image_layout(tmp_path / "src", "v1", make_image("skopeo-v2s2", 2))
    copied = run(skopeo, "copy", "--format", "v2s2", "--dest-tls-verify=false", "--dest-creds", creds(server),
                 f"oci:{tmp_path / 'src'}:v1", f"docker://{server.host}/skopeo/docker:v1")
    assert copied.returncode == 0, copied.stderr
    with server.client() as client:
        response = client.get("/v2/skopeo/docker/manifests/v1", headers={"Accept": DOCKER_MANIFEST})
    assert response.status_code == 200 and response.headers["Content-Type"] == DOCKER_MANIFEST


def test_fails_cleanly_without_credentials(skopeo: str, server: RunningServer, tmp_path: Path) -> None:
    write_image_layout(tmp_path / "src", "v1", make_image("skopeo-anon", 1))
    refused = run(skopeo, "copy", "--dest-tls-verify=false", f"oci:{tmp_path / 'src'}:v1",
                  f"docker://{server.host}/skopeo/anon:v1", env={"REGISTRY_AUTH_FILE": str(tmp_path / "none.json")})
    assert refused.returncode != 0
    assert "unauthorized" in refused.stderr.lower() or "authentication required" in refused.stderr.lower()
    with server.client() as client:
        assert client.get("/v2/skopeo/anon/tags/list").status_code == 404


def test_login_file_written_by_cargohold_login(skopeo: str, server: RunningServer, tmp_path: Path) -> None:
    auth_file = tmp_path / "auth.json"
    client_id, secret = server.credentials
    login = subprocess.run(
        [sys.executable, "-m", "cargohold", "login", server.host, "-u", client_id, "--password-stdin"],
        input=secret + "\n", capture_output=True, text=True, timeout=60,
        env={**os.environ, "REGISTRY_AUTH_FILE": str(auth_file)})
    assert login.returncode == 0, login.stderr
    assert (auth_file.stat().st_mode & 0o777) == 0o600
    write_image_layout(tmp_path / "src", "v1", make_image("skopeo-login", 1))
    copied = run(skopeo, "copy", "--dest-tls-verify=false", f"oci:{tmp_path / 'src'}:v1",
                 f"docker://{server.host}/skopeo/login:v1", env={"REGISTRY_AUTH_FILE": str(auth_file)})
    assert copied.returncode == 0, copied.stderr

    wrong = subprocess.run([sys.executable, "-m", "cargohold", "login", server.host, "-u", client_id, "-p", "wrong"],
                           capture_output=True, text=True, timeout=60,
                           env={**os.environ, "REGISTRY_AUTH_FILE": str(tmp_path / "other.json")})
    assert wrong.returncode == 1 and "refused" in wrong.stderr
    assert not (tmp_path / "other.json").exists()


def test_a_pull_only_token_for_app_star(skopeo: str, server: RunningServer, tmp_path: Path) -> None:
    """A token scoped to app/* with pull only pulls app/web, and can neither push it nor pull other/x."""
    write_image_layout(tmp_path / "src", "v1", make_image("skopeo-scoped", 1))
    for target in ("app/web:v1", "other/x:v1"):
        seeded = run(skopeo, "copy", "--dest-tls-verify=false", "--dest-creds", creds(server),
                     f"oci:{tmp_path / 'src'}:v1", f"docker://{server.host}/{target}")
        assert seeded.returncode == 0, seeded.stderr

    def cargohold(*args: str) -> dict[str, object]:
        done = subprocess.run([sys.executable, "-m", "cargohold", *args, "--data-dir", str(server.data_dir), "-o", "json"],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    cargohold("scope-map", "create", "--scope-map-name", "apppull", "--repository", "app/* content/read")
    token = cargohold("token", "create", "-t", "apppuller", "--scope-map", "apppull")
    token_creds = f"apppuller:{token['passwords'][0]['value']}"  # type: ignore[index]

    pulled = run(skopeo, "copy", "--src-tls-verify=false", "--src-creds", token_creds,
                 f"docker://{server.host}/app/web:v1", f"oci:{tmp_path / 'pulled'}:v1")
    assert pulled.returncode == 0, pulled.stderr
    pushed = run(skopeo, "copy", "--dest-tls-verify=false", "--dest-creds", token_creds,
                 f"oci:{tmp_path / 'src'}:v1", f"docker://{server.host}/app/web:v2")
    assert pushed.returncode != 0
    other = run(skopeo, "copy", "--src-tls-verify=false", "--src-creds", token_creds,
                f"docker://{server.host}/other/x:v1", f"oci:{tmp_path / 'other'}:v1")
    assert other.returncode != 0
    with server.client() as client:
        assert client.get("/v2/app/web/manifests/v2").status_code == 404
        response = httpx.get(f"{server.url}/v2/other/x/manifests/v1", auth=("apppuller", token_creds.split(":")[1]))
        assert response.status_code == 403 and response.json()["errors"][0]["code"] == "DENIED"
