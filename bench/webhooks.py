#!/usr/bin/env python3
"""Webhook delivery under a burst of pushes, for docs/benchmarks.md ("Webhook delivery").

    .venv/bin/python bench/webhooks.py [--pushes 1000] [--concurrency 8] [--webhooks 1] [--workers 1] \
                                       [--json out.json]

One run: start `cargohold serve` on a scratch data directory (default delivery settings), start a fast receiver
in a process of its own (asyncio, answers 200 at once, notes the arrival time of every request), create the
webhooks through the ARM API, then push `--pushes` distinct small manifests (one shared config blob and layer;
each manifest differs by an annotation, each gets its own tag) through `/v2/` with `--concurrency` threads, and
wait until every webhook has received every event. Checks: no event lost or duplicated, by event id and by
manifest digest; each webhook's events arrive in the order they were recorded (event timestamps, taken inside
SQLite's serialized write transactions, never go backwards). Then `--idle-samples` single pushes, one at a time
on an idle server, give the latency of a lone event.

Latency is reported two ways: receive time minus the event's `timestamp` (written in the push's transaction),
and receive time minus the moment the client saw the push's 201 (what a user waiting for the hook sees). Both
clocks are this machine's. Throughput: events delivered per second over the burst (first push to last
delivery) and over the drain (after the last push was answered). CPU seconds of the server, the receiver and
this script show where the 2 cores went.

Every process this script starts runs in its own session and is stopped by process group at the end, also on
errors, Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.procs import (
    free_port,
    process_tree,
    raise_on_sigterm,
    start_process,
    stop_process,
    wait_until_ready,
)
from harness.sysinfo import machine_info

HOST = "127.0.0.1"
API_VERSION = "2025-11-01"
REGISTRY_PATH = ("/subscriptions/default/resourceGroups/default/providers/Microsoft.ContainerRegistry"
                 "/registries/cargohold")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
REPOSITORY = "bench/webhooks"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# the receiver: a process of its own, so its work does not share this script's GIL -----------------------------

def receiver_main(port: int, out_path: str, ready: Any) -> None:
    """Accept POSTs on 127.0.0.1:port, answer 200 with an empty body, keep connections alive, and append one line
    per request to out_path: `<arrival time.time()> <path> <body>`."""

    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))  # stopped by the parent: no traceback, no cleanup
    out = open(out_path, "w", buffering=1)  # noqa: SIM115 - lives as long as the process

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                arrived = time.time()
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                length = 0
                for line in header_lines:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value.strip())
                body = await reader.readexactly(length) if length else b""
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                path = request_line.split(" ")[1] if " " in request_line else "/"
                out.write(f"{arrived:.6f} {path} {body.decode()}\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def serve() -> None:
        server = await asyncio.start_server(handle, HOST, port, backlog=256)
        ready.set()
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


@dataclass
class Receipt:
    arrived: float
    path: str
    event: dict[str, Any]


def read_receipts(path: Path) -> list[Receipt]:
    receipts = []
    for line in path.read_text().splitlines():
        arrived, hook_path, body = line.split(" ", 2)
        receipts.append(Receipt(float(arrived), hook_path, json.loads(body)))
    return receipts


def count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for _ in handle)


def cpu_seconds(root_pid: int) -> float:
    """utime + stime of a process tree, from /proc (children that already exited are not counted)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in process_tree(root_pid):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / ticks


# pushing -----------------------------------------------------------------------------------------------------

def push_blob(client: httpx.Client, data: bytes) -> dict[str, Any]:
    import hashlib

    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    started = client.post(f"/v2/{REPOSITORY}/blobs/uploads/")
    started.raise_for_status()
    location = started.headers["Location"]
    separator = "&" if "?" in location else "?"
    done = client.put(f"{location}{separator}digest={digest}", content=data,
                      headers={"Content-Type": "application/octet-stream"})
    if done.status_code != 201:
        raise RuntimeError(f"blob upload answered {done.status_code}: {done.text[:300]}")
    return {"digest": digest, "size": len(data)}


def manifest_bytes(config: dict[str, Any], layer: dict[str, Any], index: int, run: str) -> bytes:
    return json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, **config},
        "layers": [{"mediaType": OCI_LAYER, **layer}],
        "annotations": {"org.example.bench.run": run, "org.example.bench.index": str(index)},
    }, separators=(",", ":"), sort_keys=True).encode()


@dataclass
class Pushed:
    tag: str
    digest: str
    acknowledged: float
    """time.time() when the 201 was read."""


