"""The management CLI (`cargohold create | show | ... | import | webhook | replication | config | account`),
driven as a subprocess against real servers through their ARM API."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.images import OCI_MANIFEST, make_image, push_image
from tests.support.receiver import Receiver
from tests.support.server import RunningServer, free_port

FOREIGN_SETTINGS = ("CARGOHOLD_SERVER", "CARGOHOLD_DATA_DIR", "CARGOHOLD_PRICES", "CARGOHOLD_CA_FILE",
                    "CARGOHOLD_INSECURE_HTTP", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID",
                    "AZURE_SUBSCRIPTION_ID")


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli-config")


@pytest.fixture(autouse=True)
def isolated(config_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No profile, server or credentials of the person running the tests leaks in."""
    for name in FOREIGN_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CARGOHOLD_CONFIG_DIR", str(config_dir))
    yield


def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "cargohold", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})}, cwd=cwd, stdin=subprocess.DEVNULL, check=False)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def on(server: RunningServer, *args: str, **kwargs: Any) -> Any:
    """Run a command against `server` (zero-config: its data dir), JSON output parsed."""
    done = run(*args, "--data-dir", str(server.data_dir), "-o", "json", **kwargs)
    assert done.returncode == 0, f"{' '.join(args)}: {done.stderr}"
    return json.loads(done.stdout) if done.stdout.strip() else None


def refused(server: RunningServer | None, *args: str, **kwargs: Any) -> str:
    """Run a command that must fail: exit 1 and one `error: ...` line, no traceback. Returns that line."""
    extra = ["--data-dir", str(server.data_dir)] if server is not None else []
    done = run(*args, *extra, **kwargs)
    assert done.returncode == 1, f"{' '.join(args)} should fail: {done.stdout} {done.stderr}"
    assert done.stderr.startswith("error: "), done.stderr
    return done.stderr.strip()


# registries ---------------------------------------------------------------------------------------------------

def test_serve_records_where_it_listens(server: RunningServer) -> None:
    record = server.data_dir / "server.json"
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    assert json.loads(record.read_text())["url"] == server.url


def test_registry_lifecycle(server: RunningServer) -> None:
    assert on(server, "check-name", "-n", "clilife01") == {"nameAvailable": True}
    created = on(server, "create", "-n", "clilife01", "--sku", "premium", "-l", "westeurope",
                 "--tags", "team=web", "env=dev", "--admin-enabled", "true")
    assert created["name"] == "clilife01" and created["resourceGroup"] == "default"
    assert created["sku"]["name"] == "Premium" and created["location"] == "westeurope"
    assert created["tags"] == {"team": "web", "env": "dev"}
    assert created["properties"]["adminUserEnabled"] is True
    assert created["properties"]["loginServer"].startswith("clilife01.")

    taken = on(server, "check-name", "-n", "clilife01")
    assert taken["nameAvailable"] is False and taken["reason"] == "AlreadyExists"
    assert on(server, "check-name", "-n", "no")["reason"] == "Invalid"
    assert "AlreadyInUse" in refused(server, "create", "-n", "clilife01", "--sku", "Basic")

    shown = on(server, "show", "-n", "CliLife01")
    assert shown["id"] == created["id"]
    assert on(server, "show", "-n", "clilife01", "-g", "default", "--query", "sku.name") == "Premium"

    changed = on(server, "update", "-n", "clilife01", "--admin-enabled", "false", "--default-action", "Deny",
                 "--tags", "team=api")
    assert changed["properties"]["adminUserEnabled"] is False
    assert changed["properties"]["networkRuleSet"]["defaultAction"] == "Deny"
    assert changed["tags"] == {"team": "api"}
    assert on(server, "update", "-n", "clilife01", "--sku", "Standard", "--default-action", "Allow",
              "--query", "sku.name") == "Standard"

    assert "--yes" in refused(server, "delete", "-n", "clilife01")
    deleted = run("delete", "-n", "clilife01", "--yes", "--data-dir", str(server.data_dir))
    assert deleted.returncode == 0, deleted.stderr
    assert "ResourceNotFound" in refused(server, "show", "-n", "clilife01")


