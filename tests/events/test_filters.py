"""Which webhooks are owed an event: ACR's scope filter (`repo:tag` with `*`, `repo` alone meaning `repo:latest`),
the actions a webhook lists, and its status (a disabled webhook is owed nothing, also after it is enabled)."""

from __future__ import annotations

import httpx

from tests.events.conftest import Arm, Receiver, Webhooks, drain, unique
from tests.support.images import OCI_MANIFEST, make_image, push_image


def test_scopes_actions_and_status_choose_the_webhooks(arm: Arm, webhook: Webhooks, receiver: Receiver,
                                                       registry: httpx.Client) -> None:
    app = unique("scope/app")
    other = unique("scope/other")
    hooks = {
        "any-tag": webhook(receiver.url("/any-tag"), actions=["push", "delete"], scope=f"{app}:*"),
        "v1": webhook(receiver.url("/v1"), actions=["push", "delete"], scope=f"{app}:v1"),
        "latest": webhook(receiver.url("/latest"), actions=["push", "delete"], scope=app),
        "v-prefix": webhook(receiver.url("/v-prefix"), actions=["push", "delete"], scope=f"{app}:v*"),
        "repo-wildcard": webhook(receiver.url("/repo-wildcard"), actions=["push"], scope="scope/app*:latest"),
        "other": webhook(receiver.url("/other"), actions=["push", "delete"], scope=f"{other}:*"),
        "deletes-only": webhook(receiver.url("/deletes-only"), actions=["delete"], scope=f"{app}:*"),
        "disabled": webhook(receiver.url("/disabled"), actions=["push", "delete"], scope=f"{app}:*",
                            status="disabled"),
    }
    image = make_image(app, 1)
    for tag in ("v1", "v2", "latest", "dev"):
        push_image(registry, app, tag, image)
    assert registry.delete(f"/v2/{app}/manifests/v2").status_code == 202

    def seen(name: str) -> list[tuple[str, str | None]]:
        return [(e["action"], e["target"].get("tag")) for e in drain(arm, receiver, hooks[name], f"/{name}")]

    assert seen("any-tag") == [("push", "v1"), ("push", "v2"), ("push", "latest"), ("push", "dev"),
                               ("delete", "v2")]
    assert seen("v1") == [("push", "v1")]
    assert seen("latest") == [("push", "latest")], "a scope without a tag means the tag latest"
    assert seen("v-prefix") == [("push", "v1"), ("push", "v2"), ("delete", "v2")]
    assert seen("repo-wildcard") == [("push", "latest")]
    assert seen("other") == []
    assert seen("deletes-only") == [("delete", "v2")]
    assert seen("disabled") == [], "a disabled webhook gets pings only"

    # Enabling it owes it the changes from then on, not the ones it missed.
    arm.patch_webhook(hooks["disabled"], status="enabled")
    push_image(registry, app, "v3", image)
    assert seen("disabled") == [("push", "v3")]
    # Narrowing the scope by PATCH applies to the next change.
    arm.patch_webhook(hooks["any-tag"], scope=f"{app}:v4")
    push_image(registry, app, "v5", image)
    push_image(registry, app, "v4", image)
    assert seen("any-tag")[-1:] == [("push", "v4")]
    assert ("push", "v5") not in seen("any-tag")


def test_events_without_a_tag_match_on_the_repository(arm: Arm, webhook: Webhooks, receiver: Receiver,
                                                      registry: httpx.Client) -> None:
    """A delete by digest and a repository delete carry no tag: the repository part of the scope decides."""
    app = unique("untagged/app")
    hooks = {
        "tagged": webhook(receiver.url("/tagged"), actions=["delete"], scope=f"{app}:v1"),
        "elsewhere": webhook(receiver.url("/elsewhere"), actions=["delete"], scope=f"{app}x:*"),
    }
    image = make_image(app, 1)
    push_image(registry, app, "v1", image)
    assert registry.delete(f"/v2/{app}/manifests/{image.digest}").status_code == 202
    assert registry.delete(f"/acr/v1/{app}").status_code == 202

    tagged = drain(arm, receiver, hooks["tagged"], "/tagged")
    assert [e["target"] for e in tagged] == [
        {"mediaType": OCI_MANIFEST, "size": len(image.manifest), "digest": image.digest,
         "length": len(image.manifest), "repository": app},
        {"repository": app}]
    assert drain(arm, receiver, hooks["elsewhere"], "/elsewhere") == []
