"""Real buildah builds through cargohold: quick builds, multi-step runs, cancel and timeout, secrets, bad input."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.server import RunningServer
from tests.tasks.conftest import Arm, write_context


def test_quick_build_pulls_from_the_registry_copies_runs_and_pushes(arm: Arm, base_image: str, login: str,
                                                                     tasks_server: RunningServer, skopeo: str,
                                                                     buildah: str, tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {
        "Dockerfile": f"FROM {base_image}\nCOPY hello.txt /hello.txt\nRUN echo built-by-run > /built.txt\n"
                      'CMD ["/bin/cat", "/hello.txt", "/built.txt"]\n',
        "hello.txt": "hello from the context\n",
        "ignored.txt": "never uploaded\n", ".dockerignore": "ignored.txt\n"})
    run = arm.build(context, imageNames=["hello:{{.Run.ID}}", "hello:latest"])
    properties = run["properties"]
    log = arm.log(run["name"])
    assert properties["status"] == "Succeeded", log
    assert properties["runType"] == "QuickBuild"
    tags = {image["tag"]: image for image in properties["outputImages"]}
    assert set(tags) == {run["name"], "latest"}
    assert tags["latest"]["registry"] == login and tags["latest"]["repository"] == "hello"
    assert tags["latest"]["digest"].startswith("sha256:")
    [base] = properties["baseImageDependencies"]
    assert (base["repository"], base["tag"]) == ("base", "1") and base["digest"].startswith("sha256:")
    assert "STEP 3/4: RUN echo built-by-run" in log or "RUN echo built-by-run" in log
    assert "Step ID: build" in log and "Step ID: push" in log

    client_id, secret = tasks_server.credentials
    layout = tmp_path / "pulled"
    pulled = subprocess.run([skopeo, "copy", "--src-tls-verify=false", "--src-creds", f"{client_id}:{secret}",
                             f"docker://{tasks_server.host}/hello:{run['name']}", f"oci:{layout}:x"],
                            capture_output=True, text=True, timeout=120, check=False)
    assert pulled.returncode == 0, pulled.stderr
    store = ["--root", str(tmp_path / "store"), "--runroot", str(tmp_path / "runroot"), "--storage-driver", "vfs"]
    container = subprocess.run([buildah, *store, "from", "--quiet", f"oci:{layout}:x"], capture_output=True,
                               text=True, timeout=120, check=True).stdout.strip()
    ran = subprocess.run([buildah, *store, "run", "--isolation", "chroot", container, "--", "/bin/cat",
                          "/hello.txt", "/built.txt"], capture_output=True, text=True, timeout=120, check=False)
    assert ran.stdout == "hello from the context\nbuilt-by-run\n", ran.stderr
    listing = subprocess.run([buildah, *store, "run", "--isolation", "chroot", container, "--", "/bin/ls", "/"],
                             capture_output=True, text=True, timeout=120, check=False).stdout.split()
    assert "ignored.txt" not in listing
