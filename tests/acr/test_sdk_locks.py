"""ACR's locks (changeable attributes), set with Microsoft's SDK and met by the SDK and by skopeo: a refusal is
403 DENIED and changes nothing; a repository's attributes apply to everything in it."""

from __future__ import annotations

import io
import json
import shutil
import ssl
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.containerregistry import ContainerRegistryClient
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from tests.acr.sdk_wire import owner_credential, sdk_client
from tests.clients.oci_layout import read_layout_manifest, write_image_layout
from tests.conftest import require_tool
from tests.support.images import make_image, push_blob, push_image
from tests.support.server import RunningServer


def denied(call: Callable[[], Any]) -> HttpResponseError:
    """`call` must fail with 403 and ACR's error code DENIED; the SDK raises a plain HttpResponseError for it."""
    with pytest.raises(HttpResponseError) as refused:
        call()
    error = refused.value
    assert error.status_code == 403, error
    error.response.read()
    assert json.loads(error.response.text())["errors"][0]["code"] == "DENIED"
    return error


@pytest.fixture(scope="module")
def ca_file(tls_server: RunningServer) -> str:
    return str(tls_server.data_dir / "tls" / "ca.pem")


@pytest.fixture(scope="module")
def sdk(tls_server: RunningServer, ca_file: str) -> Iterator[ContainerRegistryClient]:
    with sdk_client(tls_server, ca_file, owner_credential(tls_server, ca_file)) as client:
        yield client


@pytest.fixture(scope="module")
def owner(tls_server: RunningServer, ca_file: str) -> Iterator[httpx.Client]:
    with tls_server.client(verify=ssl.create_default_context(cafile=ca_file)) as client:
        yield client


# through the SDK ---------------------------------------------------------------------------------------------------

def test_a_write_locked_tag_is_neither_moved_nor_deleted(sdk: ContainerRegistryClient, owner: httpx.Client) -> None:
    original = push_image(owner, "lock/tag", "stable", make_image("lock-tag-a", 1))
    replacement = make_image("lock-tag-b", 1)
    for blob in [replacement.config, *replacement.layers]:
        push_blob(owner, "lock/tag", blob)
    locked = sdk.update_tag_properties("lock/tag", "stable", can_write=False)
    assert (locked.can_write, locked.digest) == (False, original)

    denied(lambda: sdk.set_manifest("lock/tag", io.BytesIO(replacement.manifest), tag="stable"))
    assert sdk.get_tag_properties("lock/tag", "stable").digest == original
    assert sdk.get_manifest("lock/tag", "stable").digest == original
    with pytest.raises(ResourceNotFoundError):
        sdk.get_manifest_properties("lock/tag", replacement.digest)  # the refused manifest was not kept
    denied(lambda: sdk.delete_tag("lock/tag", "stable"))
    denied(lambda: sdk.delete_manifest("lock/tag", original))
    assert sdk.get_tag_properties("lock/tag", "stable").digest == original

    assert sdk.set_manifest("lock/tag", io.BytesIO(replacement.manifest), tag="next") == replacement.digest, \
        "only the locked tag is protected"
    sdk.update_tag_properties("lock/tag", "stable", can_write=True)
    assert sdk.set_manifest("lock/tag", io.BytesIO(replacement.manifest), tag="stable") == replacement.digest
    assert sdk.get_tag_properties("lock/tag", "stable").digest == replacement.digest


def test_a_write_locked_manifest_keeps_its_tags(sdk: ContainerRegistryClient, owner: httpx.Client) -> None:
    locked = push_image(owner, "lock/manifest", "v1", make_image("lock-manifest-a", 1))
    other = make_image("lock-manifest-b", 1)
    push_image(owner, "lock/manifest", "other", other)
    assert sdk.update_manifest_properties("lock/manifest", locked, can_write=False).can_write is False

    denied(lambda: sdk.set_manifest("lock/manifest", io.BytesIO(other.manifest), tag="v1"))
    assert sdk.get_tag_properties("lock/manifest", "v1").digest == locked
    denied(lambda: sdk.delete_tag("lock/manifest", "v1"))
    denied(lambda: sdk.delete_manifest("lock/manifest", locked))
    assert sdk.get_manifest_properties("lock/manifest", locked).tags == ["v1"]

    sdk.update_manifest_properties("lock/manifest", locked, can_write=True)
    sdk.delete_tag("lock/manifest", "v1")
    assert not sdk.get_manifest_properties("lock/manifest", locked).tags


