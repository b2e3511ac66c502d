"""Microsoft's `azure-mgmt-containerregistry` SDK against cargohold: registries as ARM resources (create, read,
list, update, name checks, admin credentials, usage, delete) and who may do what on the management plane."""

from __future__ import annotations

import ssl

import httpx
import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from azure.identity import ClientSecretCredential
from azure.mgmt.containerregistry import ContainerRegistryManagementClient
from azure.mgmt.containerregistry.models import (
    ExportPolicy,
    GenerateCredentialsParameters,
    IPRule,
    NetworkRuleSet,
    Policies,
    QuarantinePolicy,
    RegenerateCredentialParameters,
    Registry,
    RegistryNameCheckRequest,
    RegistryNameStatus,
    RegistryUpdateParameters,
    Replication,
    RetentionPolicy,
    ScopeMap,
    Sku,
    Token,
    TrustPolicy,
    WebhookCreateParameters,
)

from tests.management.conftest import (
    API_VERSION,
    DEFAULT_REGISTRY,
    HOME,
    POLL,
    RESOURCE_GROUP,
    SUBSCRIPTION,
    access_token,
    ca_file,
    create_registry,
    data_client,
    error_code,
    login_server,
    make_credential,
    make_identity,
    management_client,
    registry_path,
    unique,
)
from tests.support.images import make_image, push_blob, push_image
from tests.support.server import RunningServer

GIB = 1024**3
REGISTRY_TYPE = "Microsoft.ContainerRegistry/registries"


def update(mgmt: ContainerRegistryManagementClient, name: str, **changes: object) -> Registry:
    return mgmt.registries.begin_update(RESOURCE_GROUP, name, RegistryUpdateParameters(**changes)).result()


# create, read, list ---------------------------------------------------------------------------------------------

def test_create_basic_with_tags_then_get(mgmt: ContainerRegistryManagementClient) -> None:
    name = unique("create")
    created = mgmt.registries.begin_create(RESOURCE_GROUP, name, Registry(
        location=HOME, sku=Sku(name="Basic"), tags={"team": "web", "env": "test"})).result()
    assert created.name == name
    assert created.id == registry_path(name)
    assert created.type == REGISTRY_TYPE
    assert created.location == HOME
    assert created.sku.name == "Basic" and created.sku.tier == "Basic"
    assert created.tags == {"team": "web", "env": "test"}
    assert created.login_server == login_server(name)
    assert created.provisioning_state == "Succeeded"
    assert created.admin_user_enabled is False
    assert created.anonymous_pull_enabled is False
    assert created.public_network_access == "Enabled"
    assert created.creation_date is not None

    fetched = mgmt.registries.get(RESOURCE_GROUP, name)
    assert (fetched.id, fetched.sku.name, fetched.tags, fetched.login_server) == (
        created.id, "Basic", {"team": "web", "env": "test"}, login_server(name))
    assert fetched.policies.retention_policy.status == "disabled"
    assert fetched.policies.export_policy.status == "enabled"
    assert fetched.network_rule_set.default_action == "Allow"


def test_new_registry_answers_on_its_login_server(mgmt: ContainerRegistryManagementClient,
                                                  tls_server: RunningServer) -> None:
    name = unique("answers")
    create_registry(mgmt, name)
    with data_client(tls_server, name) as http:
        digest = push_image(http, "hello/world", "v1", make_image(name, 1))
        assert http.get("/v2/hello/world/tags/list").json() == {"name": "hello/world", "tags": ["v1"]}
    with data_client(tls_server, DEFAULT_REGISTRY) as other:
        assert other.get(f"/v2/hello/world/manifests/{digest}").status_code == 404


def test_get_unknown_registry_is_not_found(mgmt: ContainerRegistryManagementClient) -> None:
    with pytest.raises(ResourceNotFoundError):
        mgmt.registries.get(RESOURCE_GROUP, unique("missing"))
    with pytest.raises(ResourceNotFoundError):
        mgmt.registries.get("othergroup", DEFAULT_REGISTRY)


