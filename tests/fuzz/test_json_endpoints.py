"""Fuzzing every endpoint that reads a JSON body (#19): the ARM API, the /acr/v1 PATCHes and manifest PUT of a
real server process get bodies made by hypothesis (valid bodies with one value replaced by anything JSON can
say, arbitrary JSON, deep nesting, huge strings and numbers, lone surrogates, bytes that are not JSON) and must
answer each without a 5xx and without a traceback in the server's log.

Bounded: a fixed number of examples (about a minute on a loaded two-core machine), derandomized under CI so a
run there is reproducible. Addresses the server could reach out to (webhook serviceUri, import registryUri)
are drawn from loopback and invalid forms only: the fuzz never makes the server send traffic elsewhere.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.images import OCI_MANIFEST, make_image, push_image
from tests.support.server import RunningServer

pytestmark = pytest.mark.backend_independent

IN_CI = os.environ.get("CI", "").lower() == "true"
EXAMPLES = int(os.environ.get("CARGOHOLD_FUZZ_EXAMPLES", "300"))
BUDGET_SECONDS = 90.0
API = {"api-version": "2025-11-01"}
MANAGEMENT_SCOPE = "https://management.azure.com/.default"
PROVIDER = "/subscriptions/default/providers/Microsoft.ContainerRegistry"
GROUP = "/subscriptions/default/resourceGroups/default/providers/Microsoft.ContainerRegistry/registries"
HOME = f"{GROUP}/cargohold"
FUZZ = f"{GROUP}/fuzzreg1"
"""The registry the ARM bodies change: its own, so a body that locks it down does not stop the data-plane fuzz."""
REPOSITORY = "fuzz/app"

SAFE_URIS = {
    "serviceUri": ["http://127.0.0.1:1/hook", "http://localhost:1/", "https://[::1]:1/x", "ftp://127.0.0.1/",
                   "file:///etc/passwd", "", "127.0.0.1:1"],
    "registryUri": ["http://127.0.0.1:1", "http://localhost:1", "127.0.0.1:1", "http://[::1]:1",
                    "file:///etc/passwd", "http://a..b", f"https://{'a' * 64}.example", "http://exa mple.com",
                    "ftp://127.0.0.1/", "", " ", "http://127.0.0.1:1/a\r\nHost: x"],
}
"""Every address a fuzzed body may name: loopback on a closed port, or forms the server must refuse. (Webhook
addresses with spaces or line breaks are the webhook feature's own tests' business: they are accepted today and
would fail their deliveries.)"""

SPECIAL_STRINGS = ["", "\x00", "\ud800", "\udfff", "a" * 70_000, "é" * 5_000, "../..", "..%2f..", "Enabled",
                   "disabled", "Premium", "Basic", "password1", "a" * 129, "\r\n", " ", "null", "{}", "[]",
                   "repositories/app/content/read", f"{FUZZ}/tokens/fuzztoken", f"{FUZZ}/scopeMaps/fuzzmap",
                   "2030-01-01T00:00:00Z", "not a date", "app:v1", "app@sha256:" + "0" * 64, "UPPER:v1",
                   "\u202e\u0301", "😀" * 100]

HOSTILE_STRINGS = ["\x00", "\ud800", "a" * 70_000, "\r\n", "é" * 5_000, "", " x ", "\u202e"]
"""What a string field is most likely to choke on: NUL, a lone surrogate, size, line breaks, emptiness."""

SCALARS = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=24)
           | st.sampled_from(SPECIAL_STRINGS))
VALUES = st.recursive(SCALARS, lambda children: st.lists(children, max_size=4)
                      | st.dictionaries(st.text(max_size=12) | st.sampled_from(SPECIAL_STRINGS[:8]), children,
                                        max_size=4), max_leaves=10)


@dataclass(frozen=True)
class Target:
    method: str
    path: str
    template: Any
    kind: str
    """arm, acr (an /acr/v1 PATCH) or manifest (a manifest PUT)."""


def _registry_body() -> dict[str, Any]:
    return {"location": "local", "sku": {"name": "Premium"}, "tags": {"team": "fuzz"}, "identity": {"type": "None"},
            "properties": {
                "adminUserEnabled": True, "anonymousPullEnabled": False, "dataEndpointEnabled": False,
                "publicNetworkAccess": "Enabled", "zoneRedundancy": "Disabled",
                "networkRuleBypassOptions": "AzureServices", "networkRuleBypassAllowedForTasks": False,
                "roleAssignmentMode": "LegacyRegistryPermissions", "encryption": {"status": "disabled"},
                "networkRuleSet": {"defaultAction": "Allow", "ipRules": [{"action": "Allow", "value": "10.0.0.0/8"}]},
                "policies": {"quarantinePolicy": {"status": "disabled"}, "trustPolicy": {"type": "Notary",
                                                                                         "status": "disabled"},
                             "retentionPolicy": {"days": 7, "status": "disabled"},
                             "exportPolicy": {"status": "enabled"},
                             "softDeletePolicy": {"retentionDays": 7, "status": "disabled"}}}}


def _targets(digest: str) -> list[Target]:
    hook = {"location": "local", "tags": {"a": "b"}, "properties": {
        "serviceUri": SAFE_URIS["serviceUri"][0], "customHeaders": {"X-Fuzz": "1"}, "actions": ["push", "delete"],
        "scope": "fuzz/app:*", "status": "enabled"}}
    replica = {"location": "westus", "tags": {}, "properties": {"regionEndpointEnabled": True,
                                                                "zoneRedundancy": "Disabled"}}
    scope_map = {"properties": {"description": "fuzz", "actions": ["repositories/fuzz/app/content/read"]}}
    token = {"properties": {"scopeMapId": f"{FUZZ}/scopeMaps/fuzzmap", "status": "enabled"}}
    patch = {"deleteEnabled": True, "writeEnabled": True, "readEnabled": True, "listEnabled": True}
    image = {"source": {"registryUri": SAFE_URIS["registryUri"][0], "sourceImage": "fuzz/app:v1",
                        "credentials": {"username": "u", "password": "p"}},
             "targetTags": ["copied:v1"], "untaggedTargetRepositories": ["untagged"], "mode": "Force"}
    local_image = {"source": {"resourceId": HOME, "sourceImage": f"{REPOSITORY}:fuzz"}, "targetTags": ["copied:v2"]}
    return [
        Target("POST", f"{PROVIDER}/checkNameAvailability", {"name": "fuzzname1",
                                                             "type": "Microsoft.ContainerRegistry/registries"}, "arm"),
        Target("PUT", FUZZ, _registry_body(), "arm"),
        Target("PUT", f"{GROUP}/{{child}}", _registry_body(), "arm"),
        Target("PATCH", FUZZ, {k: v for k, v in _registry_body().items() if k != "location"}, "arm"),
        Target("POST", f"{FUZZ}/importImage", image, "arm"),
        Target("POST", f"{FUZZ}/importImage", local_image, "arm"),
        Target("POST", f"{FUZZ}/generateCredentials", {"tokenId": f"{FUZZ}/tokens/fuzztoken", "name": "password1",
                                                       "expiry": "2030-01-01T00:00:00Z"}, "arm"),
        Target("POST", f"{FUZZ}/regenerateCredential", {"name": "password2"}, "arm"),
        Target("PUT", f"{FUZZ}/webhooks/fuzzhook", hook, "arm"),
        Target("PUT", f"{FUZZ}/webhooks/{{child}}", hook, "arm"),
        Target("PATCH", f"{FUZZ}/webhooks/fuzzhook", hook, "arm"),
        Target("PUT", f"{FUZZ}/replications/fuzzrepl", replica, "arm"),
        Target("PUT", f"{FUZZ}/replications/{{child}}", replica, "arm"),
        Target("PATCH", f"{FUZZ}/replications/fuzzrepl", replica, "arm"),
        Target("PUT", f"{FUZZ}/scopeMaps/fuzzmap", scope_map, "arm"),
        Target("PUT", f"{FUZZ}/scopeMaps/{{child}}", scope_map, "arm"),
        Target("PATCH", f"{FUZZ}/scopeMaps/fuzzmap", scope_map, "arm"),
        Target("PUT", f"{FUZZ}/tokens/fuzztoken", token, "arm"),
        Target("PUT", f"{FUZZ}/tokens/{{child}}", token, "arm"),
        Target("PATCH", f"{FUZZ}/tokens/fuzztoken", token, "arm"),
        Target("PATCH", f"/acr/v1/{REPOSITORY}", patch, "acr"),
        Target("PATCH", f"/acr/v1/{REPOSITORY}/_tags/fuzz", patch, "acr"),
        Target("PATCH", f"/acr/v1/{REPOSITORY}/_manifests/{digest}",
               {**patch, "quarantineState": "Passed", "quarantineDetails": "{}"}, "acr"),
    ]


# bodies -------------------------------------------------------------------------------------------------------------

def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*prefix, index))


def _at(value: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        value = value[part]
    return value


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replace(value[head], rest, new)}
    copied = list(value)
    copied[head] = _replace(copied[head], rest, new)
    return copied


def _map_leaves(value: Any, change: Any) -> Any:
    if isinstance(value, dict):
        return {key: _map_leaves(child, change) for key, child in value.items()}
    if isinstance(value, list):
        return [_map_leaves(child, change) for child in value]
    return change(value)


@st.composite
def mutated(draw: st.DrawFn, template: Any) -> Any:
    """The template with one to three values replaced by arbitrary JSON, or with every string (or every value)
    replaced by one odd value, so a bad value reaches each field however the handler orders its checks."""
    mode = draw(st.integers(min_value=0, max_value=3))
    if mode == 0:
        odd = draw(st.sampled_from(HOSTILE_STRINGS) | SCALARS)
        strings_only = draw(st.booleans())
        return _map_leaves(template, lambda leaf: odd if isinstance(leaf, str) or not strings_only else leaf)
    if mode == 1:
        strings = [path for path in _paths(template) if isinstance(_at(template, path), str)]
        if strings:
            return _replace(template, draw(st.sampled_from(strings)), draw(st.sampled_from(HOSTILE_STRINGS)))
    body = template
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(list(_paths(body))))
        if draw(st.booleans()):
            body = _replace(body, path, draw(VALUES))
        else:
            body = _replace(body, path, draw(st.sampled_from([None, [], {}, 0, -1, 2**63, True, "", "a" * 70_000])))
    return body


def nested(depth: int, inner: str) -> str:
    return "[" * depth + inner + "]" * depth


@st.composite
def raw_bodies(draw: st.DrawFn, template: Any) -> bytes:
    """What is sent: a JSON text (ASCII escapes, so lone surrogates travel), or bytes that are no JSON at all."""
    choice = draw(st.integers(min_value=0, max_value=9))
    if choice <= 5:
        return json.dumps(draw(mutated(template))).encode()
    if choice == 6:
        return json.dumps(draw(VALUES)).encode()
    if choice == 7:
        depth = draw(st.sampled_from([63, 64, 65, 100, 1_000, 20_000]))
        inner = json.dumps(template)
        wrapped = nested(depth, inner) if draw(st.booleans()) else '{"properties":' * depth + inner + "}" * depth
        return wrapped.encode()
    if choice == 8:
        text = json.dumps(template)
        return text[: draw(st.integers(min_value=0, max_value=len(text)))].encode()
    return draw(st.sampled_from([b"\xff\xfe\x00", b"NaN", b'{"a": Infinity}', b"1" * 5000, b'"' + b"a" * 100_000,
                                 b"{\"a\":1,\"a\":[}", b"\x00" * 64, b""]))


def _pin_addresses(body: Any, draw: st.DrawFn) -> Any:
    """Keep any address the server might contact on loopback or in a refused form."""
    if not isinstance(body, dict):
        return body
    for holder_key, key in (("properties", "serviceUri"), ("source", "registryUri")):
        holder = body.get(holder_key)
        if isinstance(holder, dict) and isinstance(holder.get(key), str):
            body = {**body, holder_key: {**holder, key: draw(st.sampled_from(SAFE_URIS[key]))}}
    return body


@st.composite
def requests(draw: st.DrawFn, targets: list[Target]) -> tuple[Target, bytes]:
    target = draw(st.sampled_from(targets))
    if "{child}" in target.path:
        child = draw(st.sampled_from(["fuzzchild1", "fuzzchild2", "fuzzchild3", "ab", "a" * 51]))
        target = Target(target.method, target.path.replace("{child}", child), target.template, target.kind)
    raw = draw(raw_bodies(target.template))
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        return target, raw
    pinned = _pin_addresses(document, draw)
    return target, raw if pinned is document else json.dumps(pinned).encode()


@st.composite
def manifests(draw: st.DrawFn, template: dict[str, Any]) -> tuple[str, bytes, str]:
    reference = draw(st.sampled_from(["fuzz2", "fuzz3", "a" * 129, "sha256:" + "0" * 64, "-bad", "v1"]))
    content_type = draw(st.sampled_from([OCI_MANIFEST, "application/vnd.docker.distribution.manifest.v2+json",
                                         "application/vnd.oci.image.index.v1+json", "application/json", "",
                                         "text/plain; charset=\x7f"]))
    return reference, draw(raw_bodies(template)), content_type


# the server ---------------------------------------------------------------------------------------------------------

@dataclass
class Fuzzed:
    server: RunningServer
    arm: httpx.Client
    data: httpx.Client
    targets: list[Target]
    manifest: dict[str, Any]
    started: float


@pytest.fixture(scope="module")
def fuzzed(server: RunningServer) -> Iterator[Fuzzed]:
    client_id, secret = server.credentials
    token = httpx.post(f"{server.url}/cargohold/oauth2/v2.0/token", timeout=30, data={
        "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret,
        "scope": MANAGEMENT_SCOPE}).json()["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.url, params=API, timeout=60, headers=bearer) as arm, \
            server.client(headers={"Host": "cargohold.localhost"}) as data:
        created = arm.put(FUZZ, json=_registry_body())
        assert created.status_code in (200, 201), created.text
        for path, body in ((f"{FUZZ}/scopeMaps/fuzzmap", {"properties": {"actions": [
                "repositories/fuzz/app/content/read"]}}),
                           (f"{FUZZ}/tokens/fuzztoken", {"properties": {"scopeMapId": f"{FUZZ}/scopeMaps/fuzzmap"}})):
            assert arm.put(path, json=body).status_code in (200, 201)
        image = make_image("fuzz", 1)
        digest = push_image(data, REPOSITORY, "fuzz", image)
        yield Fuzzed(server, arm, data, _targets(digest), json.loads(image.manifest), time.monotonic())


def _fuzz_settings(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, derandomize=IN_CI, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much, HealthCheck.large_base_example])


def _no_server_error(response: httpx.Response, what: str) -> None:
    assert response.status_code < 500, f"{what}: {response.status_code} {response.text[:500]}"
    assert "Traceback" not in response.text, what


@pytest.mark.timeout(300)
def test_arm_and_acr_bodies_never_cause_a_server_error(fuzzed: Fuzzed) -> None:
    @_fuzz_settings(EXAMPLES)
    @given(requests(fuzzed.targets))
    def check(request: tuple[Target, bytes]) -> None:
        target, body = request
        client = fuzzed.arm if target.kind == "arm" else fuzzed.data
        response = client.request(target.method, target.path, content=body,
                                  headers={"Content-Type": "application/json"})
        _no_server_error(response, f"{target.method} {target.path} {body[:300]!r}")

    check()


@pytest.mark.timeout(300)
def test_manifest_bodies_never_cause_a_server_error(fuzzed: Fuzzed) -> None:
    @_fuzz_settings(max(EXAMPLES // 4, 10))
    @given(manifests(fuzzed.manifest))
    def check(request: tuple[str, bytes, str]) -> None:
        reference, body, content_type = request
        response = fuzzed.data.put(f"/v2/{REPOSITORY}/manifests/{reference}", content=body,
                                   headers={"Content-Type": content_type} if content_type else {})
        _no_server_error(response, f"PUT manifest {reference} {body[:300]!r}")

    check()


@pytest.mark.timeout(300)
def test_every_string_field_survives_hostile_strings(fuzzed: Fuzzed) -> None:
    """Not left to chance: each string in each template, in turn, replaced by each hostile string."""
    for target in fuzzed.targets:
        target = Target(target.method, target.path.replace("{child}", "fuzzchild4"), target.template, target.kind)
        client = fuzzed.arm if target.kind == "arm" else fuzzed.data
        for path in _paths(target.template):
            if not isinstance(_at(target.template, path), str) or path[-1:] in (("serviceUri",), ("registryUri",)):
                continue
            for hostile in HOSTILE_STRINGS:
                body = json.dumps(_replace(target.template, path, hostile)).encode()
                response = client.request(target.method, target.path, content=body,
                                          headers={"Content-Type": "application/json"})
                _no_server_error(response, f"{target.method} {target.path} {'.'.join(map(str, path))}={hostile[:20]!r}")


def test_the_server_logged_no_traceback_and_kept_to_its_budget(fuzzed: Fuzzed) -> None:
    time.sleep(1.0)
    log = (fuzzed.server.data_dir.parent / f"server-{fuzzed.server.port}.log").read_text(errors="replace")
    assert "Traceback" not in log, log[log.index("Traceback") - 500:][:4000]
    assert fuzzed.data.get("/v2/").status_code == 200
    assert time.monotonic() - fuzzed.started < BUDGET_SECONDS * 2