def test_update_as_the_other_commands_call_it(server: RunningServer) -> None:
    """`cargohold update --anonymous-pull-enabled true --data-dir D` works with nothing configured, and the
    data plane follows at once."""
    with server.client() as owner:
        push_image(owner, "cli/anon", "v1", make_image("cli-anon"))
    anonymous = httpx.Client(base_url=server.url, timeout=30)
    assert anonymous.get("/v2/cli/anon/manifests/v1", headers={"Accept": OCI_MANIFEST}).status_code == 401
    done = on(server, "update", "--anonymous-pull-enabled", "true")
    try:
        assert done["name"] == "cargohold" and done["properties"]["anonymousPullEnabled"] is True
        assert anonymous.get("/v2/cli/anon/manifests/v1", headers={"Accept": OCI_MANIFEST}).status_code == 200
    finally:
        on(server, "update", "--anonymous-pull-enabled", "false")
    assert anonymous.get("/v2/cli/anon/manifests/v1", headers={"Accept": OCI_MANIFEST}).status_code == 401


def test_output_formats_and_query(server: RunningServer) -> None:
    on(server, "create", "-n", "clifmt01", "--sku", "Basic")
    try:
        names = run("list", "-o", "tsv", "--query", "[].name", "--data-dir", str(server.data_dir))
        assert names.returncode == 0 and {"cargohold", "clifmt01"} <= set(names.stdout.split())
        table = run("list", "-o", "table", "--data-dir", str(server.data_dir)).stdout
        assert "LoginServer" in table and "clifmt01.localhost" in table and "Basic" in table
        row = run("show", "-n", "clifmt01", "-o", "tsv", "--data-dir", str(server.data_dir)).stdout
        assert row.split("\t")[:4] == ["clifmt01", "default", "local", "Basic"]
        picked = on(server, "list", "--query", "[?sku.name=='Basic'].{n:name, s:properties.loginServer}")
        assert picked == [{"n": "clifmt01", "s": "clifmt01.localhost"}]
        bad = run("list", "--query", "[?", "--data-dir", str(server.data_dir))
        assert bad.returncode == 2 and "--query" in bad.stderr
    finally:
        on(server, "delete", "-n", "clifmt01", "--yes")


@pytest.fixture(scope="module")
def standard(server: RunningServer) -> Iterator[str]:
    """A Standard registry: the one `serve` made is Premium."""
    on(server, "create", "-n", "clistandard", "--sku", "Standard")
    yield "clistandard"
    on(server, "delete", "-n", "clistandard", "--yes")


def test_show_usage_and_cost(server: RunningServer, standard: str, tmp_path: Path) -> None:
    usage = on(server, "show-usage", "-n", standard)
    figures = {u["name"]: u for u in usage["value"]}
    assert figures["Size"] == {"name": "Size", "limit": 100 * 1024**3, "currentValue": 0, "unit": "Bytes"}
    assert figures["Webhooks"]["limit"] == 10
    cost = usage["estimatedMonthlyCost"]
    assert cost["sku"] == "Standard" and cost["currency"] == "USD" and cost["days"] == 30.42
    assert cost["total"] == round(0.667 * 30.42, 2) == 20.29 and cost["storageFee"] == 0

    table = run("show-usage", "-n", standard, "-o", "table", "--data-dir", str(server.data_dir)).stdout
    assert "Webhooks" in table and "Estimated monthly cost: 20.29 USD = Standard 0.667/day x 30.42 days" in table

    with server.client(headers={"Host": f"{standard}.localhost"}) as owner:
        push_image(owner, "cli/sized", "v1", make_image("cli-sized"))
    stored = on(server, "show-usage", "-n", standard, "--query", "value[?name=='Size'].currentValue | [0]")
    assert stored > 0
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"currency": "EUR", "storagePerGiBDay": 1e9,
                                  "skus": {"Standard": {"perDay": 1.0, "includedStorageGiB": 0}}}))
    priced = on(server, "show-usage", "-n", standard, "--prices", str(prices), "--query", "estimatedMonthlyCost")
    assert priced["currency"] == "EUR" and priced["skuFee"] == 30.42
    assert priced["storageFee"] == pytest.approx(stored / 1024**3 * 30.42 * 1e9, abs=0.01)
    assert priced["total"] == pytest.approx(30.42 + priced["storageFee"], abs=0.01)
    from_env = on(server, "show-usage", "-n", standard, "--query", "estimatedMonthlyCost.skuFee",
                  env={"CARGOHOLD_PRICES": str(prices)})
    assert from_env == 30.42
    prices.write_text('{"skus": {"Standard": {"perDay": "cheap"}}}')
    assert "price list" in refused(server, "show-usage", "-n", standard, "--prices", str(prices))


