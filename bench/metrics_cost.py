#!/usr/bin/env python3
"""What the Prometheus metrics cost on the hot path, for docs/benchmarks.md ("Metrics overhead").

    .venv/bin/python bench/metrics_cost.py [--rounds 5] [--duration 10] [--warmup 2] [--json out.json]

One run starts two `cargohold serve` processes on scratch data directories, one as shipped (metrics on) and
one with `--no-metrics`, pushes the same small image to both (as `bench/image:latest`, anonymous pull enabled
as in bench/run.py), and then loads manifest GET by tag with `wrk -t2 -c32` (the bench/run.py row) on each in
turn, alternating which goes first, `--rounds` times. Only the server under load is busy; the other one
idles. It reports req/s of every run, the median and spread of each variant, and the cost as
1 - median(on) / median(off), plus the same ratio within each round (the pairs ran back to back, so they saw
the most similar machine). It also reports the server's CPU time per request (utime + stime of its process
tree over the measured run, divided by the requests wrk completed), which a busy shared machine disturbs much
less than req/s. After the last round it scrapes /metrics of the metrics-on server and checks that
the series of docs/operations.md are there and that the manifest GET count matches what wrk sent. It also
notes each server's startup time and the RSS of its process tree after the load.

Every process it starts runs in its own session and is stopped by process group at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.cluster import Node, _cpu_ticks, cargohold_argv, read_credentials, start_node
from harness.measure import MANIFEST_ACCEPT, LoadResult, run_wrk, write_wrk_script
from harness.oci import RegistryClient, make_small_image
from harness.procs import process_tree, raise_on_sigterm, tree_rss_bytes
from harness.sysinfo import machine_info

REPOSITORY, TAG = "bench/image", "latest"
EXPECTED_SERIES = (
    "cargohold_http_request_duration_seconds_bucket", "cargohold_http_request_duration_seconds_count",
    "cargohold_http_request_bytes_total", "cargohold_http_response_bytes_total", "cargohold_auth_failures_total",
    "cargohold_uploads_in_flight", "cargohold_upload_sessions_open", "cargohold_jobs_queued",
    "cargohold_jobs_oldest_age_seconds", "cargohold_webhook_delivery_lag_seconds_count",
    "cargohold_cache_lookups_total", "cargohold_cache_entries", "cargohold_db_pool_checked_out",
    "cargohold_db_pool_size", "cargohold_metrics_database_up",
)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def prepare(node: Node, data_dir: Path) -> None:
    credentials = read_credentials(data_dir)
    with RegistryClient(node.base_url, auth=credentials) as client:
        client.push_small_image(REPOSITORY, make_small_image(), TAG)
    subprocess.run([*cargohold_argv(), "update", "--data-dir", str(data_dir), "--anonymous-pull-enabled", "true"],
                   check=True, capture_output=True, timeout=120)


def server_cpu_s(node: Node) -> float:
    return sum(_cpu_ticks(pid) for pid in process_tree(node.process.pid)) / os.sysconf("SC_CLK_TCK")


def load(node: Node, script: Path, duration: int, warmup: int) -> tuple[LoadResult, float]:
    """wrk's result and the server's CPU microseconds per request over the measured run (not the warm-up):
    on a shared machine the CPU a request costs varies far less than how many requests fit in 10 s."""
    url = f"{node.base_url}/v2/{REPOSITORY}/manifests/{TAG}"
    if warmup:
        run_wrk(url, script, warmup, 32, 2)
    before = server_cpu_s(node)
    result = run_wrk(url, script, duration, 32, 2)
    return result, (server_cpu_s(node) - before) / result.requests * 1e6


def scrape(node: Node) -> str:
    response = httpx.get(f"{node.base_url}/metrics", timeout=30)
    response.raise_for_status()
    return response.text


def manifest_gets(text: str) -> float:
    pattern = re.compile(r'^cargohold_http_request_duration_seconds_count\{(.*)\} (\S+)$', re.MULTILINE)
    return sum(float(value) for labels, value in pattern.findall(text)
               if 'route="/v2/{name:path}/manifests/{reference}"' in labels and 'method="GET"' in labels
               and 'status="200"' in labels)


ASGI_SCRIPT = r"""
import asyncio, json, os, sys, time
from pathlib import Path
data_dir, repeats, count = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(data_dir.parent / "asgi-metrics")
os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)
from cargohold.app import create_app
from cargohold.config import Settings
from cargohold.observability.settings import ObservabilitySettings

