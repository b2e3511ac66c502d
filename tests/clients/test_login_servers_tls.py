"""`serve --tls self-signed` covers every registry's login server: two registries made through the ARM API are
reached by their own names (`NAME.cargohold.test`, port 443) over TLS, trusting only the generated CA, by
skopeo, Microsoft's Azure SDKs and containerd's `ctr` (what Kubernetes nodes pull with).

Nothing resolves `cargohold.test` offline, so clients go through a CONNECT proxy on loopback
(tests/support/tunnel.py) that sends every tunnel to the server's port. TLS runs end to end through it: each
client verifies the certificate against the login server it asked for.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from azure.containerregistry import ContainerRegistryClient
from azure.identity import ClientSecretCredential
from azure.mgmt.containerregistry import ContainerRegistryManagementClient
from azure.mgmt.containerregistry.models import GenerateCredentialsParameters, Registry, ScopeMap, Sku, Token
from cryptography import x509

from tests.clients.oci_layout import write_image_layout
from tests.conftest import require_tool
from tests.support.images import Image, make_image
from tests.support.server import RunningServer
from tests.support.tunnel import Tunnel

pytestmark = [pytest.mark.clients, pytest.mark.backend_independent]

DOMAIN = "cargohold.test"
GROUP = "default"
AUDIENCE = "https://containerregistry.azure.net"


@dataclass
class Site:
    server: RunningServer
    tunnel: Tunnel
    ca: str
    cert_dir: Path
    """A directory holding only the CA, as skopeo's --cert-dir wants it."""
    credential: ClientSecretCredential
    registries: list[str]
    images: dict[str, Image]

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, **self.tunnel.environment()}

    def login_server(self, registry: str) -> str:
        return f"{registry}.{DOMAIN}"

    @property
    def owner(self) -> str:
        client_id, secret = self.server.credentials
        return f"{client_id}:{secret}"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A server for `cargohold.test` and two registries created through the management SDK over TLS."""
    skopeo = require_tool("skopeo")
    base = tmp_path_factory.mktemp("domain")
    server = RunningServer(base / "data", extra_args=["--tls", "self-signed", "--domain", DOMAIN],
                           scheme="https").start(verify=False)
    ca = str(server.data_dir / "tls" / "ca.pem")
    cert_dir = base / "certs"
    cert_dir.mkdir()
    shutil.copy(ca, cert_dir / "ca.crt")
    with Tunnel(server.port, DOMAIN) as tunnel, pytest.MonkeyPatch.context() as patch:
        for key, value in tunnel.environment().items():
            patch.setenv(key, value)
        client_id, secret = server.credentials
        credential = ClientSecretCredential("cargohold", client_id, secret, authority=f"https://{DOMAIN}",
                                            disable_instance_discovery=True, connection_verify=ca)
        names = [f"tlsone{uuid.uuid4().hex[:8]}", f"tlstwo{uuid.uuid4().hex[:8]}"]
        with ContainerRegistryManagementClient(credential, subscription_id="default", base_url=f"https://{DOMAIN}",
                                               connection_verify=ca, polling_interval=0.05, retry_total=0) as mgmt:
            for name in names:
                created = mgmt.registries.begin_create(GROUP, name, Registry(
                    location="local", sku=Sku(name="Standard"))).result()
                assert created.login_server == f"{name}.{DOMAIN}"
        found = Site(server, tunnel, ca, cert_dir, credential, names, {})
        for name in names:
            image = make_image(f"tls-{name}", 2)
            layout = base / name
            write_image_layout(layout, "v1", image)
            pushed = subprocess.run([skopeo, "copy", "--dest-cert-dir", str(cert_dir), "--dest-creds", found.owner,
                                     f"oci:{layout}:v1", f"docker://{found.login_server(name)}/app/web:v1"],
                                    capture_output=True, text=True, timeout=120, env=found.env)
            assert pushed.returncode == 0, pushed.stderr
            found.images[name] = image
        yield found
    server.stop()


def test_the_certificate_names_the_domain_and_every_name_under_it(site: Site) -> None:
    certificate = x509.load_pem_x509_certificate((site.server.data_dir / "tls" / "server.pem").read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {DOMAIN, f"*.{DOMAIN}"} <= set(names.get_values_for_type(x509.DNSName))


def test_skopeo_reaches_both_login_servers(site: Site) -> None:
    skopeo = require_tool("skopeo")
    for name in site.registries:
        raw = subprocess.run([skopeo, "inspect", "--raw", "--cert-dir", str(site.cert_dir), "--creds", site.owner,
                              f"docker://{site.login_server(name)}/app/web:v1"],
                             capture_output=True, timeout=120, env=site.env)
        assert raw.returncode == 0, raw.stderr.decode()
        assert raw.stdout == site.images[name].manifest
    untrusted = subprocess.run([skopeo, "inspect", "--raw", "--creds", site.owner,
                                f"docker://{site.login_server(site.registries[0])}/app/web:v1"],
                               capture_output=True, text=True, timeout=120, env=site.env)
    assert untrusted.returncode != 0 and "certificate" in untrusted.stderr
    assert {f"{site.login_server(n)}:443" for n in site.registries} <= set(site.tunnel.hosts)


def test_the_azure_sdk_reaches_both_login_servers(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in site.tunnel.environment().items():
        monkeypatch.setenv(key, value)
    for name in site.registries:
        with ContainerRegistryClient(f"https://{site.login_server(name)}", site.credential, audience=AUDIENCE,
                                     connection_verify=site.ca) as client:
            assert list(client.list_repository_names()) == ["app/web"]
            properties = client.get_manifest_properties("app/web", "v1")
            assert properties.digest == site.images[name].digest
            assert properties.fully_qualified_reference.startswith(f"{site.login_server(name)}/app/web@")


@pytest.fixture(scope="module")
def containerd() -> Iterator[str]:
    """A containerd daemon of the test's own (state, root and socket in a temporary directory); needs root."""
    binary = require_tool("containerd")
    require_tool("ctr")
    if os.geteuid() != 0:
        pytest.skip("containerd needs root")
    work = Path(tempfile.mkdtemp(prefix="ctd-", dir="/tmp"))
    socket_path = work / "containerd.sock"
    (work / "config.toml").write_text(
        f'version = 2\nroot = "{work}/root"\nstate = "{work}/state"\n'
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        f'[grpc]\n  address = "{socket_path}"\n[ttrpc]\n  address = "{socket_path}.ttrpc"\n')
    log = open(work / "containerd.log", "wb")
    daemon = subprocess.Popen([binary, "--config", str(work / "config.toml")], stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    deadline = time.monotonic() + 30
    while not socket_path.exists():
        if daemon.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"containerd did not start; see {log.name}")
        time.sleep(0.1)
    yield str(socket_path)
    os.killpg(daemon.pid, signal.SIGTERM)
    daemon.wait(timeout=30)
    log.close()
    subprocess.run(["umount", "-R", str(work / "root")], capture_output=True, check=False)
    shutil.rmtree(work, ignore_errors=True)


