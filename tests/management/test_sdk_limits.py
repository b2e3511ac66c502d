"""ACR's SKU limits through `azure-mgmt-containerregistry`: each refusal is an ARM error, and nothing of the
refused change is left behind (no extra resource, no half-applied setting)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.containerregistry import ContainerRegistryManagementClient
from azure.mgmt.containerregistry.models import (
    EncryptionProperty,
    IPRule,
    KeyVaultProperties,
    NetworkRuleSet,
    Policies,
    Registry,
    RegistryNameCheckRequest,
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
    HOME,
    RESOURCE_GROUP,
    create_registry,
    error_code,
    registry_path,
    unique,
)

KEY = KeyVaultProperties(key_identifier="https://vault.example.test/keys/registry/0123456789abcdef",
                         identity="00000000-0000-0000-0000-000000000001")


def refused(call: object, code: str | None = None) -> HttpResponseError:
    """Run `call`, expect an ARM refusal: the status and code docs/management.md names for it (409 for
    QuotaExceeded, 400 for a feature the SKU lacks), or any 400/409 with a code when `code` is None."""
    with pytest.raises(HttpResponseError) as caught:
        call()  # type: ignore[operator]
    assert caught.value.status_code in (400, 409), caught.value
    assert error_code(caught.value), caught.value
    if code is not None:
        assert error_code(caught.value) == code, caught.value
        assert caught.value.status_code == (409 if code == "QuotaExceeded" else 400), caught.value
    return caught.value


def update(mgmt: ContainerRegistryManagementClient, name: str, **changes: object) -> Registry:
    return mgmt.registries.begin_update(RESOURCE_GROUP, name, RegistryUpdateParameters(**changes)).result()


def usage(mgmt: ContainerRegistryManagementClient, name: str, metric: str) -> tuple[int, int]:
    found = {u.name: (u.current_value, u.limit) for u in mgmt.registries.list_usages(RESOURCE_GROUP, name).value}
    return found[metric]


def hook(mgmt: ContainerRegistryManagementClient, registry: str, name: str) -> None:
    mgmt.webhooks.begin_create(RESOURCE_GROUP, registry, name, WebhookCreateParameters(
        location=HOME, service_uri=f"http://127.0.0.1:9/{name}", actions=["push"])).result()


# webhooks -------------------------------------------------------------------------------------------------------

def test_basic_allows_two_webhooks(mgmt: ContainerRegistryManagementClient) -> None:
    name = unique("twohooks")
    create_registry(mgmt, name)
    hook(mgmt, name, "hookone")
    hook(mgmt, name, "hooktwo")
    refusal = refused(lambda: hook(mgmt, name, "hookthree"), "QuotaExceeded")
    # ACR answers the third webhook on Basic with QuotaExceeded ("Quota exceeded for resource type webhooks
    # for the registry SKU Basic", as reported in microsoft/vscode-docker#1281).
    assert "Basic" in str(refusal.message)
    assert sorted(w.name for w in mgmt.webhooks.list(RESOURCE_GROUP, name)) == ["hookone", "hooktwo"]
    with pytest.raises(ResourceNotFoundError):
        mgmt.webhooks.get(RESOURCE_GROUP, name, "hookthree")
    assert usage(mgmt, name, "Webhooks") == (2, 2)

    # Changing an existing webhook is not creating one: still allowed at the limit.
    changed = mgmt.webhooks.begin_create(RESOURCE_GROUP, name, "hooktwo", WebhookCreateParameters(
        location=HOME, service_uri="http://127.0.0.1:9/changed", actions=["delete"])).result()
    assert changed.actions == ["delete"]

    # On Standard the third fits; going back to Basic with three is refused and the SKU stays.
    update(mgmt, name, sku=Sku(name="Standard"))
    hook(mgmt, name, "hookthree")
    assert "Basic" in str(refused(lambda: update(mgmt, name, sku=Sku(name="Basic"))).message)
    assert mgmt.registries.get(RESOURCE_GROUP, name).sku.name == "Standard"
    assert usage(mgmt, name, "Webhooks") == (3, 10)
    mgmt.webhooks.begin_delete(RESOURCE_GROUP, name, "hookthree").result()
    assert update(mgmt, name, sku=Sku(name="Basic")).sku.name == "Basic"


# replications ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sku", ["Basic", "Standard"])
def test_replications_need_premium(mgmt: ContainerRegistryManagementClient, sku: str) -> None:
    name = unique(f"norep{sku.lower()}")
    create_registry(mgmt, name, sku=sku)
    refusal = refused(lambda: mgmt.replications.begin_create(RESOURCE_GROUP, name, "westeurope", Replication(
        location="westeurope")).result(), "GeoReplicationNotSupported")
    assert "Premium" in str(refusal.message)
    assert list(mgmt.replications.list(RESOURCE_GROUP, name)) == []
    with pytest.raises(ResourceNotFoundError):
        mgmt.replications.get(RESOURCE_GROUP, name, "westeurope")
    assert usage(mgmt, name, "Geo-replications") == (0, 0)


def test_no_downgrade_below_premium_while_replicas_exist(mgmt: ContainerRegistryManagementClient) -> None:
    name = unique("downgrade")
    create_registry(mgmt, name, sku="Premium")
    mgmt.replications.begin_create(RESOURCE_GROUP, name, "westeurope", Replication(location="westeurope")).result()
    for lower in ("Standard", "Basic"):
        refused(lambda lower=lower: update(mgmt, name, sku=Sku(name=lower)), "CannotDowngradeWithReplications")
        assert mgmt.registries.get(RESOURCE_GROUP, name).sku.name == "Premium"
    assert [r.name for r in mgmt.replications.list(RESOURCE_GROUP, name)] == ["westeurope"]
    # A refused downgrade that also asked for other changes applies none of them.
    refused(lambda: update(mgmt, name, sku=Sku(name="Standard"), tags={"half": "done"}, admin_user_enabled=True),
            "CannotDowngradeWithReplications")
    after = mgmt.registries.get(RESOURCE_GROUP, name)
    assert after.tags == {} and after.admin_user_enabled is False
    mgmt.replications.begin_delete(RESOURCE_GROUP, name, "westeurope").result()
    assert update(mgmt, name, sku=Sku(name="Standard")).sku.name == "Standard"


# premium-only settings ------------------------------------------------------------------------------------------

def test_customer_managed_key_needs_premium(mgmt: ContainerRegistryManagementClient) -> None:
    basic = unique("cmkbasic")
    refused(lambda: create_registry(mgmt, basic, encryption=EncryptionProperty(status="enabled",
                                                                               key_vault_properties=KEY)),
            "CustomerManagedKeyNotSupported")
    with pytest.raises(ResourceNotFoundError):
        mgmt.registries.get(RESOURCE_GROUP, basic)
    assert mgmt.registries.check_name_availability(RegistryNameCheckRequest(
        name=basic, type="Microsoft.ContainerRegistry/registries")).name_available is True

    standard = unique("cmkstandard")
    create_registry(mgmt, standard, sku="Standard")
    refusal = refused(lambda: update(mgmt, standard, encryption=EncryptionProperty(status="enabled",
                                                                                key_vault_properties=KEY)),
                      "CustomerManagedKeyNotSupported")
    assert "Standard" in str(refusal.message)
    assert mgmt.registries.get(RESOURCE_GROUP, standard).encryption.status == "disabled"

    premium = unique("cmkpremium")
    created = create_registry(mgmt, premium, sku="Premium",
                              encryption=EncryptionProperty(status="enabled", key_vault_properties=KEY))
    assert created.encryption.status == "enabled"
    assert created.encryption.key_vault_properties.key_identifier == KEY.key_identifier
    refused(lambda: update(mgmt, premium, sku=Sku(name="Standard")), "CustomerManagedKeyNotSupported")
    assert mgmt.registries.get(RESOURCE_GROUP, premium).sku.name == "Premium"


def test_premium_policies_and_network_rules_refused_below_premium(mgmt: ContainerRegistryManagementClient) -> None:
    name = unique("standardonly")
    create_registry(mgmt, name, sku="Standard")
    refused(lambda: update(mgmt, name, policies=Policies(trust_policy=TrustPolicy(type="Notary", status="enabled"))),
            "PolicyNotSupported")
    refused(lambda: update(mgmt, name, policies=Policies(retention_policy=RetentionPolicy(days=5, status="enabled"))),
            "PolicyNotSupported")
    refused(lambda: update(mgmt, name, network_rule_set=NetworkRuleSet(
        default_action="Deny", ip_rules=[IPRule(ip_address_or_range="10.0.0.0/8")])), "NetworkRuleSetNotSupported")
    refused(lambda: update(mgmt, name, public_network_access="Disabled"), "DisablingPublicNetworkAccessNotSupported")
    after = mgmt.registries.get(RESOURCE_GROUP, name)
    assert after.policies.trust_policy.status == "disabled"
    assert after.policies.retention_policy.status == "disabled" and after.policies.retention_policy.days == 7
    assert after.network_rule_set.default_action == "Allow" and not after.network_rule_set.ip_rules
    assert after.public_network_access == "Enabled"

    # With those settings on, Premium cannot step down either.
    update(mgmt, name, sku=Sku(name="Premium"))
    update(mgmt, name, policies=Policies(retention_policy=RetentionPolicy(days=5, status="enabled")))
    refused(lambda: update(mgmt, name, sku=Sku(name="Standard")), "PolicyNotSupported")
    assert mgmt.registries.get(RESOURCE_GROUP, name).sku.name == "Premium"


def test_anonymous_pull_needs_standard(mgmt: ContainerRegistryManagementClient) -> None:
    name = unique("anonbasic")
    create_registry(mgmt, name)
    refused(lambda: update(mgmt, name, anonymous_pull_enabled=True), "AnonymousPullNotSupported")
    assert mgmt.registries.get(RESOURCE_GROUP, name).anonymous_pull_enabled is False
    update(mgmt, name, sku=Sku(name="Standard"), anonymous_pull_enabled=True)
    refused(lambda: update(mgmt, name, sku=Sku(name="Basic")), "AnonymousPullNotSupported")
    assert mgmt.registries.get(RESOURCE_GROUP, name).sku.name == "Standard"


def test_refused_create_leaves_nothing(mgmt: ContainerRegistryManagementClient) -> None:
    name = unique("halfmade")
    refused(lambda: create_registry(mgmt, name, network_rule_set=NetworkRuleSet(
        default_action="Deny", ip_rules=[IPRule(ip_address_or_range="10.0.0.0/8")])), "NetworkRuleSetNotSupported")
    with pytest.raises(ResourceNotFoundError):
        mgmt.registries.get(RESOURCE_GROUP, name)
    assert name not in {r.name for r in mgmt.registries.list()}
    # The name was not taken by the refused attempt.
    assert create_registry(mgmt, name).name == name


# scope maps and tokens ------------------------------------------------------------------------------------------

def test_scope_map_and_token_limits_are_reported(mgmt: ContainerRegistryManagementClient) -> None:
    name = unique("countlimits")
    create_registry(mgmt, name)
    assert usage(mgmt, name, "ScopeMaps") == (0, 100)  # the system scope maps do not count
    assert usage(mgmt, name, "Tokens") == (0, 100)
    update(mgmt, name, sku=Sku(name="Standard"))
    assert usage(mgmt, name, "ScopeMaps") == (0, 500) and usage(mgmt, name, "Tokens") == (0, 500)


def test_basic_refuses_the_101st_scope_map_and_token(mgmt: ContainerRegistryManagementClient,
                                                     arm: httpx.Client) -> None:
    """Fill a Basic registry to its limits over the same ARM API (raw PUTs, several at once, to stay fast),
    then let the SDK ask for one more of each."""
    started = time.monotonic()
    name = unique("fullbasic")
    create_registry(mgmt, name)
    base = registry_path(name)
    map_id = f"{base}/scopeMaps/_repositories_pull"

    def put(path: str, body: dict[str, object]) -> int:
        return arm.put(path, json=body).status_code

    with ThreadPoolExecutor(max_workers=4) as pool:
        maps = list(pool.map(lambda i: put(f"{base}/scopeMaps/map{i:03d}", {"properties": {
            "actions": [f"repositories/app{i}/content/read"]}}), range(100)))
        tokens = list(pool.map(lambda i: put(f"{base}/tokens/token{i:03d}", {"properties": {
            "scopeMapId": map_id}}), range(100)))
    assert set(maps) <= {200, 201} and set(tokens) <= {200, 201}
    assert usage(mgmt, name, "ScopeMaps") == (100, 100)
    assert usage(mgmt, name, "Tokens") == (100, 100)

    for refusal in (refused(lambda: mgmt.scope_maps.begin_create(RESOURCE_GROUP, name, "onetoomany", ScopeMap(
                        actions=["repositories/x/content/read"])).result(), "QuotaExceeded"),
                    refused(lambda: mgmt.tokens.begin_create(RESOURCE_GROUP, name, "onetoomany", Token(
                        scope_map_id=map_id)).result(), "QuotaExceeded")):
        assert "Basic" in str(refusal.message)
    with pytest.raises(ResourceNotFoundError):
        mgmt.scope_maps.get(RESOURCE_GROUP, name, "onetoomany")
    with pytest.raises(ResourceNotFoundError):
        mgmt.tokens.get(RESOURCE_GROUP, name, "onetoomany")
    assert usage(mgmt, name, "ScopeMaps") == (100, 100) and usage(mgmt, name, "Tokens") == (100, 100)
    user_maps = [m for m in mgmt.scope_maps.list(RESOURCE_GROUP, name) if m.properties.type == "UserDefined"]
    assert len(user_maps) == 100
    assert len(list(mgmt.tokens.list(RESOURCE_GROUP, name))) == 100

    # Changing one at the limit is fine; after a delete there is room for one more.
    mgmt.scope_maps.begin_create(RESOURCE_GROUP, name, "map000", ScopeMap(
        actions=["repositories/changed/content/read"])).result()
    mgmt.tokens.begin_delete(RESOURCE_GROUP, name, "token000").result()
    assert mgmt.tokens.begin_create(RESOURCE_GROUP, name, "onemore", Token(scope_map_id=map_id)).result().name == \
        "onemore"
    assert time.monotonic() - started < 30


def test_premium_replication_count_is_bounded(mgmt: ContainerRegistryManagementClient, arm: httpx.Client) -> None:
    name = unique("manyreplicas")
    create_registry(mgmt, name, sku="Premium")
    limit = usage(mgmt, name, "Geo-replications")[1]
    assert limit == 72  # docs/management.md: the number of regions ACR lists
    base = registry_path(name)
    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = list(pool.map(lambda i: arm.put(f"{base}/replications/region{i:03d}", json={
            "location": f"region{i:03d}"}).status_code, range(limit)))
    assert set(statuses) <= {200, 201}
    refused(lambda: mgmt.replications.begin_create(RESOURCE_GROUP, name, "onetoomany", Replication(
        location="onetoomany")).result(), "QuotaExceeded")
    assert usage(mgmt, name, "Geo-replications") == (limit, limit)
    with pytest.raises(ResourceNotFoundError):
        mgmt.replications.get(RESOURCE_GROUP, name, "onetoomany")
