"""The identity provider's tenant path segment (#19): tenant ids and domain-like names are served; anything
else is refused with 400 and never echoed into the OpenID configuration or a token's issuer."""

from __future__ import annotations

import httpx
import pytest

from tests.support.server import RunningServer

pytestmark = pytest.mark.backend_independent

MANAGEMENT_SCOPE = "https://management.azure.com/.default"


@pytest.mark.parametrize("tenant", ["cargohold", "common", "contoso.onmicrosoft.com",
                                    "72f988bf-86f1-41af-91ab-2d7cd011db47"])
def test_sane_tenants_are_served(server: RunningServer, tenant: str) -> None:
    response = httpx.get(f"{server.url}/{tenant}/v2.0/.well-known/openid-configuration", timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["issuer"] == f"{server.url}/{tenant}/v2.0"


@pytest.mark.parametrize("tenant", ["%2e%2e", "a%00b", "a" * 5000, "a%20b", "-start", "a..b", "tenant%0a",
                                    "%C3%BCber", "a_b"])
@pytest.mark.parametrize("path", ["v2.0/.well-known/openid-configuration", ".well-known/openid-configuration",
                                  "discovery/v2.0/keys"])
def test_odd_tenants_are_refused(server: RunningServer, tenant: str, path: str) -> None:
    response = httpx.get(f"{server.url}/{tenant}/{path}", timeout=30)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_tenant"
    assert "issuer" not in response.text and "\\u0000" not in response.text


def test_no_token_is_issued_for_an_odd_tenant(server: RunningServer) -> None:
    client_id, secret = server.credentials
    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret,
            "scope": MANAGEMENT_SCOPE}
    refused = httpx.post(f"{server.url}/a%00b/oauth2/v2.0/token", data=form, timeout=30)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_tenant"
    assert httpx.post(f"{server.url}/cargohold/oauth2/v2.0/token", data=form, timeout=30).status_code == 200