def push_manifest(client: httpx.Client, tag: str, body: bytes) -> Pushed:
    response = client.put(f"/v2/{REPOSITORY}/manifests/{tag}", content=body, headers={"Content-Type": OCI_MANIFEST})
    acknowledged = time.time()
    if response.status_code != 201:
        raise RuntimeError(f"manifest PUT {tag} answered {response.status_code}: {response.text[:300]}")
    return Pushed(tag, response.headers["Docker-Content-Digest"], acknowledged)


# numbers -----------------------------------------------------------------------------------------------------

def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def summary_ms(values: list[float]) -> dict[str, float]:
    millis = [v * 1000 for v in values]
    return {"p50": percentile(millis, 50), "p90": percentile(millis, 90), "p99": percentile(millis, 99),
            "max": max(millis) if millis else float("nan"), "mean": statistics.fmean(millis) if millis else 0.0}


def event_time(event: dict[str, Any]) -> float:
    from datetime import datetime

    return datetime.fromisoformat(event["timestamp"]).timestamp()


@dataclass
class Result:
    settings: dict[str, Any]
    machine: dict[str, str]
    checks: dict[str, Any] = field(default_factory=dict)
    burst: dict[str, Any] = field(default_factory=dict)
    idle: dict[str, Any] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)


def check_and_measure(receipts: list[Receipt], pushed: list[Pushed], paths: list[str]) -> dict[str, Any]:
    """No loss, no duplicates, per-webhook order; latencies from the event's timestamp and from the push's 201."""
    by_digest = {p.digest: p for p in pushed}
    report: dict[str, Any] = {"per_webhook": {}}
    from_event: list[float] = []
    from_ack: list[float] = []
    for path in paths:
        mine = [r for r in receipts if r.path == path and r.event.get("action") == "push"]
        ids = [r.event["id"] for r in mine]
        digests = [r.event["target"]["digest"] for r in mine]
        stamps = [r.event["timestamp"] for r in mine]
        report["per_webhook"][path] = {
            "received": len(mine),
            "duplicate_ids": len(ids) - len(set(ids)),
            "duplicate_digests": len(digests) - len(set(digests)),
            "missing_digests": len(set(by_digest) - set(digests)),
            "unexpected_digests": len(set(digests) - set(by_digest)),
            "out_of_order": sum(1 for a, b in zip(stamps, stamps[1:]) if b < a),  # noqa: RUF007
        }
        for receipt in mine:
            from_event.append(receipt.arrived - event_time(receipt.event))
            push = by_digest.get(receipt.event["target"]["digest"])
            if push is not None:
                from_ack.append(receipt.arrived - push.acknowledged)
    report["ok"] = all(not (w["duplicate_ids"] or w["duplicate_digests"] or w["missing_digests"]
                            or w["unexpected_digests"] or w["out_of_order"])
                       and w["received"] == len(pushed) for w in report["per_webhook"].values())
    report["latency_from_event_ms"] = summary_ms(from_event)
    report["latency_from_push_ack_ms"] = summary_ms(from_ack)
    return report


# the run -----------------------------------------------------------------------------------------------------

def management_token(base_url: str, client_id: str, secret: str) -> str:
    response = httpx.post(f"{base_url}/cargohold/oauth2/v2.0/token", timeout=30, data={
        "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret,
        "scope": "https://management.azure.com/.default"})
    response.raise_for_status()
    return str(response.json()["access_token"])