def test_containerd_pulls_from_both_with_repository_tokens(site: Site, containerd: str, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """As a Kubernetes node would: hosts.toml names the CA, a token scoped to one repository pulls."""
    for key, value in site.tunnel.environment().items():
        monkeypatch.setenv(key, value)
    hosts_dir = tmp_path / "certs.d"
    with ContainerRegistryManagementClient(site.credential, subscription_id="default", base_url=f"https://{DOMAIN}",
                                           connection_verify=site.ca, polling_interval=0.05, retry_total=0) as mgmt:
        tokens = {}
        for name in site.registries:
            readers = mgmt.scope_maps.begin_create(GROUP, name, "webpull", ScopeMap(
                actions=["repositories/app/web/content/read", "repositories/app/web/metadata/read"])).result()
            token = mgmt.tokens.begin_create(GROUP, name, "nodepull", Token(scope_map_id=readers.id)).result()
            password = mgmt.registries.begin_generate_credentials(GROUP, name, GenerateCredentialsParameters(
                token_id=token.id, name="password1")).result().passwords[0].value
            tokens[name] = f"nodepull:{password}"
            login_server = site.login_server(name)
            (hosts_dir / login_server).mkdir(parents=True)
            (hosts_dir / login_server / "hosts.toml").write_text(
                f'server = "https://{login_server}"\n\n[host."https://{login_server}"]\n'
                f'  capabilities = ["pull", "resolve"]\n  ca = "{site.ca}"\n')
    ctr = require_tool("ctr")
    for name in site.registries:
        reference = f"{site.login_server(name)}/app/web:v1"
        pulled = subprocess.run([ctr, "--address", containerd, "--namespace", "cargohold", "images", "pull",
                                 "--hosts-dir", str(hosts_dir), "--user", tokens[name], "--snapshotter", "native",
                                 reference], capture_output=True, text=True, timeout=180, env=site.env)
        assert pulled.returncode == 0, pulled.stdout + pulled.stderr
        listed = subprocess.run([ctr, "--address", containerd, "--namespace", "cargohold", "images", "ls"],
                                capture_output=True, text=True, timeout=60, check=True)
        assert any(line.split()[:1] == [reference] and site.images[name].digest in line
                   for line in listed.stdout.splitlines())
        other = f"{site.login_server(name)}/app/other:v1"
        refused = subprocess.run([ctr, "--address", containerd, "--namespace", "cargohold", "images", "pull",
                                  "--hosts-dir", str(hosts_dir), "--user", tokens[name], other],
                                 capture_output=True, text=True, timeout=180, env=site.env)
        assert refused.returncode != 0 and "insufficient_scope" in refused.stderr
        untrusted = subprocess.run([ctr, "--address", containerd, "--namespace", "cargohold", "images", "pull",
                                    "--user", tokens[name], reference],
                                   capture_output=True, text=True, timeout=180, env=site.env)
        assert untrusted.returncode != 0 and "x509: certificate signed by unknown authority" in untrusted.stderr
