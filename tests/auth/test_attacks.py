"""Trying to get in where one does not belong: each attempt is refused with the right status and audited."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import httpx
import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cargohold.auth import registry_tokens
from cargohold.db.engine import make_engine
from tests.auth.support import (
    access_token,
    audit_entries,
    b64url,
    bearer,
    claims,
    cli,
    cli_plain,
    mint,
    registry_keyset,
    token,
)
from tests.support.images import make_image, push_image
from tests.support.server import RunningServer

PULL_WEB = "repository:app/web:pull"
OWNER = "identity:1"


@pytest.fixture(scope="module", autouse=True)
def image(server: RunningServer) -> None:
    with server.client() as client:
        push_image(client, "app/web", "v1", make_image("attacks", 1))


def refused_on_pull(server: RunningServer, jwt: str) -> httpx.Response:
    with bearer(server, jwt) as client:
        response = client.get("/v2/app/web/manifests/v1")
    assert response.status_code == 401, response.text
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    return response


def _invalid_tokens(entries: list[dict[str, object]]) -> int:
    return sum(1 for e in entries if e["detail"] == "invalid bearer token" and e["outcome"] == "denied")


def invalid_token_audited(server: RunningServer, since: int) -> bool:
    return _invalid_tokens(audit_entries(server, lambda e: _invalid_tokens(e) > since, action="authorize")) > since


def denied_count(server: RunningServer) -> int:
    return _invalid_tokens(audit_entries(server, lambda e: True, action="authorize"))


def test_a_genuine_token_works(server: RunningServer) -> None:
    owner = access_token(server, *server.credentials, PULL_WEB)
    with bearer(server, owner) as client:
        assert client.get("/v2/app/web/manifests/v1").status_code == 200


def test_expired_token(server: RunningServer) -> None:
    before = denied_count(server)
    refused_on_pull(server, mint(server, OWNER, [{"type": "repository", "name": "app/web", "actions": ["pull"]}],
                                 ttl=-120))
    assert invalid_token_audited(server, before)


def test_tampered_token(server: RunningServer) -> None:
    genuine = access_token(server, *server.credentials, PULL_WEB)
    header, payload, signature = genuine.split(".")
    widened = claims(genuine) | {"access": [{"type": "repository", "name": "*", "actions": ["pull", "push", "delete"]}]}
    before = denied_count(server)
    refused_on_pull(server, ".".join([header, b64url(json.dumps(widened).encode()), signature]))
    assert invalid_token_audited(server, before)


def test_unknown_key_id(server: RunningServer) -> None:
    stranger = ec.generate_private_key(ec.SECP256R1())
    forged = pyjwt.encode({**claims(access_token(server, *server.credentials, PULL_WEB))}, stranger, algorithm="ES256",
                          headers={"kid": "not-a-key-of-ours"})
    before = denied_count(server)
    refused_on_pull(server, forged)
    assert invalid_token_audited(server, before)


def test_right_kid_wrong_key(server: RunningServer) -> None:
    keyset = registry_keyset(server)
    stranger = ec.generate_private_key(ec.SECP256R1())
    forged = pyjwt.encode(claims(access_token(server, *server.credentials, PULL_WEB)), stranger, algorithm="ES256",
                          headers={"kid": keyset.signing_kid})
    refused_on_pull(server, forged)


def test_wrong_audience(server: RunningServer) -> None:
    before = denied_count(server)
    refused_on_pull(server, mint(server, OWNER, [{"type": "repository", "name": "app/web", "actions": ["pull"]}],
                                 audience="other.localhost"))
    assert invalid_token_audited(server, before)


def test_unsigned_alg_none(server: RunningServer) -> None:
    payload = claims(access_token(server, *server.credentials, PULL_WEB))
    unsigned = f"{b64url(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{b64url(json.dumps(payload).encode())}."
    before = denied_count(server)
    refused_on_pull(server, unsigned)
    assert invalid_token_audited(server, before)


def test_hmac_signed_with_the_public_key(server: RunningServer) -> None:
    keyset = registry_keyset(server)
    public_pem = keyset.verifying[keyset.signing_kid].public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    payload = claims(access_token(server, *server.credentials, PULL_WEB))
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": keyset.signing_kid}).encode())
    body = b64url(json.dumps(payload).encode())
    signature = b64url(hmac.new(public_pem, f"{header}.{body}".encode(), hashlib.sha256).digest())
    refused_on_pull(server, f"{header}.{body}.{signature}")


def test_refresh_token_is_not_an_access_token(server: RunningServer) -> None:
    response = token(server, *server.credentials, PULL_WEB, offline_token="true")
    refresh = response.json()["refresh_token"]
    refused_on_pull(server, refresh)


def test_grant_is_the_intersection_of_request_and_rights(server: RunningServer) -> None:
    reader = cli(server, "identity", "create", "--display-name", "reader", "--role", "AcrPull")
    response = token(server, reader["clientId"], reader["clientSecret"], "repository:app/web:pull,push,delete",
                     "registry:catalog:*", "repository:other/x:pull")
    assert response.status_code == 200
    granted = {(a["name"], tuple(a["actions"])) for a in claims(response.json()["access_token"])["access"]}
    assert granted == {("app/web", ("pull",)), ("catalog", ("*",)), ("other/x", ("pull",))}
    with bearer(server, response.json()["access_token"]) as client:
        upload = client.post("/v2/app/web/blobs/uploads/")
    assert upload.status_code == 401 and 'error="insufficient_scope"' in upload.headers["WWW-Authenticate"]
    def push_denied(entries: list[dict[str, object]]) -> bool:
        return any(e["outcome"] == "denied" and "push" in str(e["detail"]) for e in entries)

    assert push_denied(audit_entries(server, push_denied, action="authorize", identity="identity:reader"))


def test_disabled_registry_token(server: RunningServer) -> None:
    created = cli(server, "token", "create", "-t", "ci-bot", "--scope-map", "_repositories_pull")
    password = created["passwords"][0]["value"]
    early = access_token(server, "ci-bot", password, PULL_WEB)
    cli(server, "token", "update", "-t", "ci-bot", "--status", "disabled")
    assert token(server, "ci-bot", password, PULL_WEB).status_code == 401
    refused_on_pull(server, early)
    def bot_failed(entries: list[dict[str, object]]) -> bool:
        return any(e["outcome"] == "failed" and e["detail"] == "ci-bot" for e in entries)

    assert bot_failed(audit_entries(server, bot_failed, action="login"))


def test_deleted_identity_old_token(server: RunningServer) -> None:
    doomed = cli(server, "identity", "create", "--display-name", "doomed", "--role", "AcrPull")
    early = access_token(server, doomed["clientId"], doomed["clientSecret"], PULL_WEB)
    with bearer(server, early) as client:
        assert client.get("/v2/app/web/manifests/v1").status_code == 200
    cli_plain(server, "identity", "delete", "--client-id", doomed["clientId"])
    refused_on_pull(server, early)
    assert token(server, doomed["clientId"], doomed["clientSecret"], PULL_WEB).status_code == 401


def test_disabled_identity_old_token(server: RunningServer) -> None:
    paused = cli(server, "identity", "create", "--display-name", "paused", "--role", "AcrPull")
    early = access_token(server, paused["clientId"], paused["clientSecret"], PULL_WEB)
    cli_plain(server, "identity", "update", "--client-id", paused["clientId"], "--no-enabled")
    refused_on_pull(server, early)
    with httpx.Client(base_url=server.url, auth=(paused["clientId"], paused["clientSecret"])) as basic:
        assert basic.get("/v2/app/web/manifests/v1").status_code == 401


def test_expired_token_password(server: RunningServer) -> None:
    cli(server, "token", "create", "-t", "stale", "--scope-map", "_repositories_pull")
    engine = make_engine(server.database_url)
    with engine.begin() as conn:
        password = registry_tokens.generate_password(conn, 1, "stale", "password2",
                                                     datetime.now(UTC) - timedelta(minutes=1))
    engine.dispose()
    assert token(server, "stale", password, PULL_WEB).status_code == 401


def test_failed_logins_are_throttled(server: RunningServer) -> None:
    statuses = [token(server, "guesser", f"wrong-{i}", PULL_WEB).status_code for i in range(11)]
    assert statuses[:10] == [401] * 10 and statuses[10] == 429
    throttled = token(server, "guesser", "wrong-again", PULL_WEB)
    assert throttled.status_code == 429 and throttled.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
    def throttled_seen(entries: list[dict[str, object]]) -> bool:
        return any(e["outcome"] == "throttled" for e in entries)

    assert throttled_seen(audit_entries(server, throttled_seen, action="login"))
    assert token(server, *server.credentials, PULL_WEB).status_code == 200, "others are not locked out"


def test_network_rules_deny_an_address(fresh_server: RunningServer) -> None:
    server = fresh_server
    cli_plain(server, "network-rule", "add", "--ip-address", "127.0.0.1/32", "--kind", "proxy")
    cli(server, "update", "--default-action", "Deny")
    with server.client() as client:
        refused = client.get("/v2/", headers={"X-Forwarded-For": "203.0.113.9"})
        assert refused.status_code == 403
        assert refused.json()["errors"][0]["code"] == "DENIED" and "203.0.113.9" in refused.json()["errors"][0]["message"]
        assert client.get("/oauth2/token", headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 403
        cli_plain(server, "network-rule", "add", "--ip-address", "203.0.113.0/24")
        assert client.get("/v2/", headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 200
        assert client.get("/v2/", headers={"X-Forwarded-For": "198.51.100.1"}).status_code == 403
    def both_denied(entries: list[dict[str, object]]) -> bool:
        return {e["client_ip"] for e in entries} >= {"203.0.113.9", "198.51.100.1"}

    assert both_denied(audit_entries(server, both_denied, action="network"))
    cli(server, "update", "--public-network-enabled", "false", "--default-action", "Allow")
    with server.client() as client:
        assert client.get("/v2/").status_code == 200, "loopback stands in for a private endpoint"
        assert client.get("/v2/", headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 403
