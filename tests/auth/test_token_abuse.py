"""More ways in where one does not belong, beyond test_attacks.py: tokens outliving the principal they named,
token-type confusion, claims the server must insist on even under its own signature, garbage credentials,
brute force through every door, and spoofed client addresses. Each is refused and audited."""

from __future__ import annotations

import base64
import time
from typing import Any

import httpx
import jwt as pyjwt
import pytest

from tests.auth.helpers import (
    DATA_PLANE,
    REFRESH_TOKEN_USER,
    TENANT,
    assert_invalid_token,
    audit,
    basic_client,
    bearer_client,
    cli,
    error_code,
    get_token,
    identity,
    jwt_payload,
    keyset,
    login_server,
    post_form,
    token_response,
)
from tests.support.images import make_image, push_image
from tests.support.server import RunningServer

PULL_PUSH_WEB = "repository:app/web:pull,push"


@pytest.fixture(scope="module", autouse=True)
def image(server: RunningServer) -> None:
    with server.client() as client:
        push_image(client, "app/web", "v1", make_image("abuse", 1))


def identity_token(server: RunningServer, client_id: str, secret: str, **headers: str) -> httpx.Response:
    return post_form(server, f"/{TENANT}/oauth2/v2.0/token", {
        "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret,
        "scope": f"{DATA_PLANE}/.default"}, headers=headers)


def refresh_grant(server: RunningServer, refresh: str, scope: str = PULL_PUSH_WEB) -> httpx.Response:
    return post_form(server, "/oauth2/token", {"grant_type": "refresh_token", "service": login_server(server),
                                                "scope": scope, "refresh_token": refresh})


def exchange(server: RunningServer, aad: str) -> httpx.Response:
    return post_form(server, "/oauth2/exchange", {"grant_type": "access_token", "service": login_server(server),
                                                   "access_token": aad})


def start_upload(server: RunningServer, jwt: str) -> httpx.Response:
    with bearer_client(server, jwt) as client:
        return client.post("/v2/app/web/blobs/uploads/")


def test_a_deleted_identitys_tokens_do_not_pass_to_the_next_identity(server: RunningServer) -> None:
    """Tokens name their principal by row id (`sub: identity:<id>`). Deleting the newest identity and creating
    another must not hand the new one's validity (or the old token's rights) to the old tokens."""
    pusher = identity(server, "abuse-doomed-pusher", "AcrPush")
    body = token_response(server, pusher, PULL_PUSH_WEB, offline_token="true").json()
    access, refresh = body["access_token"], body["refresh_token"]
    aad = identity_token(server, *pusher).json()["access_token"]
    assert start_upload(server, access).status_code == 202
    cli(server, "identity", "delete", "--client-id", pusher[0], json_output=False)
    assert_invalid_token(start_upload(server, access))

    newcomer = identity(server, "abuse-newcomer", "AcrPull")
    assert get_token(server, *newcomer, "repository:app/web:pull")  # the newcomer is real and works
    failures = []
    upload = start_upload(server, access)
    if upload.status_code != 401:
        failures.append(f"deleted pusher's access token: POST /v2/app/web/blobs/uploads/ -> {upload.status_code}")
    refreshed = refresh_grant(server, refresh)
    if refreshed.status_code != 401:
        failures.append(f"deleted pusher's refresh token: refresh grant -> {refreshed.status_code} "
                        f"sub={jwt_payload(refreshed.json()['access_token'])['sub']}")
    with basic_client(server, REFRESH_TOKEN_USER, refresh) as client:
        status = client.get("/v2/app/web/manifests/v1").status_code
        if status != 401:
            failures.append(f"deleted pusher's refresh token as docker password: GET manifest -> {status}")
    exchanged = exchange(server, aad)
    if exchanged.status_code != 401:
        failures.append(f"deleted pusher's identity token: /oauth2/exchange -> {exchanged.status_code}")
    assert not failures, "\n".join(failures)


def test_a_deleted_registry_tokens_access_does_not_pass_to_the_next_token(server: RunningServer) -> None:
    created = cli(server, "token", "create", "-t", "abuse-doomed-bot", "--scope-map", "_repositories_push")
    access = get_token(server, "abuse-doomed-bot", created["passwords"][0]["value"], PULL_PUSH_WEB)
    assert start_upload(server, access).status_code == 202
    cli(server, "token", "delete", "-t", "abuse-doomed-bot", json_output=False)
    assert_invalid_token(start_upload(server, access))
    cli(server, "token", "create", "-t", "abuse-next-bot", "--scope-map", "_repositories_pull")
    upload = start_upload(server, access)
    assert upload.status_code == 401, f"a deleted token's access token pushes again: {upload.status_code}"