def test_a_delete_locked_manifest_stays(sdk: ContainerRegistryClient, owner: httpx.Client) -> None:
    kept = push_image(owner, "lock/keep", "v1", make_image("lock-keep-a", 1))
    assert sdk.update_manifest_properties("lock/keep", kept, can_delete=False).can_delete is False

    denied(lambda: sdk.delete_manifest("lock/keep", kept))
    denied(lambda: sdk.delete_manifest("lock/keep", "v1"))
    denied(lambda: sdk.delete_repository("lock/keep"))
    assert sdk.get_manifest("lock/keep", kept).digest == kept
    assert sdk.get_repository_properties("lock/keep").manifest_count == 1

    newer = make_image("lock-keep-b", 1)
    push_image(owner, "lock/keep", "v2", newer)
    assert sdk.set_manifest("lock/keep", io.BytesIO(newer.manifest), tag="v1") == newer.digest, \
        "a delete lock does not stop the tag from moving on"
    assert sdk.get_manifest_properties("lock/keep", kept).digest == kept

    sdk.update_manifest_properties("lock/keep", kept, can_delete=True)
    sdk.delete_manifest("lock/keep", kept)
    with pytest.raises(ResourceNotFoundError):
        sdk.get_manifest_properties("lock/keep", kept)


def test_read_disabled_content_cannot_be_pulled(sdk: ContainerRegistryClient, owner: httpx.Client) -> None:
    secret = push_image(owner, "lock/read", "secret", make_image("lock-read-a", 1))
    public = push_image(owner, "lock/read", "public", make_image("lock-read-b", 1))
    sdk.update_manifest_properties("lock/read", secret, can_read=False)
    denied(lambda: sdk.get_manifest("lock/read", "secret"))
    denied(lambda: sdk.get_manifest("lock/read", secret))
    assert owner.get(f"/v2/lock/read/manifests/{secret}").status_code == 403
    assert sdk.get_manifest("lock/read", "public").digest == public
    assert sdk.get_manifest_properties("lock/read", secret).can_read is False, "its metadata stays readable"
    sdk.update_manifest_properties("lock/read", secret, can_read=True)
    assert sdk.get_manifest("lock/read", "secret").digest == secret

    sdk.update_tag_properties("lock/read", "public", can_read=False)
    denied(lambda: sdk.get_manifest("lock/read", "public"))
    sdk.update_tag_properties("lock/read", "public", can_read=True)

    sdk.update_repository_properties("lock/read", can_read=False)
    denied(lambda: sdk.get_manifest("lock/read", "public"))
    denied(lambda: sdk.get_manifest("lock/read", secret))
    sdk.update_repository_properties("lock/read", can_read=True)
    assert sdk.get_manifest("lock/read", "public").digest == public


def test_list_disabled_content_is_hidden_but_readable(sdk: ContainerRegistryClient, owner: httpx.Client) -> None:
    push_image(owner, "lock/list", "shown", make_image("lock-list-a", 1))
    hidden = push_image(owner, "lock/list", "hidden", make_image("lock-list-b", 1))
    sdk.update_tag_properties("lock/list", "hidden", can_list=False)
    assert [t.name for t in sdk.list_tag_properties("lock/list")] == ["shown"]
    assert owner.get("/v2/lock/list/tags/list").json()["tags"] == ["shown"]
    assert sdk.get_tag_properties("lock/list", "hidden").can_list is False
    assert sdk.get_manifest("lock/list", "hidden").digest == hidden

    sdk.update_manifest_properties("lock/list", hidden, can_list=False)
    listed = {m.digest for m in sdk.list_manifest_properties("lock/list")}
    assert hidden not in listed and len(listed) == 1

    sdk.update_repository_properties("lock/list", can_list=False)
    assert "lock/list" not in set(sdk.list_repository_names())
    assert "lock/list" not in owner.get("/v2/_catalog").json()["repositories"]
    assert sdk.get_repository_properties("lock/list").can_list is False
    sdk.update_repository_properties("lock/list", can_list=True)
    assert "lock/list" in set(sdk.list_repository_names())


