#!/usr/bin/env python3
"""Geo-replication, for docs/benchmarks.md ("Geo-replication").

    .venv/bin/python bench/replication.py [--mib 256] [--blobs 8] [--samples 30] [--burst 200] [--json out.json]

Two regions on this machine, each a `cargohold serve --region` node with a filesystem store of its own, sharing
one SQLite data directory. Three measurements:

1. Throughput: `--blobs` random blobs totalling `--mib` MiB are pushed to region A while the registry has no
   replication; then the replication to region B is created and the backfill timed from the ARM PUT until the
   replication reports `Ready`. The baseline copies the same blobs from A's store to a scratch store through the
   BlobStore seam (read, write, commit, with `--blobs` threads, no hashing, no database), as a replication could
   at best; and again with the sha256 check a replication makes; and the replication's copy routine itself
   (`Replicator._transfer`) called in this process, without the job queue and the server around it.
2. Push to available: `--samples` small images (config and a 1 KiB layer) pushed one at a time to region A;
   each is timed from the manifest PUT's 201 until `GET .../_replication?wait=30&region=B` says complete there.
3. Burst: `--burst` small images pushed with 8 threads; the lag of each from its 201 until complete in B
   (polled after the burst), and the time from the last 201 until all are complete.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sqlite3
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from harness.procs import free_port, raise_on_sigterm, start_process, stop_process, wait_until_ready  # noqa: E402

from cargohold.blobs.filesystem import FilesystemBlobStore  # noqa: E402
from cargohold.oci.digest import Digest  # noqa: E402
from cargohold.replication.copying import Replicator  # noqa: E402

API_VERSION = "2025-11-01"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
REGISTRY_PATH = "/subscriptions/default/resourceGroups/default/providers/Microsoft.ContainerRegistry/registries/bench"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_blob(client: httpx.Client, repository: str, data: bytes) -> str:
    digest = sha256(data)
    response = client.post(f"/v2/{repository}/blobs/uploads/", params={"digest": digest}, content=data)
    response.raise_for_status()
    return digest


def small_image(client: httpx.Client, repository: str, tag: str, seed: str) -> list[str]:
    """Push a small image; its blobs' digests."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
    layer = os.urandom(1024)
    blobs = [sha256(config), sha256(layer)]
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": push_blob(client, repository, config), "size": len(config)},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                       "digest": push_blob(client, repository, layer), "size": len(layer)}]}).encode()
    response = client.put(f"/v2/{repository}/manifests/{tag}", content=manifest,
                          headers={"Content-Type": OCI_MANIFEST})
    response.raise_for_status()
    return blobs


def arrivals(database: Path, region: str) -> dict[str, float]:
    """When each blob was recorded present in the region (the copy's commit), as Unix time."""
    with sqlite3.connect(database) as conn:
        rows = conn.execute("SELECT digest, created_at FROM blob_locations WHERE region = ?", (region,)).fetchall()
    return {digest: datetime.fromisoformat(str(at)).replace(tzinfo=timezone.utc).timestamp() if
            datetime.fromisoformat(str(at)).tzinfo is None else datetime.fromisoformat(str(at)).timestamp()
            for digest, at in rows}


