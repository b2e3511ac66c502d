"""What each kind of caller may do, end to end: built-in roles (registry and repository scope), tokens with
custom and system scope maps, anonymous pull, the admin user, and signing-key rotation.

A refusal looks different by credential: HTTP Basic on /v2/ gets 403 DENIED (the caller is known and lacks
the right), a bearer token gets 401 with `error="insufficient_scope"` (the token service granted only the
intersection of what was asked and what is allowed, so the token lacks the scope).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from tests.auth.helpers import (
    assert_denied,
    assert_insufficient_scope,
    basic_client,
    bearer_client,
    cli,
    cli_many,
    get_token,
    granted,
    jwt_header,
    login_server,
    post_form,
    registry_name,
    token_response,
)
from tests.support.images import OCI_MANIFEST, make_image, push_blob, push_image, sha256
from tests.support.server import RunningServer

OPERATIONS = ("pull", "push", "delete", "tags", "catalog")
ROLE_RIGHTS = {
    "AcrPull": {"pull", "tags", "catalog"},
    "AcrPush": {"pull", "push", "tags", "catalog"},
    "AcrDelete": {"delete", "catalog"},
    "Reader": {"pull", "tags", "catalog"},
    "Contributor": set(OPERATIONS),
    "Owner": set(OPERATIONS),
    "AcrImageSigner": set(),
}
SCOPE_FOR = {"pull": "repository:{repo}:pull", "push": "repository:{repo}:pull,push",
             "delete": "repository:{repo}:delete", "tags": "repository:{repo}:pull", "catalog": "registry:catalog:*"}
SUCCESS = {"pull": 200, "push": 201, "delete": 202, "tags": 200, "catalog": 200}


@pytest.fixture(scope="module")
def seeded(server: RunningServer) -> dict[str, str]:
    """app/web:v1 and other/x:v1 to read, and per role and mode an image for that caller to delete."""
    digests = {}
    with server.client() as client:
        push_image(client, "app/web", "v1", make_image("perm-web", 1))
        push_image(client, "other/x", "v1", make_image("perm-other", 1))
        for role, rights in ROLE_RIGHTS.items():
            for mode in ("basic", "bearer"):
                # A refused DELETE is refused before the manifest is looked up: only deleters need a victim.
                digests[f"{role}-{mode}"] = push_image(client, "app/web", f"victim-{role}-{mode}".lower(),
                                                       make_image(f"victim-{role}-{mode}", 1)) \
                    if "delete" in rights else make_image(f"absent-{role}-{mode}", 1).digest
    return digests


SYSTEM_SCOPE_MAPS = {
    "_repositories_pull": {"pull", "tags"},
    "_repositories_pull_metadata_read": {"pull", "tags", "catalog"},
    "_repositories_push": {"pull", "tags", "push"},
    "_repositories_push_metadata_write": {"pull", "tags", "push", "catalog"},
    "_repositories_admin": {"pull", "tags", "push", "delete", "catalog"},
}


@pytest.fixture(scope="module")
def principals(server: RunningServer, seeded: dict[str, str]) -> dict[str, tuple[str, str]]:
    """Everyone this module needs, made with the admin CLI in two parallel batches (each command is a
    process of its own): an identity per role, an identity for a repository-scoped role, a token per system
    scope map and a token with a custom scope map."""
    first = cli_many(server, [
        *[("identity", "create", "--display-name", f"perm-{role}", "--role", role) for role in ROLE_RIGHTS],
        ("identity", "create", "--display-name", "perm-app-team"),
        ("scope-map", "create", "--scope-map-name", "app-readers", "--repository", "app/* content/read"),
        *[("token", "create", "-t", f"sys{i}", "--scope-map", name) for i, name in enumerate(SYSTEM_SCOPE_MAPS)],
    ])
    found = {role: (c["clientId"], c["clientSecret"]) for role, c in zip(ROLE_RIGHTS, first, strict=False)}
    team = first[len(ROLE_RIGHTS)]
    found["app-team"] = (team["clientId"], team["clientSecret"])
    for i, created in enumerate(first[len(ROLE_RIGHTS) + 2:]):
        found[f"sys{i}"] = (f"sys{i}", created["passwords"][0]["value"])
    second = cli_many(server, [
        ("role", "assignment", "create", "--assignee", team["clientId"], "--role", "AcrPush", "--repository", "app/*"),
        ("token", "create", "-t", "perm-app-reader", "--scope-map", "app-readers", "-o", "json"),
    ], json_output=False)
    found["app-reader"] = ("perm-app-reader", json.loads(second[1])["passwords"][0]["value"])
    return found


def operate(client: httpx.Client, operation: str, repo: str, tag: str, victim: str | None) -> httpx.Response:
    """Do one operation; for push, the first refused step (or the manifest PUT)."""
    if operation == "pull":
        return client.get(f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST})
    if operation == "tags":
        return client.get(f"/v2/{repo}/tags/list")
    if operation == "catalog":
        return client.get("/v2/_catalog")
    if operation == "delete":
        return client.delete(f"/v2/{repo}/manifests/{victim}")
    image = make_image(f"pushed-{repo}-{tag}", 1)
    for blob in (image.config, *image.layers):
        response = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": sha256(blob)}, content=blob)
        if response.status_code != 201:
            return response
    return client.put(f"/v2/{repo}/manifests/{tag}", content=image.manifest, headers={"Content-Type": OCI_MANIFEST})


ClientFor = Callable[[str], httpx.Client]


def clients_for(server: RunningServer, user: str, password: str, mode: str) -> ClientFor:
    """A client for one scope: basic credentials as they are, or a bearer token asked for that scope."""
    if mode == "basic":
        return lambda scope: basic_client(server, user, password)
    return lambda scope: bearer_client(server, get_token(server, user, password, scope))


def check(client_for: ClientFor, operation: str, allowed: bool, mode: str, repo: str = "app/web", tag: str = "t",
          victim: str | None = None) -> None:
    with client_for(SCOPE_FOR[operation].format(repo=repo)) as client:
        response = operate(client, operation, repo, tag, victim)
    if allowed:
        assert response.status_code == SUCCESS[operation], f"{operation} on {repo}: {response.status_code} {response.text}"
    elif mode == "basic":
        assert_denied(response)
    else:
        assert_insufficient_scope(response)


@pytest.mark.parametrize("mode", ["basic", "bearer"])
@pytest.mark.parametrize("role", list(ROLE_RIGHTS))
def test_role_at_registry_scope(server: RunningServer, seeded: dict[str, str],
                                principals: dict[str, tuple[str, str]], role: str, mode: str) -> None:
    user, secret = principals[role]
    client_for = clients_for(server, user, secret, mode)
    failures = []
    for operation in OPERATIONS:
        try:
            check(client_for, operation, operation in ROLE_RIGHTS[role], mode, tag=f"{role}-{mode}".lower(),
                  victim=seeded[f"{role}-{mode}"])
        except AssertionError as exc:
            failures.append(f"{operation}: {exc}")
    assert not failures, f"{role} with {mode}:\n" + "\n".join(failures)


def test_role_at_repository_scope(server: RunningServer, principals: dict[str, tuple[str, str]]) -> None:
    user, secret = principals["app-team"]
    for mode in ("basic", "bearer"):
        client_for = clients_for(server, user, secret, mode)
        check(client_for, "pull", True, mode, "app/web")
        check(client_for, "push", True, mode, "app/team", tag=mode)
        check(client_for, "tags", True, mode, "app/web")
        check(client_for, "pull", False, mode, "other/x")
        check(client_for, "push", False, mode, "other/x", tag=mode)
        check(client_for, "tags", False, mode, "other/x")
        check(client_for, "catalog", False, mode)
        check(client_for, "delete", False, mode, "app/web", victim="v1")
    access = get_token(server, user, secret, "repository:app/web:pull,push", "repository:other/x:pull",
                       "repository:apple/x:pull", "registry:catalog:*")
    assert granted(access) == {("repository", "app/web"): {"pull", "push"}}


def test_repository_scope_does_not_leak_through_a_cross_repository_mount(
        server: RunningServer, principals: dict[str, tuple[str, str]]) -> None:
    with server.client() as owner:
        digest = push_blob(owner, "other/x", b"only in other/x " * 64)
    with basic_client(server, *principals["app-team"]) as client:
        for params in ({"mount": digest, "from": "other/x"}, {"mount": digest}):
            response = client.post("/v2/app/stolen/blobs/uploads/", params=params)
            assert response.status_code == 202, f"mount {params} from an unreadable repository: {response.status_code}"
        assert client.get(f"/v2/app/stolen/blobs/{digest}").status_code == 404


def test_token_with_a_custom_scope_map(server: RunningServer, principals: dict[str, tuple[str, str]]) -> None:
    user, password = principals["app-reader"]
    for mode in ("basic", "bearer"):
        client_for = clients_for(server, user, password, mode)
        check(client_for, "pull", True, mode, "app/web")
        check(client_for, "tags", True, mode, "app/web")
        check(client_for, "push", False, mode, "app/web", tag=mode)
        check(client_for, "delete", False, mode, "app/web", victim="v1")
        check(client_for, "pull", False, mode, "other/x")
        check(client_for, "catalog", False, mode)
    access = get_token(server, user, password, "repository:app/web:pull,push,delete", "repository:other/x:pull")
    assert granted(access) == {("repository", "app/web"): {"pull"}}


def test_tokens_with_system_scope_maps(server: RunningServer, principals: dict[str, tuple[str, str]]) -> None:
    victims = {}
    with server.client() as owner:
        for i in range(len(SYSTEM_SCOPE_MAPS)):
            victims[i] = push_image(owner, "other/x", f"sys-victim-{i}", make_image(f"sys-victim-{i}", 1))
    failures = []
    for i, (scope_map, rights) in enumerate(SYSTEM_SCOPE_MAPS.items()):
        client_for = clients_for(server, *principals[f"sys{i}"], "basic")
        for operation in OPERATIONS:
            try:
                check(client_for, operation, operation in rights, "basic", "other/x", tag=f"sys{i}", victim=victims[i])
            except AssertionError as exc:
                failures.append(f"{scope_map} {operation}: {exc}")
    assert not failures, "\n".join(failures)


def test_anonymous_pull(server: RunningServer, seeded: dict[str, str]) -> None:
    with httpx.Client(base_url=server.url) as anonymous:
        assert anonymous.get("/v2/app/web/manifests/v1").status_code == 401
        cli(server, "update", "--anonymous-pull-enabled", "true")
        try:
            assert anonymous.get("/v2/app/web/manifests/v1").status_code == 200
            assert anonymous.get("/v2/other/x/tags/list").status_code == 200
            assert anonymous.post("/v2/app/web/blobs/uploads/").status_code == 401
            assert anonymous.delete("/v2/app/web/manifests/v1").status_code == 401
            token = token_response(server, None, "repository:app/web:pull,push,delete").json()["access_token"]
            assert granted(token) == {("repository", "app/web"): {"pull"}}
            with bearer_client(server, token) as client:
                assert client.get("/v2/app/web/manifests/v1").status_code == 200
                assert_insufficient_scope(client.post("/v2/app/web/blobs/uploads/"))
                assert_insufficient_scope(client.delete("/v2/app/web/manifests/v1"))
            # Documented (docs/auth.md): anonymous pull also lists repositories, as the Azure SDK's anonymous
            # mode does.
            assert anonymous.get("/v2/_catalog").status_code == 200
        finally:
            cli(server, "update", "--anonymous-pull-enabled", "false")
        assert anonymous.get("/v2/app/web/manifests/v1").status_code == 401
        with bearer_client(server, token) as client:
            assert client.get("/v2/app/web/manifests/v1").status_code == 401, "switching it off voids the tokens"


def test_admin_user(server: RunningServer, seeded: dict[str, str]) -> None:
    admin = registry_name(server)
    assert token_response(server, (admin, "anything"), "repository:app/web:pull").status_code == 401
    cli(server, "update", "--admin-enabled", "true")
    try:
        shown = cli(server, "credential", "show")
        assert shown["username"] == admin
        passwords = [p["value"] for p in shown["passwords"]]
        assert len(passwords) == 2
        with basic_client(server, admin, passwords[0]) as client:
            pushed = push_image(client, "admin/app", "v1", make_image("admin-pushed", 1))
            assert client.get("/v2/_catalog").status_code == 200
        access = get_token(server, admin, passwords[1], "repository:admin/app:pull,push,delete")
        assert granted(access) == {("repository", "admin/app"): {"pull", "push", "delete"}}
        with bearer_client(server, access) as client:
            assert client.get("/v2/admin/app/manifests/v1").headers["Docker-Content-Digest"] == pushed

        renewed = cli(server, "credential", "renew", "--password-name", "password")
        fresh = next(p["value"] for p in renewed["passwords"] if p["name"] == "password")
        assert fresh != passwords[0]
        with basic_client(server, admin, passwords[0]) as client:
            assert client.get("/v2/admin/app/manifests/v1").status_code == 401, "the renewed password is void"
        assert token_response(server, (admin, passwords[0]), "repository:admin/app:pull").status_code == 401
        with basic_client(server, admin, fresh) as client:
            assert client.get("/v2/admin/app/manifests/v1").status_code == 200
        with basic_client(server, admin, passwords[1]) as client:
            assert client.get("/v2/admin/app/manifests/v1").status_code == 200, "the other password still works"
    finally:
        cli(server, "update", "--admin-enabled", "false")
    with basic_client(server, admin, fresh) as client:
        assert client.get("/v2/admin/app/manifests/v1").status_code == 401
    with bearer_client(server, access) as client:
        assert client.get("/v2/admin/app/manifests/v1").status_code == 401, "disabling the admin voids its tokens"


def test_key_rotation(server: RunningServer, seeded: dict[str, str]) -> None:
    body = token_response(server, server.credentials, "repository:app/web:pull", offline_token="true").json()
    before, refresh = body["access_token"], body["refresh_token"]
    cli(server, "keys", "rotate", json_output=False)
    after = get_token(server, *server.credentials, "repository:app/web:pull")
    assert jwt_header(after)["kid"] != jwt_header(before)["kid"], "new tokens are signed with the new key"
    for jwt in (before, after):
        with bearer_client(server, jwt) as client:
            assert client.get("/v2/app/web/manifests/v1").status_code == 200
    refreshed = post_form(server, "/oauth2/token", {"grant_type": "refresh_token", "service": login_server(server),
                                                     "scope": "repository:app/web:pull", "refresh_token": refresh})
    assert refreshed.status_code == 200, "a refresh token from before the rotation still works"
    assert jwt_header(refreshed.json()["access_token"])["kid"] == jwt_header(after)["kid"]
