"""What a webhook is told about pushes and deletes: one event per change, with ACR's payload, from real clients
(skopeo for images, oras for a Helm chart stored as an OCI artifact) and from the /v2/ and /acr/v1/ APIs."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tests.clients.oci_layout import write_image_layout
from tests.conftest import require_tool
from tests.events.conftest import Arm, Receiver, Webhooks, drain, unique
from tests.support.images import OCI_MANIFEST, layer_tarball, make_image, push_blob, push_image, sha256
from tests.support.server import RunningServer

HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"
HELM_CHART = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"


def test_a_skopeo_push_sends_one_push_event_with_acr_payload(hook_server: RunningServer, arm: Arm,
                                                              webhook: Webhooks, receiver: Receiver,
                                                              tmp_path: Path) -> None:
    skopeo = require_tool("skopeo")
    repository = unique("skopeo/app")
    hook = webhook(receiver.url("/skopeo"), actions=["push"], scope=f"{repository}:*",
                   headers={"Authorization": "Bearer s3cret-value", "X-Team": "platform"})
    image = make_image(repository, 2)
    digest = write_image_layout(tmp_path / "layout", "v1", image)
    client_id, secret = hook_server.credentials
    before = time.time()
    done = subprocess.run([skopeo, "copy", "--dest-tls-verify=false", "--dest-creds", f"{client_id}:{secret}",
                           f"oci:{tmp_path / 'layout'}:v1", f"docker://{hook_server.host}/{repository}:v1"],
                          check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr

    events = drain(arm, receiver, hook, "/skopeo")
    assert len(events) == 1, events
    [event] = events
    assert event["action"] == "push"
    assert event["target"] == {"mediaType": OCI_MANIFEST, "size": len(image.manifest), "digest": digest,
                               "length": len(image.manifest), "repository": repository, "tag": "v1"}
    assert str(uuid.UUID(event["id"])) == event["id"]
    assert event["timestamp"].endswith("Z")
    stamp = datetime.fromisoformat(event["timestamp"]).timestamp()
    assert before - 1 <= stamp <= time.time()
    request = event["request"]
    assert request["host"] == hook_server.host and request["method"] == "PUT"
    assert request["id"] and request["useragent"].startswith("skopeo/"), request

    [delivery] = [d for d in receiver.received("/skopeo") if d.event["action"] == "push"]
    assert delivery.headers["content-type"] == "application/json"
    assert delivery.headers["user-agent"] == "cargohold-webhook/1.0"
    assert delivery.headers["authorization"] == "Bearer s3cret-value"
    assert delivery.headers["x-team"] == "platform"


def test_deletes_by_tag_by_digest_and_of_a_repository(arm: Arm, webhook: Webhooks, receiver: Receiver,
                                                      registry: httpx.Client) -> None:
    repository = unique("deletes/app")
    hook = webhook(receiver.url("/deletes"), actions=["delete"], scope=f"{repository}:*")
    first, second = make_image(f"{repository}-1", 1), make_image(f"{repository}-2", 1)
    push_image(registry, repository, "v1", first)
    push_image(registry, repository, "v2", first)
    push_image(registry, repository, "v3", second)
    push_image(registry, repository, "v4", second)

    assert registry.delete(f"/v2/{repository}/manifests/v2").status_code == 202
    assert registry.get(f"/v2/{repository}/manifests/v1", headers={"Accept": OCI_MANIFEST}).status_code == 200
    assert registry.delete(f"/acr/v1/{repository}/_tags/v1").status_code == 202
    assert registry.delete(f"/v2/{repository}/manifests/{second.digest}").status_code == 202
    assert registry.delete(f"/acr/v1/{repository}").status_code == 202

    events = drain(arm, receiver, hook, "/deletes")
    assert [e["action"] for e in events] == ["delete"] * 4, "pushes are not this webhook's business"
    by_tag, acr_tag, by_digest, whole = (e["target"] for e in events)
    first_target = {"mediaType": OCI_MANIFEST, "size": len(first.manifest), "digest": first.digest,
                    "length": len(first.manifest), "repository": repository}
    assert by_tag == {**first_target, "tag": "v2"}
    assert acr_tag == {**first_target, "tag": "v1"}
    assert by_digest == {"mediaType": OCI_MANIFEST, "size": len(second.manifest), "digest": second.digest,
                         "length": len(second.manifest), "repository": repository}
    assert whole == {"repository": repository}
    assert all(e["request"]["method"] == "DELETE" for e in events)
    assert len({e["id"] for e in events}) == 4


def test_a_change_that_fails_records_no_event(arm: Arm, webhook: Webhooks, receiver: Receiver,
                                              registry: httpx.Client) -> None:
    repository = unique("failing/app")
    hook = webhook(receiver.url("/failing"), scope=f"{repository}*:*")
    image = make_image(repository, 1)
    push_blob(registry, repository, image.config)  # the layer is missing: the manifest must be refused
    refused = registry.put(f"/v2/{repository}/manifests/v1", content=image.manifest,
                           headers={"Content-Type": OCI_MANIFEST})
    assert refused.status_code == 400, refused.text
    assert registry.delete(f"/v2/{repository}/manifests/v1").status_code == 404
    assert registry.delete(f"/acr/v1/{repository}-never").status_code == 404
    push_image(registry, repository, "v1", image)
    assert registry.delete(f"/v2/{repository}/manifests/nosuchtag").status_code == 404
    assert registry.delete(f"/v2/{repository}/manifests/{sha256(b'nothing')}").status_code == 404

    events = drain(arm, receiver, hook, "/failing")
    assert [(e["action"], e["target"].get("tag")) for e in events] == [("push", "v1")]


def test_a_push_by_digest_has_no_tag(arm: Arm, webhook: Webhooks, receiver: Receiver,
                                     registry: httpx.Client) -> None:
    repository = unique("bydigest/app")
    hook = webhook(receiver.url("/bydigest"), actions=["push"], scope=f"{repository}:*")
    image = make_image(repository, 1)
    assert push_image(registry, repository, image.digest, image) == image.digest

    [event] = drain(arm, receiver, hook, "/bydigest")
    assert event["target"] == {"mediaType": OCI_MANIFEST, "size": len(image.manifest), "digest": image.digest,
                               "length": len(image.manifest), "repository": repository}


# Helm charts ------------------------------------------------------------------------------------------------------

@pytest.fixture
def oras(hook_server: RunningServer, work_dir: Path):  # type: ignore[no-untyped-def]
    """oras-py logged in as the Owner; it pushes only files under the current directory (work_dir)."""
    pytest.importorskip("oras.client", reason="the oras library is missing (run scripts/install-test-deps.sh)")
    from oras.client import OrasClient  # type: ignore[import-untyped]

    client = OrasClient(hostname=hook_server.host, insecure=True)
    client_id, secret = hook_server.credentials
    (work_dir / "oras-auth.json").write_text(json.dumps({"auths": {}}))
    client.login(username=client_id, password=secret, hostname=hook_server.host,
                 config_path=str(work_dir / "oras-auth.json"))
    return client


def push_chart(oras, server: RunningServer, repository: str, version: str) -> str:  # type: ignore[no-untyped-def]
    """Push a Helm chart as `helm push` stores it: config Chart.yaml as JSON, one .tgz layer. Returns its digest."""
    name = repository.rsplit("/", 1)[-1]
    chart_yaml = f"apiVersion: v2\nname: {name}\nversion: {version}\n".encode()
    Path(f"{name}-{version}.tgz").write_bytes(layer_tarball({f"{name}/Chart.yaml": chart_yaml}))
    Path("config.json").write_text(json.dumps({"apiVersion": "v2", "name": name, "version": version}))
    response = oras.push(target=f"{server.host}/{repository}:{version}", files=[f"{name}-{version}.tgz:{HELM_CHART}"],
                         manifest_config=f"config.json:{HELM_CONFIG}", quiet=True)
    assert response.status_code == 201, response.text
    return str(response.headers["Docker-Content-Digest"])


def test_a_helm_chart_gives_chart_push_and_chart_delete(hook_server: RunningServer, arm: Arm, webhook: Webhooks,
                                                        receiver: Receiver, registry: httpx.Client,
                                                        oras) -> None:  # type: ignore[no-untyped-def]
    team = unique("helm")
    repository = f"{team}/mychart"
    charts = webhook(receiver.url("/charts"), actions=["chart_push", "chart_delete"], scope=f"{team}/*:*")
    images = webhook(receiver.url("/images"), actions=["push", "delete"], scope=f"{team}/*:*")
    first = push_chart(oras, hook_server, repository, "0.1.0")
    second = push_chart(oras, hook_server, repository, "0.2.0")
    sizes = {digest: len(registry.get(f"/v2/{repository}/manifests/{digest}",
                                      headers={"Accept": OCI_MANIFEST}).content) for digest in (first, second)}
    assert registry.delete(f"/v2/{repository}/manifests/0.1.0").status_code == 202
    assert registry.delete(f"/v2/{repository}/manifests/{second}").status_code == 202

    events = drain(arm, receiver, charts, "/charts")
    assert [e["action"] for e in events] == ["chart_push", "chart_push", "chart_delete", "chart_delete"]
    pushed_first, pushed_second, deleted_tag, deleted_digest = (e["target"] for e in events)

    def target(digest: str, **extra: str) -> dict[str, object]:
        return {"mediaType": OCI_MANIFEST, "size": sizes[digest], "digest": digest, "length": sizes[digest],
                "repository": repository, "name": "mychart", **extra}
    assert pushed_first == target(first, tag="0.1.0", version="0.1.0")
    assert pushed_second == target(second, tag="0.2.0", version="0.2.0")
    assert deleted_tag == target(first, tag="0.1.0", version="0.1.0")
    assert {k: v for k, v in deleted_digest.items() if k != "version"} == target(second)
    assert drain(arm, receiver, images, "/images") == [], "a chart is not an image: no push or delete events"
