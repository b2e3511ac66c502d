#!/usr/bin/env python3
"""Benchmark cargohold against the CNCF Distribution registry and nginx on loopback, in one run.

    python bench/run.py [--targets cargohold,distribution,nginx] [--cargohold-cmd "..."] \
                        [--out bench/results/latest.md]

Every server is started by this script in a temporary directory and killed (whole process tree)
when its turn ends, also on errors and on Ctrl-C / SIGTERM. See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import shutil
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from harness import docs, report, servers, sysinfo
from harness.measure import LoadSettings, Samples, curl_upload_ceiling, file_write_rate, repeat, sha256_rate
from harness.oci import make_small_image, sha256_digest
from harness.procs import RssSampler, ServerStartError, raise_on_sigterm
from harness.suite import (
    TOKEN_CONNECTIONS,
    BenchContext,
    ParallelSources,
    PushSource,
    TargetResult,
    bench_registry,
    bench_static,
    make_random_file,
    push_duel,
)

ALL_TARGETS = ("cargohold", "distribution", "nginx")
REQUIRED_TOOLS = ("curl", "wrk", "hey")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--targets",
        default=",".join(ALL_TARGETS),
        help="comma-separated subset of: " + ", ".join(ALL_TARGETS),
    )
    parser.add_argument(
        "--cargohold-cmd",
        default=None,
        help="command template for the cargohold server; placeholders {host} {port} "
        "{data_dir} {python}. Default: "
        + servers.DEFAULT_CARGOHOLD_CMD
        + " (or '{python} -m cargohold ...' when no console script is on PATH)",
    )
    parser.add_argument(
        "--cargohold-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment variable for the cargohold server (repeatable)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).parent / "results" / "latest.md",
        help="markdown report path; raw numbers go to the same path with .json",
    )
    parser.add_argument(
        "--docs",
        type=Path,
        default=None,
        help="also write the published summary of this run here (e.g. docs/benchmarks.md)",
    )
    parser.add_argument(
        "--render-from",
        type=Path,
        default=None,
        metavar="JSON",
        help="measure nothing: render --docs (and --out unless it is the JSON itself) again from a saved "
        "run's .json, e.g. after changing the report wording",
    )
    parser.add_argument("--blob-mib", type=int, default=256, help="blob size for GET/push tests")
    parser.add_argument("--runs", type=int, default=3, help="repetitions of each throughput test")
    parser.add_argument("--streams", type=int, default=8, help="concurrent streams for parallel GET")
    parser.add_argument("--chunk-mib", type=int, default=8, help="PATCH size for the chunked push")
    parser.add_argument(
        "--no-parallel-push", action="store_true", help="skip the 4 parallel monolithic pushes"
    )
    parser.add_argument(
        "--sequential-push",
        action="store_true",
        help="measure pushes inside each target's turn instead of alternating cargohold and Distribution",
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk/hey load test")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up before each load test")
    parser.add_argument("--connections", type=int, default=32, help="connections for wrk/hey")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--tags", type=int, default=1000, help="tags in the tags/list repository")
    parser.add_argument("--tag-latency-runs", type=int, default=20, help="sequential tags/list requests")
    parser.add_argument(
        "--ready-timeout",
        type=float,
        default=60.0,
        help="seconds to wait for GET /v2/ to answer 200 (cargohold: 200 or 401)",
    )
    parser.add_argument("--tmp-dir", type=Path, default=None, help="parent of the scratch directory")
    parser.add_argument("--keep-tmp", action="store_true", help="keep the scratch directory (logs, data)")
    args = parser.parse_args(argv)
    args.cargohold_env = parse_env(args.cargohold_env)
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = sorted(set(args.targets) - set(ALL_TARGETS))
    if unknown or not args.targets:
        parser.error(f"unknown or empty --targets {unknown}; choose from {', '.join(ALL_TARGETS)}")
    return args


def check_tools(targets: list[str]) -> None:
    needed = list(REQUIRED_TOOLS)
    needed += ["docker-registry"] if "distribution" in targets else []
    needed += ["nginx"] if "nginx" in targets else []
    missing = [
        tool for tool in needed if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists()
    ]
    if missing:
        sys.exit(f"missing tools: {', '.join(missing)}; run bench/setup.sh first")


def parse_env(pairs: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            sys.exit(f"--cargohold-env expects KEY=VALUE, got {pair!r}")
        env[key] = value
    return env


def start_target(
    name: str, workdir: Path, args: argparse.Namespace, ctx: BenchContext
) -> servers.RunningServer:
    if name == "cargohold":
        template = args.cargohold_cmd or servers.default_cargohold_cmd()
        return servers.start_cargohold(workdir, template, args.cargohold_env, args.ready_timeout)
    if name == "distribution":
        return servers.start_distribution(workdir, args.ready_timeout)
    return servers.start_nginx(workdir, ctx.blob_path, ctx.image.manifest, args.ready_timeout)


def bench_pushes(scratch: Path, args: argparse.Namespace, ctx: BenchContext) -> dict[str, TargetResult]:
    """Run cargohold and Distribution side by side (each idle while the other pushes) and alternate their
    push measurements run by run; RSS is sampled throughout. Returns the push results by target name."""
    names = [name for name in args.targets if name in ("cargohold", "distribution")]
    running: list[tuple[servers.RunningServer, RssSampler]] = []
    log(f"== pushes, alternating between {' and '.join(names)}")
    try:
        for name in names:
            workdir = scratch / f"{name}-push"
            workdir.mkdir()
            server = start_target(name, workdir, args, ctx)
            sampler = RssSampler(server.process.pid)
            sampler.start()
            running.append((server, sampler))
        results = push_duel([server for server, _ in running], ctx)
    except (ServerStartError, OSError) as exc:
        log(f"== pushes: could not start a server: {exc}")
        return {}
    finally:
        for server, sampler in running:
            sampler.stop()
            server.stop()
    for server, sampler in running:
        result = results[server.name]
        result.peak_rss_bytes = sampler.peak_bytes
        result.peak_rss_processes = sampler.peak_processes
        if result.errors:
            log(f"== {server.name}: server log tail:\n{server.process.log_tail()}")
    return results


def merge_pushes(result: TargetResult, pushed: TargetResult | None) -> TargetResult:
    if pushed is None:
        return result
    result.push_monolithic = pushed.push_monolithic
    result.push_chunked = pushed.push_chunked
    result.push_parallel = pushed.push_parallel
    result.errors.update(pushed.errors)
    if pushed.peak_rss_bytes is not None and (result.peak_rss_bytes or 0) < pushed.peak_rss_bytes:
        result.peak_rss_bytes = pushed.peak_rss_bytes
        result.peak_rss_processes = pushed.peak_rss_processes
    return result


def bench_target(
    name: str, scratch: Path, args: argparse.Namespace, ctx: BenchContext, pushes: bool = True
) -> TargetResult:
    """Start one server, benchmark it while sampling its RSS, and always stop it again."""
    workdir = scratch / name
    workdir.mkdir()
    log(f"== {name}: starting")
    try:
        server = start_target(name, workdir, args, ctx)
    except (ServerStartError, OSError) as exc:
        log(f"== {name}: could not start: {exc}")
        return TargetResult(name, errors={"start": str(exc)})
    sampler = RssSampler(server.process.pid)
    try:
        sampler.start()
        log(f"== {name}: ready at {server.base_url} after {server.startup_s:.2f}s (pid {server.process.pid})")
        result = bench_registry(server, ctx, pushes) if server.is_registry else bench_static(server, ctx)
    finally:
        sampler.stop()
        server.stop()
        log(f"== {name}: stopped")
    if result.errors:
        log(f"== {name}: server log tail (whole log kept with --keep-tmp):\n{server.process.log_tail()}")
    result.command = shlex.join(server.command)
    result.startup_s = server.startup_s
    result.peak_rss_bytes = sampler.peak_bytes
    result.peak_rss_processes = sampler.peak_processes
    if not args.keep_tmp:
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def build_context(scratch: Path, args: argparse.Namespace) -> BenchContext:
    size = args.blob_mib << 20
    log(f"generating {args.blob_mib} MiB blob and push source ...")
    blob_path = scratch / "blob.bin"
    blob_digest = sha256_digest(make_random_file(blob_path, size))
    push_source = PushSource(scratch / "push.bin", os.urandom(size))
    load = LoadSettings(
        duration_s=args.duration,
        connections=args.connections,
        threads=args.threads,
        warmup_s=args.warmup,
        script_dir=scratch,
    )
    parallel = None if args.no_parallel_push else ParallelSources(push_source, scratch)
    ctx = BenchContext(
        blob_path=blob_path,
        blob_digest=blob_digest,
        blob_size=size,
        push_source=push_source,
        image=make_small_image(),
        runs=args.runs,
        streams=args.streams,
        chunk_size=args.chunk_mib << 20,
        tag_count=args.tags,
        tag_latency_runs=args.tag_latency_runs,
        load=load,
        log=log,
        parallel=parallel,
    )
    return ctx


@dataclass
class References:
    sha256_rate: Samples
    file_write_rate: Samples
    file_rewrite_rate: Samples
    curl_upload_ceiling: Samples


def measure_references(ctx: BenchContext, scratch: Path, runs: int) -> References:
    """Machine-only numbers the push results are compared with (no server running)."""
    blob = ctx.blob_path.read_bytes()
    log("measuring python sha256 rate, file write rate and curl upload ceiling ...")
    probes = scratch / "write-probes"
    probes.mkdir()
    try:
        # Kept files: fresh page-cache pages each run, as for blobs a registry stores and keeps.
        new_pages = repeat(runs, lambda _: file_write_rate(blob, probes, keep=True))
    finally:
        shutil.rmtree(probes, ignore_errors=True)
    return References(
        sha256_rate=repeat(runs, lambda _: sha256_rate(blob)),
        file_write_rate=new_pages,
        file_rewrite_rate=repeat(runs, lambda _: file_write_rate(blob, scratch, keep=False)),
        curl_upload_ceiling=repeat(runs, lambda _: curl_upload_ceiling(ctx.push_source.path)),
    )


def run(args: argparse.Namespace, argv: list[str]) -> str:
    started = time.monotonic()
    started_at = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = sysinfo.machine_info()
    load1 = os.getloadavg()[0]
    if load1 > 1.0:
        log(
            f"warning: load average {load1:.2f} at start; other jobs compete for the CPU and lower the numbers"
        )
    with ExitStack() as stack:
        scratch = Path(tempfile.mkdtemp(prefix="cargohold-bench-", dir=args.tmp_dir))
        if args.keep_tmp:
            log(f"scratch directory kept at {scratch}")
        else:
            stack.callback(shutil.rmtree, scratch, ignore_errors=True)
        ctx = build_context(scratch, args)
        refs = measure_references(ctx, scratch, args.runs)
        alternate = not args.sequential_push and {"cargohold", "distribution"} <= set(args.targets)
        pushed = bench_pushes(scratch, args, ctx) if alternate else {}
        results = [
            merge_pushes(bench_target(name, scratch, args, ctx, pushes=not alternate), pushed.get(name))
            for name in args.targets
        ]
    info = report.RunInfo(
        started_at=started_at,
        command=shlex.join(["python", "bench/run.py", *argv]),
        machine=machine,
        versions=sysinfo.tool_versions(),
        blob_size=ctx.blob_size,
        runs=args.runs,
        streams=args.streams,
        chunk_size=ctx.chunk_size,
        tag_count=args.tags,
        tag_latency_runs=args.tag_latency_runs,
        load_duration_s=args.duration,
        load_connections=args.connections,
        load_threads=args.threads,
        sha256_rate=refs.sha256_rate,
        curl_upload_ceiling=refs.curl_upload_ceiling,
        file_write_rate=refs.file_write_rate,
        file_rewrite_rate=refs.file_rewrite_rate,
        total_seconds=time.monotonic() - started,
        token_connections=TOKEN_CONNECTIONS,
        load_at_end="{:.2f}, {:.2f}".format(*os.getloadavg()[:2]),
        pushes_alternated=alternate,
    )
    markdown = report.render_markdown(info, results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown)
    args.out.with_suffix(".json").write_text(report.render_json(info, results))
    log(f"report written to {args.out} (+ {args.out.with_suffix('.json').name})")
    if args.docs is not None:
        args.docs.parent.mkdir(parents=True, exist_ok=True)
        args.docs.write_text(docs.keep_foreign_sections(args.docs, docs.render_docs(info, results)))
        log(f"summary written to {args.docs}")
    return markdown


def rerender(args: argparse.Namespace) -> str:
    """Write the reports again from a saved run; every number still comes from that one run."""
    info, results = report.load_json(args.render_from.read_text())
    markdown = report.render_markdown(info, results)
    if args.out.with_suffix(".json").resolve() == args.render_from.resolve():
        args.out.write_text(markdown)
        log(f"report rewritten: {args.out} (from {args.render_from})")
    if args.docs is not None:
        args.docs.write_text(docs.keep_foreign_sections(args.docs, docs.render_docs(info, results)))
        log(f"summary rewritten: {args.docs} (from {args.render_from})")
    return markdown


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.render_from is not None:
        rerender(args)
        return 0
    check_tools(args.targets)
    raise_on_sigterm()
    print(run(args, argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
