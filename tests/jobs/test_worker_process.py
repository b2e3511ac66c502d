"""`serve --no-worker` leaves background jobs to `cargohold worker`, which runs them on its own."""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import RunningServer

REGISTRY = ("/subscriptions/default/resourceGroups/default/providers/Microsoft.ContainerRegistry/registries/"
            "cargohold")
API = {"api-version": "2025-11-01"}


@pytest.fixture
def api_node(tmp_path: Path) -> Iterator[RunningServer]:
    running = RunningServer(tmp_path / "data", extra_args=["--no-worker"]).start()
    yield running
    running.stop()


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()


def management_token(server: RunningServer) -> str:
    client_id, secret = server.credentials
    answer = httpx.post(f"{server.url}/cargohold/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret,
        "scope": "https://management.azure.com/.default"})
    return str(answer.json()["access_token"])


def test_jobs_wait_for_a_worker_process(api_node: RunningServer,
                                        receiver: tuple[str, list[dict[str, Any]]]) -> None:
    uri, received = receiver
    with httpx.Client(base_url=api_node.url, params=API, timeout=30,
                      headers={"Authorization": f"Bearer {management_token(api_node)}"}) as arm:
        created = arm.put(f"{REGISTRY}/webhooks/workerhook", json={
            "location": "local", "properties": {"serviceUri": uri, "actions": ["push"]}})
        assert created.status_code == 201, created.text
        event_id = arm.post(f"{REGISTRY}/webhooks/workerhook/ping").json()["id"]
    time.sleep(1.5)
    assert received == []  # the API node runs no jobs

    worker = subprocess.Popen([sys.executable, "-m", "cargohold", "worker", "--data-dir", str(api_node.data_dir)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
                              env={**os.environ, "CARGOHOLD_DB_URL": api_node.database_url})
    try:
        deadline = time.monotonic() + 20
        while not received and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [(e["id"], e["action"]) for e in received] == [(event_id, "ping")]
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        _, errors = worker.communicate(timeout=20)
    assert worker.returncode == 0, errors.decode()
