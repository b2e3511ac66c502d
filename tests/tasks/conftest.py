"""Fixtures for ACR Tasks: one HTTPS server for the package (builds are slow; share it), a tiny base image made
of this machine's own `/bin/sh` and C library (no busybox offline), pushed with skopeo, and a raw ARM client.

Registries are named by their login server (`<name>.localhost`): the runs reach them through their proxy, so
no name needs to resolve.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import ssl
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.clients.oci_layout import write_image_layout
from tests.conftest import require_tool
from tests.management.conftest import (
    API_VERSION,
    MANAGEMENT_SCOPE,
    ca_file,
    make_credential,
    registry_path,
)
from tests.support.images import image_from_layers
from tests.support.server import RunningServer

TASKS_API = "2025-03-01-preview"
HOST_FILES = ["usr/bin/dash", "usr/bin/cat", "usr/bin/echo", "usr/bin/sleep", "usr/bin/env", "usr/bin/ls"]


def _libraries(binaries: list[str]) -> list[str]:
    found: set[str] = set()
    for binary in binaries:
        listing = subprocess.run(["ldd", f"/{binary}"], capture_output=True, text=True, check=False).stdout
        for line in listing.splitlines():
            for part in line.split():
                if part.startswith("/") and os.path.exists(part):
                    found.add(os.path.realpath(part).lstrip("/"))
                    found.add(part.lstrip("/"))
    return sorted(found)


def host_rootfs_layer() -> bytes:
    """A gzipped layer with a shell and a few tools from this machine, enough for RUN and cmd steps."""
    import gzip

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        def directory(name: str) -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name in ("usr", "usr/bin", "usr/lib", "usr/lib/x86_64-linux-gnu", "usr/lib64", "tmp", "etc", "workspace"):
            directory(name)
        for name, target in (("bin", "usr/bin"), ("lib", "usr/lib"), ("lib64", "usr/lib64")):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
        added: set[str] = set()
        for path in [*HOST_FILES, *_libraries(HOST_FILES)]:
            real = os.path.realpath("/" + path).lstrip("/")
            path = path.replace("lib64/", "usr/lib64/", 1) if path.startswith("lib64/") else path
            path = path.replace("lib/", "usr/lib/", 1) if path.startswith("lib/") else path
            if path in added:
                continue
            added.add(path)
            data = Path("/" + real).read_bytes()
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("usr/bin/sh")
        info.type, info.linkname = tarfile.SYMTYPE, "dash"
        tar.addfile(info)
    return gzip.compress(raw.getvalue(), mtime=0)


class Arm:
    """Raw ARM calls for one registry's tasks routes, with the Owner's bearer token."""

    def __init__(self, server: RunningServer, registry: str) -> None:
        client_id, secret = server.credentials
        token = make_credential(server, client_id, secret).get_token(MANAGEMENT_SCOPE).token
        self.server = server
        self.registry = registry
        self.http = httpx.Client(base_url=server.url, verify=ssl.create_default_context(cafile=ca_file(server)),
                                 headers={"Authorization": f"Bearer {token}"}, params={"api-version": TASKS_API},
                                 timeout=120)

    def path(self, rest: str = "") -> str:
        return registry_path(self.registry) + rest

    def upload(self, context: Path | bytes) -> str:
        from cargohold.tasks.source import pack_context

        data = context if isinstance(context, bytes) else pack_context(context)
        answer = self.http.post(self.path("/listBuildSourceUploadUrl"))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        put = httpx.put(body["uploadUrl"], content=data, verify=ssl.create_default_context(cafile=ca_file(self.server)), timeout=120)
        assert put.status_code == 201, put.text
        return str(body["relativePath"])

    def schedule(self, body: dict[str, Any]) -> httpx.Response:
        return self.http.post(self.path("/scheduleRun"), json=body)

    def run(self, run_id: str) -> dict[str, Any]:
        answer = self.http.get(self.path(f"/runs/{run_id}"))
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def wait(self, run_id: str, timeout: float = 180, poll: float = 0.2) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.run(run_id)
            if found["properties"]["status"] not in ("Queued", "Started", "Running"):
                return found
            time.sleep(poll)
        raise AssertionError(f"run {run_id} did not finish: {found}")

    def log(self, run_id: str) -> str:
        link = self.http.post(self.path(f"/runs/{run_id}/listLogSasUrl")).json()["logLink"]
        return httpx.get(link, verify=ssl.create_default_context(cafile=ca_file(self.server)), timeout=60).text

    def build(self, context: Path, poll: float = 0.2, **fields: Any) -> dict[str, Any]:
        body = {"type": "DockerBuildRequest", "dockerFilePath": "Dockerfile", "isPushEnabled": True,
                "platform": {"os": "Linux"}, "sourceLocation": self.upload(context), **fields}
        answer = self.schedule(body)
        assert answer.status_code == 200, answer.text
        return self.wait(answer.json()["name"], poll=poll)

    def encoded(self, yaml_text: str, context: Path | None = None, **fields: Any) -> httpx.Response:
        body: dict[str, Any] = {"type": "EncodedTaskRunRequest", "platform": {"os": "Linux"},
                                "encodedTaskContent": base64.b64encode(yaml_text.encode()).decode(), **fields}
        if context is not None:
            body["sourceLocation"] = self.upload(context)
        return self.schedule(body)


@pytest.fixture(scope="package")
def buildah() -> str:
    return require_tool("buildah")


@pytest.fixture(scope="package")
def skopeo() -> str:
    return require_tool("skopeo")


@pytest.fixture(scope="package")
def tasks_server(tmp_path_factory: pytest.TempPathFactory, buildah: str) -> Iterator[RunningServer]:
    running = RunningServer(tmp_path_factory.mktemp("tasks") / "data", extra_args=["--tls", "self-signed"],
                            scheme="https").start(verify=False)
    yield running
    running.stop()


@pytest.fixture(scope="package")
def login(tasks_server: RunningServer) -> str:
    return str(json.loads((tasks_server.data_dir / "initial-credentials").read_text())["loginServer"])


@pytest.fixture(scope="package")
def registry_name(tasks_server: RunningServer) -> str:
    return str(json.loads((tasks_server.data_dir / "initial-credentials").read_text())["registry"])


@pytest.fixture(scope="package")
def arm(tasks_server: RunningServer, registry_name: str, base_image: str) -> Iterator[Arm]:
    client = Arm(tasks_server, registry_name)
    yield client
    client.http.close()


@pytest.fixture(scope="package")
def base_image(tasks_server: RunningServer, skopeo: str, login: str,
               tmp_path_factory: pytest.TempPathFactory) -> str:
    """`<login server>/base:1`, pushed with skopeo from an OCI layout."""
    layout = tmp_path_factory.mktemp("base-layout")
    write_image_layout(layout, "1", image_from_layers([host_rootfs_layer()]))
    client_id, secret = tasks_server.credentials
    done = subprocess.run([skopeo, "copy", "--dest-cert-dir", cert_dir(tasks_server, tmp_path_factory),
                           "--dest-creds", f"{client_id}:{secret}", f"oci:{layout}:1",
                           f"docker://{tasks_server.host}/base:1"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return f"{login}/base:1"


def cert_dir(server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A directory with the server's CA as `ca.crt`, as skopeo's --*-cert-dir wants it."""
    directory = tmp_path_factory.mktemp("certs")
    shutil.copy(ca_file(server), directory / "ca.crt")
    return str(directory)


def write_context(directory: Path, files: dict[str, str]) -> Path:
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    for name, text in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(text)
    return directory


__all__ = ["API_VERSION", "Arm", "write_context"]