settings = Settings.for_data_dir(data_dir)
apps = {"on": create_app(settings, ObservabilitySettings()),
        "off": create_app(settings, ObservabilitySettings(metrics=False))}
headers = [(b"host", b"127.0.0.1"), (b"user-agent", b"wrk"),
           (b"accept", b"application/vnd.oci.image.manifest.v1+json")]

async def receive():
    return {"type": "http.request", "body": b"", "more_body": False}

async def send(message):
    if message["type"] == "http.response.start" and message["status"] != 200:
        raise SystemExit(f"status {message['status']}")

async def run(app):
    started = time.process_time()
    for _ in range(count):
        await app({"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
                   "scheme": "http", "path": "/v2/bench/image/manifests/latest", "raw_path": b"/v2/bench/image/manifests/latest",
                   "query_string": b"", "root_path": "", "headers": headers, "client": ("127.0.0.1", 5000),
                   "server": ("127.0.0.1", 5000)}, receive, send)
    return (time.process_time() - started) / count * 1e6

async def main():
    for app in apps.values():
        await run(app)
    best = {"on": [], "off": []}
    for index in range(repeats):
        for variant in (("on", "off") if index % 2 == 0 else ("off", "on")):
            best[variant].append(await run(apps[variant]))
    print(json.dumps(best))

