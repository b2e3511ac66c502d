"""Three `cargohold serve` nodes on one PostgreSQL database and one Azure Blob store (Azurite), behind Debian's
nginx with round-robin: skopeo pushes and pulls through nginx, a node killed in the middle of a push loses
nothing, the push retried completes, and fsck is clean."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from tests.clients.oci_layout import blob_path, write_image_layout
from tests.conftest import require_tool
from tests.support.images import image_from_layers, layer_tarball, sha256
from tests.support.server import RunningServer, free_port, suite_database

ROOT = Path(__file__).resolve().parents[2]
OWNER = ("ci-owner-0001", "a-long-secret-for-the-three-node-test")
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
"""Azurite's well-known development key (public)."""


@dataclass
class Cluster:
    nodes: list[RunningServer]
    proxy: str
    env: dict[str, str]


def _postgres() -> str:
    configured = os.environ.get("CARGOHOLD_TEST_POSTGRES")
    if configured:
        return configured
    done = subprocess.run([str(ROOT / "scripts" / "postgres.sh"), "start"], capture_output=True, text=True,
                          check=False, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture(scope="module")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A connection string: the suite's Azurite when it runs on one, else one started here."""
    configured = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
    if configured:
        yield configured
        return
    if not (ROOT / ".tools" / "node_modules" / ".bin" / "azurite-blob").exists():
        pytest.skip("Azurite is not installed (run scripts/cloud-stores.sh install)")
    base = tmp_path_factory.mktemp("azurite")
    port = free_port()
    log = open(base / "azurite.log", "wb")  # noqa: SIM115 - the server's output for as long as it runs
    process = subprocess.Popen([str(ROOT / "scripts" / "cloud-stores.sh"), "azurite", str(port), str(base)],
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            break
        except httpx.HTTPError:
            assert time.monotonic() < deadline and process.poll() is None, "Azurite did not start"
            time.sleep(0.2)
    yield (f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};"
           f"BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;")
    process.terminate()
    process.wait(timeout=10)


def _nginx_config(directory: Path, port: int, upstreams: list[int]) -> Path:
    servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;" for p in upstreams)
    user = "user root;\n" if os.geteuid() == 0 else ""
    config = directory / "nginx.conf"
    config.write_text(f"""{user}worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/error.log;
events {{ worker_connections 256; }}
http {{
    access_log {directory}/access.log;
    client_body_temp_path {directory}/body;
    proxy_temp_path {directory}/proxy;
    upstream cargohold {{
{servers}
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 0;
        proxy_request_buffering off;
        proxy_buffering off;
        location / {{
            proxy_pass http://cargohold;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
        }}
    }}
}}
""")
    return config


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, azurite: str) -> Iterator[Cluster]:
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx is None:
        pytest.skip("nginx is not installed (run scripts/install-test-deps.sh)")
    base = tmp_path_factory.mktemp("cluster")
    database = suite_database() or _new_database(_postgres())
    prefix = base.name.replace("_", "-").lower()
    env = {"CARGOHOLD_MASTER_KEY": Fernet.generate_key().decode(), "AZURE_STORAGE_CONNECTION_STRING": azurite,
           "CARGOHOLD_BOOTSTRAP_CLIENT_ID": OWNER[0], "CARGOHOLD_BOOTSTRAP_CLIENT_SECRET": OWNER[1]}
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    nodes = [RunningServer(base / f"node{i}", db_url=database, storage_url=f"azure://cargohold-cluster/{prefix}")
             for i in range(3)]
    proxy_process = None
    try:
        for node in nodes:
            node.data_dir.mkdir(parents=True)
        _start_together(nodes)
        proxy_port = free_port()
        config = _nginx_config(base, proxy_port, [node.port for node in nodes])
        proxy_process = subprocess.Popen([nginx, "-p", str(base), "-c", str(config), "-g", "daemon off;"],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        _wait_until_up(f"http://127.0.0.1:{proxy_port}/v2/", proxy_process)
        yield Cluster(nodes, f"127.0.0.1:{proxy_port}", env)
    finally:
        if proxy_process is not None:
            proxy_process.terminate()
            proxy_process.wait(timeout=10)
        for node in nodes:
            node.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _new_database(server_url: str) -> str:
    os.environ["CARGOHOLD_TEST_POSTGRES"] = server_url
    try:
        return suite_database()
    finally:
        del os.environ["CARGOHOLD_TEST_POSTGRES"]


def _start_together(nodes: list[RunningServer]) -> None:
    """Start all nodes at once: migration and first-start bootstrap must serialize among them."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(nodes)) as pool:
        list(pool.map(lambda node: node.start(timeout=60), nodes))


def _wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert process.poll() is None, "nginx exited"
        try:
            if httpx.get(url, timeout=1).status_code in (200, 401):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("nginx did not start")


def _skopeo(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_tool("skopeo"), *args], capture_output=True, text=True, timeout=timeout,
                          check=False)


def _push_args(proxy: str, layout: Path, target: str) -> list[str]:
    return ["copy", "--dest-tls-verify=false", "--dest-creds", ":".join(OWNER), f"oci:{layout}:v1",
            f"docker://{proxy}/{target}"]


def test_push_and_pull_through_round_robin(cluster: Cluster, tmp_path: Path) -> None:
    image = image_from_layers([layer_tarball({f"f{i}.txt": os.urandom(64 * 1024)}) for i in range(4)])
    write_image_layout(tmp_path / "src", "v1", image)
    pushed = _skopeo(*_push_args(cluster.proxy, tmp_path / "src", "app/web:v1"))
    assert pushed.returncode == 0, pushed.stderr

    for node in cluster.nodes:  # every node sees what was pushed through any of them
        with httpx.Client(base_url=node.url, auth=OWNER, timeout=30) as http:
            manifest = http.get("/v2/app/web/manifests/v1",
                                headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
            assert manifest.status_code == 200 and manifest.content == image.manifest

    pulled = _skopeo("copy", "--src-tls-verify=false", "--src-creds", ":".join(OWNER),
                     f"docker://{cluster.proxy}/app/web:v1", f"oci:{tmp_path / 'dst'}:v1")
    assert pulled.returncode == 0, pulled.stderr
    index = json.loads((tmp_path / "dst" / "index.json").read_text())
    assert index["manifests"][0]["digest"] == image.digest
    for layer in image.layers:
        assert blob_path(tmp_path / "dst", sha256(layer)).read_bytes() == layer


def test_a_node_killed_mid_push_loses_nothing_and_the_retried_push_completes(cluster: Cluster,
                                                                              tmp_path: Path) -> None:
    layers = [layer_tarball({f"big{i}.bin": os.urandom(24 * 1024 * 1024)}) for i in range(3)]
    image = image_from_layers(layers)
    write_image_layout(tmp_path / "src", "v1", image)
    push = subprocess.Popen([require_tool("skopeo"), *_push_args(cluster.proxy, tmp_path / "src", "app/big:v1")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    victim = cluster.nodes[1]
    victim.kill()
    push.communicate(timeout=300)

    retried = _skopeo(*_push_args(cluster.proxy, tmp_path / "src", "app/big:v1"))
    assert retried.returncode == 0, retried.stderr
    pulled = _skopeo("copy", "--src-tls-verify=false", "--src-creds", ":".join(OWNER),
                     f"docker://{cluster.proxy}/app/big:v1", f"oci:{tmp_path / 'dst'}:v1")
    assert pulled.returncode == 0, pulled.stderr
    assert json.loads((tmp_path / "dst" / "index.json").read_text())["manifests"][0]["digest"] == image.digest

    victim.start(timeout=60)  # the node comes back into the cluster with nothing to repair
    fsck = subprocess.run([sys.executable, "-m", "cargohold", "fsck", "--data-dir", str(cluster.nodes[0].data_dir)],
                          capture_output=True, text=True, timeout=600, check=False, env={**os.environ})
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
