"""A minimal OCI Distribution client: just enough to push blobs, manifests and tags for the benchmark."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import httpx

MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
MANIFEST_ACCEPT = f"{MANIFEST_MEDIA_TYPE},application/vnd.docker.distribution.manifest.v2+json"
OCTET_STREAM = "application/octet-stream"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def file_digest(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


class RegistryError(RuntimeError):
    pass


def expect_status(response: httpx.Response, *codes: int) -> httpx.Response:
    if response.status_code not in codes:
        raise RegistryError(
            f"{response.request.method} {response.request.url} -> HTTP {response.status_code} "
            f"(expected {codes}): {response.text[:500]}"
        )
    return response


@dataclass
class SmallImage:
    config: bytes
    layer: bytes
    manifest: bytes

    @property
    def manifest_digest(self) -> str:
        return sha256_digest(self.manifest)


def make_small_image(layer_size: int = 4096) -> SmallImage:
    layer = os.urandom(layer_size)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [sha256_digest(layer)]},
        },
        separators=(",", ":"),
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": sha256_digest(config), "size": len(config)},
            "layers": [{"mediaType": LAYER_MEDIA_TYPE, "digest": sha256_digest(layer), "size": len(layer)}],
        },
        indent=2,
    ).encode()
    return SmallImage(config=config, layer=layer, manifest=manifest)


class RegistryClient:
    """Talks /v2/ to one registry over a keep-alive httpx connection."""

    def __init__(self, base_url: str, timeout_s: float = 300.0, auth: tuple[str, str] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout_s, auth=auth)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def blob_url(self, repo: str, digest: str) -> str:
        return f"{self.base_url}/v2/{repo}/blobs/{digest}"

    def manifest_url(self, repo: str, reference: str) -> str:
        return f"{self.base_url}/v2/{repo}/manifests/{reference}"

    def tags_url(self, repo: str) -> str:
        return f"{self.base_url}/v2/{repo}/tags/list"

    def absolute_location(self, response: httpx.Response) -> str:
        """The upload Location may be absolute or relative; query params (e.g. _state) are kept."""
        location = response.headers.get("Location")
        if not location:
            raise RegistryError(f"{response.request.method} {response.request.url}: no Location header")
        return str(httpx.URL(self.base_url + "/").join(location))

    def start_upload(self, repo: str) -> str:
        response = expect_status(self.http.post(f"/v2/{repo}/blobs/uploads/"), 202)
        return self.absolute_location(response)

    def finish_url(self, location: str, digest: str) -> str:
        return str(httpx.URL(location).copy_add_param("digest", digest))

    def push_blob_bytes(self, repo: str, data: bytes) -> str:
        """Monolithic POST + PUT of an in-memory blob (used for small setup blobs)."""
        digest = sha256_digest(data)
        location = self.start_upload(repo)
        expect_status(
            self.http.put(
                self.finish_url(location, digest), content=data, headers={"Content-Type": OCTET_STREAM}
            ),
            201,
        )
        return digest

    def push_blob_chunked(self, repo: str, path: Path, digest: str, chunk_size: int) -> None:
        """POST, PATCH every chunk with Content-Range to the latest Location, then PUT ?digest=."""
        location = self.start_upload(repo)
        offset = 0
        with path.open("rb") as handle:
            while chunk := handle.read(chunk_size):
                headers = {
                    "Content-Type": OCTET_STREAM,
                    "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
                }
                response = expect_status(self.http.patch(location, content=chunk, headers=headers), 202)
                location = self.absolute_location(response)
                offset += len(chunk)
        expect_status(self.http.put(self.finish_url(location, digest)), 201)

    def put_manifest(self, repo: str, reference: str, manifest: bytes) -> None:
        expect_status(
            self.http.put(
                f"/v2/{repo}/manifests/{reference}",
                content=manifest,
                headers={"Content-Type": MANIFEST_MEDIA_TYPE},
            ),
            201,
        )

    def push_small_image(self, repo: str, image: SmallImage, tag: str) -> None:
        self.push_blob_bytes(repo, image.config)
        self.push_blob_bytes(repo, image.layer)
        self.put_manifest(repo, tag, image.manifest)

    def check_manifest(self, repo: str, tag: str, image: SmallImage) -> None:
        """GET and HEAD by tag must return the pushed bytes/digest, or the load test measures errors."""
        headers = {"Accept": MANIFEST_ACCEPT}
        got = expect_status(self.http.get(f"/v2/{repo}/manifests/{tag}", headers=headers), 200)
        if got.content != image.manifest:
            raise RegistryError(f"manifest GET {repo}:{tag} returned different bytes")
        head = expect_status(self.http.head(f"/v2/{repo}/manifests/{tag}", headers=headers), 200)
        if head.headers.get("Docker-Content-Digest") not in (None, image.manifest_digest):
            raise RegistryError(f"manifest HEAD {repo}:{tag} digest {head.headers['Docker-Content-Digest']}")

    def check_blob(self, repo: str, digest: str, size: int) -> None:
        """Stream the blob once and verify its digest and size."""
        hasher = hashlib.sha256()
        received = 0
        with self.http.stream("GET", f"/v2/{repo}/blobs/{digest}") as response:
            expect_status(response, 200)
            for chunk in response.iter_bytes(1 << 20):
                hasher.update(chunk)
                received += len(chunk)
        if received != size or "sha256:" + hasher.hexdigest() != digest:
            raise RegistryError(f"blob {digest} came back as {received} bytes with another digest")

    def list_tags(self, repo: str) -> httpx.Response:
        return expect_status(self.http.get(f"/v2/{repo}/tags/list"), 200)
