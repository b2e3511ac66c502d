"""Local stand-ins for the cloud blob stores, one of each for the whole session, on free ports.

Azurite (npm, installed into .tools/ by `scripts/cloud-stores.sh install`) and moto's S3 server (the venv's
`moto_server`) are started through `scripts/cloud-stores.sh` and stopped at the end. A missing tool skips
the tests that need it, with the reason; under CI=true that skip is a failure (tests/conftest.py).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.server import free_port

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "cloud-stores.sh"
TOOLS = Path(os.environ.get("CARGOHOLD_TOOLS_DIR", ROOT / ".tools"))
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
"""The emulator's well-known account key (public; not a secret)."""
START_TIMEOUT = 60.0


@dataclass(frozen=True)
class Azurite:
    port: int

    @property
    def account_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{AZURITE_ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
                f"BlobEndpoint={self.account_url};")


@dataclass(frozen=True)
class MotoS3:
    port: int

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path, name: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{name} did not listen on port {port} within {START_TIMEOUT:.0f} s")


def _start(args: list[str], port: int, log: Path, name: str) -> subprocess.Popen[bytes]:
    with open(log, "wb") as output:
        process = subprocess.Popen(args, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True, env={**os.environ, "CARGOHOLD_VENV": sys.prefix})
    try:
        _wait_for_port(port, process, log, name)
    except BaseException:
        _stop(process)
        raise
    return process


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the server we started (the script exec's it, so this is the server's own process)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    if shutil.which("node") is None:
        pytest.skip("node is not installed (Azurite needs it; apt-get install nodejs npm)")
    if not (TOOLS / "node_modules" / ".bin" / "azurite-blob").exists():
        pytest.skip("Azurite is not installed (run scripts/cloud-stores.sh install)")
    base = tmp_path_factory.mktemp("azurite")
    port = free_port()
    process = _start([str(SCRIPT), "azurite", str(port), str(base / "data")], port, base / "azurite.log",
                     "Azurite")
    yield Azurite(port)
    _stop(process)


def _moto_server() -> str | None:
    beside = Path(sys.executable).parent / "moto_server"
    return str(beside) if beside.exists() else shutil.which("moto_server")


@pytest.fixture(scope="session")
def moto_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoS3]:
    if _moto_server() is None:
        pytest.skip("moto_server is not installed (install the test extras: ./scripts/bootstrap.sh --test)")
    base = tmp_path_factory.mktemp("moto")
    port = free_port()
    process = _start([str(SCRIPT), "moto", str(port)], port, base / "moto.log", "moto_server")
    yield MotoS3(port)
    _stop(process)
