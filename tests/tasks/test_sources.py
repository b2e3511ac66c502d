"""Build contexts from a git repository and from a tarball URL, served over HTTP on loopback."""

from __future__ import annotations

import functools
import http.server
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tasks.conftest import Arm, write_context

pytestmark = pytest.mark.backend_independent


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, base_image: str) -> Iterator[str]:
    """An HTTP server with `repo.git` (dumb HTTP; Dockerfile in `app/` on branch `main`) and `ctx.tar.gz`."""
    root = tmp_path_factory.mktemp("served")
    work = write_context(tmp_path_factory.mktemp("git") / "work", {
        "app/Dockerfile": f"FROM {base_image}\nCOPY note.txt /note.txt\nRUN cat /note.txt\n",
        "app/note.txt": "from-git\n"})
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    for command in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-qm", "context"]):
        subprocess.run([*git, *command], cwd=work, check=True, capture_output=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(root / "repo.git")], check=True,
                   capture_output=True)
    subprocess.run(["git", "update-server-info"], cwd=root / "repo.git", check=True)
    tarred = write_context(tmp_path_factory.mktemp("tar") / "ctx", {
        "Dockerfile": f"FROM {base_image}\nCOPY note.txt /note.txt\nRUN cat /note.txt\n", "note.txt": "from-tar\n"})
    with tarfile.open(root / "ctx.tar.gz", "w:gz") as archive:
        for name in ("Dockerfile", "note.txt"):
            archive.add(tarred / name, arcname=name)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _build(arm: Arm, location: str) -> tuple[dict[str, object], str]:
    answer = arm.schedule({"type": "DockerBuildRequest", "dockerFilePath": "Dockerfile", "isPushEnabled": False,
                           "imageNames": ["fromurl:1"], "platform": {"os": "Linux"}, "sourceLocation": location})
    assert answer.status_code == 200, answer.text
    run = arm.wait(answer.json()["name"])
    return run["properties"], arm.log(run["name"])


def test_a_git_context_with_branch_and_subdirectory(arm: Arm, served: str) -> None:
    properties, log = _build(arm, f"{served}/repo.git#main:app")
    assert properties["status"] == "Succeeded", log
    assert " from-git\n" in log


def test_a_tarball_context(arm: Arm, served: str) -> None:
    properties, log = _build(arm, f"{served}/ctx.tar.gz")
    assert properties["status"] == "Succeeded", log
    assert " from-tar\n" in log


def test_an_unreachable_source_fails_the_run_with_the_reason(arm: Arm, served: str) -> None:
    properties, log = _build(arm, f"{served}/missing.git#main")
    assert properties["status"] == "Failed"
    assert "git clone failed" in str(properties["runErrorMessage"]) and "git clone failed" in log
