"""The retention policy deletes exactly the untagged manifests older than its days, through the job queue,
and spares locked ones, children of indexes that stay and referrers of subjects that stay."""

from __future__ import annotations

import time

import httpx

from tests.events.conftest import Arm
from tests.lifecycle.helpers import manifest_digests, push_index, push_referrer, wait_until
from tests.support.images import make_image, push_image
from tests.support.server import RunningServer


def set_retention(arm: Arm, days: int, status: str = "enabled") -> None:
    response = arm.request("PATCH", "", {"sku": {"name": "Premium"}, "properties": {
        "policies": {"retentionPolicy": {"days": days, "status": status}}}})
    assert response.status_code == 200, response.text


def lock(client: httpx.Client, path: str, **attributes: bool) -> None:
    response = client.patch(f"/acr/v1/{path}", json=attributes)
    assert response.status_code == 200, response.text


def test_retention_deletes_exactly_the_unneeded_untagged_manifests(lifecycle_server: RunningServer,
                                                                   arm: Arm) -> None:
    repo, locked_repo = "retention/app", "retention/locked"
    with lifecycle_server.client() as client:
        tagged = make_image("ret-tagged")
        push_image(client, repo, "keep", tagged)
        moved_away = make_image("ret-moved")
        push_image(client, repo, "moving", moved_away)
        push_image(client, repo, "moving", make_image("ret-moved-2"))
        by_digest = make_image("ret-digest")
        push_image(client, repo, by_digest.digest, by_digest)
        locked = make_image("ret-locked")
        push_image(client, repo, locked.digest, locked)
        lock(client, f"{repo}/_manifests/{locked.digest}", deleteEnabled=False)

        kept_children = [make_image(f"ret-kept-child{i}") for i in range(2)]
        for child in kept_children:
            push_image(client, repo, child.digest, child)
        kept_index = push_index(client, repo, "multiarch", kept_children)
        lost_children = [make_image(f"ret-lost-child{i}") for i in range(2)]
        for child in lost_children:
            push_image(client, repo, child.digest, child)
        lost_index = push_index(client, repo, "doomed-index", lost_children)
        assert client.delete(f"/acr/v1/{repo}/_tags/doomed-index").status_code == 202
        locked_children = [make_image("ret-locked-child")]
        push_image(client, repo, locked_children[0].digest, locked_children[0])
        locked_index = push_index(client, repo, "locked-index", locked_children)
        assert client.delete(f"/acr/v1/{repo}/_tags/locked-index").status_code == 202
        lock(client, f"{repo}/_manifests/{locked_index}", writeEnabled=False)

        kept_signature = push_referrer(client, repo, tagged, "signs a tagged image")
        lost_signature = push_referrer(client, repo, moved_away, "signs an untagged image")

        in_locked_repo = make_image("ret-locked-repo")
        push_image(client, locked_repo, in_locked_repo.digest, in_locked_repo)
        lock(client, locked_repo, deleteEnabled=False)

        before = manifest_digests(client, repo)
        doomed = {moved_away.digest, by_digest.digest, lost_index, lost_signature,
                  *(child.digest for child in lost_children)}
        assert doomed <= before
        set_retention(arm, 0)
        assert wait_until(lambda: not doomed & manifest_digests(client, repo)), manifest_digests(client, repo)
        after = manifest_digests(client, repo)
        assert after == before - doomed
        assert {tagged.digest, locked.digest, kept_index, kept_signature, locked_index,
                locked_children[0].digest, *(c.digest for c in kept_children)} <= after
        assert manifest_digests(client, locked_repo) == {in_locked_repo.digest}
        assert client.get(f"/v2/{repo}/manifests/keep").status_code == 200

        # With days=1, a manifest untagged just now stays.
        set_retention(arm, 1)
        recent = make_image("ret-recent")
        push_image(client, repo, recent.digest, recent)
        time.sleep(2.5)
        assert recent.digest in manifest_digests(client, repo)
        set_retention(arm, 7, "disabled")