def wait_for_lines(path: Path, count: int, timeout_s: float) -> float:
    """Wait until the receiver has logged `count` requests; returns when (time.time()) or raises."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if count_lines(path) >= count:
            return time.time()
        time.sleep(0.02)
    raise RuntimeError(f"only {count_lines(path)} of {count} deliveries arrived within {timeout_s:.0f} s")


def run(args: argparse.Namespace, scratch: Path) -> Result:
    port, receiver_port = free_port(), free_port()
    data_dir = scratch / "data"
    data_dir.mkdir()
    receipts_path = scratch / "receipts.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARGOHOLD_WEBHOOK_")}
    result = Result(settings={"pushes": args.pushes, "concurrency": args.concurrency, "webhooks": args.webhooks,
                              "idle_samples": args.idle_samples, "server_workers": args.workers,
                              "delivery settings": "defaults"},
                    machine=machine_info())

    ready = multiprocessing.Event()
    receiver = multiprocessing.Process(target=receiver_main, args=(receiver_port, str(receipts_path), ready),
                                       daemon=True)
    receiver.start()
    server = start_process("cargohold", [args.python, "-m", "cargohold", "serve", "--data-dir", str(data_dir),
                                         "--host", HOST, "--port", str(port), "--workers", str(args.workers),
                                         "--egress-allow", HOST],
                           scratch / "cargohold.log", env=env)
    try:
        if not ready.wait(10):
            raise RuntimeError("the receiver did not start")
        base_url = f"http://{HOST}:{port}"
        startup = wait_until_ready(f"{base_url}/v2/", server, 60, (200, 401))
        log(f"cargohold ready in {startup:.1f} s (pid {server.pid}); receiver on :{receiver_port}")
        created = json.loads((data_dir / "initial-credentials").read_text())
        auth = (created["clientId"], created["clientSecret"])
        token = management_token(base_url, *auth)
        paths = [f"/hook{i}" for i in range(args.webhooks)]
        with httpx.Client(base_url=base_url, timeout=30, headers={"Authorization": f"Bearer {token}"}) as arm:
            for i, path in enumerate(paths):
                response = arm.put(f"{REGISTRY_PATH}/webhooks/benchhook{i}", params={"api-version": API_VERSION},
                                   json={"location": "local", "properties": {
                                       "serviceUri": f"http://{HOST}:{receiver_port}{path}", "actions": ["push"],
                                       "scope": f"{REPOSITORY}:*", "customHeaders": {"X-Bench": "1"}}})
                if response.status_code not in (200, 201):
                    raise RuntimeError(f"creating the webhook answered {response.status_code}: {response.text}")

        limits = httpx.Limits(max_connections=args.concurrency * 2, max_keepalive_connections=args.concurrency * 2)
        with httpx.Client(base_url=base_url, auth=auth, timeout=60, limits=limits) as client:
            config = push_blob(client, json.dumps({"architecture": "amd64", "os": "linux",
                                                   "rootfs": {"type": "layers", "diff_ids": []}}).encode())
            layer = push_blob(client, os.urandom(1024))
            run_id = os.urandom(4).hex()
            bodies = [(f"b{i:05}", manifest_bytes(config, layer, i, run_id)) for i in range(args.pushes)]
            cpu_before = {"server": cpu_seconds(server.pid), "receiver": cpu_seconds(receiver.pid or 0),
                          "bench": sum(os.times()[:2])}
            log(f"pushing {args.pushes} manifests with {args.concurrency} threads")
            started = time.time()
            with ThreadPoolExecutor(args.concurrency) as pool:
                pushed = list(pool.map(lambda item: push_manifest(client, *item), bodies))
            pushes_done = time.time()
            cpu_pushed = {"server": cpu_seconds(server.pid), "receiver": cpu_seconds(receiver.pid or 0),
                          "bench": sum(os.times()[:2])}
            expected = args.pushes * args.webhooks
            last = wait_for_lines(receipts_path, expected, args.timeout)
            cpu_after = {"server": cpu_seconds(server.pid), "receiver": cpu_seconds(receiver.pid or 0),
                         "bench": sum(os.times()[:2])}
            time.sleep(args.settle)  # anything beyond the expected count would be a duplicate
            receipts = read_receipts(receipts_path)
            arrivals = sorted(r.arrived for r in receipts)
            log(f"{len(receipts)} deliveries received; pushes took {pushes_done - started:.2f} s, "
                f"last delivery {last - started:.2f} s after the first push")
            result.checks = check_and_measure(receipts, pushed, paths)
            drained_after_pushes = sum(1 for t in arrivals if t > pushes_done)
            result.burst = {
                "push_wall_s": pushes_done - started,
                "pushes_per_s": args.pushes / (pushes_done - started),
                "first_push_to_last_delivery_s": arrivals[-1] - started,
                "delivered_per_s": len(receipts) / (arrivals[-1] - started),
                "delivered_before_last_push_ack": len(receipts) - drained_after_pushes,
                "drain_after_last_push_s": max(0.0, arrivals[-1] - pushes_done),
                "drain_per_s": (drained_after_pushes / (arrivals[-1] - pushes_done)
                                if arrivals[-1] > pushes_done and drained_after_pushes else None),
                "latency_from_event_ms": result.checks.pop("latency_from_event_ms"),
                "latency_from_push_ack_ms": result.checks.pop("latency_from_push_ack_ms"),
            }
            result.cpu = {name: cpu_after[name] - cpu_before[name] for name in cpu_before}
            result.cpu["wall_s"] = last - started
            result.cpu["cores_busy"] = sum(result.cpu[n] for n in cpu_before) / result.cpu["wall_s"]
            result.cpu["server_while_pushing"] = cpu_pushed["server"] - cpu_before["server"]
            result.cpu["server_while_draining"] = cpu_after["server"] - cpu_pushed["server"]
            result.cpu["drain_wall_s"] = last - pushes_done
            result.cpu["server_ms_per_drained_delivery"] = (
                1000 * result.cpu["server_while_draining"] / drained_after_pushes if drained_after_pushes else float("nan"))

            # A lone event on an idle server: what one push costs when nothing is queued.
            idle_receipts_from = len(receipts)
            idle_pushed = []
            for i in range(args.idle_samples):
                time.sleep(0.25)
                idle_pushed.append(push_manifest(client, f"idle{i:03}", manifest_bytes(config, layer, -1 - i, run_id)))
                wait_for_lines(receipts_path, idle_receipts_from + (i + 1) * args.webhooks, 30)
            idle = read_receipts(receipts_path)[idle_receipts_from:]
            acked = {p.digest: p.acknowledged for p in idle_pushed}
            result.idle = {
                "samples": len(idle),
                "latency_from_event_ms": summary_ms([r.arrived - event_time(r.event) for r in idle]),
                "latency_from_push_ack_ms": summary_ms([r.arrived - acked[r.event["target"]["digest"]]
                                                        for r in idle]),
            }
    finally:
        stop_process(server)
        receiver.terminate()
        receiver.join(5)
        if receiver.is_alive():
            receiver.kill()
    return result


def render(result: Result) -> str:
    b, c, i = result.burst, result.checks, result.idle
    lines = [
        (f"pushes {result.settings['pushes']}, concurrency {result.settings['concurrency']}, "
         f"webhooks {result.settings['webhooks']}, server workers {result.settings['server_workers']}; machine {result.machine.get('nproc')} cores, "
         f"load at start {result.machine.get('load average at start (1m, 5m)')}"),
        f"checks: {'OK' if c['ok'] else 'FAILED'} {json.dumps(c['per_webhook'])}",
        f"pushes: {b['push_wall_s']:.2f} s, {b['pushes_per_s']:.0f}/s",
        f"deliveries: {b['delivered_per_s']:.0f}/s from the first push to the last delivery "
        f"({b['first_push_to_last_delivery_s']:.2f} s); {b['delivered_before_last_push_ack']} delivered while "
        f"pushing; drain after the last push {b['drain_after_last_push_s']:.2f} s"
        + (f" at {b['drain_per_s']:.0f}/s" if b["drain_per_s"] else ""),
    ]
    for name, key in (("burst, from event timestamp", "latency_from_event_ms"),
                      ("burst, from push 201", "latency_from_push_ack_ms")):
        s = b[key]
        lines.append(f"latency {name}: p50 {s['p50']:.1f} ms, p90 {s['p90']:.1f}, p99 {s['p99']:.1f}, "
                     f"max {s['max']:.1f}")
    for name, key in (("idle, from event timestamp", "latency_from_event_ms"),
                      ("idle, from push 201", "latency_from_push_ack_ms")):
        s = i[key]
        lines.append(f"latency {name} ({i['samples']} samples): p50 {s['p50']:.1f} ms, p99 {s['p99']:.1f}, "
                     f"max {s['max']:.1f}")
    cpu = result.cpu
    lines.append(f"CPU seconds during the burst ({cpu['wall_s']:.2f} s wall): server {cpu['server']:.2f}, "
                 f"receiver {cpu['receiver']:.2f}, this script {cpu['bench']:.2f}; "
                 f"{cpu['cores_busy']:.2f} cores busy on average; server while pushing "
                 f"{cpu['server_while_pushing']:.2f} s, while draining {cpu['server_while_draining']:.2f} s "
                 f"in {cpu['drain_wall_s']:.2f} s"
                 + (f" ({cpu['server_ms_per_drained_delivery']:.1f} ms CPU per delivery)"
                    if cpu["server_ms_per_drained_delivery"] == cpu["server_ms_per_drained_delivery"] else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pushes", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--webhooks", type=int, default=1, help="webhooks that each want every push")
    parser.add_argument("--workers", type=int, default=1, help="`serve --workers`: server processes")
    parser.add_argument("--idle-samples", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for every delivery")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds to wait for stray duplicates")
    parser.add_argument("--python", default=sys.executable, help="interpreter that runs `-m cargohold serve`")
    parser.add_argument("--json", type=Path, default=None, help="write the raw numbers here")
    parser.add_argument("--keep-tmp", action="store_true", help="keep the scratch dir (server log, receipts)")
    args = parser.parse_args(argv)

    raise_on_sigterm()
    scratch = Path(tempfile.mkdtemp(prefix="cargohold-webhooks-"))
    try:
        result = run(args, scratch)
    finally:
        if args.keep_tmp:
            log(f"scratch kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    print(render(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result.__dict__, indent=2) + "\n")
    return 0 if result.checks["ok"] else 1


if __name__ == "__main__":
    threading.current_thread().name = "bench-webhooks"
    sys.exit(main())
