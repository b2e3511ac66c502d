"""The server process: one worker runs granian inside the process itself; more use granian's workers."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import pytest

from tests.support.images import sha256
from tests.support.server import RunningServer

pytestmark = pytest.mark.backend_independent


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def test_one_worker_is_one_process_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    server = RunningServer(tmp_path / "data").start()
    try:
        assert server.process is not None
        assert _children(server.process.pid) == [], "no supervisor: the server process serves itself"
        with server.client() as client:
            data = os.urandom(3 * 1024 * 1024)
            assert client.post("/v2/one/proc/blobs/uploads/", params={"digest": sha256(data)},
                               content=data).status_code == 201
        os.kill(server.process.pid, signal.SIGTERM)
        assert server.process.wait(timeout=15) == 0
    finally:
        server.stop()


def test_several_workers_still_serve(tmp_path: Path) -> None:
    server = RunningServer(tmp_path / "data", extra_args=["--workers", "2"]).start()
    try:
        assert httpx.get(f"{server.url}/v2/", timeout=5).status_code == 401
        with server.client() as client:
            data = os.urandom(100_000)
            assert client.post("/v2/two/procs/blobs/uploads/", params={"digest": sha256(data)},
                               content=data).status_code == 201
            assert client.get(f"/v2/two/procs/blobs/{sha256(data)}").content == data
    finally:
        server.stop()