def test_a_write_locked_repository_takes_no_pushes_or_deletes(sdk: ContainerRegistryClient,
                                                              owner: httpx.Client) -> None:
    image = make_image("lock-frozen", 1)
    first = push_image(owner, "lock/frozen", "v1", image)
    sdk.update_repository_properties("lock/frozen", can_write=False)
    denied(lambda: sdk.upload_blob("lock/frozen", io.BytesIO(b"a new layer")))
    denied(lambda: sdk.set_manifest("lock/frozen", io.BytesIO(image.manifest), tag="v2"))
    denied(lambda: sdk.delete_tag("lock/frozen", "v1"))
    denied(lambda: sdk.delete_manifest("lock/frozen", first))
    denied(lambda: sdk.delete_repository("lock/frozen"))
    assert [t.name for t in sdk.list_tag_properties("lock/frozen")] == ["v1"]

    sdk.update_repository_properties("lock/frozen", can_write=True)
    assert sdk.set_manifest("lock/frozen", io.BytesIO(image.manifest), tag="v2") == first


def test_a_delete_locked_repository_keeps_everything(sdk: ContainerRegistryClient, owner: httpx.Client) -> None:
    digest = push_image(owner, "lock/undeletable", "v1", make_image("lock-undeletable", 1))
    sdk.update_repository_properties("lock/undeletable", can_delete=False)
    denied(lambda: sdk.delete_repository("lock/undeletable"))
    denied(lambda: sdk.delete_tag("lock/undeletable", "v1"))
    denied(lambda: sdk.delete_manifest("lock/undeletable", digest))
    assert sdk.get_tag_properties("lock/undeletable", "v1").digest == digest

    sdk.update_repository_properties("lock/undeletable", can_delete=True)
    sdk.delete_repository("lock/undeletable")
    with pytest.raises(ResourceNotFoundError):
        sdk.get_repository_properties("lock/undeletable")


# through skopeo --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def skopeo() -> str:
    return require_tool("skopeo")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory, ca_file: str) -> str:
    """A directory skopeo reads CA certificates (*.crt) from."""
    directory = tmp_path_factory.mktemp("skopeo-certs")
    shutil.copy(ca_file, directory / "ca.crt")
    return str(directory)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), check=False, capture_output=True, text=True, timeout=120)


def creds(server: RunningServer) -> str:
    client_id, secret = server.credentials
    return f"{client_id}:{secret}"


def push_layout(skopeo: str, server: RunningServer, certs: str, layout: Path,
                target: str) -> subprocess.CompletedProcess[str]:
    return run(skopeo, "copy", "--dest-creds", creds(server), "--dest-cert-dir", certs, f"oci:{layout}:v1",
               f"docker://{server.host}/{target}")


def said_denied(done: subprocess.CompletedProcess[str]) -> bool:
    return done.returncode != 0 and ("denied" in done.stderr.lower() or "disallowed" in done.stderr.lower())


@pytest.mark.clients
def test_skopeo_cannot_overwrite_a_write_locked_tag(skopeo: str, tls_server: RunningServer, certs: str,
                                                    sdk: ContainerRegistryClient, owner: httpx.Client,
                                                    tmp_path: Path) -> None:
    original = push_image(owner, "skopeo/web", "stable", make_image("skopeo-lock-a", 1))
    sdk.update_tag_properties("skopeo/web", "stable", can_write=False)
    replacement = write_image_layout(tmp_path / "new", "v1", make_image("skopeo-lock-b", 2))

    refused = push_layout(skopeo, tls_server, certs, tmp_path / "new", "skopeo/web:stable")
    assert said_denied(refused), refused.stderr
    assert sdk.get_tag_properties("skopeo/web", "stable").digest == original
    assert sdk.get_manifest("skopeo/web", "stable").digest == original
    with pytest.raises(ResourceNotFoundError):
        sdk.get_manifest_properties("skopeo/web", replacement)

    accepted = push_layout(skopeo, tls_server, certs, tmp_path / "new", "skopeo/web:candidate")
    assert accepted.returncode == 0, accepted.stderr
    assert sdk.get_tag_properties("skopeo/web", "candidate").digest == replacement


