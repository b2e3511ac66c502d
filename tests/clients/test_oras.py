"""oras (the PyPI library, oras-py), a real OCI artifact client: artifacts with a subject, the referrers API.

oras-py 0.2.x's `push()` uploads the files and the config, and can set `subject` and manifest annotations, but
it has no way to set a manifest's `artifactType`. `ArtifactClient` below adds that one field to the manifest
`push()` builds, just before oras's own `upload_manifest()` PUTs it; every request is still oras's.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("oras.client", reason="the oras library is missing (run scripts/install-test-deps.sh)")

from oras.client import OrasClient
from oras.container import Container
from oras.oci import Subject
from requests import Response

from tests.support.images import OCI_INDEX, OCI_MANIFEST, make_image, push_image, sha256
from tests.support.server import RunningServer

pytestmark = pytest.mark.clients

SPDX = "application/spdx+json"
SIGNATURE = "application/vnd.example.signature+json"
EMPTY = "application/vnd.oci.empty.v1+json"
SBOM = json.dumps({"spdxVersion": "SPDX-2.3", "name": "app", "packages": [{"name": "busybox"}]}, indent=1)


class ArtifactClient(OrasClient):
    """An oras client whose pushes carry `artifactType` when one is set."""

    artifact_type: str | None = None

    def upload_manifest(self, manifest: dict[str, Any], container: Container) -> Response:
        if self.artifact_type is not None:
            manifest = {**manifest, "artifactType": self.artifact_type}
        return super().upload_manifest(manifest, container)


@pytest.fixture
def oras(server: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ArtifactClient]:
    """An oras client logged in as the Owner (its login file in the test's directory), working in tmp_path:
    oras pushes only files under the current directory."""
    monkeypatch.chdir(tmp_path)
    client = ArtifactClient(hostname=server.host, insecure=True)
    client_id, secret = server.credentials
    auth_file = tmp_path / "oras-auth.json"
    auth_file.write_text(json.dumps({"auths": {}}))
    client.login(username=client_id, password=secret, hostname=server.host, config_path=str(auth_file))
    yield client


def push_subject(client: httpx.Client, repository: str, seed: str) -> Subject:
    """Push an image with tests/support/images.py and describe it as a subject."""
    image = make_image(seed, 2)
    assert push_image(client, repository, "v1", image) == image.digest
    return Subject(mediaType=OCI_MANIFEST, digest=image.digest, size=len(image.manifest))


def push_artifact(oras: ArtifactClient, server: RunningServer, target: str, artifact_type: str | None,
                  subject: Subject, files: dict[str, tuple[str, str]],
                  annotations: dict[str, str] | None = None) -> Response:
    """oras push of `files` (name -> (content, media type)) with the OCI empty config."""
    Path("empty.json").write_text("{}")
    for name, (content, _) in files.items():
        Path(name).write_text(content)
    oras.artifact_type = artifact_type
    return oras.push(target=f"{server.host}/{target}",
                     files=[f"{name}:{kind}" for name, (_, kind) in files.items()],
                     manifest_config=f"empty.json:{EMPTY}", subject=subject,  # type: ignore[arg-type]
                     manifest_annotations=annotations, quiet=True)


def test_sbom_pushed_with_artifact_type_and_subject_is_listed_as_a_referrer(
        oras: ArtifactClient, server: RunningServer, client: httpx.Client) -> None:
    subject = push_subject(client, "oras/sbom", "oras-sbom")
    annotations = {"org.opencontainers.image.created": "2024-05-01T00:00:00Z", "org.example.kind": "sbom"}
    response = push_artifact(oras, server, "oras/sbom:sbom", SPDX, subject,
                             {"sbom.spdx.json": (SBOM, SPDX)}, annotations)

    assert response.status_code == 201
    assert response.headers["OCI-Subject"] == subject.digest
    artifact_digest = response.headers["Docker-Content-Digest"]
    stored = client.get(f"/v2/oras/sbom/manifests/{artifact_digest}", headers={"Accept": OCI_MANIFEST})
    assert stored.status_code == 200 and sha256(stored.content) == artifact_digest
    manifest = json.loads(stored.content)
    assert manifest["artifactType"] == SPDX and manifest["subject"]["digest"] == subject.digest
    assert manifest["config"]["mediaType"] == EMPTY

    listed = client.get(f"/v2/oras/sbom/referrers/{subject.digest}")
    assert listed.status_code == 200 and listed.headers["Content-Type"] == OCI_INDEX
    assert "OCI-Filters-Applied" not in listed.headers
    index = listed.json()
    assert index["schemaVersion"] == 2 and index["mediaType"] == OCI_INDEX
    assert index["manifests"] == [{"mediaType": OCI_MANIFEST, "digest": artifact_digest,
                                   "size": len(stored.content), "artifactType": SPDX,
                                   "annotations": annotations}]


def test_referrers_filter_by_artifact_type(oras: ArtifactClient, server: RunningServer,
                                           client: httpx.Client) -> None:
    subject = push_subject(client, "oras/filter", "oras-filter")
    sbom = push_artifact(oras, server, "oras/filter:sbom", SPDX, subject, {"sbom.spdx.json": (SBOM, SPDX)})
    claim = json.dumps({"critical": {"image": subject.digest}})
    signature = push_artifact(oras, server, "oras/filter:signature", SIGNATURE, subject,
                              {"signature.json": (claim, SIGNATURE)})
    url = f"/v2/oras/filter/referrers/{subject.digest}"

    everything = client.get(url).json()["manifests"]
    assert {(m["digest"], m["artifactType"]) for m in everything} == {
        (sbom.headers["Docker-Content-Digest"], SPDX),
        (signature.headers["Docker-Content-Digest"], SIGNATURE),
    }

    sboms = client.get(url, params={"artifactType": SPDX})
    assert sboms.status_code == 200 and sboms.headers["OCI-Filters-Applied"] == "artifactType"
    assert [(m["digest"], m["artifactType"]) for m in sboms.json()["manifests"]] == [
        (sbom.headers["Docker-Content-Digest"], SPDX)]

    nothing = client.get(url, params={"artifactType": "application/vnd.example.none"})
    assert nothing.status_code == 200 and nothing.headers["OCI-Filters-Applied"] == "artifactType"
    assert nothing.headers["Content-Type"] == OCI_INDEX
    assert nothing.json() == {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}


def test_pull_returns_the_artifact_files_unchanged(oras: ArtifactClient, server: RunningServer,
                                                   client: httpx.Client, tmp_path: Path) -> None:
    subject = push_subject(client, "oras/pull", "oras-pull")
    notes = "".join(f"line {i}\n" for i in range(500))
    push_artifact(oras, server, "oras/pull:sbom", SPDX, subject,
                  {"sbom.spdx.json": (SBOM, SPDX), "notes.txt": (notes, "text/plain")})

    pulled = oras.pull(target=f"{server.host}/oras/pull:sbom", outdir=str(tmp_path / "out"))
    assert {Path(path).name: Path(path).read_text() for path in pulled} == {"sbom.spdx.json": SBOM,
                                                                           "notes.txt": notes}
    manifest = oras.get_manifest(f"{server.host}/oras/pull:sbom")
    assert manifest["artifactType"] == SPDX and manifest["subject"]["digest"] == subject.digest


def test_chunked_push_round_trips(oras: ArtifactClient, server: RunningServer, client: httpx.Client,
                                  tmp_path: Path) -> None:
    """oras's chunked upload: POST, several PATCHes with Content-Range, then PUT with the digest."""
    subject = push_subject(client, "oras/chunked", "oras-chunked")
    content = "".join(f"{i:06d} chunked upload\n" for i in range(2000))
    Path("big.txt").write_text(content)
    oras.artifact_type = "text/plain"
    response = oras.push(target=f"{server.host}/oras/chunked:big", files=["big.txt:text/plain"],
                         subject=subject,  # type: ignore[arg-type]
                         do_chunked=True, chunk_size=4096, quiet=True)
    assert response.status_code == 201 and response.headers["OCI-Subject"] == subject.digest

    [path] = oras.pull(target=f"{server.host}/oras/chunked:big", outdir=str(tmp_path / "out"))
    assert Path(path).read_text() == content


def test_without_artifact_type_the_config_media_type_is_reported(oras: ArtifactClient, server: RunningServer,
                                                                 client: httpx.Client) -> None:
    """An artifact manifest without `artifactType` is listed under its config's media type (OCI 1.1)."""
    subject = push_subject(client, "oras/legacy", "oras-legacy")
    Path("sbom.spdx.json").write_text(SBOM)
    Path("config.json").write_text("{}")
    response = oras.push(target=f"{server.host}/oras/legacy:sbom", files=[f"sbom.spdx.json:{SPDX}"],
                         manifest_config=f"config.json:{SPDX}", subject=subject,  # type: ignore[arg-type]
                         quiet=True)
    assert response.status_code == 201 and response.headers["OCI-Subject"] == subject.digest

    [entry] = client.get(f"/v2/oras/legacy/referrers/{subject.digest}").json()["manifests"]
    assert entry["digest"] == response.headers["Docker-Content-Digest"] and entry["artifactType"] == SPDX
    filtered = client.get(f"/v2/oras/legacy/referrers/{subject.digest}", params={"artifactType": SPDX}).json()
    assert [m["digest"] for m in filtered["manifests"]] == [entry["digest"]]


def test_tags_are_listed_and_deleting_the_artifact_drops_the_referrer(
        oras: ArtifactClient, server: RunningServer, client: httpx.Client) -> None:
    """Deleting goes through oras's basic-auth backend: the token backend keeps the one token its first
    challenge got (pull,push) and re-sends it when the DELETE's challenge asks for `delete`."""
    subject = push_subject(client, "oras/tags", "oras-tags")
    push_artifact(oras, server, "oras/tags:sbom", SPDX, subject, {"sbom.spdx.json": (SBOM, SPDX)})
    push_artifact(oras, server, "oras/tags:sbom-copy", SPDX, subject, {"sbom.spdx.json": (SBOM, SPDX)})

    assert oras.get_tags(f"{server.host}/oras/tags") == ["sbom", "sbom-copy", "v1"]
    assert oras.get_tags(f"{server.host}/oras/tags", N=2) == ["sbom", "sbom-copy"]

    deleter = OrasClient(hostname=server.host, insecure=True, auth_backend="basic")
    deleter.auth.set_basic_auth(*server.credentials)
    assert deleter.delete_tag(f"{server.host}/oras/tags", "sbom") is True
    # both tags named the same manifest, and deleting deletes the manifest by digest
    assert oras.get_tags(f"{server.host}/oras/tags") == ["v1"]
    assert client.get(f"/v2/oras/tags/referrers/{subject.digest}").json()["manifests"] == []


def test_refused_without_credentials(server: RunningServer, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("note.txt").write_text("hello")
    anonymous = OrasClient(hostname=server.host, insecure=True)
    with pytest.raises(Exception) as refused:
        anonymous.push(target=f"{server.host}/oras/anon:v1", files=["note.txt"], quiet=True)
    assert "401" in str(refused.value) or "unauthorized" in str(refused.value).lower()
    with server.client() as client:
        assert client.get("/v2/oras/anon/tags/list").status_code == 404
