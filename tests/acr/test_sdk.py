"""Microsoft's `azure-containerregistry` SDK against cargohold: every public method of ContainerRegistryClient,
with a credential issued by cargohold and anonymously."""

from __future__ import annotations

import hashlib
import io
import json

import httpx
import pytest
from azure.containerregistry import (
    ArtifactArchitecture,
    ArtifactOperatingSystem,
    ContainerRegistryClient,
)
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError

from tests.acr.conftest import AUDIENCE, cli
from tests.support.images import OCI_INDEX, OCI_MANIFEST, make_image, push_image
from tests.support.server import RunningServer

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


@pytest.fixture(scope="module", autouse=True)
def content(http: httpx.Client) -> dict[str, str]:
    digests = {}
    for repo, tags in {"sdk/web": ["v1", "v2", "v3"], "sdk/api": ["latest"], "sdk/gone": ["x"]}.items():
        for tag in tags:
            digests[f"{repo}:{tag}"] = push_image(http, repo, tag, make_image(f"{repo}{tag}", 1))
    children = {"amd64": make_image("sdk-amd64", 1, "amd64"), "arm64": make_image("sdk-arm64", 1, "arm64")}
    for arch, image in children.items():
        push_image(http, "sdk/multi", arch, image)
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": image.digest, "size": len(image.manifest),
         "platform": {"architecture": arch, "os": "linux"}} for arch, image in children.items()]}).encode()
    assert http.put("/v2/sdk/multi/manifests/latest", content=index,
                    headers={"Content-Type": OCI_INDEX}).status_code == 201
    digests["sdk/multi:latest"] = "sha256:" + hashlib.sha256(index).hexdigest()
    return digests


def test_list_repository_names_pages(registry: ContainerRegistryClient) -> None:
    names = list(registry.list_repository_names(results_per_page=2))
    assert {"sdk/web", "sdk/api", "sdk/multi", "sdk/gone"} <= set(names)
    assert names == sorted(names)


def test_repository_properties_and_update(registry: ContainerRegistryClient) -> None:
    properties = registry.get_repository_properties("sdk/web")
    assert properties.name == "sdk/web" and properties.tag_count == 3 and properties.manifest_count == 3
    assert properties.can_write and properties.can_delete and properties.can_read and properties.can_list
    properties.can_delete = False
    updated = registry.update_repository_properties("sdk/web", properties)
    assert updated.can_delete is False
    assert registry.update_repository_properties("sdk/web", can_delete=True).can_delete is True


def test_tag_properties(registry: ContainerRegistryClient, content: dict[str, str]) -> None:
    tags = list(registry.list_tag_properties("sdk/web", order_by="timedesc", results_per_page=1))
    assert [t.name for t in tags] == ["v3", "v2", "v1"]
    ascending = [t.name for t in registry.list_tag_properties("sdk/web", order_by="timeasc")]
    assert ascending == ["v1", "v2", "v3"]
    tag = registry.get_tag_properties("sdk/web", "v1")
    assert tag.digest == content["sdk/web:v1"] and tag.name == "v1"
    # tag.repository_name is always None in SDK 1.2.0: it passes `repository=` and reads `repository_name`.
    locked = registry.update_tag_properties("sdk/web", "v1", can_write=False)
    assert locked.can_write is False
    assert registry.update_tag_properties("sdk/web", "v1", can_write=True).can_write is True


def test_manifest_properties(registry: ContainerRegistryClient, content: dict[str, str], http: httpx.Client) -> None:
    manifests = list(registry.list_manifest_properties("sdk/multi", order_by="timedesc", results_per_page=1))
    assert len(manifests) == 3
    index = registry.get_manifest_properties("sdk/multi", "latest")
    assert index.digest == content["sdk/multi:latest"] and index.tags == ["latest"]
    # SDK 1.2.0 does not surface an index's "references"; they are checked on the wire.
    raw = http.get(f"/acr/v1/sdk/multi/_manifests/{index.digest}").json()["manifest"]["references"]
    assert {(r["architecture"], r["os"]) for r in raw} == {("amd64", "linux"), ("arm64", "linux")}
    child = registry.get_manifest_properties("sdk/multi", "arm64")
    assert child.architecture == ArtifactArchitecture.ARM64 and child.operating_system == ArtifactOperatingSystem.LINUX
    assert child.size_in_bytes and child.created_on and child.last_updated_on
    by_digest = registry.get_manifest_properties("sdk/multi", child.digest)
    assert by_digest.tags == ["arm64"]
    assert registry.update_manifest_properties("sdk/multi", child.digest, can_list=False).can_list is False
    listed = {m.digest for m in registry.list_manifest_properties("sdk/multi")}
    assert child.digest not in listed
    registry.update_manifest_properties("sdk/multi", child.digest, can_list=True)


