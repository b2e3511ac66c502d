"""Deleting a registry through `azure-mgmt-containerregistry` removes everything it had (repositories, tags,
manifests, scope maps, tokens, webhooks, the blobs only it used) and nothing another registry still needs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.containerregistry import ContainerRegistryManagementClient
from azure.mgmt.containerregistry.models import (
    GenerateCredentialsParameters,
    ScopeMap,
    Token,
    WebhookCreateParameters,
)

from tests.management.conftest import (
    DEFAULT_REGISTRY,
    HOME,
    RESOURCE_GROUP,
    access_token,
    blob_path,
    create_registry,
    data_client,
    make_credential,
    make_identity,
    management_client,
    unique,
)
from tests.support.images import (
    OCI_MANIFEST,
    Image,
    image_from_layers,
    layer_tarball,
    make_image,
    push_image,
    sha256,
)
from tests.support.server import RunningServer


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """These tests look at blob files, so their server keeps them on the filesystem whatever the suite runs on."""
    running = RunningServer(tmp_path_factory.mktemp("tls") / "data", extra_args=["--tls", "self-signed"],
                            scheme="https", local_store=True).start(verify=False)
    yield running
    running.stop()


@dataclass
class Setup:
    doomed: str
    survivor: str
    doomed_images: dict[str, Image]
    survivor_image: Image
    shared_layer: bytes
    token_password: str
    admin_password: str
    upload_id: str
    reader: tuple[str, str]


def blobs_of(image: Image) -> list[bytes]:
    return [image.config, *image.layers]


@pytest.fixture(scope="module")
def setup(mgmt: ContainerRegistryManagementClient, tls_server: RunningServer) -> Setup:
    doomed, survivor = unique("doomed"), unique("survivor")
    create_registry(mgmt, doomed, sku="Standard", admin_user_enabled=True)
    create_registry(mgmt, survivor, sku="Standard")

    shared = layer_tarball({"shared/base.txt": b"a base layer both registries use\n" * 50})
    doomed_images = {
        "app/web": image_from_layers([shared, layer_tarball({"web.txt": b"only in the doomed registry, web\n"})]),
        "app/api": image_from_layers([shared, layer_tarball({"api.txt": b"only in the doomed registry, api\n"})]),
    }
    survivor_image = image_from_layers([shared, layer_tarball({"keep.txt": b"only in the survivor\n"})])
    with data_client(tls_server, doomed) as http:
        for repository, image in doomed_images.items():
            push_image(http, repository, "v1", image)
            push_image(http, repository, "latest", image)
        started = http.post("/v2/app/web/blobs/uploads/")
        assert started.status_code == 202
        upload_id = started.headers["Location"].rstrip("/").split("?")[0].rsplit("/", 1)[1]
    with data_client(tls_server, survivor) as http:
        push_image(http, "app/web", "v1", survivor_image)

    mapping = mgmt.scope_maps.begin_create(RESOURCE_GROUP, doomed, "doomedmap", ScopeMap(
        actions=["repositories/app/web/content/read"])).result()
    token = mgmt.tokens.begin_create(RESOURCE_GROUP, doomed, "doomedtoken", Token(scope_map_id=mapping.id)).result()
    token_password = mgmt.registries.begin_generate_credentials(RESOURCE_GROUP, doomed, GenerateCredentialsParameters(
        token_id=token.id, name="password1")).result().passwords[0].value
    mgmt.webhooks.begin_create(RESOURCE_GROUP, doomed, "doomedhook", WebhookCreateParameters(
        location=HOME, service_uri="http://127.0.0.1:9/hook", actions=["push"])).result()
    admin_password = mgmt.registries.list_credentials(RESOURCE_GROUP, doomed).passwords[0].value
    reader = make_identity(tls_server, unique("doomedreader"), "Reader", doomed)

    # Before: everything is where it should be and works.
    for blob in [shared, *(b for image in doomed_images.values() for b in blobs_of(image)),
                 *blobs_of(survivor_image)]:
        assert blob_path(tls_server, sha256(blob)).is_file()
    assert (tls_server.data_dir / "storage" / "uploads" / upload_id).exists()
    assert access_token(tls_server, doomed, ("doomedtoken", token_password),
                        "repository:app/web:pull").status_code == 200
    assert access_token(tls_server, doomed, (doomed, admin_password), "repository:app/web:pull").status_code == 200

    mgmt.registries.begin_delete(RESOURCE_GROUP, doomed).result()
    return Setup(doomed, survivor, doomed_images, survivor_image, shared, token_password, admin_password, upload_id,
                 reader)


def test_the_registry_and_its_resources_are_gone(mgmt: ContainerRegistryManagementClient, setup: Setup) -> None:
    with pytest.raises(ResourceNotFoundError):
        mgmt.registries.get(RESOURCE_GROUP, setup.doomed)
    assert setup.doomed not in {r.name for r in mgmt.registries.list()}
    for call in (lambda: mgmt.scope_maps.get(RESOURCE_GROUP, setup.doomed, "doomedmap"),
                 lambda: mgmt.tokens.get(RESOURCE_GROUP, setup.doomed, "doomedtoken"),
                 lambda: mgmt.webhooks.get(RESOURCE_GROUP, setup.doomed, "doomedhook"),
                 lambda: list(mgmt.webhooks.list(RESOURCE_GROUP, setup.doomed)),
                 lambda: mgmt.registries.list_usages(RESOURCE_GROUP, setup.doomed)):
        with pytest.raises(ResourceNotFoundError):
            call()


def test_its_login_server_stops_answering(tls_server: RunningServer, setup: Setup) -> None:
    with data_client(tls_server, setup.doomed) as http:
        assert http.get("/v2/").status_code == 404
        assert http.get("/v2/app/web/manifests/v1", headers={"Accept": OCI_MANIFEST}).status_code == 404
        assert http.get("/v2/_catalog").status_code == 404
    assert access_token(tls_server, setup.doomed, ("doomedtoken", setup.token_password),
                        "repository:app/web:pull").status_code in (401, 404)


def test_only_its_own_blobs_leave_the_store(tls_server: RunningServer, setup: Setup) -> None:
    own = {sha256(blob) for image in setup.doomed_images.values() for blob in blobs_of(image)} - {
        sha256(setup.shared_layer)}
    assert len(own) == 4  # two configs and two layers; the shared layer is not among them
    for digest in own:
        assert not blob_path(tls_server, digest).exists(), digest
    assert blob_path(tls_server, sha256(setup.shared_layer)).is_file()
    for blob in blobs_of(setup.survivor_image):
        assert blob_path(tls_server, sha256(blob)).read_bytes() == blob
    assert not (tls_server.data_dir / "storage" / "uploads" / setup.upload_id).exists()


def test_the_other_registry_is_untouched(mgmt: ContainerRegistryManagementClient, tls_server: RunningServer,
                                         setup: Setup) -> None:
    image = setup.survivor_image
    with data_client(tls_server, setup.survivor) as http:
        manifest = http.get("/v2/app/web/manifests/v1", headers={"Accept": OCI_MANIFEST})
        assert manifest.status_code == 200 and manifest.content == image.manifest
        for blob in blobs_of(image):
            fetched = http.get(f"/v2/app/web/blobs/{sha256(blob)}", follow_redirects=True)
            assert fetched.status_code == 200 and fetched.content == blob
        repositories = http.get("/v2/_catalog").json()["repositories"]
        assert "app/web" in repositories and "app/api" not in repositories
    assert mgmt.registries.get(RESOURCE_GROUP, setup.survivor).name == setup.survivor
    # Its storage figure still counts the shared layer.
    size = {u.name: u.current_value for u in mgmt.registries.list_usages(RESOURCE_GROUP, setup.survivor).value}
    assert size["Size"] >= sum(map(len, blobs_of(image)))


def test_the_shared_layer_stays_usable(tls_server: RunningServer, setup: Setup) -> None:
    """The survivor can build on the shared layer it still holds: a new image of it pushes and pulls."""
    image = image_from_layers([setup.shared_layer, layer_tarball({"next.txt": b"a new image on the shared base\n"})])
    with data_client(tls_server, setup.survivor) as http:
        assert http.head(f"/v2/app/web/blobs/{sha256(setup.shared_layer)}").status_code == 200
        push_image(http, "next/app", "v1", image)
        pulled = http.get("/v2/next/app/manifests/v1", headers={"Accept": OCI_MANIFEST})
        assert pulled.status_code == 200 and pulled.content == image.manifest
        fetched = http.get(f"/v2/next/app/blobs/{sha256(setup.shared_layer)}", follow_redirects=True)
        assert fetched.content == setup.shared_layer


def test_a_new_registry_of_the_same_name_starts_empty(mgmt: ContainerRegistryManagementClient,
                                                      tls_server: RunningServer, setup: Setup) -> None:
    reborn = create_registry(mgmt, setup.doomed, sku="Standard")
    try:
        check_empty(mgmt, tls_server, setup, reborn.admin_user_enabled)
    finally:
        mgmt.registries.begin_delete(RESOURCE_GROUP, setup.doomed).result()


def check_empty(mgmt: ContainerRegistryManagementClient, tls_server: RunningServer, setup: Setup,
                admin_user_enabled: bool) -> None:
    assert admin_user_enabled is False
    assert list(mgmt.webhooks.list(RESOURCE_GROUP, setup.doomed)) == []
    assert list(mgmt.tokens.list(RESOURCE_GROUP, setup.doomed)) == []
    assert [m.name for m in mgmt.scope_maps.list(RESOURCE_GROUP, setup.doomed)
            if m.properties.type == "UserDefined"] == []
    with data_client(tls_server, setup.doomed) as http:
        assert http.get("/v2/_catalog").json()["repositories"] == []
        assert http.get("/v2/app/web/tags/list").status_code == 404
        assert http.get(f"/v2/app/web/manifests/{setup.doomed_images['app/web'].digest}",
                        headers={"Accept": OCI_MANIFEST}).status_code == 404
    assert access_token(tls_server, setup.doomed, ("doomedtoken", setup.token_password),
                        "repository:app/web:pull").status_code == 401
    assert access_token(tls_server, setup.doomed, (setup.doomed, setup.admin_password),
                        "repository:app/web:pull").status_code == 401
    usage = {u.name: u.current_value for u in mgmt.registries.list_usages(RESOURCE_GROUP, setup.doomed).value}
    assert usage["Size"] == 0 and usage["Webhooks"] == 0 and usage["Tokens"] == 0
    # A role held on the deleted registry does not carry over to the new one.
    with management_client(tls_server, make_credential(tls_server, *setup.reader)) as former_reader:
        with pytest.raises(HttpResponseError) as refused:
            former_reader.registries.get(RESOURCE_GROUP, setup.doomed)
        assert refused.value.status_code == 403
    # Its identity still signs in (a token is issued), but the token grants nothing here.
    granted = access_token(tls_server, setup.doomed, setup.reader, "repository:app/web:pull").json()["access_token"]
    with data_client(tls_server, setup.doomed, bearer=granted) as http:
        assert http.get("/v2/_catalog").status_code in (401, 403)


def test_fsck_finds_no_damage(tls_server: RunningServer, setup: Setup) -> None:
    checked = tls_server.fsck()
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "0 damaged" in checked.stdout


def test_an_empty_registry_deletes_cleanly(mgmt: ContainerRegistryManagementClient, tls_server: RunningServer,
                                          setup: Setup) -> None:
    empty = unique("empty")
    create_registry(mgmt, empty)
    with data_client(tls_server, empty) as http:
        assert http.get("/v2/").status_code == 200
        mgmt.registries.begin_delete(RESOURCE_GROUP, empty).result()
        assert http.get("/v2/").status_code == 404
    for blob in blobs_of(setup.survivor_image):
        assert blob_path(tls_server, sha256(blob)).is_file()


@pytest.fixture
def lone_server(tmp_path: Path) -> Iterator[RunningServer]:
    """A TLS server of the test's own, so that deleting leaves exactly one registry behind."""
    running = RunningServer(tmp_path / "data", extra_args=["--tls", "self-signed"], scheme="https").start(verify=False)
    yield running
    running.stop()


def test_deleted_login_server_is_not_served_by_the_last_registry(lone_server: RunningServer) -> None:
    """A server with a single registry answers on any host name; a name that belonged to a deleted registry is
    not "any host name": a client pulling `second.localhost/app:v1` must not get the first registry's image."""
    with management_client(lone_server, make_credential(lone_server, *lone_server.credentials)) as mgmt:
        create_registry(mgmt, "second")
        first_image, second_image = make_image("lone-first", 1), make_image("lone-second", 1)
        with data_client(lone_server, DEFAULT_REGISTRY) as http:
            push_image(http, "app", "v1", first_image)
        with data_client(lone_server, "second") as http:
            push_image(http, "app", "v1", second_image)
        mgmt.registries.begin_delete(RESOURCE_GROUP, "second").result()
    with data_client(lone_server, "second") as http:
        assert http.get("/v2/").status_code == 404
        assert http.get("/v2/app/manifests/v1", headers={"Accept": OCI_MANIFEST}).status_code == 404
    with data_client(lone_server, DEFAULT_REGISTRY) as http:
        assert http.get("/v2/app/manifests/v1", headers={"Accept": OCI_MANIFEST}).content == first_image.manifest