def test_the_first_registry_is_in_default_group(mgmt: ContainerRegistryManagementClient) -> None:
    first = mgmt.registries.get(RESOURCE_GROUP, DEFAULT_REGISTRY)
    assert first.location == HOME and first.sku.name == "Premium"  # docs/management.md: Premium on first start
    assert first.id == registry_path(DEFAULT_REGISTRY)


def test_list_and_list_by_resource_group(mgmt: ContainerRegistryManagementClient) -> None:
    group = unique("group")
    here, there = unique("here"), unique("there")
    create_registry(mgmt, here, resource_group=group)
    create_registry(mgmt, there)
    in_group = [r.name for r in mgmt.registries.list_by_resource_group(group)]
    assert in_group == [here]
    everywhere = {r.name: r for r in mgmt.registries.list()}
    assert {here, there, DEFAULT_REGISTRY} <= set(everywhere)
    assert everywhere[here].id == registry_path(here, group)
    in_default = {r.name for r in mgmt.registries.list_by_resource_group(RESOURCE_GROUP)}
    assert there in in_default and here not in in_default
    assert list(mgmt.registries.list_by_resource_group(unique("empty"))) == []


def test_names_and_groups_compare_without_case(mgmt: ContainerRegistryManagementClient) -> None:
    name = unique("MixedCase")
    created = create_registry(mgmt, name, resource_group="MixedGroup")
    assert created.login_server == login_server(name) == f"{name.lower()}.localhost"
    for group, asked in (("MixedGroup", name.upper()), ("mixedgroup", name.lower()), ("MIXEDGROUP", name)):
        assert mgmt.registries.get(group, asked).login_server == login_server(name)
    assert [r.login_server for r in mgmt.registries.list_by_resource_group("mixedGROUP")] == [login_server(name)]
    assert mgmt.registries.check_name_availability(RegistryNameCheckRequest(
        name=name.lower(), type=REGISTRY_TYPE)).name_available is False


def test_subscriptions_are_separate(tls_server: RunningServer, owner_credential: ClientSecretCredential,
                                    mgmt: ContainerRegistryManagementClient) -> None:
    name = unique("othersub")
    with ContainerRegistryManagementClient(owner_credential, subscription_id="othersubscription",
                                           base_url=tls_server.url, connection_verify=ca_file(tls_server),
                                           polling_interval=POLL, retry_total=0) as other:
        created = create_registry(other, name)
        assert created.id == registry_path(name, subscription="othersubscription")
        assert [r.name for r in other.registries.list()] == [name]
        assert DEFAULT_REGISTRY not in {r.name for r in other.registries.list()}
        with pytest.raises(ResourceNotFoundError):
            other.registries.get(RESOURCE_GROUP, DEFAULT_REGISTRY)
        # Registry names are global (they make the login server), across subscriptions too.
        with pytest.raises(HttpResponseError):
            create_registry(other, DEFAULT_REGISTRY)
    assert name not in {r.name for r in mgmt.registries.list()}
    with pytest.raises(ResourceNotFoundError):
        mgmt.registries.get(RESOURCE_GROUP, name)


def test_registry_names_are_unique_across_groups(mgmt: ContainerRegistryManagementClient) -> None:
    name = unique("taken")
    create_registry(mgmt, name)
    with pytest.raises(HttpResponseError) as refused:
        create_registry(mgmt, name, resource_group=unique("elsewhere"))
    assert refused.value.status_code in (400, 409)
    assert mgmt.registries.get(RESOURCE_GROUP, name).id == registry_path(name)


def test_create_refuses_bad_names_and_missing_sku(mgmt: ContainerRegistryManagementClient,
                                                  arm: httpx.Client) -> None:
    with pytest.raises(HttpResponseError) as bad_name:
        create_registry(mgmt, "no-dashes-allowed")
    assert bad_name.value.status_code == 400
    response = arm.put(registry_path(unique("nosku")), json={"location": HOME})
    assert response.status_code == 400, response.text
    assert "code" in response.json()["error"]