asyncio.run(main())
"""


def asgi_cost(data_dir: Path, repeats: int, count: int) -> dict[str, list[float]]:
    """CPU microseconds (process time, so time spent waiting for a core does not count) per manifest GET through
    the application alone (no server, no network), metrics on and off, in one process, alternating. The fastest
    repeat is the least disturbed by other load on the machine."""
    done = subprocess.run([sys.executable, "-c", ASGI_SCRIPT, str(data_dir), str(repeats), str(count)],
                          capture_output=True, text=True, timeout=1800, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=10, help="seconds of wrk per measured run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of wrk before each measured run")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    parser.add_argument("--asgi-repeats", type=int, default=15,
                        help="repeats of the in-process measurement (0: skip it)")
    parser.add_argument("--asgi-requests", type=int, default=5000, help="requests per in-process repeat")
    args = parser.parse_args(argv)
    raise_on_sigterm()
    scratch = Path(tempfile.mkdtemp(prefix="cargohold-metrics-cost-"))
    nodes: dict[str, Node] = {}
    try:
        for variant, extra in (("on", []), ("off", ["--no-metrics"])):
            data_dir = scratch / variant / "data"
            data_dir.parent.mkdir(parents=True)
            nodes[variant] = start_node(f"metrics-{variant}", data_dir.parent, data_dir, None, extra_args=extra)
            prepare(nodes[variant], data_dir)
            log(f"metrics {variant}: ready after {nodes[variant].startup_s:.2f}s on {nodes[variant].base_url}")
        script = write_wrk_script(scratch / "get.lua", "GET", MANIFEST_ACCEPT, None)
        runs: dict[str, list[float]] = {"on": [], "off": []}
        cpu: dict[str, list[float]] = {"on": [], "off": []}
        for round_index in range(args.rounds):
            order = ("on", "off") if round_index % 2 == 0 else ("off", "on")
            for variant in order:
                result, cpu_us = load(nodes[variant], script, args.duration, args.warmup)
                if result.bad_responses or result.socket_errors:
                    raise RuntimeError(f"metrics {variant}: {result.bad_responses} bad responses, "
                                       f"{result.socket_errors} socket errors")
                runs[variant].append(result.requests_per_s)
                cpu[variant].append(cpu_us)
                log(f"round {round_index + 1} metrics {variant}: {result.requests_per_s:,.0f} req/s "
                    f"(p99 {result.p99_ms:.1f} ms), server CPU {cpu_us:.1f} us/request")
        time.sleep(1.5)
        text = scrape(nodes["on"])
        missing = [name for name in EXPECTED_SERIES if not re.search(rf"^{name}[{{ ]", text, re.MULTILINE)]
        counted = manifest_gets(text)
        rss = {variant: tree_rss_bytes(node.process.pid) / 1e6 for variant, node in nodes.items()}
        startup = {variant: node.startup_s for variant, node in nodes.items()}
    finally:
        for node in nodes.values():
            node.stop()
    try:
        asgi = asgi_cost(scratch / "on" / "data", args.asgi_repeats, args.asgi_requests) if args.asgi_repeats else None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    on, off = statistics.median(runs["on"]), statistics.median(runs["off"])
    paired = [1 - a / b for a, b in zip(runs["on"], runs["off"], strict=True)]
    cpu_on, cpu_off = statistics.median(cpu["on"]), statistics.median(cpu["off"])
    cpu_paired = [a / b - 1 for a, b in zip(cpu["on"], cpu["off"], strict=True)]
    summary = {
        "machine": machine_info(),
        "rounds": args.rounds, "duration_s": args.duration, "warmup_s": args.warmup,
        "req_per_s": runs, "median_on": on, "median_off": off, "cost": 1 - on / off,
        "paired_cost": paired, "cpu_us_per_request": cpu, "cpu_cost": cpu_on / cpu_off - 1,
        "cpu_paired_cost": cpu_paired, "missing_series": missing, "manifest_gets_counted": counted,
        "rss_mb_after": rss, "startup_s": startup, "asgi_us_per_request": asgi,
    }
    print(f"manifest GET by tag, wrk -t2 -c32, {args.rounds} rounds of {args.duration} s, alternating:")
    print("| round | on: req/s | off: req/s | cost (req/s) | on: server CPU µs/req | off: server CPU µs/req | "
          "cost (CPU) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for index in range(args.rounds):
        print(f"| {index + 1} | {runs['on'][index]:,.0f} | {runs['off'][index]:,.0f} | {paired[index]:+.1%} | "
              f"{cpu['on'][index]:.1f} | {cpu['off'][index]:.1f} | {cpu_paired[index]:+.1%} |")
    print(f"| median | {on:,.0f} ({min(runs['on']):,.0f}–{max(runs['on']):,.0f}) | "
          f"{off:,.0f} ({min(runs['off']):,.0f}–{max(runs['off']):,.0f}) | {1 - on / off:+.1%} | "
          f"{cpu_on:.1f} ({min(cpu['on']):.1f}–{max(cpu['on']):.1f}) | "
          f"{cpu_off:.1f} ({min(cpu['off']):.1f}–{max(cpu['off']):.1f}) | {cpu_on / cpu_off - 1:+.1%} |")
    print(f"paired cost per round (req/s): min {min(paired):+.1%}, median {statistics.median(paired):+.1%}, "
          f"max {max(paired):+.1%}; (CPU per request): min {min(cpu_paired):+.1%}, "
          f"median {statistics.median(cpu_paired):+.1%}, max {max(cpu_paired):+.1%}")
    print(f"series missing from the scrape: {', '.join(missing) or 'none'}; manifest GETs counted: {counted:,.0f}")
    print(f"RSS after the load (MB): on {rss['on']:.1f}, off {rss['off']:.1f}; "
          f"startup (s): on {startup['on']:.2f}, off {startup['off']:.2f}")
    if asgi:
        fastest_on, fastest_off = min(asgi["on"]), min(asgi["off"])
        print(f"in-process CPU time (application only, {args.asgi_repeats} repeats of {args.asgi_requests} GETs each): "
              f"fastest {fastest_on:.1f} µs with metrics, {fastest_off:.1f} µs without ({fastest_on / fastest_off - 1:+.1%}); "
              f"medians {statistics.median(asgi['on']):.1f} and {statistics.median(asgi['off']):.1f} µs")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2, default=str))
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
