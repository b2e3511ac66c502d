"""Fixtures for the event log and webhook delivery, end to end: a real `cargohold serve` process, webhooks created
through the ARM API with a management token, and a real HTTP receiver on loopback that records what it is sent
and answers what the test tells it to.

The server runs with short delivery settings (`CARGOHOLD_WEBHOOK_*`, read by the server process from its
environment) so retries take fractions of a second. One server serves the whole directory; each test makes its
own webhooks (removed afterwards) and uses repositories of its own, so tests do not see one another's events.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.receiver import Receiver
from tests.support.server import RunningServer

API_VERSION = "2025-11-01"
MANAGEMENT_SCOPE = "https://management.azure.com/.default"
REGISTRY = "/subscriptions/default/resourceGroups/default/providers/Microsoft.ContainerRegistry/registries/cargohold"
ALL_ACTIONS = ["push", "delete", "quarantine", "chart_push", "chart_delete"]

FAST_DELIVERY = {
    "CARGOHOLD_WEBHOOK_TIMEOUT_SECONDS": "2",
    "CARGOHOLD_WEBHOOK_MAX_ATTEMPTS": "5",
    "CARGOHOLD_WEBHOOK_RETRY_BASE_SECONDS": "0.2",
    "CARGOHOLD_WEBHOOK_RETRY_CAP_SECONDS": "1",
}
"""Retries after 0.2, 0.4, 0.8, 1 s; five attempts in all."""

WAIT = 15.0
"""Seconds to wait for deliveries before a test fails."""


def unique(prefix: str) -> str:
    """A name no other test uses: alphanumerics, as webhook names must be (and lower case for repositories)."""
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def start_server(server: RunningServer, env: dict[str, str]) -> RunningServer:
    """Start (or start again) `server` with `env` added to its environment: the process inherits the
    environment it is spawned with, and RunningServer passes ours on."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        return server.start()


# the receiver ------------------------------------------------------------------------------------------------------

# the management API -----------------------------------------------------------------------------------------------

class Arm:
    """The ARM API of the server's first registry, with the Owner's management token."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        client_id, secret = server.credentials
        token = httpx.post(f"{server.url}/cargohold/oauth2/v2.0/token", timeout=30, data={
            "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret,
            "scope": MANAGEMENT_SCOPE})
        assert token.status_code == 200, token.text
        self.http = httpx.Client(base_url=server.url, timeout=30,
                                 headers={"Authorization": f"Bearer {token.json()['access_token']}"})

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, body: Any = None) -> httpx.Response:
        return self.http.request(method, f"{REGISTRY}{path}", params={"api-version": API_VERSION}, json=body)

    def put_webhook(self, name: str, service_uri: str, *, actions: list[str] | None = None, scope: str = "",
                    status: str = "enabled", headers: dict[str, str] | None = None) -> dict[str, Any]:
        properties: dict[str, Any] = {"serviceUri": service_uri, "actions": actions or ALL_ACTIONS, "scope": scope,
                                      "status": status}
        if headers is not None:
            properties["customHeaders"] = headers
        response = self.request("PUT", f"/webhooks/{name}", {"location": "local", "properties": properties})
        assert response.status_code in (200, 201), response.text
        return response.json()

    def patch_webhook(self, name: str, **properties: Any) -> dict[str, Any]:
        response = self.request("PATCH", f"/webhooks/{name}", {"properties": properties})
        assert response.status_code == 200, response.text
        return response.json()

    def delete_webhook(self, name: str) -> None:
        response = self.request("DELETE", f"/webhooks/{name}")
        assert response.status_code in (200, 204), response.text

    def ping(self, name: str) -> str:
        response = self.request("POST", f"/webhooks/{name}/ping")
        assert response.status_code == 200, response.text
        return str(response.json()["id"])

    def callback_config(self, name: str) -> dict[str, Any]:
        response = self.request("POST", f"/webhooks/{name}/getCallbackConfig")
        assert response.status_code == 200, response.text
        return response.json()

    def list_events(self, name: str) -> list[dict[str, Any]]:
        """Every recorded attempt, newest first, following nextLink."""
        response = self.request("POST", f"/webhooks/{name}/listEvents")
        values: list[dict[str, Any]] = []
        while True:
            assert response.status_code == 200, response.text
            page = response.json()
            values += page["value"]
            if not page.get("nextLink"):
                return values
            response = self.http.get(page["nextLink"])  # as it is: it carries api-version and $skipToken

    def wait_for_attempts(self, name: str, count: int, timeout: float = WAIT) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            attempts = self.list_events(name)
            if len(attempts) >= count:
                return attempts
            if time.monotonic() > deadline:
                raise AssertionError(f"listEvents of {name} shows {len(attempts)} attempts, wanted {count}")
            time.sleep(0.1)


Webhooks = Callable[..., str]


def webhook_factory(arm: Arm) -> Iterator[Webhooks]:
    """Webhooks are disabled after the test rather than deleted: a deleted webhook's row id is reused by the
    next one created (SQLite), and a delivery still owed to the old webhook then goes to the new one (see
    test_webhook_api.py::test_a_deleted_webhooks_deliveries_never_reach_a_new_webhook), which would leak one
    test's events into the next test's receiver."""
    made: list[str] = []

    def make(service_uri: str, **options: Any) -> str:
        name = unique("hook")
        arm.put_webhook(name, service_uri, **options)
        made.append(name)
        return name

    yield make
    for name in made:
        arm.patch_webhook(name, status="disabled")


# fixtures ---------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def hook_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One registry process, with fast retries, for every test here that does not restart it."""
    running = start_server(RunningServer(tmp_path_factory.mktemp("events") / "data"), FAST_DELIVERY)
    yield running
    running.stop()


@pytest.fixture(scope="session")
def arm(hook_server: RunningServer) -> Iterator[Arm]:
    api = Arm(hook_server)
    yield api
    api.close()


@pytest.fixture
def webhook(arm: Arm) -> Iterator[Webhooks]:
    """`webhook(service_uri, actions=…, scope=…, status=…, headers=…)` creates a webhook with a new name and
    returns the name; the test's webhooks are disabled afterwards. The registry `serve` creates is Premium (500
    webhooks), so the suite's few dozen fit."""
    yield from webhook_factory(arm)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver().start()
    yield running
    running.stop()


@pytest.fixture
def registry(hook_server: RunningServer) -> Iterator[httpx.Client]:
    """The data plane (/v2/, /acr/v1/) as the Owner, with basic credentials."""
    with hook_server.client() as http:
        yield http


@pytest.fixture
def work_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def drain(arm: Arm, receiver: Receiver, hook: str, path: str) -> list[dict[str, Any]]:
    """The events delivered (answered 2xx) to `hook` at `path` so far, pings left out, with a ping as the barrier:
    a webhook's events go out one at a time in the order they were recorded, so once this ping has arrived,
    every event recorded before it has been delivered (or given up), and the list is complete."""
    ping_id = arm.ping(hook)
    got = receiver.wait_for(1, path, until=lambda deliveries: any(
        d.event["id"] == ping_id and d.status < 300 for d in deliveries))
    return [d.event for d in got if d.status < 300 and d.event["action"] != "ping"]
