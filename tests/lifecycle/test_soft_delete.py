"""Soft delete: a deleted image goes to the recycle bin, survives garbage collection there, restores with its
tags and pulls byte-identical; a reused tag blocks the restore unless forced; when its time is up the bin
lets it go and garbage collection reclaims its bytes."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from sqlalchemy import text

from cargohold.db.engine import make_engine
from tests.events.conftest import Arm
from tests.lifecycle.helpers import wait_until
from tests.lifecycle.test_gc import pulls_whole
from tests.support.images import OCI_MANIFEST, make_image, push_image, sha256
from tests.support.server import RunningServer


def cli(server: RunningServer, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    client_id, secret = server.credentials
    done = subprocess.run([sys.executable, "-m", "cargohold", *args, "-s", server.host, "-u", client_id,
                           "-p", secret, "-o", "json"], check=False, capture_output=True, text=True, timeout=120)
    assert (done.returncode == 0) == ok, done.stderr + done.stdout
    return done


def deleted(server: RunningServer, repository: str) -> list[dict[str, Any]]:
    return json.loads(cli(server, "manifest", "list-deleted", "-r", repository).stdout)


def gc_now(server: RunningServer) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "cargohold", "gc", "run", "--data-dir", str(server.data_dir),
                           "--grace", "0s", "-o", "json"], check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_soft_deleted_image_restores_and_expires(lifecycle_server: RunningServer, arm: Arm) -> None:
    response = arm.request("PATCH", "", {"properties": {"policies": {
        "softDeletePolicy": {"retentionDays": 1, "status": "enabled"}}}})
    assert response.status_code == 200, response.text
    repo, image = "softdelete/app", make_image("softdelete", 2)
    with lifecycle_server.client() as client:
        push_image(client, repo, "v1", image)
        assert client.put(f"/v2/{repo}/manifests/stable", content=image.manifest,
                          headers={"Content-Type": OCI_MANIFEST}).status_code == 201
        assert client.delete(f"/v2/{repo}/manifests/{image.digest}").status_code == 202
        assert client.get(f"/v2/{repo}/manifests/v1").status_code == 404

        [entry] = deleted(lifecycle_server, repo)
        assert entry["digest"] == image.digest and entry["tags"] == ["stable", "v1"]
        repositories = json.loads(cli(lifecycle_server, "repository", "list-deleted").stdout)
        listed = next(r for r in repositories if r["name"] == repo)
        assert listed["deletedManifests"] == 1 and listed["repositoryExists"] is True

        gc_now(lifecycle_server)
        restored = json.loads(cli(lifecycle_server, "manifest", "restore", "--name", f"{repo}@{image.digest}").stdout)
        assert restored["tags"] == ["stable", "v1"]
        assert pulls_whole(client, repo, image, "v1") and pulls_whole(client, repo, image, "stable")
        assert deleted(lifecycle_server, repo) == []

        assert client.delete(f"/v2/{repo}/manifests/{image.digest}").status_code == 202
        other = make_image("softdelete-other", 1)
        push_image(client, repo, "v1", other)
        refused = cli(lifecycle_server, "manifest", "restore", "--name", f"{repo}@{image.digest}", ok=False)
        assert "409" in refused.stderr and "v1" in refused.stderr
        cli(lifecycle_server, "manifest", "restore", "--name", f"{repo}@{image.digest}", "--force")
        assert client.get(f"/v2/{repo}/manifests/v1").headers["Docker-Content-Digest"] == image.digest
        assert pulls_whole(client, repo, image, "stable")

        assert client.delete(f"/v2/{repo}/manifests/{image.digest}").status_code == 202
        engine = make_engine(lifecycle_server.database_url)
        with engine.begin() as conn:
            conn.execute(text("UPDATE deleted_manifests SET purge_after = deleted_at WHERE repository = :r"),
                         {"r": repo})
        engine.dispose()
        assert wait_until(lambda: deleted(lifecycle_server, repo) == [], timeout=30)
        gc_now(lifecycle_server)
        for layer in image.layers:
            assert client.head(f"/v2/{repo}/blobs/{sha256(layer)}").status_code == 404
        assert pulls_whole(client, repo, other, other.digest)
