"""The webhook actions of the ARM API as a user drives them: ping, getCallbackConfig, listEvents, refusals of bad
webhooks with ARM's error shape, and what deleting a webhook does to the deliveries it was still owed."""

from __future__ import annotations

import time
import uuid
from datetime import datetime

import httpx
import pytest

from tests.events.conftest import REGISTRY, Arm, Receiver, Webhooks, drain, unique
from tests.support.images import make_image, push_image
from tests.support.server import RunningServer


def test_ping_reaches_the_receiver_and_list_events_shows_it(hook_server: RunningServer, arm: Arm, webhook: Webhooks,
                                                            receiver: Receiver) -> None:
    hook = webhook(receiver.url("/ping"), actions=["push"], scope=unique("nothing/here"),
                   headers={"Authorization": "Basic c2VjcmV0", "X-Source": "cargohold-tests"})
    ping_id = arm.ping(hook)
    assert str(uuid.UUID(ping_id)) == ping_id

    [delivery] = receiver.wait_for(1, "/ping")
    event = delivery.event
    assert event["id"] == ping_id and event["action"] == "ping" and event["target"] == {}
    assert event["request"]["method"] == "POST" and event["request"]["host"] == hook_server.host
    assert delivery.headers["authorization"] == "Basic c2VjcmV0"
    assert delivery.headers["x-source"] == "cargohold-tests"
    assert delivery.headers["user-agent"] == "cargohold-webhook/1.0"

    [attempt] = arm.wait_for_attempts(hook, 1)
    assert attempt["id"] == ping_id and attempt["attempt"] == 1
    assert attempt["eventRequestMessage"]["content"] == event
    assert attempt["eventRequestMessage"]["requestUri"] == receiver.url("/ping")
    assert attempt["eventResponseMessage"]["statusCode"] == "200"


def test_list_events_timestamps_are_utc_like_the_payloads(arm: Arm, webhook: Webhooks, receiver: Receiver) -> None:
    """The payload says `2026-11-23T08:37:34.066849Z`; an attempt's `timestamp` must name its zone too, or a
    client cannot tell when the attempt happened."""
    hook = webhook(receiver.url("/stamps"), actions=["push"], scope=unique("nothing/here"))
    arm.ping(hook)
    [attempt] = arm.wait_for_attempts(hook, 1)
    stamp = datetime.fromisoformat(attempt["timestamp"])
    assert stamp.tzinfo is not None, f"listEvents timestamp without a time zone: {attempt['timestamp']}"
    sent = datetime.fromisoformat(attempt["eventRequestMessage"]["content"]["timestamp"])
    assert 0 <= (stamp - sent).total_seconds() < 30


def test_get_callback_config_shows_the_uri_and_headers_that_get_and_list_hide(arm: Arm, webhook: Webhooks,
                                                                                receiver: Receiver) -> None:
    hook = webhook(receiver.url("/config?token=abc"), actions=["push", "delete"], scope="app:*",
                   headers={"Authorization": "Bearer hidden"})
    assert arm.callback_config(hook) == {"serviceUri": receiver.url("/config?token=abc"),
                                         "customHeaders": {"Authorization": "Bearer hidden"}}
    shown = arm.request("GET", f"/webhooks/{hook}")
    assert shown.status_code == 200
    assert shown.json()["properties"] == {"status": "enabled", "scope": "app:*", "actions": ["push", "delete"],
                                          "provisioningState": "Succeeded"}
    listed = arm.request("GET", "/webhooks")
    assert "hidden" not in listed.text and "token=abc" not in listed.text and "hidden" not in shown.text

    arm.patch_webhook(hook, serviceUri=receiver.url("/moved"))
    assert arm.callback_config(hook) == {"serviceUri": receiver.url("/moved"),
                                         "customHeaders": {"Authorization": "Bearer hidden"}}
    arm.ping(hook)
    assert receiver.wait_for(1, "/moved")[0].headers["authorization"] == "Bearer hidden"


