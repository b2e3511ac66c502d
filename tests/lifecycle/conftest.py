"""A registry with the lifecycle's schedules sped up (retention every second, pulls flushed every 0.2 s)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.events.conftest import Arm, start_server
from tests.support.server import RunningServer

FAST_LIFECYCLE = {
    "CARGOHOLD_RETENTION_INTERVAL_SECONDS": "1",
    "CARGOHOLD_PULL_FLUSH_SECONDS": "0.2",
}


@pytest.fixture(scope="module")
def lifecycle_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(RunningServer(tmp_path_factory.mktemp("lifecycle") / "data"), FAST_LIFECYCLE)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def arm(lifecycle_server: RunningServer) -> Iterator[Arm]:
    client = Arm(lifecycle_server)
    yield client
    client.close()
