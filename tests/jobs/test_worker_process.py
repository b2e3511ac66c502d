"""`serve --no-worker` leaves background jobs to `cargohold worker`, which runs them on its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.receiver import Receiver
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
def receiver() -> Iterator[Receiver]:
    running = Receiver().start()
    yield running
    running.stop()


def management_token(server: RunningServer) -> str:
    client_id, secret = server.credentials
    answer = httpx.post(f"{server.url}/cargohold/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret,
        "scope": "https://management.azure.com/.default"})
    return str(answer.json()["access_token"])


def test_jobs_wait_for_a_worker_process(api_node: RunningServer, receiver: Receiver) -> None:
    with httpx.Client(base_url=api_node.url, params=API, timeout=30,
                      headers={"Authorization": f"Bearer {management_token(api_node)}"}) as arm:
        created = arm.put(f"{REGISTRY}/webhooks/workerhook", json={
            "location": "local", "properties": {"serviceUri": receiver.url(), "actions": ["push"]}})
        assert created.status_code == 201, created.text
        event_id = arm.post(f"{REGISTRY}/webhooks/workerhook/ping").json()["id"]
    time.sleep(1.5)
    assert receiver.received() == []  # the API node runs no jobs

    worker = subprocess.Popen([sys.executable, "-m", "cargohold", "worker", "--data-dir", str(api_node.data_dir)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
                              env={**os.environ, "CARGOHOLD_DB_URL": api_node.database_url,
                                   "CARGOHOLD_EGRESS_ALLOW": ",".join(api_node.egress_allow)})
    try:
        assert [(d.event["id"], d.event["action"]) for d in receiver.wait_for(1, timeout=20)] == [(event_id, "ping")]
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        _, errors = worker.communicate(timeout=20)
    assert worker.returncode == 0, errors.decode()