# webhooks, replications, policies -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def premium(server: RunningServer) -> Iterator[str]:
    on(server, "create", "-n", "clipremium", "--sku", "Premium", "-l", "westeurope")
    yield "clipremium"
    on(server, "delete", "-n", "clipremium", "--yes")


def test_webhook_crud(server: RunningServer, premium: str) -> None:
    created = on(server, "webhook", "create", "-n", "clihook1", "-r", premium, "--uri", "https://hooks.example/in",
                 "--actions", "push", "delete", "--scope", "app:*", "--headers", "Authorization=Bearer x", "X-A=1")
    assert created["name"] == "clihook1" and created["location"] == "westeurope"
    assert created["properties"] == {"status": "enabled", "scope": "app:*", "actions": ["push", "delete"],
                                     "provisioningState": "Succeeded"}
    assert on(server, "webhook", "list", "-r", premium, "--query", "[].name") == ["clihook1"]
    assert on(server, "webhook", "get-config", "-n", "clihook1", "-r", premium) == {
        "serviceUri": "https://hooks.example/in", "customHeaders": {"Authorization": "Bearer x", "X-A": "1"}}

    on(server, "webhook", "update", "-n", "clihook1", "-r", premium, "--status", "disabled", "--actions", "push",
       "--uri", "https://hooks.example/v2")
    shown = on(server, "webhook", "show", "-n", "clihook1", "-r", premium, "--query", "properties")
    assert shown["status"] == "disabled" and shown["actions"] == ["push"] and shown["scope"] == "app:*"
    assert on(server, "webhook", "get-config", "-n", "clihook1", "-r", premium,
              "--query", "serviceUri") == "https://hooks.example/v2"
    assert "InvalidServiceUri" in refused(server, "webhook", "create", "-n", "clihook2", "-r", premium,
                                          "--uri", "ftp://hooks.example/in", "--actions", "push")
    on(server, "webhook", "delete", "-n", "clihook1", "-r", premium)
    assert "ResourceNotFound" in refused(server, "webhook", "show", "-n", "clihook1", "-r", premium)


def test_webhook_ping_and_history(server: RunningServer, premium: str) -> None:
    receiver = Receiver().start()
    receiver.answer(204)
    try:
        on(server, "webhook", "create", "-n", "pinghook1", "-r", premium, "--actions", "push",
           "--uri", receiver.url())
        event_id = on(server, "webhook", "ping", "-n", "pinghook1", "-r", premium)["id"]
        assert [(d.event["id"], d.event["action"]) for d in receiver.wait_for(1)] == [(event_id, "ping")]
        deadline = time.monotonic() + 15
        history: list[dict[str, Any]] = []
        while not history and time.monotonic() < deadline:
            history = on(server, "webhook", "list-events", "-n", "pinghook1", "-r", premium)
        assert history[0]["id"] == event_id
        assert history[0]["eventResponseMessage"]["statusCode"] == "204"
        assert history[0]["eventRequestMessage"]["content"]["action"] == "ping"
    finally:
        receiver.stop()
        on(server, "webhook", "delete", "-n", "pinghook1", "-r", premium)


