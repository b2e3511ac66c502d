"""ARM request bodies are checked by one set of schemas: a wrongly typed field is a 400 naming it."""

from __future__ import annotations

from typing import Any

import pytest

from cargohold.management import schemas
from cargohold.management.arm import ArmError

pytestmark = pytest.mark.backend_independent

TOKEN_ID = "/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerRegistry/registries/r/tokens/abcde"


@pytest.mark.parametrize(("schema", "body", "code", "field"), [
    (schemas.REGISTRY_UPDATE, {"properties": {"policies": 1}}, "InvalidParameter", "properties.policies"),
    (schemas.REGISTRY_UPDATE, {"properties": 1}, "InvalidParameter", "properties"),
    (schemas.REGISTRY_UPDATE, {"properties": {"policies": {"retentionPolicy": {"days": "7"}}}}, "InvalidParameter",
     "properties.policies.retentionPolicy.days"),
    (schemas.REGISTRY_UPDATE, {"properties": {"networkRuleSet": {"ipRules": [{"value": 1}]}}}, "InvalidParameter",
     "properties.networkRuleSet.ipRules[0].value"),
    (schemas.REGISTRY_UPDATE, {"properties": {"adminUserEnabled": "yes"}}, "InvalidParameter",
     "properties.adminUserEnabled"),
    (schemas.REGISTRY_UPDATE, {"tags": {"a": 1}}, "InvalidTag", "tags.a"),
    (schemas.REGISTRY, {"location": "x", "properties": 7, "sku": {"name": "Basic"}}, "InvalidParameter", "properties"),
    (schemas.REGISTRY, {"location": "x"}, "InvalidSku", "sku"),
    (schemas.REGISTRY, {"sku": {"name": "Basic"}}, "LocationRequired", "location"),
    (schemas.REGISTRY, {"location": "x", "sku": {"name": "Gold"}}, "InvalidSku", "sku.name"),
    (schemas.REGISTRY, {"location": "x\u0000y", "sku": {"name": "Basic"}}, "LocationRequired", "location"),
    (schemas.REPLICATION, {"location": "x", "properties": 7}, "InvalidParameter", "properties"),
    (schemas.REPLICATION_UPDATE, {"properties": 1}, "InvalidParameter", "properties"),
    (schemas.GENERATE_CREDENTIALS, {"tokenId": TOKEN_ID, "name": []}, "InvalidParameter", "name"),
    (schemas.GENERATE_CREDENTIALS, {"tokenId": 5}, "InvalidParameter", "tokenId"),
    (schemas.REGENERATE_CREDENTIAL, {"name": {"x": 1}}, "InvalidParameter", "name"),
    (schemas.CHECK_NAME, {"name": ["a"]}, "InvalidParameter", "name"),
    (schemas.IMPORT_IMAGE, {"source": {"sourceImage": 1}}, "InvalidParameter", "source.sourceImage"),
    (schemas.IMPORT_IMAGE, {"source": {"sourceImage": "a"}, "targetTags": "a:b"}, "InvalidParameter", "targetTags"),
    (schemas.IMPORT_IMAGE, {"source": {"sourceImage": "a", "credentials": {"username": "u"}}}, "InvalidParameter",
     "source.credentials.password"),
    (schemas.WEBHOOK, {"properties": {"actions": ["push"]}}, "InvalidServiceUri", "properties.serviceUri"),
    (schemas.WEBHOOK, {"properties": {"serviceUri": "http://h/", "actions": "push"}}, "InvalidWebhookAction",
     "properties.actions"),
    (schemas.WEBHOOK_UPDATE, {"properties": {"customHeaders": {"a": 1}}}, "InvalidParameter",
     "properties.customHeaders.a"),
    (schemas.SCOPE_MAP, {"properties": {"actions": [7]}}, "InvalidScopeMapActions", "properties.actions[0]"),
    (schemas.TOKEN, {"properties": {"scopeMapId": []}}, "InvalidScopeMapId", "properties.scopeMapId"),
    (schemas.TOKEN_UPDATE, {"properties": {"status": True}}, "InvalidParameter", "properties.status"),
])
def test_wrongly_typed_fields_are_named(schema: schemas.Schema, body: dict[str, Any], code: str,
                                        field: str) -> None:
    with pytest.raises(ArmError) as refused:
        schemas.check(body, schema)
    assert (refused.value.status, refused.value.code) == (400, code)
    assert refused.value.message.startswith(f"{field} "), refused.value.message


@pytest.mark.parametrize(("schema", "body"), [
    (schemas.REGISTRY, {"location": "westus", "sku": {"name": "premium"}, "tags": {"env": "test"},
                        "properties": {"adminUserEnabled": True, "policies": {"retentionPolicy": {"days": 7,
                                                                                                    "status": "Enabled"}},
                                       "loginServer": "echoed.from.a.get", "networkRuleSet": None}}),
    (schemas.REGISTRY_UPDATE, {}),
    (schemas.REGISTRY_UPDATE, {"sku": None, "tags": None, "properties": None}),
    (schemas.WEBHOOK, {"location": "westus", "properties": {"serviceUri": "http://h/", "actions": ["push"],
                                                            "customHeaders": {"Authorization": "Bearer x"}}}),
    (schemas.IMPORT_IMAGE, {"source": {"registryUri": "mcr.microsoft.com", "sourceImage": "hello-world"},
                            "targetTags": ["a:b"], "mode": "Force"}),
    (schemas.GENERATE_CREDENTIALS, {"tokenId": TOKEN_ID, "name": "password1", "expiry": "2030-01-01T00:00:00Z"}),
])
def test_what_the_sdks_send_is_accepted(schema: schemas.Schema, body: dict[str, Any]) -> None:
    assert schemas.check(body, schema) is body


def test_huge_and_odd_field_names_are_not_echoed_whole() -> None:
    key = "k" * 10_000
    with pytest.raises(ArmError) as refused:
        schemas.check({"properties": {"customHeaders": {key: 1}}}, schemas.WEBHOOK_UPDATE)
    assert len(refused.value.message) < 300