def test_put_twice_creates_then_updates(mgmt: ContainerRegistryManagementClient, arm: httpx.Client) -> None:
    name = unique("putput")
    first = arm.put(registry_path(name), json={"location": HOME, "sku": {"name": "Basic"}, "tags": {"v": "1"}})
    assert first.status_code in (200, 201), first.text
    assert first.json()["properties"]["provisioningState"] == "Succeeded"
    again = mgmt.registries.begin_create(RESOURCE_GROUP, name, Registry(
        location=HOME, sku=Sku(name="Standard"), tags={"v": "2"})).result()
    assert again.sku.name == "Standard" and again.tags == {"v": "2"}
    second = arm.put(registry_path(name), json={"location": HOME, "sku": {"name": "Standard"}, "tags": {"v": "3"}})
    assert second.status_code == 200, second.text
    assert mgmt.registries.get(RESOURCE_GROUP, name).tags == {"v": "3"}
    assert arm.delete(registry_path(name)).status_code in (200, 202)
    assert arm.delete(registry_path(name)).status_code == 204


def test_arm_conventions(arm: httpx.Client, tls_server: RunningServer, ca: str) -> None:
    """`api-version` is required, and even a path the server does not serve answers in ARM's error shape, so
    the SDK can report a code (azure.mgmt.core's ARMErrorFormat reads `error.code`)."""
    url = f"{tls_server.url}{registry_path(DEFAULT_REGISTRY)}"
    missing = httpx.get(url, headers={"Authorization": arm.headers["Authorization"]},
                        verify=ssl.create_default_context(cafile=ca))
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "MissingApiVersionParameter"
    for path in (f"{registry_path(DEFAULT_REGISTRY)}/noSuchThings",
                 f"{registry_path(DEFAULT_REGISTRY)}/webhooks/nosuchhook/noSuchAction",
                 f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.ContainerRegistry/noSuchThings"):
        response = arm.get(path)
        assert response.status_code in (400, 404), (path, response.text)
        body = response.json()
        assert isinstance(body.get("error"), dict) and body["error"].get("code"), (path, body)


# check name availability ----------------------------------------------------------------------------------------

def test_check_name_availability(mgmt: ContainerRegistryManagementClient) -> None:
    def check(name: str) -> RegistryNameStatus:
        return mgmt.registries.check_name_availability(RegistryNameCheckRequest(name=name, type=REGISTRY_TYPE))

    taken = check(DEFAULT_REGISTRY)
    assert taken.name_available is False and taken.reason == "AlreadyExists"
    assert check(DEFAULT_REGISTRY.upper()).name_available is False
    for bad in ("abc", "has-dash", "x" * 51):
        invalid = check(bad)
        assert invalid.name_available is False and invalid.reason == "Invalid", bad
    free = check(unique("free"))
    assert free.name_available is True and not free.reason


# update ---------------------------------------------------------------------------------------------------------

def test_sku_up_and_down(mgmt: ContainerRegistryManagementClient) -> None:
    name = unique("sku")
    create_registry(mgmt, name, tags={"keep": "me"})
    for sku in ("Standard", "Premium", "Standard", "Basic"):
        changed = update(mgmt, name, sku=Sku(name=sku))
        assert changed.sku.name == sku and changed.sku.tier == sku
        assert mgmt.registries.get(RESOURCE_GROUP, name).sku.name == sku
    assert mgmt.registries.get(RESOURCE_GROUP, name).tags == {"keep": "me"}


def test_update_tags_replaces_them(mgmt: ContainerRegistryManagementClient) -> None:
    name = unique("tags")
    create_registry(mgmt, name, tags={"a": "1"})
    assert update(mgmt, name, tags={"b": "2"}).tags == {"b": "2"}
    assert mgmt.registries.get(RESOURCE_GROUP, name).tags == {"b": "2"}


def test_admin_user_switch(mgmt: ContainerRegistryManagementClient, tls_server: RunningServer) -> None:
    name = unique("admin")
    create_registry(mgmt, name)
    assert update(mgmt, name, admin_user_enabled=True).admin_user_enabled is True
    password = mgmt.registries.list_credentials(RESOURCE_GROUP, name).passwords[0].value
    assert access_token(tls_server, name, (name, password)).status_code == 200
    assert update(mgmt, name, admin_user_enabled=False).admin_user_enabled is False
    assert mgmt.registries.get(RESOURCE_GROUP, name).admin_user_enabled is False
    assert access_token(tls_server, name, (name, password)).status_code == 401


def test_anonymous_pull_switch(mgmt: ContainerRegistryManagementClient, tls_server: RunningServer) -> None:
    name = unique("anon")
    create_registry(mgmt, name, sku="Standard")
    with data_client(tls_server, name) as owner:
        digest = push_image(owner, "public/app", "v1", make_image(name, 1))

    def anonymous_pull() -> int:
        token = access_token(tls_server, name, None, "repository:public/app:pull").json()["access_token"]
        with data_client(tls_server, name, bearer=token) as anonymous:
            return anonymous.get(f"/v2/public/app/manifests/{digest}",
                                 headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}).status_code

    assert anonymous_pull() == 401
    assert update(mgmt, name, anonymous_pull_enabled=True).anonymous_pull_enabled is True
    assert mgmt.registries.get(RESOURCE_GROUP, name).anonymous_pull_enabled is True
    assert anonymous_pull() == 200
    assert update(mgmt, name, anonymous_pull_enabled=False).anonymous_pull_enabled is False
    assert anonymous_pull() == 401