def test_token_type_confusion(server: RunningServer) -> None:
    owner = server.credentials
    body = token_response(server, owner, "repository:app/web:pull", offline_token="true").json()
    access, refresh = body["access_token"], body["refresh_token"]
    aad = identity_token(server, *owner).json()["access_token"]

    with bearer_client(server, aad) as client:
        assert_invalid_token(client.get("/v2/app/web/manifests/v1"))  # an identity token is not a registry token
    for not_a_refresh_token in (access, aad):
        assert refresh_grant(server, not_a_refresh_token).status_code == 401
        assert token_response(server, (REFRESH_TOKEN_USER, not_a_refresh_token)).status_code == 401
    assert exchange(server, refresh).status_code == 401
    assert exchange(server, access).status_code == 401

    def audited(entries: list[dict[str, Any]]) -> bool:
        failed = [e["detail"] for e in entries if e["action"] == "login" and e["outcome"] == "failed"]
        bearer = [e for e in entries if e["action"] == "authorize" and e["detail"] == "invalid bearer token"]
        return failed.count("refresh_token") >= 2 and failed.count("exchange") >= 2 and bool(bearer)

    assert audited(audit(server, audited))


def _sign(server: RunningServer, claims: dict[str, Any], registry_id: int | None = 1) -> str:
    keys = keyset(server, registry_id)
    return pyjwt.encode(claims, keys.signing_key, algorithm="ES256", headers={"kid": keys.signing_kid})


def _claims(server: RunningServer, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"iss": login_server(server), "aud": login_server(server), "sub": "identity:1", "iat": now,
              "nbf": now - 30, "exp": now + 300, "jti": "x", "typ": "access", "name": "forged",
              "access": [{"type": "repository", "name": "app/web", "actions": ["pull", "push"]}]}
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def test_claims_are_insisted_on_even_under_our_own_signature(server: RunningServer) -> None:
    """Tokens signed with the real key, each wrong in one way (as a bug in issuing might make them)."""
    assert start_upload(server, _sign(server, _claims(server))).status_code == 202, "the control token works"
    now = int(time.time())
    forged = {
        "not yet valid": _sign(server, _claims(server, nbf=now + 3600, iat=now + 3600)),
        "no expiry": _sign(server, _claims(server, exp=None)),
        "no type": _sign(server, _claims(server, typ=None)),
        "a refresh token": _sign(server, _claims(server, typ="refresh")),
        "an identity token": _sign(server, _claims(server, typ="identity")),
        "no audience": _sign(server, _claims(server, aud=None)),
        "no subject": _sign(server, _claims(server, sub=None)),
        "a subject that never existed": _sign(server, _claims(server, sub="identity:987654")),
        "a malformed subject": _sign(server, _claims(server, sub="root")),
        "the admin user, which is off": _sign(server, _claims(server, sub="admin:1")),
        "signed by the identity provider's key": _sign(server, _claims(server), registry_id=None),
        "access is not a list": _sign(server, _claims(server, access={"app/web": ["push"]})),
    }
    before = _invalid_bearer_records(server)
    failures = []
    for what, jwt in forged.items():
        response = start_upload(server, jwt)
        if response.status_code != 401:
            failures.append(f"{what}: {response.status_code}")
    assert not failures, "accepted: " + ", ".join(failures)
    assert _audited_more_invalid_bearers(server, before, len(forged))


def _invalid_bearer_records(server: RunningServer) -> int:
    entries = audit(server, lambda e: True, timeout=0, action="authorize")
    return sum(e["count"] for e in entries if e["detail"] == "invalid bearer token" and e["outcome"] == "denied")


def _audited_more_invalid_bearers(server: RunningServer, before: int, more: int) -> bool:
    def enough(entries: list[dict[str, Any]]) -> bool:
        return sum(e["count"] for e in entries
                   if e["detail"] == "invalid bearer token" and e["outcome"] == "denied") >= before + more

    return enough(audit(server, enough, action="authorize"))


GARBAGE_BEARERS = ["x", "a.b", "a.b.c", "...", "e30.e30.", "W10.W10.W10", "eyJhbGciOiJFUzI1NiJ9." * 3,
                   "ü.ü.ü", "A" * 20000]
GARBAGE_BASIC = ["not base64!", base64.b64encode(b"no-colon").decode(), base64.b64encode(b"\xff\xfe:\xff").decode(),
                 base64.b64encode(b":").decode(), "===="]


def test_garbage_credentials_are_401_never_500(server: RunningServer) -> None:
    before = _invalid_bearer_records(server)
    failures = []
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for garbage in GARBAGE_BEARERS:
            response = client.get("/v2/app/web/manifests/v1",
                                  headers={"Authorization": f"Bearer {garbage}".encode()})
            if response.status_code != 401 or error_code(response) != "UNAUTHORIZED":
                failures.append(f"Bearer {garbage[:30]!r}: {response.status_code}")
        for garbage in GARBAGE_BASIC:
            for path in ("/v2/app/web/manifests/v1", "/oauth2/token?scope=repository:app/web:pull"):
                response = client.get(path, headers={"Authorization": f"Basic {garbage}"})
                if response.status_code not in (200, 401) or response.status_code >= 500:
                    failures.append(f"Basic {garbage!r} on {path}: {response.status_code}")
                if path.startswith("/v2/") and response.status_code != 401:
                    failures.append(f"Basic {garbage!r} on {path}: {response.status_code}")
    assert not failures, "\n".join(failures)
    assert _audited_more_invalid_bearers(server, before, len(GARBAGE_BEARERS))


