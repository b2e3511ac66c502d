"""Prometheus metrics: the series a scrape shows after traffic, summed correctly over two server workers, and
who may scrape them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.images import make_image, push_image
from tests.support.server import RunningServer, free_port

pytestmark = pytest.mark.backend_independent

MANIFEST_ROUTE = "/v2/{name:path}/manifests/{reference}"
TOKEN = "scrape-secret-0123456789"
PULLS = 120


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = RunningServer(tmp_path_factory.mktemp("metrics") / "data", extra_args=["--workers", "2"]).start()
    yield running
    running.stop()


def scrape(url: str, **kwargs: object) -> dict[str, float]:
    response = httpx.get(f"{url}/metrics", timeout=30, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for line in response.text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def series(samples: dict[str, float], name: str, **labels: str) -> float:
    """The sum over the samples of `name` whose labels include `labels`."""
    total = 0.0
    for key, value in samples.items():
        metric, _, rest = key.partition("{")
        found = dict(re.findall(r'(\w+)="([^"]*)"', rest))
        if metric == name and all(found.get(k) == v for k, v in labels.items()):
            total += value
    return total


def wait_for(url: str, name: str, expected: float, **labels: str) -> dict[str, float]:
    """Workers write their tallies about once a second: scrape until the series reaches `expected`."""
    deadline = time.monotonic() + 10
    while True:
        samples = scrape(url)
        if series(samples, name, **labels) >= expected or time.monotonic() > deadline:
            return samples
        time.sleep(0.3)


def test_series_after_traffic_add_up_over_two_workers(two_workers: RunningServer) -> None:
    with two_workers.client() as client:
        push_image(client, "metrics/app", "v1", make_image("metrics"))
    for _ in range(PULLS):
        with httpx.Client(base_url=two_workers.url, auth=two_workers.credentials, timeout=30) as fresh:
            assert fresh.get("/v2/metrics/app/manifests/v1").status_code == 200
    missing = httpx.get(f"{two_workers.url}/v2/metrics/app/manifests/nope", auth=two_workers.credentials)
    assert missing.status_code == 404
    httpx.get(f"{two_workers.url}/v2/metrics/app/manifests/v1", auth=("nobody", "wrong"))

    samples = wait_for(two_workers.url, "cargohold_http_request_duration_seconds_count", PULLS,
                       route=MANIFEST_ROUTE, method="GET", status="200")
    samples = wait_for(two_workers.url, "cargohold_http_request_duration_seconds_count", 1,
                       route=MANIFEST_ROUTE, method="GET", status="404")
    samples = wait_for(two_workers.url, "cargohold_auth_failures_total", 1, reason="bad_credentials")
    labels = {"route": MANIFEST_ROUTE, "method": "GET", "status": "200"}
    assert series(samples, "cargohold_http_request_duration_seconds_count", **labels) == PULLS
    assert series(samples, "cargohold_http_request_duration_seconds_bucket", le="+Inf", **labels) == PULLS
    assert series(samples, "cargohold_http_request_duration_seconds_sum", **labels) > 0
    assert series(samples, "cargohold_http_response_bytes_total", **labels) == PULLS * len(make_image("metrics").manifest)
    assert series(samples, "cargohold_http_request_duration_seconds_count", route=MANIFEST_ROUTE,
                  status="404") == 1
    assert series(samples, "cargohold_http_request_bytes_total", method="PUT", route=MANIFEST_ROUTE) > 0
    assert not any("/v2/metrics/app" in key for key in samples), "raw paths must not become labels"
    assert series(samples, "cargohold_auth_failures_total", reason="bad_credentials") >= 1
    assert series(samples, "cargohold_cache_lookups_total", result="hit") > 0
    assert "cargohold_uploads_in_flight" in samples
    assert samples["cargohold_upload_sessions_open"] == 0
    assert samples["cargohold_jobs_queued{kind=\"webhook\"}"] == 0
    assert "cargohold_jobs_oldest_age_seconds{kind=\"import\"}" in samples
    assert "cargohold_webhook_delivery_lag_seconds_count" in samples
    assert samples["cargohold_db_pool_checked_out"] >= 0
    assert samples["cargohold_metrics_database_up"] == 1

    writers = {path.name.rsplit("_", 1)[-1] for path in
               (two_workers.data_dir / "metrics" / str(two_workers.port)).glob("histogram_*.db")}
    assert len(writers) == 2, f"expected both workers to have served requests, files from {writers}"


def test_metrics_refused_to_proxied_clients_without_a_token(two_workers: RunningServer) -> None:
    response = httpx.get(f"{two_workers.url}/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert response.status_code == 403
    assert "loopback" in response.text


def test_separate_port_with_token(tmp_path: Path) -> None:
    port = free_port()
    server = RunningServer(tmp_path / "data", extra_args=["--metrics-port", str(port), "--metrics-token", TOKEN])
    server.start()
    try:
        httpx.get(f"{server.url}/v2/")
        assert httpx.get(f"{server.url}/metrics").status_code == 404
        separate = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{separate}/metrics").status_code == 401
        assert httpx.get(f"{separate}/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        deadline = time.monotonic() + 10
        while True:
            samples = scrape(separate, headers={"Authorization": f"Bearer {TOKEN}"})
            if series(samples, "cargohold_http_request_duration_seconds_count", route="/v2/") or \
                    time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert series(samples, "cargohold_http_request_duration_seconds_count", route="/v2/", status="401") >= 2  # ours and the readiness poll
        assert samples["cargohold_metrics_database_up"] == 1
    finally:
        server.stop()


def test_metrics_can_be_turned_off(tmp_path: Path) -> None:
    server = RunningServer(tmp_path / "data", extra_args=["--no-metrics"]).start()
    try:
        assert httpx.get(f"{server.url}/metrics").status_code == 404
        assert httpx.get(f"{server.url}/healthz").status_code == 200
        assert not (server.data_dir / "metrics").exists()
    finally:
        server.stop()


def test_public_metrics_listener_needs_a_token(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "cargohold", "serve", "--data-dir", str(tmp_path / "data"),
                             "--metrics-port", str(free_port()), "--metrics-host", "0.0.0.0"],
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "COLUMNS": "300", "NO_COLOR": "1"})
    assert result.returncode == 2
    assert "metrics there need --metrics-token" in result.stderr
