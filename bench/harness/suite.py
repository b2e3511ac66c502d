"""The benchmark sequence run against one started server, collecting a TargetResult."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from . import measure
from .measure import LoadResult, LoadSettings, Samples
from .oci import MANIFEST_ACCEPT, RegistryClient, SmallImage, expect_status
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
    push_parallel: Samples | None = None  # bytes/s, aggregate of PARALLEL_PUSHES monolithic pushes at once
    manifest_get_wrk: LoadResult | None = None
    manifest_get_hey: LoadResult | None = None
    manifest_head_hey: LoadResult | None = None
    tag_puts_per_s: float | None = None
    tags_listed: int | None = None
    tags_latency_ms: Samples | None = None
    tags_wrk: LoadResult | None = None
    # Only for a server with auth (cargohold): the same manifest load with credentials on every request.
    manifest_get_wrk_bearer: LoadResult | None = None
    manifest_head_hey_bearer: LoadResult | None = None
    manifest_get_hey_bearer: LoadResult | None = None
    manifest_get_wrk_basic: LoadResult | None = None
    manifest_head_hey_basic: LoadResult | None = None
    manifest_get_hey_basic: LoadResult | None = None
    token_endpoint_hey: LoadResult | None = None  # GET /oauth2/token with basic auth
    token_service: str | None = None
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


PARALLEL_PUSHES = 4


class ParallelSources:
    """PARALLEL_PUSHES files with the push source's bytes, each stamped anew before every parallel push."""

    def __init__(self, source: PushSource, directory: Path) -> None:
        self.sources = [PushSource(directory / f"parallel-{index}.bin", bytes(source.data))
                        for index in range(PARALLEL_PUSHES)]

    def variants(self, label: str) -> list[tuple[Path, str]]:
        return [(item.path, item.make_variant(f"{label} {index}")) for index, item in enumerate(self.sources)]


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
    parallel: ParallelSources | None = None


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


def _parallel_push_rate(client: RegistryClient, ctx: BenchContext, run: int) -> float:
    """Aggregate bytes/s of PARALLEL_PUSHES monolithic pushes of distinct blobs started together."""
    assert ctx.parallel is not None
    variants = ctx.parallel.variants(f"cargohold-bench parallel push {run} {time.time_ns()}")
    failures: list[BaseException] = []

    def push(path: Path, digest: str) -> None:
        try:
            measure.monolithic_push_seconds(client, PUSH_REPO, path, digest)
        except BaseException as error:  # noqa: BLE001 - reported below
            failures.append(error)

    threads = [threading.Thread(target=push, args=variant) for variant in variants]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if failures:
        raise failures[0]
    for _, digest in variants:
        response = client.http.head(f"/v2/{PUSH_REPO}/blobs/{digest}")
        if response.status_code != 200:
            raise measure.MeasurementError(
                f"parallel push of {digest}: HEAD says HTTP {response.status_code}"
            )
    return sum(item.size for item in ctx.parallel.sources) / seconds


PUSH_MODES = ("monolithic", "chunked", "parallel")


def push_once(client: RegistryClient, ctx: BenchContext, mode: str, run: int) -> float:
    if mode == "parallel":
        return _parallel_push_rate(client, ctx, run)
    return _push_rate(client, ctx, mode, run)


def push_duel(servers: list[RunningServer], ctx: BenchContext) -> dict[str, TargetResult]:
    """Every push measurement, alternating between the servers run by run (A, B, A, B, ...), so that load
    from other jobs on the machine falls on all of them alike. Returns each server's push samples."""
    results = {server.name: TargetResult(server.name) for server in servers}
    clients = {server.name: RegistryClient(server.base_url, auth=server.credentials) for server in servers}
    try:
        for mode in PUSH_MODES:
            if mode == "parallel" and ctx.parallel is None:
                continue
            for run in range(ctx.runs):
                for server in servers:
                    result = results[server.name]
                    if mode in result.errors:
                        continue
                    ctx.log(f"  [{server.name}] {mode} push {run + 1}/{ctx.runs} ...")
                    try:
                        rate = push_once(clients[server.name], ctx, mode, run)
                    except Exception as exc:  # noqa: BLE001 - one failing mode must not hide the others
                        result.errors[f"{mode} push"] = f"{type(exc).__name__}: {exc}"
                        ctx.log(f"  [{server.name}] {mode} push FAILED: {exc}")
                        continue
                    samples = getattr(result, f"push_{mode}") or Samples()
                    samples.values.append(rate)
                    setattr(result, f"push_{mode}", samples)
    finally:
        for client in clients.values():
            client.close()
    return results


