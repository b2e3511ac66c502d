"""Task sources obey the outbound policy: a git or tarball source on loopback, link-local or a name that
resolves to loopback is refused before anything is fetched, unless the operator allowed it."""

from __future__ import annotations

import asyncio
import http.server
import io
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cargohold.kernel.egress import EgressPolicy
from cargohold.tasks.source import SourceError, clone_git, fetch_url

pytestmark = pytest.mark.backend_independent

STRICT = EgressPolicy()
LOOPBACK = EgressPolicy.from_allow_list(["127.0.0.0/8"])


@pytest.fixture(scope="module")
def http_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A loopback HTTP server over a directory holding a tarball and a bare git repository (dumb HTTP)."""
    root = tmp_path_factory.mktemp("served")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        data = b"FROM scratch\n"
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    (root / "context.tar.gz").write_bytes(buffer.getvalue())
    work = root / "work"
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    (work / "Dockerfile").write_text("FROM scratch\n")
    subprocess.run(["git", "-C", str(work), "add", "."], check=True)
    subprocess.run(["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm",
                    "one"], check=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(root / "repo.git")], check=True)
    subprocess.run(["git", "-C", str(root / "repo.git"), "update-server-info"], check=True)
    handler = type("Quiet", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *_: None})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: handler(*a, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}", root
    server.shutdown()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "169.254.169.254", "10.0.0.1"])
def test_a_tarball_source_on_an_internal_address_is_refused(host: str, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="outbound policy"):
        asyncio.run(fetch_url(f"http://{host}:9/context.tar.gz", tmp_path / "download", STRICT))
    assert not (tmp_path / "download").exists()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "169.254.169.254"])
def test_a_git_source_on_an_internal_address_is_refused(host: str, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="outbound policy"):
        asyncio.run(clone_git(f"http://{host}:9/repo.git", None, tmp_path / "clone", STRICT))
    assert not (tmp_path / "clone").exists()


def test_allowed_sources_are_fetched(http_root: tuple[str, Path], tmp_path: Path) -> None:
    address, _ = http_root
    asyncio.run(fetch_url(f"http://{address}/context.tar.gz", tmp_path / "download", LOOPBACK))
    assert tarfile.open(tmp_path / "download").getnames() == ["Dockerfile"]
    asyncio.run(clone_git(f"http://{address}/repo.git", "main", tmp_path / "clone", LOOPBACK))
    assert (tmp_path / "clone" / "Dockerfile").read_text() == "FROM scratch\n"


def test_a_name_on_the_allow_list_is_pinned_to_the_address_checked(http_root: tuple[str, Path],
                                                                   tmp_path: Path) -> None:
    """`localhost` allowed by name: git connects to the address the policy resolved, not one it looks up."""
    address, _ = http_root
    port = address.rsplit(":", 1)[1]
    by_name = EgressPolicy.from_allow_list(["localhost"])
    asyncio.run(clone_git(f"http://localhost:{port}/repo.git", "main", tmp_path / "clone", by_name))
    assert (tmp_path / "clone" / "Dockerfile").is_file()
