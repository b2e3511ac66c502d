"""`cargohold build`, `run`, `task …` and `agentpool …` against the package's server, as a user types them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.server import RunningServer
from tests.tasks.conftest import write_context

pytestmark = pytest.mark.backend_independent


def cargohold(server: RunningServer, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARGOHOLD_")}
    return subprocess.run([sys.executable, "-m", "cargohold", *args, "--data-dir", str(server.data_dir)],
                          capture_output=True, text=True, timeout=300, check=False, cwd=cwd, env=env)


def test_build_follows_the_log_and_exits_with_the_outcome(tasks_server: RunningServer, base_image: str,
                                                          tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {"Dockerfile": f"FROM {base_image}\nRUN echo from-the-cli\n"})
    done = cargohold(tasks_server, "build", "-r", "cargohold", "-t", "clihello:{{.Run.ID}}", ".", cwd=context)
    assert done.returncode == 0, done.stderr
    assert "from-the-cli" in done.stdout and "was successful" in done.stdout
    assert "Queued a run with ID: ca" in done.stderr

    write_context(context, {"Dockerfile": f"FROM {base_image}\nRUN /bin/sh -c 'exit 7'\n"})
    failed = cargohold(tasks_server, "build", "-r", "cargohold", "-t", "clifail:1", str(context))
    assert failed.returncode == 1
    assert "ended Failed" in failed.stderr and "exit status 7" in failed.stdout


def test_run_a_command_and_a_task_file(tasks_server: RunningServer, base_image: str, login: str,
                                       tmp_path: Path) -> None:
    done = cargohold(tasks_server, "run", "-r", "cargohold", "--cmd", f"{login}/base:1 echo hello-cmd")
    assert done.returncode == 0, done.stderr
    assert "hello-cmd" in done.stdout

    context = write_context(tmp_path / "ctx", {
        "acr-task.yaml": "steps:\n  - cmd: {{.Run.Registry}}/base:1 /bin/sh -c \"cat /workspace/data.txt; "
                         "echo {{.Values.colour}}\"\n",
        "data.txt": "from-the-workspace\n"})
    done = cargohold(tasks_server, "run", "-r", "cargohold", "-f", "acr-task.yaml", "--set", "colour=teal",
                     str(context))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "from-the-workspace" in done.stdout and "teal" in done.stdout


def test_task_commands(tasks_server: RunningServer, base_image: str, login: str) -> None:
    created = cargohold(tasks_server, "task", "create", "-n", "clitask", "-r", "cargohold", "--cmd",
                        f"{login}/base:1 echo task-says-hi", "-o", "json")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["properties"]["step"]["type"] == "EncodedTask"
    assert json.loads(cargohold(tasks_server, "task", "show", "-n", "clitask", "-o", "json").stdout)["name"] \
        == "clitask"
    assert "clitask" in cargohold(tasks_server, "task", "list", "-o", "tsv").stdout
    ran = cargohold(tasks_server, "task", "run", "-n", "clitask")
    assert ran.returncode == 0 and "task-says-hi" in ran.stdout, ran.stderr
    runs = json.loads(cargohold(tasks_server, "task", "list-runs", "-n", "clitask", "-o", "json").stdout)
    assert [r["properties"]["task"] for r in runs] == ["clitask"]
    logs = cargohold(tasks_server, "task", "logs", "-n", "clitask")
    assert "task-says-hi" in logs.stdout
    disabled = cargohold(tasks_server, "task", "update", "-n", "clitask", "--status", "disabled", "-o", "json")
    assert json.loads(disabled.stdout)["properties"]["status"] == "Disabled"
    refused = cargohold(tasks_server, "task", "run", "-n", "clitask")
    assert refused.returncode == 1 and "TaskDisabled" in refused.stderr
    canceled = cargohold(tasks_server, "task", "cancel-run", "--run-id", runs[0]["name"])
    assert canceled.returncode == 0
    assert cargohold(tasks_server, "task", "delete", "-n", "clitask").returncode == 0
    assert cargohold(tasks_server, "task", "show", "-n", "clitask").returncode == 1


def test_agentpool_commands(tasks_server: RunningServer) -> None:
    created = cargohold(tasks_server, "agentpool", "create", "-n", "clipool", "--count", "2", "-o", "json")
    assert created.returncode == 0 and json.loads(created.stdout)["properties"]["count"] == 2, created.stderr
    queue = cargohold(tasks_server, "agentpool", "show", "-n", "clipool", "--queue-count", "-o", "json")
    assert json.loads(queue.stdout) == {"count": 0}
    updated = cargohold(tasks_server, "agentpool", "update", "-n", "clipool", "--count", "3", "-o", "json")
    assert json.loads(updated.stdout)["properties"]["count"] == 3
    assert "clipool" in cargohold(tasks_server, "agentpool", "list", "-o", "tsv").stdout
    assert cargohold(tasks_server, "agentpool", "delete", "-n", "clipool").returncode == 0