@pytest.mark.clients
def test_skopeo_cannot_delete_a_delete_locked_manifest(skopeo: str, tls_server: RunningServer, certs: str,
                                                       sdk: ContainerRegistryClient, owner: httpx.Client) -> None:
    digest = push_image(owner, "skopeo/keep", "v1", make_image("skopeo-keep", 1))
    sdk.update_manifest_properties("skopeo/keep", digest, can_delete=False)
    refused = run(skopeo, "delete", "--creds", creds(tls_server), "--cert-dir", certs,
                  f"docker://{tls_server.host}/skopeo/keep@{digest}")
    assert said_denied(refused), refused.stderr
    assert sdk.get_manifest("skopeo/keep", digest).digest == digest
    assert sdk.get_tag_properties("skopeo/keep", "v1").digest == digest

    sdk.update_manifest_properties("skopeo/keep", digest, can_delete=True)
    deleted = run(skopeo, "delete", "--creds", creds(tls_server), "--cert-dir", certs,
                  f"docker://{tls_server.host}/skopeo/keep@{digest}")
    assert deleted.returncode == 0, deleted.stderr
    with pytest.raises(ResourceNotFoundError):
        sdk.get_manifest_properties("skopeo/keep", digest)


@pytest.mark.clients
def test_skopeo_cannot_pull_a_read_disabled_manifest(skopeo: str, tls_server: RunningServer, certs: str,
                                                     sdk: ContainerRegistryClient, owner: httpx.Client,
                                                     tmp_path: Path) -> None:
    digest = push_image(owner, "skopeo/read", "v1", make_image("skopeo-read", 1))
    sdk.update_manifest_properties("skopeo/read", digest, can_read=False)
    source = f"docker://{tls_server.host}/skopeo/read:v1"
    refused = run(skopeo, "copy", "--src-creds", creds(tls_server), "--src-cert-dir", certs, source,
                  f"oci:{tmp_path / 'out'}:v1")
    assert said_denied(refused), refused.stderr
    inspected = run(skopeo, "inspect", "--raw", "--creds", creds(tls_server), "--cert-dir", certs, source)
    assert said_denied(inspected), inspected.stderr

    sdk.update_manifest_properties("skopeo/read", digest, can_read=True)
    pulled = run(skopeo, "copy", "--src-creds", creds(tls_server), "--src-cert-dir", certs, source,
                 f"oci:{tmp_path / 'out2'}:v1")
    assert pulled.returncode == 0, pulled.stderr
    assert read_layout_manifest(tmp_path / "out2")[0] == digest


@pytest.mark.clients
def test_skopeo_list_tags_leaves_out_list_disabled_tags(skopeo: str, tls_server: RunningServer, certs: str,
                                                        sdk: ContainerRegistryClient, owner: httpx.Client) -> None:
    push_image(owner, "skopeo/list", "shown", make_image("skopeo-list-a", 1))
    push_image(owner, "skopeo/list", "hidden", make_image("skopeo-list-b", 1))
    sdk.update_tag_properties("skopeo/list", "hidden", can_list=False)
    listed = run(skopeo, "list-tags", "--creds", creds(tls_server), "--cert-dir", certs,
                 f"docker://{tls_server.host}/skopeo/list")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["Tags"] == ["shown"]


@pytest.mark.clients
def test_skopeo_cannot_push_into_a_write_locked_repository(skopeo: str, tls_server: RunningServer, certs: str,
                                                           sdk: ContainerRegistryClient, owner: httpx.Client,
                                                           tmp_path: Path) -> None:
    push_image(owner, "skopeo/frozen", "v1", make_image("skopeo-frozen-a", 1))
    sdk.update_repository_properties("skopeo/frozen", can_write=False)
    write_image_layout(tmp_path / "new", "v1", make_image("skopeo-frozen-b", 1))
    refused = push_layout(skopeo, tls_server, certs, tmp_path / "new", "skopeo/frozen:v2")
    assert said_denied(refused), refused.stderr
    assert [t.name for t in sdk.list_tag_properties("skopeo/frozen")] == ["v1"]
