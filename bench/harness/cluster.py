"""Several cargohold nodes on one database and one data directory, nginx in front of them, and the CPU each
process spends while a load generator runs. Used by bench/scaleout.py.

Every process is started in its own session (procs.start_process) and stopped by process group
(procs.stop_process); callers register the stops on an ExitStack so errors and Ctrl-C stop them too.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from .measure import LoadResult, MeasurementError, parse_wrk, wrk_argv
from .procs import (
    ManagedProcess,
    _read_stat,
    free_port,
    process_tree,
    start_process,
    stop_process,
    wait_until_ready,
)

HOST = "127.0.0.1"
CREDENTIALS_FILE = "initial-credentials"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- PostgreSQL: one fresh database per run -------------------------------------------------------------------


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def with_database(server_url: str, name: str) -> str:
    """The server URL (…/postgres) with another database name."""
    base, _, _ = _libpq(server_url).rpartition("/")
    return f"{base}/{name}"


def create_database(server_url: str, name: str) -> str:
    """CREATE DATABASE name (dropping a leftover of that name first); returns its URL."""
    import psycopg

    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        raise ValueError(f"unsafe database name {name!r}")
    with psycopg.connect(_libpq(server_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return with_database(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    import psycopg

    try:
        with psycopg.connect(_libpq(server_url), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except psycopg.Error as exc:  # a leftover database is harmless; say so and go on
        print(f"warning: could not drop database {name}: {exc}", file=sys.stderr)


@dataclass
class PostgresServer:
    """A PostgreSQL server: one this run started with scripts/postgres.sh in a directory of its own (so nobody
    else's `postgres.sh stop` can end it mid-run), or one given by URL."""

    url: str
    directory: Path | None = None
    port: int | None = None
    script: Path | None = None

    def _env(self) -> dict[str, str]:
        return {**os.environ, "CARGOHOLD_PG_DIR": str(self.directory), "CARGOHOLD_PG_PORT": str(self.port)}

    def postmaster_pid(self) -> int | None:
        if self.directory is None:
            return None
        try:
            return int((self.directory / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def pids(self) -> list[int]:
        """This server's processes (postmaster and backends); every postgres process if it is not ours."""
        root = self.postmaster_pid()
        return process_tree(root) if root else postgres_pids()

    def stop(self) -> None:
        if self.directory is None or self.script is None:
            return
        subprocess.run(
            ["bash", str(self.script), "stop"], env=self._env(), check=False, timeout=120, capture_output=True
        )
        shutil.rmtree(self.directory, ignore_errors=True)


def start_private_postgres(script: Path) -> PostgresServer:
    """`scripts/postgres.sh start` with its own data directory and a free port; stop() stops and removes it."""
    directory = Path(f"/tmp/cargohold-scaleout-pg-{os.getpid()}")
    server = PostgresServer(url="", directory=directory, port=free_port(), script=script)
    try:
        done = subprocess.run(
            ["bash", str(script), "start"],
            env=server._env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{script} start failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
        server.url = done.stdout.strip().splitlines()[-1]
    except BaseException:
        server.stop()
        raise
    return server


class NotifyCounter:
    """Counts the `NOTIFY cargohold_metadata` messages on a database (every cargohold write transaction sends
    one, and each makes every node empty its cache), on a listening connection in a thread of its own."""

    CHANNEL = "cargohold_metadata"

    def __init__(self, db_url: str) -> None:
        import psycopg

        self.count = 0
        self._conn = psycopg.connect(_libpq(db_url), autocommit=True)
        self._conn.execute(f"LISTEN {self.CHANNEL}")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="notify-counter", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psycopg

        while not self._stop.is_set():
            try:
                for _ in self._conn.notifies(timeout=0.2):
                    self.count += 1
            except psycopg.Error:
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._conn.close()


def postgres_version(server_url: str) -> str:
    import psycopg

    with psycopg.connect(_libpq(server_url), autocommit=True) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "unknown"


# --- cargohold nodes ------------------------------------------------------------------------------------------


@dataclass
class Node:
    name: str
    port: int
    process: ManagedProcess
    argv: list[str]
    startup_s: float

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def stop(self) -> None:
        stop_process(self.process)


def cargohold_argv() -> list[str]:
    script = Path(sys.executable).with_name("cargohold")
    if script.exists():
        return [str(script)]
    found = shutil.which("cargohold")
    return [found] if found else [sys.executable, "-m", "cargohold"]


def start_node(
    name: str,
    workdir: Path,
    data_dir: Path,
    db_url: str | None,
    worker: bool = True,
    storage_url: str | None = None,
    ready_timeout_s: float = 60.0,
    extra_args: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> Node:
    """`cargohold serve` on a free port; returns once GET /v2/ answers (401 without credentials)."""
    port = free_port()
    argv = [*cargohold_argv(), "serve", "--data-dir", str(data_dir), "--host", HOST, "--port", str(port)]
    if db_url:
        argv += ["--db-url", db_url]
    if storage_url:
        argv += ["--storage-url", storage_url]
    if not worker:
        argv.append("--no-worker")
    argv += extra_args or []
    process = start_process(
        name, argv, workdir / f"{name}.log", env={**os.environ, **(env or {})}, cwd=workdir
    )
    try:
        startup_s = wait_until_ready(f"http://{HOST}:{port}/v2/", process, ready_timeout_s, (200, 401))
    except BaseException:
        stop_process(process)
        raise
    return Node(name, port, process, argv, startup_s)


def read_credentials(data_dir: Path, wait_s: float = 10.0) -> tuple[str, str]:
    path = data_dir / CREDENTIALS_FILE
    deadline = time.monotonic() + wait_s
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    created = json.loads(path.read_text())
    return created["clientId"], created["clientSecret"]


def basic_header(credentials: tuple[str, str]) -> str:
    return "Basic " + base64.b64encode(":".join(credentials).encode()).decode()


def bearer_header(base_url: str, credentials: tuple[str, str], scope: str) -> str:
    """A token from GET /oauth2/token?service=…&scope=… (realm and service from the 401 challenge of /v2/),
    fetched through base_url, as a client behind the load balancer would."""
    challenge = httpx.get(base_url + "/v2/", timeout=10).headers.get("WWW-Authenticate", "")
    params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
    realm = params.get("realm") or base_url + "/oauth2/token"
    if not realm.startswith(base_url):
        realm = base_url + httpx.URL(realm).path
    reply = httpx.get(
        realm, params={"service": params.get("service", ""), "scope": scope}, auth=credentials, timeout=30
    )
    if reply.status_code != 200:
        raise MeasurementError(f"GET {reply.request.url} -> HTTP {reply.status_code}: {reply.text[:300]}")
    return "Bearer " + reply.json()["access_token"]


# --- Azurite (Azure Blob emulator) ----------------------------------------------------------------------------


@dataclass
class Azurite:
    port: int
    process: ManagedProcess
    connection_string: str

    def stop(self) -> None:
        stop_process(self.process)


def start_azurite(cloud_script: Path, workdir: Path, ready_timeout_s: float = 60.0) -> Azurite:
    """Azurite's blob service via `scripts/cloud-stores.sh azurite PORT DIR` (foreground, exec'ed), in a session
    of its own; installs it first (`cloud-stores.sh install`, npm) when missing. The account is the emulator's
    public devstoreaccount1, whose well-known key the script holds."""
    done = subprocess.run(
        ["bash", str(cloud_script), "install"], capture_output=True, text=True, check=False, timeout=900
    )
    if done.returncode != 0:
        raise RuntimeError(f"{cloud_script} install failed: {done.stderr.strip()[-1000:]}")
    key = re.search(r'azurite_key="([^"]+)"', cloud_script.read_text())
    if key is None:
        raise RuntimeError(f"no azurite_key in {cloud_script}")
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    process = start_process(
        "azurite",
        ["bash", str(cloud_script), "azurite", str(port), str(workdir / "data")],
        workdir / "azurite.log",
        cwd=workdir,
    )
    deadline = time.monotonic() + ready_timeout_s
    while True:
        if process.popen.poll() is not None:
            raise RuntimeError(f"azurite exited ({process.popen.returncode}): {process.log_tail()}")
        try:
            httpx.get(f"http://{HOST}:{port}/devstoreaccount1?comp=list", timeout=2)
            break
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                stop_process(process)
                raise RuntimeError(f"azurite not answering on :{port}: {process.log_tail()}") from None
            time.sleep(0.1)
    connection = (
        f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={key.group(1)};"
        f"BlobEndpoint=http://{HOST}:{port}/devstoreaccount1;"
    )
    return Azurite(port, process, connection)


def azurite_version(cloud_script: Path) -> str:
    match = (
        re.search(r"AZURITE_VERSION:-([0-9.]+)", cloud_script.read_text()) if cloud_script.exists() else None
    )
    return match.group(1) if match else "unknown"


# --- nginx as the load balancer -------------------------------------------------------------------------------


def nginx_lb_config(prefix: Path, port: int, upstream_ports: list[int], workers: int | str = "auto") -> str:
    temp_paths = "\n".join(
        f"    {kind}_temp_path {prefix / 'tmp' / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    servers = "\n".join(f"        server {HOST}:{p};" for p in upstream_ports)
    user_line = "user root;" if os.geteuid() == 0 else ""
    return f"""\
{user_line}
worker_processes {workers};
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    keepalive_requests 1000000;
{temp_paths}
    upstream cargohold {{
{servers}
        keepalive 64;
        keepalive_requests 1000000;
    }}
    server {{
        listen {HOST}:{port};
        client_max_body_size 0;
        location / {{
            proxy_pass http://cargohold;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_read_timeout 600s;
            proxy_send_timeout 600s;
        }}
    }}
}}
"""


@dataclass
class Balancer:
    port: int
    process: ManagedProcess
    config: str

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def stop(self) -> None:
        stop_process(self.process)


def start_nginx_lb(workdir: Path, upstream_ports: list[int], ready_timeout_s: float = 30.0) -> Balancer:
    """nginx round-robin over the nodes, in the foreground (-g 'daemon off;') with its own prefix dir."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "tmp").mkdir(exist_ok=True)
    port = free_port()
    config = nginx_lb_config(workdir, port, upstream_ports)
    config_path = workdir / "nginx.conf"
    config_path.write_text(config)
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    argv = [
        binary,
        "-p",
        str(workdir),
        "-e",
        str(workdir / "error.log"),
        "-c",
        str(config_path),
        "-g",
        "daemon off;",
    ]
    process = start_process("nginx", argv, workdir / "nginx.log", cwd=workdir)
    try:
        wait_until_ready(f"http://{HOST}:{port}/v2/", process, ready_timeout_s, (200, 401))
    except BaseException:
        stop_process(process)
        raise
    return Balancer(port, process, config)


def nginx_version() -> str:
    try:
        done = subprocess.run(["nginx", "-v"], capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "unavailable"
    return (done.stderr or done.stdout).strip().removeprefix("nginx version: ")


# --- CPU accounting -------------------------------------------------------------------------------------------


def _cpu_ticks(pid: int) -> int:
    """utime + stime of one process, in clock ticks (0 if it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


def _machine_ticks() -> tuple[int, int, int]:
    """(busy, total, irq + softirq) clock ticks of all CPUs since boot, from /proc/stat. Interrupt time (loopback
    networking runs in softirq) is not charged to any process's utime/stime on kernels that account it apart."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    total = sum(values[:8])  # guest time is already inside user
    return total - idle, total, values[5] + values[6]


OTHERS = "other processes"


def _all_pids() -> list[int]:
    return [int(entry.name) for entry in os.scandir("/proc") if entry.name.isdigit()]


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return str(pid)


def postgres_pids() -> list[int]:
    """Every PostgreSQL server process on the machine (the benchmark's database is the only one in use)."""
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if Path(f"/proc/{entry.name}/comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


@dataclass
class CpuWindow:
    """CPU seconds spent by named groups of processes between start() and stop(); the machine's busy time too."""

    groups: dict[str, list[int]]  # label -> root pids (whole process trees are counted)
    postgres: PostgresServer | None = None  # also count this server's processes, as "postgres"
    seconds: dict[str, float] = field(default_factory=dict)
    wall_s: float = 0.0
    machine_busy_s: float = 0.0
    machine_capacity_s: float = 0.0
    top_others: list[tuple[str, float]] = field(default_factory=list)
    _before: dict[str, dict[int, int]] = field(default_factory=dict)
    irq_s: float = 0.0
    _machine_before: tuple[int, int, int] = (0, 0, 0)
    _started: float = 0.0

    def _snapshot(self) -> dict[str, dict[int, int]]:
        snap = {
            label: {pid: _cpu_ticks(pid) for root in roots for pid in process_tree(root)}
            for label, roots in self.groups.items()
        }
        if self.postgres is not None:
            snap["postgres"] = {pid: _cpu_ticks(pid) for pid in self.postgres.pids()}
        counted = {pid for pids in snap.values() for pid in pids}
        snap[OTHERS] = {pid: _cpu_ticks(pid) for pid in _all_pids() if pid not in counted}
        return snap

    def start(self) -> None:
        self._before = self._snapshot()
        self._machine_before = _machine_ticks()
        self._started = time.monotonic()

    def stop(self) -> None:
        after = self._snapshot()
        machine_after = _machine_ticks()
        self.wall_s = time.monotonic() - self._started
        for label, pids in after.items():
            before = self._before.get(label, {})
            if label == OTHERS:  # processes outside the benchmark: only those alive at both ends count
                spent = {pid: t - before[pid] for pid, t in pids.items() if pid in before}
                self.seconds[label] = sum(spent.values()) / CLK_TCK
                top = sorted(spent.items(), key=lambda item: -item[1])[:4]
                self.top_others = [(_comm(pid), ticks / CLK_TCK) for pid, ticks in top if ticks > 0]
                continue
            # A process born during the window counts from zero; one that died during it is lost (rare here).
            self.seconds[label] = sum(t - before.get(pid, 0) for pid, t in pids.items()) / CLK_TCK
        busy = machine_after[0] - self._machine_before[0]
        total = machine_after[1] - self._machine_before[1]
        self.machine_busy_s = busy / CLK_TCK
        self.machine_capacity_s = total / CLK_TCK
        self.irq_s = (machine_after[2] - self._machine_before[2]) / CLK_TCK

    def cores(self, label: str) -> float:
        """Average number of cores a group kept busy over the window."""
        return self.seconds.get(label, 0.0) / self.wall_s if self.wall_s else 0.0


@dataclass
class WrkRun:
    load: LoadResult
    wrk_cpu_s: float
    cpu: CpuWindow


def run_wrk_measured(
    url: str, script: Path, duration_s: int, connections: int, threads: int, cpu: CpuWindow
) -> WrkRun:
    """wrk as bench/run.py runs it, with the CPU of wrk itself (from wait4's rusage) and of `cpu`'s groups."""
    argv = wrk_argv(url, script, duration_s, connections, threads)
    out_path = script.with_suffix(".out")
    with out_path.open("w+") as out:
        cpu.start()
        popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            _, status, usage = os.wait4(popen.pid, 0)
        except BaseException:
            try:
                os.killpg(popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            popen.wait()
            raise
        popen.returncode = os.waitstatus_to_exitcode(status)
        cpu.stop()
        out.seek(0)
        output = out.read()
    if popen.returncode != 0:
        raise MeasurementError(f"wrk failed ({popen.returncode}): {output.strip()[-2000:]}")
    return WrkRun(parse_wrk(output), usage.ru_utime + usage.ru_stime, cpu)


def session_alive(pid: int) -> bool:
    return _read_stat(pid) is not None
