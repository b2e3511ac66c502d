from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import RunningServer

IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under CI=true a skipped test is a failure: CI must run everything."""
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true: {report.longrepr}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The second pass (PostgreSQL + a cloud store) runs only what can behave differently on those backends."""
    if not (os.environ.get("CARGOHOLD_TEST_POSTGRES") or os.environ.get("CARGOHOLD_TEST_STORAGE")):
        return
    kept = [item for item in items if item.get_closest_marker("backend_independent") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (run scripts/install-test-deps.sh)")
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A registry process of its own for each test module, on the embedded default."""
    running = RunningServer(tmp_path_factory.mktemp("registry") / "data").start()
    yield running
    running.stop()


@pytest.fixture
def client(server: RunningServer) -> Iterator[httpx.Client]:
    with server.client() as http:
        yield http


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[RunningServer]:
    """A registry of the test's own, for tests that kill or restart it."""
    running = RunningServer(tmp_path / "data").start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A registry served over HTTPS by its own CA (`--tls self-signed`), as MSAL and the Azure SDK insist on."""
    running = RunningServer(tmp_path_factory.mktemp("tls") / "data", extra_args=["--tls", "self-signed"],
                            scheme="https").start(verify=False)
    yield running
    running.stop()
