"""The individual measurements. Each returns plain numbers; nothing here knows about a specific server."""

from __future__ import annotations

import hashlib
import re
import socket
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .oci import MANIFEST_ACCEPT, OCTET_STREAM, RegistryClient

CURL_TIMEOUT_S = 600


@dataclass
class Samples:
    """Repeated measurements of one quantity (higher or lower is better depending on the metric)."""

    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)


@dataclass
class LoadResult:
    tool: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    bad_responses: int
    socket_errors: int


class MeasurementError(RuntimeError):
    pass


def repeat(runs: int, measure_once: Callable[[int], float]) -> Samples:
    return Samples([measure_once(run) for run in range(runs)])


# --- hashing reference --------------------------------------------------------------------------


def sha256_rate(data: bytes, chunk_size: int = 1 << 20) -> float:
    """Bytes/s of hashlib.sha256 over data fed in chunk_size pieces."""
    view = memoryview(data)
    hasher = hashlib.sha256()
    started = time.perf_counter()
    for offset in range(0, len(view), chunk_size):
        hasher.update(view[offset : offset + chunk_size])
    hasher.hexdigest()
    return len(data) / (time.perf_counter() - started)


def file_write_rate(data: bytes, directory: Path, keep: bool = False, chunk_size: int = 1 << 20) -> float:
    """Bytes/s of writing data to a new file in directory (no fsync), in chunk_size writes.

    keep=False deletes the file at once, so the next run reuses the page-cache pages just freed.
    keep=True leaves it (the caller deletes it later), so every run needs pages never used before, as a
    registry does for each blob it keeps. On this VM the two differ by about 10x (first-touch memory).
    """
    target = directory / f"write-probe-{time.time_ns()}.bin"
    view = memoryview(data)
    try:
        started = time.perf_counter()
        with target.open("wb", buffering=0) as handle:
            for offset in range(0, len(view), chunk_size):
                handle.write(view[offset : offset + chunk_size])
        return len(data) / (time.perf_counter() - started)
    finally:
        if not keep:
            target.unlink(missing_ok=True)


# --- blob downloads with curl -------------------------------------------------------------------


def _curl_get_argv(url: str) -> list[str]:
    return [
        "curl",
        "-s",
        "-S",
        "-o",
        "/dev/null",
        "--max-time",
        str(CURL_TIMEOUT_S),
        "-w",
        "%{http_code} %{size_download} %{speed_download}",
        url,
    ]


def _parse_curl_get(output: str, url: str, expected_size: int) -> float:
    code, size, speed = output.split()
    if code != "200" or int(size) != expected_size:
        raise MeasurementError(f"GET {url}: HTTP {code}, {size} bytes (expected 200, {expected_size})")
    return float(speed)


def curl_download_rate(url: str, expected_size: int) -> float:
    """Single-stream download speed in bytes/s, as curl reports it."""
    done = subprocess.run(
        _curl_get_argv(url), capture_output=True, text=True, check=False, timeout=CURL_TIMEOUT_S + 30
    )
    if done.returncode != 0:
        raise MeasurementError(f"curl GET {url} failed ({done.returncode}): {done.stderr.strip()}")
    return _parse_curl_get(done.stdout, url, expected_size)


def parallel_download_rate(url: str, expected_size: int, streams: int) -> float:
    """Aggregate bytes/s of `streams` simultaneous curl downloads: total bytes / wall time of the slowest."""
    processes: list[subprocess.Popen[str]] = []
    try:
        started = time.perf_counter()
        for _ in range(streams):
            processes.append(
                subprocess.Popen(
                    _curl_get_argv(url), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
                )
            )
        outputs = [process.communicate(timeout=CURL_TIMEOUT_S + 30) for process in processes]
        elapsed = time.perf_counter() - started
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    for process, (stdout, stderr) in zip(processes, outputs):
        if process.returncode != 0:
            raise MeasurementError(f"curl GET {url} failed ({process.returncode}): {stderr.strip()}")
        _parse_curl_get(stdout, url, expected_size)
    return streams * expected_size / elapsed


