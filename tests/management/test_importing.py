"""The engine behind ACR's importImage: copying images from another registry (a second running cargohold,
or a scripted one for what a cargohold never does) and from a registry on the same server, into a target
whose result is read back through its own /v2/ API."""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from cargohold.app import build_context
from cargohold.blobs.filesystem import FilesystemBlobStore
from cargohold.config import Settings
from cargohold.db.tables import registries
from cargohold.management import importing
from cargohold.management.arm import ArmError
from cargohold.management.importing import ImportRequest, ImportResult, ImportSource, import_image
from cargohold.management.source_registry import SourceRegistry, base_url, parse_challenge
from cargohold.oci.digest import Digest
from cargohold.kernel.context import RegistryContext
from tests.auth.helpers import cli
from tests.support.images import OCI_INDEX, OCI_MANIFEST, Image, make_image, push_image, sha256
from tests.support.server import LOOPBACK_ALLOW, RunningServer, free_port


@dataclass
class Target:
    server: RunningServer
    ctx: RegistryContext
    registry_id: int

    def run(self, source_image: str, *, targets: list[str] | None = None, untagged: list[str] | None = None,
            force: bool = False, registry_uri: str | None = None, credentials: tuple[str, str] | None = None,
            local: bool = False, ctx: RegistryContext | None = None,
            verify: bool | str = True) -> ImportResult:
        username, password = credentials if credentials else (None, None)
        local_id = self.registry_id if local else None
        source = ImportSource(source_image, registry_uri, local_id, username, password)
        request = ImportRequest(source, targets or [], untagged or [], force)
        return import_image(ctx or self.ctx, self.registry_id, request, verify=verify)

    def manifest(self, repository: str, reference: str) -> httpx.Response:
        with self.server.client() as client:
            return client.get(f"/v2/{repository}/manifests/{reference}",
                              headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"})

    def blob(self, repository: str, digest: str) -> bytes:
        with self.server.client() as client:
            response = client.get(f"/v2/{repository}/blobs/{digest}", follow_redirects=True)
        assert response.status_code == 200, f"{repository}@{digest}: {response.status_code}"
        return response.content

    def tags(self, repository: str) -> list[str]:
        with self.server.client() as client:
            return list(client.get(f"/v2/{repository}/tags/list").json().get("tags") or [])


@pytest.fixture(scope="module")
def source(server: RunningServer) -> RunningServer:
    return server


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """A second server. The import runs in the test process over its data directory, as a worker would."""
    running = RunningServer(tmp_path_factory.mktemp("target") / "data", local_store=True).start()
    ctx = build_context(Settings.for_data_dir(running.data_dir, egress_allow=LOOPBACK_ALLOW))
    with ctx.engine.connect() as conn:
        registry_id = conn.execute(select(registries.c.id)).scalar_one()
    yield Target(running, ctx, registry_id)
    ctx.engine.dispose()
    running.stop()


def push(server: RunningServer, repository: str, reference: str, image: Image) -> str:
    with server.client() as client:
        return push_image(client, repository, reference, image)


def push_index(server: RunningServer, repository: str, tag: str, images: dict[str, Image]) -> bytes:
    """An OCI index over one image per architecture, each pushed by digest (untagged)."""
    entries = []
    for architecture, image in images.items():
        push(server, repository, image.digest, image)
        entries.append({"mediaType": OCI_MANIFEST, "digest": image.digest, "size": len(image.manifest),
                        "platform": {"architecture": architecture, "os": "linux"}})
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
    with server.client() as client:
        response = client.put(f"/v2/{repository}/manifests/{tag}", content=index,
                              headers={"Content-Type": OCI_INDEX})
    assert response.status_code == 201, response.text
    return index


def blob_sizes(image: Image) -> int:
    return len(image.config) + sum(len(layer) for layer in image.layers)


def refused(call: Callable[[], Any]) -> ArmError:
    with pytest.raises(ArmError) as caught:
        call()
    return caught.value


def test_import_by_tag_with_credentials(source: RunningServer, target: Target) -> None:
    image = make_image("by-tag", 2)
    digest = push(source, "app/web", "v1", image)

    result = target.run("app/web:v1", targets=["imported/web:v1", "imported/web:stable"],
                        registry_uri=f"http://{source.host}", credentials=source.credentials)

    assert result.digest == digest == image.digest
    assert result.targets == ["imported/web:v1", "imported/web:stable"]
    assert (result.blobs_copied, result.bytes_copied) == (3, blob_sizes(image))
    for tag in ("v1", "stable"):
        pulled = target.manifest("imported/web", tag)
        assert pulled.status_code == 200
        assert pulled.content == image.manifest, "manifests are copied byte for byte"
        assert pulled.headers["Docker-Content-Digest"] == digest
    for blob in [image.config, *image.layers]:
        assert target.blob("imported/web", sha256(blob)) == blob


def test_anonymous_import_needs_anonymous_pull(source: RunningServer, target: Target) -> None:
    image = make_image("anonymous", 1)
    push(source, "public/tool", "2.0", image)
    uri = f"http://{source.host}"

    error = refused(lambda: target.run("public/tool:2.0", registry_uri=uri))
    assert (error.status, error.code) == (403, "ImportSourceUnauthorized")

    cli(source, "update", "--anonymous-pull-enabled", "true")
    try:
        result = target.run("public/tool:2.0", registry_uri=uri)
    finally:
        cli(source, "update", "--anonymous-pull-enabled", "false")
    assert result.targets == ["public/tool:2.0"], "no target: the source's repository and tag"
    assert target.manifest("public/tool", "2.0").content == image.manifest


def test_repository_alone_means_latest(source: RunningServer, target: Target) -> None:
    image = make_image("latest", 1)
    push(source, "plain/repo", "latest", image)
    result = target.run("plain/repo", targets=["copied/repo"], registry_uri=f"http://{source.host}",
                        credentials=source.credentials)
    assert result.targets == ["copied/repo:latest"]
    assert target.manifest("copied/repo", "latest").headers["Docker-Content-Digest"] == image.digest


def test_import_by_digest(source: RunningServer, target: Target) -> None:
    image = make_image("by-digest", 2)
    push(source, "app/api", "v7", image)
    uri = f"http://{source.host}"

    untagged = target.run(f"app/api@{image.digest}", untagged=["pinned/api"], registry_uri=uri,
                          credentials=source.credentials)
    assert untagged.targets == [f"pinned/api@{image.digest}"]
    assert target.manifest("pinned/api", image.digest).content == image.manifest
    assert target.tags("pinned/api") == []

    same_name = target.run(f"app/api@{image.digest}", registry_uri=uri, credentials=source.credentials)
    assert same_name.targets == [f"app/api@{image.digest}"], "by digest with no target: untagged, same name"
    assert target.tags("app/api") == []

    tagged = target.run(f"app/api@{image.digest}", targets=["pinned/api"], registry_uri=uri,
                        credentials=source.credentials)
    assert tagged.targets == ["pinned/api:latest"], "a target without a tag takes the source's, else latest"
    assert (tagged.blobs_copied, tagged.bytes_copied) == (0, 0)


def test_index_with_two_platforms(source: RunningServer, target: Target) -> None:
    images = {"amd64": make_image("multi-amd64", 2, "amd64"), "arm64": make_image("multi-arm64", 2, "arm64")}
    index = push_index(source, "multi/app", "1.0", images)

    result = target.run("multi/app:1.0", targets=["mirror/app:1.0"], registry_uri=f"http://{source.host}",
                        credentials=source.credentials)

    assert result.digest == sha256(index)
    assert result.blobs_copied == 6
    assert result.bytes_copied == sum(blob_sizes(image) for image in images.values())
    pulled = target.manifest("mirror/app", "1.0")
    assert pulled.content == index
    assert pulled.headers["Content-Type"].startswith(OCI_INDEX)
    for image in images.values():
        assert target.manifest("mirror/app", image.digest).content == image.manifest
        for blob in [image.config, *image.layers]:
            assert target.blob("mirror/app", sha256(blob)) == blob
    assert target.tags("mirror/app") == ["1.0"], "children are imported untagged"


def test_blobs_already_stored_are_linked_not_copied(source: RunningServer, target: Target) -> None:
    image = make_image("dedupe", 3)
    push(source, "dedupe/src", "v1", image)
    uri = f"http://{source.host}"

    first = target.run("dedupe/src:v1", targets=["dedupe/one:v1"], registry_uri=uri,
                       credentials=source.credentials)
    second = target.run("dedupe/src:v1", targets=["dedupe/two:v1"], registry_uri=uri,
                        credentials=source.credentials)

    assert (first.blobs_copied, first.bytes_copied) == (4, blob_sizes(image))
    assert (second.blobs_copied, second.bytes_copied) == (0, 0)
    for blob in [image.config, *image.layers]:
        assert target.blob("dedupe/two", sha256(blob)) == blob


def test_no_force_refuses_to_move_a_tag_and_force_moves_it(source: RunningServer, target: Target) -> None:
    old, new = make_image("conflict-old", 1), make_image("conflict-new", 2)
    push(source, "conflict/src", "old", old)
    push(source, "conflict/src", "new", new)
    uri = f"http://{source.host}"
    target.run("conflict/src:old", targets=["conflict/app:v1"], registry_uri=uri,
               credentials=source.credentials)

    again = target.run("conflict/src:old", targets=["conflict/app:v1"], registry_uri=uri,
                       credentials=source.credentials)
    assert again.digest == old.digest, "importing the same manifest again is not a change"

    error = refused(lambda: target.run("conflict/src:new", targets=["conflict/app:v1"], registry_uri=uri,
                                       credentials=source.credentials))
    assert (error.status, error.code) == (409, "Conflict")
    assert "conflict/app:v1 already exists" in error.message
    assert target.manifest("conflict/app", "v1").headers["Docker-Content-Digest"] == old.digest
    assert target.manifest("conflict/app", new.digest).status_code == 404
    with target.server.client() as client:
        assert client.head(f"/v2/conflict/app/blobs/{sha256(new.config)}").status_code == 404, \
            "a refused import copies nothing"

    moved = target.run("conflict/src:new", targets=["conflict/app:v1"], force=True, registry_uri=uri,
                       credentials=source.credentials)
    assert moved.digest == new.digest
    assert target.manifest("conflict/app", "v1").headers["Docker-Content-Digest"] == new.digest


def test_a_write_locked_tag_refuses_even_with_force(source: RunningServer, target: Target) -> None:
    old, new = make_image("locked-old", 1), make_image("locked-new", 1)
    push(source, "locked/src", "old", old)
    push(source, "locked/src", "new", new)
    uri = f"http://{source.host}"
    target.run("locked/src:old", targets=["locked/app:v1"], registry_uri=uri, credentials=source.credentials)
    with target.server.client() as client:
        assert client.patch("/acr/v1/locked/app/_tags/v1", json={"writeEnabled": False}).status_code == 200

    error = refused(lambda: target.run("locked/src:new", targets=["locked/app:v1"], force=True,
                                       registry_uri=uri, credentials=source.credentials))
    assert (error.status, error.code) == (409, "Conflict")
    assert "locked" in error.message
    assert target.manifest("locked/app", "v1").headers["Docker-Content-Digest"] == old.digest


def test_import_from_a_registry_on_this_server(target: Target) -> None:
    image = make_image("local", 2)
    push(target.server, "local/src", "v1", image)

    result = target.run("local/src:v1", targets=["local/copy:v1"], local=True)

    assert result.targets == ["local/copy:v1"]
    assert (result.blobs_copied, result.bytes_copied) == (0, 0), "same store: blobs are linked"
    assert target.manifest("local/copy", "v1").content == image.manifest
    for blob in [image.config, *image.layers]:
        assert target.blob("local/copy", sha256(blob)) == blob
    error = refused(lambda: target.run("local/src:missing", local=True))
    assert (error.status, error.code) == (400, "ImportSourceNotFound")


def test_https_source_verified_with_its_ca(tls_server: RunningServer, target: Target) -> None:
    image = make_image("over-tls", 1)
    with tls_server.client(verify=False) as client:
        push_image(client, "secure/app", "v1", image)
    uri = tls_server.host

    error = refused(lambda: target.run("secure/app:v1", targets=["secure/copy:v1"], registry_uri=uri,
                                       credentials=tls_server.credentials))
    assert (error.status, error.code) == (502, "ImportSourceUnreachable"), "an unknown CA is not trusted"
    assert "certificate" in error.message.lower()

    ca = str(tls_server.data_dir / "tls" / "ca.pem")
    result = target.run("secure/app:v1", targets=["secure/copy:v1"], registry_uri=uri,
                        credentials=tls_server.credentials, verify=ca)
    assert target.manifest("secure/copy", "v1").content == image.manifest
    assert result.digest == image.digest


def test_bad_credentials(source: RunningServer, target: Target) -> None:
    push(source, "secret/app", "v1", make_image("bad-credentials", 1))
    error = refused(lambda: target.run("secret/app:v1", registry_uri=f"http://{source.host}",
                                       credentials=("nobody", "wrong")))
    assert (error.status, error.code) == (403, "ImportSourceUnauthorized")
    assert "refused the credentials" in error.message


def test_unreachable_source(target: Target) -> None:
    error = refused(lambda: target.run("app/web:v1", registry_uri=f"http://127.0.0.1:{free_port()}"))
    assert (error.status, error.code) == (502, "ImportSourceUnreachable")


@pytest.mark.parametrize("missing", ["known/app:v2", "never/pushed:v1", f"known/app@{sha256(b'nothing')}"])
def test_unknown_image(source: RunningServer, target: Target, missing: str) -> None:
    push(source, "known/app", "v1", make_image("unknown-image", 1))
    error = refused(lambda: target.run(missing, registry_uri=f"http://{source.host}",
                                       credentials=source.credentials))
    assert (error.status, error.code) == (400, "ImportSourceNotFound")
    assert missing.split("@")[0].split(":")[0] in error.message


@pytest.mark.parametrize("source_image", [
    "", "App/Web:v1", "app/web:", "app/web:bad tag", "app/web@sha256:abc", "app/web@md5:" + "0" * 32,
    "app/web:v1@sha256:" + "0" * 64, "/app",
])
def test_malformed_source_image(target: Target, source_image: str) -> None:
    error = refused(lambda: target.run(source_image, registry_uri="127.0.0.1:1"))
    assert (error.status, error.code) == (400, "InvalidParameter")
    assert "sourceImage" in error.message


@pytest.mark.parametrize(("targets", "untagged", "field"), [
    (["Upper/case:v1"], [], "targetTags"), (["ok:bad tag"], [], "targetTags"), (["ok:"], [], "targetTags"),
    ([], ["repo:tag"], "untaggedTargetRepositories"), ([], [""], "untaggedTargetRepositories"),
])
def test_malformed_targets(target: Target, targets: list[str], untagged: list[str], field: str) -> None:
    error = refused(lambda: target.run("app/web:v1", targets=targets, untagged=untagged,
                                       registry_uri="127.0.0.1:1"))
    assert (error.status, error.code) == (400, "InvalidParameter")
    assert field in error.message


@pytest.mark.parametrize("uri", ["ftp://example.com", "example.com/path", "https://user:pw@example.com",
                                 "http://"])
def test_malformed_registry_uri(target: Target, uri: str) -> None:
    error = refused(lambda: target.run("app/web:v1", registry_uri=uri))
    assert (error.status, error.code) == (400, "InvalidParameter")


def test_registry_uri_forms() -> None:
    assert base_url("myregistry.azurecr.io") == "https://myregistry.azurecr.io"
    assert base_url("http://127.0.0.1:5000/") == "http://127.0.0.1:5000"
    assert base_url("docker.io") == "https://registry-1.docker.io"
    challenge = 'Bearer realm="https://auth.example/token",service="registry.example",scope="a b"'
    assert parse_challenge(challenge) == (
        "bearer", {"realm": "https://auth.example/token", "service": "registry.example", "scope": "a b"})


# a scripted source: what a cargohold never does (Basic challenges, CDN redirects, lying about content)

class ScriptedRegistry:
    """A registry at https://registry.test that answers Basic challenges and redirects blob reads to
    https://cdn.test, recording what each request carried."""

    USER, PASSWORD = "puller", "s3cret"

    def __init__(self, image: Image, corrupt: bytes | None = None) -> None:
        self.blobs = {sha256(blob): blob for blob in [image.config, *image.layers]}
        self.manifest = image.manifest
        self.corrupt = corrupt
        self.seen: list[tuple[str, str, str | None]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        authorization = request.headers.get("authorization")
        self.seen.append((request.method, str(request.url), authorization))
        if request.url.host == "cdn.test":
            digest = request.url.path.rsplit("/", 1)[-1]
            content = self.corrupt if self.corrupt is not None else self.blobs[digest]
            return httpx.Response(200, content=content)
        if authorization != "Basic " + base64.b64encode(f"{self.USER}:{self.PASSWORD}".encode()).decode():
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="registry.test"'})
        path = request.url.path
        if path == "/v2/vendor/tool/manifests/v1":
            return httpx.Response(200, content=self.manifest, headers={"Content-Type": OCI_MANIFEST})
        if path.startswith("/v2/vendor/tool/blobs/"):
            digest = path.rsplit("/", 1)[-1]
            if digest not in self.blobs:
                return httpx.Response(404)
            return httpx.Response(307, headers={"Location": f"https://cdn.test/blobs/{digest}"})
        return httpx.Response(404)


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> Callable[[ScriptedRegistry], None]:
    def install(registry: ScriptedRegistry) -> None:
        monkeypatch.setattr(importing, "SourceRegistry",
                            functools.partial(SourceRegistry, transport=httpx.MockTransport(registry)))
    return install


def test_basic_challenge_and_redirected_blobs(target: Target,
                                              scripted: Callable[[ScriptedRegistry], None]) -> None:
    image = make_image("scripted", 2)
    registry = ScriptedRegistry(image)
    scripted(registry)

    result = target.run("vendor/tool:v1", targets=["vendor/tool:v1"], registry_uri="registry.test",
                        credentials=(registry.USER, registry.PASSWORD))

    assert (result.blobs_copied, result.bytes_copied) == (3, blob_sizes(image))
    assert target.manifest("vendor/tool", "v1").content == image.manifest
    cdn = [authorization for _, url, authorization in registry.seen if url.startswith("https://cdn.test/")]
    assert len(cdn) == 3 and cdn == [None] * 3, "credentials never follow a redirect to another origin"


def test_blob_not_matching_its_digest_is_refused(target: Target,
                                                  scripted: Callable[[ScriptedRegistry], None]) -> None:
    image = make_image("tampered", 1)
    scripted(ScriptedRegistry(image, corrupt=b"not what the manifest says"))
    uploads = target.server.data_dir / "storage" / "uploads"
    staged_before = set(uploads.iterdir())

    error = refused(lambda: target.run("vendor/tool:v1", targets=["tampered/tool:v1"],
                                       registry_uri="registry.test",
                                       credentials=(ScriptedRegistry.USER, ScriptedRegistry.PASSWORD)))

    assert (error.status, error.code) == (502, "ImportSourceError")
    assert target.manifest("tampered/tool", "v1").status_code == 404
    assert target.ctx.store.stat(Digest.parse(sha256(image.config))) is None
    assert set(uploads.iterdir()) == staged_before, "the staged bytes are discarded"


class DeletedOnceStore(FilesystemBlobStore):
    """Loses each blob once, right after its first commit, as a concurrent registry delete could."""

    def __init__(self, root: Any) -> None:
        super().__init__(root)
        self.lost: set[str] = set()

    def commit(self, upload_id: str, digest: Digest) -> None:
        super().commit(upload_id, digest)
        if str(digest) not in self.lost:
            self.lost.add(str(digest))
            self.delete(digest)


def test_a_blob_deleted_before_it_is_linked_is_copied_again(source: RunningServer, target: Target) -> None:
    image = make_image("deleted-once", 1)
    push(source, "racy/src", "v1", image)
    store = DeletedOnceStore(target.server.data_dir / "storage")
    racy = RegistryContext(engine=target.ctx.engine, store=store, egress=target.ctx.egress)

    result = target.run("racy/src:v1", targets=["racy/app:v1"], registry_uri=f"http://{source.host}",
                        credentials=source.credentials, ctx=racy)

    assert store.lost == {sha256(blob) for blob in [image.config, *image.layers]}
    assert (result.blobs_copied, result.bytes_copied) == (4, 2 * blob_sizes(image))
    for blob in [image.config, *image.layers]:
        assert target.blob("racy/app", sha256(blob)) == blob