def test_policies(mgmt: ContainerRegistryManagementClient) -> None:
    name = unique("policies")
    create_registry(mgmt, name, sku="Premium")
    changed = update(mgmt, name, policies=Policies(
        quarantine_policy=QuarantinePolicy(status="enabled"),
        trust_policy=TrustPolicy(type="Notary", status="enabled"),
        retention_policy=RetentionPolicy(days=3, status="enabled"),
        export_policy=ExportPolicy(status="disabled")))
    for seen in (changed, mgmt.registries.get(RESOURCE_GROUP, name)):
        policies = seen.policies
        assert policies.quarantine_policy.status == "enabled"
        assert policies.trust_policy.status == "enabled" and policies.trust_policy.type == "Notary"
        assert policies.retention_policy.status == "enabled" and policies.retention_policy.days == 3
        assert policies.retention_policy.last_updated_time is not None
        assert policies.export_policy.status == "disabled"

    # Only the named policy changes; the others keep their values.
    again = update(mgmt, name, policies=Policies(retention_policy=RetentionPolicy(days=30)))
    assert again.policies.retention_policy.days == 30 and again.policies.retention_policy.status == "enabled"
    assert again.policies.quarantine_policy.status == "enabled"
    assert again.policies.export_policy.status == "disabled"
    back = update(mgmt, name, policies=Policies(
        quarantine_policy=QuarantinePolicy(status="disabled"), trust_policy=TrustPolicy(status="disabled"),
        retention_policy=RetentionPolicy(status="disabled"), export_policy=ExportPolicy(status="enabled")))
    assert back.policies.quarantine_policy.status == "disabled"
    assert back.policies.retention_policy.status == "disabled" and back.policies.retention_policy.days == 30


def test_retention_days_out_of_range_refused(mgmt: ContainerRegistryManagementClient) -> None:
    name = unique("retention")
    create_registry(mgmt, name, sku="Premium")
    with pytest.raises(HttpResponseError) as refused:
        update(mgmt, name, policies=Policies(retention_policy=RetentionPolicy(days=366, status="enabled")))
    assert refused.value.status_code == 400
    assert mgmt.registries.get(RESOURCE_GROUP, name).policies.retention_policy.days == 7


def test_network_rules_and_public_access(mgmt: ContainerRegistryManagementClient,
                                         tls_server: RunningServer) -> None:
    name = unique("network")
    create_registry(mgmt, name, sku="Premium")
    with data_client(tls_server, name) as http:
        assert http.get("/v2/").status_code == 200

        denied = update(mgmt, name, network_rule_set=NetworkRuleSet(
            default_action="Deny", ip_rules=[IPRule(ip_address_or_range="10.1.0.0/16")]))
        assert denied.network_rule_set.default_action == "Deny"
        assert [r.ip_address_or_range for r in denied.network_rule_set.ip_rules] == ["10.1.0.0/16"]
        assert all(r.action in (None, "Allow") for r in denied.network_rule_set.ip_rules)
        refused = http.get("/v2/")
        assert refused.status_code == 403 and refused.json()["errors"][0]["code"] == "DENIED"

        allowed = update(mgmt, name, network_rule_set=NetworkRuleSet(
            default_action="Deny", ip_rules=[IPRule(ip_address_or_range="10.1.0.0/16"),
                                             IPRule(ip_address_or_range="127.0.0.1")]))
        assert {r.ip_address_or_range for r in allowed.network_rule_set.ip_rules} == {"10.1.0.0/16", "127.0.0.1/32"}
        assert http.get("/v2/").status_code == 200

        reopened = update(mgmt, name, network_rule_set=NetworkRuleSet(default_action="Allow", ip_rules=[]))
        assert reopened.network_rule_set.default_action == "Allow" and not reopened.network_rule_set.ip_rules

        private = update(mgmt, name, public_network_access="Disabled")
        assert private.public_network_access == "Disabled"
        assert mgmt.registries.get(RESOURCE_GROUP, name).public_network_access == "Disabled"
        assert http.get("/v2/").status_code == 200  # loopback stands in for a private endpoint
        assert update(mgmt, name, public_network_access="Enabled").public_network_access == "Enabled"


