"""Build and push small but real images over the OCI API, for tests."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass

import httpx

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tarball(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        for name, content in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mtime = 0
            archive.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), mtime=0)


@dataclass
class Image:
    config: bytes
    layers: list[bytes]
    manifest: bytes

    @property
    def digest(self) -> str:
        return sha256(self.manifest)


def make_image(seed: str, layer_count: int = 2, architecture: str = "amd64") -> Image:
    layers = [layer_tarball({f"{seed}/file{i}.txt": f"{seed} layer {i}\n".encode() * (i + 1)})
              for i in range(layer_count)]
    return image_from_layers(layers, architecture)


def image_from_layers(layers: list[bytes], architecture: str = "amd64") -> Image:
    """An image made of the given gzipped tar layers, with a config naming their diff ids."""
    config = json.dumps({
        "architecture": architecture, "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [sha256(gzip.decompress(layer)) for layer in layers]},
        "config": {"Cmd": ["/bin/sh"]},
    }, sort_keys=True).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER, "digest": sha256(layer), "size": len(layer)} for layer in layers],
    }, sort_keys=True).encode()
    return Image(config, layers, manifest)


def push_blob(client: httpx.Client, repository: str, data: bytes) -> str:
    digest = sha256(data)
    response = client.post(f"/v2/{repository}/blobs/uploads/", params={"digest": digest}, content=data)
    if response.status_code == 202:
        location = response.headers["Location"]
        separator = "&" if "?" in location else "?"
        response = client.put(f"{location}{separator}digest={digest}", content=data)
    assert response.status_code == 201, response.text
    return digest


def push_image(client: httpx.Client, repository: str, reference: str, image: Image) -> str:
    for blob in [image.config, *image.layers]:
        push_blob(client, repository, blob)
    response = client.put(f"/v2/{repository}/manifests/{reference}", content=image.manifest,
                          headers={"Content-Type": OCI_MANIFEST})
    assert response.status_code == 201, response.text
    return response.headers["Docker-Content-Digest"]
