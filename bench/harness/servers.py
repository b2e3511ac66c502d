"""How each benchmark target is configured and launched. Every launcher returns a ready server."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .procs import (
    ManagedProcess,
    ServerStartError,
    free_port,
    start_process,
    stop_process,
    wait_until_ready,
)

HOST = "127.0.0.1"
NGINX_BLOB_PATH = "/blob"
NGINX_MANIFEST_PATH = "/manifest"
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"

DEFAULT_CARGOHOLD_CMD = "cargohold serve --data-dir {data_dir} --host {host} --port {port}"
FALLBACK_CARGOHOLD_CMD = "{python} -m cargohold serve --data-dir {data_dir} --host {host} --port {port}"


@dataclass
class RunningServer:
    name: str
    is_registry: bool
    base_url: str
    process: ManagedProcess
    command: list[str]
    startup_s: float
    credentials: tuple[str, str] | None = None
    """For a server that authenticates (cargohold): the user name and password pushes use."""

    def stop(self) -> None:
        stop_process(self.process)


def default_cargohold_cmd() -> str:
    return DEFAULT_CARGOHOLD_CMD if shutil.which("cargohold") else FALLBACK_CARGOHOLD_CMD


def _launch(
    name: str,
    argv: list[str],
    workdir: Path,
    ready_path: str,
    is_registry: bool,
    port: int,
    ready_timeout_s: float,
    env: dict[str, str] | None = None,
    ready_statuses: tuple[int, ...] = (200,),
) -> RunningServer:
    process = start_process(name, argv, workdir / f"{name}.log", env=env, cwd=workdir)
    base_url = f"http://{HOST}:{port}"
    try:
        startup_s = wait_until_ready(base_url + ready_path, process, ready_timeout_s, ready_statuses)
    except BaseException:
        stop_process(process)
        raise
    return RunningServer(name, is_registry, base_url, process, argv, startup_s)


def start_cargohold(
    workdir: Path, cmd_template: str, extra_env: dict[str, str], ready_timeout_s: float
) -> RunningServer:
    port = free_port()
    data_dir = workdir / "data"
    data_dir.mkdir(parents=True)
    command = cmd_template.format(
        python=shlex.quote(sys.executable), host=HOST, port=port, data_dir=shlex.quote(str(data_dir))
    )
    env = {**os.environ, **extra_env}
    # With auth, GET /v2/ answers 401 to anonymous clients; 200 means a build without auth.
    server = _launch(
        "cargohold", shlex.split(command), workdir, "/v2/", True, port, ready_timeout_s, env, (200, 401)
    )
    try:
        server.credentials = _read_initial_credentials(data_dir / CREDENTIALS_FILE)
        if server.credentials is not None:
            enable_anonymous_pull(data_dir, env)
    except BaseException:
        server.stop()
        raise
    return server


CREDENTIALS_FILE = "initial-credentials"


def _read_initial_credentials(path: Path, wait_s: float = 5.0) -> tuple[str, str] | None:
    """(clientId, clientSecret) of the Owner service principal cargohold writes on first start."""
    deadline = time.monotonic() + wait_s
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not path.exists():
        return None
    created = json.loads(path.read_text())
    return created["clientId"], created["clientSecret"]


def enable_anonymous_pull(data_dir: Path, env: dict[str, str]) -> None:
    """`cargohold update --anonymous-pull-enabled true` against the running server's data dir, so
    the measured reads (blob GET, manifest GET/HEAD, tags/list) run anonymously, as with Distribution."""
    argv = [
        sys.executable,
        "-m",
        "cargohold",
        "update",
        "--data-dir",
        str(data_dir),
        "--anonymous-pull-enabled",
        "true",
        "-o",
        "json",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False, timeout=120)
    if done.returncode != 0:
        raise ServerStartError(
            f"{shlex.join(argv)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}"
        )
    if (json.loads(done.stdout).get("properties") or {}).get("anonymousPullEnabled") is not True:
        raise ServerStartError(
            f"anonymous pull still disabled after {shlex.join(argv)}: {done.stdout.strip()}"
        )


def distribution_config(storage_dir: Path, port: int) -> str:
    return f"""\
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {storage_dir}
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: {HOST}:{port}
  secret: cargohold-bench-not-a-secret
"""


def start_distribution(workdir: Path, ready_timeout_s: float) -> RunningServer:
    port = free_port()
    storage_dir = workdir / "storage"
    storage_dir.mkdir(parents=True)
    config_path = workdir / "config.yml"
    config_path.write_text(distribution_config(storage_dir, port))
    binary = shutil.which("docker-registry") or shutil.which("registry") or "docker-registry"
    return _launch(
        "distribution", [binary, "serve", str(config_path)], workdir, "/v2/", True, port, ready_timeout_s
    )


def nginx_config(prefix: Path, www_dir: Path, port: int) -> str:
    temp_paths = "\n".join(
        f"    {kind}_temp_path {prefix / 'tmp' / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # As root, workers would drop to 'nobody' and could not read our 0700 temp dir.
    user_line = "user root;" if os.geteuid() == 0 else ""
    return f"""\
{user_line}
worker_processes auto;
daemon off;
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} warn;
events {{
    worker_connections 1024;
}}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
{temp_paths}
    default_type application/octet-stream;
    server {{
        listen {HOST}:{port};
        root {www_dir};
        location = {NGINX_MANIFEST_PATH} {{
            default_type {MANIFEST_MEDIA_TYPE};
        }}
    }}
}}
"""


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def start_nginx(
    workdir: Path, blob_file: Path, manifest_bytes: bytes, ready_timeout_s: float
) -> RunningServer:
    port = free_port()
    www_dir = workdir / "www"
    www_dir.mkdir(parents=True)
    (workdir / "tmp").mkdir()
    _link_or_copy(blob_file, www_dir / NGINX_BLOB_PATH.lstrip("/"))
    (www_dir / NGINX_MANIFEST_PATH.lstrip("/")).write_bytes(manifest_bytes)
    config_path = workdir / "nginx.conf"
    config_path.write_text(nginx_config(workdir, www_dir, port))
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    argv = [binary, "-p", str(workdir), "-e", str(workdir / "error.log"), "-c", str(config_path)]
    return _launch("nginx", argv, workdir, NGINX_MANIFEST_PATH, False, port, ready_timeout_s)
