import json

import pytest

from cargohold.oci import mediatypes
from cargohold.oci.errors import RegistryError
from cargohold.oci.manifest import MAX_MANIFEST_BYTES, parse_manifest

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


def image(**extra: object) -> dict[str, object]:
    return {
        "schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": D1, "size": 10},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": D2, "size": 20}],
        **extra,
    }


def encode(document: object) -> bytes:
    return json.dumps(document).encode()


def test_image_manifest_lists_its_blobs() -> None:
    parsed = parse_manifest(encode(image()), mediatypes.OCI_MANIFEST)
    assert parsed.media_type == mediatypes.OCI_MANIFEST
    assert [d.digest for d in parsed.blob_references()] == [D1, D2]
    assert parsed.artifact_type == "application/vnd.oci.image.config.v1+json"
    assert not parsed.is_index


def test_artifact_type_and_subject_are_read() -> None:
    document = image(artifactType="application/spdx+json",
                     subject={"mediaType": mediatypes.OCI_MANIFEST, "digest": D2, "size": 5})
    parsed = parse_manifest(encode(document), mediatypes.OCI_MANIFEST)
    assert parsed.artifact_type == "application/spdx+json"
    assert parsed.subject is not None and parsed.subject.digest == D2


def test_index_lists_its_children() -> None:
    document = {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": [
        {"mediaType": mediatypes.OCI_MANIFEST, "digest": D1, "size": 3, "platform": {"os": "linux"}}]}
    parsed = parse_manifest(encode(document), mediatypes.OCI_INDEX)
    assert parsed.is_index and [d.digest for d in parsed.manifests] == [D1]
    assert parsed.blob_references() == []


def test_foreign_layers_are_not_required_locally() -> None:
    document = image()
    document["layers"] = [{"mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                           "digest": D2, "size": 20, "urls": ["https://example.com/layer"]}]
    parsed = parse_manifest(encode(document), mediatypes.OCI_MANIFEST)
    assert [d.digest for d in parsed.blob_references()] == [D1]


def test_media_type_comes_from_the_body_when_the_header_is_generic() -> None:
    parsed = parse_manifest(encode(image()), "application/json")
    assert parsed.media_type == mediatypes.OCI_MANIFEST


@pytest.mark.parametrize("body,content_type,reason", [
    (b"not json", mediatypes.OCI_MANIFEST, "not valid JSON"),
    (b"[]", mediatypes.OCI_MANIFEST, "JSON object"),
    (encode(image(schemaVersion=3)), mediatypes.OCI_MANIFEST, "schemaVersion"),
    (encode(image()), mediatypes.DOCKER_MANIFEST, "does not match"),
    (encode({**image(), "config": {"digest": D1, "size": 1}}), mediatypes.OCI_MANIFEST, "config.mediaType"),
    (encode({**image(), "layers": [{"mediaType": "a/b", "digest": "sha256:zz", "size": 1}]}),
     mediatypes.OCI_MANIFEST, "not a valid digest"),
    (encode({**image(), "layers": [{"mediaType": "a/b", "digest": D2, "size": -1}]}),
     mediatypes.OCI_MANIFEST, "non-negative"),
    (encode({**image(), "layers": "nope"}), mediatypes.OCI_MANIFEST, "must be a list"),
    (encode({"schemaVersion": 1, "name": "x"}), None, "schema 1"),
])
def test_refuses_malformed_manifests(body: bytes, content_type: str | None, reason: str) -> None:
    with pytest.raises(RegistryError) as caught:
        parse_manifest(body, content_type)
    error = caught.value
    assert error.status == 400 and error.code == "MANIFEST_INVALID"
    assert reason in json.dumps(error.body()) + error.message


def test_refuses_manifests_over_the_size_limit() -> None:
    with pytest.raises(RegistryError) as caught:
        parse_manifest(b" " * (MAX_MANIFEST_BYTES + 1), mediatypes.OCI_MANIFEST)
    assert caught.value.status == 413
