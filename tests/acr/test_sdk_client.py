"""Every public method of Microsoft's `ContainerRegistryClient` (azure-containerregistry 1.2.x) against cargohold,
with a credential cargohold issued and anonymously, checking both what the SDK returns and what it put on the
wire (the shapes a self-hosted registry has to get right for the SDK to work at all)."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import ssl
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from azure.containerregistry import (
    ArtifactArchitecture,
    ArtifactManifestOrder,
    ArtifactManifestProperties,
    ArtifactOperatingSystem,
    ArtifactTagOrder,
    ArtifactTagProperties,
    ContainerRegistryClient,
    DownloadBlobStream,
    RepositoryProperties,
)
from azure.containerregistry._generated.models import Descriptor, OCIManifest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError

from tests.acr.sdk_wire import API_VERSION, CHUNK, RecordingTransport, owner_credential, sdk_client
from tests.support.images import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    make_image,
    push_blob,
    push_image,
    sha256,
)
from tests.support.server import RunningServer

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
ALL_ENABLED = (True, True, True, True)


def attrs(item: RepositoryProperties | ArtifactTagProperties | ArtifactManifestProperties) -> tuple[bool, ...]:
    return item.can_delete, item.can_write, item.can_read, item.can_list


def filler(size: int, seed: bytes) -> bytes:
    """`size` reproducible, incompressible bytes."""
    out, counter = bytearray(), 0
    while len(out) < size:
        out += hashlib.sha256(seed + counter.to_bytes(8, "big")).digest()
        counter += 1
    return bytes(out[:size])


def cargohold(server: RunningServer, *args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "cargohold", *args, "--data-dir", str(server.data_dir)],
                          check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


# fixtures ------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ca_file(tls_server: RunningServer) -> str:
    return str(tls_server.data_dir / "tls" / "ca.pem")


@pytest.fixture(scope="module")
def wire(ca_file: str) -> RecordingTransport:
    return RecordingTransport(connection_verify=ca_file)


@pytest.fixture(scope="module")
def sdk(tls_server: RunningServer, ca_file: str, wire: RecordingTransport) -> Iterator[ContainerRegistryClient]:
    with sdk_client(tls_server, ca_file, owner_credential(tls_server, ca_file), wire) as client:
        yield client


@pytest.fixture(scope="module")
def owner(tls_server: RunningServer, ca_file: str) -> Iterator[httpx.Client]:
    with tls_server.client(verify=ssl.create_default_context(cafile=ca_file)) as client:
        yield client


CATALOG = ["sdk/api", "sdk/gone", "sdk/gone-too", "sdk/multi", "sdk/ordered", "sdk/web", "sdk/x1", "sdk/x2"]


@pytest.fixture(scope="module")
def pushed(owner: httpx.Client) -> dict[str, str]:
    """Content pushed over /v2/ with basic auth: reference -> manifest digest."""
    digests: dict[str, str] = {}
    for repository, tags in {"sdk/web": ["v1", "v2", "v3"], "sdk/gone": ["x"], "sdk/gone-too": ["y"],
                             "sdk/x1": ["a"], "sdk/x2": ["a"]}.items():
        for tag in tags:
            digests[f"{repository}:{tag}"] = push_image(owner, repository, tag, make_image(f"{repository}{tag}", 1))
    # Pushed in this order so that time order (rc, beta, alpha) is not name order (alpha, beta, rc).
    for tag in ["rc", "beta", "alpha"]:
        digests[f"sdk/ordered:{tag}"] = push_image(owner, "sdk/ordered", tag, make_image(f"ordered-{tag}", 1))
    api = make_image("sdk-api", 1)
    for tag in ["latest", "also"]:
        digests[f"sdk/api:{tag}"] = push_image(owner, "sdk/api", tag, api)
    digests["sdk/api:second"] = push_image(owner, "sdk/api", "second", make_image("sdk-api-2", 1))
    children = {"amd64": make_image("sdk-amd64", 1, "amd64"), "arm64": make_image("sdk-arm64", 1, "arm64")}
    for arch, image in children.items():
        digests[f"sdk/multi:{arch}"] = push_image(owner, "sdk/multi", arch, image)
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": image.digest, "size": len(image.manifest),
         "platform": {"architecture": arch, "os": "linux"}} for arch, image in children.items()]}).encode()
    response = owner.put("/v2/sdk/multi/manifests/latest", content=index, headers={"Content-Type": OCI_INDEX})
    assert response.status_code == 201, response.text
    digests["sdk/multi:latest"] = sha256(index)
    return digests


# the token flow --------------------------------------------------------------------------------------------------

def test_each_call_is_challenged_then_retried_with_a_token_from_exchange_and_token(
        sdk: ContainerRegistryClient, wire: RecordingTransport, tls_server: RunningServer,
        pushed: dict[str, str]) -> None:
    mark = wire.mark()
    sdk.get_repository_properties("sdk/web")
    flow = [(e.method, e.path, e.status, e.authorized) for e in wire.exchanges[mark:]]
    assert flow == [("GET", "/acr/v1/sdk/web", 401, False),
                    ("POST", "/oauth2/exchange", 200, False),
                    ("POST", "/oauth2/token", 200, False),
                    ("GET", "/acr/v1/sdk/web", 200, True)]
    challenge, exchange, token, _ = wire.exchanges[mark:]
    # The SDK reads realm/service/scope only when every value is double-quoted; `service` and `scope` are required.
    assert challenge.headers["www-authenticate"].startswith(f'Bearer realm="{tls_server.url}/oauth2/token",')
    assert 'service="' in challenge.headers["www-authenticate"]
    assert wire.challenged_scopes(mark) == ["repository:sdk/web:metadata_read"]
    assert exchange.query == {"api-version": [API_VERSION]} and token.query == {"api-version": [API_VERSION]}
    assert exchange.request_headers["content-type"] == "application/x-www-form-urlencoded"
    assert isinstance(exchange.body, dict) and exchange.body["grant_type"] == "access_token"
    assert exchange.body["access_token"].count(".") == 2 and exchange.body["service"]
    assert isinstance(token.body, dict) and token.body["grant_type"] == "refresh_token"
    assert token.body["scope"] == "repository:sdk/web:metadata_read"

    # No token cache: the next call is challenged again, and (SDK 1.2.0 refreshes while more than 300 s remain)
    # trades the identity token again.
    mark = wire.mark()
    sdk.get_repository_properties("sdk/web")
    assert [e.path for e in wire.exchanges[mark:]] == ["/acr/v1/sdk/web", "/oauth2/exchange", "/oauth2/token",
                                                      "/acr/v1/sdk/web"]


# repositories ----------------------------------------------------------------------------------------------------

def test_list_repository_names_follows_link_headers(sdk: ContainerRegistryClient, wire: RecordingTransport,
                                                     pushed: dict[str, str]) -> None:
    mark = wire.mark()
    pages = [list(page) for page in sdk.list_repository_names(results_per_page=3).by_page()]
    names = [name for page in pages for name in page]
    assert names == CATALOG and [len(page) for page in pages] == [3, 3, 2]
    assert wire.challenged_scopes(mark)[0] == "registry:catalog:*"
    gets = wire.since(mark)
    assert [e.status for e in gets] == [200, 200, 200]
    assert all(e.path == "/acr/v1/_catalog" for e in gets)
    # The SDK's own pager (not the generated one) sends no api-version, and then follows Link verbatim.
    assert gets[0].query == {"n": ["3"]}
    for page, (previous, following) in enumerate(itertools.pairwise(gets), start=1):
        link = previous.headers["link"]
        assert link.startswith("</acr/v1/_catalog?") and link.endswith('>; rel="next"')
        assert following.url.endswith(link[1:link.index(">")])
        assert following.query == {"n": ["3"], "last": [names[3 * page - 1]]}
    assert "link" not in gets[-1].headers

    assert list(sdk.list_repository_names(last="sdk/multi")) == [n for n in CATALOG if n > "sdk/multi"]
    assert list(sdk.list_repository_names()) == CATALOG


def test_get_repository_properties(sdk: ContainerRegistryClient, wire: RecordingTransport,
                                  pushed: dict[str, str]) -> None:
    mark = wire.mark()
    properties = sdk.get_repository_properties("sdk/web")
    assert properties.name == "sdk/web"
    assert (properties.manifest_count, properties.tag_count) == (3, 3)
    assert attrs(properties) == ALL_ENABLED
    assert properties.created_on.utcoffset() == timedelta(0)
    assert properties.created_on <= properties.last_updated_on <= datetime.now(UTC) + timedelta(seconds=5)
    assert datetime.now(UTC) - properties.created_on < timedelta(minutes=10)
    [get] = wire.since(mark)
    assert "/acr/v1/sdk%2Fweb?" in get.url, "the SDK quotes the slash of a repository name"
    assert get.query == {"api-version": [API_VERSION]}

    with pytest.raises(ResourceNotFoundError):
        sdk.get_repository_properties("sdk/nothing-here")


def test_update_repository_properties_with_keywords_and_with_an_object(
        sdk: ContainerRegistryClient, wire: RecordingTransport, pushed: dict[str, str]) -> None:
    mark = wire.mark()
    updated = sdk.update_repository_properties("sdk/web", can_delete=False)
    assert attrs(updated) == (False, True, True, True), "a PATCH naming one attribute leaves the others alone"
    assert updated.name == "sdk/web" and updated.tag_count == 3
    assert wire.challenged_scopes(mark) == ["repository:sdk/web:metadata_write"]
    [patch] = wire.since(mark)
    assert (patch.method, patch.path, patch.status) == ("PATCH", "/acr/v1/sdk/web", 200)
    assert patch.query == {"api-version": [API_VERSION]}
    assert patch.request_headers["content-type"] == "application/json"
    assert isinstance(patch.body, bytes) and json.loads(patch.body) == {"deleteEnabled": False}
    assert attrs(sdk.get_repository_properties("sdk/web")) == (False, True, True, True)

    properties = sdk.get_repository_properties("sdk/web")
    properties.can_delete, properties.can_list = True, False
    mark = wire.mark()
    assert attrs(sdk.update_repository_properties("sdk/web", properties)) == (True, True, True, False)
    [patch] = wire.since(mark)
    assert isinstance(patch.body, bytes)
    assert json.loads(patch.body) == {"deleteEnabled": True, "writeEnabled": True, "readEnabled": True,
                                      "listEnabled": False}
    assert attrs(sdk.update_repository_properties("sdk/web", can_list=True)) == ALL_ENABLED


def test_delete_repository(sdk: ContainerRegistryClient, wire: RecordingTransport, owner: httpx.Client,
                           pushed: dict[str, str]) -> None:
    mark = wire.mark()
    assert sdk.delete_repository("sdk/gone") is None
    assert wire.challenged_scopes(mark) == ["repository:sdk/gone:delete"]
    [delete] = wire.since(mark)
    assert (delete.method, delete.path, delete.status) == ("DELETE", "/acr/v1/sdk/gone", 202)
    assert delete.query == {"api-version": [API_VERSION]}
    assert "sdk/gone" not in set(sdk.list_repository_names())
    with pytest.raises(ResourceNotFoundError):
        sdk.get_repository_properties("sdk/gone")
    assert owner.get("/v2/sdk/gone/manifests/x").status_code == 404

    mark = wire.mark()
    sdk.delete_repository("sdk/gone")  # the SDK takes 404 as success
    assert [e.status for e in wire.since(mark)] == [404]

    # What the SDK throws away: ACR's DeleteRepositoryResult.
    response = owner.delete("/acr/v1/sdk/gone-too")
    assert response.status_code == 202
    assert response.json() == {"manifestsDeleted": [pushed["sdk/gone-too:y"]], "tagsDeleted": ["y"]}


# tags ------------------------------------------------------------------------------------------------------------

def test_list_tag_properties_orders_by_time_and_pages(sdk: ContainerRegistryClient, wire: RecordingTransport,
                                                     pushed: dict[str, str]) -> None:
    mark = wire.mark()
    newest_first = list(sdk.list_tag_properties(
        "sdk/ordered", order_by=ArtifactTagOrder.LAST_UPDATED_ON_DESCENDING, results_per_page=1))
    assert [t.name for t in newest_first] == ["alpha", "beta", "rc"]
    assert [t.digest for t in newest_first] == [pushed[f"sdk/ordered:{n}"] for n in ["alpha", "beta", "rc"]]
    gets = wire.since(mark)
    assert [e.status for e in gets] == [200, 200, 200]
    assert all(e.path == "/acr/v1/sdk/ordered/_tags" for e in gets)
    assert gets[0].query == {"n": ["1"], "orderby": ["timedesc"]}, "no api-version on the SDK's own pager"
    assert [e.query.get("last") for e in gets] == [None, ["alpha"], ["beta"]]
    assert all(e.query["orderby"] == ["timedesc"] and e.query["n"] == ["1"] for e in gets), \
        "the Link must carry orderby and n: the SDK follows it verbatim"

    oldest_first = [t.name for t in sdk.list_tag_properties("sdk/ordered", order_by="timeasc", results_per_page=2)]
    assert oldest_first == ["rc", "beta", "alpha"]
    assert [t.name for t in sdk.list_tag_properties("sdk/ordered")] == ["alpha", "beta", "rc"]
    for tag in newest_first:
        assert tag.created_on <= tag.last_updated_on and tag.created_on.utcoffset() == timedelta(0)
        assert attrs(tag) == ALL_ENABLED
    times = [t.last_updated_on for t in newest_first]
    assert times == sorted(times, reverse=True)


def test_list_tag_properties_order_by_none(sdk: ContainerRegistryClient, wire: RecordingTransport,
                                          pushed: dict[str, str]) -> None:
    """ArtifactTagOrder.NONE is documented as "do not provide an orderby value", but 1.2.0 sends `orderby=none`."""
    mark = wire.mark()
    assert [t.name for t in sdk.list_tag_properties("sdk/ordered", order_by=ArtifactTagOrder.NONE)] == \
        ["alpha", "beta", "rc"]
    assert wire.since(mark)[0].query["orderby"] == ["none"]
    assert {m.digest for m in sdk.list_manifest_properties("sdk/ordered", order_by=ArtifactManifestOrder.NONE)} \
        == {pushed[f"sdk/ordered:{n}"] for n in ["alpha", "beta", "rc"]}


def test_list_tag_properties_of_one_digest(sdk: ContainerRegistryClient, wire: RecordingTransport,
                                          pushed: dict[str, str]) -> None:
    mark = wire.mark()
    tags = list(sdk.list_tag_properties("sdk/api", digest=pushed["sdk/api:latest"]))
    assert sorted(t.name for t in tags) == ["also", "latest"]
    assert wire.since(mark)[0].query["digest"] == [pushed["sdk/api:latest"]]
    with pytest.raises(ResourceNotFoundError):
        list(sdk.list_tag_properties("sdk/nothing-here"))


def test_get_tag_properties(sdk: ContainerRegistryClient, wire: RecordingTransport,
                           pushed: dict[str, str]) -> None:
    mark = wire.mark()
    tag = sdk.get_tag_properties("sdk/web", "v1")
    assert (tag.name, tag.digest) == ("v1", pushed["sdk/web:v1"])
    assert attrs(tag) == ALL_ENABLED and tag.created_on <= tag.last_updated_on
    assert tag.repository_name is None, "1.2.0 passes repository= but reads repository_name"
    [get] = wire.since(mark)
    assert (get.path, get.query) == ("/acr/v1/sdk/web/_tags/v1", {"api-version": [API_VERSION]})
    with pytest.raises(ResourceNotFoundError):
        sdk.get_tag_properties("sdk/web", "no-such-tag")
    with pytest.raises(ResourceNotFoundError):
        sdk.get_tag_properties("sdk/nothing-here", "v1")


def test_update_tag_properties(sdk: ContainerRegistryClient, wire: RecordingTransport,
                               pushed: dict[str, str]) -> None:
    before = sdk.get_tag_properties("sdk/web", "v2")
    mark = wire.mark()
    updated = sdk.update_tag_properties("sdk/web", "v2", can_delete=False, can_list=False)
    assert attrs(updated) == (False, True, True, False) and updated.digest == pushed["sdk/web:v2"]
    assert updated.last_updated_on >= before.last_updated_on
    assert wire.challenged_scopes(mark) == ["repository:sdk/web:metadata_write"]
    [patch] = wire.since(mark)
    assert (patch.method, patch.path, patch.status) == ("PATCH", "/acr/v1/sdk/web/_tags/v2", 200)
    assert isinstance(patch.body, bytes) and json.loads(patch.body) == {"deleteEnabled": False,
                                                                        "listEnabled": False}
    assert attrs(sdk.get_tag_properties("sdk/web", "v2")) == (False, True, True, False)

    properties = sdk.get_tag_properties("sdk/web", "v2")
    properties.can_delete = properties.can_list = True
    assert attrs(sdk.update_tag_properties("sdk/web", "v2", properties)) == ALL_ENABLED
    with pytest.raises(ResourceNotFoundError):
        sdk.update_tag_properties("sdk/web", "no-such-tag", can_read=False)


def test_delete_tag(sdk: ContainerRegistryClient, wire: RecordingTransport, pushed: dict[str, str]) -> None:
    mark = wire.mark()
    assert sdk.delete_tag("sdk/api", "latest") is None
    assert wire.challenged_scopes(mark) == ["repository:sdk/api:delete"]
    [delete] = wire.since(mark)
    assert (delete.method, delete.path, delete.status) == ("DELETE", "/acr/v1/sdk/api/_tags/latest", 202)
    assert delete.query == {"api-version": [API_VERSION]}
    with pytest.raises(ResourceNotFoundError):
        sdk.get_tag_properties("sdk/api", "latest")
    remaining = sdk.get_manifest_properties("sdk/api", pushed["sdk/api:latest"])
    assert remaining.tags == ["also"], "deleting a tag leaves its manifest"

    mark = wire.mark()
    sdk.delete_tag("sdk/api", "latest")  # the SDK takes 404 as success
    assert [e.status for e in wire.since(mark)] == [404]


# manifests -------------------------------------------------------------------------------------------------------

def test_list_manifest_properties_orders_by_time_and_pages(sdk: ContainerRegistryClient, wire: RecordingTransport,
                                                          pushed: dict[str, str]) -> None:
    order = [pushed["sdk/multi:amd64"], pushed["sdk/multi:arm64"], pushed["sdk/multi:latest"]]
    mark = wire.mark()
    oldest_first = list(sdk.list_manifest_properties(
        "sdk/multi", order_by=ArtifactManifestOrder.LAST_UPDATED_ON_ASCENDING, results_per_page=1))
    assert [m.digest for m in oldest_first] == order
    gets = wire.since(mark)
    assert [e.status for e in gets] == [200, 200, 200]
    assert all(e.path == "/acr/v1/sdk/multi/_manifests" for e in gets)
    assert gets[0].query == {"n": ["1"], "orderby": ["timeasc"]}
    assert [e.query.get("last") for e in gets] == [None, [order[0]], [order[1]]]
    assert all(e.query["orderby"] == ["timeasc"] for e in gets)

    newest_first = [m.digest for m in sdk.list_manifest_properties("sdk/multi", order_by="timedesc",
                                                                   results_per_page=2)]
    assert newest_first == order[::-1]
    assert sorted(m.digest for m in sdk.list_manifest_properties("sdk/multi")) == sorted(order)

    amd64, arm64, index = oldest_first
    assert (amd64.architecture, amd64.operating_system) == (ArtifactArchitecture.AMD64, ArtifactOperatingSystem.LINUX)
    assert (arm64.architecture, arm64.operating_system) == (ArtifactArchitecture.ARM64, ArtifactOperatingSystem.LINUX)
    assert (amd64.tags, arm64.tags, index.tags) == (["amd64"], ["arm64"], ["latest"])
    assert index.architecture is None and index.operating_system is None
    for manifest in oldest_first:
        assert manifest.repository_name == "sdk/multi" and attrs(manifest) == ALL_ENABLED
        assert isinstance(manifest.size_in_bytes, int) and manifest.size_in_bytes > 0
        assert manifest.created_on <= manifest.last_updated_on and manifest.created_on.utcoffset() == timedelta(0)
    with pytest.raises(ResourceNotFoundError):
        list(sdk.list_manifest_properties("sdk/nothing-here"))


def test_an_index_lists_its_children_platforms(sdk: ContainerRegistryClient, owner: httpx.Client,
                                              pushed: dict[str, str]) -> None:
    """ArtifactManifestProperties (1.2.0) drops `references`; the generated layer under it still reads them."""
    generated = sdk._client.container_registry.get_manifest_properties(
        "sdk/multi", pushed["sdk/multi:latest"]).manifest
    assert {(r.digest, r.architecture, r.operating_system) for r in generated.related_artifacts} == {
        (pushed["sdk/multi:amd64"], "amd64", "linux"), (pushed["sdk/multi:arm64"], "arm64", "linux")}
    raw = owner.get(f"/acr/v1/sdk/multi/_manifests/{pushed['sdk/multi:latest']}").json()
    assert raw["imageName"] == "sdk/multi" and raw["manifest"]["mediaType"] == OCI_INDEX
    listed = owner.get("/acr/v1/sdk/multi/_manifests").json()["manifests"]
    [entry] = [m for m in listed if m["digest"] == pushed["sdk/multi:latest"]]
    assert {r["architecture"] for r in entry["references"]} == {"amd64", "arm64"}


def test_get_manifest_properties_by_tag_and_by_digest(sdk: ContainerRegistryClient, wire: RecordingTransport,
                                                     pushed: dict[str, str]) -> None:
    digest = pushed["sdk/multi:arm64"]
    mark = wire.mark()
    by_tag = sdk.get_manifest_properties("sdk/multi", "arm64")
    # A tag is first resolved through /_tags/{tag}; the manifest is then read by digest.
    assert [(e.method, e.path) for e in wire.since(mark)] == [
        ("GET", "/acr/v1/sdk/multi/_tags/arm64"), ("GET", f"/acr/v1/sdk/multi/_manifests/{digest}")]
    assert all(e.query == {"api-version": [API_VERSION]} for e in wire.since(mark))
    by_digest = sdk.get_manifest_properties("sdk/multi", digest)
    for found in (by_tag, by_digest):
        assert found.digest == digest and found.tags == ["arm64"]
        assert found.architecture == ArtifactArchitecture.ARM64
        assert found.operating_system == ArtifactOperatingSystem.LINUX
        assert found.repository_name == "sdk/multi"
    assert by_tag.fully_qualified_reference == by_digest.fully_qualified_reference
    with pytest.raises(ResourceNotFoundError):
        sdk.get_manifest_properties("sdk/multi", "sha256:" + "0" * 64)
    with pytest.raises(ResourceNotFoundError):
        sdk.get_manifest_properties("sdk/multi", "no-such-tag")


def test_update_manifest_properties_by_tag_and_by_digest(sdk: ContainerRegistryClient, wire: RecordingTransport,
                                                        pushed: dict[str, str]) -> None:
    digest = pushed["sdk/web:v3"]
    mark = wire.mark()
    updated = sdk.update_manifest_properties("sdk/web", "v3", can_write=False, can_read=False)
    assert attrs(updated) == (True, False, False, True) and updated.digest == digest
    assert [(e.method, e.path) for e in wire.since(mark)] == [
        ("GET", "/acr/v1/sdk/web/_tags/v3"), ("PATCH", f"/acr/v1/sdk/web/_manifests/{digest}")]
    patch = wire.since(mark)[-1]
    assert isinstance(patch.body, bytes) and json.loads(patch.body) == {"writeEnabled": False,
                                                                        "readEnabled": False}
    assert wire.challenged_scopes(mark) == ["repository:sdk/web:metadata_read", "repository:sdk/web:metadata_write"]

    properties = sdk.get_manifest_properties("sdk/web", digest)
    assert attrs(properties) == (True, False, False, True)
    properties.can_write = properties.can_read = True
    assert attrs(sdk.update_manifest_properties("sdk/web", digest, properties)) == ALL_ENABLED
    assert attrs(sdk.get_manifest_properties("sdk/web", "v3")) == ALL_ENABLED


def test_delete_manifest_by_tag_and_by_digest(sdk: ContainerRegistryClient, wire: RecordingTransport,
                                             owner: httpx.Client, pushed: dict[str, str]) -> None:
    digest = pushed["sdk/api:also"]
    mark = wire.mark()
    assert sdk.delete_manifest("sdk/api", "also") is None
    assert [(e.method, e.path, e.status) for e in wire.since(mark)] == [
        ("GET", "/acr/v1/sdk/api/_tags/also", 200), ("DELETE", f"/v2/sdk/api/manifests/{digest}", 202)]
    assert wire.challenged_scopes(mark)[-1] == "repository:sdk/api:delete"
    with pytest.raises(ResourceNotFoundError):
        sdk.get_manifest_properties("sdk/api", digest)
    with pytest.raises(ResourceNotFoundError):
        sdk.get_tag_properties("sdk/api", "also")

    second = pushed["sdk/api:second"]
    sdk.delete_manifest("sdk/api", second)
    assert owner.get(f"/v2/sdk/api/manifests/{second}").status_code == 404
    mark = wire.mark()
    sdk.delete_manifest("sdk/api", second)  # the SDK takes 404 as success
    assert [e.status for e in wire.since(mark)] == [404]


# blobs and manifests over /v2/ -------------------------------------------------------------------------------------

def test_upload_blob_sends_4_mib_patch_chunks_then_a_bodyless_put(sdk: ContainerRegistryClient,
                                                                  wire: RecordingTransport) -> None:
    blob = filler(CHUNK + 1000, b"two chunks")
    mark = wire.mark()
    digest, size = sdk.upload_blob("sdk/blobs", io.BytesIO(blob))
    assert (digest, size) == (sha256(blob), len(blob))
    assert wire.challenged_scopes(mark)[0] == "repository:sdk/blobs:pull,push"
    start, first, second, finish = wire.since(mark)
    assert (start.method, start.path, start.status) == ("POST", "/v2/sdk/blobs/blobs/uploads/", 202)
    # The SDK joins the Location to its endpoint as a path ("/" + Location): it must not be an absolute URL.
    location = start.headers["location"]
    assert location.startswith("/v2/sdk/blobs/blobs/uploads/")
    for chunk, expected_size, previous in ((first, CHUNK, start), (second, 1000, first)):
        assert (chunk.method, chunk.status, chunk.body_size) == ("PATCH", 202, expected_size)
        assert chunk.url.endswith(previous.headers["location"]), "each chunk goes to the previous Location"
        assert chunk.request_headers["content-type"] == "application/octet-stream"
        assert "content-range" not in chunk.request_headers
    assert (finish.method, finish.status, finish.body_size) == ("PUT", 201, None)
    assert finish.url.split("?")[0].endswith(second.headers["location"].split("?")[0])
    assert finish.query["digest"] == [digest]
    assert finish.headers["docker-content-digest"] == digest

    small = b"one small chunk"
    mark = wire.mark()
    assert sdk.upload_blob("sdk/blobs", io.BytesIO(small)) == (sha256(small), len(small))
    assert [(e.method, e.status) for e in wire.since(mark)] == [("POST", 202), ("PATCH", 202), ("PUT", 201)]


def test_download_blob_reads_4_mib_ranges(sdk: ContainerRegistryClient, wire: RecordingTransport,
                                          owner: httpx.Client) -> None:
    blob = filler(2 * CHUNK + 12345, b"three ranges")
    digest = push_blob(owner, "sdk/blobs", blob)
    mark = wire.mark()
    stream = sdk.download_blob("sdk/blobs", digest)
    assert isinstance(stream, DownloadBlobStream)
    with stream:
        chunks = list(stream)
    assert b"".join(chunks) == blob
    gets = wire.since(mark)
    total = len(blob)
    assert [(e.method, e.request_headers["range"], e.status, e.headers["content-range"], e.headers["content-length"])
            for e in gets] == [
        ("GET", f"bytes=0-{CHUNK - 1}", 206, f"bytes 0-{CHUNK - 1}/{total}", str(CHUNK)),
        ("GET", f"bytes={CHUNK}-{2 * CHUNK - 1}", 206, f"bytes {CHUNK}-{2 * CHUNK - 1}/{total}", str(CHUNK)),
        ("GET", f"bytes={2 * CHUNK}-{3 * CHUNK - 1}", 206, f"bytes {2 * CHUNK}-{total - 1}/{total}", "12345")]
    assert all(e.path == f"/v2/sdk/blobs/blobs/{digest}" for e in gets)
    assert wire.challenged_scopes(mark)[0] == "repository:sdk/blobs:pull"

    small = b"tiny"
    small_digest = push_blob(owner, "sdk/blobs", small)
    mark = wire.mark()
    assert b"".join(sdk.download_blob("sdk/blobs", small_digest)) == small
    [get] = wire.since(mark)
    assert (get.status, get.headers["content-range"]) == (206, "bytes 0-3/4"), \
        "a range past the end is cut to the blob, not refused"

    with pytest.raises(ResourceNotFoundError):
        sdk.download_blob("sdk/blobs", "sha256:" + "1" * 64)


def test_download_blob_cannot_read_an_empty_blob(sdk: ContainerRegistryClient) -> None:
    """A limitation of the SDK on any registry: it needs `Content-Range: bytes a-b/N` with N > 0, and
    `bytes=0-4194303` of an empty blob is unsatisfiable (416)."""
    digest, size = sdk.upload_blob("sdk/blobs", io.BytesIO(b""))
    assert (digest, size) == (sha256(b""), 0)
    with pytest.raises((HttpResponseError, ValueError)):
        b"".join(sdk.download_blob("sdk/blobs", digest))


def test_delete_blob(sdk: ContainerRegistryClient, wire: RecordingTransport, owner: httpx.Client) -> None:
    digest = push_blob(owner, "sdk/blobs", b"to be deleted")
    mark = wire.mark()
    assert sdk.delete_blob("sdk/blobs", digest) is None
    assert wire.challenged_scopes(mark) == ["repository:sdk/blobs:delete"]
    [delete] = wire.since(mark)
    assert (delete.method, delete.path, delete.status) == ("DELETE", f"/v2/sdk/blobs/blobs/{digest}", 202)
    with pytest.raises(ResourceNotFoundError):
        b"".join(sdk.download_blob("sdk/blobs", digest))
    mark = wire.mark()
    sdk.delete_blob("sdk/blobs", digest)  # the SDK swallows 404
    assert [e.status for e in wire.since(mark)] == [404]


def _upload_image_blobs(sdk: ContainerRegistryClient, repository: str, config: bytes,
                        layer: bytes) -> tuple[str, str]:
    config_digest, _ = sdk.upload_blob(repository, io.BytesIO(config))
    layer_digest, _ = sdk.upload_blob(repository, io.BytesIO(layer))
    return config_digest, layer_digest


def test_set_manifest_from_a_dict_and_get_manifest(sdk: ContainerRegistryClient, wire: RecordingTransport) -> None:
    config = json.dumps({"architecture": "arm64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    layer = filler(3000, b"oci layer")
    config_digest, layer_digest = _upload_image_blobs(sdk, "sdk/set", config, layer)
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
                "layers": [{"mediaType": OCI_LAYER, "digest": layer_digest, "size": len(layer)}]}
    mark = wire.mark()
    digest = sdk.set_manifest("sdk/set", manifest, tag="oci")
    assert digest == sha256(json.dumps(manifest).encode()), "the SDK sends json.dumps(manifest)"
    [put] = wire.since(mark)
    assert (put.method, put.path, put.status) == ("PUT", "/v2/sdk/set/manifests/oci", 201)
    assert put.request_headers["content-type"] == OCI_MANIFEST
    assert put.headers["docker-content-digest"] == digest
    assert wire.challenged_scopes(mark) == ["repository:sdk/set:pull,push"]

    mark = wire.mark()
    fetched = sdk.get_manifest("sdk/set", "oci")
    assert (fetched.digest, fetched.media_type, fetched.manifest) == (digest, OCI_MANIFEST, manifest)
    [get] = wire.since(mark)
    assert (get.method, get.path, get.status) == ("GET", "/v2/sdk/set/manifests/oci", 200)
    assert get.request_headers["accept"].split(", ")[:3] == ["*/*", OCI_MANIFEST, DOCKER_MANIFEST]
    # get_manifest needs Content-Length (a chunked answer fails) and Docker-Content-Digest.
    assert get.headers["content-length"] == str(len(json.dumps(manifest).encode()))
    assert get.headers["docker-content-digest"] == digest
    assert sdk.get_manifest("sdk/set", digest).manifest == manifest

    properties = sdk.get_manifest_properties("sdk/set", "oci")
    assert properties.architecture == ArtifactArchitecture.ARM64, "read from the config blob at push time"
    assert properties.operating_system == ArtifactOperatingSystem.LINUX

    # Without a tag the SDK puts the manifest by its own digest.
    untagged = {**manifest, "annotations": {"org.example.untagged": "yes"}}
    mark = wire.mark()
    untagged_digest = sdk.set_manifest("sdk/set", untagged)
    [put] = wire.since(mark)
    assert put.path == f"/v2/sdk/set/manifests/{untagged_digest}"
    assert not sdk.get_manifest_properties("sdk/set", untagged_digest).tags
    assert sdk.get_manifest("sdk/set", untagged_digest).manifest == untagged


def test_set_manifest_from_the_oci_manifest_model(sdk: ContainerRegistryClient) -> None:
    """1.2.0 no longer exports OCIManifest; the generated model serializes without `mediaType`, which an OCI
    registry must accept when Content-Type names the type. The model object itself is not accepted."""
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    layer = filler(500, b"model layer")
    config_digest, layer_digest = _upload_image_blobs(sdk, "sdk/set", config, layer)
    model = OCIManifest(schema_version=2,
                        config=Descriptor(media_type=OCI_CONFIG, digest=config_digest, size=len(config)),
                        layers=[Descriptor(media_type=OCI_LAYER, digest=layer_digest, size=len(layer))])
    serialized = model.serialize()
    assert "mediaType" not in serialized
    digest = sdk.set_manifest("sdk/set", serialized, tag="model")
    fetched = sdk.get_manifest("sdk/set", "model")
    assert (fetched.digest, fetched.media_type, fetched.manifest) == (digest, OCI_MANIFEST, serialized)
    with pytest.raises((AttributeError, TypeError)):
        sdk.set_manifest("sdk/set", model)  # type: ignore[arg-type]


def test_set_manifest_docker_v2_from_bytes(sdk: ContainerRegistryClient, wire: RecordingTransport) -> None:
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}},
                        indent=1).encode()
    layer = filler(2000, b"docker layer")
    config_digest, layer_digest = _upload_image_blobs(sdk, "sdk/set", config, layer)
    manifest = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
                "config": {"mediaType": DOCKER_CONFIG, "digest": config_digest, "size": len(config)},
                "layers": [{"mediaType": DOCKER_LAYER, "digest": layer_digest, "size": len(layer)}]}
    raw = json.dumps(manifest, indent=3).encode()  # not canonical JSON: the registry must keep the bytes as sent
    mark = wire.mark()
    digest = sdk.set_manifest("sdk/set", io.BytesIO(raw), tag="docker", media_type=DOCKER_MANIFEST)
    assert digest == sha256(raw)
    [put] = wire.since(mark)
    assert put.request_headers["content-type"] == DOCKER_MANIFEST and put.body == raw

    by_tag = sdk.get_manifest("sdk/set", "docker")
    by_digest = sdk.get_manifest("sdk/set", digest)  # the SDK hashes the body and compares it with the digest
    for fetched in (by_tag, by_digest):
        assert (fetched.digest, fetched.media_type, fetched.manifest) == (digest, DOCKER_MANIFEST, manifest)
    properties = sdk.get_manifest_properties("sdk/set", "docker")
    assert properties.architecture == ArtifactArchitecture.AMD64 and properties.size_in_bytes


def test_get_manifest_of_an_index_and_of_unknown_references(sdk: ContainerRegistryClient,
                                                             pushed: dict[str, str]) -> None:
    index = sdk.get_manifest("sdk/multi", "latest")
    assert (index.digest, index.media_type) == (pushed["sdk/multi:latest"], OCI_INDEX)
    assert [m["digest"] for m in index.manifest["manifests"]] == [pushed["sdk/multi:amd64"],
                                                                 pushed["sdk/multi:arm64"]]
    assert sdk.get_manifest("sdk/multi", index.digest).manifest == index.manifest
    with pytest.raises(ResourceNotFoundError):
        sdk.get_manifest("sdk/multi", "sha256:" + "0" * 64)
    with pytest.raises(ResourceNotFoundError):
        sdk.get_manifest("sdk/multi", "no-such-tag")


# anonymous ---------------------------------------------------------------------------------------------------------

WRITES = {
    "update_repository_properties": lambda c, p: c.update_repository_properties("sdk/web", can_delete=False),
    "update_tag_properties": lambda c, p: c.update_tag_properties("sdk/web", "v1", can_delete=False),
    "update_manifest_properties": lambda c, p: c.update_manifest_properties("sdk/web", p["sdk/web:v1"],
                                                                            can_delete=False),
    "delete_tag": lambda c, p: c.delete_tag("sdk/web", "v1"),
    "delete_manifest": lambda c, p: c.delete_manifest("sdk/web", p["sdk/web:v1"]),
    "delete_repository": lambda c, p: c.delete_repository("sdk/web"),
    "upload_blob": lambda c, p: c.upload_blob("sdk/web", io.BytesIO(b"anonymous")),
    "set_manifest": lambda c, p: c.set_manifest("sdk/web", io.BytesIO(make_image("anon", 1).manifest), tag="anon"),
    "delete_blob": lambda c, p: c.delete_blob("sdk/web", sha256(make_image("sdk/webv1", 1).layers[0])),
}


def test_anonymous_client(tls_server: RunningServer, ca_file: str, sdk: ContainerRegistryClient,
                          owner: httpx.Client, pushed: dict[str, str]) -> None:
    anonymous_wire = RecordingTransport(connection_verify=ca_file)
    with sdk_client(tls_server, ca_file, None, anonymous_wire) as anonymous:
        # Anonymous pull off: nothing is readable.
        with pytest.raises(ClientAuthenticationError):
            anonymous.get_manifest("sdk/web", "v1")
        with pytest.raises(ClientAuthenticationError):
            list(anonymous.list_repository_names())
        token_requests = [e for e in anonymous_wire.exchanges if e.path.startswith("/oauth2/")]
        assert token_requests and all(e.path == "/oauth2/token" and e.method == "POST" for e in token_requests), \
            "anonymous mode never calls /oauth2/exchange"
        form = token_requests[0].body
        assert isinstance(form, dict) and form["grant_type"] == "password" and "username" not in form
        assert not form.get("refresh_token")

        cargohold(tls_server, "update", "--anonymous-pull-enabled", "true")
        try:
            layer = make_image("sdk/webv1", 1).layers[0]
            assert "sdk/web" in set(anonymous.list_repository_names())
            assert anonymous.get_repository_properties("sdk/web").tag_count == 3
            assert {t.name for t in anonymous.list_tag_properties("sdk/web")} == {"v1", "v2", "v3"}
            assert anonymous.get_tag_properties("sdk/web", "v1").digest == pushed["sdk/web:v1"]
            assert pushed["sdk/web:v1"] in {m.digest for m in anonymous.list_manifest_properties("sdk/web")}
            assert anonymous.get_manifest_properties("sdk/web", "v1").digest == pushed["sdk/web:v1"]
            assert anonymous.get_manifest("sdk/web", "v1").digest == pushed["sdk/web:v1"]
            assert b"".join(anonymous.download_blob("sdk/web", sha256(layer))) == layer

            for name, write in WRITES.items():
                with pytest.raises(ClientAuthenticationError) as refused:
                    write(anonymous, pushed)
                assert refused.value.status_code == 401, name
        finally:
            cargohold(tls_server, "update", "--anonymous-pull-enabled", "false")

    # Nothing changed.
    assert attrs(sdk.get_repository_properties("sdk/web")) == ALL_ENABLED
    assert attrs(sdk.get_tag_properties("sdk/web", "v1")) == ALL_ENABLED
    assert attrs(sdk.get_manifest_properties("sdk/web", pushed["sdk/web:v1"])) == ALL_ENABLED
    assert {t.name for t in sdk.list_tag_properties("sdk/web")} == {"v1", "v2", "v3"}
    assert owner.head(f"/v2/sdk/web/blobs/{sha256(make_image('sdk/webv1', 1).layers[0])}").status_code == 200


def test_close(tls_server: RunningServer, ca_file: str) -> None:
    client = sdk_client(tls_server, ca_file, owner_credential(tls_server, ca_file))
    assert "sdk/web" in set(client.list_repository_names())
    client.close()

