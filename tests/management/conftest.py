"""Fixtures for driving Microsoft's `azure-mgmt-containerregistry` SDK against a running cargohold.

Each test module gets its own HTTPS server (`tls_server`, module scope): the SDK's bearer-token policy
(azure.core BearerTokenCredentialPolicy, which ARMChallengeAuthenticationPolicy extends) refuses to send a
token over plain HTTP, and separate servers keep the modules independent of one another. Inside a module,
tests make registries with names of their own (`unique`), so they do not depend on their order.

Registries are chosen on the data plane by Host header: `data_client(server, ca, "<name>.localhost")` sends
requests to the server's address with the login server as Host.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.identity import ClientSecretCredential
from azure.mgmt.containerregistry import ContainerRegistryManagementClient
from azure.mgmt.containerregistry.models import Registry, Sku

from tests.support.server import RunningServer

SUBSCRIPTION = "default"
RESOURCE_GROUP = "default"
HOME = "local"
DEFAULT_REGISTRY = "cargohold"
DOMAIN = "localhost"
API_VERSION = "2025-11-01"
MANAGEMENT_SCOPE = "https://management.azure.com/.default"
PROVIDER = "Microsoft.ContainerRegistry"
POLL = 0.05
"""Seconds between LRO polls (the SDK's default is 30, far too slow for tests)."""


def unique(prefix: str) -> str:
    """A registry-safe name (alphanumerics only) that no other test uses."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def login_server(name: str) -> str:
    return f"{name.lower()}.{DOMAIN}"


def registry_path(name: str, resource_group: str = RESOURCE_GROUP, subscription: str = SUBSCRIPTION) -> str:
    return f"/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/{PROVIDER}/registries/{name}"


def ca_file(server: RunningServer) -> str:
    return str(server.data_dir / "tls" / "ca.pem")


def make_credential(server: RunningServer, client_id: str, secret: str) -> ClientSecretCredential:
    return ClientSecretCredential("cargohold", client_id, secret, authority=server.url,
                                  disable_instance_discovery=True, connection_verify=ca_file(server))


def management_client(server: RunningServer, credential: ClientSecretCredential,
                      **kwargs: Any) -> ContainerRegistryManagementClient:
    """The SDK pointed at cargohold. Its credential scope stays the SDK's default for the public cloud
    (`https://management.azure.com/.default`, from azure.mgmt.core.tools.get_arm_endpoints). No retries: a
    server error should fail the test at once, not after the retry policy's backoff."""
    return ContainerRegistryManagementClient(credential, subscription_id=SUBSCRIPTION, base_url=server.url,
                                             connection_verify=ca_file(server), polling_interval=POLL,
                                             retry_total=0, **kwargs)


def data_client(server: RunningServer, registry: str, auth: tuple[str, str] | None = None,
                bearer: str | None = None) -> httpx.Client:
    """An HTTP client for one registry's data plane (`/v2/`, `/oauth2/`): the server's address, the registry's
    login server as Host. Authenticates with `bearer` (an access token), else with basic `auth`, else as the
    bootstrapped Owner (basic, as ACR allows on /v2/)."""
    verify = ssl.create_default_context(cafile=ca_file(server)) if server.scheme == "https" else True
    headers = {"Host": login_server(registry)}
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
        return httpx.Client(base_url=server.url, headers=headers, verify=verify, timeout=60)
    return httpx.Client(base_url=server.url, auth=auth if auth is not None else server.credentials,
                        headers=headers, verify=verify, timeout=60)


def access_token(server: RunningServer, registry: str, auth: tuple[str, str] | None, *scopes: str) -> httpx.Response:
    """Docker's token request: GET /oauth2/token with basic credentials (or none) at the registry's login server."""
    verify = ssl.create_default_context(cafile=ca_file(server)) if server.scheme == "https" else True
    return httpx.get(f"{server.url}/oauth2/token", auth=auth, verify=verify, timeout=60,
                     headers={"Host": login_server(registry)},
                     params={"service": login_server(registry), "scope": list(scopes)})


def anonymous_client(server: RunningServer, registry: str) -> httpx.Client:
    verify = ssl.create_default_context(cafile=ca_file(server)) if server.scheme == "https" else True
    return httpx.Client(base_url=server.url, headers={"Host": login_server(registry)}, verify=verify, timeout=60)


def cli(server: RunningServer, *args: str) -> Any:
    """`python -m cargohold ARGS --data-dir D -o json`, parsed."""
    done = subprocess.run([sys.executable, "-m", "cargohold", *args, "--data-dir", str(server.data_dir), "-o", "json"],
                          check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{' '.join(args)}: {done.stderr}"
    return json.loads(done.stdout)


def make_identity(server: RunningServer, display_name: str, role: str | None = None,
                  registry: str | None = None) -> tuple[str, str]:
    """A new service principal (client id, secret), with `role` on `registry` when given."""
    args = ["identity", "create", "--display-name", display_name]
    if role:
        args += ["--role", role, "--name", registry or DEFAULT_REGISTRY]
    created = cli(server, *args)
    return created["clientId"], created["clientSecret"]


def create_registry(mgmt: ContainerRegistryManagementClient, name: str, sku: str = "Basic",
                    resource_group: str = RESOURCE_GROUP, **properties: Any) -> Registry:
    return mgmt.registries.begin_create(resource_group, name, Registry(
        location=HOME, sku=Sku(name=sku), **properties)).result()


def error_code(exc: Any) -> str | None:
    """The ARM error code of an HttpResponseError, from the parsed error model or the raw body."""
    if getattr(exc, "error", None) is not None and getattr(exc.error, "code", None):
        return str(exc.error.code)
    response = getattr(exc, "response", None)
    if response is not None:
        try:
            return str(json.loads(response.text())["error"]["code"])
        except (ValueError, KeyError, TypeError):
            return None
    return None


def blob_path(server: RunningServer, digest: str) -> Path:
    """Where the filesystem store keeps a blob: storage/blobs/<alg>/<first two hex>/<hex>."""
    algorithm, hex_digest = digest.split(":", 1)
    return server.data_dir / "storage" / "blobs" / algorithm / hex_digest[:2] / hex_digest


@pytest.fixture(scope="module")
def ca(tls_server: RunningServer) -> str:
    return ca_file(tls_server)


@pytest.fixture(scope="module")
def owner_credential(tls_server: RunningServer) -> ClientSecretCredential:
    client_id, secret = tls_server.credentials
    return make_credential(tls_server, client_id, secret)


@pytest.fixture(scope="module")
def mgmt(tls_server: RunningServer, owner_credential: ClientSecretCredential
         ) -> Iterator[ContainerRegistryManagementClient]:
    with management_client(tls_server, owner_credential) as client:
        yield client


@pytest.fixture(scope="module")
def arm(tls_server: RunningServer, owner_credential: ClientSecretCredential) -> Iterator[httpx.Client]:
    """Raw HTTPS calls to the management API with the Owner's bearer token, for what the SDK hides."""
    token = owner_credential.get_token(MANAGEMENT_SCOPE).token
    with httpx.Client(base_url=tls_server.url, verify=ssl.create_default_context(cafile=ca_file(tls_server)),
                      headers={"Authorization": f"Bearer {token}"}, params={"api-version": API_VERSION},
                      timeout=60) as client:
        yield client
