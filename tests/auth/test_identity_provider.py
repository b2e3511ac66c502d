"""cargohold as an OAuth2 authority for Microsoft's own client: `azure-identity`'s ClientSecretCredential (MSAL
underneath) gets an identity token from it over HTTPS, which is then exchanged for registry tokens."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt as pyjwt
import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientSecretCredential

from tests.auth.helpers import (
    DATA_PLANE,
    TENANT,
    cli,
    identity,
    jwt_payload,
    login_server,
    parse_challenge,
)
from tests.support.images import OCI_MANIFEST, make_image, push_image
from tests.support.server import RunningServer


@pytest.fixture(scope="module")
def ca(tls_server: RunningServer) -> Path:
    return tls_server.data_dir / "tls" / "ca.pem"


@pytest.fixture(scope="module")
def https(tls_server: RunningServer, ca: Path) -> Iterator[httpx.Client]:
    """Unauthenticated, but trusting only the registry's CA."""
    with httpx.Client(base_url=tls_server.url, verify=ssl.create_default_context(cafile=str(ca)), timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def digest(tls_server: RunningServer, ca: Path) -> str:
    with tls_server.client(verify=ssl.create_default_context(cafile=str(ca))) as owner:
        return push_image(owner, "app/web", "v1", make_image("idp", 1))


@pytest.fixture(scope="module")
def puller(tls_server: RunningServer, digest: str) -> tuple[str, str]:
    return identity(tls_server, "idp-puller", "AcrPull")


def credential(server: RunningServer, ca: Path, client_id: str, secret: str) -> ClientSecretCredential:
    return ClientSecretCredential(tenant_id=TENANT, client_id=client_id, client_secret=secret, authority=server.url,
                                  disable_instance_discovery=True, connection_verify=str(ca))


def test_discovery_over_https(tls_server: RunningServer, https: httpx.Client) -> None:
    config = https.get(f"/{TENANT}/v2.0/.well-known/openid-configuration").json()
    assert config["issuer"] == f"{tls_server.url}/{TENANT}/v2.0"
    assert config["token_endpoint"] == f"{tls_server.url}/{TENANT}/oauth2/v2.0/token"
    assert config["jwks_uri"] == f"{tls_server.url}/{TENANT}/discovery/v2.0/keys"


def test_azure_identity_token_then_exchange_then_pull(tls_server: RunningServer, ca: Path, https: httpx.Client,
                                                      puller: tuple[str, str], digest: str) -> None:
    aad = credential(tls_server, ca, *puller).get_token(f"{DATA_PLANE}/.default")
    assert aad.expires_on > time.time() + 60
    claims = jwt_payload(aad.token)
    assert claims["aud"] == DATA_PLANE and claims["appid"] == puller[0] and claims["tid"] == TENANT
    assert claims["iss"] == f"{tls_server.url}/{TENANT}/v2.0"

    challenge = https.get("/v2/app/web/manifests/v1")
    assert challenge.status_code == 401
    _, params = parse_challenge(challenge.headers["WWW-Authenticate"])
    assert params["realm"] == f"{tls_server.url}/oauth2/token", "the realm keeps the https scheme"

    exchanged = https.post("/oauth2/exchange", data={"grant_type": "access_token", "service": params["service"],
                                                     "tenant": TENANT, "access_token": aad.token})
    assert exchanged.status_code == 200, exchanged.text
    issued = https.post("/oauth2/token", data={"grant_type": "refresh_token", "service": params["service"],
                                               "scope": params["scope"],
                                               "refresh_token": exchanged.json()["refresh_token"]})
    assert issued.status_code == 200, issued.text
    pulled = https.get("/v2/app/web/manifests/v1", headers={"Authorization": f"Bearer {issued.json()['access_token']}",
                                                            "Accept": OCI_MANIFEST})
    assert pulled.status_code == 200 and pulled.headers["Docker-Content-Digest"] == digest


def test_identity_tokens_verify_against_the_published_keys(tls_server: RunningServer, ca: Path, https: httpx.Client,
                                                           puller: tuple[str, str]) -> None:
    aad = credential(tls_server, ca, *puller).get_token(f"{DATA_PLANE}/.default").token
    jwks = https.get(f"/{TENANT}/discovery/v2.0/keys").json()
    kid = pyjwt.get_unverified_header(aad)["kid"]
    [jwk] = [k for k in jwks["keys"] if k["kid"] == kid]
    claims = pyjwt.decode(aad, pyjwt.PyJWK(jwk).key, algorithms=["ES256"], audience=DATA_PLANE,
                          issuer=f"{tls_server.url}/{TENANT}/v2.0")
    assert claims["appid"] == puller[0]


def test_the_login_server_is_an_audience_too(tls_server: RunningServer, ca: Path, https: httpx.Client,
                                             puller: tuple[str, str]) -> None:
    resource = f"https://{login_server(tls_server)}"
    aad = credential(tls_server, ca, *puller).get_token(f"{resource}/.default").token
    assert jwt_payload(aad)["aud"] == resource
    exchanged = https.post("/oauth2/exchange", data={"grant_type": "access_token", "access_token": aad,
                                                     "service": login_server(tls_server)})
    assert exchanged.status_code == 200, exchanged.text


def test_wrong_secret_unknown_resource_and_disabled_identity(tls_server: RunningServer, ca: Path,
                                                             puller: tuple[str, str]) -> None:
    with pytest.raises(ClientAuthenticationError, match="client id or secret is wrong"):
        credential(tls_server, ca, puller[0], puller[1] + "x").get_token(f"{DATA_PLANE}/.default")
    with pytest.raises(ClientAuthenticationError, match="unknown resource"):
        credential(tls_server, ca, *puller).get_token("https://vault.azure.net/.default")
    paused = identity(tls_server, "idp-paused", "AcrPull")
    cli(tls_server, "identity", "update", "--client-id", paused[0], "--no-enabled", json_output=False)
    with pytest.raises(ClientAuthenticationError, match="client id or secret is wrong"):
        credential(tls_server, ca, *paused).get_token(f"{DATA_PLANE}/.default")


def test_the_ca_is_required(tls_server: RunningServer, puller: tuple[str, str]) -> None:
    """The registry's own CA is what makes the connection trusted; without it MSAL refuses to talk."""
    untrusting = ClientSecretCredential(tenant_id=TENANT, client_id=puller[0], client_secret=puller[1],
                                        authority=tls_server.url, disable_instance_discovery=True, retry_total=0)
    with pytest.raises(ClientAuthenticationError, match="CERTIFICATE_VERIFY_FAILED"):
        untrusting.get_token(f"{DATA_PLANE}/.default")
