"""oras (the PyPI library), a real OCI artifact client: artifacts with a subject, and the referrers API."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from oras.client import OrasClient
from oras.oci import Subject

from tests.support.images import OCI_INDEX, OCI_MANIFEST, make_image, push_image
from tests.support.server import RunningServer

SPDX = "application/spdx+json"
EMPTY = "application/vnd.oci.empty.v1+json"


@pytest.fixture
def oras(server: RunningServer, tmp_path: Path) -> Iterator[OrasClient]:
    """An oras client logged in through the token flow (its login file kept in the test's directory)."""
    client = OrasClient(hostname=server.host, insecure=True)
    client_id, secret = server.credentials
    auth_file = tmp_path / "oras-auth.json"
    auth_file.write_text(json.dumps({"auths": {}}))
    client.login(username=client_id, password=secret, hostname=server.host, config_path=str(auth_file))
    yield client


@pytest.fixture
def subject(server: RunningServer) -> Subject:
    image = make_image("oras-subject", 2)
    with server.client() as client:
        push_image(client, "oras/app", "v1", image)
    return Subject(mediaType=OCI_MANIFEST, digest=image.digest, size=len(image.manifest))


def test_pushes_an_artifact_with_a_subject_and_finds_it_as_a_referrer(
        oras: OrasClient, server: RunningServer, subject: Subject, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("sbom.spdx.json").write_text(json.dumps({"spdxVersion": "SPDX-2.3", "name": "app"}))
    Path("config.json").write_text("{}")
    response = oras.push(target=f"{server.host}/oras/app:sbom", files=[f"sbom.spdx.json:{SPDX}"],
                         manifest_config=f"config.json:{SPDX}", subject=subject,
                         manifest_annotations={"org.example.kind": "sbom"})
    assert response.status_code == 201
    assert response.headers["OCI-Subject"] == subject.digest
    sbom_digest = response.headers["Docker-Content-Digest"]

    with server.client() as client:
        listed = client.get(f"/v2/oras/app/referrers/{subject.digest}")
        assert listed.status_code == 200 and listed.headers["Content-Type"] == OCI_INDEX
        [entry] = listed.json()["manifests"]
        assert entry["digest"] == sbom_digest
        assert entry["artifactType"] == SPDX, "without artifactType the config's media type is the artifact type"
        assert entry["annotations"]["org.example.kind"] == "sbom"

    pulled = oras.pull(target=f"{server.host}/oras/app:sbom", outdir=str(tmp_path / "out"))
    assert [Path(p).read_text() for p in pulled] == [Path("sbom.spdx.json").read_text()]


def test_an_explicit_artifact_type_is_reported_and_filters(oras: OrasClient, server: RunningServer,
                                                           subject: Subject, tmp_path: Path) -> None:
    """OCI 1.1 artifacts carry `artifactType`; pushed here through oras's own blob and manifest calls."""
    container = oras.get_container(f"{server.host}/oras/app:signature")
    signature = tmp_path / "signature.json"
    signature.write_text(json.dumps({"critical": {"image": subject.digest}}))
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    layer = {"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
             "digest": "sha256:" + hashlib.sha256(signature.read_bytes()).hexdigest(),
             "size": signature.stat().st_size}
    config = {"mediaType": EMPTY, "digest": "sha256:" + hashlib.sha256(b"{}").hexdigest(), "size": 2}
    for path, descriptor in ((signature, layer), (empty, config)):
        assert oras.upload_blob(str(path), container, descriptor).status_code in (200, 201, 202)
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.example.signature",
                "config": config, "layers": [layer],
                "subject": {"mediaType": subject.mediaType, "digest": subject.digest, "size": subject.size}}
    response = oras.upload_manifest(manifest, container)
    assert response.status_code == 201 and response.headers["OCI-Subject"] == subject.digest

    with server.client() as client:
        wanted = client.get(f"/v2/oras/app/referrers/{subject.digest}",
                            params={"artifactType": "application/vnd.example.signature"})
        assert wanted.headers["OCI-Filters-Applied"] == "artifactType"
        assert [m["artifactType"] for m in wanted.json()["manifests"]] == ["application/vnd.example.signature"]
        nothing = client.get(f"/v2/oras/app/referrers/{subject.digest}", params={"artifactType": "text/none"})
        assert nothing.status_code == 200 and nothing.json()["manifests"] == []

    assert "signature" in oras.get_tags(f"{server.host}/oras/app")


def test_refused_without_credentials(server: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("note.txt").write_text("hello")
    anonymous = OrasClient(hostname=server.host, insecure=True)
    with pytest.raises(Exception) as refused:
        anonymous.push(target=f"{server.host}/oras/anon:v1", files=["note.txt"])
    assert "401" in str(refused.value) or "unauthorized" in str(refused.value).lower()
