"""`/healthz` and `/readyz` for load balancers: unauthenticated, and /readyz answers 503 with the reason when
the metadata database or the blob store is gone."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.server import RunningServer

pytestmark = pytest.mark.backend_independent


def test_health_endpoints(tmp_path: Path) -> None:
    server = RunningServer(tmp_path / "data", local_store=True).start()
    try:
        alive = httpx.get(f"{server.url}/healthz")
        assert alive.status_code == 200 and alive.text == "ok\n"
        ready = httpx.get(f"{server.url}/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready", "checks": {"database": "ok", "storage": "ok"}}
        assert httpx.head(f"{server.url}/readyz").status_code == 200
        assert httpx.post(f"{server.url}/readyz").status_code == 405

        database = server.data_dir / "metadata.db"
        database.rename(tmp_path / "moved.db")
        missing_db = httpx.get(f"{server.url}/readyz")
        assert missing_db.status_code == 503
        assert missing_db.json()["checks"]["database"].endswith(f"the database file {database} is missing")
        assert missing_db.json()["checks"]["storage"] == "ok"
        assert httpx.get(f"{server.url}/healthz").status_code == 200
        (tmp_path / "moved.db").rename(database)
        assert httpx.get(f"{server.url}/readyz").status_code == 200

        blobs = server.data_dir / "storage" / "blobs"
        blobs.rename(tmp_path / "blobs-elsewhere")
        no_store = httpx.get(f"{server.url}/readyz")
        assert no_store.status_code == 503
        assert no_store.json() == {"status": "unavailable", "checks": {
            "database": "ok", "storage": f"FileNotFoundError: {blobs} is not a directory"}}
        (tmp_path / "blobs-elsewhere").rename(blobs)
        assert httpx.get(f"{server.url}/readyz").status_code == 200
    finally:
        server.stop()
