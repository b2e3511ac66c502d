"""The token service as clients use it: challenges, the docker GET flow, the OAuth2 POST grants, refresh
tokens, the `az acr login` user name, anonymous tokens, the intersection rule and the AAD-style exchange."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.auth.helpers import (
    DATA_PLANE,
    REFRESH_TOKEN_USER,
    TENANT,
    assert_insufficient_scope,
    basic_client,
    bearer_client,
    error_code,
    get_token,
    granted,
    identity,
    jwt_header,
    jwt_payload,
    login_server,
    parse_challenge,
    post_form,
    token_response,
)
from tests.support.images import OCI_MANIFEST, make_image, push_image
from tests.support.server import RunningServer

PULL_WEB = "repository:app/web:pull"


@pytest.fixture(scope="module")
def digest(server: RunningServer) -> str:
    with server.client() as client:
        push_image(client, "other/x", "v1", make_image("flow-other", 1))
        return push_image(client, "app/web", "v1", make_image("flow-web", 1))


@pytest.fixture(scope="module")
def puller(server: RunningServer, digest: str) -> tuple[str, str]:
    return identity(server, "flow-puller", "AcrPull")


def can_pull(server: RunningServer, jwt: str, repository: str = "app/web") -> int:
    with bearer_client(server, jwt) as client:
        return client.get(f"/v2/{repository}/manifests/v1").status_code


def test_challenge_on_the_base_endpoint(server: RunningServer) -> None:
    response = httpx.get(f"{server.url}/v2/")
    assert response.status_code == 401
    assert error_code(response) == "UNAUTHORIZED"
    scheme, params = parse_challenge(response.headers["WWW-Authenticate"])
    assert scheme == "Bearer"
    assert params["realm"] == f"{server.url}/oauth2/token"
    assert params["service"] == login_server(server)
    assert "scope" not in params, "the base endpoint names no scope"


@pytest.mark.parametrize("method,path,scope", [
    ("GET", "/v2/app/web/manifests/v1", "repository:app/web:pull"),
    ("HEAD", "/v2/app/web/manifests/v1", "repository:app/web:pull,push"),
    ("GET", "/v2/app/web/tags/list", "repository:app/web:pull"),
    ("GET", "/v2/app/web/blobs/sha256:" + "0" * 64, "repository:app/web:pull"),
    ("GET", "/v2/app/web/referrers/sha256:" + "0" * 64, "repository:app/web:pull"),
    ("POST", "/v2/app/web/blobs/uploads/", "repository:app/web:pull,push"),
    ("PUT", "/v2/app/web/manifests/v2", "repository:app/web:pull,push"),
    ("DELETE", "/v2/app/web/manifests/v1", "repository:app/web:delete"),
    ("GET", "/v2/_catalog", "registry:catalog:*"),
])
def test_challenge_names_the_scope_an_endpoint_needs(server: RunningServer, digest: str, method: str, path: str,
                                                      scope: str) -> None:
    response = httpx.request(method, f"{server.url}{path}", content=b"{}" if method == "PUT" else None,
                             headers={"Content-Type": OCI_MANIFEST} if method == "PUT" else None)
    assert response.status_code == 401, response.text
    scheme, params = parse_challenge(response.headers["WWW-Authenticate"])
    assert (scheme, params["realm"], params["service"]) == ("Bearer", f"{server.url}/oauth2/token",
                                                            login_server(server))
    assert params["scope"] == scope
    assert "error" not in params, "no credential was offered, so it is not an invalid or insufficient one"
    if method != "HEAD":
        assert error_code(response) == "UNAUTHORIZED"


def test_following_the_challenge_as_docker_does(server: RunningServer, digest: str) -> None:
    challenged = httpx.get(f"{server.url}/v2/app/web/manifests/v1", headers={"Accept": OCI_MANIFEST})
    _, params = parse_challenge(challenged.headers["WWW-Authenticate"])
    issued = httpx.get(params["realm"], params={"service": params["service"], "scope": params["scope"]},
                       auth=server.credentials)
    assert issued.status_code == 200, issued.text
    with bearer_client(server, issued.json()["token"]) as client:
        pulled = client.get("/v2/app/web/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert pulled.status_code == 200 and pulled.headers["Docker-Content-Digest"] == digest


def test_token_with_basic_credentials(server: RunningServer, digest: str) -> None:
    response = token_response(server, server.credentials, "repository:app/web:pull,push")
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert body["access_token"] == body["token"]
    assert "refresh_token" not in body, "only offline_token=true asks for a refresh token"
    header, claims = jwt_header(body["access_token"]), jwt_payload(body["access_token"])
    assert header["alg"] == "ES256" and header["kid"]
    assert claims["aud"] == login_server(server)
    assert claims["sub"].startswith("identity:")
    assert claims["access"] == [{"type": "repository", "name": "app/web", "actions": ["pull", "push"]}]
    assert isinstance(body["expires_in"], int) and 0 < body["expires_in"]
    assert abs((claims["exp"] - time.time()) - body["expires_in"]) < 60, "expires_in tells the truth"
    assert can_pull(server, body["access_token"]) == 200


def test_several_scope_parameters_and_space_separated_scopes(server: RunningServer, digest: str) -> None:
    separate = get_token(server, *server.credentials, PULL_WEB, "repository:other/x:pull,push", "registry:catalog:*")
    joined = get_token(server, *server.credentials, f"{PULL_WEB} repository:other/x:pull,push registry:catalog:*")
    expected = {("repository", "app/web"): {"pull"}, ("repository", "other/x"): {"pull", "push"},
                ("registry", "catalog"): {"*"}}
    assert granted(separate) == expected
    assert granted(joined) == expected
    with bearer_client(server, separate) as client:
        assert client.get("/v2/other/x/manifests/v1").status_code == 200
        assert client.get("/v2/_catalog").json()["repositories"] == ["app/web", "other/x"]


def test_offline_token_adds_a_refresh_token(server: RunningServer, digest: str) -> None:
    body = token_response(server, server.credentials, PULL_WEB, offline_token="true").json()
    refresh = body["refresh_token"]
    claims = jwt_payload(refresh)
    assert claims["typ"] == "refresh" and claims["aud"] == login_server(server)
    assert claims["sub"] == jwt_payload(body["access_token"])["sub"]
    assert claims["exp"] > jwt_payload(body["access_token"])["exp"], "refresh tokens outlive access tokens"


def test_refresh_token_grant(server: RunningServer, puller: tuple[str, str]) -> None:
    refresh = token_response(server, puller, offline_token="true").json()["refresh_token"]
    response = post_form(server, "/oauth2/token", {"grant_type": "refresh_token", "service": login_server(server),
                                                    "scope": "repository:app/web:pull,push",
                                                    "refresh_token": refresh})
    assert response.status_code == 200, response.text
    access = response.json()["access_token"]
    assert jwt_payload(access)["sub"] == jwt_payload(refresh)["sub"]
    assert granted(access) == {("repository", "app/web"): {"pull"}}, "a refresh grant is still the intersection"
    assert can_pull(server, access) == 200


def test_refresh_grant_with_a_bad_refresh_token(server: RunningServer) -> None:
    response = post_form(server, "/oauth2/token", {"grant_type": "refresh_token", "service": login_server(server),
                                                    "scope": PULL_WEB, "refresh_token": "not.a.token"})
    assert response.status_code == 401
    assert error_code(response) == "UNAUTHORIZED"


def test_password_grant(server: RunningServer, puller: tuple[str, str]) -> None:
    form = {"grant_type": "password", "service": login_server(server), "scope": PULL_WEB,
            "username": puller[0], "password": puller[1]}
    response = post_form(server, "/oauth2/token", form)
    assert response.status_code == 200, response.text
    assert "refresh_token" not in response.json()
    assert can_pull(server, response.json()["access_token"]) == 200

    offline = post_form(server, "/oauth2/token", {**form, "access_type": "offline"})
    assert jwt_payload(offline.json()["refresh_token"])["typ"] == "refresh"

    wrong = post_form(server, "/oauth2/token", {**form, "password": puller[1] + "x"})
    assert wrong.status_code == 401 and error_code(wrong) == "UNAUTHORIZED"


def test_refresh_token_as_a_docker_password(server: RunningServer, puller: tuple[str, str]) -> None:
    """What `az acr login` hands docker: the all-zero user name and a refresh token as the password."""
    refresh = token_response(server, puller, offline_token="true").json()["refresh_token"]
    access = get_token(server, REFRESH_TOKEN_USER, refresh, PULL_WEB)
    assert can_pull(server, access) == 200
    with basic_client(server, REFRESH_TOKEN_USER, refresh) as client:
        assert client.get("/v2/").status_code == 200
        assert client.get("/v2/app/web/manifests/v1").status_code == 200
    assert token_response(server, (REFRESH_TOKEN_USER, refresh[:-4] + "AAAA"), PULL_WEB).status_code == 401


def test_anonymous_token_is_empty_while_anonymous_pull_is_off(server: RunningServer, digest: str) -> None:
    response = token_response(server, None, "repository:app/web:pull,push,delete", "registry:catalog:*")
    assert response.status_code == 200, response.text
    anonymous = response.json()["access_token"]
    assert jwt_payload(anonymous)["access"] == []
    assert "refresh_token" not in token_response(server, None, PULL_WEB, offline_token="true").json()
    assert can_pull(server, anonymous) == 401


def test_granted_access_is_the_intersection(server: RunningServer, puller: tuple[str, str]) -> None:
    access = get_token(server, *puller, "repository:app/web:push,pull,delete")
    assert jwt_payload(access)["access"] == [{"type": "repository", "name": "app/web", "actions": ["pull"]}]
    with bearer_client(server, access) as client:
        assert client.get("/v2/app/web/manifests/v1").status_code == 200
        refused = client.post("/v2/app/web/blobs/uploads/")
        assert_insufficient_scope(refused)
        assert parse_challenge(refused.headers["WWW-Authenticate"])[1]["scope"] == "repository:app/web:pull,push"
        assert_insufficient_scope(client.delete("/v2/app/web/manifests/v1"))


def identity_token(server: RunningServer, client_id: str, secret: str, resource: str = DATA_PLANE,
                   **kwargs: object) -> httpx.Response:
    return post_form(server, f"/{TENANT}/oauth2/v2.0/token", {
        "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret,
        "scope": f"{resource}/.default"}, **kwargs)  # type: ignore[arg-type]


def test_exchange_an_identity_token_then_refresh_to_access(server: RunningServer, puller: tuple[str, str]) -> None:
    discovered = httpx.get(f"{server.url}/{TENANT}/v2.0/.well-known/openid-configuration").json()
    assert discovered["token_endpoint"] == f"{server.url}/{TENANT}/oauth2/v2.0/token"

    issued = identity_token(server, *puller)
    assert issued.status_code == 200, issued.text
    assert issued.json()["token_type"] == "Bearer"
    aad = issued.json()["access_token"]
    assert jwt_payload(aad)["aud"] == DATA_PLANE

    exchanged = post_form(server, "/oauth2/exchange", {"grant_type": "access_token", "service": login_server(server),
                                                        "tenant": TENANT, "access_token": aad})
    assert exchanged.status_code == 200, exchanged.text
    refresh = exchanged.json()["refresh_token"]
    assert jwt_payload(refresh)["typ"] == "refresh"

    response = post_form(server, "/oauth2/token", {"grant_type": "refresh_token", "service": login_server(server),
                                                    "scope": PULL_WEB, "refresh_token": refresh})
    assert response.status_code == 200, response.text
    assert can_pull(server, response.json()["access_token"]) == 200


def test_exchange_refuses_what_is_not_an_identity_token(server: RunningServer, puller: tuple[str, str]) -> None:
    registry_access = get_token(server, *puller, PULL_WEB)
    refresh = token_response(server, puller, offline_token="true").json()["refresh_token"]
    for wrong in (registry_access, refresh, "garbage"):
        response = post_form(server, "/oauth2/exchange", {"grant_type": "access_token",
                                                          "service": login_server(server), "access_token": wrong})
        assert response.status_code == 401, response.text
        assert error_code(response) == "UNAUTHORIZED"


@pytest.mark.parametrize("path,form", [
    ("/oauth2/token", {"grant_type": "client_credentials"}),
    ("/oauth2/token", {"grant_type": "authorization_code", "code": "x"}),
    ("/oauth2/token", {}),
    ("/oauth2/exchange", {"grant_type": "password", "username": "x", "password": "y"}),
    ("/oauth2/exchange", {}),
    (f"/{TENANT}/oauth2/v2.0/token", {"grant_type": "password", "username": "x", "password": "y"}),
])
def test_unsupported_grant_types_are_400_json(server: RunningServer, path: str, form: dict[str, str]) -> None:
    response = post_form(server, path, form)
    assert response.status_code == 400, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["error"] == "unsupported_grant_type"


def test_a_json_body_is_not_a_grant(server: RunningServer) -> None:
    response = httpx.post(f"{server.url}/oauth2/token", json={"grant_type": "password", "username": "x"})
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("application/json")
