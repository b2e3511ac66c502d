"""Renders the collected results as a markdown report (and a JSON dump of the raw numbers)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass

from .measure import LoadResult, Samples
from .suite import TargetResult

MB = 1e6
RSS_TARGET_MB = 120
STARTUP_TARGET_S = 0.5


@dataclass
class RunInfo:
    started_at: str
    command: str
    machine: dict[str, str]
    versions: dict[str, str]
    blob_size: int
    runs: int
    streams: int
    chunk_size: int
    tag_count: int
    tag_latency_runs: int
    load_duration_s: int
    load_connections: int
    load_threads: int
    sha256_rate: Samples
    curl_upload_ceiling: Samples
    file_write_rate: Samples  # new files kept: fresh page-cache pages (what a registry storing blobs sees)
    file_rewrite_rate: Samples | None = None  # each file deleted at once: recycled pages
    total_seconds: float = 0.0
    token_connections: int = 8
    load_at_end: str = ""
    pushes_alternated: bool = False
    """Push runs alternated between cargohold and Distribution (both up), not one target after the other."""


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines + [""]


def _mbps(samples: Samples | None) -> str:
    if samples is None:
        return "—"
    return f"**{samples.median / MB:,.0f}** ({samples.low / MB:,.0f}–{samples.high / MB:,.0f})"


def _ms_samples(samples: Samples | None) -> str:
    if samples is None:
        return "—"
    return f"**{samples.median:.2f}** ({samples.low:.2f}–{samples.high:.2f})"


def _rate(load: LoadResult | None) -> str:
    return "—" if load is None else f"**{load.requests_per_s:,.0f}**"


def _p99(load: LoadResult | None) -> str:
    return "—" if load is None else f"{load.p99_ms:.2f}"


def _load_errors(*loads: LoadResult | None) -> str:
    bad = sum(load.bad_responses + load.socket_errors for load in loads if load is not None)
    return str(bad)


def _by_name(results: list[TargetResult]) -> dict[str, TargetResult]:
    return {result.name: result for result in results}


# --- ratios -------------------------------------------------------------------------------------


@dataclass
class Ratio:
    label: str
    value: float | None
    target: str = ""
    higher_is_better: bool = True
    threshold: float | None = None

    def status(self) -> str:
        if self.threshold is None:
            return ""
        if self.value is None:
            return "not measured"
        return "met" if self.passed() else "not met"

    def passed(self) -> bool:
        assert self.value is not None and self.threshold is not None
        # "lower is better" targets are strict: p99 must be lower than the reference's.
        return self.value >= self.threshold if self.higher_is_better else self.value < self.threshold

    def formatted(self) -> str:
        return "n/a" if self.value is None else f"{self.value:.2f}"


def _median(samples: Samples | None) -> float | None:
    return None if samples is None else samples.median


def _div(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def _attr(result: TargetResult | None, getter: Callable[[TargetResult], float | None]) -> float | None:
    return None if result is None else getter(result)


def _load_value(name: str, field_name: str) -> Callable[[TargetResult], float | None]:
    def get(result: TargetResult) -> float | None:
        load: LoadResult | None = getattr(result, name)
        return None if load is None else getattr(load, field_name)

    return get


def _samples_median(name: str) -> Callable[[TargetResult], float | None]:
    return lambda result: _median(getattr(result, name))


def ratio_rows(
    subject: TargetResult | None,
    results: dict[str, TargetResult],
    sha_rate: float,
    with_targets: bool,
    storage_rate: float | None = None,
) -> list[Ratio]:
    nginx = results.get("nginx")
    dist = results.get("distribution")
    s_name = subject.name if subject else "cargohold"

    def vs(
        label: str,
        getter: Callable[[TargetResult], float | None],
        other: TargetResult | None,
        threshold: float | None = None,
        higher: bool = True,
        target: str = "",
    ) -> Ratio | None:
        if other is None or other is subject:
            return None
        value = _div(_attr(subject, getter), _attr(other, getter))
        return Ratio(
            f"{label}: {s_name} / {other.name}",
            value,
            target if with_targets else "",
            higher,
            threshold if with_targets else None,
        )

    single, parallel = _samples_median("get_single"), _samples_median("get_parallel")
    mono, chunked = _samples_median("push_monolithic"), _samples_median("push_chunked")
    parallel_push = _samples_median("push_parallel")
    rows = [
        vs("blob GET, 1 stream", single, nginx, 0.9, target=">= 0.9"),
        vs("blob GET, parallel streams", parallel, nginx),
        vs("blob GET, 1 stream", single, dist),
        vs("blob GET, parallel streams", parallel, dist),
        Ratio(
            f"monolithic push: {s_name} / sha256 rate",
            _div(_attr(subject, mono), sha_rate),
            ">= 0.4" if with_targets else "",
            True,
            0.4 if with_targets else None,
        ),
        Ratio(
            f"chunked push: {s_name} / sha256 rate",
            _div(_attr(subject, chunked), sha_rate),
            ">= 0.4" if with_targets else "",
            True,
            0.4 if with_targets else None,
        ),
        vs("monolithic push", mono, dist, 1.5, target=">= 1.5"),
        vs("chunked push", chunked, dist, 1.5, target=">= 1.5"),
        vs("4 parallel monolithic pushes, aggregate", parallel_push, dist, 1.5, target=">= 1.5"),
        Ratio(
            f"monolithic push: {s_name} / storage ceiling (fresh page cache)",
            _div(_attr(subject, mono), storage_rate),
        ),
        Ratio(
            f"chunked push: {s_name} / storage ceiling (fresh page cache)",
            _div(_attr(subject, chunked), storage_rate),
        ),
        vs(
            "manifest GET req/s (wrk)",
            _load_value("manifest_get_wrk", "requests_per_s"),
            dist,
            2.0,
            target=">= 2",
        ),
        vs(
            "manifest HEAD req/s (hey)",
            _load_value("manifest_head_hey", "requests_per_s"),
            dist,
            2.0,
            target=">= 2",
        ),
        vs(
            "manifest GET p99 (wrk), lower is better",
            _load_value("manifest_get_wrk", "p99_ms"),
            dist,
            1.0,
            higher=False,
            target="< 1",
        ),
        vs(
            "manifest HEAD p99 (hey), lower is better",
            _load_value("manifest_head_hey", "p99_ms"),
            dist,
            1.0,
            higher=False,
            target="< 1",
        ),
        vs(
            "manifest GET req/s (wrk)",
            _load_value("manifest_get_wrk", "requests_per_s"),
            nginx,
            0.4,
            target=">= 0.4",
        ),
        vs(
            "tags/list ms per request, lower is better",
            _samples_median("tags_latency_ms"),
            dist,
            higher=False,
        ),
        vs("tags/list req/s (wrk)", _load_value("tags_wrk", "requests_per_s"), dist),
    ]
    rows += auth_ratio_rows(subject, with_targets)
    return [row for row in rows if row is not None]


def auth_ratio_rows(subject: TargetResult | None, with_targets: bool) -> list[Ratio]:
    """Authenticated / anonymous load on the same server (only when the server measured auth)."""
    if (
        subject is None
        or subject.manifest_head_hey_bearer is None
        and subject.manifest_get_wrk_bearer is None
    ):
        return []

    def own(label: str, auth_field: str, anon_field: str, threshold: float | None = None) -> Ratio:
        value = _div(
            _load_value(auth_field, "requests_per_s")(subject),
            _load_value(anon_field, "requests_per_s")(subject),
        )
        target = f">= {threshold:g}" if threshold is not None and with_targets else ""
        return Ratio(label, value, target, True, threshold if with_targets else None)

    return [
        own(
            "manifest HEAD req/s (hey): bearer / anonymous",
            "manifest_head_hey_bearer",
            "manifest_head_hey",
            0.8,
        ),
        own("manifest GET req/s (wrk): bearer / anonymous", "manifest_get_wrk_bearer", "manifest_get_wrk"),
        own("manifest GET req/s (hey): bearer / anonymous", "manifest_get_hey_bearer", "manifest_get_hey"),
        own("manifest HEAD req/s (hey): basic / anonymous", "manifest_head_hey_basic", "manifest_head_hey"),
        own("manifest GET req/s (wrk): basic / anonymous", "manifest_get_wrk_basic", "manifest_get_wrk"),
    ]


def _ratio_table(rows: list[Ratio], with_targets: bool) -> list[str]:
    if with_targets:
        return _table(
            ["ratio", "value", "target", "status"],
            [[r.label, r.formatted(), r.target, r.status()] for r in rows],
        )
    return _table(["ratio", "value"], [[r.label, r.formatted()] for r in rows])


def _rss_row(result: TargetResult, with_target: bool) -> list[str]:
    if result.peak_rss_bytes is None:
        return [result.name, "—", "—", ""]
    mb = result.peak_rss_bytes / MB
    status = ("met" if mb <= RSS_TARGET_MB else "not met") if with_target else ""
    return [result.name, f"**{mb:,.1f}**", str(result.peak_rss_processes), status]


# --- sections -----------------------------------------------------------------------------------


def _header(info: RunInfo, results: list[TargetResult]) -> list[str]:
    cores = info.machine.get("nproc", "?")
    lines = [
        "# cargohold benchmark",
        "",
        (
            f"Run {info.started_at}, {info.total_seconds:.0f} s, targets: "
            f"{', '.join(r.name for r in results)}."
        ),
        "",
        f"`{info.command}`",
        "",
        (
            f"> **CPU:** this machine has {cores} cores. The server under test and the load generators "
            "(curl, wrk, hey) run on the same cores over loopback, so every number includes the client's "
            "CPU cost and absolute values depend on that sharing: compare ratios more than absolutes. "
            "Targets run one after another, never at the same time. All data is page-cache resident."
        ),
        "",
    ]
    lines += _table(["machine", ""], [[k, v] for k, v in info.machine.items()])
    lines += _table(["tool", "version"], [[k, v] for k, v in info.versions.items()])
    return lines


def _method(info: RunInfo) -> list[str]:
    size_mib = info.blob_size / (1 << 20)
    return [
        "## Method",
        "",
        f"- MB = 10^6 bytes. Throughput cells are **median** of {info.runs} runs, (min–max) in brackets.",
        (
            f"- Blob: {size_mib:.0f} MiB of random bytes. Registries serve it via `/v2/<repo>/blobs/<digest>`, "
            "nginx as a static file (`sendfile on`, `tcp_nopush on`). Single stream: `curl -o /dev/null`, "
            f"curl's `speed_download`. Parallel: {info.streams} curl processes at once; aggregate = "
            f"{info.streams} × size / wall time until the last finishes."
        ),
        (
            f"- Push: monolithic = POST `/blobs/uploads/` then `PUT <Location>&digest=` with `curl -T file` "
            f"(streamed, `Expect:` disabled); time = POST + curl `time_total`. Chunked = POST, PATCH "
            f"{info.chunk_size >> 20} MiB chunks with `Content-Range` to each returned Location, PUT ?digest= "
            "(httpx). Every push run uploads fresh content (first 64 bytes rewritten) so no blob is re-pushed; "
            "each push is verified with HEAD afterwards."
        ),
        (
            f"- sha256 reference: Python `hashlib.sha256` over {size_mib:.0f} MiB in memory, 1 MiB updates. "
            "Client ceiling: the same `curl -T` upload into a loopback socket that only reads and drops the "
            "bytes, i.e. the most the monolithic push client can deliver here. Storage ceiling: Python writes "
            "the same bytes to new files in the scratch directory (where the servers keep their data) in "
            "1 MiB writes, no fsync, keeping every file as a registry keeps its blobs, so each run needs "
            "page-cache pages never touched before. On this VM that first touch costs ~10x: the same writes "
            "with each file deleted at once (pages recycled) are shown too, and are not a ceiling for pushes."
        ),
        (
            f"- Manifest: a small OCI image (config, one 4 KiB layer, OCI manifest) pushed as `:latest`; "
            f"load by tag at {info.load_connections} connections for {info.load_duration_s} s after a warm-up. "
            f"GET with `wrk -t{info.load_threads} -c{info.load_connections} --latency` and the Accept header "
            "`application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json`. "
            "HEAD with `hey` (Debian's wrk 4.1 cannot do HEAD: its parser waits for the Content-Length body, "
            "wg/wrk#198); hey GET is shown too so HEAD and GET compare within one tool. hey reports latency "
            "in 0.1 ms steps and needs more CPU per request than wrk, so hey and wrk req/s are not comparable "
            "with each other. nginx serves the same manifest bytes as a static file."
        ),
        (
            f"- tags/list: one manifest PUT under {info.tag_count} tags in its own repository, then "
            f"`GET /v2/<repo>/tags/list` (no `n`): median of {info.tag_latency_runs} sequential requests over "
            f"one keep-alive connection, and wrk req/s at {info.load_connections} connections."
        ),
        (
            "- Auth (cargohold only; Distribution runs without auth): setup and pushes use basic auth with the "
            "Owner service principal from `<data-dir>/initial-credentials`; then `cargohold update "
            "--anonymous-pull-enabled true`, so all reads above are anonymous. The same manifest load is "
            "repeated with `Authorization: Bearer <token>` (a fresh token from `GET /oauth2/token?service=..."
            f"&scope=repository:bench/image:pull` before each test; wrk sets the header in its Lua script) and "
            f"with `Authorization: Basic ...`. Token endpoint: `hey -c {info.token_connections} -z "
            f"{info.load_duration_s}s` on `GET /oauth2/token` with basic auth (each request checks the "
            "secret with argon2id)."
        ),
        (
            "- Peak RSS: sum of VmRSS over the server's whole process tree (all processes in its session), "
            "sampled every 0.2 s from readiness to shutdown."
        ),
        "",
    ]


def _detail_tables(results: list[TargetResult], info: RunInfo) -> list[str]:
    registries = [r for r in results if r.name != "nginx"]
    lines = ["## Blob download (MB/s)", ""]
    lines += _table(
        ["target", "1 stream", f"{info.streams} streams, aggregate"],
        [[r.name, _mbps(r.get_single), _mbps(r.get_parallel)] for r in results],
    )
    lines += ["## Blob push (MB/s)", ""]
    push_rows = [[r.name, _mbps(r.push_monolithic), _mbps(r.push_chunked), _mbps(r.push_parallel)]
                 for r in registries]
    push_rows.append(["python sha256 (reference)", _mbps(info.sha256_rate), "", ""])
    push_rows.append(
        ["curl -T into a discarding socket (client ceiling)", _mbps(info.curl_upload_ceiling), "", ""]
    )
    push_rows.append(
        [
            "python: write new files and keep them, no fsync (storage ceiling: fresh page cache)",
            _mbps(info.file_write_rate),
            "",
            "",
        ]
    )
    push_rows.append(
        [
            "python: write a new file, delete it, repeat (recycled page cache, not a ceiling)",
            _mbps(info.file_rewrite_rate),
            "",
            "",
        ]
    )
    lines += _table(
        [
            "target",
            "monolithic",
            f"chunked ({info.chunk_size >> 20} MiB PATCH)",
            "4 parallel monolithic, aggregate",
        ],
        push_rows,
    )
    lines += [f"## Manifest by tag, {info.load_connections} connections (req/s, p99 ms)", ""]
    lines += _table(
        [
            "target",
            "GET req/s (wrk)",
            "GET p99",
            "HEAD req/s (hey)",
            "HEAD p99",
            "GET req/s (hey)",
            "GET p99 (hey)",
            "errors / non-2xx",
        ],
        [
            [
                r.name,
                _rate(r.manifest_get_wrk),
                _p99(r.manifest_get_wrk),
                _rate(r.manifest_head_hey),
                _p99(r.manifest_head_hey),
                _rate(r.manifest_get_hey),
                _p99(r.manifest_get_hey),
                _load_errors(r.manifest_get_wrk, r.manifest_head_hey, r.manifest_get_hey),
            ]
            for r in results
        ],
    )
    for r in results:
        if _has_auth(r):
            lines += _auth_tables(r, info)
    lines += [f"## tags/list with {info.tag_count} tags", ""]
    lines += _table(
        ["target", "tags returned", "ms per request", "req/s (wrk)", "p99 ms (wrk)", "tag PUTs/s (setup)"],
        [
            [
                r.name,
                str(r.tags_listed if r.tags_listed is not None else "—"),
                _ms_samples(r.tags_latency_ms),
                _rate(r.tags_wrk),
                _p99(r.tags_wrk),
                "—" if r.tag_puts_per_s is None else f"{r.tag_puts_per_s:,.0f}",
            ]
            for r in registries
        ],
    )
    lines += ["## Peak RSS of the server process tree", ""]
    lines += _table(
        ["target", "peak RSS (MB)", "processes", f"target <= {RSS_TARGET_MB} MB"],
        [_rss_row(r, r.name == "cargohold") for r in results],
    )
    return lines


def _has_auth(result: TargetResult) -> bool:
    return any(
        getattr(result, name) is not None
        for name in (
            "manifest_get_wrk_bearer",
            "manifest_head_hey_bearer",
            "manifest_get_wrk_basic",
            "manifest_head_hey_basic",
            "token_endpoint_hey",
        )
    )


AUTH_MODES = (("anonymous", ""), ("bearer token", "_bearer"), ("basic auth", "_basic"))


def _auth_tables(result: TargetResult, info: RunInfo) -> list[str]:
    lines = [
        (
            f"## {result.name}: manifest by tag with credentials, {info.load_connections} connections "
            "(req/s, p99 ms)"
        ),
        "",
    ]
    rows = []
    for mode, suffix in AUTH_MODES:
        get_wrk = getattr(result, "manifest_get_wrk" + suffix)
        head = getattr(result, "manifest_head_hey" + suffix)
        get_hey = getattr(result, "manifest_get_hey" + suffix)
        rows.append(
            [
                mode,
                _rate(get_wrk),
                _p99(get_wrk),
                _rate(head),
                _p99(head),
                _rate(get_hey),
                _p99(get_hey),
                _load_errors(get_wrk, head, get_hey),
            ]
        )
    lines += _table(
        [
            "auth",
            "GET req/s (wrk)",
            "GET p99",
            "HEAD req/s (hey)",
            "HEAD p99",
            "GET req/s (hey)",
            "GET p99 (hey)",
            "errors / non-2xx",
        ],
        rows,
    )
    token = result.token_endpoint_hey
    lines += _table(
        ["token endpoint (basic auth, hey)", "req/s", "p50 ms", "p99 ms", "requests", "errors / non-2xx"],
        [
            [
                f"GET /oauth2/token, {info.token_connections} connections, {info.load_duration_s} s",
                _rate(token),
                "—" if token is None else f"{token.p50_ms:.1f}",
                _p99(token),
                "—" if token is None else str(token.requests),
                _load_errors(token),
            ]
        ],
    )
    return lines


def _errors(results: list[TargetResult]) -> list[str]:
    failed = [(r.name, phase, error) for r in results for phase, error in r.errors.items()]
    if not failed:
        return []
    lines = ["## Failures", ""]
    lines += [f"- **{name}** / {phase}: `{error.splitlines()[0][:300]}`" for name, phase, error in failed]
    return lines + [""]


def render_markdown(info: RunInfo, results: list[TargetResult]) -> str:
    by_name = _by_name(results)
    sha = info.sha256_rate.median
    storage = info.file_write_rate.median
    lines = _header(info, results)
    lines += ["## Ratios", ""]
    cargohold = by_name.get("cargohold")
    if cargohold is not None:
        lines += ["### cargohold (with targets)", ""]
        lines += _ratio_table(
            ratio_rows(cargohold, by_name, sha, with_targets=True, storage_rate=storage), with_targets=True
        )
    else:
        lines += ["cargohold was not part of this run, so its target ratios are not measured.", ""]
    if "distribution" in by_name:
        lines += ["### distribution (reference, no targets)", ""]
        lines += _ratio_table(
            ratio_rows(by_name["distribution"], by_name, sha, with_targets=False, storage_rate=storage),
            with_targets=False,
        )
    lines += _detail_tables(results, info)
    lines += _errors(results)
    lines += _method(info)
    return "\n".join(lines).rstrip() + "\n"


def render_json(info: RunInfo, results: list[TargetResult]) -> str:
    return json.dumps(
        {"run": dataclasses.asdict(info), "results": [dataclasses.asdict(result) for result in results]},
        indent=2,
    )


def _revive(value: object) -> object:
    """JSON back into the dataclasses render_json wrote: Samples and LoadResult are recognised by their keys."""
    if isinstance(value, dict):
        if set(value) == {"values"}:
            return Samples(list(value["values"]))
        if "requests_per_s" in value and "tool" in value:
            return LoadResult(**value)
    return value


def load_json(text: str) -> tuple[RunInfo, list[TargetResult]]:
    """The inverse of render_json, so a saved run can be rendered again (e.g. docs wording changed)."""
    data = json.loads(text)
    run_fields = {f.name for f in dataclasses.fields(RunInfo)}
    result_fields = {f.name for f in dataclasses.fields(TargetResult)}
    info = RunInfo(**{k: _revive(v) for k, v in data["run"].items() if k in run_fields})
    results = [
        TargetResult(**{k: _revive(v) for k, v in item.items() if k in result_fields})
        for item in data["results"]
    ]
    return info, results