def test_x_forwarded_for_does_not_dodge_throttling_without_a_trusted_proxy(server: RunningServer) -> None:
    statuses = [token_response(server, ("abuse-guesser", f"wrong-{i}"), "repository:app/web:pull",
                               ).status_code for i in range(10)]
    assert statuses == [401] * 10
    with httpx.Client(base_url=server.url) as client:
        dodging = client.get("/oauth2/token", params={"scope": "repository:app/web:pull"},
                             auth=("abuse-guesser", "wrong-again"), headers={"X-Forwarded-For": "198.51.100.77"})
    assert dodging.status_code == 429, "an untrusted peer's X-Forwarded-For must not make a new client address"
    assert error_code(dodging) == "TOOMANYREQUESTS"
    assert dodging.headers.get("Retry-After", "").isdigit()


def test_a_throttled_name_is_refused_even_with_the_right_password(server: RunningServer) -> None:
    """Otherwise throttling only slows a guesser down until the right guess, which still gets in."""
    user, secret = identity(server, "abuse-victim", "AcrPull")
    form = {"grant_type": "password", "service": login_server(server), "scope": "repository:app/web:pull",
            "username": user}
    statuses = [post_form(server, "/oauth2/token", {**form, "password": f"guess-{i}"}).status_code
                for i in range(5)]
    with httpx.Client(base_url=server.url) as client:
        statuses += [client.get("/v2/app/web/manifests/v1", auth=(user, f"guess-{i}")).status_code for i in range(5)]
    assert statuses == [401] * 10, "failures count the same through every door"
    assert post_form(server, "/oauth2/token", {**form, "password": secret}).status_code == 429
    with basic_client(server, user, secret) as client:
        right = client.get("/v2/app/web/manifests/v1")
    assert right.status_code == 429 and error_code(right) == "TOOMANYREQUESTS"

    def throttled(entries: list[dict[str, Any]]) -> bool:
        return sum(1 for e in entries if e["outcome"] == "throttled" and e["detail"] == user) >= 2

    assert throttled(audit(server, throttled, action="login"))


def test_the_identity_provider_throttles_failed_client_secrets(server: RunningServer) -> None:
    """Documented: after 10 failed logins from one address for one user name within 5 minutes, further
    attempts get 429. The identity provider's client-credentials endpoint is a login too."""
    user, secret = identity(server, "abuse-sp", "AcrPull")
    statuses = [identity_token(server, user, f"guess-{i}").status_code for i in range(10)]
    assert statuses == [401] * 10

    def failed(entries: list[dict[str, Any]]) -> bool:
        return sum(1 for e in entries if e["outcome"] == "failed" and user in str(e["detail"])) >= 10

    assert failed(audit(server, failed, action="login")), "failed client secrets are audited"
    eleventh = identity_token(server, user, "guess-10")
    right = identity_token(server, user, secret)
    assert (eleventh.status_code, right.status_code) == (429, 429), (
        f"after 10 failures: a wrong secret -> {eleventh.status_code}, the right one -> {right.status_code}")


def test_spoofed_forwarded_for_and_network_rules(fresh_server: RunningServer) -> None:
    server = fresh_server
    cli(server, "network-rule", "add", "--ip-address", "203.0.113.0/24", json_output=False)
    cli(server, "update", "--default-action", "Deny")
    with server.client() as client:
        for path in ("/v2/", "/oauth2/token"):
            refused = client.get(path, headers={"X-Forwarded-For": "203.0.113.9"})
            assert refused.status_code == 403, f"{path}: an untrusted peer cannot claim an allowed address"
            assert error_code(refused) == "DENIED" and "127.0.0.1" in refused.json()["errors"][0]["message"]
        exchanged = post_form(server, "/oauth2/exchange", {"grant_type": "access_token", "access_token": "x"})
        assert exchanged.status_code == 403 and error_code(exchanged) == "DENIED"

        cli(server, "network-rule", "add", "--ip-address", "127.0.0.1/32", "--kind", "proxy", json_output=False)
        assert client.get("/v2/", headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 200
        assert client.get("/v2/", headers={"X-Forwarded-For": "203.0.113.9, 198.51.100.7"}).status_code == 403, (
            "the right-most untrusted hop is the client, whatever it put on the left")
        assert client.get("/v2/").status_code == 403, "the proxy itself is not an allowed client"

    def seen(entries: list[dict[str, Any]]) -> bool:
        return {"127.0.0.1", "198.51.100.7"} <= {e["client_ip"] for e in entries if e["outcome"] == "denied"}

    assert seen(audit(server, seen, action="network"))
