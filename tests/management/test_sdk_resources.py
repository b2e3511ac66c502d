"""Microsoft's `azure-mgmt-containerregistry` SDK against cargohold: a registry's sub-resources (webhooks, scope
maps, tokens, replications) and importImage, each checked by what a user then sees on the data plane."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.containerregistry import ContainerRegistryManagementClient
from azure.mgmt.containerregistry.models import (
    GenerateCredentialsParameters,
    ImportImageParameters,
    ImportSource,
    ImportSourceCredentials,
    Replication,
    ReplicationUpdateParameters,
    ScopeMap,
    ScopeMapUpdateParameters,
    Token,
    TokenUpdateParameters,
    WebhookCreateParameters,
    WebhookUpdateParameters,
)

from tests.management.conftest import (
    DEFAULT_REGISTRY,
    HOME,
    RESOURCE_GROUP,
    access_token,
    create_registry,
    data_client,
    make_credential,
    make_identity,
    management_client,
    registry_path,
    unique,
)
from tests.support.images import OCI_MANIFEST, Image, make_image, push_blob, push_image, sha256
from tests.support.server import RunningServer

SYSTEM_SCOPE_MAPS = {"_repositories_pull", "_repositories_pull_metadata_read", "_repositories_push",
                     "_repositories_push_metadata_write", "_repositories_admin"}


@pytest.fixture(scope="module")
def standard(mgmt: ContainerRegistryManagementClient) -> str:
    name = unique("resources")
    create_registry(mgmt, name, sku="Standard")
    return name


# webhooks -------------------------------------------------------------------------------------------------------

def test_webhook_lifecycle(mgmt: ContainerRegistryManagementClient, standard: str) -> None:
    created = mgmt.webhooks.begin_create(RESOURCE_GROUP, standard, "buildhook", WebhookCreateParameters(
        location=HOME, tags={"purpose": "ci"}, service_uri="https://ci.example.test/hooks/acr?key=s3cret",
        custom_headers={"Authorization": "Bearer hook-secret", "X-Team": "web"},
        actions=["push", "delete"], scope="app/web:*", status="enabled")).result()
    assert created.name == "buildhook"
    assert created.id == f"{registry_path(standard)}/webhooks/buildhook"
    assert created.type == "Microsoft.ContainerRegistry/registries/webhooks"
    assert created.location == HOME and created.tags == {"purpose": "ci"}
    assert created.actions == ["push", "delete"] and created.scope == "app/web:*"
    assert created.status == "enabled" and created.provisioning_state == "Succeeded"

    fetched = mgmt.webhooks.get(RESOURCE_GROUP, standard, "buildhook")
    assert (fetched.actions, fetched.scope, fetched.status) == (["push", "delete"], "app/web:*", "enabled")
    assert "buildhook" in [w.name for w in mgmt.webhooks.list(RESOURCE_GROUP, standard)]

    callback = mgmt.webhooks.get_callback_config(RESOURCE_GROUP, standard, "buildhook")
    assert callback.service_uri == "https://ci.example.test/hooks/acr?key=s3cret"
    assert callback.custom_headers == {"Authorization": "Bearer hook-secret", "X-Team": "web"}

    changed = mgmt.webhooks.begin_update(RESOURCE_GROUP, standard, "buildhook", WebhookUpdateParameters(
        actions=["push"], status="disabled", scope="", service_uri="http://127.0.0.1:9/elsewhere",
        custom_headers={"X-Other": "1"})).result()
    assert (changed.actions, changed.status, changed.scope) == (["push"], "disabled", "")
    fetched = mgmt.webhooks.get(RESOURCE_GROUP, standard, "buildhook")
    assert (fetched.actions, fetched.status, fetched.scope) == (["push"], "disabled", "")
    assert fetched.tags == {"purpose": "ci"}
    callback = mgmt.webhooks.get_callback_config(RESOURCE_GROUP, standard, "buildhook")
    assert callback.service_uri == "http://127.0.0.1:9/elsewhere" and callback.custom_headers == {"X-Other": "1"}

    # Changing only the status keeps the callback.
    mgmt.webhooks.begin_update(RESOURCE_GROUP, standard, "buildhook",
                               WebhookUpdateParameters(status="enabled")).result()
    assert mgmt.webhooks.get_callback_config(RESOURCE_GROUP, standard, "buildhook").custom_headers == {"X-Other": "1"}

    mgmt.webhooks.begin_delete(RESOURCE_GROUP, standard, "buildhook").result()
    with pytest.raises(ResourceNotFoundError):
        mgmt.webhooks.get(RESOURCE_GROUP, standard, "buildhook")
    with pytest.raises(ResourceNotFoundError):
        mgmt.webhooks.get_callback_config(RESOURCE_GROUP, standard, "buildhook")
    assert "buildhook" not in [w.name for w in mgmt.webhooks.list(RESOURCE_GROUP, standard)]


def test_webhook_secrets_stay_out_of_get_and_list(mgmt: ContainerRegistryManagementClient, standard: str,
                                                  arm: httpx.Client) -> None:
    mgmt.webhooks.begin_create(RESOURCE_GROUP, standard, "secrethook", WebhookCreateParameters(
        location=HOME, service_uri="https://hooks.example.test/?sig=topsecret",
        custom_headers={"Authorization": "Basic topsecret"}, actions=["push"])).result()
    for path in (f"{registry_path(standard)}/webhooks/secrethook", f"{registry_path(standard)}/webhooks"):
        response = arm.get(path)
        assert response.status_code == 200 and "topsecret" not in response.text
    mgmt.webhooks.begin_delete(RESOURCE_GROUP, standard, "secrethook").result()


@pytest.mark.parametrize("name, properties", [
    ("bad-name", {"serviceUri": "http://127.0.0.1:9/", "actions": ["push"]}),
    ("goodname1", {"serviceUri": "ftp://127.0.0.1/", "actions": ["push"]}),
    ("goodname2", {"serviceUri": "http://127.0.0.1:9/", "actions": ["explode"]}),
    ("goodname3", {"serviceUri": "http://127.0.0.1:9/", "actions": []}),
    ("goodname4", {"actions": ["push"]}),
])
def test_bad_webhooks_refused(arm: httpx.Client, mgmt: ContainerRegistryManagementClient, standard: str,
                              name: str, properties: dict[str, object]) -> None:
    response = arm.put(f"{registry_path(standard)}/webhooks/{name}", json={"location": HOME, "properties": properties})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"]
    assert name not in [w.name for w in mgmt.webhooks.list(RESOURCE_GROUP, standard)]


# scope maps and tokens ------------------------------------------------------------------------------------------

def test_system_scope_maps_are_listed_and_fixed(mgmt: ContainerRegistryManagementClient, standard: str) -> None:
    listed = {m.name: m for m in mgmt.scope_maps.list(RESOURCE_GROUP, standard)}
    assert SYSTEM_SCOPE_MAPS <= set(listed)
    for name in SYSTEM_SCOPE_MAPS:
        # `.type` is the resource type; the scope map's own type is a property (the SDK flattens both as `type`).
        assert listed[name].type == "Microsoft.ContainerRegistry/registries/scopeMaps"
        assert listed[name].properties.type == "SystemDefined" and listed[name].actions
    pull = mgmt.scope_maps.get(RESOURCE_GROUP, standard, "_repositories_pull")
    assert pull.actions == ["repositories/*/content/read"]
    with pytest.raises(HttpResponseError) as refused:
        mgmt.scope_maps.begin_update(RESOURCE_GROUP, standard, "_repositories_pull", ScopeMapUpdateParameters(
            actions=["repositories/*/content/write"])).result()
    assert refused.value.status_code == 400
    with pytest.raises(HttpResponseError):
        mgmt.scope_maps.begin_delete(RESOURCE_GROUP, standard, "_repositories_pull").result()
    assert mgmt.scope_maps.get(RESOURCE_GROUP, standard, "_repositories_pull").actions == [
        "repositories/*/content/read"]


def test_scope_map_lifecycle(mgmt: ContainerRegistryManagementClient, standard: str) -> None:
    created = mgmt.scope_maps.begin_create(RESOURCE_GROUP, standard, "webreaders", ScopeMap(
        description="pull app/web", actions=["repositories/app/web/content/read",
                                             "repositories/app/web/metadata/read"])).result()
    assert created.id == f"{registry_path(standard)}/scopeMaps/webreaders"
    assert created.properties.type == "UserDefined" and created.provisioning_state == "Succeeded"
    assert created.description == "pull app/web"
    assert sorted(created.actions) == ["repositories/app/web/content/read", "repositories/app/web/metadata/read"]
    assert "webreaders" in [m.name for m in mgmt.scope_maps.list(RESOURCE_GROUP, standard)]

    changed = mgmt.scope_maps.begin_update(RESOURCE_GROUP, standard, "webreaders", ScopeMapUpdateParameters(
        description="push app/web", actions=["repositories/app/web/content/read",
                                             "repositories/app/web/content/write"])).result()
    assert sorted(changed.actions) == ["repositories/app/web/content/read", "repositories/app/web/content/write"]
    fetched = mgmt.scope_maps.get(RESOURCE_GROUP, standard, "webreaders")
    assert fetched.description == "push app/web" and sorted(fetched.actions) == sorted(changed.actions)

    mgmt.scope_maps.begin_delete(RESOURCE_GROUP, standard, "webreaders").result()
    with pytest.raises(ResourceNotFoundError):
        mgmt.scope_maps.get(RESOURCE_GROUP, standard, "webreaders")
    with pytest.raises(HttpResponseError) as bad:
        mgmt.scope_maps.begin_create(RESOURCE_GROUP, standard, "badactions", ScopeMap(
            actions=["repositories/app/web/content/fly"])).result()
    assert bad.value.status_code == 400
    assert "badactions" not in [m.name for m in mgmt.scope_maps.list(RESOURCE_GROUP, standard)]


def test_token_lifecycle(mgmt: ContainerRegistryManagementClient, tls_server: RunningServer, standard: str) -> None:
    mapping = mgmt.scope_maps.begin_create(RESOURCE_GROUP, standard, "cipushers", ScopeMap(
        actions=["repositories/ci/app/content/read", "repositories/ci/app/content/write"])).result()
    token = mgmt.tokens.begin_create(RESOURCE_GROUP, standard, "ci-token", Token(
        scope_map_id=mapping.id, status="enabled")).result()
    assert token.id == f"{registry_path(standard)}/tokens/ci-token"
    assert token.scope_map_id == mapping.id and token.status == "enabled"
    assert token.provisioning_state == "Succeeded"
    assert not [p for p in (token.credentials.passwords or []) if p.value]
    assert "ci-token" in [t.name for t in mgmt.tokens.list(RESOURCE_GROUP, standard)]

    generated = mgmt.registries.begin_generate_credentials(RESOURCE_GROUP, standard, GenerateCredentialsParameters(
        token_id=token.id, name="password1")).result()
    assert generated.username == "ci-token"
    [password1] = generated.passwords
    assert password1.name == "password1" and password1.value

    # The token's password gets an access token for what its scope map allows, and that pushes and pulls.
    granted = access_token(tls_server, standard, ("ci-token", password1.value), "repository:ci/app:pull,push")
    assert granted.status_code == 200, granted.text
    with data_client(tls_server, standard, bearer=granted.json()["access_token"]) as http:
        digest = push_blob(http, "ci/app", b"pushed by a token")
        assert http.get(f"/v2/ci/app/blobs/{digest}").content == b"pushed by a token"
    outside = access_token(tls_server, standard, ("ci-token", password1.value), "repository:other/app:pull,push")
    with data_client(tls_server, standard, bearer=outside.json()["access_token"]) as http:
        assert http.post("/v2/other/app/blobs/uploads/").status_code in (401, 403)
    # A token belongs to its registry: the same name and password are nobody elsewhere.
    assert access_token(tls_server, DEFAULT_REGISTRY, ("ci-token", password1.value),
                        "repository:ci/app:pull").status_code == 401
    listed = mgmt.tokens.get(RESOURCE_GROUP, standard, "ci-token").credentials.passwords
    assert [p.name for p in listed] == ["password1"] and not any(p.value for p in listed)

    # Generating both passwords replaces password1.
    both = mgmt.registries.begin_generate_credentials(RESOURCE_GROUP, standard, GenerateCredentialsParameters(
        token_id=token.id)).result()
    fresh = {p.name: p.value for p in both.passwords}
    assert set(fresh) == {"password1", "password2"} and fresh["password1"] != password1.value
    assert access_token(tls_server, standard, ("ci-token", password1.value), "repository:ci/app:pull").status_code == 401
    for value in fresh.values():
        assert access_token(tls_server, standard, ("ci-token", value), "repository:ci/app:pull").status_code == 200

    with data_client(tls_server, standard, auth=("ci-token", fresh["password2"])) as basic:
        assert basic.head(f"/v2/ci/app/blobs/{digest}").status_code == 200
        disabled = mgmt.tokens.begin_update(RESOURCE_GROUP, standard, "ci-token",
                                            TokenUpdateParameters(status="disabled")).result()
        assert disabled.status == "disabled"
        assert mgmt.tokens.get(RESOURCE_GROUP, standard, "ci-token").status == "disabled"
        assert access_token(tls_server, standard, ("ci-token", fresh["password2"]),
                            "repository:ci/app:pull").status_code == 401
        assert basic.head(f"/v2/ci/app/blobs/{digest}").status_code == 401  # at once, despite earlier success
    mgmt.tokens.begin_update(RESOURCE_GROUP, standard, "ci-token", TokenUpdateParameters(status="enabled")).result()
    assert access_token(tls_server, standard, ("ci-token", fresh["password2"]),
                        "repository:ci/app:pull").status_code == 200

    # A scope map in use cannot go; the token can, and then its password stops working.
    with pytest.raises(HttpResponseError) as in_use:
        mgmt.scope_maps.begin_delete(RESOURCE_GROUP, standard, "cipushers").result()
    assert in_use.value.status_code in (400, 409)
    mgmt.tokens.begin_delete(RESOURCE_GROUP, standard, "ci-token").result()
    with pytest.raises(ResourceNotFoundError):
        mgmt.tokens.get(RESOURCE_GROUP, standard, "ci-token")
    assert access_token(tls_server, standard, ("ci-token", fresh["password2"]),
                        "repository:ci/app:pull").status_code == 401
    mgmt.scope_maps.begin_delete(RESOURCE_GROUP, standard, "cipushers").result()


def test_token_scope_map_change_takes_effect(mgmt: ContainerRegistryManagementClient, tls_server: RunningServer,
                                             standard: str) -> None:
    pull_only = mgmt.scope_maps.get(RESOURCE_GROUP, standard, "_repositories_pull")
    push = mgmt.scope_maps.get(RESOURCE_GROUP, standard, "_repositories_push")
    token = mgmt.tokens.begin_create(RESOURCE_GROUP, standard, "switcher", Token(scope_map_id=pull_only.id)).result()
    password = mgmt.registries.begin_generate_credentials(RESOURCE_GROUP, standard, GenerateCredentialsParameters(
        token_id=token.id, name="password1")).result().passwords[0].value

    def can_push() -> bool:
        issued = access_token(tls_server, standard, ("switcher", password), "repository:switch/app:pull,push")
        with data_client(tls_server, standard, bearer=issued.json()["access_token"]) as http:
            return http.post("/v2/switch/app/blobs/uploads/").status_code == 202

    assert not can_push()
    changed = mgmt.tokens.begin_update(RESOURCE_GROUP, standard, "switcher",
                                       TokenUpdateParameters(scope_map_id=push.id)).result()
    assert changed.scope_map_id == push.id
    assert can_push()
    mgmt.tokens.begin_delete(RESOURCE_GROUP, standard, "switcher").result()


def test_token_password_expiry(mgmt: ContainerRegistryManagementClient, tls_server: RunningServer,
                               standard: str) -> None:
    pull = mgmt.scope_maps.get(RESOURCE_GROUP, standard, "_repositories_pull")
    token = mgmt.tokens.begin_create(RESOURCE_GROUP, standard, "shortlived", Token(scope_map_id=pull.id)).result()
    expiry = datetime.now(UTC) + timedelta(seconds=2)
    generated = mgmt.registries.begin_generate_credentials(RESOURCE_GROUP, standard, GenerateCredentialsParameters(
        token_id=token.id, name="password1", expiry=expiry)).result()
    [password] = generated.passwords
    assert password.expiry is not None and abs((password.expiry - expiry).total_seconds()) < 1
    listed = mgmt.tokens.get(RESOURCE_GROUP, standard, "shortlived").credentials.passwords
    assert listed[0].expiry is not None and abs((listed[0].expiry - expiry).total_seconds()) < 1
    with data_client(tls_server, standard, auth=("shortlived", password.value)) as basic:
        assert access_token(tls_server, standard, ("shortlived", password.value),
                            "repository:ci/app:pull").status_code == 200
        assert basic.get("/v2/").status_code == 200
        time.sleep(max(0.0, (expiry - datetime.now(UTC)).total_seconds()) + 0.5)
        assert access_token(tls_server, standard, ("shortlived", password.value),
                            "repository:ci/app:pull").status_code == 401
        assert basic.get("/v2/").status_code == 401  # also when the password was checked (and cached) before
    mgmt.tokens.begin_delete(RESOURCE_GROUP, standard, "shortlived").result()


def test_token_needs_an_existing_scope_map(mgmt: ContainerRegistryManagementClient, standard: str) -> None:
    with pytest.raises(HttpResponseError) as refused:
        mgmt.tokens.begin_create(RESOURCE_GROUP, standard, "orphan-token", Token(
            scope_map_id=f"{registry_path(standard)}/scopeMaps/nosuchmap")).result()
    assert refused.value.status_code in (400, 404)
    assert "orphan-token" not in [t.name for t in mgmt.tokens.list(RESOURCE_GROUP, standard)]


# replications ---------------------------------------------------------------------------------------------------

def test_replication_lifecycle(mgmt: ContainerRegistryManagementClient) -> None:
    name = unique("replicated")
    create_registry(mgmt, name, sku="Premium")
    created = mgmt.replications.begin_create(RESOURCE_GROUP, name, "westeurope", Replication(
        location="westeurope", tags={"dr": "yes"})).result()
    assert created.id == f"{registry_path(name)}/replications/westeurope"
    assert created.location == "westeurope" and created.tags == {"dr": "yes"}
    assert created.provisioning_state == "Succeeded"
    assert created.status.display_status == "Ready"
    assert created.region_endpoint_enabled is True
    mgmt.replications.begin_create(RESOURCE_GROUP, name, "eastus", Replication(location="eastus")).result()
    assert sorted(r.location for r in mgmt.replications.list(RESOURCE_GROUP, name)) == ["eastus", "westeurope"]

    changed = mgmt.replications.begin_update(RESOURCE_GROUP, name, "eastus", ReplicationUpdateParameters(
        region_endpoint_enabled=False, tags={"x": "y"})).result()
    assert changed.region_endpoint_enabled is False and changed.tags == {"x": "y"}
    assert mgmt.replications.get(RESOURCE_GROUP, name, "eastus").region_endpoint_enabled is False

    # The home location is the registry's own; a second replica in one location is refused too.
    for replica, location in (("homecopy", HOME), ("secondwest", "westeurope")):
        with pytest.raises(HttpResponseError) as refused:
            mgmt.replications.begin_create(RESOURCE_GROUP, name, replica, Replication(location=location)).result()
        assert refused.value.status_code in (400, 409)
    assert len(list(mgmt.replications.list(RESOURCE_GROUP, name))) == 2

    for replica in ("westeurope", "eastus"):
        mgmt.replications.begin_delete(RESOURCE_GROUP, name, replica).result()
    with pytest.raises(ResourceNotFoundError):
        mgmt.replications.get(RESOURCE_GROUP, name, "westeurope")
    assert list(mgmt.replications.list(RESOURCE_GROUP, name)) == []


# importImage ----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def import_pair(mgmt: ContainerRegistryManagementClient, tls_server: RunningServer) -> tuple[str, str, dict[str, Image]]:
    """A source registry holding `hello/app:v1` and `hello/app:v2`, and an empty target registry."""
    source, target = unique("importsrc"), unique("importdst")
    create_registry(mgmt, source, sku="Standard")
    create_registry(mgmt, target, sku="Standard")
    images = {"v1": make_image(f"{source}-v1", 2), "v2": make_image(f"{source}-v2", 1)}
    with data_client(tls_server, source) as http:
        for tag, image in images.items():
            push_image(http, "hello/app", tag, image)
    return source, target, images


def assert_pullable(server: RunningServer, registry: str, repository: str, reference: str, image: Image) -> None:
    with data_client(server, registry) as http:
        response = http.get(f"/v2/{repository}/manifests/{reference}", headers={"Accept": OCI_MANIFEST})
        assert response.status_code == 200, response.text
        assert response.content == image.manifest
        assert response.headers["Docker-Content-Digest"] == image.digest
        for blob in [image.config, *image.layers]:
            fetched = http.get(f"/v2/{repository}/blobs/{sha256(blob)}", follow_redirects=True)
            assert fetched.status_code == 200 and fetched.content == blob


def tag_digest(server: RunningServer, registry: str, repository: str, tag: str) -> str | None:
    with data_client(server, registry) as http:
        response = http.head(f"/v2/{repository}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
        return response.headers.get("Docker-Content-Digest") if response.status_code == 200 else None


def import_into(mgmt: ContainerRegistryManagementClient, target: str, source: ImportSource,
                target_tags: list[str] | None = None, untagged: list[str] | None = None,
                mode: str = "NoForce") -> None:
    mgmt.registries.begin_import_image(RESOURCE_GROUP, target, ImportImageParameters(
        source=source, target_tags=target_tags, untagged_target_repositories=untagged, mode=mode)).result()


def test_import_by_resource_id_and_tag(mgmt: ContainerRegistryManagementClient, tls_server: RunningServer,
                                       import_pair: tuple[str, str, dict[str, Image]]) -> None:
    source, target, images = import_pair
    import_into(mgmt, target, ImportSource(resource_id=registry_path(source), source_image="hello/app:v1"),
                ["copied/app:v1", "copied/app:stable"])
    for tag in ("v1", "stable"):
        assert_pullable(tls_server, target, "copied/app", tag, images["v1"])
    with data_client(tls_server, target) as http:
        assert sorted(http.get("/v2/copied/app/tags/list").json()["tags"]) == ["stable", "v1"]


def test_import_keeps_the_source_name_without_targets(mgmt: ContainerRegistryManagementClient,
                                                      tls_server: RunningServer,
                                                      import_pair: tuple[str, str, dict[str, Image]]) -> None:
    source, target, images = import_pair
    import_into(mgmt, target, ImportSource(resource_id=registry_path(source), source_image="hello/app:v2"))
    assert_pullable(tls_server, target, "hello/app", "v2", images["v2"])


def test_import_by_digest_tagged_and_untagged(mgmt: ContainerRegistryManagementClient, tls_server: RunningServer,
                                              import_pair: tuple[str, str, dict[str, Image]]) -> None:
    source, target, images = import_pair
    image = images["v2"]
    import_into(mgmt, target, ImportSource(resource_id=registry_path(source),
                                           source_image=f"hello/app@{image.digest}"),
                ["bydigest/app:pinned"], ["untagged/app"])
    assert_pullable(tls_server, target, "bydigest/app", "pinned", image)
    assert_pullable(tls_server, target, "untagged/app", image.digest, image)
    with data_client(tls_server, target) as http:
        listed = http.get("/v2/untagged/app/tags/list")
        assert listed.status_code == 404 or not listed.json().get("tags")


def test_import_no_force_refuses_to_move_a_tag_and_force_moves_it(
        mgmt: ContainerRegistryManagementClient, tls_server: RunningServer,
        import_pair: tuple[str, str, dict[str, Image]]) -> None:
    source, target, images = import_pair
    import_into(mgmt, target, ImportSource(resource_id=registry_path(source), source_image="hello/app:v1"),
                ["moving/app:current"])
    assert tag_digest(tls_server, target, "moving/app", "current") == images["v1"].digest

    # NoForce on the same content is fine; on other content it is refused and the tag stays.
    import_into(mgmt, target, ImportSource(resource_id=registry_path(source), source_image="hello/app:v1"),
                ["moving/app:current"])
    with pytest.raises(HttpResponseError) as refused:
        import_into(mgmt, target, ImportSource(resource_id=registry_path(source), source_image="hello/app:v2"),
                    ["moving/app:current", "moving/app:other"])
    assert "conflict" in str(refused.value).lower() or refused.value.status_code == 409
    assert tag_digest(tls_server, target, "moving/app", "current") == images["v1"].digest
    assert tag_digest(tls_server, target, "moving/app", "other") is None  # nothing half-done

    import_into(mgmt, target, ImportSource(resource_id=registry_path(source), source_image="hello/app:v2"),
                ["moving/app:current"], mode="Force")
    assert tag_digest(tls_server, target, "moving/app", "current") == images["v2"].digest
    assert_pullable(tls_server, target, "moving/app", "current", images["v2"])


def test_import_of_a_missing_image_fails(mgmt: ContainerRegistryManagementClient, tls_server: RunningServer,
                                         import_pair: tuple[str, str, dict[str, Image]]) -> None:
    source, target, _ = import_pair
    with pytest.raises(HttpResponseError):
        import_into(mgmt, target, ImportSource(resource_id=registry_path(source), source_image="hello/app:nope"),
                    ["missing/app:x"])
    assert tag_digest(tls_server, target, "missing/app", "x") is None
    with pytest.raises(HttpResponseError) as unknown:
        import_into(mgmt, target, ImportSource(resource_id=registry_path(unique("nosuch")),
                                               source_image="hello/app:v1"))
    assert unknown.value.status_code in (400, 404)


def test_import_needs_read_access_to_the_source(tls_server: RunningServer,
                                                import_pair: tuple[str, str, dict[str, Image]]) -> None:
    """A Contributor of the target who holds no role on the source registry cannot copy out of it."""
    source, target, images = import_pair
    client_id, secret = make_identity(tls_server, unique("importer"), "Contributor", target)
    with management_client(tls_server, make_credential(tls_server, client_id, secret)) as contributor:
        with pytest.raises(HttpResponseError) as refused:
            import_into(contributor, target, ImportSource(resource_id=registry_path(source),
                                                          source_image="hello/app:v1"), ["stolen/app:v1"])
        assert refused.value.status_code in (403, 404)
        # Knowing the digest is not enough either.
        with pytest.raises(HttpResponseError):
            import_into(contributor, target, ImportSource(resource_id=registry_path(source),
                                                          source_image=f"hello/app@{images['v1'].digest}"),
                        ["stolen/app:bydigest"])
    assert tag_digest(tls_server, target, "stolen/app", "v1") is None
    assert tag_digest(tls_server, target, "stolen/app", "bydigest") is None


@pytest.fixture(scope="module")
def http_source(server: RunningServer) -> Iterator[tuple[RunningServer, Image]]:
    """Another cargohold over plain HTTP (its single registry answers on any host), holding `remote/app:1.0`."""
    image = make_image("remote-source", 2)
    with server.client() as http:
        push_image(http, "remote/app", "1.0", image)
    yield server, image


def test_import_by_registry_uri(mgmt: ContainerRegistryManagementClient, tls_server: RunningServer,
                                http_source: tuple[RunningServer, Image],
                                import_pair: tuple[str, str, dict[str, Image]]) -> None:
    remote, image = http_source
    _, target, _ = import_pair
    client_id, secret = remote.credentials
    import_into(mgmt, target, ImportSource(registry_uri=f"http://{remote.host}", source_image="remote/app:1.0",
                                           credentials=ImportSourceCredentials(username=client_id, password=secret)),
                ["fromremote/app:1.0"])
    assert_pullable(tls_server, target, "fromremote/app", "1.0", image)

    import_into(mgmt, target, ImportSource(registry_uri=f"http://{remote.host}",
                                           source_image=f"remote/app@{image.digest}",
                                           credentials=ImportSourceCredentials(username=client_id, password=secret)),
                untagged=["fromremote/pinned"])
    assert_pullable(tls_server, target, "fromremote/pinned", image.digest, image)


def test_import_by_registry_uri_with_bad_credentials_fails(mgmt: ContainerRegistryManagementClient,
                                                           tls_server: RunningServer,
                                                           http_source: tuple[RunningServer, Image],
                                                           import_pair: tuple[str, str, dict[str, Image]]) -> None:
    remote, _ = http_source
    _, target, _ = import_pair
    for credentials in (None, ImportSourceCredentials(username=remote.credentials[0], password="wrong")):
        with pytest.raises(HttpResponseError):
            import_into(mgmt, target, ImportSource(registry_uri=f"http://{remote.host}",
                                                   source_image="remote/app:1.0", credentials=credentials),
                        ["denied/app:1.0"])
    assert tag_digest(tls_server, target, "denied/app", "1.0") is None