# --- blob uploads -------------------------------------------------------------------------------


def curl_put_file(url: str, path: Path, auth: tuple[str, str] | None = None) -> float:
    """Streams path as the body of a PUT (curl -T); returns curl's total time in seconds."""
    argv = [
        "curl",
        "-s",
        "-S",
        "-o",
        "/dev/null",
        "--max-time",
        str(CURL_TIMEOUT_S),
        "-w",
        "%{http_code} %{time_total}",
        "-T",
        str(path),
        "-H",
        f"Content-Type: {OCTET_STREAM}",
        "-H",
        "Expect:",
        *(["-u", f"{auth[0]}:{auth[1]}"] if auth else []),
        url,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=CURL_TIMEOUT_S + 30)
    if done.returncode != 0:
        raise MeasurementError(f"curl PUT {url} failed ({done.returncode}): {done.stderr.strip()}")
    code, seconds = done.stdout.split()
    if code != "201":
        raise MeasurementError(f"curl PUT {url}: HTTP {code} (expected 201)")
    return float(seconds)


def _discard_one_request(listener: socket.socket) -> None:
    """Accept one HTTP request, read and drop its Content-Length body, answer 201."""
    conn, _ = listener.accept()
    with conn:
        head = b""
        while b"\r\n\r\n" not in head:
            head += conn.recv(65536)
        head, body_start = head.split(b"\r\n\r\n", 1)
        headers = [line.split(b":", 1) for line in head.split(b"\r\n")[1:]]
        length = next(int(value) for name, value in headers if name.strip().lower() == b"content-length")
        remaining = length - len(body_start)
        buffer = bytearray(1 << 20)
        while remaining > 0:
            received = conn.recv_into(buffer)
            if not received:
                break
            remaining -= received
        conn.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")


