"""Garbage collection keeps what ACR Tasks stores outside any repository: an uploaded build context can be built
again and a finished run's log still reads the same after a collection with no grace period."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.server import RunningServer
from tests.tasks.conftest import Arm, write_context

pytestmark = pytest.mark.backend_independent


def _collect(server: RunningServer) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-m", "cargohold", "gc", "run", "--grace", "0s", "--quiet",
                           "--data-dir", str(server.data_dir), "-o", "json"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_collection_keeps_build_contexts_and_run_logs(arm: Arm, base_image: str, tasks_server: RunningServer,
                                                      tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {"Dockerfile": f"FROM {base_image}\nCOPY kept.txt /kept.txt\n",
                                               "kept.txt": "kept through garbage collection\n"})
    source = arm.upload(context)
    body = {"type": "DockerBuildRequest", "dockerFilePath": "Dockerfile", "isPushEnabled": False,
            "platform": {"os": "Linux"}, "sourceLocation": source, "imageNames": ["kept:1"]}
    first = arm.schedule(body)
    assert first.status_code == 200, first.text
    finished = arm.wait(first.json()["name"])
    log = arm.log(finished["name"])
    assert finished["properties"]["status"] == "Succeeded", log

    _collect(tasks_server)
    _collect(tasks_server)

    assert arm.log(finished["name"]) == log
    again = arm.schedule(body)
    assert again.status_code == 200, again.text
    rebuilt = arm.wait(again.json()["name"])
    assert rebuilt["properties"]["status"] == "Succeeded", arm.log(rebuilt["name"])
