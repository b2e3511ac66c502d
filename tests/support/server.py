"""Start a real `cargohold serve` process for integration tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_database() -> str:
    """A fresh database for one server when the suite runs on PostgreSQL (CARGOHOLD_TEST_POSTGRES is the URL of
    a server, as `scripts/postgres.sh start` prints it), else "" for the embedded SQLite."""
    base = os.environ.get("CARGOHOLD_TEST_POSTGRES")
    if not base:
        return ""
    import psycopg

    name = f"cargohold_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    return base.rsplit("/", 1)[0] + "/" + name


@dataclass
class RunningServer:
    data_dir: Path
    port: int = field(default_factory=free_port)
    extra_args: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    scheme: str = "http"
    db_url: str | None = None
    """The metadata database: SQLite in the data dir, unless the suite runs on PostgreSQL (see
    `test_database`); kept across restarts."""

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{self.data_dir / 'metadata.db'}"

    @property
    def credentials(self) -> tuple[str, str]:
        """The Owner service principal created on first start."""
        created = json.loads((self.data_dir / "initial-credentials").read_text())
        return created["clientId"], created["clientSecret"]

    def client(self, **kwargs: object) -> httpx.Client:
        """An HTTP client that authenticates as the Owner with basic credentials, as ACR allows on /v2/."""
        return httpx.Client(base_url=self.url, auth=self.credentials, timeout=60, **kwargs)  # type: ignore[arg-type]

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0, verify: str | bool = True) -> RunningServer:
        log = open(self.data_dir.parent / f"server-{self.port}.log", "ab")
        if self.db_url is None:
            self.db_url = test_database()
        backend_args = ["--db-url", self.db_url] if self.db_url else []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cargohold", "serve", "--data-dir", str(self.data_dir),
             "--port", str(self.port), *backend_args, *self.extra_args],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}; see {log.name}")
            try:
                if httpx.get(f"{self.url}/v2/", timeout=1, verify=verify).status_code in (200, 401):
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("server did not become ready")

    def kill(self) -> None:
        """SIGKILL the whole process group: no cleanup, as a crash would leave things."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None

    def fsck(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cargohold", "fsck", "--data-dir", str(self.data_dir)],
                              capture_output=True, text=True, timeout=300)
