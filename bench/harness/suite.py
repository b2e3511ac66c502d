"""The benchmark sequence run against one started server, collecting a TargetResult."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import measure
from .measure import LoadResult, LoadSettings, Samples
from .oci import RegistryClient, SmallImage
from .servers import NGINX_BLOB_PATH, NGINX_MANIFEST_PATH, RunningServer

BLOB_REPO = "bench/blob"
PUSH_REPO = "bench/push"
IMAGE_REPO = "bench/image"
TAGS_REPO = "bench/tags"
IMAGE_TAG = "latest"


@dataclass
class TargetResult:
    name: str
    command: str = ""
    startup_s: float | None = None
    get_single: Samples | None = None  # bytes/s
    get_parallel: Samples | None = None  # bytes/s, aggregate
    push_monolithic: Samples | None = None  # bytes/s
    push_chunked: Samples | None = None  # bytes/s
    manifest_get_wrk: LoadResult | None = None
    manifest_get_hey: LoadResult | None = None
    manifest_head_hey: LoadResult | None = None
    tag_puts_per_s: float | None = None
    tags_listed: int | None = None
    tags_latency_ms: Samples | None = None
    tags_wrk: LoadResult | None = None
    manifest_head_hey_bearer: LoadResult | None = None
    manifest_get_hey_bearer: LoadResult | None = None
    manifest_head_hey_basic: LoadResult | None = None
    token_endpoint_hey: LoadResult | None = None
    peak_rss_bytes: int | None = None
    peak_rss_processes: int | None = None
    errors: dict[str, str] = field(default_factory=dict)


class PushSource:
    """A file whose first bytes are rewritten before each push, so no run re-pushes an existing blob."""

    def __init__(self, path: Path, data: bytes) -> None:
        self.path = path
        self.data = bytearray(data)
        path.write_bytes(data)

    @property
    def size(self) -> int:
        return len(self.data)

    def make_variant(self, label: str) -> str:
        stamp = label.encode().ljust(64, b"\0")[:64]
        self.data[:64] = stamp
        with self.path.open("r+b") as handle:
            handle.write(stamp)
        return "sha256:" + hashlib.sha256(self.data).hexdigest()


@dataclass
class BenchContext:
    blob_path: Path
    blob_digest: str
    blob_size: int
    push_source: PushSource
    image: SmallImage
    runs: int
    streams: int
    chunk_size: int
    tag_count: int
    tag_latency_runs: int
    load: LoadSettings
    log: Callable[[str], None] = print


def _run_phases(
    result: TargetResult, phases: list[tuple[str, Callable[[], None]]], log: Callable[[str], None]
) -> None:
    """Run every phase; a failing phase is recorded and the next one still runs."""
    for name, phase in phases:
        log(f"  [{result.name}] {name} ...")
        started = time.perf_counter()
        try:
            phase()
        except Exception as exc:  # noqa: BLE001 - one broken phase must not hide the others
            result.errors[name] = f"{type(exc).__name__}: {exc}"
            log(f"  [{result.name}] {name} FAILED: {exc}")
            log(traceback.format_exc(limit=3))
        else:
            log(f"  [{result.name}] {name} done in {time.perf_counter() - started:.1f}s")


def _download_phases(
    result: TargetResult, url: str, ctx: BenchContext
) -> list[tuple[str, Callable[[], None]]]:
    def single() -> None:
        measure.curl_download_rate(url, ctx.blob_size)  # untimed warm-up: connection setup, caches
        result.get_single = measure.repeat(ctx.runs, lambda _: measure.curl_download_rate(url, ctx.blob_size))

    def parallel() -> None:
        result.get_parallel = measure.repeat(
            ctx.runs, lambda _: measure.parallel_download_rate(url, ctx.blob_size, ctx.streams)
        )

    return [("blob GET single stream", single), (f"blob GET {ctx.streams} streams", parallel)]


def bench_static(server: RunningServer, ctx: BenchContext) -> TargetResult:
    """nginx: the same blob file and the manifest bytes as static files."""
    result = TargetResult(server.name)
    manifest_url = server.base_url + NGINX_MANIFEST_PATH

    def manifest_load() -> None:
        result.manifest_get_wrk = ctx.load.wrk_get(manifest_url)
        result.manifest_head_hey = ctx.load.hey(manifest_url, "HEAD")
        result.manifest_get_hey = ctx.load.hey(manifest_url, "GET")

    phases = _download_phases(result, server.base_url + NGINX_BLOB_PATH, ctx)
    phases.append(("manifest GET/HEAD load", manifest_load))
    _run_phases(result, phases, ctx.log)
    return result


def _push_rate(client: RegistryClient, ctx: BenchContext, mode: str, run: int) -> float:
    source = ctx.push_source
    digest = source.make_variant(f"cargohold-bench {mode} push {run} {time.time_ns()}")
    if mode == "monolithic":
        seconds = measure.monolithic_push_seconds(client, PUSH_REPO, source.path, digest)
    else:
        seconds = measure.chunked_push_seconds(client, PUSH_REPO, source.path, digest, ctx.chunk_size)
    response = client.http.head(f"/v2/{PUSH_REPO}/blobs/{digest}")
    if response.status_code != 200 or int(response.headers.get("Content-Length", -1)) != source.size:
        raise measure.MeasurementError(
            f"{mode} push of {digest}: HEAD says HTTP {response.status_code}, "
            f"Content-Length {response.headers.get('Content-Length')}"
        )
    return source.size / seconds


def _push_tags(client: RegistryClient, ctx: BenchContext, result: TargetResult) -> None:
    client.push_small_image(TAGS_REPO, ctx.image, "tag-00000")
    started = time.perf_counter()
    for index in range(1, ctx.tag_count):
        client.put_manifest(TAGS_REPO, f"tag-{index:05d}", ctx.image.manifest)
    result.tag_puts_per_s = (ctx.tag_count - 1) / (time.perf_counter() - started)


def bench_registry(server: RunningServer, ctx: BenchContext) -> TargetResult:
    result = TargetResult(server.name)
    client = RegistryClient(server.base_url, auth=server.credentials)
    blob_url = client.blob_url(BLOB_REPO, ctx.blob_digest)
    manifest_url = client.manifest_url(IMAGE_REPO, IMAGE_TAG)
    tags_url = client.tags_url(TAGS_REPO)

    def seed_blob() -> None:
        measure.monolithic_push_seconds(client, BLOB_REPO, ctx.blob_path, ctx.blob_digest)
        client.check_blob(BLOB_REPO, ctx.blob_digest, ctx.blob_size)

    def push(mode: str) -> Callable[[], None]:
        def run() -> None:
            samples = measure.repeat(ctx.runs, lambda run_index: _push_rate(client, ctx, mode, run_index))
            setattr(result, f"push_{mode}", samples)

        return run

    def manifest_load() -> None:
        client.push_small_image(IMAGE_REPO, ctx.image, IMAGE_TAG)
        client.check_manifest(IMAGE_REPO, IMAGE_TAG, ctx.image)
        result.manifest_get_wrk = ctx.load.wrk_get(manifest_url)
        result.manifest_head_hey = ctx.load.hey(manifest_url, "HEAD")
        result.manifest_get_hey = ctx.load.hey(manifest_url, "GET")

    def authenticated_load() -> None:
        """The same HEAD/GET with a bearer token from the token service, and with basic credentials."""
        assert server.credentials is not None
        token_url = f"{server.base_url}/oauth2/token?scope=repository:{IMAGE_REPO}:pull"

        def bearer() -> str:
            reply = client.http.get(token_url)
            reply.raise_for_status()
            return "Bearer " + reply.json()["access_token"]

        result.manifest_head_hey_bearer = ctx.load.hey(manifest_url, "HEAD", authorization=bearer())
        result.manifest_get_hey_bearer = ctx.load.hey(manifest_url, "GET", authorization=bearer())
        basic = "Basic " + base64.b64encode(":".join(server.credentials).encode()).decode()
        result.manifest_head_hey_basic = ctx.load.hey(manifest_url, "HEAD", authorization=basic)
        result.token_endpoint_hey = measure.run_hey(token_url, "GET", ctx.load.duration_s, 8, None, basic)

    def tags_list() -> None:
        _push_tags(client, ctx, result)
        result.tags_listed = len(json.loads(client.list_tags(TAGS_REPO).content).get("tags") or [])
        result.tags_latency_ms = measure.request_latency_ms(client, tags_url, ctx.tag_latency_runs)
        result.tags_wrk = ctx.load.wrk_get(tags_url, accept=None)

    phases = [("seed blob (push + verify)", seed_blob)]
    phases += _download_phases(result, blob_url, ctx)
    phases += [
        ("monolithic push", push("monolithic")),
        ("chunked push", push("chunked")),
        ("manifest GET/HEAD load", manifest_load),
        (f"tags/list with {ctx.tag_count} tags", tags_list),
    ]
    if server.credentials is not None:
        phases.append(("manifest HEAD/GET with credentials, token endpoint", authenticated_load))
    try:
        _run_phases(result, phases, ctx.log)
    finally:
        client.close()
    return result


def make_random_file(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data