def test_blobs_and_manifests_round_trip(registry: ContainerRegistryClient) -> None:
    layer = b"layer bytes " * 100_000
    layer_digest, layer_size = registry.upload_blob("sdk/upload", io.BytesIO(layer))
    assert layer_digest == "sha256:" + hashlib.sha256(layer).hexdigest() and layer_size == len(layer)
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    config_digest, _ = registry.upload_blob("sdk/upload", io.BytesIO(config))
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest,
                           "size": len(config)},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest,
                            "size": len(layer)}]}
    digest = registry.set_manifest("sdk/upload", manifest, tag="v1")
    fetched = registry.get_manifest("sdk/upload", "v1")
    assert fetched.digest == digest and fetched.media_type == OCI_MANIFEST and fetched.manifest == manifest

    stream = registry.download_blob("sdk/upload", layer_digest)
    assert b"".join(stream) == layer

    docker = {**manifest, "mediaType": DOCKER_MANIFEST,
              "config": {**manifest["config"], "mediaType": "application/vnd.docker.container.image.v1+json"},
              "layers": [{**manifest["layers"][0], "mediaType": "application/vnd.docker.image.rootfs.diff.tar"}]}
    raw = json.dumps(docker).encode()
    docker_digest = registry.set_manifest("sdk/upload", io.BytesIO(raw), tag="docker", media_type=DOCKER_MANIFEST)
    assert registry.get_manifest("sdk/upload", "docker").media_type == DOCKER_MANIFEST
    assert docker_digest == "sha256:" + hashlib.sha256(raw).hexdigest()

    registry.delete_blob("sdk/upload", layer_digest)
    with pytest.raises(ResourceNotFoundError):
        b"".join(registry.download_blob("sdk/upload", layer_digest))


def test_get_manifest_of_an_unknown_digest(registry: ContainerRegistryClient) -> None:
    with pytest.raises(ResourceNotFoundError):
        registry.get_manifest("sdk/web", "sha256:" + "0" * 64)


def test_deletes(registry: ContainerRegistryClient, content: dict[str, str]) -> None:
    registry.delete_tag("sdk/api", "latest")
    with pytest.raises(ResourceNotFoundError):
        registry.get_tag_properties("sdk/api", "latest")
    registry.get_manifest_properties("sdk/api", content["sdk/api:latest"])
    registry.delete_manifest("sdk/api", content["sdk/api:latest"])
    with pytest.raises(ResourceNotFoundError):
        registry.get_manifest_properties("sdk/api", content["sdk/api:latest"])
    registry.delete_repository("sdk/gone")
    assert "sdk/gone" not in set(registry.list_repository_names())
    registry.delete_repository("sdk/never-existed")


def test_locked_tag_cannot_be_overwritten(registry: ContainerRegistryClient, content: dict[str, str],
                                          http: httpx.Client) -> None:
    registry.update_tag_properties("sdk/web", "v2", can_write=False)
    replacement = make_image("replacement", 1)
    push_image(http, "sdk/web", "scratch", replacement)
    with pytest.raises(HttpResponseError) as refused:
        registry.set_manifest("sdk/web", json.loads(replacement.manifest), tag="v2")
    assert refused.value.status_code == 403
    assert registry.get_tag_properties("sdk/web", "v2").digest == content["sdk/web:v2"]
    with pytest.raises(HttpResponseError):
        registry.delete_tag("sdk/web", "v2")
    registry.update_tag_properties("sdk/web", "v2", can_write=True)


def test_anonymous_client_reads_and_cannot_write(tls_server: RunningServer, ca: str,
                                                 content: dict[str, str]) -> None:
    cli(tls_server, "update", "--anonymous-pull-enabled", "true")
    try:
        with ContainerRegistryClient(tls_server.url, None, audience=AUDIENCE, connection_verify=ca) as anonymous:
            assert "sdk/web" in set(anonymous.list_repository_names())
            assert anonymous.get_repository_properties("sdk/web").name == "sdk/web"
            assert {t.name for t in anonymous.list_tag_properties("sdk/web")} >= {"v1", "v3"}
            assert anonymous.get_manifest_properties("sdk/web", "v1").digest == content["sdk/web:v1"]
            assert anonymous.get_manifest("sdk/web", "v1").digest == content["sdk/web:v1"]
            with pytest.raises((ClientAuthenticationError, HttpResponseError)):
                anonymous.update_tag_properties("sdk/web", "v1", can_delete=False)
            with pytest.raises((ClientAuthenticationError, HttpResponseError)):
                anonymous.delete_tag("sdk/web", "v3")
    finally:
        cli(tls_server, "update", "--anonymous-pull-enabled", "false")
