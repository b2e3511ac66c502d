"""Geo-replication with three regions on this machine: two filesystem stores and Azure Blob (Azurite), a node
per region sharing one metadata database. A push in one region reaches the others by queued copies; a region
serves an image only once it holds all of it; regional webhooks fire when the content is in their region; a
region whose store is down catches up; deletes and a deleted replication reach the stores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from cargohold.blobs.factory import store_from_url
from cargohold.blobs.store import BlobStore
from cargohold.oci.digest import Digest
from cargohold.cli.arm_client import ArmClient, connect
from cargohold.cli.endpoint import resolve_endpoint
from tests.clients.oci_layout import blob_path, write_image_layout
from tests.conftest import require_tool
from tests.scaleout.test_three_nodes import azurite  # noqa: F401 - the fixture
from tests.support.images import Image, image_from_layers, layer_tarball, push_image
from tests.support.receiver import Receiver
from tests.support.server import RunningServer, suite_database

HOME, EAST, NORTH = "westeurope", "eastus", "northeurope"
REGISTRY = "cargohold"


@dataclass
class Regions:
    data_dir: Path
    nodes: dict[str, RunningServer]
    stores: dict[str, BlobStore]
    store_urls: dict[str, str]
    receivers: dict[str, Receiver]
    database: str
    through: RunningServer
    """A second node of the east, started with --read-through."""
    _arm: ArmClient | None = None

    def cli(self, *args: str, check: bool = True) -> Any:
        done = subprocess.run([sys.executable, "-m", "cargohold", *args, "--data-dir", str(self.data_dir),
                               "-o", "json"], capture_output=True, text=True, timeout=120, check=False)
        if check:
            assert done.returncode == 0, f"{' '.join(args)}: {done.stderr}"
            return json.loads(done.stdout) if done.stdout.strip() else None
        return done

    @property
    def arm(self) -> ArmClient:
        """The management API in this process (a `cargohold` subprocess costs seconds on a busy machine)."""
        if self._arm is None:
            self._arm = connect(resolve_endpoint(self.data_dir))
        return self._arm

    def registry_path(self, name: str = REGISTRY) -> str:
        return f"{self.arm.group_path('default')}/registries/{name}"

    def client(self, region: str, **kwargs: Any) -> httpx.Client:
        return self.nodes[region].client(**kwargs)


@pytest.fixture(scope="module")
def regions(tmp_path_factory: pytest.TempPathFactory, azurite: str) -> Iterator[Regions]:  # noqa: F811
    base = tmp_path_factory.mktemp("georep")
    data_dir = base / "data"
    data_dir.mkdir()
    env = {"AZURE_STORAGE_CONNECTION_STRING": azurite, "CARGOHOLD_JOBS_RETRY_BASE_SECONDS": "0.2",
           "CARGOHOLD_JOBS_RETRY_CAP_SECONDS": "1", "CARGOHOLD_REPLICATION_RELEASE_GRACE_SECONDS": "0"}
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    urls = {HOME: (base / "store-west").as_uri(), EAST: (base / "store-east").as_uri(),
            NORTH: f"azure://cargohold-georep/{uuid.uuid4().hex[:12]}"}
    database = suite_database()
    nodes = {region: RunningServer(data_dir, db_url=database, storage_url=url, extra_args=["--region", region])
             for region, url in urls.items()}
    through = RunningServer(data_dir, db_url=database, storage_url=urls[EAST], scheme="https",
                            extra_args=["--region", EAST, "--read-through", "--no-worker", "--tls", "self-signed"])
    receivers = {region: Receiver().start() for region in urls}
    try:
        nodes[HOME].start(timeout=60)
        with ThreadPoolExecutor(3) as pool:
            list(pool.map(lambda node: node.start(timeout=90, verify=False), [nodes[EAST], through, nodes[NORTH]]))
        found = Regions(data_dir, nodes, {r: store_from_url(u, base) for r, u in urls.items()}, urls, receivers,
                        database or f"sqlite:///{data_dir / 'metadata.db'}", through)
        for region in (EAST, NORTH):
            found.arm.put(f"{found.registry_path()}/replications/{region}", {"location": region})
        for region, receiver in receivers.items():
            found.arm.put(f"{found.registry_path()}/webhooks/hook{region}", {"location": region, "properties": {
                "serviceUri": receiver.url(f"/{region}"), "actions": ["push"], "status": "enabled"}})
        yield found
    finally:
        for node in [*nodes.values(), through]:
            node.stop()
        for receiver in receivers.values():
            receiver.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([require_tool("skopeo"), *args], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    return done


def _push(node: RunningServer, layout: Path, target: str) -> None:
    _skopeo("copy", "--dest-tls-verify=false", "--dest-creds", ":".join(node.credentials), f"oci:{layout}:v1",
            f"docker://{node.host}/{target}")


def _pull(node: RunningServer, source: str, layout: Path) -> None:
    _skopeo("copy", "--src-tls-verify=false", "--src-creds", ":".join(node.credentials),
            f"docker://{node.host}/{source}", f"oci:{layout}:v1")


def _digests(image: Image) -> list[str]:
    from tests.support.images import sha256

    return [sha256(blob) for blob in [image.config, *image.layers]]


def _holds(store: BlobStore, digests: list[str]) -> bool:
    try:
        return all(store.stat(Digest.parse(d)) is not None for d in digests)
    except OSError:
        return False


def _until(condition: Any, timeout: float = 30, message: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {message}"
        time.sleep(0.1)


def _statuses(regions: Regions) -> dict[str, dict[str, Any]]:
    return {row["location"]: row["properties"]["status"]
            for row in regions.arm.list(f"{regions.registry_path()}/replications")}


def _take_down(store_url: str) -> Path:
    root = Path(store_url.removeprefix("file://"))
    root.rename(root.with_name(root.name + ".down"))
    root.write_text("this region's store is down")
    return root


def _bring_back(root: Path) -> None:
    root.unlink()
    root.with_name(root.name + ".down").rename(root)


def test_push_reaches_every_region_and_each_serves_only_complete_images(regions: Regions, tmp_path: Path) -> None:
    shared_layer = layer_tarball({"shared.txt": os.urandom(300_000)})
    image = image_from_layers([shared_layer, layer_tarball({"app.bin": os.urandom(500_000)})])
    digests = _digests(image)
    layout = tmp_path / "src"
    manifest_digest = write_image_layout(layout, "v1", image)
    for region, receiver in regions.receivers.items():
        receiver.inspect = lambda _body, store=regions.stores[region]: _holds(store, digests)

    east_root = _take_down(regions.store_urls[EAST])
    try:
        _push(regions.nodes[HOME], layout, "app/web:v1")
        # The push region's webhook fires at once; the northern one when its Azure store holds the image.
        home_hook = regions.receivers[HOME].wait_for(1)[0]
        assert home_hook.event["target"]["digest"] == manifest_digest and home_hook.note is True
        waited = regions.cli("replication", "wait", "-r", REGISTRY, "--image", "app/web:v1", "--region", NORTH,
                             "--timeout", "60")
        assert waited["complete"] and [r["region"] for r in waited["regions"]] == [NORTH]
        north_hook = regions.receivers[NORTH].wait_for(1)[0]
        assert north_hook.note is True, "the northern webhook fired before its store held the image"

        # The east's store is down: it does not serve the image, its webhook is silent, its status says why.
        with regions.client(NORTH) as north:
            assert north.get("/v2/app/web/manifests/v1").status_code == 200
        with regions.client(EAST) as east:
            missing = east.get("/v2/app/web/manifests/v1")
            assert missing.status_code == 404 and missing.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
            report = east.get("/acr/v1/app/web/_manifests/v1/_replication").json()
        assert {r["region"]: r["complete"] for r in report["regions"]} == {HOME: True, EAST: False, NORTH: True}
        assert regions.receivers[EAST].received() == []
        # A node of the east told to --read-through serves the image from the other regions meanwhile.
        _pull(regions.through, "app/web:v1", tmp_path / "read-through")
        for digest in digests:
            assert blob_path(tmp_path / "read-through", digest).read_bytes() == blob_path(layout, digest).read_bytes()
        _until(lambda: _statuses(regions)[EAST]["displayStatus"] == "Unavailable",
               message="the east to be Unavailable")
        status = {row["location"]: row["properties"]["status"]
                  for row in regions.cli("replication", "status", "-r", REGISTRY)}
        assert status[EAST]["displayStatus"] == "Unavailable" and "failing" in status[EAST]["message"]
        assert status[NORTH]["displayStatus"] == "Ready" and HOME not in status
        # Microsoft's management SDK reads the same statuses (through the east's second node, on HTTPS).
        mgmt = _sdk(regions)
        east_status = mgmt.replications.get("default", REGISTRY, EAST).status
        assert east_status.display_status == "Unavailable" and "failing" in east_status.message
    finally:
        _bring_back(east_root)

    # Back up: the east catches up, then its webhook fires, with the image in its store.
    waited = regions.cli("replication", "wait", "-r", REGISTRY, "--image", "app/web:v1", "--timeout", "60")
    assert waited["complete"] and all(r["complete"] for r in waited["regions"])
    east_hook = regions.receivers[EAST].wait_for(1)[0]
    assert east_hook.note is True and east_hook.event["target"]["digest"] == manifest_digest
    assert all(s["displayStatus"] == "Ready" for s in _statuses(regions).values())
    assert {r.location: r.status.display_status for r in _sdk(regions).replications.list("default", REGISTRY)} \
        == {EAST: "Ready", NORTH: "Ready"}

    for region in (EAST, NORTH):
        pulled = tmp_path / f"pulled-{region}"
        _pull(regions.nodes[region], "app/web:v1", pulled)
        for digest in [manifest_digest, *digests]:
            assert blob_path(pulled, digest).read_bytes() == blob_path(layout, digest).read_bytes()

    # A push to the east of a blob the other regions hold already is copied nowhere again.
    second = image_from_layers([shared_layer, layer_tarball({"other.bin": os.urandom(100_000)})])
    second_layout = tmp_path / "second"
    write_image_layout(second_layout, "v1", second)
    _push(regions.nodes[EAST], second_layout, "app/other:v1")
    waited = regions.cli("replication", "wait", "-r", REGISTRY, "--image", "app/other:v1", "--timeout", "60")
    assert waited["complete"]
    assert all(_holds(store, _digests(second)) for store in regions.stores.values())
    copies = _copy_jobs(regions)
    assert len(copies) == len(set(copies)), f"a blob was copied into a region twice: {copies}"
    shared = _digests(image)[1]
    assert sorted(region for digest, region in copies if digest == shared) == [EAST, NORTH]

    # Each region's webhook heard of the first image exactly once, with the image in its store.
    for region, receiver in regions.receivers.items():
        heard = [d for d in receiver.received() if d.event["target"]["digest"] == manifest_digest]
        assert len(heard) == 1 and heard[0].note is True, region

    # Deletes reach every region at once: metadata is shared.
    with regions.client(HOME) as home:
        assert home.delete(f"/v2/app/web/manifests/{manifest_digest}").status_code == 202
    for region in (EAST, NORTH):
        with regions.client(region) as client:
            assert client.get("/v2/app/web/manifests/v1").status_code == 404


def test_regional_endpoint_follows_region_endpoint_enabled(regions: Regions) -> None:
    node = regions.nodes[NORTH]
    host = f"{REGISTRY}.{NORTH}.localhost"
    with httpx.Client(base_url=node.url, auth=node.credentials, headers={"Host": host}) as client:
        assert client.get("/v2/").status_code == 200
        regions.arm.patch(f"{regions.registry_path()}/replications/{NORTH}",
                          {"properties": {"regionEndpointEnabled": False}})
        refused = client.get("/v2/")
        assert refused.status_code == 404 and refused.json()["errors"][0]["code"] == "NAME_UNKNOWN"
        regions.arm.patch(f"{regions.registry_path()}/replications/{NORTH}",
                          {"properties": {"regionEndpointEnabled": True}})
        assert client.get("/v2/").status_code == 200
    with httpx.Client(base_url=node.url, auth=node.credentials,
                      headers={"Host": f"{REGISTRY}.southindia.localhost"}) as client:
        assert client.get("/v2/").status_code == 404


def test_deleting_a_replication_frees_its_copies(regions: Regions, tmp_path: Path) -> None:
    image = image_from_layers([layer_tarball({"gone.txt": os.urandom(50_000)})])
    layout = tmp_path / "src"
    write_image_layout(layout, "v1", image)
    _push(regions.nodes[HOME], layout, "app/freed:v1")
    regions.cli("replication", "wait", "-r", REGISTRY, "--image", "app/freed:v1", "--timeout", "60")
    east = regions.stores[EAST]
    assert _holds(east, _digests(image))
    regions.arm.delete(f"{regions.registry_path()}/replications/{EAST}")
    _until(lambda: not any(east.stat(Digest.parse(d)) for d in _digests(image)), message="the east's copies freed")
    assert _holds(regions.stores[HOME], _digests(image)) and _holds(regions.stores[NORTH], _digests(image))
    assert [r["location"] for r in regions.arm.list(f"{regions.registry_path()}/replications")] == [NORTH]

    # Replicating to the east again backfills what the registry holds.
    regions.arm.put(f"{regions.registry_path()}/replications/{EAST}", {"location": EAST})
    regions.cli("replication", "wait", "-r", REGISTRY, "--image", "app/freed:v1", "--timeout", "60")
    assert _holds(east, _digests(image))


def test_deleting_a_registry_removes_its_blobs_from_every_region(regions: Regions) -> None:
    name = f"doomed{uuid.uuid4().hex[:8]}"
    regions.arm.put(regions.registry_path(name), {"location": HOME, "sku": {"name": "Premium"}})
    for region in (EAST, NORTH):
        regions.arm.put(f"{regions.registry_path(name)}/replications/{region}", {"location": region})
    image = image_from_layers([layer_tarball({"doomed.txt": os.urandom(40_000)})])
    node = regions.nodes[EAST]
    with httpx.Client(base_url=node.url, auth=node.credentials, headers={"Host": f"{name}.localhost"},
                      timeout=60) as client:
        push_image(client, "app/doomed", "v1", image)
    regions.cli("replication", "wait", "-r", name, "--image", "app/doomed:v1", "--timeout", "60")
    assert all(_holds(store, _digests(image)) for store in regions.stores.values())
    regions.cli("delete", "-n", name, "--yes")
    _until(lambda: not any(store.stat(Digest.parse(d)) for store in regions.stores.values()
                           for d in _digests(image)), message="every region's copies removed")


def _sdk(regions: Regions) -> Any:
    from tests.management.conftest import make_credential, management_client

    node = regions.through
    return management_client(node, make_credential(node, *node.credentials))


def _copy_jobs(regions: Regions) -> list[tuple[str, str]]:
    engine = create_engine(regions.database)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT payload FROM jobs WHERE kind = 'replicate'")).scalars().all()
    finally:
        engine.dispose()
    found = []
    for payload in rows:
        parsed = json.loads(payload)
        found.append((parsed["digest"], parsed["region"]))
    return found
