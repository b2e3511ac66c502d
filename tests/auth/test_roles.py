"""Each built-in role, at registry and repository scope, with a password and with a bearer token."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.auth.support import access_token, cli, cli_plain
from tests.support.images import OCI_MANIFEST, make_image, push_blob, push_image, sha256
from tests.support.server import RunningServer

ROLE_RIGHTS = {
    "AcrPull": {"pull", "catalog"},
    "Reader": {"pull", "catalog"},
    "AcrPush": {"pull", "push", "catalog"},
    "AcrDelete": {"delete", "catalog"},
    "Contributor": {"pull", "push", "delete", "catalog"},
    "Owner": {"pull", "push", "delete", "catalog"},
    "AcrImageSigner": set(),
}
SCOPES = {"pull": "repository:{repo}:pull", "push": "repository:{repo}:pull,push",
          "delete": "repository:{repo}:delete", "catalog": "registry:catalog:*"}


@pytest.fixture(scope="module")
def seeded(server: RunningServer) -> dict[str, str]:
    """An image per role to delete, plus app/web and other/x for pulls."""
    digests = {}
    with server.client() as client:
        for repo in ("app/web", "other/x"):
            push_image(client, repo, "v1", make_image(repo, 1))
        for role in ROLE_RIGHTS:
            for mode in ("basic", "bearer"):
                digests[f"{role}-{mode}"] = push_image(client, "app/web", f"{role}-{mode}".lower(),
                                                       make_image(f"{role}{mode}", 1))
    return digests


def attempt(client_for: Callable[[str], httpx.Client], right: str, target: str) -> int:
    repo = "app/web"
    with client_for(SCOPES[right].format(repo=repo)) as client:
        if right == "pull":
            return client.get(f"/v2/{repo}/manifests/v1").status_code
        if right == "catalog":
            return client.get("/v2/_catalog").status_code
        if right == "delete":
            return client.delete(f"/v2/{repo}/manifests/{target}").status_code
        config = make_image(f"push-{target}", 1).config
        response = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": sha256(config)}, content=config)
        return response.status_code


@pytest.mark.parametrize("role", list(ROLE_RIGHTS))
@pytest.mark.parametrize("mode", ["basic", "bearer"])
def test_role_rights_at_registry_scope(server: RunningServer, seeded: dict[str, str], role: str, mode: str) -> None:
    identity = cli(server, "identity", "create", "--display-name", f"{role}-{mode}", "--role", role)
    user, secret = identity["clientId"], identity["clientSecret"]

    def client_for(scope: str) -> httpx.Client:
        if mode == "basic":
            return httpx.Client(base_url=server.url, auth=(user, secret))
        return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {access_token(server, user, secret, scope)}"})

    for right in ("pull", "push", "catalog", "delete"):
        status = attempt(client_for, right, seeded[f"{role}-{mode}"])
        if right in ROLE_RIGHTS[role]:
            assert status in (200, 201, 202), f"{role} ({mode}) should {right}, got {status}"
        else:
            assert status in (401, 403), f"{role} ({mode}) must not {right}, got {status}"


def test_repository_scoped_role(server: RunningServer, seeded: dict[str, str]) -> None:
    identity = cli(server, "identity", "create", "--display-name", "app-team")
    cli_plain(server, "role", "assignment", "create", "--assignee", identity["clientId"], "--role", "AcrPush",
              "--repository", "app/*")
    with httpx.Client(base_url=server.url, auth=(identity["clientId"], identity["clientSecret"])) as client:
        assert client.get("/v2/app/web/manifests/v1").status_code == 200
        assert push_blob(client, "app/new", b"team bytes").startswith("sha256:")
        assert client.get("/v2/other/x/manifests/v1").status_code == 403
        assert client.post("/v2/other/x/blobs/uploads/").status_code == 403
        assert client.get("/v2/_catalog").status_code == 403, "a repository-scoped role does not list the catalog"


def test_system_scope_map_tokens(server: RunningServer, seeded: dict[str, str]) -> None:
    expectations = {"_repositories_pull": {"pull"}, "_repositories_push": {"pull", "push"},
                    "_repositories_admin": {"pull", "push", "delete", "catalog"}}
    for scope_map, rights in expectations.items():
        name = scope_map.strip("_").replace("_", "-")
        created = cli(server, "token", "create", "-t", name, "--scope-map", scope_map)
        password = created["passwords"][0]["value"]
        with httpx.Client(base_url=server.url, auth=(name, password)) as client:
            assert (client.get("/v2/other/x/manifests/v1").status_code == 200) == ("pull" in rights)
            upload = client.post("/v2/other/x/blobs/uploads/")
            assert (upload.status_code == 202) == ("push" in rights), upload.text
            assert (client.get("/v2/_catalog").status_code == 200) == ("catalog" in rights)


def test_anonymous_pull(server: RunningServer, seeded: dict[str, str]) -> None:
    anonymous = httpx.Client(base_url=server.url)
    assert anonymous.get("/v2/app/web/manifests/v1").status_code == 401
    cli(server, "update", "--anonymous-pull-enabled", "true")
    try:
        token = anonymous.get("/oauth2/token", params={"scope": "repository:app/web:pull,push"}).json()["token"]
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}) as bearer:
            assert bearer.get("/v2/app/web/manifests/v1").status_code == 200
            assert bearer.post("/v2/app/web/blobs/uploads/").status_code == 401
        assert anonymous.get("/v2/app/web/manifests/v1").status_code == 200
        assert anonymous.put("/v2/app/web/manifests/x", content=b"{}",
                             headers={"Content-Type": OCI_MANIFEST}).status_code == 401
        assert anonymous.delete("/v2/app/web/manifests/v1").status_code == 401
    finally:
        cli(server, "update", "--anonymous-pull-enabled", "false")
    assert anonymous.get("/v2/app/web/manifests/v1").status_code == 401
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}) as bearer:
        assert bearer.get("/v2/app/web/manifests/v1").status_code == 401, "switching it off voids anonymous tokens"


def test_admin_user(server: RunningServer, seeded: dict[str, str]) -> None:
    assert httpx.get(f"{server.url}/v2/", auth=("cargohold", "anything")).status_code == 401
    cli(server, "update", "--admin-enabled", "true")
    shown = cli(server, "credential", "show")
    assert shown["username"] == "cargohold"
    first, second = (p["value"] for p in shown["passwords"])
    for password in (first, second):
        with httpx.Client(base_url=server.url, auth=("cargohold", password)) as admin:
            assert admin.get("/v2/app/web/manifests/v1").status_code == 200
    renewed = cli(server, "credential", "renew", "--password-name", "password")
    new_first = renewed["passwords"][0]["value"]
    assert new_first != first
    assert httpx.get(f"{server.url}/v2/", auth=("cargohold", first)).status_code == 401
    assert httpx.get(f"{server.url}/v2/", auth=("cargohold", new_first)).status_code == 200
    cli(server, "update", "--admin-enabled", "false")
    assert httpx.get(f"{server.url}/v2/", auth=("cargohold", new_first)).status_code == 401


def test_key_rotation_keeps_earlier_tokens_valid(server: RunningServer, seeded: dict[str, str]) -> None:
    before = access_token(server, *server.credentials, "repository:app/web:pull")
    cli_plain(server, "keys", "rotate")
    after = access_token(server, *server.credentials, "repository:app/web:pull")
    for jwt in (before, after):
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {jwt}"}) as client:
            assert client.get("/v2/app/web/manifests/v1").status_code == 200
