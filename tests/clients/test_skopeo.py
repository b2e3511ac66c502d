"""skopeo (the Debian package), a real OCI client, against a real server over plain HTTP and the token flow.

Source images are OCI layouts written on disk by tests/clients/oci_layout.py; what comes back out of the
registry is compared byte for byte with what went in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.clients.oci_layout import (
    blob_path,
    read_layout_manifest,
    write_image_layout,
    write_index_layout,
)
from tests.conftest import require_tool
from tests.support.images import (
    OCI_INDEX,
    OCI_MANIFEST,
    Image,
    image_from_layers,
    layer_tarball,
    make_image,
    sha256,
)
from tests.support.server import RunningServer

pytestmark = pytest.mark.clients

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


@pytest.fixture(scope="module")
def skopeo() -> str:
    return require_tool("skopeo")


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), check=False, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def creds(server: RunningServer) -> str:
    client_id, secret = server.credentials
    return f"{client_id}:{secret}"


def push(skopeo: str, server: RunningServer, source: str, target: str, *options: str) -> None:
    """`skopeo copy` from a local source to `docker://<server>/<target>`, as the Owner."""
    done = run(skopeo, "copy", "--dest-tls-verify=false", "--dest-creds", creds(server), *options, source,
               f"docker://{server.host}/{target}")
    assert done.returncode == 0, done.stderr


def inspect_raw(skopeo: str, server: RunningServer, target: str) -> bytes:
    """The manifest bytes exactly as skopeo received them."""
    done = subprocess.run([skopeo, "inspect", "--raw", "--tls-verify=false", "--creds", creds(server),
                           f"docker://{server.host}/{target}"], check=False, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def sized_image() -> Image:
    """Four layers, one of them 4 MiB of incompressible bytes so that uploads stream in more than one read."""
    layers = [layer_tarball({f"layer{i}/file.txt": f"layer {i}\n".encode() * (i + 1)}) for i in range(3)]
    layers.append(layer_tarball({"big/random.bin": os.urandom(4 * 1024 * 1024)}))
    return image_from_layers(layers)


def test_multi_layer_image_round_trips_with_identical_digest_and_blobs(skopeo: str, server: RunningServer,
                                                                        tmp_path: Path) -> None:
    image = sized_image()
    source_digest = write_image_layout(tmp_path / "src", "v1", image)
    push(skopeo, server, f"oci:{tmp_path / 'src'}:v1", "app/web:v1",
         "--preserve-digests", "--digestfile", str(tmp_path / "digest"))

    assert (tmp_path / "digest").read_text().strip() == source_digest
    raw = inspect_raw(skopeo, server, "app/web:v1")
    assert raw == image.manifest and sha256(raw) == source_digest
    with server.client() as client:
        head = client.head("/v2/app/web/manifests/v1", headers={"Accept": OCI_MANIFEST})
        assert head.status_code == 200 and head.headers["Docker-Content-Digest"] == source_digest
        for blob in [image.config, *image.layers]:
            assert client.get(f"/v2/app/web/blobs/{sha256(blob)}").content == blob

    for destination in (f"oci:{tmp_path / 'out'}:v1", f"dir:{tmp_path / 'dir'}"):
        pulled = run(skopeo, "copy", "--src-tls-verify=false", "--src-creds", creds(server),
                     f"docker://{server.host}/app/web:v1", destination)
        assert pulled.returncode == 0, pulled.stderr

    out_digest, out_manifest = read_layout_manifest(tmp_path / "out")
    assert out_digest == source_digest and out_manifest == image.manifest
    assert (tmp_path / "dir" / "manifest.json").read_bytes() == image.manifest
    for blob in [image.config, *image.layers]:
        assert blob_path(tmp_path / "out", sha256(blob)).read_bytes() == blob
        assert (tmp_path / "dir" / sha256(blob).removeprefix("sha256:")).read_bytes() == blob


def test_copy_between_repositories_mounts_the_blobs(skopeo: str, server: RunningServer,
                                                    tmp_path: Path) -> None:
    """skopeo asks to mount blobs it has seen in another repository of the registry instead of uploading."""
    image = make_image("skopeo-mount", 3)
    write_image_layout(tmp_path, "v1", image)
    push(skopeo, server, f"oci:{tmp_path}:v1", "mount/src:v1")  # skopeo records where it put each blob
    copied = run(skopeo, "--debug", "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
                 "--src-creds", creds(server), "--dest-creds", creds(server),
                 f"docker://{server.host}/mount/src:v1", f"docker://{server.host}/mount/dst:v1")
    assert copied.returncode == 0, copied.stderr
    assert copied.stderr.count("mount OK") == len(image.layers), "every layer mounted, none uploaded"
    assert inspect_raw(skopeo, server, "mount/dst:v1") == image.manifest
    with server.client() as client:
        for layer in image.layers:
            assert client.get(f"/v2/mount/dst/blobs/{sha256(layer)}").content == layer


def test_multi_arch_index_copied_with_all_keeps_its_digest(skopeo: str, server: RunningServer,
                                                           tmp_path: Path) -> None:
    children = {architecture: make_image(f"multi-{architecture}", 2, architecture)
                for architecture in ("amd64", "arm64")}
    index_digest, index = write_index_layout(tmp_path / "src", "latest", children)
    push(skopeo, server, f"oci:{tmp_path / 'src'}:latest", "app/multi:latest",
         "--all", "--preserve-digests", "--digestfile", str(tmp_path / "digest"))

    assert (tmp_path / "digest").read_text().strip() == index_digest
    assert inspect_raw(skopeo, server, "app/multi:latest") == index
    with httpx.Client(base_url=server.url, auth=server.credentials, timeout=30) as client:
        by_tag = client.get("/v2/app/multi/manifests/latest", headers={"Accept": OCI_INDEX})
        assert by_tag.status_code == 200 and by_tag.headers["Content-Type"] == OCI_INDEX
        assert by_tag.headers["Docker-Content-Digest"] == index_digest and by_tag.content == index
        for image in children.values():
            child = client.get(f"/v2/app/multi/manifests/{image.digest}", headers={"Accept": OCI_MANIFEST})
            assert child.status_code == 200 and child.content == image.manifest
            assert child.headers["Docker-Content-Digest"] == image.digest
            assert client.head(f"/v2/app/multi/blobs/{sha256(image.config)}").status_code == 200
        properties = client.get(f"/acr/v1/app/multi/_manifests/{index_digest}").json()["manifest"]
        assert {(r["architecture"], r["os"]) for r in properties["references"]} == {("amd64", "linux"),
                                                                                  ("arm64", "linux")}


def test_list_tags_lists_every_tag_pushed(skopeo: str, server: RunningServer, tmp_path: Path) -> None:
    image = make_image("skopeo-tags", 1)
    write_image_layout(tmp_path, "v1", image)
    pushed = ["latest", "v1", "v2"]
    for tag in pushed:
        push(skopeo, server, f"oci:{tmp_path}:v1", f"app/tags:{tag}")
    many = [f"build-{i:03d}" for i in range(120)]  # more than any client's or server's usual page
    with server.client() as client:
        for tag in many:
            put = client.put(f"/v2/app/tags/manifests/{tag}", content=image.manifest,
                             headers={"Content-Type": OCI_MANIFEST})
            assert put.status_code == 201, put.text

    listed = run(skopeo, "list-tags", "--tls-verify=false", "--creds", creds(server),
                 f"docker://{server.host}/app/tags")
    assert listed.returncode == 0, listed.stderr
    result = json.loads(listed.stdout)
    assert result["Repository"] == f"{server.host}/app/tags"
    assert result["Tags"] == sorted(pushed + many)


def test_delete_by_tag_removes_the_manifest_and_every_tag_on_it(skopeo: str, server: RunningServer,
                                                                tmp_path: Path) -> None:
    doomed, kept = make_image("skopeo-doomed", 1), make_image("skopeo-kept", 1)
    write_image_layout(tmp_path / "doomed", "v1", doomed)
    write_image_layout(tmp_path / "kept", "v1", kept)
    for tag in ("v1", "v1-alias"):
        push(skopeo, server, f"oci:{tmp_path / 'doomed'}:v1", f"app/delete:{tag}")
    push(skopeo, server, f"oci:{tmp_path / 'kept'}:v1", "app/delete:kept")

    deleted = run(skopeo, "delete", "--tls-verify=false", "--creds", creds(server),
                  f"docker://{server.host}/app/delete:v1")
    assert deleted.returncode == 0, deleted.stderr

    with server.client() as client:
        for reference in ("v1", "v1-alias", doomed.digest):
            gone = client.get(f"/v2/app/delete/manifests/{reference}", headers={"Accept": OCI_MANIFEST})
            assert gone.status_code == 404 and gone.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
        assert client.get("/v2/app/delete/tags/list").json()["tags"] == ["kept"]
    for tag in ("v1", "v1-alias"):
        inspected = run(skopeo, "inspect", "--tls-verify=false", "--creds", creds(server),
                        f"docker://{server.host}/app/delete:{tag}")
        assert inspected.returncode != 0 and "manifest unknown" in inspected.stderr.lower()
    assert inspect_raw(skopeo, server, "app/delete:kept") == kept.manifest


def test_docker_schema_2_copy_is_stored_as_docker_schema_2(skopeo: str, server: RunningServer,
                                                           tmp_path: Path) -> None:
    write_image_layout(tmp_path, "v1", make_image("skopeo-v2s2", 2))
    push(skopeo, server, f"oci:{tmp_path}:v1", "app/docker:v1", "--format", "v2s2",
         "--digestfile", str(tmp_path / "digest"))
    digest = (tmp_path / "digest").read_text().strip()

    with server.client() as client:
        response = client.get("/v2/app/docker/manifests/v1", headers={"Accept": DOCKER_MANIFEST})
    assert response.status_code == 200 and response.headers["Content-Type"] == DOCKER_MANIFEST
    assert response.headers["Docker-Content-Digest"] == digest == sha256(response.content)
    manifest = json.loads(response.content)
    assert manifest["mediaType"] == DOCKER_MANIFEST and manifest["config"]["mediaType"] == DOCKER_CONFIG
    assert {layer["mediaType"] for layer in manifest["layers"]} == {DOCKER_LAYER}
    assert inspect_raw(skopeo, server, "app/docker:v1") == response.content


def test_fails_cleanly_without_credentials(skopeo: str, server: RunningServer, tmp_path: Path) -> None:
    write_image_layout(tmp_path / "src", "v1", make_image("skopeo-anon", 1))
    refused = run(skopeo, "copy", "--dest-tls-verify=false", f"oci:{tmp_path / 'src'}:v1",
                  f"docker://{server.host}/skopeo/anon:v1",
                  env={"REGISTRY_AUTH_FILE": str(tmp_path / "none.json")})
    assert refused.returncode != 0
    assert "unauthorized" in refused.stderr.lower() or "authentication required" in refused.stderr.lower()
    with server.client() as client:
        assert client.get("/v2/skopeo/anon/tags/list").status_code == 404


def test_login_file_written_by_cargohold_login(skopeo: str, server: RunningServer, tmp_path: Path) -> None:
    auth_file = tmp_path / "auth.json"
    client_id, secret = server.credentials
    login = subprocess.run(
        [sys.executable, "-m", "cargohold", "login", server.host, "-u", client_id, "--password-stdin"],
        input=secret + "\n", check=False, capture_output=True, text=True, timeout=60,
        env={**os.environ, "REGISTRY_AUTH_FILE": str(auth_file)})
    assert login.returncode == 0, login.stderr
    assert (auth_file.stat().st_mode & 0o777) == 0o600
    write_image_layout(tmp_path / "src", "v1", make_image("skopeo-login", 1))
    copied = run(skopeo, "copy", "--dest-tls-verify=false", f"oci:{tmp_path / 'src'}:v1",
                 f"docker://{server.host}/skopeo/login:v1", env={"REGISTRY_AUTH_FILE": str(auth_file)})
    assert copied.returncode == 0, copied.stderr

    wrong = subprocess.run([sys.executable, "-m", "cargohold", "login", server.host,
                            "-u", client_id, "-p", "wrong"],
                           check=False, capture_output=True, text=True, timeout=60,
                           env={**os.environ, "REGISTRY_AUTH_FILE": str(tmp_path / "other.json")})
    assert wrong.returncode == 1 and "refused" in wrong.stderr
    assert not (tmp_path / "other.json").exists()


def test_a_pull_only_token_for_app_star(skopeo: str, server: RunningServer, tmp_path: Path) -> None:
    """A token scoped to app/* with pull only pulls app/scoped, and can neither push it nor pull other/x."""
    write_image_layout(tmp_path / "src", "v1", make_image("skopeo-scoped", 1))
    for target in ("app/scoped:v1", "other/x:v1"):
        push(skopeo, server, f"oci:{tmp_path / 'src'}:v1", target)

    def cargohold(*args: str) -> dict[str, object]:
        done = subprocess.run([sys.executable, "-m", "cargohold", *args, "--data-dir", str(server.data_dir),
                               "-o", "json"], check=False, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    cargohold("scope-map", "create", "--scope-map-name", "apppull", "--repository", "app/* content/read")
    token = cargohold("token", "create", "-t", "apppuller", "--scope-map", "apppull")
    token_creds = f"apppuller:{token['passwords'][0]['value']}"  # type: ignore[index]

    pulled = run(skopeo, "copy", "--src-tls-verify=false", "--src-creds", token_creds,
                 f"docker://{server.host}/app/scoped:v1", f"oci:{tmp_path / 'pulled'}:v1")
    assert pulled.returncode == 0, pulled.stderr
    pushed = run(skopeo, "copy", "--dest-tls-verify=false", "--dest-creds", token_creds,
                 f"oci:{tmp_path / 'src'}:v1", f"docker://{server.host}/app/scoped:v2")
    assert pushed.returncode != 0
    other = run(skopeo, "copy", "--src-tls-verify=false", "--src-creds", token_creds,
                f"docker://{server.host}/other/x:v1", f"oci:{tmp_path / 'other'}:v1")
    assert other.returncode != 0
    with server.client() as client:
        assert client.get("/v2/app/scoped/manifests/v2").status_code == 404
        response = httpx.get(f"{server.url}/v2/other/x/manifests/v1",
                             auth=("apppuller", token_creds.split(":")[1]))
        assert response.status_code == 403 and response.json()["errors"][0]["code"] == "DENIED"