def _push_tags(client: RegistryClient, ctx: BenchContext, result: TargetResult) -> None:
    client.push_small_image(TAGS_REPO, ctx.image, "tag-00000")
    started = time.perf_counter()
    for index in range(1, ctx.tag_count):
        client.put_manifest(TAGS_REPO, f"tag-{index:05d}", ctx.image.manifest)
    result.tag_puts_per_s = (ctx.tag_count - 1) / (time.perf_counter() - started)


TOKEN_CONNECTIONS = 8
FALLBACK_TOKEN_SERVICE = "cargohold.localhost"


def _bearer_challenge(base_url: str) -> tuple[str, str]:
    """(realm, service) from the 401 challenge of GET /v2/; cargohold's defaults if there is none."""
    response = httpx.get(base_url + "/v2/", timeout=10)
    params = dict(re.findall(r'(\w+)="([^"]*)"', response.headers.get("WWW-Authenticate", "")))
    realm = params.get("realm") or base_url + "/oauth2/token"
    if not realm.startswith(base_url):  # the challenge may name another host; always ask this server
        realm = base_url + httpx.URL(realm).path
    return realm, params.get("service") or FALLBACK_TOKEN_SERVICE


def _expect_clean(label: str, load: LoadResult, result: TargetResult | None = None) -> LoadResult:
    """A load test answered with 401s or errors measures the wrong thing. Over 1 % bad answers fail the
    phase (no number is kept); fewer are listed under Failures, and the number is kept."""
    bad = load.bad_responses + load.socket_errors
    if not bad:
        return load
    message = (
        f"{label}: {load.bad_responses} non-2xx/3xx answers and {load.socket_errors} socket errors "
        f"out of {load.requests} requests ({load.requests_per_s:,.0f} req/s)"
    )
    if bad > 0.01 * max(load.requests, 1) or result is None:
        raise measure.MeasurementError(message)
    result.errors[label] = message + " (kept: under 1 %)"
    return load


def bench_registry(server: RunningServer, ctx: BenchContext, pushes: bool = True) -> TargetResult:
    """Pushes and setup use the server's credentials (if any); every read that is measured is anonymous.
    pushes=False: the push measurements were taken elsewhere (`push_duel`)."""
    result = TargetResult(server.name)
    client = RegistryClient(server.base_url, auth=server.credentials)
    reader = RegistryClient(server.base_url)  # anonymous, like the wrk/hey/curl reads
    blob_url = client.blob_url(BLOB_REPO, ctx.blob_digest)
    manifest_url = client.manifest_url(IMAGE_REPO, IMAGE_TAG)
    tags_url = client.tags_url(TAGS_REPO)

    def seed_blob() -> None:
        measure.monolithic_push_seconds(client, BLOB_REPO, ctx.blob_path, ctx.blob_digest)
        reader.check_blob(BLOB_REPO, ctx.blob_digest, ctx.blob_size)

    def push(mode: str) -> Callable[[], None]:
        def run() -> None:
            samples = measure.repeat(ctx.runs, lambda run_index: push_once(client, ctx, mode, run_index))
            setattr(result, f"push_{mode}", samples)

        return run

    def manifest_load() -> None:
        client.push_small_image(IMAGE_REPO, ctx.image, IMAGE_TAG)
        reader.check_manifest(IMAGE_REPO, IMAGE_TAG, ctx.image)
        result.manifest_get_wrk = _expect_clean("GET (wrk)", ctx.load.wrk_get(manifest_url), result)
        result.manifest_head_hey = _expect_clean("HEAD (hey)", ctx.load.hey(manifest_url, "HEAD"), result)
        result.manifest_get_hey = _expect_clean("GET (hey)", ctx.load.hey(manifest_url, "GET"), result)

    def tags_list() -> None:
        _push_tags(client, ctx, result)
        result.tags_listed = len(json.loads(reader.list_tags(TAGS_REPO).content).get("tags") or [])
        result.tags_latency_ms = measure.request_latency_ms(reader, tags_url, ctx.tag_latency_runs)
        result.tags_wrk = _expect_clean("tags/list (wrk)", ctx.load.wrk_get(tags_url, accept=None), result)

    phases = [("seed blob (push + verify)", seed_blob)]
    phases += _download_phases(result, blob_url, ctx)
    if pushes:
        phases += [("monolithic push", push("monolithic")), ("chunked push", push("chunked"))]
        if ctx.parallel is not None:
            phases += [("parallel push", push("parallel"))]
    phases += [
        ("manifest GET/HEAD load", manifest_load),
        (f"tags/list with {ctx.tag_count} tags", tags_list),
    ]
    if server.credentials is not None:
        phases += _auth_phases(server, ctx, result, client, manifest_url)
    try:
        _run_phases(result, phases, ctx.log)
    finally:
        client.close()
        reader.close()
    return result


