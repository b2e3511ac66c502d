"""Machine description and tool versions for the report header."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path


def _first_line(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({exc.__class__.__name__})"
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_total() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / (1 << 20):.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_info() -> dict[str, str]:
    load1, load5, _ = os.getloadavg()
    return {
        "nproc": _first_line(["nproc"]),
        "cpu": cpu_model(),
        "kernel": platform.release(),
        "memory": memory_total(),
        "load average at start (1m, 5m)": f"{load1:.2f}, {load5:.2f}",
    }


def tool_versions() -> dict[str, str]:
    return {
        "nginx": _first_line(["nginx", "-v"]),
        "docker-registry": _first_line(["docker-registry", "--version"]),
        "wrk": _first_line(["wrk", "-v"]).split(" Copyright")[0],
        "hey": "Debian package " + _first_line(["dpkg-query", "-W", "-f=${Version}", "hey"]),
        "curl": " ".join(_first_line(["curl", "--version"]).split()[:2]),
        "python": sys.version.split()[0],
        "httpx": _package_version("httpx"),
        "cargohold": _package_version("cargohold"),
    }