def curl_upload_ceiling(path: Path) -> float:
    """Bytes/s that `curl -T` reaches into a socket that only discards: the push client's own limit."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        sink = threading.Thread(target=_discard_one_request, args=(listener,), daemon=True)
        sink.start()
        seconds = curl_put_file(f"http://127.0.0.1:{listener.getsockname()[1]}/discard", path)
        sink.join(timeout=30)
    return path.stat().st_size / seconds


def monolithic_push_seconds(client: RegistryClient, repo: str, path: Path, digest: str) -> float:
    """POST an upload, then PUT ?digest= with the whole file streamed by curl. Returns seconds."""
    started = time.perf_counter()
    location = client.start_upload(repo)
    post_seconds = time.perf_counter() - started
    return post_seconds + curl_put_file(client.finish_url(location, digest), path, client.auth)


def chunked_push_seconds(
    client: RegistryClient, repo: str, path: Path, digest: str, chunk_size: int
) -> float:
    started = time.perf_counter()
    client.push_blob_chunked(repo, path, digest, chunk_size)
    return time.perf_counter() - started


# --- request-rate tests -------------------------------------------------------------------------

_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _wrk_duration_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise MeasurementError(f"cannot parse wrk latency {text!r}")
    return float(match.group(1)) * _UNIT_MS[match.group(2)]


def parse_wrk(output: str) -> LoadResult:
    def find(pattern: str) -> re.Match[str] | None:
        return re.search(pattern, output, re.MULTILINE)

    rate = find(r"^Requests/sec:\s+([\d.]+)")
    p50 = find(r"^\s+50%\s+(\S+)")
    p99 = find(r"^\s+99%\s+(\S+)")
    total = find(r"^\s+(\d+) requests in")
    if not (rate and p50 and p99 and total):
        raise MeasurementError(f"unexpected wrk output:\n{output}")
    non_2xx = find(r"Non-2xx or 3xx responses: (\d+)")
    socket_errors = find(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
    return LoadResult(
        tool="wrk",
        requests_per_s=float(rate.group(1)),
        p50_ms=_wrk_duration_ms(p50.group(1)),
        p99_ms=_wrk_duration_ms(p99.group(1)),
        requests=int(total.group(1)),
        bad_responses=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in socket_errors.groups()) if socket_errors else 0,
    )


def write_wrk_script(
    path: Path, method: str = "GET", accept: str | None = None, authorization: str | None = None
) -> Path:
    """A wrk Lua script setting the method and headers (wrk has no -m; headers go in the script)."""
    lines = [f'wrk.method = "{method}"']
    if accept:
        lines.append(f'wrk.headers["Accept"] = "{accept}"')
    if authorization:
        lines.append(f'wrk.headers["Authorization"] = "{authorization}"')
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)  # may hold a token or basic credentials
    return path


def wrk_argv(url: str, script: Path, duration_s: int, connections: int, threads: int) -> list[str]:
    return ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration_s}s", "--latency", "-s", str(script), url]


def run_wrk(url: str, script: Path, duration_s: int, connections: int, threads: int) -> LoadResult:
    argv = wrk_argv(url, script, duration_s, connections, threads)
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=duration_s + 60)
    if done.returncode != 0:
        raise MeasurementError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    return parse_wrk(done.stdout)


def parse_hey(output: str) -> LoadResult:
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"50% in ([\d.]+) secs", output)
    p99 = re.search(r"99% in ([\d.]+) secs", output)
    codes = {int(code): int(count) for code, count in re.findall(r"\[(\d{3})\]\s+(\d+) responses", output)}
    errors = re.search(r"Error distribution:(.*)", output, re.DOTALL)
    if not (rate and p50 and p99 and codes):
        raise MeasurementError(f"unexpected hey output:\n{output}")
    error_count = sum(int(n) for n in re.findall(r"\[(\d+)\]\s", errors.group(1))) if errors else 0
    return LoadResult(
        tool="hey",
        requests_per_s=float(rate.group(1)),
        p50_ms=float(p50.group(1)) * 1000,
        p99_ms=float(p99.group(1)) * 1000,
        requests=sum(codes.values()),
        bad_responses=sum(n for code, n in codes.items() if not 200 <= code < 400),
        socket_errors=error_count,
    )


def run_hey(
    url: str,
    method: str,
    duration_s: int,
    connections: int,
    accept: str | None = None,
    authorization: str | None = None,
) -> LoadResult:
    argv = ["hey", "-z", f"{duration_s}s", "-c", str(connections), "-m", method]
    if accept:
        argv += ["-H", f"Accept: {accept}"]
    if authorization:
        argv += ["-H", f"Authorization: {authorization}"]
    done = subprocess.run(argv + [url], capture_output=True, text=True, check=False, timeout=duration_s + 60)
    if done.returncode != 0:
        raise MeasurementError(f"hey failed ({done.returncode}): {done.stderr.strip()}")
    return parse_hey(done.stdout)


@dataclass
class LoadSettings:
    duration_s: int
    connections: int
    threads: int
    warmup_s: int
    script_dir: Path

    def wrk_get(
        self,
        url: str,
        accept: str | None = MANIFEST_ACCEPT,
        duration_s: int | None = None,
        authorization: str | None = None,
    ) -> LoadResult:
        script = write_wrk_script(self.script_dir / "get.lua", "GET", accept, authorization)
        if self.warmup_s:
            run_wrk(url, script, self.warmup_s, self.connections, self.threads)
        return run_wrk(url, script, duration_s or self.duration_s, self.connections, self.threads)

    def hey(
        self, url: str, method: str, accept: str | None = MANIFEST_ACCEPT, authorization: str | None = None
    ) -> LoadResult:
        if self.warmup_s:
            run_hey(url, method, self.warmup_s, self.connections, accept, authorization)
        return run_hey(url, method, self.duration_s, self.connections, accept, authorization)


def request_latency_ms(client: RegistryClient, url: str, runs: int) -> Samples:
    """Sequential GETs over one keep-alive connection; milliseconds per request."""
    samples = Samples()
    for _ in range(runs):
        started = time.perf_counter()
        response = client.http.get(url)
        response.raise_for_status()
        samples.values.append((time.perf_counter() - started) * 1000)
    return samples