def _auth_phases(
    server: RunningServer, ctx: BenchContext, result: TargetResult, client: RegistryClient, manifest_url: str
) -> list[tuple[str, Callable[[], None]]]:
    """Manifest HEAD/GET by tag with a bearer token and with basic auth; the token endpoint itself."""
    assert server.credentials is not None
    basic = "Basic " + base64.b64encode(":".join(server.credentials).encode()).decode()
    token_urls: list[str] = []

    def token_url() -> str:
        """GET /oauth2/token?service=...&scope=repository:bench/image:pull, realm and service from the challenge."""
        if not token_urls:
            realm, service = _bearer_challenge(server.base_url)
            result.token_service = service
            params = {"service": service, "scope": f"repository:{IMAGE_REPO}:pull"}
            token_urls.append(str(httpx.URL(realm, params=params)))
        return token_urls[0]

    def fresh_bearer() -> str:
        """A new token right before each load test (they live 15 minutes); checked on one HEAD first."""
        reply = client.http.get(token_url())
        expect_status(reply, 200)
        header = "Bearer " + reply.json()["access_token"]
        check = httpx.head(manifest_url, headers={"Authorization": header, "Accept": MANIFEST_ACCEPT})
        expect_status(check, 200)
        return header

    def bearer_load() -> None:
        wrk_get = ctx.load.wrk_get(manifest_url, authorization=fresh_bearer())
        result.manifest_get_wrk_bearer = _expect_clean("bearer GET (wrk)", wrk_get, result)
        head = ctx.load.hey(manifest_url, "HEAD", authorization=fresh_bearer())
        result.manifest_head_hey_bearer = _expect_clean("bearer HEAD (hey)", head, result)
        get = ctx.load.hey(manifest_url, "GET", authorization=fresh_bearer())
        result.manifest_get_hey_bearer = _expect_clean("bearer GET (hey)", get, result)

    def basic_load() -> None:
        expect_status(
            httpx.head(manifest_url, headers={"Authorization": basic, "Accept": MANIFEST_ACCEPT}), 200
        )
        wrk_get = ctx.load.wrk_get(manifest_url, authorization=basic)
        result.manifest_get_wrk_basic = _expect_clean("basic GET (wrk)", wrk_get, result)
        head = ctx.load.hey(manifest_url, "HEAD", authorization=basic)
        result.manifest_head_hey_basic = _expect_clean("basic HEAD (hey)", head, result)
        get = ctx.load.hey(manifest_url, "GET", authorization=basic)
        result.manifest_get_hey_basic = _expect_clean("basic GET (hey)", get, result)

    def token_endpoint() -> None:
        load = measure.run_hey(token_url(), "GET", ctx.load.duration_s, TOKEN_CONNECTIONS, None, basic)
        result.token_endpoint_hey = _expect_clean("token endpoint (hey)", load, result)

    return [
        ("manifest HEAD/GET with a bearer token", bearer_load),
        ("manifest HEAD/GET with basic auth", basic_load),
        (f"token endpoint, {TOKEN_CONNECTIONS} connections", token_endpoint),
    ]


def make_random_file(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data
