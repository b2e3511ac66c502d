from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from azure.containerregistry import ContainerRegistryClient
from azure.identity import ClientSecretCredential

from tests.support.server import RunningServer

AUDIENCE = "https://containerregistry.azure.net"


@pytest.fixture(scope="module")
def ca(tls_server: RunningServer) -> str:
    return str(tls_server.data_dir / "tls" / "ca.pem")


@pytest.fixture(scope="module")
def credential(tls_server: RunningServer, ca: str) -> ClientSecretCredential:
    client_id, secret = tls_server.credentials
    return ClientSecretCredential("cargohold", client_id, secret, authority=tls_server.url,
                                  disable_instance_discovery=True, connection_verify=ca)


@pytest.fixture(scope="module")
def registry(tls_server: RunningServer, credential: ClientSecretCredential, ca: str) -> Iterator[ContainerRegistryClient]:
    with ContainerRegistryClient(tls_server.url, credential, audience=AUDIENCE, connection_verify=ca) as client:
        yield client


@pytest.fixture(scope="module")
def http(tls_server: RunningServer, ca: str) -> Iterator[httpx.Client]:
    with tls_server.client(verify=ssl.create_default_context(cafile=ca)) as client:
        yield client


def cli(server: RunningServer, *args: str) -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "cargohold", *args, "--data-dir", str(server.data_dir)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def data_dir(server: RunningServer) -> Path:
    return server.data_dir
