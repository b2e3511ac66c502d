"""importImage under the outbound policy: a source the policy refuses on its face is answered 400 at once; one
refused only when the import connects (here: a redirect from an allowed address to a refused one) fails the
operation with InvalidParameter, and nothing reaches the refused address."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.events.conftest import Arm
from tests.support.listener import Listener
from tests.support.server import RunningServer

pytestmark = pytest.mark.backend_independent


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """The default outbound policy with one exception, 127.0.0.2 (the rest of 127/8 stays refused)."""
    running = RunningServer(tmp_path_factory.mktemp("strict") / "data", egress_allow=["127.0.0.2"]).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def arm(strict_server: RunningServer) -> Iterator[Arm]:
    api = Arm(strict_server)
    yield api
    api.close()


def start_import(arm: Arm, registry_uri: str) -> httpx.Response:
    return arm.request("POST", "/importImage", {"source": {"registryUri": registry_uri, "sourceImage": "app:v1"},
                                                "targetTags": ["copied:v1"]})


def finished(arm: Arm, started: httpx.Response) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        status = arm.http.get(started.headers["Azure-AsyncOperation"]).json()
        if status["status"] != "InProgress" or time.monotonic() > deadline:
            return status
        time.sleep(0.1)


@pytest.mark.parametrize(("registry_uri", "said"), [
    ("127.0.0.1:5000", "127.0.0.1 is a loopback address"),
    ("http://[::1]:5000", "::1 is a loopback address"),
    ("localhost:5000", "localhost is a loopback name"),
    ("http://169.254.169.254", "169.254.169.254 is a cloud metadata address"),
    ("[fe80::1]", "fe80::1 is a link-local address"),
    ("192.168.0.10", "192.168.0.10 is a private address"),
])
def test_a_refused_source_is_answered_at_once(arm: Arm, registry_uri: str, said: str) -> None:
    answer = start_import(arm, registry_uri)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "InvalidParameter"
    assert error["message"].startswith("source.registryUri: ") and said in error["message"]
    assert "--egress-allow" in error["message"]


def test_a_redirect_to_a_refused_address_fails_the_import(arm: Arm) -> None:
    with Listener("127.0.0.1") as inside, \
            Listener("127.0.0.2", 307, {"Location": "http://127.0.0.1:PORT{path}"}) as gate:
        gate.headers["Location"] = gate.headers["Location"].replace("PORT", str(inside.port))
        started = start_import(arm, f"http://127.0.0.2:{gate.port}")
        assert started.status_code == 202, started.text
        status = finished(arm, started)
        assert inside.connections == 0
    assert gate.requests and all(line.startswith("GET /v2/app/manifests/v1") for line in gate.requests)
    assert status["status"] == "Failed"
    assert status["error"]["code"] == "InvalidParameter"
    assert "127.0.0.1 is a loopback address, which the outbound policy refuses" in status["error"]["message"]