def test_bad_update_values_refused_and_nothing_changes(mgmt: ContainerRegistryManagementClient,
                                                       arm: httpx.Client) -> None:
    name = unique("badupdate")
    create_registry(mgmt, name, sku="Premium")
    for body in ({"properties": {"publicNetworkAccess": "Sometimes"}},
                 {"properties": {"networkRuleSet": {"defaultAction": "Deny", "ipRules": [{"value": "not-an-ip"}]}}},
                 {"sku": {"name": "Gold"}},
                 {"properties": {"adminUserEnabled": True, "networkRuleSet": {"defaultAction": "Maybe"}}}):
        response = arm.patch(registry_path(name), json=body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"]["code"]
    after = mgmt.registries.get(RESOURCE_GROUP, name)
    assert after.sku.name == "Premium" and after.admin_user_enabled is False
    assert after.public_network_access == "Enabled" and after.network_rule_set.default_action == "Allow"


def test_location_cannot_move(mgmt: ContainerRegistryManagementClient) -> None:
    name = unique("moving")
    create_registry(mgmt, name)
    with pytest.raises(HttpResponseError) as refused:
        mgmt.registries.begin_create(RESOURCE_GROUP, name, Registry(location="elsewhere", sku=Sku(name="Basic"))
                                     ).result()
    assert refused.value.status_code in (400, 409)
    assert mgmt.registries.get(RESOURCE_GROUP, name).location == HOME


# admin credentials ----------------------------------------------------------------------------------------------

def test_list_and_regenerate_credentials(mgmt: ContainerRegistryManagementClient, tls_server: RunningServer) -> None:
    name = unique("creds")
    create_registry(mgmt, name, admin_user_enabled=True)
    listed = mgmt.registries.list_credentials(RESOURCE_GROUP, name)
    assert listed.username == name
    before = {p.name: p.value for p in listed.passwords}
    assert set(before) == {"password", "password2"} and all(before.values())
    assert before["password"] != before["password2"]

    def token_status(password: str) -> int:
        return access_token(tls_server, name, (name, password), "repository:some/repo:pull,push").status_code

    assert token_status(before["password"]) == 200
    with data_client(tls_server, name, auth=(name, before["password"])) as old_basic:
        assert old_basic.get("/v2/").status_code == 200
        renewed = mgmt.registries.regenerate_credential(RESOURCE_GROUP, name,
                                                        RegenerateCredentialParameters(name="password"))
        assert old_basic.get("/v2/").status_code == 401  # at once, though it was accepted a moment ago
    after = {p.name: p.value for p in renewed.passwords}
    assert renewed.username == name
    assert after["password"] != before["password"]
    assert after["password2"] == before["password2"]
    assert {p.name: p.value for p in mgmt.registries.list_credentials(RESOURCE_GROUP, name).passwords} == after
    assert token_status(after["password"]) == 200
    assert token_status(after["password2"]) == 200
    assert token_status(before["password"]) == 401
    # The admin user of one registry is nobody in another.
    assert access_token(tls_server, DEFAULT_REGISTRY, (name, after["password"]),
                        "repository:some/repo:pull").status_code == 401

    # The new password pushes through docker's token flow.
    token = access_token(tls_server, name, (name, after["password"]),
                         "repository:admin/app:pull,push").json()["access_token"]
    with data_client(tls_server, name, bearer=token) as bearer:
        digest = push_blob(bearer, "admin/app", b"pushed with the regenerated admin password")
        assert bearer.head(f"/v2/admin/app/blobs/{digest}").status_code == 200

    second = mgmt.registries.regenerate_credential(RESOURCE_GROUP, name,
                                                   RegenerateCredentialParameters(name="password2"))
    assert {p.name: p.value for p in second.passwords}["password2"] != before["password2"]
    assert token_status(before["password2"]) == 401


# usage ----------------------------------------------------------------------------------------------------------

def usages(mgmt: ContainerRegistryManagementClient, name: str) -> dict[str, tuple[int, int, str]]:
    return {u.name: (u.current_value, u.limit, u.unit) for u in mgmt.registries.list_usages(RESOURCE_GROUP, name).value}


def test_usages_grow_with_content_and_resources(mgmt: ContainerRegistryManagementClient,
                                                tls_server: RunningServer) -> None:
    name = unique("usage")
    registry = create_registry(mgmt, name)
    start = usages(mgmt, name)
    assert start["Size"] == (0, 10 * GIB, "Bytes")
    assert start["Webhooks"] == (0, 2, "Count")
    assert start["ScopeMaps"] == (0, 100, "Count")
    assert start["Tokens"] == (0, 100, "Count")
    assert start["Geo-replications"][:2] == (0, 0)

    blob = b"usage counts every blob once " * 100
    with data_client(tls_server, name) as http:
        push_blob(http, "one/repo", blob)
        after_one = usages(mgmt, name)["Size"][0]
        assert after_one == len(blob)
        push_blob(http, "two/repo", blob)  # the same bytes in another repository: stored once
        assert usages(mgmt, name)["Size"][0] == after_one
        image = make_image(name, 1)
        push_image(http, "one/repo", "v1", image)
    grown = usages(mgmt, name)["Size"][0]
    assert grown == len(blob) + len(image.config) + sum(map(len, image.layers)) + len(image.manifest)

    mgmt.webhooks.begin_create(RESOURCE_GROUP, name, "hookone", WebhookCreateParameters(
        location=HOME, service_uri="http://127.0.0.1:9/hook", actions=["push"])).result()
    mapping = mgmt.scope_maps.begin_create(RESOURCE_GROUP, name, "usagemap", ScopeMap(
        actions=["repositories/one/repo/content/read"])).result()
    mgmt.tokens.begin_create(RESOURCE_GROUP, name, "usagetoken", Token(scope_map_id=mapping.id)).result()
    counted = usages(mgmt, name)
    assert counted["Webhooks"][:2] == (1, 2)
    assert counted["ScopeMaps"][:2] == (1, 100)
    assert counted["Tokens"][:2] == (1, 100)
    assert registry.sku.name == "Basic"

    update(mgmt, name, sku=Sku(name="Premium"))
    mgmt.replications.begin_create(RESOURCE_GROUP, name, "northeurope", Replication(location="northeurope")).result()
    premium = usages(mgmt, name)
    assert premium["Size"][1] == 500 * GIB
    assert premium["Webhooks"][1] == 500
    assert premium["ScopeMaps"][1] == 50_000 and premium["Tokens"][1] == 50_000
    assert premium["Geo-replications"][0] == 1 and premium["Geo-replications"][1] > 1
    assert premium["Size"][0] == grown


# delete ---------------------------------------------------------------------------------------------------------

def test_delete(mgmt: ContainerRegistryManagementClient, tls_server: RunningServer) -> None:
    name = unique("delete")
    create_registry(mgmt, name)
    with data_client(tls_server, name) as http:
        push_image(http, "doomed/app", "v1", make_image(name, 1))
    mgmt.registries.begin_delete(RESOURCE_GROUP, name).result()
    with pytest.raises(ResourceNotFoundError):
        mgmt.registries.get(RESOURCE_GROUP, name)
    assert name not in {r.name for r in mgmt.registries.list()}
    mgmt.registries.begin_delete(RESOURCE_GROUP, name).result()  # absent: 204, not an error
    assert mgmt.registries.check_name_availability(
        RegistryNameCheckRequest(name=name, type=REGISTRY_TYPE)).name_available is True
    # The name is free again, and a new registry of that name starts empty.
    create_registry(mgmt, name)
    with data_client(tls_server, name) as http:
        assert http.get("/v2/doomed/app/tags/list").status_code == 404


# who may do what ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def roles_registry(mgmt: ContainerRegistryManagementClient) -> str:
    """A registry with one webhook whose callback holds a secret."""
    name = unique("roles")
    create_registry(mgmt, name)
    mgmt.webhooks.begin_create(RESOURCE_GROUP, name, "roleshook", WebhookCreateParameters(
        location=HOME, service_uri="https://hooks.example.test/?sig=secret", actions=["push"])).result()
    return name


def client_as(server: RunningServer, registry: str, role: str | None) -> ContainerRegistryManagementClient:
    client_id, secret = make_identity(server, unique(f"as{role or 'nobody'}"), role, registry)
    return management_client(server, make_credential(server, client_id, secret))


def assert_forbidden(call: object) -> None:
    with pytest.raises(HttpResponseError) as refused:
        call()  # type: ignore[operator]
    assert refused.value.status_code == 403
    assert error_code(refused.value) == "AuthorizationFailed"


def test_reader_reads_but_cannot_change(mgmt: ContainerRegistryManagementClient, tls_server: RunningServer,
                                        roles_registry: str) -> None:
    tags_before = mgmt.registries.get(RESOURCE_GROUP, roles_registry).tags
    with client_as(tls_server, roles_registry, "Reader") as reader:
        assert reader.registries.get(RESOURCE_GROUP, roles_registry).name == roles_registry
        listed = {r.name for r in reader.registries.list()}
        assert roles_registry in listed
        assert DEFAULT_REGISTRY not in listed  # the Reader holds a role on this registry only
        assert roles_registry in {r.name for r in reader.registries.list_by_resource_group(RESOURCE_GROUP)}
        assert {u.name for u in reader.registries.list_usages(RESOURCE_GROUP, roles_registry).value} >= {"Size"}
        assert [w.name for w in reader.webhooks.list(RESOURCE_GROUP, roles_registry)] == ["roleshook"]
        assert reader.webhooks.get(RESOURCE_GROUP, roles_registry, "roleshook").actions == ["push"]
        assert {m.name for m in reader.scope_maps.list(RESOURCE_GROUP, roles_registry)} >= {"_repositories_pull"}

        assert_forbidden(lambda: create_registry(reader, unique("byreader")))
        assert_forbidden(lambda: update(reader, roles_registry, tags={"changed": "by reader"}))
        assert_forbidden(lambda: reader.registries.begin_delete(RESOURCE_GROUP, roles_registry).result())
        # Actions that reveal or make secrets are changes, not reads.
        assert_forbidden(lambda: reader.registries.list_credentials(RESOURCE_GROUP, roles_registry))
        assert_forbidden(lambda: reader.webhooks.get_callback_config(RESOURCE_GROUP, roles_registry, "roleshook"))
        assert_forbidden(lambda: reader.registries.regenerate_credential(
            RESOURCE_GROUP, roles_registry, RegenerateCredentialParameters(name="password")))
        assert_forbidden(lambda: reader.registries.begin_generate_credentials(
            RESOURCE_GROUP, roles_registry, GenerateCredentialsParameters(
                token_id=f"{registry_path(roles_registry)}/tokens/anything")).result())
        assert_forbidden(lambda: reader.webhooks.begin_delete(RESOURCE_GROUP, roles_registry, "roleshook").result())
        assert_forbidden(lambda: reader.webhooks.begin_create(RESOURCE_GROUP, roles_registry, "readerhook",
                                                              WebhookCreateParameters(
                                                                  location=HOME, service_uri="http://127.0.0.1:9/",
                                                                  actions=["push"])).result())
        assert_forbidden(lambda: reader.registries.get(RESOURCE_GROUP, DEFAULT_REGISTRY))
    after = mgmt.registries.get(RESOURCE_GROUP, roles_registry)
    assert after.tags == tags_before
    assert [w.name for w in mgmt.webhooks.list(RESOURCE_GROUP, roles_registry)] == ["roleshook"]


def test_contributor_changes_its_registry(mgmt: ContainerRegistryManagementClient, tls_server: RunningServer,
                                          roles_registry: str) -> None:
    with client_as(tls_server, roles_registry, "Contributor") as contributor:
        assert update(contributor, roles_registry, tags={"by": "contributor"}).tags == {"by": "contributor"}
        assert contributor.webhooks.get_callback_config(RESOURCE_GROUP, roles_registry, "roleshook").service_uri \
            == "https://hooks.example.test/?sig=secret"
        # Nothing reaches another registry.
        assert_forbidden(lambda: contributor.registries.get(RESOURCE_GROUP, DEFAULT_REGISTRY))
        assert_forbidden(lambda: update(contributor, DEFAULT_REGISTRY, tags={"by": "contributor"}))
        assert_forbidden(lambda: contributor.registries.list_credentials(RESOURCE_GROUP, DEFAULT_REGISTRY))
        # A role on one registry does not reach the subscription: creating registries needs it there.
        assert_forbidden(lambda: create_registry(contributor, unique("bycontrib")))
    assert mgmt.registries.get(RESOURCE_GROUP, roles_registry).tags == {"by": "contributor"}


def test_data_plane_roles_cannot_use_the_management_plane(tls_server: RunningServer, roles_registry: str) -> None:
    with client_as(tls_server, roles_registry, "AcrPull") as puller:
        assert_forbidden(lambda: puller.registries.get(RESOURCE_GROUP, roles_registry))
        assert roles_registry not in {r.name for r in puller.registries.list()}
        assert_forbidden(lambda: puller.registries.list_credentials(RESOURCE_GROUP, roles_registry))
    with client_as(tls_server, roles_registry, "AcrPush") as pusher:
        assert_forbidden(lambda: pusher.registries.get(RESOURCE_GROUP, roles_registry))
    with client_as(tls_server, roles_registry, None) as nobody:
        assert_forbidden(lambda: nobody.registries.get(RESOURCE_GROUP, roles_registry))
        assert list(nobody.registries.list()) == []


def test_no_token_or_a_bad_one_is_401(tls_server: RunningServer, ca: str, roles_registry: str) -> None:
    url = f"{tls_server.url}{registry_path(roles_registry)}"
    with httpx.Client(verify=ssl.create_default_context(cafile=ca), timeout=30, params={"api-version": API_VERSION}) as http:
        missing = http.get(url)
        assert missing.status_code == 401
        assert missing.json()["error"]["code"] == "AuthenticationFailed"
        assert "WWW-Authenticate" in missing.headers
        for bad in ("Bearer not-a-jwt", "Basic b3duZXI6c2VjcmV0"):
            response = http.get(url, headers={"Authorization": bad})
            assert response.status_code == 401, bad
            assert response.json()["error"]["code"] in ("AuthenticationFailed", "InvalidAuthenticationToken")
        created = http.put(f"{tls_server.url}{registry_path(unique('anonymous'))}",
                           json={"location": HOME, "sku": {"name": "Basic"}})
        assert created.status_code == 401
        assert http.get(f"{tls_server.url}/subscriptions/{SUBSCRIPTION}/providers/Microsoft.ContainerRegistry/"
                        "registries").status_code == 401


def test_data_plane_token_is_not_a_management_token(tls_server: RunningServer, ca: str,
                                                    roles_registry: str) -> None:
    """A token from the identity provider for the registry's audience must not open the management API."""
    client_id, secret = tls_server.credentials
    credential = make_credential(tls_server, client_id, secret)
    data_token = credential.get_token("https://containerregistry.azure.net/.default").token
    response = httpx.get(f"{tls_server.url}{registry_path(roles_registry)}", timeout=30,
                         verify=ssl.create_default_context(cafile=ca),
                         params={"api-version": API_VERSION}, headers={"Authorization": f"Bearer {data_token}"})
    assert response.status_code == 401
    with (management_client(tls_server, credential,
                            credential_scopes=["https://containerregistry.azure.net/.default"]) as wrong_audience,
          pytest.raises(ClientAuthenticationError)):
        wrong_audience.registries.get(RESOURCE_GROUP, roles_registry)
