"""Bodies an outsider may send the management API (#19): too deeply nested JSON, wrongly typed fields, imports
that could only fail later, unknown api-versions and a PUT without a SKU are each answered 400 in ARM's shape at
once, and change nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from cargohold.management.source_registry import InvalidRegistryUri, base_url
from tests.support.server import RunningServer

pytestmark = pytest.mark.backend_independent

API = {"api-version": "2025-11-01"}
MANAGEMENT_SCOPE = "https://management.azure.com/.default"
PROVIDER = "/subscriptions/default/providers/Microsoft.ContainerRegistry"
REGISTRY = "/subscriptions/default/resourceGroups/default/providers/Microsoft.ContainerRegistry/registries/cargohold"
TOKEN_ID = f"{REGISTRY}/tokens/sometoken"
DEEP = ("[" * 1000 + "]" * 1000).encode()
DEEP_OBJECT = ('{"properties":' * 1000 + "{}" + "}" * 1000).encode()


@pytest.fixture(scope="module")
def arm(server: RunningServer) -> Iterator[httpx.Client]:
    client_id, secret = server.credentials
    token = httpx.post(f"{server.url}/cargohold/oauth2/v2.0/token", timeout=30, data={
        "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret,
        "scope": MANAGEMENT_SCOPE})
    assert token.status_code == 200, token.text
    with httpx.Client(base_url=server.url, timeout=30, params=API,
                      headers={"Authorization": f"Bearer {token.json()['access_token']}"}) as client:
        yield client


def arm_error(response: httpx.Response, status: int = 400) -> dict[str, str]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) <= {"code", "message", "additionalInfo"} and error["code"] and error["message"]
    assert [info["type"] for info in error.get("additionalInfo", [])] == ["RequestId"]
    return error


JSON_ENDPOINTS = [
    ("POST", f"{PROVIDER}/checkNameAvailability"),
    ("PUT", REGISTRY), ("PATCH", REGISTRY),
    ("PUT", f"{PROVIDER.replace('/providers', '/resourceGroups/default/providers')}/registries/fresh12345"),
    ("POST", f"{REGISTRY}/importImage"), ("POST", f"{REGISTRY}/generateCredentials"),
    ("POST", f"{REGISTRY}/regenerateCredential"),
    *[(method, f"{REGISTRY}/{kind}/child12345") for kind in ("webhooks", "replications", "scopeMaps", "tokens")
      for method in ("PUT", "PATCH")],
]


@pytest.mark.parametrize(("method", "path"), JSON_ENDPOINTS)
@pytest.mark.parametrize("body", [DEEP, DEEP_OBJECT], ids=["arrays", "objects"])
def test_deeply_nested_json_is_invalid_request_content(arm: httpx.Client, method: str, path: str,
                                                       body: bytes) -> None:
    response = arm.request(method, path, content=body, headers={"Content-Type": "application/json"})
    assert arm_error(response)["code"] == "InvalidRequestContent"


@pytest.mark.parametrize(("method", "path", "body", "field"), [
    ("PATCH", REGISTRY, {"properties": {"policies": 1}}, "properties.policies"),
    ("PATCH", REGISTRY, {"properties": {"policies": {"retentionPolicy": 3}}}, "properties.policies.retentionPolicy"),
    ("PUT", REGISTRY, {"location": "local", "sku": {"name": "Basic"}, "properties": 1}, "properties"),
    ("PUT", f"{REGISTRY}/replications/westus1", {"location": "x", "properties": 7}, "properties"),
    ("PATCH", f"{REGISTRY}/replications/westus1", {"properties": 1}, "properties"),
    ("POST", f"{REGISTRY}/generateCredentials", {"tokenId": TOKEN_ID, "name": []}, "name"),
    ("POST", f"{REGISTRY}/regenerateCredential", {"name": 5}, "name"),
    ("POST", f"{REGISTRY}/importImage", {"source": {"sourceImage": ["a"], "registryUri": "x.io"}},
     "source.sourceImage"),
    ("POST", f"{PROVIDER}/checkNameAvailability", {"name": {"a": 1}}, "name"),
    ("PUT", f"{REGISTRY}/scopeMaps/mapping1", {"properties": {"actions": "repositories/a/content/read"}},
     "properties.actions"),
    ("PUT", f"{REGISTRY}/tokens/token1", {"properties": {"scopeMapId": 1}}, "properties.scopeMapId"),
    ("PATCH", f"{REGISTRY}/webhooks/hook12345", {"properties": {"status": []}}, "properties.status"),
])
def test_wrongly_typed_fields_are_invalid_parameters(arm: httpx.Client, method: str, path: str,
                                                     body: dict[str, object], field: str) -> None:
    before = arm.get(REGISTRY).json()
    error = arm_error(arm.request(method, path, json=body))
    assert error["code"].startswith("Invalid"), error
    assert error["message"].startswith(f"{field} "), error
    assert arm.get(REGISTRY).json() == before


def test_put_of_a_registry_needs_a_sku(arm: httpx.Client) -> None:
    before = arm.get(REGISTRY).json()
    assert arm_error(arm.put(REGISTRY, json={"location": before["location"]}))["code"] == "InvalidSku"
    assert arm_error(arm.put(REGISTRY, json={"location": before["location"], "sku": {}}))["code"] == "InvalidSku"
    fresh = REGISTRY.replace("cargohold", "nosku12345")
    assert arm_error(arm.put(fresh, json={"location": "local"}))["code"] == "InvalidSku"
    assert arm.get(fresh).status_code == 404
    assert arm.get(REGISTRY).json() == before


@pytest.mark.parametrize(("source", "extra", "field"), [
    ({"registryUri": "file:///etc", "sourceImage": "app:v1"}, {}, "source.registryUri"),
    ({"registryUri": "http://a..b", "sourceImage": "app:v1"}, {}, "source.registryUri"),
    ({"registryUri": f"https://{'a' * 64}.example", "sourceImage": "app:v1"}, {}, "source.registryUri"),
    ({"registryUri": "http://exa mple.com", "sourceImage": "app:v1"}, {}, "source.registryUri"),
    ({"registryUri": "127.0.0.1:1", "sourceImage": "../..:v1"}, {}, "sourceImage"),
    ({"registryUri": "127.0.0.1:1", "sourceImage": "app/../../etc:v1"}, {}, "sourceImage"),
    ({"registryUri": "127.0.0.1:1", "sourceImage": "app:v1"}, {"targetTags": ["app:bad tag"]}, "targetTags"),
    ({"registryUri": "127.0.0.1:1", "sourceImage": "app:v1"}, {"targetTags": ["app:" + "a" * 129]}, "targetTags"),
    ({"registryUri": "127.0.0.1:1", "sourceImage": "app:v1"}, {"untaggedTargetRepositories": ["../x"]},
     "untaggedTargetRepositories"),
    ({"registryUri": "127.0.0.1:1", "sourceImage": "app:v1", "credentials": {"password": "p"}}, {},
     "source.credentials"),
])
def test_imports_that_would_fail_later_are_refused_at_once(arm: httpx.Client, source: dict[str, object],
                                                           extra: dict[str, object], field: str) -> None:
    response = arm.post(f"{REGISTRY}/importImage", json={"source": source, **extra})
    error = arm_error(response)
    assert error["code"] == "InvalidParameter" and field in error["message"], error
    assert "Azure-AsyncOperation" not in response.headers


def test_api_versions(arm: httpx.Client) -> None:
    assert arm.get(REGISTRY).status_code == 200
    assert arm.get(REGISTRY, params={"api-version": "2019-05-01"}).status_code == 200
    for wrong in ("bogus", "2025-11-02", "2025-11-01 ", "x" * 5000, "2025\u000011"):
        response = arm.get(REGISTRY, params={"api-version": wrong})
        error = arm_error(response)
        assert error["code"] == "InvalidApiVersionParameter"
        assert "\u0000" not in error["message"] and len(error["message"]) < 2000
    missing = httpx.get(arm.base_url.join(REGISTRY), headers=arm.headers)
    assert arm_error(missing)["code"] == "MissingApiVersionParameter"
    unknown_path = arm.get(f"{REGISTRY}/nothingHere", params={"api-version": "1.0"})
    assert arm_error(unknown_path)["code"] == "InvalidApiVersionParameter"


def test_what_an_sdk_sends_still_works(arm: httpx.Client) -> None:
    """The schemas follow the published shapes: a full body with read-only fields echoed back is accepted."""
    current = arm.get(REGISTRY).json()
    echoed = arm.put(REGISTRY, content=json.dumps(current), headers={"Content-Type": "application/json"})
    assert echoed.status_code == 200, echoed.text
    changed = {key for key, value in echoed.json()["properties"].items() if current["properties"][key] != value}
    assert changed <= {"policies"}, changed


@pytest.mark.parametrize("path", [f"{REGISTRY}/webhooks/hook%00name", f"{REGISTRY}/tokens/tok%0Aen",
                                  REGISTRY.replace("/resourceGroups/default", "/resourceGroups/a%00b")])
def test_control_characters_in_resource_names_are_refused(arm: httpx.Client, path: str) -> None:
    assert arm_error(arm.get(path))["code"] == "InvalidResourceName"
    assert arm_error(arm.put(path, json={"properties": {}}))["code"] == "InvalidResourceName"


@pytest.mark.parametrize("uri", ["http://a..b", f"https://{'a' * 64}.example", "http://.example", "http://exa mple"])
def test_an_import_job_refuses_unresolvable_hosts_as_invalid_parameters(uri: str) -> None:
    """Imports queued before the request-time check (or by another path) fail as InvalidParameter too, not
    inside the resolver with an InternalServerError."""
    with pytest.raises(InvalidRegistryUri):
        base_url(uri)
