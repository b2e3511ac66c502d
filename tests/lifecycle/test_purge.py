"""`cargohold purge` against a repository of 210 tags: for each filter, the real run deletes exactly what its
dry run listed, and what that is follows the filter's meaning."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.lifecycle.helpers import manifest_digests, push_index, push_referrer, tag_names
from tests.support.images import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, Image, layer_tarball, push_blob, sha256
from tests.support.server import RunningServer

pytestmark = pytest.mark.backend_independent
"""Purge plans on the client from the /acr/v1 listings and deletes through them: what it adds does not depend
on the database or the store."""

TAGS_PER_MANIFEST = 5
LAYER = layer_tarball({"shared.txt": b"shared by every image of the purge tests\n"})
APP = "purge/app"
BATCHES = {"k": 40, "p": 40, "l": 20, "r": 50}
"""Tags of purge/app by prefix (one prefix per test), besides a0..a19 (old) and a20..a39 (pushed last)."""
def small_image(seed: str) -> Image:
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Labels": {"seed": seed}},
                         "rootfs": {"type": "layers", "diff_ids": []}}, sort_keys=True).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
                           "layers": [{"mediaType": OCI_LAYER, "digest": sha256(LAYER), "size": len(LAYER)}]},
                          sort_keys=True).encode()
    return Image(config, [LAYER], manifest)


def put(client: httpx.Client, repository: str, reference: str, image: Image) -> None:
    response = client.put(f"/v2/{repository}/manifests/{reference}", content=image.manifest,
                          headers={"Content-Type": OCI_MANIFEST})
    assert response.status_code == 201, response.text


def push_tags(client: httpx.Client, pool: ThreadPoolExecutor, repository: str, prefix: str,
              numbers: range) -> list[Image]:
    """Tags `<prefix><n>`, five to a manifest, every manifest distinct."""
    images = [small_image(f"{repository}-{prefix}{n}") for n in numbers[::TAGS_PER_MANIFEST]]
    push_blob(client, repository, LAYER)
    list(pool.map(lambda image: push_blob(client, repository, image.config), images))
    list(pool.map(lambda n: put(client, repository, f"{prefix}{n}", images[(n - numbers.start) % len(images)]),
                  numbers))
    return images


@dataclass
class Fixture:
    server: RunningServer
    old_done: float
    new_start: float
    p_done: float
    extras: dict[str, str]


@pytest.fixture(scope="module")
def purge_repos(lifecycle_server: RunningServer) -> Fixture:
    extras: dict[str, str] = {}
    with lifecycle_server.client() as client, ThreadPoolExecutor(8) as pool:
        push_tags(client, pool, APP, "a", range(20))
        old_done = time.time()
        for prefix, count in BATCHES.items():
            push_tags(client, pool, APP, prefix, range(count))
        p_done = time.time()
        assert client.patch(f"/acr/v1/{APP}/_tags/l0", json={"deleteEnabled": False}).status_code == 200

        repo = "purge/untagged"
        doomed_tagged = push_tags(client, pool, repo, "t", range(20))
        stay = small_image("stay")
        push_blob(client, repo, stay.config)
        put(client, repo, "stay", stay)
        for i in range(3):
            image = small_image(f"untagged-{i}")
            push_blob(client, repo, image.config)
            put(client, repo, image.digest, image)
        children = [small_image(f"child-{i}") for i in range(4)]
        for child in children:
            push_blob(client, repo, child.config)
            put(client, repo, child.digest, child)
        extras["kept_index"] = push_index(client, repo, "keep-index", children[:2])
        extras["lost_index"] = push_index(client, repo, "gone-index", children[2:])
        assert client.delete(f"/acr/v1/{repo}/_tags/gone-index").status_code == 202
        extras.update({f"child{i}": child.digest for i, child in enumerate(children)})
        extras["kept_signature"] = push_referrer(client, repo, stay, "kept")
        extras["lost_signature"] = push_referrer(client, repo, doomed_tagged[0], "lost")

        time.sleep(max(0.0, old_done + 12 - time.time()))
        new_start = time.time()
        push_tags(client, pool, APP, "a", range(20, 40))
    return Fixture(lifecycle_server, old_done, new_start, p_done, extras)


def purge(server: RunningServer, *args: str) -> dict[str, Any]:
    client_id, secret = server.credentials
    done = subprocess.run([sys.executable, "-m", "cargohold", "purge", "--server", server.host, "-u", client_id,
                           "-p", secret, "-o", "json", *args], check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr + done.stdout
    return json.loads(done.stdout)


def state(client: httpx.Client, repository: str) -> tuple[set[str], set[str]]:
    return ({f"{repository}:{t}" for t in tag_names(client, repository)},
            {f"{repository}@{d}" for d in manifest_digests(client, repository)})


def dry_then_real(server: RunningServer, repository: str, *args: str) -> dict[str, Any]:
    """Run the dry run, then the real purge; they must agree, and exactly what they name must be gone."""
    with server.client() as client:
        tags_before, manifests_before = state(client, repository)
        planned = purge(server, *args, "--dry-run")
        assert state(client, repository) == (tags_before, manifests_before)
        done = purge(server, *args, "--concurrency", "8")
        for key in ("tags", "manifests", "skippedLocked"):
            assert done[key] == planned[key], (key, set(done[key]) ^ set(planned[key]))
        tags_after, manifests_after = state(client, repository)
    assert tags_after == tags_before - set(done["tags"])
    assert manifests_after == manifests_before - set(done["manifests"])
    return done


def tag_set(repository: str, prefix: str, numbers: range) -> set[str]:
    return {f"{repository}:{prefix}{i}" for i in numbers}


def test_purge_by_age(purge_repos: Fixture) -> None:
    midpoint = (purge_repos.old_done + purge_repos.new_start) / 2
    done = dry_then_real(purge_repos.server, APP, "--filter", f"{APP}:a.*", "--ago", f"{int(time.time() - midpoint)}s")
    assert set(done["tags"]) == tag_set(APP, "a", range(20))
    assert done["manifests"] == []


def test_purge_keeps_the_newest_tags_whatever_their_age(purge_repos: Fixture) -> None:
    with purge_repos.server.client() as client:
        listed = client.get(f"/acr/v1/{APP}/_tags", params={"n": "1000", "orderby": "timedesc"}).json()["tags"]
    newest = [t["name"] for t in listed if t["name"].startswith("k")][:10]
    done = dry_then_real(purge_repos.server, APP, "--filter", f"{APP}:k.*", "--keep", "10")
    assert len(done["tags"]) == BATCHES["k"] - 10
    with purge_repos.server.client() as client:
        assert {t for t in tag_names(client, APP) if t.startswith("k")} == set(newest)


def test_purge_untagged_spares_what_kept_manifests_need(purge_repos: Fixture) -> None:
    repo, extras = "purge/untagged", purge_repos.extras
    done = dry_then_real(purge_repos.server, repo, "--filter", f"{repo}:t.*", "--untagged")
    assert set(done["tags"]) == tag_set(repo, "t", range(20))
    gone = set(done["manifests"])
    for spared in ("kept_index", "child0", "child1", "kept_signature"):
        assert f"{repo}@{extras[spared]}" not in gone, spared
    for lost in ("lost_index", "child2", "child3", "lost_signature"):
        assert f"{repo}@{extras[lost]}" in gone, lost
    assert len(gone) == 20 // TAGS_PER_MANIFEST + 3 + 4


def test_purge_skips_locked_tags_unless_asked(purge_repos: Fixture) -> None:
    skipped = dry_then_real(purge_repos.server, APP, "--filter", f"{APP}:l0")
    assert skipped["tags"] == [] and skipped["skippedLocked"] == [f"{APP}:l0"]
    included = dry_then_real(purge_repos.server, APP, "--filter", f"{APP}:l[0-9]", "--include-locked")
    assert set(included["tags"]) == tag_set(APP, "l", range(10))


def test_purge_by_repository_and_tag_pattern(purge_repos: Fixture) -> None:
    done = dry_then_real(purge_repos.server, APP, "--filter", "purge/a.p:r1[0-9]", "--filter", "nothing/.*:.*")
    assert set(done["tags"]) == tag_set(APP, "r", range(10, 20))


def test_purge_by_last_pull(purge_repos: Fixture) -> None:
    """Runs last, so that the p* tags were pushed well before the window it asks about."""
    with purge_repos.server.client() as client:
        pulled = client.get(f"/v2/{APP}/manifests/p0")
        assert pulled.status_code == 200
        time.sleep(1)
        listed = client.get(f"/acr/v1/{APP}/_manifests/{pulled.headers['Docker-Content-Digest']}").json()
        assert "lastPullTime" in listed["manifest"]
    pulled_tags = {f"{APP}:p{n}" for n in range(BATCHES["p"]) if n % (BATCHES["p"] // TAGS_PER_MANIFEST) == 0}
    window = int((time.time() - purge_repos.p_done) / 2)
    assert window >= 5
    done = dry_then_real(purge_repos.server, APP, "--filter", f"{APP}:p.*", "--not-pulled-since", f"{window}s")
    assert set(done["tags"]) == tag_set(APP, "p", range(BATCHES["p"])) - pulled_tags