def complete_in(client: httpx.Client, repository: str, tag: str, region: str, wait: float) -> bool:
    response = client.get(f"/acr/v1/{repository}/_manifests/{tag}/_replication",
                          params={"wait": str(wait), "region": region}, timeout=wait + 30)
    response.raise_for_status()
    return bool(response.json()["complete"])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--blobs", type=int, default=8)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    raise_on_sigterm()
    work = Path(tempfile.mkdtemp(prefix="cargohold-bench-replication-"))
    data_dir = work / "data"
    data_dir.mkdir()
    stores = {"regiona": work / "store-a", "regionb": work / "store-b"}
    ports = {region: free_port() for region in stores}
    env = {**os.environ, "CARGOHOLD_JOBS_RETRY_CAP_SECONDS": "2"}
    procs = []
    results: dict[str, Any] = {"load_average_at_start": os.getloadavg()[0]}
    try:
        for region, root in stores.items():
            proc = start_process(region, [sys.executable, "-m", "cargohold", "serve", "--data-dir", str(data_dir),
                                          "--port", str(ports[region]), "--region", region, "--registry-name",
                                          "bench", "--storage-url", root.as_uri()],
                                 work / f"{region}.log", env=env)
            procs.append(proc)
            wait_until_ready(f"http://127.0.0.1:{ports[region]}/v2/", proc, 120, (200, 401))
        owner = json.loads((data_dir / "initial-credentials").read_text())
        auth = (owner["clientId"], owner["clientSecret"])
        token = httpx.post(f"http://127.0.0.1:{ports['regiona']}/cargohold/oauth2/v2.0/token", data={
            "grant_type": "client_credentials", "client_id": auth[0], "client_secret": auth[1],
            "scope": "https://management.azure.com/.default"}).json()["access_token"]
        arm = httpx.Client(base_url=f"http://127.0.0.1:{ports['regiona']}", params={"api-version": API_VERSION},
                           headers={"Authorization": f"Bearer {token}"}, timeout=60)
        a = httpx.Client(base_url=f"http://127.0.0.1:{ports['regiona']}", auth=auth, timeout=300)

        # 1. backfill throughput against a direct store-to-store copy
        size = args.mib * 1024 * 1024 // args.blobs
        digests = [push_blob(a, "bench/big", os.urandom(size)) for _ in range(args.blobs)]
        total = size * args.blobs
        started = time.monotonic()
        arm.put(f"{REGISTRY_PATH}/replications/regionb", json={"location": "regionb"}).raise_for_status()
        while True:
            status = arm.get(f"{REGISTRY_PATH}/replications/regionb").json()["properties"]["status"]
            if status["displayStatus"] == "Ready":
                break
            time.sleep(0.05)
        replicated = time.monotonic() - started
        source, scratch = FilesystemBlobStore(stores["regiona"]), FilesystemBlobStore(work / "scratch")

        def direct(digest: str, verify: bool) -> None:
            parsed = Digest.parse(digest)
            upload = hashlib.sha256(f"{verify}{digest}".encode()).hexdigest()[:32]
            hasher = hashlib.sha256()
            scratch.start_upload(upload)
            writer = scratch.open_upload(upload, 0)
            for chunk in source.read(parsed, 4 * 1024 * 1024):
                if verify:
                    hasher.update(chunk)
                writer.write([chunk])
            writer.finish()
            writer.close()
            assert not verify or hasher.hexdigest() == parsed.hex
            scratch.commit(upload, parsed)

        timings = {}
        for verify in (False, True):
            for digest in digests:
                scratch.delete(Digest.parse(digest))
            started = time.monotonic()
            with ThreadPoolExecutor(args.blobs) as pool:
                list(pool.map(lambda d: direct(d, verify), digests))
            timings[verify] = time.monotonic() - started
        baseline, verified = timings[False], timings[True]

        class TwoStores:
            own_region = "regiona"

            def __init__(self) -> None:
                self.target = FilesystemBlobStore(work / "copy-engine")

            def get(self, region: str) -> FilesystemBlobStore:
                return source if region == "regiona" else self.target

        stores_here = TwoStores()
        engine = Replicator(None, stores_here)  # type: ignore[arg-type]
        started = time.monotonic()
        with ThreadPoolExecutor(args.blobs) as pool:
            list(pool.map(lambda d: engine._transfer(Digest.parse(d), ["regiona"], stores_here.target, "x"),
                          digests))
        in_process = time.monotonic() - started
        results["throughput"] = {"bytes": total, "blobs": args.blobs, "replication_s": replicated,
                                 "replication_MBps": total / replicated / 1e6, "direct_s": baseline,
                                 "direct_MBps": total / baseline / 1e6, "ratio": baseline / replicated,
                                 "direct_sha256_s": verified, "direct_sha256_MBps": total / verified / 1e6,
                                 "ratio_to_sha256": verified / replicated, "copy_engine_in_process_s": in_process,
                                 "copy_engine_in_process_MBps": total / in_process / 1e6}
        print(json.dumps(results["throughput"]), flush=True)

        # 2. push to available, one at a time
        database = data_dir / "metadata.db"
        latencies, polled = [], []
        for i in range(args.samples):
            blobs = small_image(a, "bench/small", f"s{i}", f"sample-{i}")
            acknowledged, acknowledged_wall = time.monotonic(), time.time()
            assert complete_in(a, "bench/small", f"s{i}", "regionb", 30)
            polled.append((time.monotonic() - acknowledged) * 1000)
            arrived = arrivals(database, "regionb")
            latencies.append(max(0.0, (max(arrived[d] for d in blobs) - acknowledged_wall) * 1000))
            time.sleep(0.2)
        results["available_ms"] = {"samples": len(latencies), "p50": percentile(latencies, 50),
                                   "p99": percentile(latencies, 99), "max": max(latencies),
                                   "long_poll_p50": percentile(polled, 50), "long_poll_p99": percentile(polled, 99)}
        print(json.dumps(results["available_ms"]), flush=True)

        # 3. a burst
        acknowledged_at: dict[str, tuple[float, list[str]]] = {}

        def push(i: int) -> None:
            blobs = small_image(a, "bench/burst", f"b{i}", f"burst-{i}")
            acknowledged_at[f"b{i}"] = (time.time(), blobs)

        burst_started = time.time()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(push, range(args.burst)))
        last_ack = time.time()
        wanted = {d for _, blobs in acknowledged_at.values() for d in blobs}
        while not wanted <= set(arrived := arrivals(database, "regionb")):
            time.sleep(0.2)
        completed = {tag: max(arrived[d] for d in blobs) for tag, (_, blobs) in acknowledged_at.items()}
        lags = [max(0.0, (completed[t] - acknowledged_at[t][0]) * 1000) for t in acknowledged_at]
        results["burst"] = {"pushes": args.burst, "push_s": last_ack - burst_started,
                            "drain_after_last_push_s": max(0.0, max(completed.values()) - last_ack),
                            "lag_p50_ms": percentile(lags, 50), "lag_p99_ms": percentile(lags, 99),
                            "lag_max_ms": max(lags)}
        print(json.dumps(results["burst"]), flush=True)
    finally:
        for proc in procs:
            stop_process(proc)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
