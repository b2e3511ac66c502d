"""Building blocks for the lifecycle tests: indexes, referrers, and reading what a repository holds."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import httpx

from tests.support.images import OCI_INDEX, OCI_MANIFEST, Image, push_blob, sha256

EMPTY = b"{}"
EMPTY_TYPE = "application/vnd.oci.empty.v1+json"


def push_index(client: httpx.Client, repository: str, reference: str, children: list[Image]) -> str:
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": child.digest, "size": len(child.manifest),
         "platform": {"architecture": f"arch{i}", "os": "linux"}} for i, child in enumerate(children)]}).encode()
    response = client.put(f"/v2/{repository}/manifests/{reference}", content=body,
                          headers={"Content-Type": OCI_INDEX})
    assert response.status_code == 201, response.text
    return sha256(body)


def push_referrer(client: httpx.Client, repository: str, subject: Image, note: str) -> str:
    push_blob(client, repository, EMPTY)
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.example.sig",
                       "config": {"mediaType": EMPTY_TYPE, "digest": sha256(EMPTY), "size": 2},
                       "layers": [{"mediaType": EMPTY_TYPE, "digest": sha256(EMPTY), "size": 2}],
                       "annotations": {"note": note},
                       "subject": {"mediaType": OCI_MANIFEST, "digest": subject.digest,
                                   "size": len(subject.manifest)}}).encode()
    digest = sha256(body)
    response = client.put(f"/v2/{repository}/manifests/{digest}", content=body, headers={"Content-Type": OCI_MANIFEST})
    assert response.status_code == 201, response.text
    return digest


def manifest_digests(client: httpx.Client, repository: str) -> set[str]:
    found: set[str] = set()
    path: str | None = f"/acr/v1/{repository}/_manifests"
    params: dict[str, str] | None = {"n": "1000"}
    while path:
        response = client.get(path, params=params)
        if response.status_code == 404:
            return set()
        assert response.status_code == 200, response.text
        found |= {m["digest"] for m in response.json()["manifests"]}
        link = response.headers.get("link")
        path, params = (link[link.index("<") + 1:link.index(">")] if link else None), None
    return found


def tag_names(client: httpx.Client, repository: str) -> set[str]:
    response = client.get(f"/v2/{repository}/tags/list", params={"n": "10000"})
    if response.status_code == 404:
        return set()
    assert response.status_code == 200, response.text
    return set(response.json()["tags"] or [])


def wait_until(condition: Callable[[], bool], timeout: float = 20.0, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()