def test_replication_crud(server: RunningServer, premium: str, standard: str) -> None:
    created = on(server, "replication", "create", "-r", premium, "-l", "eastus")
    assert created["name"] == "eastus" and created["location"] == "eastus"
    assert created["properties"]["regionEndpointEnabled"] is True
    on(server, "replication", "create", "-r", premium, "-l", "north europe", "-n", "northeu",
       "--region-endpoint-enabled", "false")
    assert on(server, "replication", "list", "-r", premium, "--query", "[].[name, location]") == [
        ["eastus", "eastus"], ["northeu", "north europe"]]
    updated = on(server, "replication", "update", "-n", "eastus", "-r", premium, "--region-endpoint-enabled",
                 "false", "--tags", "tier=edge")
    assert updated["properties"]["regionEndpointEnabled"] is False and updated["tags"] == {"tier": "edge"}
    assert on(server, "replication", "show", "-n", "northeu", "-r", premium, "--query",
              "properties.status.displayStatus") == "Ready"
    on(server, "replication", "delete", "-n", "eastus", "-r", premium)
    on(server, "replication", "delete", "-n", "northeu", "-r", premium)
    assert on(server, "replication", "list", "-r", premium) == []
    assert "GeoReplicationNotSupported" in refused(server, "replication", "create", "-r", standard, "-l", "eastus")


def test_policies(server: RunningServer, premium: str, standard: str) -> None:
    assert on(server, "config", "content-trust", "show", "-r", premium) == {"type": "Notary", "status": "disabled"}
    assert on(server, "config", "content-trust", "update", "-r", premium, "--status", "Enabled")["status"] == "enabled"
    retention = on(server, "config", "retention", "update", "-r", premium, "--status", "enabled", "--days", "30",
                   "--type", "UntaggedManifests")
    assert retention["status"] == "enabled" and retention["days"] == 30
    soft = on(server, "config", "soft-delete", "update", "-n", premium, "--status", "enabled", "--days", "14")
    assert soft["status"] == "enabled" and soft["retentionDays"] == 14
    assert on(server, "config", "soft-delete", "show", "-r", premium, "--query", "retentionDays") == 14
    assert on(server, "show", "-n", premium, "--query", "properties.policies.trustPolicy.status") == "enabled"
    assert on(server, "config", "export-policy", "show", "-r", premium) == {"status": "enabled"}
    assert "PolicyNotSupported" in refused(server, "config", "retention", "update", "-r", standard,
                                           "--status", "enabled")


# import -------------------------------------------------------------------------------------------------------

def test_import_from_another_server(server: RunningServer, fresh_server: RunningServer, premium: str) -> None:
    source = fresh_server
    with source.client() as owner:
        digest = push_image(owner, "library/hello", "1.0", make_image("cli-import"))
    on(source, "update", "--anonymous-pull-enabled", "true")

    done = on(server, "import", "-n", premium, "--source", f"{source.url}/library/hello:1.0",
              "-t", "hello:1.0", "hello:stable")
    assert done["status"] == "Succeeded"
    with server.client(headers={"Host": f"{premium}.localhost", "Accept": OCI_MANIFEST}) as owner:
        for tag in ("1.0", "stable"):
            response = owner.get(f"/v2/hello/manifests/{tag}")
            assert response.status_code == 200 and response.headers["Docker-Content-Digest"] == digest

    by_digest = on(server, "import", "-n", premium, "--source", f"{source.url}/library/hello@{digest}",
                   "--repository", "pinned", "--query", "status")
    assert by_digest == "Succeeded"

    local = on(server, "import", "-n", "cargohold", "--source", "hello:stable", "--registry", premium,
               "-t", "copied/hello:1", "--force")
    assert local["status"] == "Succeeded"
    with server.client(headers={"Host": "cargohold.localhost", "Accept": OCI_MANIFEST}) as owner:
        assert owner.get("/v2/copied/hello/manifests/1").status_code == 200

    missing = refused(server, "import", "-n", premium, "--source", f"{source.url}/library/hello:nope")
    assert missing.startswith("error: ") and ":" in missing[len("error: "):]
    assert "does not name its registry" in refused(server, "import", "-n", premium, "--source", "hello:1.0")


