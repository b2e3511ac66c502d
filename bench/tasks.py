#!/usr/bin/env python3
"""ACR Tasks: a small build through cargohold against the same build by hand, for docs/benchmarks.md
("ACR Tasks").

    .venv/bin/python bench/tasks.py [--builds 3] [--latency-runs 10] [--burst 20] [--json out.json]

One run (as root, with buildah and skopeo installed): start `cargohold serve --tls self-signed --no-worker` on a
scratch data directory and one `cargohold worker`, push a tiny base image (this machine's /bin/sh and C
library) with skopeo, then:

1. **Build end to end**, `--builds` times (after one warm-up of each, not counted): pack and upload a context (Dockerfile `FROM` the base, `COPY`, `RUN`),
   `scheduleRun` a DockerBuildRequest, wait for Succeeded (upload, queue, build, push). **By hand**, the same
   number of times, alternating with the runs above: a fresh buildah storage root, `buildah build --isolation
   chroot` of the same context pulling the same base from the server, `buildah push` to the server, storage
   removed. Reported: median wall time of each and their ratio.
2. **Schedule → Started** latency with an idle worker: `--latency-runs` one-step runs, one at a time; the
   run's `startTime - createTime` (both the server's clock). p50 and max.
3. **Burst**: a second worker starts; `--burst` runs are queued at once; every one must end Succeeded
   (none lost, none run twice). Wall time to the last.

Every process this script starts runs in its own session and is stopped by process group at the end.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from tests.clients.oci_layout import write_image_layout  # noqa: E402
from tests.support.images import image_from_layers  # noqa: E402
from tests.support.server import RunningServer  # noqa: E402
from tests.tasks.conftest import Arm, host_rootfs_layer, write_context  # noqa: E402


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def start_worker(server: RunningServer, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "cargohold", "worker", "--data-dir", str(server.data_dir)],
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--builds", type=int, default=5)
    parser.add_argument("--latency-runs", type=int, default=10)
    parser.add_argument("--burst", type=int, default=20)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="cargohold-bench-tasks-"))
    server = RunningServer(scratch / "data", extra_args=["--tls", "self-signed", "--no-worker"],
                           scheme="https").start(verify=False)
    workers = [start_worker(server, scratch / "worker-1.log")]
    results: dict[str, object] = {}
    try:
        client_id, secret = server.credentials
        certs = scratch / "certs"
        certs.mkdir()
        shutil.copy(server.data_dir / "tls" / "ca.pem", certs / "ca.crt")
        layout = scratch / "base"
        write_image_layout(layout, "1", image_from_layers([host_rootfs_layer()]))
        subprocess.run(["skopeo", "copy", "--dest-cert-dir", str(certs), "--dest-creds", f"{client_id}:{secret}",
                        f"oci:{layout}:1", f"docker://{server.host}/base:1"], check=True, capture_output=True)
        login = json.loads((server.data_dir / "initial-credentials").read_text())["loginServer"]
        arm = Arm(server, "cargohold")

        def context(base: str) -> Path:
            return write_context(scratch / "ctx", {
                "Dockerfile": f"FROM {base}\nCOPY app.txt /app.txt\nRUN cat /app.txt > /copy.txt\n",
                "app.txt": "hello\n" * 1000})

        through, by_hand = [], []
        for index in range(-1, args.builds):
            began = time.monotonic()
            run = arm.build(context(f"{login}/base:1"), poll=0.05, imageNames=[f"bench-e2e:{index + 1}"])
            assert run["properties"]["status"] == "Succeeded", arm.log(run["name"])
            if index >= 0:
                through.append(time.monotonic() - began)

            store = scratch / "hand"
            flags = ["--root", str(store / "root"), "--runroot", str(store / "runroot"), "--storage-driver", "vfs"]
            began = time.monotonic()
            subprocess.run(["buildah", *flags, "build", "--isolation", "chroot", "--cert-dir", str(certs),
                            "--creds", f"{client_id}:{secret}", "-t", f"{server.host}/bench-hand:{index + 1}",
                            str(context(f"{server.host}/base:1"))], check=True, capture_output=True)
            subprocess.run(["buildah", *flags, "push", "--cert-dir", str(certs), "--creds", f"{client_id}:{secret}",
                            f"{server.host}/bench-hand:{index + 1}"], check=True, capture_output=True)
            shutil.rmtree(store)
            if index >= 0:
                by_hand.append(time.monotonic() - began)
        results["build_through_cargohold_s"] = through
        results["build_by_hand_s"] = by_hand
        results["build_ratio"] = statistics.median(through) / statistics.median(by_hand)

        tiny = base64.b64encode(b"steps:\n  - cmd: {{.Run.Registry}}/base:1 echo hi\n").decode()
        latencies = []
        for _ in range(args.latency_runs):
            time.sleep(0.5)
            answer = arm.schedule({"type": "EncodedTaskRunRequest", "encodedTaskContent": tiny,
                                   "platform": {"os": "Linux"}})
            run = arm.wait(answer.json()["name"], poll=0.05)
            properties = run["properties"]
            latencies.append((parse_time(properties["startTime"]) - parse_time(properties["createTime"]))
                             .total_seconds())
        results["schedule_to_started_s"] = latencies
        results["schedule_to_started_p50_s"] = statistics.median(latencies)

        workers.append(start_worker(server, scratch / "worker-2.log"))
        began = time.monotonic()
        ids = [arm.schedule({"type": "EncodedTaskRunRequest", "encodedTaskContent": tiny,
                             "platform": {"os": "Linux"}}).json()["name"] for _ in range(args.burst)]
        finished = [arm.wait(run_id, timeout=900)["properties"]["status"] for run_id in ids]
        results["burst_runs"] = args.burst
        results["burst_succeeded"] = finished.count("Succeeded")
        results["burst_wall_s"] = time.monotonic() - began
        results["burst_distinct_ids"] = len(set(ids))
    finally:
        for worker in workers:
            stop(worker)
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
