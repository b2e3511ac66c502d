"""Write OCI image layouts on disk: the source and destination of skopeo copies in tests."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.images import OCI_INDEX, OCI_MANIFEST, Image, sha256


def blob_path(layout: Path, digest: str) -> Path:
    return layout / "blobs" / "sha256" / digest.removeprefix("sha256:")


def write_blob(layout: Path, data: bytes) -> str:
    digest = sha256(data)
    path = blob_path(layout, digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return digest


def write_image_layout(layout: Path, tag: str, image: Image) -> str:
    """An OCI layout holding one image under `tag`; returns the manifest digest."""
    layout.mkdir(parents=True, exist_ok=True)
    for blob in [image.config, *image.layers]:
        write_blob(layout, blob)
    digest = write_blob(layout, image.manifest)
    _write_index(layout, [{"mediaType": OCI_MANIFEST, "digest": digest, "size": len(image.manifest),
                           "annotations": {"org.opencontainers.image.ref.name": tag}}])
    return digest


def write_index_layout(layout: Path, tag: str, children: dict[str, Image]) -> tuple[str, bytes]:
    """An OCI layout holding a multi-platform index (architecture -> image); returns its digest and bytes."""
    layout.mkdir(parents=True, exist_ok=True)
    entries = []
    for architecture, image in children.items():
        for blob in [image.config, *image.layers]:
            write_blob(layout, blob)
        entries.append({"mediaType": OCI_MANIFEST, "digest": write_blob(layout, image.manifest),
                        "size": len(image.manifest),
                        "platform": {"architecture": architecture, "os": "linux"}})
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries},
                       sort_keys=True).encode()
    digest = write_blob(layout, index)
    _write_index(layout, [{"mediaType": OCI_INDEX, "digest": digest, "size": len(index),
                           "annotations": {"org.opencontainers.image.ref.name": tag}}])
    return digest, index


def read_layout_manifest(layout: Path) -> tuple[str, bytes]:
    """The digest and bytes of the single manifest an OCI layout's index points to."""
    [entry] = json.loads((layout / "index.json").read_text())["manifests"]
    digest = entry["digest"]
    return digest, blob_path(layout, digest).read_bytes()


def _write_index(layout: Path, manifests: list[dict[str, object]]) -> None:
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                                                   "manifests": manifests}))
