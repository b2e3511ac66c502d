"""One request followed end to end: the id in the `X-Request-Id` header the client saw is the one in the JSON
log line, in the event payload's `request.id` and in the error body."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import create_engine, text

from cargohold.db.engine import sqlalchemy_url
from tests.support.images import OCI_MANIFEST, make_image, push_blob
from tests.support.server import RunningServer

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


@pytest.fixture(scope="module")
def json_logs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = RunningServer(tmp_path_factory.mktemp("logs") / "data",
                            extra_args=["--log-format", "json", "--access-log", "all"]).start()
    yield running
    running.stop()


def log_lines(server: RunningServer, request_id: str) -> list[dict[str, object]]:
    """The JSON lines the server logged for one request (waiting briefly for them to be written)."""
    path = server.data_dir.parent / f"server-{server.port}.log"
    deadline = time.monotonic() + 5
    while True:
        found = [json.loads(line) for line in path.read_text().splitlines()
                 if line.startswith("{") and request_id in line]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_push_is_followed_from_header_to_log_and_event(json_logs: RunningServer) -> None:
    image = make_image("traced")
    with json_logs.client() as client:
        for blob in [image.config, *image.layers]:
            push_blob(client, "traced/app", blob)
        response = client.put("/v2/traced/app/manifests/v1", content=image.manifest,
                              headers={"Content-Type": OCI_MANIFEST, "X-Request-Id": "client-chosen-42"})
    assert response.status_code == 201
    assert response.headers["x-request-id"] == "client-chosen-42"

    lines = log_lines(json_logs, "client-chosen-42")
    assert lines
    [line] = [line for line in lines if line["logger"] == "cargohold.access"]
    assert line["status"] == 201 and line["method"] == "PUT"
    assert line["route"] == "/v2/{name:path}/manifests/{reference}"
    assert line["logger"] == "cargohold.access" and line["level"] == "info"

    engine = create_engine(sqlalchemy_url(json_logs.database_url))
    with engine.connect() as conn:
        payloads = [json.loads(row[0]) for row in conn.execute(text("SELECT payload FROM events"))]
    engine.dispose()
    [event] = [p for p in payloads if p["target"].get("tag") == "v1" and p["action"] == "push"]
    assert event["request"]["id"] == "client-chosen-42"


def test_failed_pull_carries_a_generated_id_in_header_body_and_log(json_logs: RunningServer) -> None:
    response = httpx.get(f"{json_logs.url}/v2/traced/app/manifests/missing", auth=json_logs.credentials)
    assert response.status_code == 404
    request_id = response.headers["x-request-id"]
    assert UUID.match(request_id)
    [error] = response.json()["errors"]
    assert error["code"] == "MANIFEST_UNKNOWN"
    assert error["detail"]["requestId"] == request_id
    assert int(response.headers["content-length"]) == len(response.content)
    [line] = log_lines(json_logs, request_id)
    assert line["status"] == 404 and line["path"] == "/v2/traced/app/manifests/missing"


def test_unsafe_incoming_ids_are_replaced(json_logs: RunningServer) -> None:
    response = httpx.get(f"{json_logs.url}/v2/", headers={"X-Request-Id": "bad id\twith\"quotes"})
    assert UUID.match(response.headers["x-request-id"])
    long_id = httpx.get(f"{json_logs.url}/v2/", headers={"X-Request-Id": "a" * 200})
    assert UUID.match(long_id.headers["x-request-id"])


def test_arm_errors_carry_the_request_id(json_logs: RunningServer) -> None:
    client_id, secret = json_logs.credentials
    token = httpx.post(f"{json_logs.url}/cargohold/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret,
        "scope": "https://management.azure.com/.default"}).json()["access_token"]
    response = httpx.get(
        f"{json_logs.url}/subscriptions/default/resourceGroups/default/providers/Microsoft.ContainerRegistry/"
        "registries/nosuchregistry", params={"api-version": "2025-11-01"},
        headers={"Authorization": f"Bearer {token}", "X-Request-Id": "arm-trace-7"})
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "ResourceNotFound"
    assert {"type": "RequestId", "info": {"requestId": "arm-trace-7"}} in error["additionalInfo"]