@pytest.mark.parametrize(("properties", "code"), [
    ({"actions": ["push"]}, "InvalidServiceUri"),
    ({"serviceUri": "ftp://example.com/hook", "actions": ["push"]}, "InvalidServiceUri"),
    ({"serviceUri": "http://127.0.0.1:9/hook", "actions": ["pull"]}, "InvalidWebhookAction"),
    ({"serviceUri": "http://127.0.0.1:9/hook", "actions": []}, "InvalidWebhookAction"),
    ({"serviceUri": "http://127.0.0.1:9/hook", "actions": ["push"], "scope": "app: v1"}, "InvalidWebhookScope"),
    ({"serviceUri": "http://127.0.0.1:9/hook", "actions": ["push"], "customHeaders": {"X-A": "1\r\nX-B: 2"}},
     "InvalidCustomHeaders"),
    ({"serviceUri": "http://127.0.0.1:9/hook", "actions": ["push"], "status": "paused"}, None),
    *[({"serviceUri": "http://127.0.0.1:9/hook", "actions": ["push"], "customHeaders": {name: "1"}},
       "InvalidCustomHeaders")
      for name in ("Content-Length", "transfer-encoding", "Host", "Connection", "Keep-Alive", "Proxy-Authorization",
                   "TE", "Trailer", "Upgrade")],
    ({"serviceUri": "http://127.0.0.1:9/hook", "actions": ["push"], "customHeaders": {"X-A": "caf\u00e9"}},
     "InvalidCustomHeaders"),
    *[({"serviceUri": uri, "actions": ["push"]}, "InvalidServiceUri")
      for uri in ("http://127.0.0.1:9/hook\r\nX-Injected: 1", "http://127.0.0.1:9/a b", "http://exa mple.com/",
                  "/relative/hook", "127.0.0.1:9/hook", "http:///nohost", "http://127.0.0.1:99999/hook",
                  "http://127.0.0.1:9/\u00e9t\u00e9", "http://127.0.0.1:9/\x00")],
])
def test_bad_webhooks_are_refused_with_arm_errors(arm: Arm, properties: dict[str, object], code: str | None) -> None:
    name = unique("bad")
    response = arm.request("PUT", f"/webhooks/{name}", {"location": "local", "properties": properties})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert isinstance(error["message"], str) and error["message"]
    assert error["code"] == (code or error["code"]) and isinstance(error["code"], str) and error["code"]
    assert arm.request("GET", f"/webhooks/{name}").status_code == 404
    assert name not in arm.request("GET", "/webhooks").text


def test_an_update_cannot_add_framing_headers_or_a_bad_uri(arm: Arm, webhook: Webhooks, receiver: Receiver) -> None:
    hook = webhook(receiver.url("/kept"), actions=["push"], scope=unique("nothing/here"), headers={"X-A": "1"})
    for properties in ({"customHeaders": {"Transfer-Encoding": "chunked"}}, {"serviceUri": "http://a b/"},
                       {"serviceUri": receiver.url("/x\r\n")}):
        response = arm.request("PATCH", f"/webhooks/{hook}", {"properties": properties})
        assert response.status_code == 400 and "error" in response.json(), properties
    assert arm.callback_config(hook) == {"serviceUri": receiver.url("/kept"), "customHeaders": {"X-A": "1"}}


def test_bad_names_and_missing_webhooks(arm: Arm) -> None:
    short = arm.request("PUT", "/webhooks/abc", {"location": "local", "properties": {
        "serviceUri": "http://127.0.0.1:9/hook", "actions": ["push"]}})
    assert short.status_code == 400 and short.json()["error"]["code"] == "InvalidWebhookName"
    for method, path in (("GET", ""), ("POST", "/ping"), ("POST", "/getCallbackConfig"), ("POST", "/listEvents")):
        response = arm.request(method, f"/webhooks/{unique('missing')}{path}")
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error"]["code"] == "ResourceNotFound"
    unauthenticated = httpx.post(f"{arm.server.url}{REGISTRY}/webhooks/{unique('any')}/ping",
                                 params={"api-version": "2025-11-01"})
    assert unauthenticated.status_code == 401 and "error" in unauthenticated.json()


def test_a_deleted_webhooks_deliveries_never_reach_a_new_webhook(arm: Arm, receiver: Receiver,
                                                                 registry: httpx.Client) -> None:
    """Deleting a webhook drops what it was still owed. A webhook created afterwards, here with a scope that
    matches nothing, must get nothing but its own ping."""
    repository = unique("deleted/app")
    receiver.answer(*[500] * 20, path="/old")
    old = unique("old")
    arm.put_webhook(old, receiver.url("/old"), actions=["push"], scope=f"{repository}:*")
    push_image(registry, repository, "v1", make_image(repository, 1))
    receiver.wait_for(1, "/old")  # owed, failing, to be tried again
    arm.delete_webhook(old)

    new = unique("new")
    arm.put_webhook(new, receiver.url("/new"), actions=["push"], scope=unique("nothing/here"))
    try:
        time.sleep(2.0)  # longer than the suite's retry backoff (0.2 s doubling, capped at 1 s)
        assert drain(arm, receiver, new, "/new") == [], "the new webhook got the deleted webhook's event"
        attempts_at_old = len(receiver.received("/old"))
        time.sleep(1.0)
        assert len(receiver.received("/old")) == attempts_at_old, "no attempts for a deleted webhook"
    finally:
        arm.patch_webhook(new, status="disabled")