# where the server and credentials come from, and errors ---------------------------------------------------------

def test_account_login_profile_and_environment(server: RunningServer, config_dir: Path, tmp_path: Path) -> None:
    client_id, secret = server.credentials
    assert "invalid_client" in refused(None, "account", "login", "--server", server.url, "--client-id", client_id,
                                       "--client-secret", "wrong")
    assert not (config_dir / "profile.json").exists()
    login = run("account", "login", "--server", server.url, "--client-id", client_id, "--client-secret", secret,
                "-o", "json")
    assert login.returncode == 0, login.stderr
    assert secret not in login.stdout
    profile = config_dir / "profile.json"
    try:
        assert stat.S_IMODE(profile.stat().st_mode) == 0o600
        assert json.loads(profile.read_text())["clientSecret"] == secret
        shown = json.loads(run("account", "show", "-o", "json", cwd=tmp_path).stdout)
        assert shown["server"] == server.url and shown["source"].startswith("profile ") and secret not in str(shown)
        # Nothing configured in the working directory: the profile is used.
        assert json.loads(run("show", "-n", "cargohold", "-o", "json", "--query", "name", cwd=tmp_path).stdout) \
            == "cargohold"

        reader = on(server, "identity", "create", "--display-name", "cli-reader", "--role", "Reader",
                    "-n", "cargohold")
        environment = {"CARGOHOLD_SERVER": server.url, "AZURE_CLIENT_ID": reader["clientId"],
                       "AZURE_CLIENT_SECRET": reader["clientSecret"]}
        assert json.loads(run("account", "show", "-o", "json", env=environment).stdout)["source"] == "environment"
        assert json.loads(run("show", "-o", "json", "--query", "name", env=environment, cwd=tmp_path).stdout) \
            == "cargohold"
        assert "AuthorizationFailed" in refused(None, "update", "--admin-enabled", "true", env=environment,
                                                cwd=tmp_path)
    finally:
        assert run("account", "logout").returncode == 0
    assert not profile.exists()


def test_errors_are_one_line(server: RunningServer, tmp_path: Path) -> None:
    assert "ResourceNotFound" in refused(server, "show", "-n", "nosuchregistry")
    basic = refused(server, "create", "-n", "clibasic01", "--sku", "Basic", "--anonymous-pull-enabled", "true")
    assert basic.startswith("error: AnonymousPullNotSupported: ")
    assert "InvalidRegistryName" in refused(server, "create", "-n", "x", "--sku", "Basic")

    nowhere = tmp_path / "stopped"
    nowhere.mkdir()
    (nowhere / "server.json").write_text(json.dumps({"url": f"http://127.0.0.1:{free_port()}"}))
    (nowhere / "initial-credentials").write_text(json.dumps({"clientId": "a", "clientSecret": "b"}))
    assert "ServerUnreachable" in refused(None, "list", "--data-dir", str(nowhere))
    assert "server.json does not exist" in refused(None, "list", cwd=tmp_path)
    assert "AZURE_CLIENT_ID" in refused(None, "list", env={"CARGOHOLD_SERVER": server.url})
    wrong = {"CARGOHOLD_SERVER": server.url, "AZURE_CLIENT_ID": server.credentials[0], "AZURE_CLIENT_SECRET": "no"}
    assert refused(None, "list", env=wrong).startswith("error: invalid_client: ")
    plain = {**wrong, "CARGOHOLD_SERVER": "http://192.0.2.1:5000"}
    assert "plain HTTP" in refused(None, "list", env=plain)
