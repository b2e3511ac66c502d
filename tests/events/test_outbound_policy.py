"""Webhooks under the outbound policy: a serviceUri the policy refuses on its face is refused when the webhook is
configured; one that turns out refused when a delivery connects is recorded as a refused attempt and nothing is
sent; what a receiver answers is kept only as a bounded excerpt."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.events.conftest import FAST_DELIVERY, Arm, start_server, unique
from tests.support.listener import Listener
from tests.support.server import RunningServer


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A server with the default outbound policy: no exception for loopback."""
    running = start_server(RunningServer(tmp_path_factory.mktemp("strict") / "data", egress_allow=[]), FAST_DELIVERY)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def strict_arm(strict_server: RunningServer) -> Iterator[Arm]:
    api = Arm(strict_server)
    yield api
    api.close()


@pytest.mark.backend_independent
@pytest.mark.parametrize("service_uri", [
    "http://127.0.0.1:9/hook", "http://[::1]:9/hook", "http://localhost:9/hook", "http://127.1:9/hook",
    "http://169.254.169.254/latest/meta-data/iam/", "http://metadata.google.internal/computeMetadata/v1/",
    "https://10.0.0.7/hook", "http://[fe80::1]/hook", "http://0.0.0.0:9/hook",
])
def test_a_refused_service_uri_is_refused_when_configured(strict_arm: Arm, service_uri: str) -> None:
    name = unique("refused")
    answer = strict_arm.request("PUT", f"/webhooks/{name}", {
        "location": "local", "properties": {"serviceUri": service_uri, "actions": ["push"]}})
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "InvalidServiceUri"
    assert "outbound policy refuses" in error["message"] and "--egress-allow" in error["message"]
    assert strict_arm.request("GET", f"/webhooks/{name}").status_code == 404


@pytest.mark.backend_independent
def test_a_change_to_a_refused_service_uri_is_refused(strict_arm: Arm) -> None:
    name = unique("changed")
    strict_arm.put_webhook(name, "https://hooks.example.com/registry", actions=["push"])
    answer = strict_arm.request("PATCH", f"/webhooks/{name}",
                                {"properties": {"serviceUri": "http://169.254.169.254/"}})
    assert answer.status_code == 400, answer.text
    assert "169.254.169.254 is a cloud metadata address" in answer.json()["error"]["message"]
    assert strict_arm.callback_config(name)["serviceUri"] == "https://hooks.example.com/registry"
    strict_arm.patch_webhook(name, status="disabled")


@pytest.mark.backend_independent
def test_a_delivery_the_policy_refuses_is_recorded_and_never_sent(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A webhook made while loopback was allowed, delivered after a restart without that exception."""
    server = start_server(RunningServer(tmp_path_factory.mktemp("restarted") / "data"), FAST_DELIVERY)
    try:
        with Listener() as target:
            arm = Arm(server)
            arm.put_webhook("insidehook", target.url("/internal"), actions=["push"])
            arm.close()
            server.stop()
            server.egress_allow = []
            start_server(server, FAST_DELIVERY)
            arm = Arm(server)
            arm.ping("insidehook")
            attempt = arm.wait_for_attempts("insidehook", 1)[-1]
            arm.close()
            assert target.connections == 0
        response = attempt["eventResponseMessage"]
        assert response["statusCode"] == "" and response["content"] == ""
        assert response["reasonPhrase"].startswith("refused by the outbound policy: 127.0.0.1 is a loopback address")
    finally:
        server.stop()


@pytest.mark.backend_independent
def test_only_an_excerpt_of_the_answer_is_kept(arm: Arm) -> None:
    with Listener(body=b"x" * 200_000, headers={"Content-Type": "text/plain"}) as target:
        name = unique("chatty")
        arm.put_webhook(name, target.url("/chatty"), actions=["push"])
        arm.ping(name)
        attempt = arm.wait_for_attempts(name, 1)[-1]
        arm.patch_webhook(name, status="disabled")
    response = attempt["eventResponseMessage"]
    assert response["statusCode"] == "200"
    assert response["content"] == "x" * 4096
