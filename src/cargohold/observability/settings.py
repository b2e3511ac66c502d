"""How `serve` configured metrics, logs and the health endpoints, read back from the environment in each
server worker (see `cargohold.config` for why settings travel that way)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PREFIX = "CARGOHOLD_"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@dataclass(frozen=True)
class ObservabilitySettings:
    metrics: bool = True
    """Whether requests are measured and /metrics is served at all (`--no-metrics`)."""
    metrics_token: str | None = None
    """With a token, /metrics answers only `Authorization: Bearer <token>`; without, only loopback clients."""
    metrics_port: int | None = None
    """Serve /metrics on this port (of the supervisor process) instead of the registry's port."""
    metrics_host: str = "127.0.0.1"
    access_log: str = "errors"
    """Which requests get an access log line: `errors` (status >= 400), `all` or `off`."""

    @classmethod
    def from_env(cls) -> ObservabilitySettings:
        port = os.environ.get(f"{PREFIX}METRICS_PORT")
        return cls(metrics=os.environ.get(f"{PREFIX}METRICS", "on") != "off",
                   metrics_token=os.environ.get(f"{PREFIX}METRICS_TOKEN") or None,
                   metrics_port=int(port) if port else None,
                   metrics_host=os.environ.get(f"{PREFIX}METRICS_HOST") or "127.0.0.1",
                   access_log=os.environ.get(f"{PREFIX}ACCESS_LOG") or "errors")

    def to_env(self, data_dir: Path, port: int) -> dict[str, str]:
        """The environment for the server processes; also names the directory the worker processes share their
        metric values through (prometheus-client's multiprocess mode)."""
        env = {f"{PREFIX}METRICS": "on" if self.metrics else "off",
               f"{PREFIX}METRICS_TOKEN": self.metrics_token or "",
               f"{PREFIX}METRICS_PORT": str(self.metrics_port or ""),
               f"{PREFIX}METRICS_HOST": self.metrics_host,
               f"{PREFIX}ACCESS_LOG": self.access_log}
        if self.metrics:
            env[MULTIPROC_ENV] = str(metrics_dir(data_dir, port))
        return env


def metrics_dir(data_dir: Path, port: int) -> Path:
    """One directory per served port, so two servers on one data directory never mix their values."""
    return data_dir / "metrics" / str(port)


def reset_metrics_dir(path: Path) -> None:
    """Start a server's metric values from zero, as counters do when a process restarts."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    for stale in path.glob("*.db"):
        stale.unlink(missing_ok=True)
