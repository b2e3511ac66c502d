"""Start a real `cargohold serve` process for integration tests."""

from __future__ import annotations

import hashlib
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

LOOPBACK_ALLOW = ("127.0.0.0/8", "::1")
"""The outbound policy's exceptions test servers start with (cargohold.kernel.egress.LOOPBACK_ALLOW)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def suite_database() -> str:
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


def suite_storage(data_dir: Path) -> str:
    """With CARGOHOLD_TEST_STORAGE=azure (and Azurite's AZURE_STORAGE_CONNECTION_STRING), a prefix of its own
    in one container for each server, fixed by its data dir so a restart finds its blobs again. Those servers
    stream blob downloads (`--blob-downloads proxy`) so the suite's plain HTTP clients see the bytes; the
    redirect to a signed URL is exercised by skopeo in tests/scaleout and by the store contract tests."""
    if os.environ.get("CARGOHOLD_TEST_STORAGE") != "azure":
        return ""
    prefix = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:16]
    return f"azure://cargohold-tests/{prefix}"


@dataclass
class RunningServer:
    data_dir: Path
    port: int = field(default_factory=free_port)
    extra_args: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    scheme: str = "http"
    db_url: str | None = None
    """The metadata database: SQLite in the data dir, unless the suite runs on PostgreSQL (see
    `suite_database`); kept across restarts."""
    storage_url: str | None = None
    """The blob store: the filesystem in the data dir unless the suite runs on a cloud store (`suite_storage`)."""
    local_store: bool = False
    """Keep blobs on the filesystem whatever the suite runs on: for tests that look at or damage the files."""
    egress_allow: list[str] = field(default_factory=lambda: list(LOOPBACK_ALLOW))
    """`--egress-allow` entries: loopback by default, as the suite's webhook receivers and import sources
    listen there; `[]` starts a server with the strict default outbound policy."""

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

    def start(self, timeout: float = 30.0, verify: str | bool = True, ready_host: str | None = None) -> RunningServer:
        """Start and wait until /v2/ answers; `ready_host` is the Host to ask as once the server holds several
        registries (then a bare address names none of them)."""
        log = open(self.data_dir.parent / f"server-{self.port}.log", "ab")
        if self.db_url is None:
            self.db_url = suite_database()
        backend_args = ["--db-url", self.db_url] if self.db_url else []
        if self.storage_url is None:
            self.storage_url = "" if self.local_store else suite_storage(self.data_dir)
        if self.storage_url:
            backend_args += ["--storage-url", self.storage_url]
            if self.storage_url == suite_storage(self.data_dir):
                backend_args += ["--blob-downloads", os.environ.get("CARGOHOLD_TEST_BLOB_DOWNLOADS", "proxy")]
        egress_args = [arg for entry in self.egress_allow for arg in ("--egress-allow", entry)]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cargohold", "serve", "--data-dir", str(self.data_dir),
             "--port", str(self.port), *backend_args, *egress_args, *self.extra_args],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}; see {log.name}")
            try:
                headers = {"Host": ready_host} if ready_host else {}
                if httpx.get(f"{self.url}/v2/", timeout=1, verify=verify, headers=headers).status_code in (200, 401):
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
